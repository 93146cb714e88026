// Oracles (matrix, Bradley-Terry, callback), the batched preference matrix, and what the losses
// consume: win-rate estimates, the (y_w, y_l) selection and INPO's drawn pair order.

#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <vector>

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::WithinAbs;

namespace {

/// Exact equality that also compares sizes first (Eigen's == asserts on a size mismatch).
template <class A, class B>
bool same(const A& a, const B& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() && a == b;
}

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

std::vector<std::size_t> iota(std::size_t n) {
    std::vector<std::size_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = i;
    return v;
}

std::span<const std::size_t> view(const std::vector<std::size_t>& v) { return v; }

double logistic(double z) { return 1.0 / (1.0 + std::exp(-z)); }

/// A judge that favours whichever response is shown first by `bias`; its true preference is
/// truth(a, b). Counts its calls.
struct position_biased_judge {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = std::size_t;

    Eigen::MatrixXd truth;
    double bias = 0.1;
    mutable std::size_t calls = 0;

    double prefer(rspo::single_prompt, std::size_t a, std::size_t b) const {
        ++calls;
        return truth(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)) + (a == b ? 0.0 : bias);
    }
};

/// An oracle with a batched prefer_all; prefer must not be called when prefer_all exists.
struct batched_oracle {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = std::size_t;

    Eigen::MatrixXd truth;
    Eigen::Index answer_size = -1;  ///< if ≥ 0, prefer_all answers a matrix of this (wrong) size
    mutable std::size_t prefer_calls = 0;
    mutable std::size_t prefer_all_calls = 0;

