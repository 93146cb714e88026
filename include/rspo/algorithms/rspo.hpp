#pragma once
// Regularized self-play (RSPO, Tang et al. 2025) — the generic method of which SPPO (R = 0) and
// magnetic mirror descent (R = reverse KL) are instances. Exact step: the proximal problem
//     π_{t+1} = argmax_π η⟨π, Pπ_t⟩ − ητ R(π, μ) − KL(π‖π_t)          (docs/math §3, §4)
// Sample loss: SPPO's square loss plus λ = 2ητ times the regularizer's sample terms.

#include <rspo/algorithms/tabular_algorithm.hpp>
#include <rspo/core/check.hpp>
#include <rspo/regularizers/no_regularizer.hpp>
#include <rspo/regularizers/regularized_argmax.hpp>
#include <rspo/regularizers/reverse_kl.hpp>

#include <Eigen/Core>

#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace rspo {

/// Per-sample inputs of the SPPO / RSPO loss for one batch; y_k ∼ π_t, y′_m ∼ μ.
struct rspo_sample_batch {
    std::span<const double> log_pi_theta = {};  ///< log π_θ(y_k): the trainee (gets gradients)
    std::span<const double> log_pi_t = {};      ///< log π_t(y_k): frozen copy at the iteration's start
    std::span<const double> log_mu = {};        ///< log μ(y_k): frozen reference; may be empty if τ = 0
    std::span<const double> win_rate = {};      ///< P̂(y_k ≻ π_t) ∈ [0, 1]
    /// log π_θ(y′_m) for responses drawn from μ (forward_kl_direct); empty otherwise.
    std::span<const double> reference_log_pi_theta = {};
};

/// A loss value and its derivative with respect to each sample's log π_θ, for the caller's autograd.
struct sample_loss {
    double value = 0.0;
    std::vector<double> d_log_pi_theta = {};            ///< ∂L/∂ log π_θ(y_k)
    std::vector<double> d_reference_log_pi_theta = {};  ///< ∂L/∂ log π_θ(y′_m)
};

/// λ, the weight the sample loss puts on the regularizer's divergence-weighted terms, from the
/// game's (η, τ): the population step's gradient is ½∇[L_SPPO + 2ητ R] (docs/math §3).
inline double lambda_from_tau(double eta, double tau) { return 2.0 * eta * tau; }
inline double tau_from_lambda(double eta, double lambda) {
    check_positive("rspo::tau_from_lambda", "eta", eta);
    return lambda / (2.0 * eta);
}

template <Regularizer R>
struct rspo_algorithm {
    using regularizer_type = R;
    double eta = 1.0;   ///< step size η (the paper's β is 1/η)
    double tau = 0.0;   ///< regularization strength τ ≥ 0; τ = 0 is SPPO
    R regularizer{};    ///< R(π, μ), with divergence weights

    void validate(const char* function) const {
        check_positive(function, "eta", eta);
        check_non_negative(function, "tau", tau);
        regularizer.validate(function);
    }

    std::string name() const {
        if (tau == 0.0) return "sppo";
        return "rspo[" + regularizer.name() + "]";
    }

    /// Exact proximal step toward the magnet (μ).
    void step(const preference_game& game, tabular_iterate& it) const {
        const Eigen::VectorXd pi = exp_of(it.log_policy);
        const Eigen::VectorXd s = eta * (game.preferences() * pi) + it.log_policy;
        const Eigen::VectorXd mu = exp_of(it.log_magnet);
        it.log_policy = detail::regularized_argmax_log(s, 1.0, eta * tau, regularizer, mu);
    }

