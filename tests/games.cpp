// The fixture games in rspo::games (validity, recorded Nash equilibria, their exploitability) and
// load_preference_game (parsing and every rejection).

#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <vector>

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::WithinAbs;

namespace {

/// Exact equality that also compares sizes first (Eigen's == asserts on a size mismatch).
template <class A, class B>
bool same(const A& a, const B& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() && a == b;
}

/// Every fixture, with the parameters the tests below rely on.
std::vector<rspo::preference_game> all_fixtures() {
    Eigen::VectorXd scores(4);
    scores << 0.3, -1.2, 2.5, 0.0;
    Eigen::VectorXd extreme_scores(3);
    extreme_scores << 0.0, 800.0, -800.0;  // saturated: P entries exactly 0 and 1
    return {rspo::games::rock_paper_scissors(),
            rspo::games::biased_rock_paper_scissors(),
            rspo::games::weighted_cycle({0.1, 0.3, 0.2}),
            rspo::games::weighted_cycle({0.25, 0.25, 0.25, 0.25, 0.25}),
            rspo::games::weighted_cycle({0.5, 0.1, 0.2, 0.05}),
            rspo::games::random_skew_symmetric(7, 123),
            rspo::games::random_skew_symmetric(1, 0),
            rspo::games::bradley_terry(scores),
            rspo::games::bradley_terry(extreme_scores),
            rspo::games::all_ties(4)};
}

/// The fixtures whose preferences are intransitive (each pure action is beaten by another).
std::vector<rspo::preference_game> intransitive_fixtures() {
    return {rspo::games::rock_paper_scissors(), rspo::games::biased_rock_paper_scissors(),
            rspo::games::weighted_cycle({0.1, 0.3, 0.2}),
            rspo::games::weighted_cycle({0.25, 0.25, 0.25, 0.25, 0.25})};
}

Eigen::VectorXd pure(std::size_t n, std::size_t i) {
    return Eigen::VectorXd::Unit(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(i));
}

/// A file under the system temp directory, removed on destruction. The name is made unique with
/// std::random_device because ctest runs test cases as concurrent processes; only the name is
/// random, never the test's data.
class temp_file {
public:
    explicit temp_file(const std::string& contents) {
        std::random_device rd;
        do {
            path_ = std::filesystem::temp_directory_path() /
                    ("rspo_test_games_" + std::to_string(rd()) + "_" + std::to_string(rd()) + ".txt");
        } while (std::filesystem::exists(path_));
        std::ofstream out(path_, std::ios::binary);
        out << contents;
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file() {
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }
    [[nodiscard]] std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

/// The matrix as text, each entry with 17 significant digits (enough to round-trip a double).
std::string to_text(const Eigen::MatrixXd& P) {
    std::string text = "# written by to_text\n";
    char buf[40];
    for (Eigen::Index i = 0; i < P.rows(); ++i) {
        for (Eigen::Index j = 0; j < P.cols(); ++j) {
            std::snprintf(buf, sizeof buf, "%.17g", P(i, j));
            text += (j ? ", " : "") + std::string(buf);
        }
        text += '\n';
    }
    return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

TEST_CASE("every fixture is a valid preference game", "[games][fixtures]") {
    for (const auto& game : all_fixtures()) {
        CAPTURE(game.name());
        const Eigen::MatrixXd& P = game.preferences();
        REQUIRE(P.rows() == P.cols());
        REQUIRE(game.size() == static_cast<std::size_t>(P.rows()));
        CHECK_FALSE(game.name().empty());
        CHECK(P.minCoeff() >= 0.0);
        CHECK(P.maxCoeff() <= 1.0);
        CHECK((P.diagonal().array() == 0.5).all());
        // 1e-15: each fixture computes P_ji = 1 − P_ij or two σ's that sum to 1 within an ulp.
        CHECK(((P + P.transpose()).array() - 1.0).abs().maxCoeff() <= 1e-15);
        if (const auto& ne = game.nash_equilibrium()) {
            REQUIRE(ne->size() == P.rows());
            CHECK(ne->minCoeff() >= 0.0);
            CHECK_THAT(ne->sum(), WithinAbs(1.0, 1e-15));
        }
        // The library's own validation accepts it (again).
        CHECK_NOTHROW(rspo::preference_game(game.name(), P, game.nash_equilibrium()));
    }
}

TEST_CASE("recorded Nash equilibria are unexploitable; pure actions of intransitive games are not",
          "[games][fixtures]") {
    std::size_t with_nash = 0;
    for (const auto& game : all_fixtures()) {
        CAPTURE(game.name());
        const auto& ne = game.nash_equilibrium();
        if (!ne) continue;
        ++with_nash;
        CHECK(rspo::exploitability(game, *ne) <= 1e-15);
    }
    // RPS, biased RPS, two weighted cycles (n = 3; n = 5 equal) and the Bradley-Terry games.
    CHECK(with_nash == 6);

    for (const auto& game : intransitive_fixtures()) {
        CAPTURE(game.name());
        REQUIRE(game.nash_equilibrium().has_value());
        // An interior equilibrium equalizes every win rate at ½.
        const Eigen::VectorXd q = game.win_rates(*game.nash_equilibrium());
        CHECK((q.array() - 0.5).abs().maxCoeff() <= 1e-15);
        for (std::size_t i = 0; i < game.size(); ++i) {
            CAPTURE(i);
            CHECK(rspo::exploitability(game, pure(game.size(), i)) > 0.0);
        }
    }
}

TEST_CASE("rock_paper_scissors: uniform equilibrium, each pure action exploitable by 1/2",
          "[games][fixtures]") {
    const auto game = rspo::games::rock_paper_scissors();
    REQUIRE(game.nash_equilibrium().has_value());
    CHECK(same(*game.nash_equilibrium(), Eigen::VectorXd::Constant(3, 1.0 / 3.0)));
    CHECK(game.lipschitz() == 0.5);
    for (std::size_t i = 0; i < 3; ++i) CHECK(rspo::exploitability(game, pure(3, i)) == 0.5);
    // Paper beats rock, rock beats scissors, scissors beat paper.
    CHECK(game.preferences()(1, 0) == 1.0);
    CHECK(game.preferences()(0, 2) == 1.0);
    CHECK(game.preferences()(2, 1) == 1.0);
}

TEST_CASE("biased_rock_paper_scissors: NE (1, 10, 5)/16, L = 1/2, P = 1/2 + A/100",
          "[games][fixtures]") {
    const auto game = rspo::games::biased_rock_paper_scissors();
    REQUIRE(game.nash_equilibrium().has_value());
    const Eigen::VectorXd& ne = *game.nash_equilibrium();
    CHECK(ne[0] == 1.0 / 16.0);
    CHECK(ne[1] == 10.0 / 16.0);
    CHECK(ne[2] == 5.0 / 16.0);
    CHECK(game.lipschitz() == 0.5);

    Eigen::MatrixXd A(3, 3);  // OpenSpiel's biased RPS payoff
    A << 0, -25, 50,  //
        25, 0, -5,    //
        -50, 5, 0;
    CHECK(((game.preferences().array() - 0.5 - A.array() / 100.0).abs().maxCoeff()) <= 1e-16);

    // Exploitability of each pure action: the best column entry − ½ (0.75, 0.55, 1.0).
    CHECK_THAT(rspo::exploitability(game, pure(3, 0)), WithinAbs(0.25, 1e-15));
    CHECK_THAT(rspo::exploitability(game, pure(3, 1)), WithinAbs(0.05, 1e-15));
    CHECK_THAT(rspo::exploitability(game, pure(3, 2)), WithinAbs(0.50, 1e-15));
    // The uniform policy is not the equilibrium of this game.
    CHECK(rspo::exploitability(game, Eigen::VectorXd::Constant(3, 1.0 / 3.0)) > 0.01);
}

TEST_CASE("weighted_cycle: P(i > i+1) = 1/2 + w_i, 3-cycle NE proportional to w_{i+1}",
          "[games][fixtures]") {
    const std::vector<double> w = {0.1, 0.3, 0.2};
    const auto game = rspo::games::weighted_cycle(w);
    const Eigen::MatrixXd& P = game.preferences();
    for (Eigen::Index i = 0; i < 3; ++i) CHECK(P(i, (i + 1) % 3) == 0.5 + w[static_cast<std::size_t>(i)]);
    CHECK_THAT(game.lipschitz(), WithinAbs(0.3, 1e-15));  // max w, up to the round-off of ½ ± w
    REQUIRE(game.nash_equilibrium().has_value());
    // π ∝ (w_1, w_2, w_0) = (0.3, 0.2, 0.1) = (1/2, 1/3, 1/6).
    const Eigen::VectorXd& ne = *game.nash_equilibrium();
    CHECK_THAT(ne[0], WithinAbs(1.0 / 2.0, 1e-15));
    CHECK_THAT(ne[1], WithinAbs(1.0 / 3.0, 1e-15));
    CHECK_THAT(ne[2], WithinAbs(1.0 / 6.0, 1e-15));
    CHECK(rspo::exploitability(game, ne) <= 1e-15);

    SECTION("five equal weights: uniform NE, non-adjacent pairs tie") {
        const auto five = rspo::games::weighted_cycle({0.2, 0.2, 0.2, 0.2, 0.2});
        REQUIRE(five.nash_equilibrium().has_value());
        CHECK(same(*five.nash_equilibrium(), Eigen::VectorXd::Constant(5, 0.2)));
        CHECK(five.preferences()(0, 2) == 0.5);
        CHECK(five.preferences()(4, 0) == 0.7);
        CHECK(five.preferences()(0, 4) == 0.5 - 0.2);
        CHECK(five.name() == "weighted_cycle_5");
    }
    SECTION("no equilibrium is recorded where the header says none is known") {
        CHECK_FALSE(rspo::games::weighted_cycle({0.2, 0.2, 0.2, 0.2}).nash_equilibrium());
        CHECK_FALSE(rspo::games::weighted_cycle({0.1, 0.2, 0.3, 0.4, 0.5}).nash_equilibrium());
    }
}

TEST_CASE("random_skew_symmetric is deterministic per seed and differs across seeds",
          "[games][fixtures]") {
    const auto a = rspo::games::random_skew_symmetric(6, 42);
    const auto b = rspo::games::random_skew_symmetric(6, 42);
    const auto c = rspo::games::random_skew_symmetric(6, 43);
    CHECK(same(a.preferences(), b.preferences()));
    CHECK_FALSE(same(a.preferences(), c.preferences()));
    CHECK(a.name() == "random_skew_symmetric_6_seed42");
    CHECK_FALSE(a.nash_equilibrium().has_value());
    // Every upper-triangle entry is an independent draw: all 15 distinct.
    std::vector<double> upper;
    for (Eigen::Index i = 0; i < 6; ++i)
        for (Eigen::Index j = i + 1; j < 6; ++j) upper.push_back(a.preferences()(i, j));
    std::sort(upper.begin(), upper.end());
    CHECK(std::adjacent_find(upper.begin(), upper.end()) == upper.end());
    // The lower triangle is the exact complement.
    for (Eigen::Index i = 0; i < 6; ++i)
        for (Eigen::Index j = i + 1; j < 6; ++j)
            CHECK(a.preferences()(j, i) == 1.0 - a.preferences()(i, j));
}

TEST_CASE("bradley_terry: P = sigma(s_i - s_j), NE the unit vector of the best score",
          "[games][fixtures]") {
    Eigen::VectorXd s(4);
    s << 0.3, -1.2, 2.5, 0.0;
    const auto game = rspo::games::bradley_terry(s);
    for (Eigen::Index i = 0; i < 4; ++i)
        for (Eigen::Index j = 0; j < 4; ++j)
            CHECK_THAT(game.preferences()(i, j), WithinAbs(1.0 / (1.0 + std::exp(s[j] - s[i])), 1e-16));
    REQUIRE(game.nash_equilibrium().has_value());
    CHECK(same(*game.nash_equilibrium(), pure(4, 2)));
    CHECK(rspo::exploitability(game, pure(4, 2)) == 0.0);
    // Transitive: every other pure action loses to the best one.
    for (std::size_t i : {0u, 1u, 3u}) CHECK(rspo::exploitability(game, pure(4, i)) > 0.0);

    Eigen::VectorXd tied(3);
    tied << 1.0, 3.0, 3.0;
    CHECK_FALSE(rspo::games::bradley_terry(tied).nash_equilibrium().has_value());
}

TEST_CASE("all_ties: every policy is an equilibrium, L = 0, none recorded", "[games][fixtures]") {
    const auto game = rspo::games::all_ties(4);
    CHECK(game.lipschitz() == 0.0);
    CHECK_FALSE(game.nash_equilibrium().has_value());
    Eigen::VectorXd pi(4);
    pi << 0.7, 0.1, 0.2, 0.0;
    CHECK(rspo::exploitability(game, pi) == 0.0);
    CHECK(rspo::exploitability(game, pure(4, 3)) == 0.0);
}

// ---------------------------------------------------------------------------------------------
// load_preference_game
// ---------------------------------------------------------------------------------------------

TEST_CASE("load_preference_game reads commas, spaces, tabs, comments, blank lines and CRLF",
          "[games][load]") {
    const temp_file file(
        "# biased rock-paper-scissors\n"
        "\n"
        "0.5, 0.25, 1.0\n"
        "   # an indented comment\n"
        "0.75 0.5\t0.45\r\n"
        "  \t \n"
        "0 ,0.55,  5e-1   \n");
    const auto game = rspo::games::load_preference_game(file.path());
    CHECK(game.name() == file.path());
    CHECK(same(game.preferences(), rspo::games::biased_rock_paper_scissors().preferences()));
    CHECK_FALSE(game.nash_equilibrium().has_value());
}

TEST_CASE("load_preference_game round-trips fixtures written with 17 digits", "[games][load]") {
    for (const auto& game : all_fixtures()) {
        CAPTURE(game.name());
        const temp_file file(to_text(game.preferences()));
        CHECK(same(rspo::games::load_preference_game(file.path()).preferences(), game.preferences()));
    }
}

TEST_CASE("load_preference_game reads back subnormal probabilities", "[games][load]") {
    // σ(−709) ≈ 1.2e-308 is subnormal but a valid probability; %.17g writes it as "1.2...e-308".
    // A saved Bradley-Terry game with a score gap of 709 must load back unchanged.
    Eigen::VectorXd s(2);
    s << 0.0, 709.0;
    const auto game = rspo::games::bradley_terry(s);
    REQUIRE(game.preferences()(0, 1) > 0.0);
    REQUIRE(game.preferences()(0, 1) < 2.2250738585072014e-308);  // below DBL_MIN
    const temp_file file(to_text(game.preferences()));
    rspo::preference_game loaded("placeholder", Eigen::MatrixXd::Constant(1, 1, 0.5));
    REQUIRE_NOTHROW(loaded = rspo::games::load_preference_game(file.path()));
    CHECK(same(loaded.preferences(), game.preferences()));
}

TEST_CASE("load_preference_game rejects a missing file with io_error", "[games][load]") {
    const std::string missing =
        (std::filesystem::temp_directory_path() / "rspo_test_games_this_file_does_not_exist.txt")
            .string();
    REQUIRE_FALSE(std::filesystem::exists(missing));
    CHECK_THROWS_AS(rspo::games::load_preference_game(missing), rspo::io_error);
    CHECK_THROWS_WITH(rspo::games::load_preference_game(missing),
                      ContainsSubstring("cannot open") && ContainsSubstring(missing));
}

TEST_CASE("load_preference_game rejects malformed text with io_error", "[games][load]") {
    SECTION("ragged rows") {
        const temp_file file("0.5 0.5\n# comment\n0.5 0.5 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::io_error);
        // Line numbers count comment and blank lines: the ragged row is line 3.
        CHECK_THROWS_WITH(rspo::games::load_preference_game(file.path()),
                          ContainsSubstring("line 3 has 3 entries, the first row has 2"));
    }
    SECTION("a non-number") {
        const temp_file file("0.5, abc\n0.5, 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::io_error);
        CHECK_THROWS_WITH(rspo::games::load_preference_game(file.path()),
                          ContainsSubstring("line 1: cannot read a number at 'abc'"));
    }
    SECTION("a number with trailing garbage") {
        const temp_file file("0.5 0.5x\n0.5 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::io_error);
    }
    SECTION("a trailing comment on a data line") {
        const temp_file file("0.5 0.5 # note\n0.5 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::io_error);
    }
    SECTION("an overflowing number") {
        const temp_file file("0.5 1e999\n0 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::io_error);
    }
    SECTION("no rows at all") {
        const temp_file file("# only a comment\n\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::io_error);
        CHECK_THROWS_WITH(rspo::games::load_preference_game(file.path()), ContainsSubstring("no rows"));
    }
}

TEST_CASE("load_preference_game validates the matrix like any game", "[games][load]") {
    SECTION("P + P^T != 1: domain_error naming the entries") {
        const temp_file file("0.5 0.75 0.5\n0.375 0.5 0.5\n0.5 0.5 0.5\n");
        try {
            (void)rspo::games::load_preference_game(file.path());
            FAIL("an invalid matrix was accepted");
        } catch (const rspo::domain_error& e) {
            CHECK(e.argument() == "preferences");
            CHECK_THAT(e.what(), ContainsSubstring("preferences(0, 1) + preferences(1, 0) = 1.125"));
        }
    }
    SECTION("an entry outside [0, 1]") {
        const temp_file file("0.5 1.5\n-0.5 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::domain_error);
        CHECK_THROWS_WITH(rspo::games::load_preference_game(file.path()),
                          ContainsSubstring("preferences(0, 1) = 1.5"));
    }
    SECTION("a diagonal entry that is not 1/2") {
        const temp_file file("0.4 0.5\n0.5 0.5\n");
        CHECK_THROWS_WITH(rspo::games::load_preference_game(file.path()),
                          ContainsSubstring("preferences(0, 0) + preferences(0, 0) = 0.8"));
    }
    SECTION("non-square: shape_error") {
        const temp_file file("0.5 0.5 0.5\n0.5 0.5 0.5\n");
        CHECK_THROWS_AS(rspo::games::load_preference_game(file.path()), rspo::shape_error);
        CHECK_THROWS_WITH(rspo::games::load_preference_game(file.path()), ContainsSubstring("2x3"));
    }
}
