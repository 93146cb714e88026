// The self_play driver: hooks and their order, stopping, the average iterate, numeric failure,
// determinism, and the CSV / progress callbacks.
#include "support/fixtures.hpp"

#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace rspo;
using rspo::test::max_abs;

namespace {

struct hook_log {
    std::vector<std::string>* events;
    void on_begin(const self_play_step& s) { events->push_back("begin " + std::to_string(s.iteration)); }
    void on_step(const self_play_step& s) { events->push_back("step " + std::to_string(s.iteration)); }
    void on_end(const self_play_result& r) { events->push_back("end " + std::to_string(r.iterations)); }
};

/// A method whose step turns into NaN at a chosen iteration (a numeric failure).
struct failing_method {
    std::size_t fail_at = 3;
    void validate(const char*) const {}
    std::string name() const { return "failing"; }
    void step(const preference_game& g, tabular_iterate& it) const {
        sppo{.eta = 0.1}.step(g, it);
        if (it.iteration + 1 == fail_at) it.log_policy[0] = std::nan("");
    }
};
static_assert(TabularAlgorithm<failing_method>);

}  // namespace

TEST_CASE("self_play calls every hook in order and counts steps", "[self_play]") {
    std::vector<std::string> events;
    const auto r = self_play(sppo{.eta = 0.1}, games::rock_paper_scissors(), {.iterations = 3},
                             hook_log{&events});
    CHECK(events == std::vector<std::string>{"begin 0", "step 1", "step 2", "step 3", "end 3"});
    CHECK(r.status == self_play_status::completed);
    CHECK(r.iterations == 3);
}

TEST_CASE("a callback returning true stops the run; several callbacks all run", "[self_play]") {
    std::vector<std::string> events;
    struct stop_at_two {
        bool on_step(const self_play_step& s) const { return s.iteration == 2; }
    };
    const auto r = self_play(sppo{.eta = 0.1}, games::rock_paper_scissors(), {.iterations = 10},
                             stop_at_two{}, hook_log{&events});
    CHECK(r.status == self_play_status::stopped);
    CHECK(r.iterations == 2);
    CHECK(events.back() == "end 2");
    CHECK(std::count(events.begin(), events.end(), "step 2") == 1);  // the other callback still ran
}

TEST_CASE("the average policy is the mean of the iterates after each step", "[self_play]") {
    const auto game = games::biased_rock_paper_scissors();
    Eigen::VectorXd start(3);
    start << 0.2, 0.2, 0.6;
    std::vector<Eigen::VectorXd> iterates;
    struct collect {
        std::vector<Eigen::VectorXd>* out;
        void on_step(const self_play_step& s) const { out->push_back(s.policy); }
    };
    const auto r = self_play(sppo{.eta = 0.7}, game, {.iterations = 25, .initial = start}, collect{&iterates});
    Eigen::VectorXd mean = Eigen::VectorXd::Zero(3);
    for (const auto& p : iterates) mean += p;
    mean /= 25.0;
    CHECK(max_abs(r.average_policy - mean) < 1e-15);
    CHECK(max_abs(r.policy - iterates.back()) == 0.0);
    // π_1 is one SPPO step from the start.
    const Eigen::VectorXd first = softmax((start.array().log() + 0.7 * (game.preferences() * start).array()).matrix());
    CHECK(max_abs(iterates.front() - first) < 1e-15);
}

TEST_CASE("a step that produces NaN ends the run with numeric_failure and the last good iterate",
          "[self_play]") {
    const auto r = self_play(failing_method{.fail_at = 3}, games::rock_paper_scissors(), {.iterations = 10});
    CHECK(r.status == self_play_status::numeric_failure);
    CHECK(r.iterations == 2);
    CHECK(r.policy.allFinite());
    CHECK_THAT(r.message, Catch::Matchers::ContainsSubstring("step 3"));
}

TEST_CASE("self_play is deterministic", "[self_play]") {
    const auto game = games::random_skew_symmetric(7, 3);
    const auto method = make_rspo(0.1 * forward_kl{} + 1.0 * reverse_kl{}, {.eta = 0.3, .tau = 0.2});
    const auto a = self_play(method, game, {.iterations = 500});
    const auto b = self_play(method, game, {.iterations = 500});
    CHECK(a.policy == b.policy);
    CHECK(a.average_policy == b.average_policy);
}

