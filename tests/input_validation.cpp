// Acceptance: every public entry point rejects bad input with a typed error (shape_error,
// domain_error or index_error, all rspo::argument_error and std::invalid_argument) whose
// function() and argument() name what was wrong and whose message names the function and the bad
// value. Nothing is silently clamped or renormalized.

#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_templated.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

/// Matches an rspo::argument_error of exactly type Expected thrown by `function` about `argument`,
/// whose what() is "<function>: ..." and contains every fragment (the bad value, and anything
/// else worth pinning).
template <class Expected>
class names_error final : public Catch::Matchers::MatcherGenericBase {
public:
    names_error(std::string function, std::string argument, std::vector<std::string> fragments)
        : function_(std::move(function)), argument_(std::move(argument)), fragments_(std::move(fragments)) {}

    bool match(const rspo::argument_error& e) const {
        const std::string what = e.what();
        if (typeid(e) != typeid(Expected)) return false;
        if (e.function() != function_ || e.argument() != argument_) return false;
        if (what.rfind(function_ + ": ", 0) != 0) return false;
        for (const auto& fragment : fragments_)
            if (what.find(fragment) == std::string::npos) return false;
        return true;
    }

    std::string describe() const override {
        std::string d = "is a " + type_name() + " from " + function_ + " about '" + argument_ + "'";
        for (const auto& fragment : fragments_) d += ", mentioning \"" + fragment + "\"";
        return d;
    }

private:
    static std::string type_name() {
        if constexpr (std::is_same_v<Expected, rspo::shape_error>) return "shape_error";
        else if constexpr (std::is_same_v<Expected, rspo::domain_error>) return "domain_error";
        else return "index_error";
    }
    std::string function_, argument_;
    std::vector<std::string> fragments_;
};

template <class Expected>
names_error<Expected> is(std::string function, std::string argument,
                         std::initializer_list<std::string> fragments = {}) {
    return {std::move(function), std::move(argument), std::vector<std::string>(fragments)};
}

Eigen::VectorXd vec(std::initializer_list<double> values) {
    Eigen::VectorXd v(static_cast<Eigen::Index>(values.size()));
    Eigen::Index i = 0;
    for (double x : values) v[i++] = x;
    return v;
}

const rspo::preference_game& game() {
    static const rspo::preference_game g = rspo::games::biased_rock_paper_scissors();
    return g;
}

const Eigen::VectorXd uniform3 = Eigen::VectorXd::Constant(3, 1.0 / 3.0);

/// A user oracle that is sure of everything, slightly too sure.
struct overconfident_judge {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = int;
    double prefer(rspo::single_prompt, int, int) const { return 1.0 + 1e-9; }
};

}  // namespace

/// On failure Catch prints the caught exception with this.
template <>
struct Catch::StringMaker<rspo::argument_error> {
    static std::string convert(const rspo::argument_error& e) {
        std::string type = typeid(e) == typeid(rspo::shape_error)    ? "shape_error"
                           : typeid(e) == typeid(rspo::domain_error) ? "domain_error"
                           : typeid(e) == typeid(rspo::index_error)  ? "index_error"
                                                                     : "argument_error";
        return type + "{function: " + e.function() + ", argument: " + e.argument() + ", what: " +
               e.what() + "}";
    }
};

// Shorthands; the exception is always caught as the common base and its exact type checked.
#define CHECK_REJECTS(expr, matcher) CHECK_THROWS_MATCHES(expr, rspo::argument_error, matcher)
using rspo::domain_error;
using rspo::index_error;
using rspo::shape_error;

TEST_CASE("the error types: argument_error keeps function and argument apart from the message",
          "[validation]") {
    const rspo::domain_error e("rspo::f", "x", "x = 2 must be < 1");
    CHECK(e.function() == "rspo::f");
    CHECK(e.argument() == "x");
    CHECK(std::string(e.what()) == "rspo::f: x = 2 must be < 1");
    const std::invalid_argument& base = e;  // catchable as the standard type
    CHECK(std::string(base.what()) == e.what());
}

// ---------------------------------------------------------------------------------------------
// Games
// ---------------------------------------------------------------------------------------------

