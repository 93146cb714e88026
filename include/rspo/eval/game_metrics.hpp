#pragma once
// Exact metrics on tabular preference games (docs/math §1): exploitability, the regularized duality
// gap for any separable regularizer, the regularized best response, and KL divergence.

#include <rspo/core/check.hpp>
#include <rspo/core/log_space.hpp>
#include <rspo/games/preference_game.hpp>
#include <rspo/regularizers/regularized_argmax.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <algorithm>

namespace rspo {

/// KL(p‖q) ≥ 0 (exactly: round-off below zero is clamped), +∞ where p_i > 0 = q_i. Checked.
inline double kl_divergence(const Eigen::VectorXd& p, const Eigen::VectorXd& q) {
    constexpr const char* fn = "rspo::kl_divergence";
    check_size(fn, "q", static_cast<std::size_t>(q.size()), static_cast<std::size_t>(p.size()), "p");
    check_distribution(fn, "p", p);
    check_distribution(fn, "q", q);
    return detail::kl_unchecked(p, q);
}

/// max_i (Pπ)_i − ½ ≥ 0: how much the best pure response beats π; zero iff π is a Nash equilibrium.
inline double exploitability(const preference_game& game, const Eigen::VectorXd& pi) {
    constexpr const char* fn = "rspo::exploitability";
    check_size(fn, "pi", static_cast<std::size_t>(pi.size()), game.size(), "the game");
    check_distribution(fn, "pi", pi);
    // πᵀPπ = ½ exactly, so max_i (Pπ)_i ≥ ½ up to round-off, which is clamped.
    return std::max(0.0, (game.preferences() * pi).maxCoeff() - 0.5);
}

namespace detail {
/// The checks shared by the best response and the gap, under the caller's name.
template <Regularizer R>
void check_regularized_game(const char* fn, const preference_game& game, const Eigen::VectorXd& pi,
                            const Eigen::VectorXd& reference, double tau, const R& regularizer) {
    check_size(fn, "pi", static_cast<std::size_t>(pi.size()), game.size(), "the game");
    check_size(fn, "reference", static_cast<std::size_t>(reference.size()), game.size(), "the game");
    check_distribution(fn, "pi", pi);
    check_full_support(fn, "reference", reference);
    check_non_negative(fn, "tau", tau);
    regularizer.validate(fn);
}

template <Regularizer R>
Eigen::VectorXd best_response_unchecked(const preference_game& game, const Eigen::VectorXd& pi,
                                        const Eigen::VectorXd& reference, double tau,
                                        const R& regularizer) {
    return exp_of(regularized_argmax_log(game.preferences() * pi, 0.0, tau, regularizer, reference));
}
}  // namespace detail

/// argmax_π′ π′ᵀPπ − τ R(π′, μ): the regularized best response to π (KKT + bisection; closed
/// form for reverse KL). τ = 0 gives a pure best response (first maximizer).
template <Regularizer R>
Eigen::VectorXd regularized_best_response(const preference_game& game, const Eigen::VectorXd& pi,
                                          const Eigen::VectorXd& reference, double tau,
                                          const R& regularizer) {
    detail::check_regularized_game("rspo::regularized_best_response", game, pi, reference, tau,
                                   regularizer);
    return detail::best_response_unchecked(game, pi, reference, tau, regularizer);
}

/// gap_τ(π) = 2 max_π′ [π′ᵀPπ − τR(π′, μ)] + 2τR(π, μ) − 1 ≥ 0 for the symmetric profile (π, π),
/// zero iff π = π*_τ. With τ = 0 it is twice the exploitability. Round-off below zero (down to
/// −1e-12) is clamped; anything more negative is returned as is, since it would mean the best
/// response was not found.
template <Regularizer R>
double regularized_gap(const preference_game& game, const Eigen::VectorXd& pi,
                       const Eigen::VectorXd& reference, double tau, const R& regularizer) {
    detail::check_regularized_game("rspo::regularized_gap", game, pi, reference, tau, regularizer);
    const Eigen::VectorXd br = detail::best_response_unchecked(game, pi, reference, tau, regularizer);
    const Eigen::VectorXd q = game.preferences() * pi;
    const double penalty_br = tau == 0.0 ? 0.0 : tau * regularizer.value(br, reference);
    const double penalty_pi = tau == 0.0 ? 0.0 : tau * regularizer.value(pi, reference);
    const double gap = 2.0 * (br.dot(q) - penalty_br) + 2.0 * penalty_pi - 1.0;
    return gap < 0.0 && gap > -1e-12 ? 0.0 : gap;
}

}  // namespace rspo
