// Sample losses (docs/math §2–4): derivatives, the λ = 2ητ link to the exact step, and the sampled
// minimizer approaching the population one as K grows (tolerance from the asymptotic covariance).
#include "support/fixtures.hpp"

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <Eigen/Dense>

#include <cmath>
#include <functional>
#include <vector>

using namespace rspo;
using rspo::test::max_abs;
using rspo::test::numerical_gradient;
using rspo::test::random_distribution;

namespace {

std::vector<double> to_std(const Eigen::VectorXd& v) { return {v.data(), v.data() + v.size()}; }

/// A batch holding each action 0..n−1 once, under π_θ = softmax(θ), π_t, μ and win rates q.
struct tabular_batch {
    std::vector<double> theta_lp, t_lp, mu_lp, win, ref_lp;
    tabular_batch(const Eigen::VectorXd& theta, const Eigen::VectorXd& pi_t, const Eigen::VectorXd& mu,
                  const Eigen::VectorXd& q)
        : theta_lp(to_std(log_normalize(theta))), t_lp(to_std(log_of(pi_t))), mu_lp(to_std(log_of(mu))),
          win(to_std(q)), ref_lp(theta_lp) {}
    rspo_sample_batch view() const {
        return {theta_lp, t_lp, mu_lp, win, ref_lp};
    }
};

/// E[∇_θ L] for the loss over π_t's samples (weights w_y) and μ's samples (weights v_y), where the
/// batch holds every action once: the per-sample derivative is n·dL/dlogπ_θ(y).
Eigen::VectorXd weighted_gradient(const sample_loss& l, const Eigen::VectorXd& pi_theta,
                                  const Eigen::VectorXd& w, const Eigen::VectorXd& v) {
    const auto n = pi_theta.size();
    Eigen::VectorXd g = Eigen::VectorXd::Zero(n);
    for (Eigen::Index y = 0; y < n; ++y) {
        const Eigen::VectorXd score = Eigen::VectorXd::Unit(n, y) - pi_theta;  // ∇_θ log π_θ(y)
        g += w[y] * static_cast<double>(n) * l.d_log_pi_theta[static_cast<std::size_t>(y)] * score;
        if (!l.d_reference_log_pi_theta.empty())
            g += v[y] * static_cast<double>(n) * l.d_reference_log_pi_theta[static_cast<std::size_t>(y)] * score;
    }
    return g;
}

/// Minimizes φ ↦ f(φ) over ℝ^m by Newton's method with a finite-difference Hessian of the exact
/// gradient ∇f; the problems here are smooth and locally strongly convex.
Eigen::VectorXd newton_minimize(const std::function<Eigen::VectorXd(const Eigen::VectorXd&)>& grad,
                                Eigen::VectorXd phi) {
    for (int it = 0; it < 100; ++it) {
        const Eigen::VectorXd g = grad(phi);
        if (max_abs(g) < 1e-13) break;
        Eigen::MatrixXd H(phi.size(), phi.size());
        for (Eigen::Index j = 0; j < phi.size(); ++j) {
            Eigen::VectorXd a = phi, b = phi;
            a[j] += 1e-6;
            b[j] -= 1e-6;
            H.col(j) = (grad(a) - grad(b)) / 2e-6;
        }
        phi -= H.ldlt().solve(g);
    }
    return phi;
}

Eigen::VectorXd with_gauge(const Eigen::VectorXd& phi) {  // θ = (0, φ): softmax's gauge fixed
    Eigen::VectorXd theta(phi.size() + 1);
    theta << 0.0, phi;
    return theta;
}

}  // namespace