TEST_CASE("preference_game constructor", "[validation][games]") {
    const char* fn = "rspo::preference_game";
    CHECK_REJECTS(rspo::preference_game("g", Eigen::MatrixXd::Constant(2, 3, 0.5)),
                  is<shape_error>(fn, "preferences", {"preferences is 2x3, not square"}));
    CHECK_REJECTS(rspo::preference_game("g", Eigen::MatrixXd()),
                  is<shape_error>(fn, "preferences", {"preferences is empty"}));

    Eigen::MatrixXd P = game().preferences();
    P(0, 1) = 1.5;
    CHECK_REJECTS(rspo::preference_game("g", P),
                  is<domain_error>(fn, "preferences(0, 1)", {"preferences(0, 1) = 1.5", "[0, 1]"}));
    P = game().preferences();
    P(2, 0) = not_a_number;
    CHECK_REJECTS(rspo::preference_game("g", P), is<domain_error>(fn, "preferences(2, 0)", {"nan"}));
    P = game().preferences();
    P(1, 2) = 0.5;  // P(2, 1) = 0.55: the pair sums to 1.05
    CHECK_REJECTS(rspo::preference_game("g", P),
                  is<domain_error>(fn, "preferences", {"preferences(1, 2) + preferences(2, 1) = 1.05"}));
    P = game().preferences();
    P(1, 1) = 0.5 + 1e-6;  // not clamped: 1e-6 is far above round-off
    CHECK_REJECTS(rspo::preference_game("g", P),
                  is<domain_error>(fn, "preferences", {"preferences(1, 1) + preferences(1, 1)"}));

    CHECK_REJECTS(rspo::preference_game("g", game().preferences(), vec({0.5, 0.5})),
                  is<shape_error>(fn, "nash_equilibrium",
                                  {"nash_equilibrium has size 2 but preferences has size 3"}));
    CHECK_REJECTS(rspo::preference_game("g", game().preferences(), vec({0.5, 0.5, 0.5})),
                  is<domain_error>(fn, "nash_equilibrium", {"sums to 1.5", "not renormalized"}));
    CHECK_REJECTS(rspo::preference_game("g", game().preferences(), vec({-0.5, 1.0, 0.5})),
                  is<domain_error>(fn, "nash_equilibrium", {"nash_equilibrium[0] = -0.5"}));

    CHECK_REJECTS(game().win_rates(vec({0.5, 0.5})),
                  is<shape_error>("rspo::preference_game::win_rates", "pi",
                                  {"pi has size 2 but the game has size 3"}));
}

TEST_CASE("standard game factories", "[validation][games]") {
    CHECK_REJECTS(rspo::games::weighted_cycle({0.1, 0.2}),
                  is<shape_error>("rspo::games::weighted_cycle", "weights", {"has size 2"}));
    CHECK_REJECTS(rspo::games::weighted_cycle({0.1, 0.75, 0.2}),
                  is<domain_error>("rspo::games::weighted_cycle", "weights[1]",
                                   {"weights[1] = 0.75 must be <= 0.5"}));
    CHECK_REJECTS(rspo::games::weighted_cycle({0.0, 0.1, 0.2}),
                  is<domain_error>("rspo::games::weighted_cycle", "weights[0]",
                                   {"weights[0] = 0 must be > 0"}));
    CHECK_REJECTS(rspo::games::random_skew_symmetric(0, 1),
                  is<shape_error>("rspo::games::random_skew_symmetric", "n", {"n is empty"}));
    CHECK_REJECTS(rspo::games::all_ties(0), is<shape_error>("rspo::games::all_ties", "n"));
    CHECK_REJECTS(rspo::games::bradley_terry(vec({0.0, inf})),
                  is<domain_error>("rspo::games::bradley_terry", "scores", {"scores[1] = inf"}));
    CHECK_REJECTS(rspo::games::bradley_terry(Eigen::VectorXd()),
                  is<shape_error>("rspo::games::bradley_terry", "scores"));
}

// ---------------------------------------------------------------------------------------------
// Oracles and win rates
// ---------------------------------------------------------------------------------------------

TEST_CASE("oracles", "[validation][oracles]") {
    const rspo::matrix_oracle oracle(game());
    CHECK_REJECTS(oracle.prefer({}, 0, 5),
                  is<index_error>("rspo::matrix_oracle::prefer", "b", {"b = 5 is outside [0, 3)"}));

    const auto identity = [](rspo::single_prompt, double y) { return y; };
    CHECK_REJECTS((rspo::make_bradley_terry_oracle<rspo::single_prompt, double>(identity, -2.0)),
                  is<domain_error>("rspo::bradley_terry_oracle", "scale", {"scale = -2 must be > 0"}));
    const auto bt = rspo::make_bradley_terry_oracle<rspo::single_prompt, double>(identity);
    CHECK_REJECTS(bt.prefer({}, 0.0, not_a_number),
                  is<domain_error>("rspo::bradley_terry_oracle::prefer", "score(x, b)", {"nan"}));

    const auto judge = rspo::make_callback_oracle<rspo::single_prompt, int>(
        [](rspo::single_prompt, int, int) { return 1.0 + 1e-9; });  // not clamped to 1
    CHECK_REJECTS(judge.prefer({}, 0, 1),
                  is<domain_error>("rspo::callback_oracle::prefer", "judge(x, a, b)",
                                   {"judge(x, a, b) = 1.000000001"}));
    // A raw user oracle (no callback_oracle around it): preference_matrix checks its answers.
    const std::vector<int> ys = {0, 1};
    CHECK_REJECTS(rspo::preference_matrix(overconfident_judge{}, {}, std::span<const int>(ys)),
                  is<domain_error>("rspo::preference_matrix", "prefer(x, responses[0], responses[1])",
                                   {"1.000000001"}));
}

