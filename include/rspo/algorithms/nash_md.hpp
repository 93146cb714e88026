#pragma once
// Nash-MD (Munos et al. 2023): mirror descent against the geometric mixture of π_t and μ,
//     π^μ_t ∝ π_t^{1−η_tτ} μ^{η_tτ},   π_{t+1} ∝ π^μ_t · exp(η_t P π^μ_t)       (docs/math §4).
// Last-iterate convergence to π*_τ (reverse-KL regularized) needs the decreasing schedule
// η_t = 2/(τ(t+2)); a constant η settles at a biased point near it.

#include <rspo/algorithms/tabular_algorithm.hpp>
#include <rspo/core/check.hpp>
#include <rspo/regularizers/reverse_kl.hpp>
#include <rspo/core/log_space.hpp>

#include <Eigen/Core>

#include <optional>
#include <string>

namespace rspo {

struct nash_md {
    /// The divergence this method regularizes with (its π*_τ is that of τ·KL(π‖μ)).
    using regularizer_type = reverse_kl;

    double tau = 1.0;                 ///< regularization strength τ > 0
    std::optional<double> eta = {};   ///< constant step; unset: η_t = 2/(τ(t+2))

    void validate(const char* function) const {
        check_positive(function, "tau", tau);
        if (eta) {
            check_positive(function, "eta", *eta);
            if (*eta * tau > 1.0)
                throw domain_error(function, "eta",
                                   "eta * tau = " + detail::format_value(*eta * tau) +
                                       " must be <= 1 (the mixture weight)");
        }
    }

    std::string name() const { return eta ? "nash_md[constant]" : "nash_md"; }

    [[nodiscard]] double step_size(std::size_t t) const {
        return eta ? *eta : 2.0 / (tau * (static_cast<double>(t) + 2.0));
    }

    void step(const preference_game& game, tabular_iterate& it) const {
        const double h = step_size(it.iteration);
        const double m = h * tau;  // weight of μ in the geometric mixture, ≤ 1
        // (1 − m)·log π_t skipped when m = 1 so that 0·(−∞) cannot appear.
        Eigen::VectorXd log_mix = m * it.log_magnet;
        if (m < 1.0) log_mix += (1.0 - m) * it.log_policy;
        log_mix = log_normalize(log_mix);
        const Eigen::VectorXd q = game.preferences() * exp_of(log_mix);
        it.log_policy = log_normalize(log_mix + h * q);
    }
};

static_assert(TabularAlgorithm<nash_md>);

}  // namespace rspo