TEST_CASE("RSPO and INPO sample losses: derivatives match central differences", "[sample_losses]") {
    const std::vector<double> theta{-1.2, -0.4, -2.5, -0.9}, t{-1.0, -0.7, -2.0, -1.1},
        mu{-1.5, -0.3, -2.2, -0.6}, win{0.2, 0.9, 0.5, 0.61}, ref{-0.8, -1.9, -3.0};
    const auto check_rspo = [&](auto algorithm) {
        INFO(algorithm.name());
        const auto loss_at = [&](const std::vector<double>& th, const std::vector<double>& rf) {
            return algorithm.loss({th, t, mu, win, rf}).value;
        };
        const auto l = algorithm.loss({theta, t, mu, win, ref});
        for (std::size_t i = 0; i < theta.size(); ++i) {
            auto a = theta, b = theta;
            a[i] += 1e-6;
            b[i] -= 1e-6;
            CHECK(l.d_log_pi_theta[i] == Catch::Approx((loss_at(a, ref) - loss_at(b, ref)) / 2e-6).margin(1e-7));
        }
        for (std::size_t j = 0; j < ref.size(); ++j) {
            auto a = ref, b = ref;
            a[j] += 1e-6;
            b[j] -= 1e-6;
            CHECK(l.d_reference_log_pi_theta[j] ==
                  Catch::Approx((loss_at(theta, a) - loss_at(theta, b)) / 2e-6).margin(1e-7));
        }
    };
    rspo::test::for_each_regularizer(
        [&](const char*, auto r) { check_rspo(make_rspo(r, {.eta = 2.0, .tau = 0.3})); });
    check_rspo(make_rspo(0.4 * forward_kl_direct{} + reverse_kl{}, {.eta = 2.0, .tau = 0.3}));
    check_rspo(sppo{.eta = 3.0});

    const inpo method{.eta = 1.5, .tau = 0.4};
    const std::vector<double> lt{-1.0, -2.0}, ll{-0.5, -1.5}, tw{-1.1, -1.7}, tl{-0.6, -1.2},
        mw{-0.9, -2.2}, ml{-0.8, -1.0};
    const auto value = [&](const std::vector<double>& w, const std::vector<double>& l) {
        return method.loss({w, l, tw, tl, mw, ml}).value;
    };
    const auto pl = method.loss({lt, ll, tw, tl, mw, ml});
    for (std::size_t i = 0; i < 2; ++i) {
        auto a = lt, b = lt, c = ll, d = ll;
        a[i] += 1e-6;
        b[i] -= 1e-6;
        c[i] += 1e-6;
        d[i] -= 1e-6;
        CHECK(pl.d_winner_log_pi_theta[i] == Catch::Approx((value(a, ll) - value(b, ll)) / 2e-6).margin(1e-7));
        CHECK(pl.d_loser_log_pi_theta[i] == Catch::Approx((value(lt, c) - value(lt, d)) / 2e-6).margin(1e-7));
    }
}

TEST_CASE("RSPO's sample loss with tau = 0 is SPPO's, bit for bit", "[sample_losses]") {
    const std::vector<double> theta{-1.2, -0.4, -2.5}, t{-1.0, -0.7, -2.0}, mu{-1.5, -0.3, -2.2},
        win{0.2, 0.9, 0.5};
    const auto base = sppo{.eta = 4.0}.loss({theta, t, {}, win});
    // The paper's loss written out.
    double expected = 0.0;
    for (std::size_t i = 0; i < 3; ++i) expected += std::pow(theta[i] - t[i] - 4.0 * (win[i] - 0.5), 2) / 3.0;
    CHECK(base.value == Catch::Approx(expected).epsilon(1e-15));
    rspo::test::for_each_regularizer([&](const char* name, auto r) {
        INFO(name);
        const auto l = make_rspo(r, {.eta = 4.0, .tau = 0.0}).loss({theta, t, mu, win});
        CHECK(l.value == base.value);
        CHECK(l.d_log_pi_theta == base.d_log_pi_theta);
    });
}

