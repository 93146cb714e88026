#pragma once
// The PreferenceOracle concept, the batched preference matrix derived from any oracle, and a
// runtime conformance check users can run on their own judge (docs/oracles.md).

#include <rspo/core/check.hpp>

#include <Eigen/Core>

#include <cmath>
#include <concepts>
#include <span>
#include <string>
#include <vector>

namespace rspo {

/// Opt-in tag: `using oracle_category = rspo::preference_oracle_tag;`.
struct preference_oracle_tag {};

/// The prompt type of single-prompt (tabular) problems.
struct single_prompt {};

// clang-format off
/// An oracle answers P(a ≻ b | x). Requirements the compiler cannot check (rspo::check_oracle tests
/// them on the responses you give it):
///  1. prefer(x, a, b) ∈ [0, 1];
///  2. prefer(x, a, b) + prefer(x, b, a) = 1 (complementarity; position bias must be removed by the
///     oracle, or by querying both orders with pair_query::both_orders);
///  3. prefer(x, a, a) = ½;
///  4. deterministic: the same call gives the same answer (a stochastic judge draws from its own
///     seeded state, and is then not const-callable concurrently);
///  5. P need not be transitive.
/// Optionally an oracle gives `prefer_all(x, responses) -> Eigen::MatrixXd` (all K×K pairs at once,
/// e.g. one batched judge call); the library then uses it instead of K(K−1)/2 prefer calls.
template <class O>
concept PreferenceOracle =
    requires { typename O::prompt_type; typename O::response_type; typename O::oracle_category; } &&
    std::derived_from<typename O::oracle_category, preference_oracle_tag> &&
    requires(const O& o, const typename O::prompt_type& x, const typename O::response_type& a,
             const typename O::response_type& b) {
        { o.prefer(x, a, b) } -> std::convertible_to<double>;
    };

/// An oracle over a finite set of responses {0, …, n−1} for one prompt: its full matrix is known.
template <class O>
concept TabularOracle =
    PreferenceOracle<O> &&
    std::same_as<typename O::prompt_type, single_prompt> &&
    std::same_as<typename O::response_type, std::size_t> &&
    requires(const O& o) {
        { o.size() } -> std::convertible_to<std::size_t>;
        { o.preferences() } -> std::convertible_to<const Eigen::MatrixXd&>;
    };
// clang-format on

/// How pairwise preferences are queried for a batch of K responses.
enum class pair_query {
    once,        ///< prefer(x, y_i, y_j) for i < j; P_ji := 1 − P_ij, P_ii := ½ (K(K−1)/2 calls)
    both_orders  ///< P_ij := ½ (prefer(x, y_i, y_j) + 1 − prefer(x, y_j, y_i)): cancels a judge's
                 ///< position bias at twice the calls
};

/// The K×K matrix M_ij = P(y_i ≻ y_j | x) for sampled responses, valid by construction
/// (M + Mᵀ = 1, diagonal ½). Each judge answer is checked to lie in [0, 1].
template <PreferenceOracle O>
Eigen::MatrixXd preference_matrix(const O& oracle, const typename O::prompt_type& x,
                                  std::span<const typename O::response_type> responses,
                                  pair_query query = pair_query::once) {
    constexpr const char* fn = "rspo::preference_matrix";
    const auto k = static_cast<Eigen::Index>(responses.size());
    if constexpr (requires { { oracle.prefer_all(x, responses) } -> std::convertible_to<Eigen::MatrixXd>; }) {
        Eigen::MatrixXd m = oracle.prefer_all(x, responses);
        if (m.rows() != k || m.cols() != k)
            throw shape_error(fn, "prefer_all(x, responses)",
                              "the oracle's prefer_all returned " + std::to_string(m.rows()) + "x" +
                                  std::to_string(m.cols()) + " for " + std::to_string(k) +
                                  " responses");
        check_preference_matrix(fn, "prefer_all(x, responses)", m);
        return m;
    } else {
        // "prefer(x, responses[i], responses[j])", naming the judge call that was wrong.
        const auto pair_name = [](Eigen::Index a, Eigen::Index b) {
            return "prefer(x, responses[" + std::to_string(a) + "], responses[" + std::to_string(b) + "])";
        };
        Eigen::MatrixXd m = Eigen::MatrixXd::Constant(k, k, 0.5);
        for (Eigen::Index i = 0; i < k; ++i)
            for (Eigen::Index j = i + 1; j < k; ++j) {
                const auto& a = responses[static_cast<std::size_t>(i)];
                const auto& b = responses[static_cast<std::size_t>(j)];
                double p = static_cast<double>(oracle.prefer(x, a, b));
                check_probability(fn, pair_name(i, j), p);
                if (query == pair_query::both_orders) {
                    const double r = static_cast<double>(oracle.prefer(x, b, a));
                    check_probability(fn, pair_name(j, i), r);
                    p = 0.5 * (p + 1.0 - r);
                }
                m(i, j) = p;
                m(j, i) = 1.0 - p;
            }
        return m;
    }
}

/// Result of check_oracle: every violated requirement, described.
struct conformance_report {
    std::vector<std::string> failures;
    [[nodiscard]] bool ok() const noexcept { return failures.empty(); }
};

/// Tests requirements 1–4 of PreferenceOracle on every ordered pair of the given responses.
template <PreferenceOracle O>
conformance_report check_oracle(const O& oracle, const typename O::prompt_type& x,
                                std::span<const typename O::response_type> responses,
                                double tolerance = 1e-12) {
    conformance_report report;
    const auto fail = [&](std::size_t i, std::size_t j, const std::string& what) {
        report.failures.push_back("pair (" + std::to_string(i) + ", " + std::to_string(j) +
                                  "): " + what);
    };
    for (std::size_t i = 0; i < responses.size(); ++i)
        for (std::size_t j = 0; j < responses.size(); ++j) {
            const double p = static_cast<double>(oracle.prefer(x, responses[i], responses[j]));
            const double q = static_cast<double>(oracle.prefer(x, responses[j], responses[i]));
            const double again = static_cast<double>(oracle.prefer(x, responses[i], responses[j]));
            if (!(p >= 0.0 && p <= 1.0))
                fail(i, j, "P = " + detail::format_value(p) + " is outside [0, 1]");
            if (j >= i && !(std::abs(p + q - 1.0) <= tolerance))  // each unordered pair once
                fail(i, j, "P(a > b) + P(b > a) = " + detail::format_value(p + q) + ", not 1");
            if (i == j && !(std::abs(p - 0.5) <= tolerance))
                fail(i, j, "P(a > a) = " + detail::format_value(p) + ", not 1/2");
            if (!(p == again || (std::isnan(p) && std::isnan(again))))
                fail(i, j, "two identical calls gave " + detail::format_value(p) + " and " +
                               detail::format_value(again));
        }
    return report;
}

}  // namespace rspo
