// Regularizers: surrogate derivatives, the surrogate-gradient factors (2, 1, ½) of docs/math §3,
// exact values and gradients, the stationarity terms the proximal solver uses, and composition.
#include "support/fixtures.hpp"

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>

using namespace rspo;
using rspo::test::central_difference;
using rspo::test::numerical_gradient;
using rspo::test::max_abs;
using rspo::test::random_distribution;

namespace {

/// E_{y∼π}[f'(d_y) ∇_θ log π_θ(y)] at π_θ = softmax(θ) = π, where ∇_θ log π_θ(y) = e_y − π.
template <class F>
Eigen::VectorXd expected_sample_gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd& weights,
                                         F per_sample_derivative) {
    Eigen::VectorXd g = Eigen::VectorXd::Zero(pi.size());
    for (Eigen::Index y = 0; y < pi.size(); ++y)
        g += weights[y] * per_sample_derivative(y) *
             (Eigen::VectorXd::Unit(pi.size(), y) - pi);
    return g;
}

}  // namespace

TEST_CASE("sample surrogates: derivatives match central differences", "[regularizers]") {
    rspo::test::for_each_regularizer([](const char* name, auto r) {
        INFO(name);
        for (double d : {-3.0, -0.7, 0.0, 0.4, 2.5}) {
            INFO("d = " << d);
            const double fd = central_difference([&](double x) { return r.sample_value(x); }, d);
            CHECK(r.sample_derivative(d) == Catch::Approx(fd).epsilon(1e-7).margin(1e-9));
            const double fd_ref =
                central_difference([&](double x) { return r.reference_sample_value(x); }, d - 3.0);
            CHECK(r.reference_sample_derivative(d - 3.0) == Catch::Approx(fd_ref).margin(1e-8));
        }
    });
    const forward_kl_direct direct;
    CHECK(direct.reference_sample_derivative(-2.0) ==
          Catch::Approx(central_difference([&](double x) { return direct.reference_sample_value(x); }, -2.0)));
}

TEST_CASE("paper surrogates have expected gradients c * grad D with c = 2, 1, 1/2", "[regularizers]") {
    // At π_θ = π_t (θ = log π_t), E_{y∼π_t}[∇ surrogate(d_y)] = c ∇_θ D(softmax(θ), μ).
    const Eigen::VectorXd pi = random_distribution(5, 11);
    const Eigen::VectorXd mu = random_distribution(5, 12);
    const Eigen::VectorXd theta = pi.array().log();
    const Eigen::VectorXd d = (pi.array().log() - mu.array().log()).matrix();

    const auto check = [&](auto r, double factor) {
        INFO(r.name());
        const Eigen::VectorXd sampled =
            expected_sample_gradient(pi, pi, [&](Eigen::Index y) { return r.surrogate_derivative(d[y]); });
        const Eigen::VectorXd exact = numerical_gradient(
            [&](const Eigen::VectorXd& t) { return r.value(softmax(t), mu); }, theta);
        CHECK(max_abs(sampled - factor * exact) < 1e-8);
        // sample_value divides the factor out: its expected gradient is ∇D itself.
        const Eigen::VectorXd divergence_weighted =
            expected_sample_gradient(pi, pi, [&](Eigen::Index y) { return r.sample_derivative(d[y]); });
        CHECK(max_abs(divergence_weighted - exact) < 1e-8);
        CHECK(decltype(r)::surrogate_gradient_factor == factor);
    };
    check(reverse_kl{}, 2.0);
    check(forward_kl_importance{}, 1.0);
    check(chi_squared{}, 0.5);

    // Direct forward KL: E_{y′∼μ}[∇(−log π_θ(y′))] = ∇KL(μ‖π_θ).
    const forward_kl_direct direct;
    const Eigen::VectorXd on_reference = expected_sample_gradient(
        pi, mu, [&](Eigen::Index y) { return direct.reference_sample_derivative(theta[y]); });
    const Eigen::VectorXd exact = numerical_gradient(
        [&](const Eigen::VectorXd& t) { return direct.value(softmax(t), mu); }, theta);
    CHECK(max_abs(on_reference - exact) < 1e-8);
}

TEST_CASE("clamped surrogates stop at the clamp", "[regularizers]") {
    const forward_kl_importance fkl{.clamp = 2.0};
    CHECK(fkl.surrogate(-5.0) == Catch::Approx(std::exp(2.0)));  // −d = 5 > clamp
    CHECK(fkl.surrogate_derivative(-5.0) == 0.0);
    CHECK(fkl.surrogate_derivative(-1.0) == Catch::Approx(-std::exp(1.0)));
    const chi_squared chi{.clamp = 1.5};
    CHECK(chi.surrogate(3.0) == Catch::Approx(std::exp(1.5)));
    CHECK(chi.surrogate_derivative(3.0) == 0.0);
    CHECK(chi.surrogate_derivative(1.0) == Catch::Approx(std::exp(1.0)));
}