TEST_CASE("the sample loss's expected gradient at pi_theta = pi_t is -2 grad of the proximal objective",
          "[sample_losses]") {
    // ∇E[L](θ = log π_t) = −2∇F with F(π) = η⟨π, Pπ_t⟩ − ητR(π, μ) − KL(π‖π_t): λ = 2ητ and the
    // divergence weights make a sampled regularizer mean what it means on the game.
    const auto game = games::biased_rock_paper_scissors();
    const Eigen::VectorXd pi_t = random_distribution(3, 51), mu = random_distribution(3, 52);
    const Eigen::VectorXd q = game.preferences() * pi_t;
    const Eigen::VectorXd theta = pi_t.array().log();
    const double eta = 1.3, tau = 0.7;
    const auto check = [&](auto r) {
        INFO(r.name());
        const auto algorithm = make_rspo(r, {.eta = eta, .tau = tau});
        const tabular_batch batch(theta, pi_t, mu, q);
        const Eigen::VectorXd expected_gradient =
            weighted_gradient(algorithm.loss(batch.view()), pi_t, pi_t, mu);
        const Eigen::VectorXd objective_gradient = numerical_gradient(
            [&](const Eigen::VectorXd& th) {
                const Eigen::VectorXd p = softmax(th);
                return eta * p.dot(q) - eta * tau * r.value(p, mu) - reverse_kl{}.value(p, pi_t);
            },
            theta);
        CHECK(max_abs(expected_gradient + 2.0 * objective_gradient) < 1e-8);
    };
    rspo::test::for_each_regularizer([&](const char*, auto r) { check(r); });
    check(forward_kl_direct{});
    check(0.3 * forward_kl_direct{} + 0.6 * chi_squared{});
}

TEST_CASE("minimizing the sampled RSPO loss approaches the exact step as K grows", "[sample_losses]") {
    const auto game = games::biased_rock_paper_scissors();
    const Eigen::VectorXd pi_t = random_distribution(3, 61), mu = random_distribution(3, 62);
    const Eigen::VectorXd q = game.preferences() * pi_t;  // P(y ≻ π_t), exact: isolates y's sampling
    const auto algorithm = make_rspo(0.1 * forward_kl{} + 1.0 * reverse_kl{}, {.eta = 0.5, .tau = 0.4});

    // Gradient in φ (θ = (0, φ)) of Σ_y w_y ℓ(y): the empirical loss (w = counts/K) or the
    // population loss (w = π_t).
    const auto gradient_for = [&](const Eigen::VectorXd& w) {
        return [&, w](const Eigen::VectorXd& phi) -> Eigen::VectorXd {
            const Eigen::VectorXd theta = with_gauge(phi);
            const tabular_batch batch(theta, pi_t, mu, q);
            return weighted_gradient(algorithm.loss(batch.view()), softmax(theta), w, w).tail(2);
        };
    };
    const Eigen::VectorXd phi_pop = newton_minimize(gradient_for(pi_t), Eigen::VectorXd::Zero(2));
    const Eigen::VectorXd log_pop = log_normalize(with_gauge(phi_pop));

    // The population minimizer of the square loss is the exact proximal step up to the square
    // loss's approximation log Z ≈ η/2 (docs/math §2): close for this η, not equal.
    tabular_iterate it{log_of(pi_t), log_of(mu), 0};
    algorithm.step(game, it);
    const double bias = max_abs(log_pop - it.log_policy);
    INFO("population minimizer vs exact step: " << bias);
    CHECK(bias < 0.01);  // measured 0.0023 at η = 0.5

    // Asymptotic covariance of the empirical minimizer: H⁻¹ Σ H⁻¹ / K, with H the population
    // Hessian and Σ the covariance of the per-sample gradient at φ_pop.
    const auto pop_grad = gradient_for(pi_t);
    Eigen::MatrixXd H(2, 2), Sigma = Eigen::MatrixXd::Zero(2, 2);
    for (Eigen::Index j = 0; j < 2; ++j) {
        Eigen::VectorXd a = phi_pop, b = phi_pop;
        a[j] += 1e-6;
        b[j] -= 1e-6;
        H.col(j) = (pop_grad(a) - pop_grad(b)) / 2e-6;
    }
    for (Eigen::Index y = 0; y < 3; ++y) {
        const Eigen::VectorXd g = gradient_for(Eigen::VectorXd::Unit(3, y))(phi_pop);
        Sigma += pi_t[y] * g * g.transpose();
    }
    const Eigen::MatrixXd Hinv = H.inverse();
    const Eigen::MatrixXd unit_covariance = Hinv * Sigma * Hinv.transpose();

    random_engine rng(2024);
    const auto pi_t_policy = tabular_policy::from_probabilities(pi_t);
    for (std::size_t k : {1000u, 10000u, 100000u}) {
        for (int repeat = 0; repeat < 5; ++repeat) {
            Eigen::VectorXd counts = Eigen::VectorXd::Zero(3);
            for (std::size_t s = 0; s < k; ++s) counts[static_cast<Eigen::Index>(pi_t_policy.sample({}, rng))] += 1.0;
            const Eigen::VectorXd phi_k = newton_minimize(gradient_for(counts / static_cast<double>(k)), phi_pop);
            for (Eigen::Index j = 0; j < 2; ++j) {
                const double sd = std::sqrt(unit_covariance(j, j) / static_cast<double>(k));
                INFO("K = " << k << " component " << j << " sd " << sd);
                CHECK(std::abs(phi_k[j] - phi_pop[j]) < 5.0 * sd);  // a 5σ band shrinking as 1/√K
            }
            const Eigen::VectorXd log_k = log_normalize(with_gauge(phi_k));
            CHECK(max_abs(log_k - it.log_policy) <
                  bias + 10.0 * std::sqrt(unit_covariance.diagonal().maxCoeff() / static_cast<double>(k)));
        }
    }
}