TEST_CASE("estimate_win_rates, select_best_worst, draw_ordered_pair(s)", "[validation][oracles]") {
    const char* fn = "rspo::estimate_win_rates";
    CHECK_REJECTS(rspo::estimate_win_rates(Eigen::MatrixXd::Constant(2, 3, 0.5)),
                  is<shape_error>(fn, "pairwise", {"2x3"}));
    Eigen::MatrixXd m = Eigen::MatrixXd::Constant(2, 2, 0.5);
    m(0, 1) = -0.25;
    CHECK_REJECTS(rspo::estimate_win_rates(m), is<domain_error>(fn, "pairwise(0, 1)", {"-0.25"}));
    m(0, 1) = 0.75;  // m(1, 0) = 0.5: the pair sums to 1.25
    CHECK_REJECTS(rspo::estimate_win_rates(m),
                  is<domain_error>(fn, "pairwise", {"pairwise(0, 1) + pairwise(1, 0) = 1.25"}));
    CHECK_REJECTS(rspo::estimate_win_rates(Eigen::MatrixXd::Constant(1, 1, 0.5),
                                           rspo::win_rate_estimator::unbiased),
                  is<shape_error>(fn, "pairwise", {"K >= 2", "K = 1"}));
    const rspo::matrix_oracle oracle(game());
    const std::vector<std::size_t> none;
    CHECK_REJECTS(rspo::estimate_win_rates(oracle, {}, std::span<const std::size_t>(none)),
                  is<shape_error>(fn, "responses", {"responses is empty"}));
    const std::vector<std::size_t> out_of_range = {0, 3};
    CHECK_REJECTS(rspo::estimate_win_rates(oracle, {}, std::span<const std::size_t>(out_of_range)),
                  is<index_error>("rspo::matrix_oracle::prefer", "b", {"b = 3"}));

    CHECK_REJECTS(rspo::select_best_worst(vec({0.5})),
                  is<shape_error>("rspo::select_best_worst", "win_rates", {"win_rates has size 1"}));
    CHECK_REJECTS(rspo::select_best_worst(vec({0.5, 0.25, 1.25})),
                  is<domain_error>("rspo::select_best_worst", "win_rates[2]", {"win_rates[2] = 1.25"}));
    CHECK_REJECTS(rspo::select_best_worst(vec({not_a_number, 0.5})),
                  is<domain_error>("rspo::select_best_worst", "win_rates[0]", {"nan"}));

    rspo::random_engine rng(1);
    CHECK_REJECTS(rspo::draw_ordered_pair(1.5, 0, 1, rng),
                  is<domain_error>("rspo::draw_ordered_pair", "p_a_beats_b", {"p_a_beats_b = 1.5"}));
    CHECK_REJECTS(rspo::draw_ordered_pairs(Eigen::MatrixXd::Constant(2, 2, 0.25), rng),
                  is<domain_error>("rspo::draw_ordered_pairs", "pairwise", {"= 0.5"}));
}

// ---------------------------------------------------------------------------------------------
// Policies and metrics
// ---------------------------------------------------------------------------------------------

TEST_CASE("tabular_policy", "[validation][policies]") {
    CHECK_REJECTS(rspo::tabular_policy::from_probabilities(vec({0.5, 0.5 + 1e-6})),
                  is<domain_error>("rspo::tabular_policy::from_probabilities", "p",
                                   {"p sums to 1.00000", "not renormalized"}));
    CHECK_REJECTS(rspo::tabular_policy::from_logits(vec({0.0, inf})),
                  is<domain_error>("rspo::tabular_policy::from_logits", "logits", {"logits[1] = inf"}));
    CHECK_REJECTS(rspo::tabular_policy::uniform(0), is<shape_error>("rspo::tabular_policy::uniform", "n"));
    CHECK_REJECTS(rspo::tabular_policy::uniform(2).log_prob({}, 2),
                  is<index_error>("rspo::tabular_policy::log_prob", "y", {"y = 2 is outside [0, 2)"}));
}

