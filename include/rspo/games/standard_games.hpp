#pragma once
// Preference games with known answers, for tests, benchmarks and the examples (docs/math §4).

#include <rspo/core/check.hpp>
#include <rspo/core/random.hpp>
#include <rspo/games/preference_game.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace rspo::games {

/// Rock-paper-scissors as preferences: the winner of each pair is preferred with probability 1.
/// Nash equilibrium uniform; L = ½.
inline preference_game rock_paper_scissors() {
    Eigen::MatrixXd P(3, 3);
    P << 0.5, 0.0, 1.0,  //
        1.0, 0.5, 0.0,   //
        0.0, 1.0, 0.5;
    return {"rock_paper_scissors", P, Eigen::VectorXd::Constant(3, 1.0 / 3.0)};
}

/// Biased RPS: P = ½ + A/100 with A OpenSpiel's antisymmetric biased-RPS payoff
/// [[0, −25, 50], [25, 0, −5], [−50, 5, 0]]; Nash equilibrium (1, 10, 5)/16; L = ½.
inline preference_game biased_rock_paper_scissors() {
    Eigen::MatrixXd A(3, 3);
    A << 0.0, -25.0, 50.0,  //
        25.0, 0.0, -5.0,    //
        -50.0, 5.0, 0.0;
    Eigen::VectorXd nash(3);
    nash << 1.0 / 16.0, 10.0 / 16.0, 5.0 / 16.0;
    return {"biased_rock_paper_scissors", (0.5 + A.array() / 100.0).matrix(), nash};
}

/// A weighted cycle on n ≥ 3 actions: action i beats i+1 (mod n) with margin weights[i] ∈ (0, ½],
/// P(i ≻ i+1) = ½ + w_i, and every other pair is a tie. Equilibrium condition (Pπ)_i = ½ reads
/// w_i π_{i+1} = w_{i−1} π_{i−1}: for n = 3 the unique solution is π_i ∝ w_{i+1}; for equal
/// weights and odd n it is uniform (unique); otherwise none is recorded.
inline preference_game weighted_cycle(const std::vector<double>& weights) {
    constexpr const char* fn = "rspo::games::weighted_cycle";
    if (weights.size() < 3)
        throw shape_error(fn, "weights",
                          "weights has size " + std::to_string(weights.size()) +
                              " but a cycle needs at least 3 actions");
    const auto n = static_cast<Eigen::Index>(weights.size());
    Eigen::MatrixXd P = Eigen::MatrixXd::Constant(n, n, 0.5);
    bool equal = true;
    for (Eigen::Index i = 0; i < n; ++i) {
        const double w = weights[static_cast<std::size_t>(i)];
        const std::string arg = detail::indexed("weights", static_cast<std::size_t>(i));
        check_positive(fn, arg, w);
        if (w > 0.5)
            throw domain_error(fn, arg, arg + " = " + detail::format_value(w) + " must be <= 0.5");
        equal = equal && w == weights[0];
        P(i, (i + 1) % n) = 0.5 + w;
        P((i + 1) % n, i) = 0.5 - w;
    }
    std::optional<Eigen::VectorXd> nash;
    if (n == 3) {
        Eigen::VectorXd p(3);
        for (Eigen::Index i = 0; i < 3; ++i) p[i] = weights[static_cast<std::size_t>((i + 1) % 3)];
        nash = p / p.sum();
    } else if (equal && n % 2 == 1) {
        nash = Eigen::VectorXd::Constant(n, 1.0 / static_cast<double>(n));
    }
    return {"weighted_cycle_" + std::to_string(n), P, nash};
}

/// P_ij uniform on [0, 1] above the diagonal, P_ji = 1 − P_ij: intransitive almost surely.
/// Deterministic for a seed. Nash equilibrium computed, not recorded.
inline preference_game random_skew_symmetric(std::size_t n, std::uint64_t seed) {
    check_not_empty("rspo::games::random_skew_symmetric", "n", n);
    random_engine rng(seed);
    const auto m = static_cast<Eigen::Index>(n);
    Eigen::MatrixXd P = Eigen::MatrixXd::Constant(m, m, 0.5);
    for (Eigen::Index i = 0; i < m; ++i)
        for (Eigen::Index j = i + 1; j < m; ++j) {
            P(i, j) = uniform01(rng);
            P(j, i) = 1.0 - P(i, j);
        }
    return {"random_skew_symmetric_" + std::to_string(n) + "_seed" + std::to_string(seed), P};
}

/// Transitive Bradley–Terry game: P(i ≻ j) = σ(s_i − s_j). The Nash equilibrium is the best item
/// (scores must have a unique maximum for it to be recorded).
inline preference_game bradley_terry(const Eigen::VectorXd& scores) {
    constexpr const char* fn = "rspo::games::bradley_terry";
    check_not_empty(fn, "scores", static_cast<std::size_t>(scores.size()));
    check_all_finite(fn, "scores", scores);
    const Eigen::Index n = scores.size();
    Eigen::MatrixXd P(n, n);
    for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = 0; j < n; ++j)
            P(i, j) = 1.0 / (1.0 + std::exp(scores[j] - scores[i]));
    Eigen::Index best = 0;
    const double top = scores.maxCoeff(&best);
    std::optional<Eigen::VectorXd> nash;
    if ((scores.array() == top).count() == 1) nash = Eigen::VectorXd::Unit(n, best);
    return {"bradley_terry_" + std::to_string(n), P, nash};
}

/// P ≡ ½: every response ties. Every policy is a Nash equilibrium; the regularized one is μ.
inline preference_game all_ties(std::size_t n) {
    check_not_empty("rspo::games::all_ties", "n", n);
    const auto m = static_cast<Eigen::Index>(n);
    return {"all_ties_" + std::to_string(n), Eigen::MatrixXd::Constant(m, m, 0.5)};
}

}  // namespace rspo::games
