#pragma once
// From K sampled responses and their pairwise preferences to what the losses consume: the win-rate
// estimates P̂(y_i ≻ π_t), the (y_w, y_l) pair of the published pipeline, and INPO's pairs ordered
// by a draw from the preference (docs/math §2, §4; docs/oracles.md).

#include <rspo/core/check.hpp>
#include <rspo/core/random.hpp>
#include <rspo/oracles/preference_oracle.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <span>
#include <vector>

namespace rspo {

/// Which estimator of P(y_i ≻ π_t) from K samples y_1..y_K ∼ π_t.
enum class win_rate_estimator {
    /// (1/K) Σ_j P(y_i ≻ y_j), self-pair included (it contributes ½): SPPO's published estimator
    /// and rspo's default, so that published settings (η, K = 5) mean what they meant there. Its
    /// mean is ((K−1)·P(y_i ≻ π_t) + ½)/K: it shrinks P̂ − ½, i.e. the effective η, by (K−1)/K.
    published,
    /// (1/(K−1)) Σ_{j≠i} P(y_i ≻ y_j): unbiased; needs K ≥ 2.
    unbiased,
};

/// P̂(y_i ≻ π_t) from the K×K pairwise matrix M_ij = P(y_i ≻ y_j) (validated: M + Mᵀ = 1).
inline Eigen::VectorXd estimate_win_rates(const Eigen::MatrixXd& pairwise,
                                          win_rate_estimator estimator = win_rate_estimator::published) {
    constexpr const char* fn = "rspo::estimate_win_rates";
    check_preference_matrix(fn, "pairwise", pairwise);
    const auto k = static_cast<double>(pairwise.rows());
    const Eigen::VectorXd row_sums = pairwise.rowwise().sum();
    if (estimator == win_rate_estimator::published) return row_sums / k;
    if (pairwise.rows() < 2)
        throw shape_error(fn, "pairwise",
                          "the unbiased estimator leaves the self-pair out and needs K >= 2 samples, "
                          "got K = 1");
    return (row_sums.array() - 0.5) / (k - 1.0);
}

/// Queries the oracle on all pairs of the K responses, then estimates.
template <PreferenceOracle O>
Eigen::VectorXd estimate_win_rates(const O& oracle, const typename O::prompt_type& x,
                                   std::span<const typename O::response_type> responses,
                                   win_rate_estimator estimator = win_rate_estimator::published,
                                   pair_query query = pair_query::once) {
    check_not_empty("rspo::estimate_win_rates", "responses", responses.size());
    return estimate_win_rates(preference_matrix(oracle, x, responses, query), estimator);
}

/// Indices into one prompt's K samples: which response is preferred and which is not.
struct response_pair {
    std::size_t winner = 0;
    std::size_t loser = 0;
    friend bool operator==(const response_pair&, const response_pair&) = default;
};

/// The published pipeline's selection: y_w = argmax P̂, y_l = argmin P̂ (first index on ties). If all
/// estimates are equal the pair is (0, K−1), so the two are always distinct samples.
inline response_pair select_best_worst(const Eigen::VectorXd& win_rates) {
    constexpr const char* fn = "rspo::select_best_worst";
    if (win_rates.size() < 2)
        throw shape_error(fn, "win_rates",
                          "win_rates has size " + std::to_string(win_rates.size()) +
                              " but a pair needs at least 2 samples");
    for (Eigen::Index i = 0; i < win_rates.size(); ++i)
        check_probability(fn, detail::indexed("win_rates", static_cast<std::size_t>(i)), win_rates[i]);
    Eigen::Index best = 0, worst = 0;
    win_rates.maxCoeff(&best);
    win_rates.minCoeff(&worst);
    if (best == worst) worst = win_rates.size() - 1;
    return {static_cast<std::size_t>(best), static_cast<std::size_t>(worst)};
}

/// INPO's ordering: samples a and b become (winner, loser) by one draw from the preference, a
/// winning with probability p_a_beats_b. With this ordering the pairwise loss's population minimizer
/// is the exact INPO step; with argmax/argmin selection it is not (docs/math §4).
inline response_pair draw_ordered_pair(double p_a_beats_b, std::size_t a, std::size_t b,
                                       random_engine& rng) {
    check_probability("rspo::draw_ordered_pair", "p_a_beats_b", p_a_beats_b);
    return uniform01(rng) < p_a_beats_b ? response_pair{a, b} : response_pair{b, a};
}

/// Pairs consecutive samples (0, 1), (2, 3), … of one prompt and orders each by a draw from the
/// pairwise matrix. An odd last sample is left out.
inline std::vector<response_pair> draw_ordered_pairs(const Eigen::MatrixXd& pairwise,
                                                     random_engine& rng) {
    check_preference_matrix("rspo::draw_ordered_pairs", "pairwise", pairwise);
    std::vector<response_pair> pairs;
    for (Eigen::Index i = 0; i + 1 < pairwise.rows(); i += 2)
        pairs.push_back(draw_ordered_pair(pairwise(i, i + 1), static_cast<std::size_t>(i),
                                          static_cast<std::size_t>(i + 1), rng));
    return pairs;
}

}  // namespace rspo
