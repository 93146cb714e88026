// Convergence claims (docs/math §2–4), each checked on games with known answers:
// the regularized equilibrium by two independent methods, MMD's linear rate, Nash-MD's schedule,
// SPPO's cycling last iterate vs its converging average, MPO reaching the unregularized NE.
#include "support/fixtures.hpp"

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <vector>

using namespace rspo;
using rspo::test::max_abs;
using rspo::test::random_distribution;

namespace {

std::vector<preference_game> intransitive_games() {
    return {games::rock_paper_scissors(), games::biased_rock_paper_scissors(),
            games::random_skew_symmetric(5, 17), games::weighted_cycle({0.1, 0.3, 0.45, 0.2, 0.05})};
}

/// Records KL(target‖π_t) after every step.
struct kl_recorder {
    Eigen::VectorXd target;
    std::vector<double> kl{};
    void on_begin(const self_play_step& s) { kl.push_back(kl_divergence(target, s.policy)); }
    void on_step(const self_play_step& s) { kl.push_back(kl_divergence(target, s.policy)); }
};

}  // namespace

TEST_CASE("regularized equilibrium: Newton on the KKT system and the RSPO iteration agree to 1e-8",
          "[convergence]") {
    for (const auto& game : intransitive_games()) {
        INFO(game.name());
        const Eigen::VectorXd mu = random_distribution(game.size(), 31);
        rspo::test::for_each_regularizer([&](const char* name, auto r) {
            INFO(name);
            for (double tau : {0.1, 1.0}) {
                INFO("tau " << tau);
                const auto newton = solve_regularized_equilibrium(game, mu, tau, r);
                REQUIRE(newton.converged);
                CHECK(newton.residual < 1e-12);
                CHECK(regularized_gap(game, newton.policy, mu, tau, r) < 1e-9);

                // The iteration, from a start far from it, with a step below τ/L².
                const double eta = 0.5 * tau / std::pow(game.lipschitz(), 2);
                const auto run = self_play(make_rspo(r, {.eta = eta, .tau = tau}), game,
                                           {.iterations = 200000, .reference = mu,
                                            .initial = random_distribution(game.size(), 32, 0.01)},
                                           stop_when_stationary(1e-15));
                CHECK(run.status == self_play_status::stopped);
                CHECK(max_abs(run.policy - newton.policy) < 1e-8);
                CHECK(regularized_gap(game, run.policy, mu, tau, r) < 1e-9);
            }
        });
    }
}

TEST_CASE("reverse-KL RSPO (MMD) contracts KL(pi*_tau || pi_t) at least as fast as (1 + eta tau)^-t",
          "[convergence]") {
    const auto game = games::biased_rock_paper_scissors();
    Eigen::VectorXd mu(3), start(3);
    mu << 0.5, 0.3, 0.2;
    start << 0.05, 0.05, 0.9;
    const double L = game.lipschitz();
    REQUIRE(L == 0.5);
    for (double tau : {0.05, 0.2, 1.0})
        for (double fraction : {1.0, 0.5}) {
            const double eta = fraction * tau / (L * L);  // η ≤ τ/L²
            INFO("tau " << tau << " eta " << eta);
            const auto target = solve_regularized_equilibrium(game, mu, tau, reverse_kl{}).policy;
            kl_recorder rec{target};
            self_play(mmd{.eta = eta, .tau = tau}, game, {.iterations = 2000, .reference = mu, .initial = start}, rec);
            // KL(π*‖π_{t+1}) ≤ (1+ητ)^{−t} KL(π*‖π_1); below ~1e-14 the KL is round-off.
            const double kl1 = rec.kl[1];
            for (std::size_t t = 1; t + 1 < rec.kl.size(); ++t)
                CHECK(rec.kl[t + 1] <= kl1 * std::pow(1.0 + eta * tau, -static_cast<double>(t)) + 1e-14);
            CHECK(rec.kl.back() < 1e-3 * kl1);
        }
}

TEST_CASE("Nash-MD with eta_t = 2/(tau(t+2)) converges to pi*_tau; a constant step stops short",
          "[convergence]") {
    const auto game = games::biased_rock_paper_scissors();
    const Eigen::VectorXd mu = Eigen::VectorXd::Constant(3, 1.0 / 3.0);
    const double tau = 0.5;
    const auto target = solve_regularized_equilibrium(game, mu, tau, reverse_kl{}).policy;

    kl_recorder decreasing{target};
    self_play(nash_md{.tau = tau}, game, {.iterations = 20000}, decreasing);
    // O(1/T) rate: a tenfold longer run is at least fivefold closer, and it ends close.
    CHECK(decreasing.kl[20000] < decreasing.kl[2000] / 5.0);
    CHECK(decreasing.kl[20000] < 1e-9);

    // A constant step reaches a fixed point that is not π*_τ: stationary, yet biased.
    const auto constant = self_play(nash_md{.tau = tau, .eta = 0.2}, game, {.iterations = 100000},
                                    stop_when_stationary(1e-14));
    CHECK(constant.status == self_play_status::stopped);
    CHECK(kl_divergence(target, constant.policy) > 1e-6);
    CHECK(regularized_gap(game, constant.policy, mu, tau, reverse_kl{}) > 1e-6);
}

