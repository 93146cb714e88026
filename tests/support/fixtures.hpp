#pragma once
// Shared test fixtures: random policies and games with fixed seeds, and finite differences.

#include <rspo/rspo.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <functional>

namespace rspo::test {

/// A random full-support distribution on n actions (entries ≥ floor before normalization).
inline Eigen::VectorXd random_distribution(std::size_t n, std::uint64_t seed, double floor = 0.05) {
    random_engine rng(seed);
    Eigen::VectorXd p(static_cast<Eigen::Index>(n));
    for (auto& v : p) v = floor + uniform01(rng);
    return p / p.sum();
}

/// max_i |v_i| (usable in generic lambdas without `.template`).
inline double max_abs(const Eigen::VectorXd& v) { return v.lpNorm<Eigen::Infinity>(); }

/// Central difference of f at x, step h: error O(h²·f''').
inline double central_difference(const std::function<double(double)>& f, double x, double h = 1e-6) {
    return (f(x + h) - f(x - h)) / (2.0 * h);
}

/// ∇_θ f(θ) by central differences.
inline Eigen::VectorXd numerical_gradient(const std::function<double(const Eigen::VectorXd&)>& f,
                                          const Eigen::VectorXd& theta, double h = 1e-6) {
    Eigen::VectorXd g(theta.size());
    for (Eigen::Index i = 0; i < theta.size(); ++i) {
        Eigen::VectorXd a = theta, b = theta;
        a[i] += h;
        b[i] -= h;
        g[i] = (f(a) - f(b)) / (2.0 * h);
    }
    return g;
}

/// The regularizers every generic test runs over, as a callable taking a visitor.
template <class Visitor>
void for_each_regularizer(Visitor&& visit) {
    visit("reverse_kl", reverse_kl{});
    visit("forward_kl", forward_kl{});
    visit("chi_squared", chi_squared{});
    visit("forward+reverse", 0.1 * forward_kl{} + 1.0 * reverse_kl{});
    visit("0.5*chi_squared+0.3*forward_kl", 0.5 * chi_squared{} + 0.3 * forward_kl{});
}

/// Forwards everything to R but hides log_linear_weight(), forcing the generic root-search path of
/// the proximal solver so it can be checked against the closed form.
template <Regularizer R>
struct generic_path {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = R::needs_reference_samples;
    R base{};
    double sample_value(double d) const { return base.sample_value(d); }
    double sample_derivative(double d) const { return base.sample_derivative(d); }
    double reference_sample_value(double x) const { return base.reference_sample_value(x); }
    double reference_sample_derivative(double x) const { return base.reference_sample_derivative(x); }
    double value(const Eigen::VectorXd& p, const Eigen::VectorXd& m) const { return base.value(p, m); }
    Eigen::VectorXd gradient(const Eigen::VectorXd& p, const Eigen::VectorXd& m) const {
        return base.gradient(p, m);
    }
    double stationarity(double u, double m) const { return base.stationarity(u, m); }
    double stationarity_slope(double u, double m) const { return base.stationarity_slope(u, m); }
    std::string name() const { return "generic(" + base.name() + ")"; }
    void validate(const char* f) const { base.validate(f); }
};

}  // namespace rspo::test