TEST_CASE("INPO's population minimizer with preference-drawn order is its exact step", "[sample_losses]") {
    const auto game = games::random_skew_symmetric(4, 71);
    const Eigen::MatrixXd& P = game.preferences();
    const Eigen::VectorXd pi_t = random_distribution(4, 72), mu = random_distribution(4, 73);
    const inpo method{.eta = 0.8, .tau = 0.5};

    // E over y, y′ ∼ π_t with (y_w, y_l) = (y, y′) w.p. P(y ≻ y′): pair (a, b) as (winner, loser)
    // has weight π_t(a) π_t(b) P(a ≻ b).
    const auto gradient = [&](const Eigen::VectorXd& phi, bool drawn) -> Eigen::VectorXd {
        const Eigen::VectorXd lp = log_normalize(with_gauge(phi));
        const Eigen::VectorXd p = exp_of(lp);
        const Eigen::VectorXd q = P * pi_t;
        Eigen::VectorXd g = Eigen::VectorXd::Zero(4);
        for (Eigen::Index a = 0; a < 4; ++a)
            for (Eigen::Index b = 0; b < 4; ++b) {
                if (a == b) continue;
                // drawn: order from the preference; otherwise the better-q sample always wins.
                const double weight = pi_t[a] * pi_t[b] * (drawn ? P(a, b) : (q[a] > q[b] ? 1.0 : 0.0));
                const std::vector<double> w{lp[a]}, l{lp[b]}, tw{std::log(pi_t[a])}, tl{std::log(pi_t[b])},
                    mw{std::log(mu[a])}, ml{std::log(mu[b])};
                const auto loss = method.loss({w, l, tw, tl, mw, ml});
                g += weight * (loss.d_winner_log_pi_theta[0] * (Eigen::VectorXd::Unit(4, a) - p) +
                               loss.d_loser_log_pi_theta[0] * (Eigen::VectorXd::Unit(4, b) - p));
            }
        return g.tail(3);
    };
    tabular_iterate it{log_of(pi_t), log_of(mu), 0};
    method.step(game, it);
    const Eigen::VectorXd drawn = log_normalize(with_gauge(
        newton_minimize([&](const Eigen::VectorXd& phi) { return gradient(phi, true); }, Eigen::VectorXd::Zero(3))));
    CHECK(max_abs(drawn - it.log_policy) < 1e-8);
    const Eigen::VectorXd argmax = log_normalize(with_gauge(
        newton_minimize([&](const Eigen::VectorXd& phi) { return gradient(phi, false); }, Eigen::VectorXd::Zero(3))));
    CHECK(max_abs(argmax - it.log_policy) > 1e-2);  // the equivalence needs the drawn order
}
