#pragma once
// Pearson χ²(π‖μ) = Σ π_i²/μ_i − 1. Its sample surrogate exp(min(d, c)) has expected gradient ½∇χ².

#include <rspo/core/check.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace rspo {

struct chi_squared {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = false;
    static constexpr double surrogate_gradient_factor = 0.5;

    double clamp = 10.0;  ///< c in exp(min(d, c)); the published code uses 10

    double surrogate(double d) const { return std::exp(std::min(d, clamp)); }
    double surrogate_derivative(double d) const { return d <= clamp ? std::exp(d) : 0.0; }

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
            s += pi[i] * pi[i] / mu[i];
        }
        return s > 1.0 ? s - 1.0 : 0.0;  // χ² ≥ 0 (Cauchy–Schwarz); below is round-off
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return (2.0 * pi.array() / mu.array()).matrix();
    }
    double stationarity(double log_pi, double mu_i) const { return 2.0 * std::exp(log_pi) / mu_i; }
    double stationarity_slope(double log_pi, double mu_i) const {
        return 2.0 * std::exp(log_pi) / mu_i;
    }

    std::string name() const { return "chi_squared"; }
    void validate(const char* function) const { check_positive(function, "chi_squared.clamp", clamp); }
};

static_assert(Regularizer<chi_squared>);

}  // namespace rspo
