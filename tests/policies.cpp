// tabular_policy (construction, validation, log-probabilities, sampling) and the deterministic
// random primitives it samples with (uniform01, sample_categorical).

#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <vector>

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::WithinAbs;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

Eigen::VectorXd vec(std::initializer_list<double> values) {
    Eigen::VectorXd v(static_cast<Eigen::Index>(values.size()));
    Eigen::Index i = 0;
    for (double x : values) v[i++] = x;
    return v;
}

/// Counts of each index over `draws` calls of `draw(rng)` with a fixed seed.
template <class Draw>
std::vector<std::size_t> histogram(std::size_t n, std::size_t draws, std::uint64_t seed, Draw draw) {
    std::vector<std::size_t> counts(n + 1, 0);  // the extra bin catches out-of-range answers
    rspo::random_engine rng(seed);
    for (std::size_t i = 0; i < draws; ++i) {
        const std::size_t y = draw(rng);
        ++counts[y < n ? y : n];
    }
    return counts;
}

/// Each count within 5 binomial standard deviations of draws · p_i. The seeds are fixed, so this
/// is deterministic; 5σ makes the check insensitive to which fixed seed is chosen.
void check_frequencies(const std::vector<std::size_t>& counts, const Eigen::VectorXd& p,
                       std::size_t draws) {
    const auto n = static_cast<std::size_t>(p.size());
    CHECK(counts[n] == 0);  // nothing out of range
    for (std::size_t i = 0; i < n; ++i) {
        const double pi = p[static_cast<Eigen::Index>(i)];
        const double mean = static_cast<double>(draws) * pi;
        const double sd = std::sqrt(static_cast<double>(draws) * pi * (1.0 - pi));
        CAPTURE(i, pi, counts[i]);
        if (pi == 0.0) CHECK(counts[i] == 0);
        else CHECK(std::abs(static_cast<double>(counts[i]) - mean) <= 5.0 * sd);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

TEST_CASE("from_probabilities keeps the probabilities and their logs", "[policies][construction]") {
    const Eigen::VectorXd p = vec({0.1, 0.25, 0.0, 0.65});
    const auto policy = rspo::tabular_policy::from_probabilities(p);
    REQUIRE(policy.size() == 4);
    REQUIRE(policy.probabilities().size() == 4);
    for (std::size_t y = 0; y < 4; ++y) {
        CAPTURE(y);
        const double py = p[static_cast<Eigen::Index>(y)];
        // log then exp: a few ulps.
        CHECK_THAT(policy.probabilities()[static_cast<Eigen::Index>(y)], WithinAbs(py, 1e-15));
        CHECK(policy.log_prob({}, y) <= 0.0);
        if (py > 0.0) CHECK_THAT(policy.log_prob({}, y), WithinAbs(std::log(py), 1e-15));
    }
    CHECK(policy.log_prob({}, 2) == -inf);
    CHECK(policy.probabilities()[2] == 0.0);
    CHECK(policy.log_probabilities()[3] == policy.log_prob({}, 3));
}

TEST_CASE("from_logits is softmax, stable for large logits", "[policies][construction]") {
    const auto policy = rspo::tabular_policy::from_logits(vec({1.0, 2.0, 3.0}));
    const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    CHECK_THAT(policy.probabilities()[0], WithinAbs(std::exp(1.0) / z, 1e-15));
    CHECK_THAT(policy.probabilities()[1], WithinAbs(std::exp(2.0) / z, 1e-15));
    CHECK_THAT(policy.probabilities()[2], WithinAbs(std::exp(3.0) / z, 1e-15));
    // Shift invariance: logits of 1000 would overflow exp() if not taken in log space. 1e-12: the
    // logits themselves resolve only ulp(1000) ≈ 1.1e-13, which log π − log Z inherits.
    const auto shifted = rspo::tabular_policy::from_logits(vec({1001.0, 1002.0, 1003.0}));
    CHECK((shifted.probabilities() - policy.probabilities()).cwiseAbs().maxCoeff() <= 1e-12);
    CHECK(shifted.probabilities().allFinite());
    for (std::size_t y = 0; y < 3; ++y) CHECK(shifted.log_prob({}, y) <= 0.0);
    // Very negative logits keep relative precision in log space: log π = −1000 − log(1 + e^−1000).
    const auto tiny = rspo::tabular_policy::from_logits(vec({0.0, -1000.0}));
    CHECK(tiny.log_prob({}, 1) == -1000.0);
    CHECK(tiny.log_prob({}, 0) == 0.0);
}

TEST_CASE("uniform(n) gives 1/n everywhere", "[policies][construction]") {
    const auto policy = rspo::tabular_policy::uniform(4);
    REQUIRE(policy.size() == 4);
    for (std::size_t y = 0; y < 4; ++y) {
        CHECK_THAT(policy.probabilities()[static_cast<Eigen::Index>(y)], WithinAbs(0.25, 1e-16));
        CHECK_THAT(policy.log_prob({}, y), WithinAbs(-std::log(4.0), 1e-15));
    }
    CHECK(rspo::tabular_policy::uniform(1).log_prob({}, 0) == 0.0);
}

TEST_CASE("from_logits with -inf entries gives probability 0 that is never sampled",
          "[policies][construction][sampling]") {
    const auto policy = rspo::tabular_policy::from_logits(vec({-inf, 0.0, -inf, std::log(3.0), -inf}));
    CHECK(policy.probabilities()[0] == 0.0);
    CHECK(policy.probabilities()[2] == 0.0);
    CHECK(policy.probabilities()[4] == 0.0);
    CHECK(policy.log_prob({}, 0) == -inf);
    CHECK_THAT(policy.probabilities()[1], WithinAbs(0.25, 1e-15));
    CHECK_THAT(policy.probabilities()[3], WithinAbs(0.75, 1e-15));
    constexpr std::size_t draws = 100000;
    const auto counts = histogram(5, draws, 99, [&](rspo::random_engine& rng) {
        return policy.sample({}, rng);
    });
    check_frequencies(counts, vec({0.0, 0.25, 0.0, 0.75, 0.0}), draws);
}

TEST_CASE("log_prob rejects a response outside the policy", "[policies][construction]") {
    const auto policy = rspo::tabular_policy::uniform(3);
    CHECK_THROWS_AS(policy.log_prob({}, 3), rspo::index_error);
    CHECK_THROWS_WITH(policy.log_prob({}, 3), ContainsSubstring("y = 3 is outside [0, 3)"));
}

// ---------------------------------------------------------------------------------------------
// Validation: nothing is renormalized or clamped
// ---------------------------------------------------------------------------------------------

TEST_CASE("from_probabilities rejects negative entries, NaN and a sum of 1.01",
          "[policies][validation]") {
    SECTION("a negative entry (even when the sum is 1)") {
        CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(vec({-0.25, 0.5, 0.75})),
                        rspo::domain_error);
        CHECK_THROWS_WITH(rspo::tabular_policy::from_probabilities(vec({-0.25, 0.5, 0.75})),
                          ContainsSubstring("p[0] = -0.25 is not a probability"));
    }
    SECTION("NaN") {
        CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(vec({0.5, not_a_number, 0.5})),
                        rspo::domain_error);
        CHECK_THROWS_WITH(rspo::tabular_policy::from_probabilities(vec({0.5, not_a_number, 0.5})),
                          ContainsSubstring("p[1] = nan"));
    }
    SECTION("+inf") {
        CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(vec({inf, 0.0})), rspo::domain_error);
    }
    SECTION("a sum of 1.01 is not renormalized") {
        try {
            (void)rspo::tabular_policy::from_probabilities(vec({0.5, 0.51}));
            FAIL("a vector summing to 1.01 was accepted");
        } catch (const rspo::domain_error& e) {
            CHECK(e.argument() == "p");
            CHECK_THAT(e.what(), ContainsSubstring("rspo::tabular_policy::from_probabilities") &&
                                     ContainsSubstring("sums to 1.01") &&
                                     ContainsSubstring("not renormalized"));
        }
    }
    SECTION("a sum of 1 + 1e-6 or 1 - 1e-6 is rejected too; round-off (1e-12) is accepted") {
        CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(vec({0.5, 0.5 + 1e-6})),
                        rspo::domain_error);
        CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(vec({0.5, 0.5 - 1e-6})),
                        rspo::domain_error);
        CHECK_NOTHROW(rspo::tabular_policy::from_probabilities(vec({0.5, 0.5 + 1e-12})));
    }
    SECTION("empty") {
        CHECK_THROWS_AS(rspo::tabular_policy::from_probabilities(Eigen::VectorXd()), rspo::shape_error);
    }
}

