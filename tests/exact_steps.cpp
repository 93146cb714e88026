// Exact tabular steps (docs/math §4): KKT conditions, the closed forms, and the identities between
// methods (RSPO with τ = 0 is SPPO; INPO is MMD with a rescaled step; MPO's magnet resets).
#include "support/fixtures.hpp"

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>

using namespace rspo;
using rspo::test::max_abs;
using rspo::test::random_distribution;

namespace {

struct step_case {
    preference_game game;
    Eigen::VectorXd pi_t;
    Eigen::VectorXd mu;
};

std::vector<step_case> step_cases() {
    return {
        {games::biased_rock_paper_scissors(), random_distribution(3, 1), random_distribution(3, 2)},
        {games::random_skew_symmetric(6, 5), random_distribution(6, 3), random_distribution(6, 4)},
        {games::rock_paper_scissors(), random_distribution(3, 9, 0.001), Eigen::VectorXd::Constant(3, 1.0 / 3)},
    };
}

template <TabularAlgorithm A>
Eigen::VectorXd log_step(const A& algorithm, const step_case& c, std::size_t t = 0) {
    tabular_iterate it{c.pi_t.array().log(), c.mu.array().log(), t};
    algorithm.step(c.game, it);
    return it.log_policy;
}

/// Spread over i of  log π'_i + ητ R'_i(π') − η q_i − log π_t,i : the proximal step's
/// stationarity condition holds iff this is the same constant ν for every i.
template <Regularizer R>
double kkt_spread(const Eigen::VectorXd& log_next, const step_case& c, double eta, double tau, const R& r) {
    const Eigen::VectorXd q = c.game.preferences() * c.pi_t;
    Eigen::VectorXd v(log_next.size());
    for (Eigen::Index i = 0; i < v.size(); ++i)
        v[i] = log_next[i] + eta * tau * r.stationarity(log_next[i], c.mu[i]) - eta * q[i] -
               std::log(c.pi_t[i]);
    return v.maxCoeff() - v.minCoeff();
}

}  // namespace

TEST_CASE("RSPO exact step satisfies its KKT conditions to 1e-10", "[exact_steps]") {
    for (const auto& c : step_cases()) {
        INFO(c.game.name());
        rspo::test::for_each_regularizer([&](const char* name, auto r) {
            INFO(name);
            for (double eta : {0.05, 1.0, 20.0})
                for (double tau : {0.01, 0.5, 3.0}) {
                    INFO("eta " << eta << " tau " << tau);
                    const auto log_next = log_step(make_rspo(r, {.eta = eta, .tau = tau}), c);
                    CHECK(std::abs(log_next.array().exp().sum() - 1.0) < 1e-14);
                    CHECK(kkt_spread(log_next, c, eta, tau, r) < 1e-10);
                }
        });
    }
}

TEST_CASE("RSPO exact step is the maximizer of the proximal objective", "[exact_steps]") {
    // F(π) = η⟨π, q⟩ − ητ R(π, μ) − KL(π‖π_t) is strictly concave; random feasible perturbations
    // of the step must not increase it.
    const auto c = step_cases()[1];
    const double eta = 0.7, tau = 0.4;
    const Eigen::VectorXd q = c.game.preferences() * c.pi_t;
    rspo::test::for_each_regularizer([&](const char* name, auto r) {
        INFO(name);
        const auto objective = [&](const Eigen::VectorXd& p) {
            return eta * p.dot(q) - eta * tau * r.value(p, c.mu) - reverse_kl{}.value(p, c.pi_t);
        };
        const Eigen::VectorXd best = log_step(make_rspo(r, {.eta = eta, .tau = tau}), c).array().exp();
        random_engine rng(99);
        for (int k = 0; k < 50; ++k) {
            Eigen::VectorXd dir(best.size());
            for (auto& v : dir) v = uniform01(rng) - 0.5;
            dir.array() -= dir.mean();
            const Eigen::VectorXd other = best + 1e-3 * dir;
            CHECK(objective(other) < objective(best));
        }
    });
}