TEST_CASE("exploitability and kl_divergence", "[validation][eval]") {
    CHECK_REJECTS(rspo::exploitability(game(), vec({0.5, 0.5})),
                  is<shape_error>("rspo::exploitability", "pi", {"pi has size 2 but the game has size 3"}));
    CHECK_REJECTS(rspo::exploitability(game(), vec({0.5, 0.25, 0.25 + 1e-6})),
                  is<domain_error>("rspo::exploitability", "pi", {"pi sums to 1.00000", "not renormalized"}));
    CHECK_REJECTS(rspo::exploitability(game(), vec({1.25, -0.5, 0.25})),
                  is<domain_error>("rspo::exploitability", "pi", {"pi[1] = -0.5"}));

    const char* kl = "rspo::kl_divergence";
    CHECK_REJECTS(rspo::kl_divergence(uniform3, vec({0.5, 0.5})),
                  is<shape_error>(kl, "q", {"q has size 2 but p has size 3"}));
    CHECK_REJECTS(rspo::kl_divergence(vec({0.5, 0.75}), vec({0.5, 0.5})),
                  is<domain_error>(kl, "p", {"p sums to 1.25"}));
    CHECK_REJECTS(rspo::kl_divergence(vec({0.5, 0.5}), vec({not_a_number, 0.5})),
                  is<domain_error>(kl, "q", {"q[0] = nan"}));
    // A zero in q where p > 0 is not an input error: KL is +inf.
    CHECK(rspo::kl_divergence(vec({0.5, 0.5}), vec({1.0, 0.0})) == inf);
}

TEST_CASE("solve_regularized_equilibrium", "[validation][eval]") {
    const char* fn = "rspo::solve_regularized_equilibrium";
    CHECK_NOTHROW(rspo::solve_regularized_equilibrium(game(), uniform3, 0.5, rspo::reverse_kl{}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), uniform3, 0.0, rspo::reverse_kl{}),
                  is<domain_error>(fn, "tau", {"tau = 0 must be > 0"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), uniform3, not_a_number, rspo::reverse_kl{}),
                  is<domain_error>(fn, "tau", {"tau = nan is not finite"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), uniform3, 0.5, rspo::reverse_kl{}, -1e-9),
                  is<domain_error>(fn, "tolerance", {"tolerance = -1.0000000000000001e-09"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), vec({0.5, 0.5}), 0.5, rspo::reverse_kl{}),
                  is<shape_error>(fn, "reference", {"reference has size 2 but the game has size 3"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), vec({0.5, 0.0, 0.5}), 0.5, rspo::reverse_kl{}),
                  is<domain_error>(fn, "reference", {"reference[1] = 0 must be > 0", "full support"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), uniform3, 0.5, rspo::forward_kl{.clamp = -1.0}),
                  is<domain_error>(fn, "forward_kl.clamp", {"forward_kl.clamp = -1 must be > 0"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), uniform3, 0.5,
                                                      rspo::chi_squared{.clamp = not_a_number}),
                  is<domain_error>(fn, "chi_squared.clamp", {"chi_squared.clamp = nan is not finite"}));
    // A weight set directly on the aggregate (bypassing operator*) is caught when validated.
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(game(), uniform3, 0.5,
                                                      rspo::weighted<rspo::reverse_kl>{-1.0, {}}),
                  is<domain_error>(fn, "weight of reverse_kl", {"weight of reverse_kl = -1 must be >= 0"}));
    CHECK_REJECTS(rspo::solve_regularized_equilibrium(
                      game(), uniform3, 0.5,
                      rspo::reverse_kl{} + rspo::weighted<rspo::chi_squared>{0.5, {.clamp = 0.0}}),
                  is<domain_error>(fn, "chi_squared.clamp", {"chi_squared.clamp = 0 must be > 0"}));
}

TEST_CASE("regularized_best_response", "[validation][eval]") {
    const char* fn = "rspo::regularized_best_response";
    CHECK_NOTHROW(rspo::regularized_best_response(game(), uniform3, uniform3, 0.5, rspo::chi_squared{}));
    CHECK_REJECTS(rspo::regularized_best_response(game(), uniform3, uniform3, -0.5, rspo::reverse_kl{}),
                  is<domain_error>(fn, "tau", {"tau = -0.5 must be >= 0"}));
    CHECK_REJECTS(rspo::regularized_best_response(game(), vec({1.0}), uniform3, 0.5, rspo::reverse_kl{}),
                  is<shape_error>(fn, "pi", {"pi has size 1 but the game has size 3"}));
    CHECK_REJECTS(rspo::regularized_best_response(game(), uniform3, vec({0.0, 0.5, 0.5}), 0.5,
                                                  rspo::reverse_kl{}),
                  is<domain_error>(fn, "reference", {"reference[0] = 0 must be > 0"}));
    CHECK_REJECTS(rspo::regularized_best_response(game(), uniform3, uniform3, 0.5,
                                                  rspo::forward_kl{.clamp = -1.0}),
                  is<domain_error>(fn, "forward_kl.clamp", {"-1"}));
}