TEST_CASE("from_logits rejects NaN, +inf and all -inf", "[policies][validation]") {
    CHECK_THROWS_AS(rspo::tabular_policy::from_logits(vec({0.0, not_a_number})), rspo::domain_error);
    CHECK_THROWS_WITH(rspo::tabular_policy::from_logits(vec({0.0, not_a_number})),
                      ContainsSubstring("logits[1] = nan"));
    CHECK_THROWS_AS(rspo::tabular_policy::from_logits(vec({inf, 0.0})), rspo::domain_error);
    CHECK_THROWS_WITH(rspo::tabular_policy::from_logits(vec({inf, 0.0})),
                      ContainsSubstring("logits[0] = inf"));
    CHECK_THROWS_AS(rspo::tabular_policy::from_logits(vec({-inf, -inf})), rspo::domain_error);
    CHECK_THROWS_WITH(rspo::tabular_policy::from_logits(vec({-inf, -inf})),
                      ContainsSubstring("every entry of logits is -inf"));
    CHECK_THROWS_AS(rspo::tabular_policy::from_logits(Eigen::VectorXd()), rspo::shape_error);
    CHECK_THROWS_AS(rspo::tabular_policy::uniform(0), rspo::shape_error);
}

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

TEST_CASE("sampling frequencies match the probabilities", "[policies][sampling]") {
    const Eigen::VectorXd p = vec({0.05, 0.4, 0.15, 0.3, 0.1});
    const auto policy = rspo::tabular_policy::from_probabilities(p);
    constexpr std::size_t draws = 200000;
    for (std::uint64_t seed : {1u, 2024u}) {
        CAPTURE(seed);
        const auto counts = histogram(5, draws, seed, [&](rspo::random_engine& rng) {
            return policy.sample({}, rng);
        });
        check_frequencies(counts, p, draws);
    }
}