TEST_CASE("RSPO with tau = 0 reproduces SPPO's multiplicative-weights step exactly", "[exact_steps]") {
    for (const auto& c : step_cases()) {
        INFO(c.game.name());
        const double eta = 0.8;
        // The paper's formula written out: log π_{t+1} = log π_t + η P π_t − log Z.
        const Eigen::VectorXd mwu = log_normalize(c.pi_t.array().log().matrix() + eta * (c.game.preferences() * c.pi_t));
        const Eigen::VectorXd sppo_step = log_step(sppo{.eta = eta}, c);
        CHECK(max_abs(sppo_step - mwu) < 1e-14);
        rspo::test::for_each_regularizer([&](const char* name, auto r) {
            INFO(name);
            const auto log_next = log_step(make_rspo(r, {.eta = eta, .tau = 0.0}), c);
            CHECK(max_abs(log_next - sppo_step) < 1e-14);
        });
    }
}

TEST_CASE("MMD step: the closed form, and the generic root search agrees with it", "[exact_steps]") {
    for (const auto& c : step_cases()) {
        INFO(c.game.name());
        const double eta = 0.3, tau = 0.9;
        const Eigen::VectorXd q = c.game.preferences() * c.pi_t;
        const Eigen::VectorXd formula = log_normalize(
            ((c.pi_t.array().log() + eta * tau * c.mu.array().log() + eta * q.array()) / (1.0 + eta * tau)).matrix());
        const Eigen::VectorXd closed = log_step(mmd{.eta = eta, .tau = tau}, c);
        CHECK(max_abs(closed - formula) < 1e-14);
        const Eigen::VectorXd generic =
            log_step(make_rspo(rspo::test::generic_path<reverse_kl>{}, {.eta = eta, .tau = tau}), c);
        CHECK(max_abs(generic - closed) < 1e-12);
        // A weighted reverse KL is still log-linear: weight κ acts as τ·κ.
        const Eigen::VectorXd weighted_step = log_step(make_rspo(3.0 * reverse_kl{}, {.eta = eta, .tau = tau / 3.0}), c);
        CHECK(max_abs(weighted_step - closed) < 1e-13);
    }
}

TEST_CASE("INPO's exact step is MMD's with eta' = eta / (1 + eta tau)", "[exact_steps]") {
    for (const auto& c : step_cases()) {
        INFO(c.game.name());
        for (double eta : {0.1, 1.0, 5.0})
            for (double tau : {0.05, 0.5}) {
                const double eta_inpo = eta / (1.0 + eta * tau);
                const auto a = log_step(mmd{.eta = eta, .tau = tau}, c);
                const auto b = log_step(inpo{.eta = eta_inpo, .tau = tau}, c);
                CHECK(max_abs(a - b) < 1e-13);
            }
        // At ητ = 1 INPO's step is μ·exp(ηPπ_t) normalized (π_t drops out; no 0·∞).
        const auto log_full = log_step(inpo{.eta = 2.0, .tau = 0.5}, c);
        const Eigen::VectorXd expected =
            log_normalize(c.mu.array().log().matrix() + 2.0 * (c.game.preferences() * c.pi_t));
        CHECK(max_abs(log_full - expected) < 1e-14);
    }
}

TEST_CASE("Nash-MD step: geometric mixture then multiplicative weights; its schedule", "[exact_steps]") {
    const auto c = step_cases()[0];
    const double tau = 0.5, eta = 0.4;
    const Eigen::VectorXd mix =
        log_normalize(((1 - eta * tau) * c.pi_t.array().log() + eta * tau * c.mu.array().log()).matrix());
    const Eigen::VectorXd expected =
        log_normalize(mix + eta * (c.game.preferences() * mix.array().exp().matrix()));
    CHECK(max_abs(log_step(nash_md{.tau = tau, .eta = eta}, c) - expected) < 1e-14);

    const nash_md decreasing{.tau = tau};
    CHECK(decreasing.step_size(0) == Catch::Approx(2.0 / (tau * 2.0)));
    CHECK(decreasing.step_size(98) == Catch::Approx(2.0 / (tau * 100.0)));
    // At t = 0 the schedule gives ητ = 1: the mixture is μ itself.
    const Eigen::VectorXd first = log_normalize(
        c.mu.array().log().matrix() + decreasing.step_size(0) * (c.game.preferences() * c.mu));
    CHECK(max_abs(log_step(decreasing, c, 0) - first) < 1e-14);
}