// The message of an error from regularized_gap should name regularized_gap, the function the user
// called; see the report (eval/game_metrics.hpp: the gap delegates its checks to
// regularized_best_response, whose name then appears instead).
TEST_CASE("regularized_gap", "[validation][eval]") {
    const char* fn = "rspo::regularized_gap";
    CHECK_NOTHROW(rspo::regularized_gap(game(), uniform3, uniform3, 0.5, rspo::reverse_kl{}));
    CHECK_REJECTS(rspo::regularized_gap(game(), uniform3, uniform3, -0.5, rspo::reverse_kl{}),
                  is<domain_error>(fn, "tau", {"tau = -0.5 must be >= 0"}));
    CHECK_REJECTS(rspo::regularized_gap(game(), vec({0.5, 0.5}), uniform3, 0.5, rspo::reverse_kl{}),
                  is<shape_error>(fn, "pi", {"pi has size 2 but the game has size 3"}));
    CHECK_REJECTS(rspo::regularized_gap(game(), uniform3, vec({0.5, 0.5, 0.0}), 0.5, rspo::reverse_kl{}),
                  is<domain_error>(fn, "reference", {"reference[2] = 0 must be > 0"}));
}

// ---------------------------------------------------------------------------------------------
// Regularizer composition
// ---------------------------------------------------------------------------------------------

TEST_CASE("operator* and with_surrogate_weight reject negative and non-finite weights",
          "[validation][regularizers]") {
    const char* times = "rspo::operator*(weight, regularizer)";
    CHECK_REJECTS(-0.5 * rspo::reverse_kl{}, is<domain_error>(times, "weight", {"weight = -0.5 must be >= 0"}));
    CHECK_REJECTS(not_a_number * rspo::forward_kl{}, is<domain_error>(times, "weight", {"weight = nan"}));
    CHECK_REJECTS(inf * rspo::chi_squared{}, is<domain_error>(times, "weight", {"weight = inf"}));
    CHECK_REJECTS(-2.0 * (0.5 * rspo::reverse_kl{}), is<domain_error>(times, "weight", {"weight = -2"}));
    CHECK_NOTHROW(0.0 * rspo::reverse_kl{});  // zero is a valid weight

    CHECK_REJECTS(rspo::with_surrogate_weight(-0.1, rspo::reverse_kl{}),
                  is<domain_error>("rspo::with_surrogate_weight", "surrogate_weight",
                                   {"surrogate_weight = -0.10000000000000001 must be >= 0"}));
}

// ---------------------------------------------------------------------------------------------
// Algorithms: parameters (validated by rspo::step and rspo::self_play) and sample losses
// ---------------------------------------------------------------------------------------------

TEST_CASE("rspo::step", "[validation][algorithms]") {
    const char* fn = "rspo::step";
    const auto current = rspo::tabular_policy::uniform(3);
    const auto reference = rspo::tabular_policy::uniform(3);
    CHECK_NOTHROW(rspo::step(rspo::sppo{.eta = 1.0}, game(), current, reference));

    CHECK_REJECTS(rspo::step(rspo::sppo{.eta = 0.0}, game(), current, reference),
                  is<domain_error>(fn, "eta", {"eta = 0 must be > 0"}));
    CHECK_REJECTS(rspo::step(rspo::sppo{.eta = -1.0}, game(), current, reference),
                  is<domain_error>(fn, "eta", {"eta = -1 must be > 0"}));
    CHECK_REJECTS(rspo::step(rspo::sppo{.eta = not_a_number}, game(), current, reference),
                  is<domain_error>(fn, "eta", {"eta = nan is not finite"}));
    CHECK_REJECTS(rspo::step(rspo::mmd{.eta = 1.0, .tau = -0.25}, game(), current, reference),
                  is<domain_error>(fn, "tau", {"tau = -0.25 must be >= 0"}));
    CHECK_REJECTS(rspo::step(rspo::rspo_algorithm<rspo::forward_kl>{.eta = 1.0, .tau = 0.1,
                                                                    .regularizer = {.clamp = -1.0}},
                             game(), current, reference),
                  is<domain_error>(fn, "forward_kl.clamp", {"forward_kl.clamp = -1"}));
    CHECK_REJECTS(rspo::step(rspo::nash_md{.tau = 1.0, .eta = 2.0}, game(), current, reference),
                  is<domain_error>(fn, "eta", {"eta * tau = 2 must be <= 1"}));

    CHECK_REJECTS(rspo::step(rspo::sppo{}, game(), rspo::tabular_policy::uniform(2), reference),
                  is<shape_error>(fn, "current", {"current has size 2 but the game has size 3"}));
    CHECK_REJECTS(rspo::step(rspo::sppo{}, game(), current, rspo::tabular_policy::uniform(4)),
                  is<shape_error>(fn, "reference", {"reference has size 4 but the game has size 3"}));
    const auto no_full_support = rspo::tabular_policy::from_probabilities(vec({0.5, 0.0, 0.5}));
    CHECK_REJECTS(rspo::step(rspo::mmd{.eta = 1.0, .tau = 0.5}, game(), current, no_full_support),
                  is<domain_error>(fn, "reference", {"reference[1] = 0 must be > 0"}));
}