TEST_CASE("csv_logger writes a header, the start, every k-th step and the last", "[self_play]") {
    std::ostringstream out;
    const auto game = games::biased_rock_paper_scissors();
    csv_logger log(out, {metrics::exploitability(), metrics::probability(1)}, 4);
    log.with_label("method", "sppo");
    const auto r = self_play(sppo{.eta = 0.5}, game, {.iterations = 10}, log);
    std::istringstream in(out.str());
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    REQUIRE(lines.size() == 5);  // header, t = 0, 4, 8, 10
    CHECK(lines[0] == "method,iteration,exploitability,pi_1");
    CHECK(lines[1].rfind("sppo,0,", 0) == 0);
    CHECK(lines[2].rfind("sppo,4,", 0) == 0);
    CHECK(lines[4].rfind("sppo,10,", 0) == 0);
    // The last row's values are the final policy's.
    const std::string last = lines[4];
    const auto c1 = last.find(',', 7), c2 = last.find(',', c1 + 1);
    CHECK(std::stod(last.substr(c1 + 1, c2 - c1 - 1)) == Catch::Approx(exploitability(game, r.policy)).epsilon(1e-9));
    CHECK(std::stod(last.substr(c2 + 1)) == Catch::Approx(r.policy[1]).epsilon(1e-9));
    CHECK_THROWS_AS(csv_logger(out, {}, 0), domain_error);
}

TEST_CASE("csv_logger labels are leading columns, quoted when they need it", "[self_play]") {
    std::ostringstream out;
    csv_logger log(out, {metrics::exploitability()}, 100);
    log.with_label("game", "rps").with_label("method, variant", "rspo[\"a\",b]");
    self_play(sppo{.eta = 0.5}, games::rock_paper_scissors(), {.iterations = 1}, log);
    std::istringstream in(out.str());
    std::string header, first;
    std::getline(in, header);
    std::getline(in, first);
    CHECK(header == "game,\"method, variant\",iteration,exploitability");
    CHECK(first.rfind("rps,\"rspo[\"\"a\"\",b]\",0,", 0) == 0);
}

TEST_CASE("stop_below and stop_when_stationary end runs at the right time", "[self_play]") {
    const auto game = games::biased_rock_paper_scissors();
    const auto r = self_play(mmd{.eta = 0.4, .tau = 0.1}, game, {.iterations = 100000},
                             stop_below{metrics::kl_from(solve_regularized_equilibrium(game, Eigen::VectorXd::Constant(3, 1.0 / 3), 0.1, reverse_kl{}).policy), 1e-10});
    CHECK(r.status == self_play_status::stopped);
    CHECK(r.iterations < 100000);
    CHECK(r.iterations > 10);
    const auto s = self_play(mmd{.eta = 0.4, .tau = 0.1}, game, {.iterations = 100000}, stop_when_stationary(1e-12));
    CHECK(s.status == self_play_status::stopped);
    CHECK(s.iterations > r.iterations / 2);
}

TEST_CASE("progress_bar draws up to 100% and ends its line", "[self_play]") {
    std::ostringstream out;
    self_play(sppo{.eta = 0.1}, games::rock_paper_scissors(), {.iterations = 50}, progress_bar(out, "rps"));
    const std::string text = out.str();
    CHECK_THAT(text, Catch::Matchers::ContainsSubstring("rps ["));
    CHECK_THAT(text, Catch::Matchers::ContainsSubstring("100% 50/50"));
    CHECK(text.back() == '\n');
    CHECK_THAT(text, Catch::Matchers::ContainsSubstring("0% 0/50"));  // drawn before the first step
    // A null stream makes it silent (a --quiet flag needs no second call site).
    const auto r = self_play(sppo{.eta = 0.1}, games::rock_paper_scissors(), {.iterations = 5},
                             progress_bar(static_cast<std::ostream*>(nullptr)));
    CHECK(r.iterations == 5);
}

TEST_CASE("MPO's result reports the moved magnet; other methods keep mu", "[self_play]") {
    const auto game = games::biased_rock_paper_scissors();
    const Eigen::VectorXd mu = Eigen::VectorXd::Constant(3, 1.0 / 3);
    const auto moved = self_play(mpo{.eta = 0.2, .tau = 0.1, .magnet_reset_every = 5}, game, {.iterations = 20});
    CHECK(max_abs(moved.magnet - mu) > 1e-3);
    const auto kept = self_play(mmd{.eta = 0.2, .tau = 0.1}, game, {.iterations = 20});
    CHECK(max_abs(kept.magnet - mu) < 1e-15);
}