    double prefer(rspo::single_prompt, std::size_t a, std::size_t b) const {
        ++prefer_calls;
        return truth(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
    }
    Eigen::MatrixXd prefer_all(rspo::single_prompt, std::span<const std::size_t> ys) const {
        ++prefer_all_calls;
        const auto k = answer_size >= 0 ? answer_size : static_cast<Eigen::Index>(ys.size());
        Eigen::MatrixXd m = Eigen::MatrixXd::Constant(k, k, 0.5);
        for (Eigen::Index i = 0; i < k && i < static_cast<Eigen::Index>(ys.size()); ++i)
            for (Eigen::Index j = 0; j < k && j < static_cast<Eigen::Index>(ys.size()); ++j)
                m(i, j) = truth(static_cast<Eigen::Index>(ys[static_cast<std::size_t>(i)]),
                                static_cast<Eigen::Index>(ys[static_cast<std::size_t>(j)]));
        return m;
    }
};

/// A 3×3 preference matrix with every off-diagonal entry distinct.
Eigen::MatrixXd sample_pairwise() {
    Eigen::MatrixXd m(3, 3);
    m << 0.5, 0.9, 0.4,  //
        0.1, 0.5, 0.7,   //
        0.6, 0.3, 0.5;
    return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// matrix_oracle
// ---------------------------------------------------------------------------------------------

TEST_CASE("matrix_oracle looks up P(a > b) in the game's matrix", "[oracles][matrix_oracle]") {
    const auto game = rspo::games::biased_rock_paper_scissors();
    const rspo::matrix_oracle oracle(game);
    REQUIRE(oracle.size() == 3);
    CHECK(oracle.game().name() == "biased_rock_paper_scissors");
    CHECK(same(oracle.preferences(), game.preferences()));
    for (std::size_t a = 0; a < 3; ++a)
        for (std::size_t b = 0; b < 3; ++b)
            CHECK(oracle.prefer({}, a, b) ==
                  game.preferences()(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b)));
    // Spot values from the definition P = ½ + A/100 (A(0,1) = −25, A(1,2) = −5).
    CHECK(oracle.prefer({}, 0, 1) == 0.25);
    CHECK_THAT(oracle.prefer({}, 2, 1), WithinAbs(0.55, 1e-15));
}

TEST_CASE("matrix_oracle rejects out-of-range actions with index_error", "[oracles][matrix_oracle]") {
    const rspo::matrix_oracle oracle(rspo::games::rock_paper_scissors());
    try {
        (void)oracle.prefer({}, 3, 0);
        FAIL("no exception for a = 3");
    } catch (const rspo::index_error& e) {
        CHECK(e.argument() == "a");
        CHECK_THAT(e.what(), ContainsSubstring("rspo::matrix_oracle::prefer") &&
                                 ContainsSubstring("a = 3 is outside [0, 3)"));
    }
    try {
        (void)oracle.prefer({}, 0, 17);
        FAIL("no exception for b = 17");
    } catch (const rspo::index_error& e) {
        CHECK(e.argument() == "b");
        CHECK_THAT(e.what(), ContainsSubstring("b = 17"));
    }
    CHECK_NOTHROW(oracle.prefer({}, 2, 2));
}

// ---------------------------------------------------------------------------------------------
// bradley_terry_oracle
// ---------------------------------------------------------------------------------------------

TEST_CASE("bradley_terry_oracle gives sigma(scale * (s_a - s_b))", "[oracles][bradley_terry]") {
    const double scale = 2.5;
    const auto oracle = rspo::make_bradley_terry_oracle<int, double>(
        [](int x, double y) { return y + x; }, scale);  // the prompt shifts both scores alike
    const std::vector<double> scores = {-3.0, -0.4, 0.0, 0.1, 1.7, 6.0};
    for (double a : scores)
        for (double b : scores) {
            CAPTURE(a, b);
            // Absolute, not relative: for z < 0 the oracle computes 1 − σ(−z) (to keep exact
            // complementarity), which is accurate to ~1e-16 absolute but not relative.
            CHECK_THAT(oracle.prefer(7, a, b), WithinAbs(logistic(scale * (a - b)), 1e-15));
        }
    CHECK(oracle.prefer(7, 1.0, 0.0) > oracle.prefer(7, 0.5, 0.0));  // monotone in the gap
}

TEST_CASE("bradley_terry_oracle is exactly complementary and exactly 1/2 on ties",
          "[oracles][bradley_terry]") {
    const auto oracle =
        rspo::make_bradley_terry_oracle<rspo::single_prompt, double>(
            [](rspo::single_prompt, double y) { return y; });
    // Gaps from tiny to far past saturation (σ(40) rounds to 1 − 4e-18 → 1; σ(800) underflows).
    const std::vector<double> gaps = {1e-300, 1e-12, 0.1, 0.3, 1.0, 3.7, 17.0, 36.5, 40.0,
                                      745.0,  800.0, 1e6, 1e300};
    for (double gap : gaps)
        for (double base : {0.0, -2.25, 1e3}) {
            CAPTURE(gap, base);
            const double p = oracle.prefer({}, base + gap, base);
            const double q = oracle.prefer({}, base, base + gap);
            CHECK(p + q == 1.0);  // bit for bit, not approximately
            CHECK(p >= 0.5);
            CHECK(p <= 1.0);
            CHECK(q >= 0.0);
        }
    for (double s : {-1e300, -1.0, 0.0, 0.3, 1e300}) CHECK(oracle.prefer({}, s, s) == 0.5);
    // Saturation is exact, never outside [0, 1].
    CHECK(oracle.prefer({}, 1e300, -1e300) == 1.0);
    CHECK(oracle.prefer({}, -1e300, 1e300) == 0.0);
}

TEST_CASE("bradley_terry_oracle rejects a non-finite score and a non-positive scale",
          "[oracles][bradley_terry]") {
    const auto oracle = rspo::make_bradley_terry_oracle<rspo::single_prompt, double>(
        [](rspo::single_prompt, double y) { return y; });
    CHECK_THROWS_AS(oracle.prefer({}, not_a_number, 0.0), rspo::domain_error);
    CHECK_THROWS_AS(oracle.prefer({}, 0.0, std::numeric_limits<double>::infinity()),
                    rspo::domain_error);
    const auto identity = [](rspo::single_prompt, double y) { return y; };
    CHECK_THROWS_AS((rspo::make_bradley_terry_oracle<rspo::single_prompt, double>(identity, 0.0)),
                    rspo::domain_error);
    CHECK_THROWS_AS((rspo::make_bradley_terry_oracle<rspo::single_prompt, double>(identity, -1.0)),
                    rspo::domain_error);
}

// ---------------------------------------------------------------------------------------------
// callback_oracle
// ---------------------------------------------------------------------------------------------

TEST_CASE("callback_oracle passes a judge's probability through unchanged", "[oracles][callback]") {
    const auto oracle = rspo::make_callback_oracle<std::string, std::string>(
        [](const std::string&, const std::string& a, const std::string& b) {
            return a.size() > b.size() ? 0.8125 : (a.size() < b.size() ? 0.1875 : 0.5);
        });
    CHECK(oracle.prefer("x", "long", "s") == 0.8125);
    CHECK(oracle.prefer("x", "s", "long") == 0.1875);
    CHECK(oracle.prefer("x", "ab", "cd") == 0.5);
}

TEST_CASE("callback_oracle rejects a judge answer of 1.3 or NaN instead of clamping it",
          "[oracles][callback]") {
    double answer = 0.0;
    const auto oracle = rspo::make_callback_oracle<rspo::single_prompt, int>(
        [&answer](rspo::single_prompt, int, int) { return answer; });
    for (double bad : {1.3, not_a_number, -0.01, 1.0 + 1e-15}) {
        CAPTURE(bad);
        answer = bad;
        try {
            (void)oracle.prefer({}, 0, 1);
            FAIL("judge answer accepted");
        } catch (const rspo::domain_error& e) {
            CHECK(e.function() == "rspo::callback_oracle::prefer");
            CHECK(e.argument() == "judge(x, a, b)");
            CHECK_THAT(e.what(), ContainsSubstring("is not a probability in [0, 1]"));
        }
    }
    answer = 1.3;
    CHECK_THROWS_WITH(oracle.prefer({}, 0, 1), ContainsSubstring("judge(x, a, b) = 1.3"));
    answer = not_a_number;
    CHECK_THROWS_WITH(oracle.prefer({}, 0, 1), ContainsSubstring("nan"));
    answer = 1.0;  // the boundary itself is a probability
    CHECK(oracle.prefer({}, 0, 1) == 1.0);
}

// ---------------------------------------------------------------------------------------------
// preference_matrix
// ---------------------------------------------------------------------------------------------

TEST_CASE("preference_matrix with pair_query::once queries each unordered pair once",
          "[oracles][preference_matrix]") {
    const Eigen::MatrixXd truth = rspo::games::random_skew_symmetric(5, 11).preferences();
    const position_biased_judge judge{truth, 0.0};
    // Responses in a scrambled order, with a repeat: the matrix is indexed by sample, not action.
    const std::vector<std::size_t> ys = {3, 0, 4, 4, 1};
    const Eigen::MatrixXd m = rspo::preference_matrix(judge, {}, view(ys));
    CHECK(judge.calls == 5 * 4 / 2);
    REQUIRE(m.rows() == 5);
    REQUIRE(m.cols() == 5);
    for (Eigen::Index i = 0; i < 5; ++i)
        for (Eigen::Index j = 0; j < 5; ++j) {
            CAPTURE(i, j);
            const auto yi = static_cast<Eigen::Index>(ys[static_cast<std::size_t>(i)]);
            const auto yj = static_cast<Eigen::Index>(ys[static_cast<std::size_t>(j)]);
            if (i == j) CHECK(m(i, j) == 0.5);
            else if (i < j) CHECK(m(i, j) == truth(yi, yj));  // asked directly
            else CHECK(m(i, j) == 1.0 - truth(yj, yi));       // filled by complement
            CHECK(m(i, j) + m(j, i) == 1.0);
        }
    CHECK(m(2, 3) == 0.5);  // the same response sampled twice ties (the oracle says ½)
}

TEST_CASE("preference_matrix with both_orders cancels a judge's position bias",
          "[oracles][preference_matrix]") {
    Eigen::MatrixXd truth(3, 3);
    truth << 0.5, 0.7, 0.35,  //
        0.3, 0.5, 0.6,        //
        0.65, 0.4, 0.5;
    const position_biased_judge judge{truth, 0.125};
    const auto ys = iota(3);

    const Eigen::MatrixXd once = rspo::preference_matrix(judge, {}, view(ys), rspo::pair_query::once);
    REQUIRE(once.rows() == 3);
    REQUIRE(once.cols() == 3);
    CHECK(judge.calls == 3);
    // Querying one order keeps the bias: M(0, 1) = 0.7 + 0.125.
    CHECK_THAT(once(0, 1), WithinAbs(0.825, 1e-15));
    CHECK_THAT(once(1, 0), WithinAbs(0.175, 1e-15));

    judge.calls = 0;
    const Eigen::MatrixXd both =
        rspo::preference_matrix(judge, {}, view(ys), rspo::pair_query::both_orders);
    REQUIRE(both.rows() == 3);
    REQUIRE(both.cols() == 3);
    CHECK(judge.calls == 6);
    // ½(P + b + 1 − (1 − P + b)) = P: the bias cancels up to round-off in the averaging.
    for (Eigen::Index i = 0; i < 3; ++i)
        for (Eigen::Index j = 0; j < 3; ++j) {
            CAPTURE(i, j);
            CHECK_THAT(both(i, j), WithinAbs(truth(i, j), 1e-15));
            CHECK(both(i, j) + both(j, i) == 1.0);
        }
}

TEST_CASE("preference_matrix rejects a judge answer that is not a probability", "[oracles][preference_matrix]") {
    Eigen::MatrixXd truth = Eigen::MatrixXd::Constant(2, 2, 0.5);
    truth(0, 1) = 0.9375;
    truth(1, 0) = 0.0625;
    const position_biased_judge judge{truth, 0.125};  // 0.9375 + 0.125 = 1.0625 > 1 (all exact)
    const auto ys = iota(2);
    CHECK_THROWS_AS(rspo::preference_matrix(judge, {}, view(ys)), rspo::domain_error);
    // With both orders the reverse answer 0.0625 + 0.125 is fine but the forward one still is not.
    CHECK_THROWS_WITH(rspo::preference_matrix(judge, {}, view(ys), rspo::pair_query::both_orders),
                      ContainsSubstring("prefer(x, responses[0], responses[1]) = 1.0625"));
}

TEST_CASE("an oracle's prefer_all is used instead of prefer", "[oracles][preference_matrix]") {
    const Eigen::MatrixXd truth = rspo::games::biased_rock_paper_scissors().preferences();
    const batched_oracle oracle{truth};
    const std::vector<std::size_t> ys = {2, 0, 1, 0};
    const Eigen::MatrixXd m = rspo::preference_matrix(oracle, {}, view(ys));
    REQUIRE(m.rows() == 4);
    REQUIRE(m.cols() == 4);
    CHECK(oracle.prefer_all_calls == 1);
    CHECK(oracle.prefer_calls == 0);
    CHECK(m(0, 1) == truth(2, 0));
    CHECK(m(2, 3) == truth(1, 0));

    // The batched path feeds the estimators too.
    const Eigen::VectorXd w = rspo::estimate_win_rates(oracle, {}, view(ys));
    REQUIRE(w.size() == 4);
    CHECK(oracle.prefer_all_calls == 2);
    CHECK(oracle.prefer_calls == 0);
    CHECK_THAT(w[0], WithinAbs((0.5 + truth(2, 0) + truth(2, 1) + truth(2, 0)) / 4.0, 1e-15));
}

TEST_CASE("prefer_all's answer is checked for shape and validity", "[oracles][preference_matrix]") {
    const auto ys = iota(3);
    batched_oracle wrong_size{rspo::games::rock_paper_scissors().preferences()};
    wrong_size.answer_size = 2;
    CHECK_THROWS_AS(rspo::preference_matrix(wrong_size, {}, view(ys)), rspo::shape_error);

    Eigen::MatrixXd invalid = rspo::games::rock_paper_scissors().preferences();
    invalid(0, 1) = 0.25;  // P(0,1) + P(1,0) = 1.25
    const batched_oracle not_complementary{invalid};
    CHECK_THROWS_AS(rspo::preference_matrix(not_complementary, {}, view(ys)), rspo::domain_error);
}

// ---------------------------------------------------------------------------------------------
// estimate_win_rates
// ---------------------------------------------------------------------------------------------

TEST_CASE("estimate_win_rates: published vs unbiased on a hand-computed 3x3",
          "[oracles][win_rates]") {
    const Eigen::MatrixXd m = sample_pairwise();
    // Row sums 1.8, 1.3, 1.4 (each including the self-pair's ½).
    const Eigen::VectorXd published = rspo::estimate_win_rates(m);  // the default
    CHECK_THAT(published[0], WithinAbs(1.8 / 3.0, 1e-15));
    CHECK_THAT(published[1], WithinAbs(1.3 / 3.0, 1e-15));
    CHECK_THAT(published[2], WithinAbs(1.4 / 3.0, 1e-15));
    REQUIRE(published.size() == 3);
    CHECK(same(rspo::estimate_win_rates(m, rspo::win_rate_estimator::published), published));

    const Eigen::VectorXd unbiased = rspo::estimate_win_rates(m, rspo::win_rate_estimator::unbiased);
    REQUIRE(unbiased.size() == 3);
    CHECK_THAT(unbiased[0], WithinAbs(0.65, 1e-15));  // (0.9 + 0.4) / 2
    CHECK_THAT(unbiased[1], WithinAbs(0.40, 1e-15));  // (0.1 + 0.7) / 2
    CHECK_THAT(unbiased[2], WithinAbs(0.45, 1e-15));  // (0.6 + 0.3) / 2

    // The oracle overload queries the same pairs and agrees.
    const rspo::matrix_oracle oracle(rspo::preference_game("sample", m));
    const auto ys = iota(3);
    CHECK(same(rspo::estimate_win_rates(oracle, {}, view(ys)), published));
    CHECK(same(rspo::estimate_win_rates(oracle, {}, view(ys), rspo::win_rate_estimator::unbiased),
               unbiased));
}

TEST_CASE("estimate_win_rates: exact expectations over every K-tuple of samples",
          "[oracles][win_rates]") {
    // n = 3 actions, K = 3 samples y_k ~ π i.i.d.; enumerate all 3^3 tuples with their probability.
    // E[P̂_i | y_i = a] must be ((K−1)·P(a ≻ π) + ½)/K (published) and P(a ≻ π) (unbiased).
    const auto game = rspo::games::biased_rock_paper_scissors();
    const rspo::matrix_oracle oracle(game);
    Eigen::VectorXd pi(3);
    pi << 0.5, 0.3, 0.2;
    const Eigen::VectorXd q = game.win_rates(pi);  // P(a ≻ π)
    constexpr std::size_t n = 3, K = 3;

    for (auto estimator : {rspo::win_rate_estimator::published, rspo::win_rate_estimator::unbiased}) {
        // sum[i][a] accumulates Pr(tuple) · P̂_i over tuples with y_i = a.
        double sum[K][n] = {};
        double mass = 0.0;
        for (std::size_t t = 0; t < n * n * n; ++t) {
            const std::vector<std::size_t> ys = {t % n, (t / n) % n, t / (n * n)};
            const double prob = pi[static_cast<Eigen::Index>(ys[0])] *
                                pi[static_cast<Eigen::Index>(ys[1])] *
                                pi[static_cast<Eigen::Index>(ys[2])];
            mass += prob;
            const Eigen::VectorXd w = rspo::estimate_win_rates(oracle, {}, view(ys), estimator);
            REQUIRE(w.size() == static_cast<Eigen::Index>(K));
            for (std::size_t i = 0; i < K; ++i) sum[i][ys[i]] += prob * w[static_cast<Eigen::Index>(i)];
        }
        REQUIRE_THAT(mass, WithinAbs(1.0, 1e-15));
        for (std::size_t i = 0; i < K; ++i)
            for (std::size_t a = 0; a < n; ++a) {
                CAPTURE(estimator == rspo::win_rate_estimator::published, i, a);
                const double conditional = sum[i][a] / pi[static_cast<Eigen::Index>(a)];
                const double qa = q[static_cast<Eigen::Index>(a)];
                const double expected = estimator == rspo::win_rate_estimator::published
                                            ? ((K - 1) * qa + 0.5) / K
                                            : qa;
                CHECK_THAT(conditional, WithinAbs(expected, 1e-12));
            }
    }
    // The fixture is not degenerate: the two estimators' means differ for every action.
    for (Eigen::Index a = 0; a < 3; ++a) CHECK(std::abs(((K - 1) * q[a] + 0.5) / K - q[a]) > 1e-3);
}

TEST_CASE("estimate_win_rates with K = 1: published is 1/2, unbiased throws shape_error",
          "[oracles][win_rates]") {
    const Eigen::MatrixXd one = Eigen::MatrixXd::Constant(1, 1, 0.5);
    CHECK(rspo::estimate_win_rates(one)[0] == 0.5);
    CHECK_THROWS_AS(rspo::estimate_win_rates(one, rspo::win_rate_estimator::unbiased),
                    rspo::shape_error);
    CHECK_THROWS_WITH(rspo::estimate_win_rates(one, rspo::win_rate_estimator::unbiased),
                      ContainsSubstring("K = 1"));
}

// ---------------------------------------------------------------------------------------------
// select_best_worst
// ---------------------------------------------------------------------------------------------

TEST_CASE("select_best_worst picks argmax/argmin, first index on ties, (0, K-1) when all equal",
          "[oracles][selection]") {
    const auto pick = [](std::vector<double> values) {
        return rspo::select_best_worst(
            Eigen::Map<const Eigen::VectorXd>(values.data(), static_cast<Eigen::Index>(values.size())));
    };
    CHECK(pick({0.3, 0.9, 0.1, 0.5}) == rspo::response_pair{1, 2});
    CHECK(pick({0.2, 0.6}) == rspo::response_pair{1, 0});
    // Ties: the first maximizer and the first minimizer.
    CHECK(pick({0.3, 0.7, 0.7, 0.1, 0.1}) == rspo::response_pair{1, 3});
    CHECK(pick({0.5, 0.2, 0.2, 0.9, 0.9}) == rspo::response_pair{3, 1});
    // All equal: two distinct samples, the first and the last.
    CHECK(pick({0.5, 0.5, 0.5, 0.5, 0.5}) == rspo::response_pair{0, 4});
    CHECK(pick({1.0, 1.0}) == rspo::response_pair{0, 1});
    // Boundary values are probabilities.
    CHECK(pick({0.0, 1.0, 0.5}) == rspo::response_pair{1, 0});
}

// ---------------------------------------------------------------------------------------------
// draw_ordered_pair(s)
// ---------------------------------------------------------------------------------------------

TEST_CASE("draw_ordered_pair: a wins with probability p, deterministically for a seed",
          "[oracles][pairs]") {
    constexpr std::size_t draws = 200000;
    for (double p : {0.3, 0.5, 0.97}) {
        CAPTURE(p);
        rspo::random_engine rng(20240601);
        std::size_t a_wins = 0, malformed = 0;
        for (std::size_t i = 0; i < draws; ++i) {
            const auto pair = rspo::draw_ordered_pair(p, 4, 9, rng);
            a_wins += pair == rspo::response_pair{4, 9};
            malformed += pair != rspo::response_pair{4, 9} && pair != rspo::response_pair{9, 4};
        }
        CHECK(malformed == 0);
        // Binomial(draws, p): 5 standard deviations (a fixed seed makes this deterministic anyway).
        const double mean = static_cast<double>(draws) * p;
        const double sd = std::sqrt(static_cast<double>(draws) * p * (1.0 - p));
        CHECK(std::abs(static_cast<double>(a_wins) - mean) <= 5.0 * sd);
    }
    // p = 0 and p = 1 are certain.
    rspo::random_engine rng(1);
    int wrong = 0;
    for (int i = 0; i < 1000; ++i) {
        wrong += rspo::draw_ordered_pair(0.0, 0, 1, rng) != rspo::response_pair{1, 0};
        wrong += rspo::draw_ordered_pair(1.0, 0, 1, rng) != rspo::response_pair{0, 1};
    }
    CHECK(wrong == 0);
    // Same seed, same sequence; another seed, another sequence.
    rspo::random_engine r1(77), r2(77), r3(78);
    std::vector<std::size_t> s1, s2, s3;
    for (int i = 0; i < 256; ++i) {
        s1.push_back(rspo::draw_ordered_pair(0.5, 0, 1, r1).winner);
        s2.push_back(rspo::draw_ordered_pair(0.5, 0, 1, r2).winner);
        s3.push_back(rspo::draw_ordered_pair(0.5, 0, 1, r3).winner);
    }
    CHECK(s1 == s2);
    CHECK(s1 != s3);
}

TEST_CASE("draw_ordered_pairs pairs (0,1), (2,3), ... and drops an odd last sample",
          "[oracles][pairs]") {
    // P(0 ≻ 1) = 1 and P(2 ≻ 3) = 0 make the orders certain; sample 4 has no partner.
    Eigen::MatrixXd m = Eigen::MatrixXd::Constant(5, 5, 0.5);
    m(0, 1) = 1.0;
    m(1, 0) = 0.0;
    m(2, 3) = 0.0;
    m(3, 2) = 1.0;
    rspo::random_engine rng(5);
    const auto pairs = rspo::draw_ordered_pairs(m, rng);
    REQUIRE(pairs.size() == 2);
    CHECK(pairs[0] == rspo::response_pair{0, 1});
    CHECK(pairs[1] == rspo::response_pair{3, 2});

    const Eigen::MatrixXd four = m.topLeftCorner(4, 4);
    CHECK(rspo::draw_ordered_pairs(four, rng).size() == 2);
    const Eigen::MatrixXd single = Eigen::MatrixXd::Constant(1, 1, 0.5);
    CHECK(rspo::draw_ordered_pairs(single, rng).empty());

    // Deterministic for a seed with genuinely random orders.
    const Eigen::MatrixXd random = rspo::games::random_skew_symmetric(8, 3).preferences();
    rspo::random_engine a(9), b(9);
    CHECK(rspo::draw_ordered_pairs(random, a) == rspo::draw_ordered_pairs(random, b));
}