TEST_CASE("rspo::self_play", "[validation][algorithms]") {
    const char* fn = "rspo::self_play";
    const rspo::self_play_options ok{.iterations = 2};
    CHECK_NOTHROW(rspo::self_play(rspo::mmd{.eta = 0.1, .tau = 1.0}, game(), ok));

    CHECK_REJECTS(rspo::self_play(rspo::nash_md{.tau = 2.0, .eta = 1.0}, game(), ok),
                  is<domain_error>(fn, "eta", {"eta * tau = 2 must be <= 1"}));
    CHECK_REJECTS(rspo::self_play(rspo::nash_md{.tau = 0.0}, game(), ok),
                  is<domain_error>(fn, "tau", {"tau = 0 must be > 0"}));
    CHECK_REJECTS(rspo::self_play(rspo::inpo{.eta = 1.5, .tau = 1.0}, game(), ok),
                  is<domain_error>(fn, "tau", {"eta * tau = 1.5 must be <= 1"}));
    CHECK_REJECTS(rspo::self_play(rspo::mpo{.eta = 0.1, .tau = 1.0, .magnet_reset_every = 0}, game(), ok),
                  is<domain_error>(fn, "magnet_reset_every", {"magnet_reset_every = 0 must be >= 1"}));
    CHECK_REJECTS(rspo::self_play(rspo::mpo{.eta = 0.1, .tau = -1.0}, game(), ok),
                  is<domain_error>(fn, "tau", {"tau = -1 must be > 0"}));
    CHECK_REJECTS(rspo::self_play(rspo::sppo{.eta = -3.0}, game(), ok),
                  is<domain_error>(fn, "eta", {"eta = -3 must be > 0"}));

    rspo::self_play_options bad = ok;
    bad.reference = vec({0.5, 0.5});
    CHECK_REJECTS(rspo::self_play(rspo::sppo{}, game(), bad),
                  is<shape_error>(fn, "options.reference", {"options.reference has size 2"}));
    bad.reference = vec({0.0, 0.5, 0.5});
    CHECK_REJECTS(rspo::self_play(rspo::mmd{.eta = 0.1, .tau = 1.0}, game(), bad),
                  is<domain_error>(fn, "options.reference", {"options.reference[0] = 0 must be > 0"}));
    bad.reference = std::nullopt;
    bad.initial = vec({0.5, 0.5, 1e-6});  // sums to 1 + 1e-6: rejected, not renormalized
    CHECK_REJECTS(rspo::self_play(rspo::sppo{}, game(), bad),
                  is<domain_error>(fn, "options.initial", {"options.initial sums to 1.00000", "not renormalized"}));
    bad.initial = vec({1.0, 0.0});
    CHECK_REJECTS(rspo::self_play(rspo::sppo{}, game(), bad),
                  is<shape_error>(fn, "options.initial", {"options.initial has size 2"}));
    // An initial policy without full support is allowed (only the reference needs it).
    bad.initial = vec({1.0, 0.0, 0.0});
    CHECK_NOTHROW(rspo::self_play(rspo::sppo{}, game(), bad));
}