    /// L = (1/K) Σ_k [(log π_θ(y_k) − log π_t(y_k) − η(P̂_k − ½))² + λ r(d_k)]
    ///     + λ (1/M) Σ_m r_ref(log π_θ(y′_m)),   d_k = log π_θ(y_k) − log μ(y_k),  λ = 2ητ.
    /// Inputs are checked: equal sizes, finite log-probs ≤ 0, win rates in [0, 1].
    sample_loss loss(const rspo_sample_batch& batch) const {
        constexpr const char* fn = "rspo::rspo_algorithm::loss";
        validate(fn);
        const std::size_t k = batch.log_pi_theta.size();
        check_not_empty(fn, "log_pi_theta", k);
        check_size(fn, "log_pi_t", batch.log_pi_t.size(), k, "log_pi_theta");
        check_size(fn, "win_rate", batch.win_rate.size(), k, "log_pi_theta");
        check_log_probs(fn, "log_pi_theta", batch.log_pi_theta);
        check_log_probs(fn, "log_pi_t", batch.log_pi_t);
        for (std::size_t i = 0; i < k; ++i)
            check_probability(fn, detail::indexed("win_rate", i), batch.win_rate[i]);
        const double lambda = lambda_from_tau(eta, tau);
        const bool regularized = lambda > 0.0;
        if (regularized) {
            check_size(fn, "log_mu", batch.log_mu.size(), k, "log_pi_theta");
            check_log_probs(fn, "log_mu", batch.log_mu);
            if (R::needs_reference_samples)
                check_not_empty(fn, "reference_log_pi_theta", batch.reference_log_pi_theta.size());
            check_log_probs(fn, "reference_log_pi_theta", batch.reference_log_pi_theta);
        }

        sample_loss out;
        out.d_log_pi_theta.resize(k);
        const double inv_k = 1.0 / static_cast<double>(k);
        for (std::size_t i = 0; i < k; ++i) {
            const double residual =
                batch.log_pi_theta[i] - batch.log_pi_t[i] - eta * (batch.win_rate[i] - 0.5);
            double value = residual * residual;
            double grad = 2.0 * residual;
            if (regularized) {
                const double d = batch.log_pi_theta[i] - batch.log_mu[i];
                value += lambda * regularizer.sample_value(d);
                grad += lambda * regularizer.sample_derivative(d);
            }
            out.value += inv_k * value;
            out.d_log_pi_theta[i] = inv_k * grad;
        }
        const std::size_t m = regularized ? batch.reference_log_pi_theta.size() : 0;
        out.d_reference_log_pi_theta.assign(batch.reference_log_pi_theta.size(), 0.0);
        for (std::size_t j = 0; j < m; ++j) {
            const double lp = batch.reference_log_pi_theta[j];
            const double inv_m = 1.0 / static_cast<double>(m);
            out.value += inv_m * lambda * regularizer.reference_sample_value(lp);
            out.d_reference_log_pi_theta[j] = inv_m * lambda * regularizer.reference_sample_derivative(lp);
        }
        return out;
    }

private:
    static void check_log_probs(const char* fn, const char* name, std::span<const double> values) {
        for (std::size_t i = 0; i < values.size(); ++i)
            if (!(std::isfinite(values[i]) && values[i] <= 0.0))
                throw domain_error(fn, name,
                                   detail::indexed(name, i) + " = " + detail::format_value(values[i]) +
                                       " is not a finite log-probability (<= 0)");
    }
};

/// RSPO with a deduced regularizer: make_rspo(0.1 * forward_kl{} + reverse_kl{}, {.eta, .tau}).
struct rspo_parameters {
    double eta = 1.0;
    double tau = 0.0;
};
template <Regularizer R>
rspo_algorithm<R> make_rspo(R regularizer, rspo_parameters parameters) {
    return rspo_algorithm<R>{parameters.eta, parameters.tau, std::move(regularizer)};
}

/// SPPO (Wu et al. 2024): multiplicative weights against the current self, R = 0.
using sppo = rspo_algorithm<no_regularizer>;
/// Magnetic mirror descent (Sokota et al. 2023) = RSPO with reverse KL.
using mmd = rspo_algorithm<reverse_kl>;

static_assert(TabularAlgorithm<sppo>);
static_assert(TabularAlgorithm<mmd>);

}  // namespace rspo
