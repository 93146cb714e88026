#pragma once
// What every exact tabular self-play method shares: the iterate it advances and the concept the
// self_play driver runs. The methods themselves (rspo_algorithm and its instances SPPO and MMD,
// Nash-MD, MPO, INPO) are small value types in the headers beside this one.

#include <rspo/core/check.hpp>
#include <rspo/core/log_space.hpp>
#include <rspo/games/preference_game.hpp>
#include <rspo/policies/tabular_policy.hpp>

#include <Eigen/Core>

#include <concepts>
#include <cstddef>
#include <string>

namespace rspo {

/// The state of a tabular self-play run, in log space.
struct tabular_iterate {
    Eigen::VectorXd log_policy = {};  ///< log π_t
    Eigen::VectorXd log_magnet = {};  ///< log of the policy the regularizer pulls toward: μ (MPO moves it)
    std::size_t iteration = 0;   ///< t: steps taken so far
};

// clang-format off
/// A method with an exact tabular step. Requirements beyond the signatures:
///  1. step(game, it) replaces it.log_policy by log π_{t+1} (normalized) given it.iteration = t, and
///     may move it.log_magnet; it does not change it.iteration (the driver counts);
///  2. step is deterministic and does not validate (validate(function) is called once per run and
///     throws rspo::domain_error naming a bad parameter).
template <class A>
concept TabularAlgorithm =
    std::copy_constructible<A> &&
    requires(const A& a, const preference_game& game, tabular_iterate& it, const char* function) {
        a.step(game, it);
        a.validate(function);
        { a.name() } -> std::convertible_to<std::string>;
    };
// clang-format on

/// One checked step from π_t toward π_{t+1} with reference μ at iteration t.
template <TabularAlgorithm A>
tabular_policy step(const A& algorithm, const preference_game& game, const tabular_policy& current,
                    const tabular_policy& reference, std::size_t iteration = 0) {
    constexpr const char* fn = "rspo::step";
    algorithm.validate(fn);
    check_size(fn, "current", current.size(), game.size(), "the game");
    check_size(fn, "reference", reference.size(), game.size(), "the game");
    check_full_support(fn, "reference", reference.probabilities());
    tabular_iterate it{current.log_probabilities(), reference.log_probabilities(), iteration};
    algorithm.step(game, it);
    return tabular_policy::from_logits(it.log_policy);
}

}  // namespace rspo