TEST_CASE("MPO resets its magnet to the current policy every K steps", "[exact_steps]") {
    const auto c = step_cases()[0];
    const mpo method{.eta = 0.5, .tau = 0.2, .magnet_reset_every = 3};
    tabular_iterate it{c.pi_t.array().log(), c.mu.array().log(), 0};
    for (std::size_t t = 0; t < 7; ++t) {
        tabular_iterate expected = it;
        mmd{.eta = 0.5, .tau = 0.2}.step(c.game, expected);
        method.step(c.game, it);
        CHECK(max_abs(it.log_policy - expected.log_policy) == 0.0);
        if ((t + 1) % 3 == 0)
            CHECK(it.log_magnet == it.log_policy);
        else
            CHECK(it.log_magnet == expected.log_magnet);
        it.iteration = t + 1;
    }
}

TEST_CASE("regularized best response satisfies its KKT conditions; the gap is nonnegative",
          "[exact_steps][metrics]") {
    for (const auto& c : step_cases()) {
        INFO(c.game.name());
        const Eigen::VectorXd q = c.game.preferences() * c.pi_t;
        rspo::test::for_each_regularizer([&](const char* name, auto r) {
            INFO(name);
            for (double tau : {0.05, 1.0}) {
                const Eigen::VectorXd br = regularized_best_response(c.game, c.pi_t, c.mu, tau, r);
                CHECK(std::abs(br.sum() - 1.0) < 1e-14);
                // τ R'_i(br) − q_i = −ν on the support; χ² may put zero mass where q_i < ν.
                Eigen::VectorXd v(br.size());
                double lo = 1e300, hi = -1e300;
                for (Eigen::Index i = 0; i < br.size(); ++i) {
                    if (br[i] <= 0.0) continue;
                    v[i] = tau * r.stationarity(std::log(br[i]), c.mu[i]) - q[i];
                    lo = std::min(lo, v[i]);
                    hi = std::max(hi, v[i]);
                }
                CHECK(hi - lo < 1e-10);
                CHECK(regularized_gap(c.game, c.pi_t, c.mu, tau, r) > 0.0);
            }
        });
        // Reverse KL's best response has a closed form: softmax(log μ + q/τ).
        const Eigen::VectorXd br = regularized_best_response(c.game, c.pi_t, c.mu, 0.3, reverse_kl{});
        const Eigen::VectorXd closed = softmax((c.mu.array().log() + q.array() / 0.3).matrix());
        CHECK(max_abs(br - closed) < 1e-14);
        // τ = 0: the gap is twice the exploitability.
        CHECK(regularized_gap(c.game, c.pi_t, c.mu, 0.0, reverse_kl{}) ==
              Catch::Approx(2.0 * exploitability(c.game, c.pi_t)).epsilon(1e-14));
    }
}

TEST_CASE("rspo::step checks its inputs and returns a policy", "[exact_steps]") {
    const auto game = games::biased_rock_paper_scissors();
    const auto pi = tabular_policy::from_probabilities(random_distribution(3, 5));
    const auto mu = tabular_policy::uniform(3);
    const auto next = step(mmd{.eta = 0.2, .tau = 0.1}, game, pi, mu);
    CHECK(next.size() == 3);
    CHECK(kl_divergence(next.probabilities(), pi.probabilities()) > 0.0);
    CHECK_THROWS_AS(step(mmd{.eta = 0.2, .tau = 0.1}, game, tabular_policy::uniform(4), mu), shape_error);
    CHECK_THROWS_AS(step(mmd{.eta = -1.0, .tau = 0.1}, game, pi, mu), domain_error);
}
