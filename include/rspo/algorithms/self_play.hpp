#pragma once
// The one driver that runs every tabular self-play method: validates once, steps, keeps the running
// average, checks each iterate for numeric failure, and calls the hooks of any number of callback
// objects (progress, CSV logging, early stop; callbacks.hpp). See docs/algorithms.md.

#include <rspo/algorithms/tabular_algorithm.hpp>
#include <rspo/core/check.hpp>
#include <rspo/core/log_space.hpp>
#include <rspo/games/preference_game.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>

namespace rspo {

struct self_play_options {
    std::size_t iterations = 1000;            ///< T: steps to take (callbacks may stop earlier)
    std::optional<Eigen::VectorXd> reference = std::nullopt;  ///< μ (full support); default uniform
    std::optional<Eigen::VectorXd> initial = std::nullopt;    ///< π_0; default μ
};

enum class self_play_status {
    completed,        ///< all T steps taken
    stopped,          ///< a callback asked to stop
    numeric_failure,  ///< a step produced NaN or lost all mass; the result holds the last good iterate
};

struct self_play_result {
    Eigen::VectorXd policy = {};          ///< last iterate π_T
    Eigen::VectorXd average_policy = {};  ///< (1/T) Σ_{t=1..T} π_t (π_0 if no step was taken)
    Eigen::VectorXd magnet = {};          ///< the final magnet (μ unless the method moves it)
    std::size_t iterations = 0;      ///< steps taken
    self_play_status status = self_play_status::completed;
    std::string message = {};             ///< what went wrong, for numeric_failure
};

/// What callbacks see after each step (and once before the first, with iteration = 0).
struct self_play_step {
    std::size_t iteration;                  ///< t
    std::size_t total_iterations;           ///< T
    const Eigen::VectorXd& policy;          ///< π_t
    const Eigen::VectorXd& average_policy;  ///< average of π_1..π_t (π_0 at t = 0)
    const Eigen::VectorXd& reference;       ///< μ
    const Eigen::VectorXd& magnet;          ///< current magnet
    const preference_game& game;
};

namespace detail {
template <class C>
void call_on_begin(C& callback, const self_play_step& s) {
    if constexpr (requires { callback.on_begin(s); }) callback.on_begin(s);
}
/// A hook returning bool asks to stop by returning true.
template <class C>
bool call_on_step(C& callback, const self_play_step& s) {
    if constexpr (requires { { callback.on_step(s) } -> std::same_as<bool>; })
        return callback.on_step(s);
    else if constexpr (requires { callback.on_step(s); })
        callback.on_step(s);
    return false;
}
template <class C>
void call_on_end(C& callback, const self_play_result& r) {
    if constexpr (requires { callback.on_end(r); }) callback.on_end(r);
}
}  // namespace detail

template <TabularAlgorithm A, class... Callbacks>
self_play_result self_play(const A& algorithm, const preference_game& game,
                           const self_play_options& options, Callbacks&&... callbacks) {
    constexpr const char* fn = "rspo::self_play";
    algorithm.validate(fn);
    const auto n = static_cast<Eigen::Index>(game.size());
    const Eigen::VectorXd reference =
        options.reference ? *options.reference : Eigen::VectorXd::Constant(n, 1.0 / static_cast<double>(n));
    check_size(fn, "options.reference", static_cast<std::size_t>(reference.size()), game.size(), "the game");
    check_full_support(fn, "options.reference", reference);
    const Eigen::VectorXd initial = options.initial ? *options.initial : reference;
    check_size(fn, "options.initial", static_cast<std::size_t>(initial.size()), game.size(), "the game");
    check_distribution(fn, "options.initial", initial);

    tabular_iterate it{log_normalize(log_of(initial)), log_of(reference), 0};
    self_play_result result;
    result.policy = exp_of(it.log_policy);
    result.average_policy = result.policy;
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(n);
    Eigen::VectorXd magnet = reference;

    const auto view = [&](std::size_t t) {
        return self_play_step{t, options.iterations, result.policy, result.average_policy,
                              reference, magnet, game};
    };
    (detail::call_on_begin(callbacks, view(0)), ...);

    for (std::size_t t = 1; t <= options.iterations; ++t) {
        tabular_iterate next = it;
        algorithm.step(game, next);
        // No NaN, and a finite maximum: no +∞ and some mass left.
        const bool finite = !next.log_policy.array().isNaN().any() &&
                            std::isfinite(next.log_policy.maxCoeff());
        if (!finite) {
            result.status = self_play_status::numeric_failure;
            result.message = algorithm.name() + ": step " + std::to_string(t) +
                             " produced a non-finite policy; the result holds step " +
                             std::to_string(t - 1);
            break;
        }
        it = std::move(next);
        it.iteration = t;
        result.policy = exp_of(it.log_policy);
        sum += result.policy;
        result.average_policy = sum / static_cast<double>(t);
        magnet = exp_of(it.log_magnet);
        result.iterations = t;
        [[maybe_unused]] const self_play_step s = view(t);
        bool stop = false;
        ((stop = detail::call_on_step(callbacks, s) || stop), ...);
        if (stop) {
            result.status = self_play_status::stopped;
            break;
        }
    }
    result.magnet = magnet;
    (detail::call_on_end(callbacks, result), ...);
    return result;
}

}  // namespace rspo