TEST_CASE("exact values: nonnegative, zero at mu, known closed forms", "[regularizers]") {
    const Eigen::VectorXd pi = random_distribution(6, 3);
    const Eigen::VectorXd mu = random_distribution(6, 4);
    rspo::test::for_each_regularizer([&](const char* name, auto r) {
        INFO(name);
        CHECK(r.value(pi, mu) > 0.0);
        CHECK(r.value(mu, mu) == Catch::Approx(0.0).margin(1e-15));
        CHECK(r.value(mu, mu) >= 0.0);
    });
    double rkl = 0.0, fkl = 0.0, chi = 0.0;
    for (Eigen::Index i = 0; i < 6; ++i) {
        rkl += pi[i] * std::log(pi[i] / mu[i]);
        fkl += mu[i] * std::log(mu[i] / pi[i]);
        chi += pi[i] * pi[i] / mu[i];
    }
    CHECK(reverse_kl{}.value(pi, mu) == Catch::Approx(rkl).epsilon(1e-14));
    CHECK(forward_kl{}.value(pi, mu) == Catch::Approx(fkl).epsilon(1e-14));
    CHECK(chi_squared{}.value(pi, mu) == Catch::Approx(chi - 1.0).epsilon(1e-14));
    // Support: KL(π‖μ) infinite where π > 0 = μ; forward KL infinite where μ > 0 = π.
    Eigen::VectorXd holed = mu;
    holed[0] = 0.0;
    holed /= holed.sum();
    CHECK(std::isinf(reverse_kl{}.value(pi, holed)));
    CHECK(std::isinf(forward_kl{}.value(holed, pi)));
    CHECK(std::isinf(chi_squared{}.value(pi, holed)));
    CHECK(std::isfinite(reverse_kl{}.value(holed, pi)));
}

TEST_CASE("exact gradients and stationarity terms match finite differences", "[regularizers]") {
    const Eigen::VectorXd pi = random_distribution(5, 7);
    const Eigen::VectorXd mu = random_distribution(5, 8);
    rspo::test::for_each_regularizer([&](const char* name, auto r) {
        INFO(name);
        // On the positive orthant (no renormalization): ∂R/∂π_i.
        const Eigen::VectorXd fd =
            numerical_gradient([&](const Eigen::VectorXd& p) { return r.value(p, mu); }, pi, 1e-7);
        const Eigen::VectorXd g = r.gradient(pi, mu);
        CHECK(max_abs(g - fd) < 1e-6);
        for (Eigen::Index i = 0; i < 5; ++i) {
            const double u = std::log(pi[i]);
            CHECK(r.stationarity(u, mu[i]) == Catch::Approx(g[i]).epsilon(1e-12));
            const double slope = central_difference([&](double x) { return r.stationarity(x, mu[i]); }, u);
            CHECK(r.stationarity_slope(u, mu[i]) == Catch::Approx(slope).epsilon(1e-7));
            CHECK(r.stationarity_slope(u, mu[i]) >= 0.0);
        }
    });
}

TEST_CASE("composition: divergence weights add, multiply and convert from surrogate weights",
          "[regularizers]") {
    const Eigen::VectorXd pi = random_distribution(4, 21);
    const Eigen::VectorXd mu = random_distribution(4, 22);
    const auto combined = 0.1 * forward_kl{} + 1.0 * reverse_kl{};
    CHECK(combined.value(pi, mu) ==
          Catch::Approx(0.1 * forward_kl{}.value(pi, mu) + reverse_kl{}.value(pi, mu)).epsilon(1e-14));
    CHECK(combined.name() == "0.1*forward_kl_importance+1*reverse_kl");
    STATIC_REQUIRE(!decltype(combined)::needs_reference_samples);
    STATIC_REQUIRE(decltype(0.5 * forward_kl_direct{} + reverse_kl{})::needs_reference_samples);

    const auto nested = 2.0 * (0.25 * reverse_kl{});
    STATIC_REQUIRE(std::is_same_v<decltype(nested), const weighted<reverse_kl>>);
    CHECK(nested.weight == 0.5);

    // The published best: surrogate weights forward 0.1, reverse 0.5, i.e. divergence weights
    // 0.1·KL(μ‖π) + 1.0·KL(π‖μ); and the divergence-weighted sample terms reproduce the raw ones.
    const auto published = with_surrogate_weight(0.1, forward_kl{}) + with_surrogate_weight(0.5, reverse_kl{});
    CHECK(published.first.weight == 0.1);
    CHECK(published.second.weight == 1.0);
    CHECK(with_surrogate_weight(2.0, chi_squared{}).weight == 1.0);
    CHECK(surrogate_weight(with_surrogate_weight(0.5, reverse_kl{})) == 0.5);
    for (double d : {-1.5, 0.3, 2.0})
        CHECK(published.sample_value(d) ==
              Catch::Approx(0.1 * forward_kl{}.surrogate(d) + 0.5 * reverse_kl::surrogate(d)).epsilon(1e-14));
    CHECK(published.value(pi, mu) == Catch::Approx(combined.value(pi, mu)).epsilon(1e-14));
}

TEST_CASE("weights are checked where they are made", "[regularizers]") {
    CHECK_THROWS_AS(-0.1 * reverse_kl{}, domain_error);
    CHECK_THROWS_AS(std::nan("") * forward_kl{}, domain_error);
    CHECK_THROWS_AS(with_surrogate_weight(-1.0, chi_squared{}), domain_error);
    CHECK_THROWS_AS((forward_kl{.clamp = 0.0}.validate("test")), domain_error);
    CHECK_THROWS_AS((chi_squared{.clamp = std::nan("")}.validate("test")), domain_error);
    CHECK_NOTHROW((0.0 * reverse_kl{}).validate("test"));
}