TEST_CASE("rspo_algorithm::loss", "[validation][algorithms][losses]") {
    const char* fn = "rspo::rspo_algorithm::loss";
    const std::vector<double> lp = {-1.0, -2.0, -0.5};
    const std::vector<double> win = {0.25, 0.5, 1.0};
    const std::vector<double> two = {-1.0, -2.0};
    const std::vector<double> empty;
    const rspo::mmd mmd{.eta = 1.0, .tau = 0.5};
    const rspo::sppo sppo{.eta = 1.0};

    CHECK_NOTHROW(sppo.loss({.log_pi_theta = lp, .log_pi_t = lp, .win_rate = win}));  // τ = 0: no μ
    CHECK_NOTHROW(mmd.loss({.log_pi_theta = lp, .log_pi_t = lp, .log_mu = lp, .win_rate = win}));

    CHECK_REJECTS(sppo.loss({.log_pi_theta = empty, .log_pi_t = empty, .win_rate = empty}),
                  is<shape_error>(fn, "log_pi_theta", {"log_pi_theta is empty"}));
    CHECK_REJECTS(sppo.loss({.log_pi_theta = lp, .log_pi_t = two, .win_rate = win}),
                  is<shape_error>(fn, "log_pi_t", {"log_pi_t has size 2 but log_pi_theta has size 3"}));
    CHECK_REJECTS(sppo.loss({.log_pi_theta = lp, .log_pi_t = lp, .win_rate = two}),
                  is<shape_error>(fn, "win_rate", {"win_rate has size 2"}));
    const std::vector<double> positive = {-1.0, 0.5, -0.5};
    CHECK_REJECTS(sppo.loss({.log_pi_theta = positive, .log_pi_t = lp, .win_rate = win}),
                  is<domain_error>(fn, "log_pi_theta", {"log_pi_theta[1] = 0.5 is not a finite log-probability"}));
    const std::vector<double> with_nan = {-1.0, -2.0, not_a_number};
    CHECK_REJECTS(sppo.loss({.log_pi_theta = lp, .log_pi_t = with_nan, .win_rate = win}),
                  is<domain_error>(fn, "log_pi_t", {"log_pi_t[2] = nan"}));
    const std::vector<double> with_inf = {-inf, -2.0, -1.0};
    CHECK_REJECTS(sppo.loss({.log_pi_theta = with_inf, .log_pi_t = lp, .win_rate = win}),
                  is<domain_error>(fn, "log_pi_theta", {"log_pi_theta[0] = -inf"}));
    const std::vector<double> bad_win = {0.25, 1.0 + 1e-12, 0.5};  // not clamped to 1
    CHECK_REJECTS(sppo.loss({.log_pi_theta = lp, .log_pi_t = lp, .win_rate = bad_win}),
                  is<domain_error>(fn, "win_rate[1]", {"win_rate[1] = 1.000000000001"}));

    CHECK_REJECTS(mmd.loss({.log_pi_theta = lp, .log_pi_t = lp, .win_rate = win}),
                  is<shape_error>(fn, "log_mu", {"log_mu has size 0 but log_pi_theta has size 3"}));
    CHECK_REJECTS(mmd.loss({.log_pi_theta = lp, .log_pi_t = lp, .log_mu = positive, .win_rate = win}),
                  is<domain_error>(fn, "log_mu", {"log_mu[1] = 0.5"}));

    const auto direct = rspo::make_rspo(rspo::forward_kl_direct{}, {.eta = 1.0, .tau = 0.5});
    CHECK_REJECTS(direct.loss({.log_pi_theta = lp, .log_pi_t = lp, .log_mu = lp, .win_rate = win}),
                  is<shape_error>(fn, "reference_log_pi_theta", {"reference_log_pi_theta is empty"}));
    const std::vector<double> bad_reference = {-1.0, 0.25};
    CHECK_REJECTS(direct.loss({.log_pi_theta = lp, .log_pi_t = lp, .log_mu = lp, .win_rate = win,
                               .reference_log_pi_theta = bad_reference}),
                  is<domain_error>(fn, "reference_log_pi_theta", {"reference_log_pi_theta[1] = 0.25"}));

    // The parameters are validated by the loss too.
    CHECK_REJECTS((rspo::sppo{.eta = not_a_number}.loss({.log_pi_theta = lp, .log_pi_t = lp, .win_rate = win})),
                  is<domain_error>(fn, "eta", {"eta = nan is not finite"}));
    CHECK_REJECTS((rspo::mmd{.eta = 1.0, .tau = -1.0}.loss(
                      {.log_pi_theta = lp, .log_pi_t = lp, .log_mu = lp, .win_rate = win})),
                  is<domain_error>(fn, "tau", {"tau = -1 must be >= 0"}));
}

