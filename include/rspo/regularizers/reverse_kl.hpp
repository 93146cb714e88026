#pragma once
// Reverse KL, KL(π‖μ) = Σ π_i log(π_i/μ_i): the NLHF / MMD regularizer, 1-strongly convex relative
// to negative entropy, hence last-iterate convergence of the proximal iteration (docs/math §3).

#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <cmath>
#include <limits>
#include <string>

namespace rspo {

struct reverse_kl {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = false;
    /// E_{y∼π}[∇ d²] = 2∇KL(π‖μ): the paper's surrogate d² over-weights by this factor.
    static constexpr double surrogate_gradient_factor = 2.0;

    /// The paper's per-sample surrogate, d = log π_θ(y) − log μ(y).
    static double surrogate(double d) { return d * d; }
    static double surrogate_derivative(double d) { return 2.0 * d; }

    double sample_value(double d) const { return surrogate(d) / surrogate_gradient_factor; }
    double sample_derivative(double d) const {
        return surrogate_derivative(d) / surrogate_gradient_factor;
    }
    double reference_sample_value(double) const { return 0.0; }
    double reference_sample_derivative(double) const { return 0.0; }

    double value(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        double s = 0.0;
        for (Eigen::Index i = 0; i < pi.size(); ++i) {
            if (pi[i] <= 0.0) continue;
            if (mu[i] <= 0.0) return std::numeric_limits<double>::infinity();
            s += pi[i] * std::log(pi[i] / mu[i]);
        }
        return s > 0.0 ? s : 0.0;  // KL ≥ 0; a negative sum is round-off
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return (pi.array().log() - mu.array().log() + 1.0).matrix();
    }
    double stationarity(double log_pi, double mu_i) const { return log_pi - std::log(mu_i) + 1.0; }
    double stationarity_slope(double, double) const { return 1.0; }
    double log_linear_weight() const { return 1.0; }

    std::string name() const { return "reverse_kl"; }
    void validate(const char*) const {}
};

static_assert(LogLinearRegularizer<reverse_kl>);

}  // namespace rspo
