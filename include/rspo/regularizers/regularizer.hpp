#pragma once
// The Regularizer concept: a divergence R(π, μ) ≥ 0 toward the reference policy μ, usable both in
// sampled training (per-sample surrogates) and on tabular problems (exact value, gradient and the
// term it adds to a proximal step's stationarity condition). See docs/regularizers.md.

#include <Eigen/Core>

#include <concepts>
#include <string>

namespace rspo {

/// Opt-in tag: a type is a Regularizer only if it says so with
/// `using regularizer_category = rspo::regularizer_tag;`, so a type that merely has the right member
/// names is not taken by accident.
struct regularizer_tag {};

// clang-format off
/// Requirements the compiler checks are spelled out below. Those it cannot check (test them with
/// rspo::check_regularizer):
///  1. value(π, μ) ≥ 0 and value(μ, μ) = 0; value is convex in π.
///  2. gradient(π, μ)_i = ∂value/∂π_i (as a function on the positive orthant).
///  3. stationarity(log π_i, μ_i) = ∂value/∂π_i for separable R, and stationarity_slope is its
///     derivative with respect to log π_i, ≥ 0 (the proximal and best-response solvers rely on
///     monotonicity in log π_i).
///  4. Weights are *divergence* weights: for d = log π_θ(y) − log μ(y) with y ∼ π_t and y′ ∼ μ,
///     E[∇ sample_value(d)] + E[∇ reference_sample_value(log π_θ(y′))] = ∇R(π_θ, μ) at π_θ = π_t,
///     where ∇ acts on π_θ through log π_θ. The paper's raw surrogates carry extra factors
///     (2 for reverse KL, ½ for χ²); sample_value has them divided out.
///  5. sample_derivative(d) = d sample_value/d d, and likewise for the reference-sample pair.
///  6. validate(function) throws rspo::domain_error naming the bad parameter.
template <class R>
concept Regularizer =
    std::copy_constructible<R> &&
    requires { typename R::regularizer_category; } &&
    std::derived_from<typename R::regularizer_category, regularizer_tag> &&
    requires { { R::needs_reference_samples } -> std::convertible_to<bool>; } &&
    requires(const R& r, double x, const Eigen::VectorXd& pi, const Eigen::VectorXd& mu,
             const char* function) {
        { r.sample_value(x) } -> std::convertible_to<double>;
        { r.sample_derivative(x) } -> std::convertible_to<double>;
        { r.reference_sample_value(x) } -> std::convertible_to<double>;
        { r.reference_sample_derivative(x) } -> std::convertible_to<double>;
        { r.value(pi, mu) } -> std::convertible_to<double>;
        { r.gradient(pi, mu) } -> std::convertible_to<Eigen::VectorXd>;
        { r.stationarity(x, x) } -> std::convertible_to<double>;
        { r.stationarity_slope(x, x) } -> std::convertible_to<double>;
        { r.name() } -> std::convertible_to<std::string>;
        r.validate(function);
    };
// clang-format on

/// A regularizer whose stationarity term is κ·(log π_i − log μ_i + 1), i.e. κ·KL(π‖μ) (possibly
/// κ = 0): the proximal step then has a closed form instead of a root search.
template <class R>
concept LogLinearRegularizer = Regularizer<R> && requires(const R& r) {
    { r.log_linear_weight() } -> std::convertible_to<double>;
};

}  // namespace rspo
