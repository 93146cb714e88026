#pragma once
// The Policy concept: a conditional distribution π(y | x) that can be sampled and scored.
// Tabular policies are probability vectors over a finite response set; sequence policies (over
// tokens, through logits and the kernels) model the same concept.

#include <rspo/core/random.hpp>

#include <Eigen/Core>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string>
#include <vector>

namespace rspo {

/// Opt-in tag: `using policy_category = rspo::policy_tag;`.
struct policy_tag {};

// clang-format off
/// Requirements the compiler cannot check (rspo::check_policy tests them for tabular policies):
///  1. log_prob(x, y) ≤ 0, and −∞ exactly for responses with probability 0;
///  2. for a finite response set, Σ_y exp(log_prob(x, y)) = 1;
///  3. sample(x, rng) draws y with probability exp(log_prob(x, y)), and only through rng: the same
///     engine state gives the same response.
template <class P>
concept Policy =
    requires { typename P::prompt_type; typename P::response_type; typename P::policy_category; } &&
    std::derived_from<typename P::policy_category, policy_tag> &&
    requires(const P& p, const typename P::prompt_type& x, const typename P::response_type& y,
             random_engine& rng) {
        { p.log_prob(x, y) } -> std::convertible_to<double>;
        { p.sample(x, rng) } -> std::same_as<typename P::response_type>;
    };

/// A policy over responses {0, …, n−1} of one prompt, with its full probability vector.
template <class P>
concept TabularPolicy =
    Policy<P> && std::same_as<typename P::response_type, std::size_t> &&
    requires(const P& p) {
        { p.size() } -> std::convertible_to<std::size_t>;
        { p.probabilities() } -> std::convertible_to<Eigen::VectorXd>;
    };
// clang-format on

/// Tests requirements 1–3 of a tabular policy: log-probs ≤ 0 and consistent with probabilities(),
/// normalization, and sampling that depends on the engine alone.
template <TabularPolicy P>
std::vector<std::string> check_policy(const P& policy, const typename P::prompt_type& x,
                                      std::uint64_t seed = 0, std::size_t draws = 256,
                                      double tolerance = 1e-12) {
    std::vector<std::string> failures;
    const Eigen::VectorXd probs = policy.probabilities();
    double total = 0.0;
    for (std::size_t y = 0; y < policy.size(); ++y) {
        const double lp = static_cast<double>(policy.log_prob(x, y));
        if (lp > 0.0) failures.push_back("log_prob(" + std::to_string(y) + ") > 0");
        const double p = probs[static_cast<Eigen::Index>(y)];
        if (!(std::abs(std::exp(lp) - p) <= tolerance))
            failures.push_back("exp(log_prob(" + std::to_string(y) + ")) differs from probabilities()");
        total += p;
    }
    if (!(std::abs(total - 1.0) <= 1e-9)) failures.push_back("probabilities do not sum to 1");
    random_engine a(seed), b(seed);
    for (std::size_t i = 0; i < draws; ++i) {
        const auto ya = policy.sample(x, a);
        if (ya != policy.sample(x, b)) {
            failures.push_back("two engines with the same seed drew different responses");
            break;
        }
        if (ya >= policy.size() || !(probs[static_cast<Eigen::Index>(ya)] > 0.0)) {
            failures.push_back("drew response " + std::to_string(ya) + ", which has probability 0");
            break;
        }
    }
    return failures;
}

}  // namespace rspo
