#pragma once
// Regularizers compose as values: `0.1 * forward_kl{} + 1.0 * reverse_kl{}` is a regularizer.
// Weights are divergence weights (R = 0.1·KL(μ‖π) + 1.0·KL(π‖μ)); with_surrogate_weight converts
// from the paper's surrogate weights. See docs/regularizers.md.

#include <rspo/core/check.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <string>
#include <utility>

namespace rspo {

/// w · R for a divergence weight w ≥ 0.
template <Regularizer R>
struct weighted {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = R::needs_reference_samples;

    double weight = 1.0;
    R base{};

    double sample_value(double d) const { return weight * base.sample_value(d); }
    double sample_derivative(double d) const { return weight * base.sample_derivative(d); }
    double reference_sample_value(double x) const { return weight * base.reference_sample_value(x); }
    double reference_sample_derivative(double x) const {
        return weight * base.reference_sample_derivative(x);
    }
    double value(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return weight == 0.0 ? 0.0 : weight * base.value(pi, mu);  // 0·∞ is 0 here
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return weight * base.gradient(pi, mu);
    }
    double stationarity(double log_pi, double mu_i) const {
        return weight * base.stationarity(log_pi, mu_i);
    }
    double stationarity_slope(double log_pi, double mu_i) const {
        return weight * base.stationarity_slope(log_pi, mu_i);
    }
    double log_linear_weight() const
        requires LogLinearRegularizer<R>
    {
        return weight * base.log_linear_weight();
    }

    std::string name() const { return detail::format_weight(weight) + "*" + base.name(); }
    void validate(const char* function) const {
        check_non_negative(function, "weight of " + base.name(), weight);
        base.validate(function);
    }
};

/// A + B.
template <Regularizer A, Regularizer B>
struct regularizer_sum {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples =
        A::needs_reference_samples || B::needs_reference_samples;

    A first{};
    B second{};

    double sample_value(double d) const { return first.sample_value(d) + second.sample_value(d); }
    double sample_derivative(double d) const {
        return first.sample_derivative(d) + second.sample_derivative(d);
    }
    double reference_sample_value(double x) const {
        return first.reference_sample_value(x) + second.reference_sample_value(x);
    }
    double reference_sample_derivative(double x) const {
        return first.reference_sample_derivative(x) + second.reference_sample_derivative(x);
    }
    double value(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return first.value(pi, mu) + second.value(pi, mu);
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) const {
        return first.gradient(pi, mu) + second.gradient(pi, mu);
    }
    double stationarity(double log_pi, double mu_i) const {
        return first.stationarity(log_pi, mu_i) + second.stationarity(log_pi, mu_i);
    }
    double stationarity_slope(double log_pi, double mu_i) const {
        return first.stationarity_slope(log_pi, mu_i) + second.stationarity_slope(log_pi, mu_i);
    }
    double log_linear_weight() const
        requires(LogLinearRegularizer<A> && LogLinearRegularizer<B>)
    {
        return first.log_linear_weight() + second.log_linear_weight();
    }

    std::string name() const { return first.name() + "+" + second.name(); }
    void validate(const char* function) const {
        first.validate(function);
        second.validate(function);
    }
};

/// w · R with a divergence weight; a negative or non-finite weight throws rspo::domain_error.
template <Regularizer R>
weighted<R> operator*(double weight, R regularizer) {
    check_non_negative("rspo::operator*(weight, regularizer)", "weight", weight);
    return weighted<R>{weight, std::move(regularizer)};
}

/// Weights multiply rather than nest.
template <Regularizer R>
weighted<R> operator*(double weight, weighted<R> regularizer) {
    check_non_negative("rspo::operator*(weight, regularizer)", "weight", weight);
    return weighted<R>{weight * regularizer.weight, std::move(regularizer.base)};
}

template <Regularizer A, Regularizer B>
regularizer_sum<A, B> operator+(A a, B b) {
    return regularizer_sum<A, B>{std::move(a), std::move(b)};
}

/// The paper's weights multiply the raw surrogates (d², exp(−d), exp(d)); their expected gradients
/// are c·∇D with c = 2, 1, ½. This converts a surrogate weight into the divergence weight rspo uses:
/// with_surrogate_weight(0.5, reverse_kl{}) is 1.0 * reverse_kl{}.
template <Regularizer R>
    requires requires { R::surrogate_gradient_factor; }
weighted<R> with_surrogate_weight(double surrogate_weight, R regularizer) {
    check_non_negative("rspo::with_surrogate_weight", "surrogate_weight", surrogate_weight);
    return weighted<R>{surrogate_weight * R::surrogate_gradient_factor, std::move(regularizer)};
}

/// The surrogate weight (the paper's λ-relative weight) that a divergence weight corresponds to.
template <Regularizer R>
    requires requires { R::surrogate_gradient_factor; }
double surrogate_weight(const weighted<R>& regularizer) {
    return regularizer.weight / R::surrogate_gradient_factor;
}

}  // namespace rspo