TEST_CASE("sampling is deterministic for a seed and depends on it", "[policies][sampling]") {
    const auto policy = rspo::tabular_policy::from_probabilities(vec({0.2, 0.3, 0.5}));
    const auto run = [&](std::uint64_t seed) {
        rspo::random_engine rng(seed);
        std::vector<std::size_t> ys;
        for (int i = 0; i < 500; ++i) ys.push_back(policy.sample({}, rng));
        return ys;
    };
    CHECK(run(17) == run(17));
    CHECK(run(17) != run(18));
    // Sampling goes through the given engine only: one draw advances it by exactly one number.
    rspo::random_engine a(5), b(5);
    (void)policy.sample({}, a);
    b.discard(1);
    CHECK(a() == b());
}

TEST_CASE("sample_categorical never returns a zero-probability index", "[policies][sampling]") {
    // Zeros first, in the middle and last, so each branch of the inversion meets one.
    const Eigen::VectorXd p = vec({0.0, 0.5, 0.0, 0.5, 0.0});
    constexpr std::size_t draws = 50000;
    const auto counts = histogram(5, draws, 3, [&](rspo::random_engine& rng) {
        return rspo::sample_categorical(p, rng);
    });
    check_frequencies(counts, p, draws);

    // Mass short of 1 (as after round-off): u beyond the last partial sum must still land on the
    // last *positive* entry, never on the trailing zero.
    const Eigen::VectorXd short_mass = vec({0.3, 0.3, 0.0});
    const auto short_counts = histogram(3, draws, 4, [&](rspo::random_engine& rng) {
        return rspo::sample_categorical(short_mass, rng);
    });
    CHECK(short_counts[2] == 0);
    CHECK(short_counts[3] == 0);
    // Index 1 takes [0.3, 1): 70% of the draws.
    const double sd = std::sqrt(draws * 0.7 * 0.3);
    CHECK(std::abs(static_cast<double>(short_counts[1]) - 0.7 * draws) <= 5.0 * sd);

    // A single positive entry is always drawn.
    const Eigen::VectorXd one_hot = vec({0.0, 0.0, 1.0});
    const auto one_counts = histogram(3, 1000, 6, [&](rspo::random_engine& rng) {
        return rspo::sample_categorical(one_hot, rng);
    });
    CHECK(one_counts[2] == 1000);
}

TEST_CASE("uniform01 lies in the half-open unit interval, uses the top 53 bits, and is uniform", "[policies][random]") {
    rspo::random_engine rng(123), mirror(123);
    constexpr std::size_t draws = 1000000;
    double lo = 1.0, hi = 0.0, sum = 0.0;
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < draws; ++i) {
        const double u = rspo::uniform01(rng);
        lo = std::min(lo, u);
        hi = std::max(hi, u);
        sum += u;
        // The documented construction: the top 53 bits of one engine draw, scaled by 2^-53.
        mismatches += u != static_cast<double>(mirror() >> 11) * 0x1.0p-53;
    }
    CHECK(mismatches == 0);
    CHECK(lo >= 0.0);
    CHECK(hi < 1.0);
    CHECK(lo < 1e-4);   // the range is covered (P(miss) = (1 − 1e-4)^1e6 ≈ e^-100)
    CHECK(hi > 0.9999);
    // Mean ½ within 5σ, σ = sqrt(1/12 / draws).
    CHECK(std::abs(sum / draws - 0.5) <= 5.0 * std::sqrt(1.0 / 12.0 / draws));
}