TEST_CASE("SPPO on RPS: the last iterate does not converge, the average does", "[convergence]") {
    const auto game = games::rock_paper_scissors();
    Eigen::VectorXd start(3);
    start << 0.5, 0.3, 0.2;
    const Eigen::VectorXd nash = *game.nash_equilibrium();
    kl_recorder rec{nash};
    std::vector<double> last, average;
    struct exploitabilities {
        std::vector<double>* last;
        std::vector<double>* average;
        void on_step(const self_play_step& s) {
            last->push_back(exploitability(s.game, s.policy));
            average->push_back(exploitability(s.game, s.average_policy));
        }
    };
    self_play(sppo{.eta = 0.1}, game, {.iterations = 10000, .initial = start}, rec,
              exploitabilities{&last, &average});
    // Hedge on a game with value ½: KL(π*‖π_{t+1}) − KL(π*‖π_t) = log E_{π_t} e^{ηq} − η/2 ≥ 0
    // (Jensen, since E_{π_t} q = ½). The last iterate moves away from the NE at every step.
    for (std::size_t t = 0; t + 1 < rec.kl.size(); ++t) CHECK(rec.kl[t + 1] > rec.kl[t]);
    const double late_min = *std::min_element(last.begin() + 8000, last.end());
    CHECK(late_min > last.front());
    // The average converges (O(1/√T) for Hedge; its exploitability oscillates, so compare the
    // worst value over windows) and ends far closer than any late last iterate.
    const auto window_max = [&](std::size_t from, std::size_t to) {
        return *std::max_element(average.begin() + static_cast<std::ptrdiff_t>(from),
                                 average.begin() + static_cast<std::ptrdiff_t>(to));
    };
    UNSCOPED_INFO("average exploitability: max over steps 500-1000 " << window_max(500, 1000)
                  << ", over 9000-10000 " << window_max(9000, 10000));
    CHECK(window_max(9000, 10000) < 0.01);
    CHECK(window_max(9000, 10000) < window_max(500, 1000) / 3.0);
    CHECK(window_max(9000, 10000) < late_min / 10.0);
}

TEST_CASE("MPO's magnet resets reach the unregularized Nash equilibrium", "[convergence]") {
    const auto game = games::biased_rock_paper_scissors();
    Eigen::VectorXd start(3);
    start << 0.05, 0.05, 0.9;
    const Eigen::VectorXd nash = *game.nash_equilibrium();
    kl_recorder rec{nash};
    const auto run = self_play(mpo{.eta = 0.2, .tau = 0.1, .magnet_reset_every = 200}, game,
                               {.iterations = 20000, .initial = start}, rec);
    CHECK(exploitability(game, run.policy) < 1e-4);
    CHECK(rec.kl.back() < 1e-3 * rec.kl.front());
    // Without resets the same MMD stops at the regularized equilibrium, which is exploitable.
    const auto fixed = self_play(mmd{.eta = 0.2, .tau = 0.1}, game, {.iterations = 20000, .initial = start});
    CHECK(exploitability(game, fixed.policy) > 1e-2);
}

TEST_CASE("degenerate games: all ties gives mu; transitive Bradley-Terry concentrates on the best",
          "[convergence]") {
    const Eigen::VectorXd mu = random_distribution(4, 41);
    rspo::test::for_each_regularizer([&](const char* name, auto r) {
        INFO(name);
        const auto eq = solve_regularized_equilibrium(games::all_ties(4), mu, 0.3, r);
        CHECK(max_abs(eq.policy - mu) < 1e-12);
    });
    Eigen::VectorXd scores(4);
    scores << 0.0, 2.0, 1.0, -1.0;
    const auto bt = games::bradley_terry(scores);
    const Eigen::VectorXd uniform = Eigen::VectorXd::Constant(4, 0.25);
    const auto weak = solve_regularized_equilibrium(bt, uniform, 0.01, reverse_kl{});
    const auto strong = solve_regularized_equilibrium(bt, uniform, 1.0, reverse_kl{});
    CHECK(weak.policy[1] > 0.99);
    CHECK(strong.policy[1] < weak.policy[1]);
    CHECK(exploitability(bt, weak.policy) < 1e-2);
}
