#pragma once
// Forward KL, KL(μ‖π) = Σ μ_i log(μ_i/π_i). Two sample estimators of its gradient (docs/math §3):
// importance-weighted on π_t's samples (clamped), or direct on samples drawn from μ.

#include <rspo/core/check.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace rspo {

namespace detail {
/// The exact, tabular side shared by both estimators. They forward to it rather than inherit it:
/// a base class would break their designated initializers, `forward_kl{.clamp = 5}`.
struct forward_kl_exact {
    static double value(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) {
        double s = 0.0;
        for (Eigen::Index i = 0; i < pi.size(); ++i) {
            if (mu[i] <= 0.0) continue;
            if (pi[i] <= 0.0) return std::numeric_limits<double>::infinity();
            s += mu[i] * std::log(mu[i] / pi[i]);
        }
        return s > 0.0 ? s : 0.0;  // KL ≥ 0; a negative sum is round-off
    }
    static Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) {
        return (-mu.array() / pi.array()).matrix();
    }
    static double stationarity(double log_pi, double mu_i) { return -mu_i * std::exp(-log_pi); }
    static double stationarity_slope(double log_pi, double mu_i) { return mu_i * std::exp(-log_pi); }
};
}  // namespace detail

/// Forward KL estimated on π_t's own samples by importance weighting:
/// surrogate exp(min(−d, clamp)) whose expected gradient is ∇KL(μ‖π_θ) (factor 1). The clamp caps
/// the importance weight μ/π_θ at e^clamp, trading variance for bias where it binds.
struct forward_kl_importance {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = false;
    static constexpr double surrogate_gradient_factor = 1.0;

    double clamp = 10.0;  ///< c in exp(min(−d, c)); the published code uses 10

    double surrogate(double d) const { return std::exp(std::min(-d, clamp)); }
    double surrogate_derivative(double d) const { return -d <= clamp ? -std::exp(-d) : 0.0; }

    double sample_value(double d) const { return surrogate(d) / surrogate_gradient_factor; }
    double sample_derivative(double d) const {
        return surrogate_derivative(d) / surrogate_gradient_factor;
    }
    double reference_sample_value(double) const { return 0.0; }
    double reference_sample_derivative(double) const { return 0.0; }

    double value(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return detail::forward_kl_exact::value(pi, mu);
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return detail::forward_kl_exact::gradient(pi, mu);
    }
    double stationarity(double u, double mu_i) const { return detail::forward_kl_exact::stationarity(u, mu_i); }
    double stationarity_slope(double u, double mu_i) const {
        return detail::forward_kl_exact::stationarity_slope(u, mu_i);
    }

    std::string name() const { return "forward_kl_importance"; }
    void validate(const char* function) const { check_positive(function, "forward_kl.clamp", clamp); }
};

/// Forward KL estimated directly on responses y′ ∼ μ: surrogate −log π_θ(y′) (cross-entropy),
/// unbiased, factor 1; needs extra samples from the reference policy.
struct forward_kl_direct {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = true;
    static constexpr double surrogate_gradient_factor = 1.0;

    static double surrogate(double log_pi_theta) { return -log_pi_theta; }
    static double surrogate_derivative(double) { return -1.0; }

    double sample_value(double) const { return 0.0; }
    double sample_derivative(double) const { return 0.0; }
    double reference_sample_value(double log_pi_theta) const { return surrogate(log_pi_theta); }
    double reference_sample_derivative(double log_pi_theta) const {
        return surrogate_derivative(log_pi_theta);
    }

    double value(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return detail::forward_kl_exact::value(pi, mu);
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return detail::forward_kl_exact::gradient(pi, mu);
    }
    double stationarity(double u, double mu_i) const { return detail::forward_kl_exact::stationarity(u, mu_i); }
    double stationarity_slope(double u, double mu_i) const {
        return detail::forward_kl_exact::stationarity_slope(u, mu_i);
    }

    std::string name() const { return "forward_kl_direct"; }
    void validate(const char*) const {}
};

/// The paper's default forward-KL estimator.
using forward_kl = forward_kl_importance;

static_assert(Regularizer<forward_kl_importance>);
static_assert(Regularizer<forward_kl_direct>);
static_assert(!LogLinearRegularizer<forward_kl>);

}  // namespace rspo