TEST_CASE("inpo::loss", "[validation][algorithms][losses]") {
    const char* fn = "rspo::inpo::loss";
    const std::vector<double> lp = {-1.0, -2.0};
    const std::vector<double> one = {-1.0};
    const std::vector<double> positive = {-1.0, 0.125};
    const std::vector<double> empty;
    const rspo::inpo inpo{.eta = 1.0, .tau = 0.5};
    const auto batch = [&](const std::vector<double>& loser_theta, const std::vector<double>& winner_mu) {
        return rspo::inpo_pair_batch{.winner_log_pi_theta = lp, .loser_log_pi_theta = loser_theta,
                                     .winner_log_pi_t = lp, .loser_log_pi_t = lp,
                                     .winner_log_mu = winner_mu, .loser_log_mu = lp};
    };
    CHECK_NOTHROW(inpo.loss(batch(lp, lp)));
    CHECK_REJECTS(inpo.loss(batch(one, lp)),
                  is<shape_error>(fn, "loser_log_pi_theta",
                                  {"loser_log_pi_theta has size 1 but winner_log_pi_theta has size 2"}));
    CHECK_REJECTS(inpo.loss(batch(lp, positive)),
                  is<domain_error>(fn, "winner_log_mu", {"winner_log_mu[1] = 0.125"}));
    CHECK_REJECTS(inpo.loss(rspo::inpo_pair_batch{}),
                  is<shape_error>(fn, "winner_log_pi_theta", {"winner_log_pi_theta is empty"}));
    CHECK_REJECTS((rspo::inpo{.eta = 3.0, .tau = 0.5}.loss(batch(lp, lp))),
                  is<domain_error>(fn, "tau", {"eta * tau = 1.5 must be <= 1"}));
    CHECK_REJECTS((rspo::inpo{.eta = 0.0, .tau = 0.5}.loss(batch(lp, lp))),
                  is<domain_error>(fn, "eta", {"eta = 0 must be > 0"}));
    CHECK_REJECTS((rspo::inpo{.eta = 1.0, .tau = -0.5}.loss(batch(lp, lp))),
                  is<domain_error>(fn, "tau", {"tau = -0.5 must be >= 0"}));
}

TEST_CASE("callbacks and helpers", "[validation][algorithms]") {
    std::ostringstream out;
    CHECK_REJECTS(rspo::csv_logger(out, {}, 0), is<domain_error>("rspo::csv_logger", "every", {"every = 0"}));
    CHECK_REJECTS(rspo::stop_when_stationary(0.0),
                  is<domain_error>("rspo::stop_when_stationary", "tolerance", {"tolerance = 0 must be > 0"}));
    CHECK_REJECTS(rspo::tau_from_lambda(0.0, 1.0),
                  is<domain_error>("rspo::tau_from_lambda", "eta", {"eta = 0 must be > 0"}));
}

// ---------------------------------------------------------------------------------------------
// Nothing is silently clamped or renormalized
// ---------------------------------------------------------------------------------------------

TEST_CASE("inputs off by more than round-off are rejected, never repaired", "[validation]") {
    const Eigen::VectorXd almost = vec({0.25, 0.25, 0.5 + 1e-6});  // Σ = 1 + 1e-6
    CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(almost), rspo::domain_error);
    CHECK_THROWS_AS(rspo::exploitability(game(), almost), rspo::domain_error);
    CHECK_THROWS_AS(rspo::kl_divergence(almost, uniform3), rspo::domain_error);
    CHECK_THROWS_AS(rspo::kl_divergence(uniform3, almost), rspo::domain_error);
    CHECK_THROWS_AS(rspo::solve_regularized_equilibrium(game(), almost, 0.5, rspo::reverse_kl{}),
                    rspo::domain_error);
    CHECK_THROWS_AS(rspo::regularized_best_response(game(), almost, uniform3, 0.5, rspo::reverse_kl{}),
                    rspo::domain_error);

    // The tolerance is round-off sized: 1e-12 off is accepted (and used as given).
    const Eigen::VectorXd roundoff = vec({0.25, 0.25, 0.5 + 1e-12});
    CHECK_NOTHROW(rspo::exploitability(game(), roundoff));
    CHECK(rspo::validation_tolerance::sum_to_one <= 1e-9);
    CHECK(rspo::validation_tolerance::complementary <= 1e-9);

    // A game one part in 1e6 away from P + Pᵀ = 1 is rejected, not symmetrized.
    Eigen::MatrixXd P = game().preferences();
    P(1, 2) += 1e-6;
    CHECK_THROWS_AS(rspo::preference_game("almost", P), rspo::domain_error);
    CHECK_THROWS_AS(rspo::estimate_win_rates(P), rspo::domain_error);
}
