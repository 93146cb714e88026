// Evaluation metrics (docs/math §6): win rate with its standard error, the length-controlled win
// rate's logistic GLM, and diversity (Self-BLEU against NLTK, distinct-n, entropy).
//
// The headers are included one by one (not through rspo.hpp) so that each is checked to be
// self-contained.

#include <rspo/eval/diversity.hpp>
#include <rspo/eval/length_controlled.hpp>
#include <rspo/eval/win_rate.hpp>

#include <rspo/core/random.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <span>
#include <string>
#include <vector>

using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

/// Runs f, which must throw exactly E from `function` about `argument`, its message containing
/// `fragment` (the bad value, usually).
template <class E, class F>
void check_throws(F&& f, const std::string& function, const std::string& argument,
                  const std::string& fragment) {
    bool threw = false;
    try {
        f();
    } catch (const E& e) {
        threw = true;
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(e.function() == function);
        CHECK(e.argument() == argument);
        CHECK(what.find(fragment) != std::string::npos);
    } catch (...) {
        FAIL("threw something other than the expected rspo error");
    }
    CHECK(threw);
}

/// Standard normal by Box–Muller on rspo's platform-independent uniforms.
double normal(rspo::random_engine& rng) {
    const double u1 = rspo::uniform01(rng), u2 = rspo::uniform01(rng);
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double logistic(double z) { return 1.0 / (1.0 + std::exp(-z)); }

double sample_std(const std::vector<double>& v) {
    double mean = 0.0;
    for (const double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    double ss = 0.0;
    for (const double x : v) ss += (x - mean) * (x - mean);
    return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

/// Rows of a length-controlled evaluation.
struct lc_data {
    std::vector<std::size_t> prompts;
    std::vector<double> preferences;
    std::vector<double> deltas;
};

rspo::eval::lc_result fit(const lc_data& d, const rspo::eval::lc_options& options = {}) {
    return rspo::eval::length_controlled_win_rate(d.prompts, d.preferences, d.deltas, options);
}

/// The data the other side of the comparison would produce: p → 1 − p, Δ → −Δ.
lc_data mirrored(const lc_data& d) {
    lc_data m = d;
    for (auto& p : m.preferences) p = 1.0 - p;
    for (auto& x : m.deltas) x = -x;
    return m;
}

/// The penalized objective's gradient and Hessian in the dense (θ, φ, u) parametrization, written
/// independently of the library's arrowhead elimination.
struct dense_fit_check {
    Eigen::VectorXd gradient;
    Eigen::MatrixXd covariance;  ///< H⁻¹
};

dense_fit_check dense_check(const lc_data& d, const rspo::eval::lc_result& r,
                            const rspo::eval::lc_options& options = {}) {
    const auto m = static_cast<Eigen::Index>(r.prompts.size());
    const double s = sample_std(d.deltas);
    Eigen::VectorXd params(m + 2);
    params << r.theta, r.phi, Eigen::Map<const Eigen::VectorXd>(r.prompt_terms.data(), m);
    Eigen::VectorXd g = Eigen::VectorXd::Zero(m + 2);
    Eigen::MatrixXd h = Eigen::MatrixXd::Zero(m + 2, m + 2);
    for (std::size_t i = 0; i < d.preferences.size(); ++i) {
        const auto k = std::find(r.prompts.begin(), r.prompts.end(), d.prompts[i]) - r.prompts.begin();
        Eigen::VectorXd z = Eigen::VectorXd::Zero(m + 2);
        z[0] = 1.0;
        z[1] = std::tanh(d.deltas[i] / s);
        z[2 + k] = 1.0;
        const double mu = logistic(z.dot(params));
        g += (mu - d.preferences[i]) * z;
        h += mu * (1.0 - mu) * z * z.transpose();
    }
    Eigen::VectorXd penalty = Eigen::VectorXd::Constant(m + 2, options.prompt_penalty);
    penalty[0] = penalty[1] = options.coefficient_penalty;
    g += penalty.cwiseProduct(params);
    h += penalty.asDiagonal();
    return {g, h.ldlt().solve(Eigen::MatrixXd::Identity(m + 2, m + 2))};
}

/// `prompts × per_prompt` rows from logit P = θ + φ·tanh(Δ/s) + u_x with Δ ~ round(N(mean, sd)),
/// s the sample std of the drawn Δ; labels are Bernoulli draws, or the exact probabilities when
/// `fractional`.
lc_data simulate(std::uint64_t seed, std::size_t prompts, std::size_t per_prompt, double theta,
                 double phi, const std::vector<double>& u, double delta_mean, double delta_sd,
                 bool fractional = false) {
    rspo::random_engine rng(seed);
    lc_data d;
    for (std::size_t k = 0; k < prompts; ++k)
        for (std::size_t j = 0; j < per_prompt; ++j) {
            d.prompts.push_back(k);
            d.deltas.push_back(std::round(delta_mean + delta_sd * normal(rng)));
        }
    const double s = sample_std(d.deltas);
    for (std::size_t i = 0; i < d.deltas.size(); ++i) {
        const double p = logistic(theta + phi * std::tanh(d.deltas[i] / s) +
                                  (u.empty() ? 0.0 : u[d.prompts[i]]));
        d.preferences.push_back(fractional ? p : (rspo::uniform01(rng) < p ? 1.0 : 0.0));
    }
    return d;
}

using sequences = std::vector<std::vector<std::int32_t>>;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Win rate
// ---------------------------------------------------------------------------------------------

TEST_CASE("win_rate: mean of the judgments and its standard error") {
    // {1, 0, 1, 1}: mean 3/4, sample variance (3·(1/4)² + (3/4)²)/3 = 1/4, SE = √(1/4 / 4) = 1/4.
    const std::vector<double> hard{1.0, 0.0, 1.0, 1.0};
    const auto r = rspo::eval::win_rate(hard);
    CHECK(r.value == 0.75);
    CHECK_THAT(r.standard_error, WithinRel(0.25, 1e-15));
    CHECK(r.count == 4);

    // Fractional judgments: mean 0.5, deviations ±0.1 → variance 0.04/3, SE = √(0.04/3 / 4).
    const std::vector<double> soft{0.4, 0.6, 0.4, 0.6};
    const auto s = rspo::eval::win_rate(soft);
    CHECK_THAT(s.value, WithinAbs(0.5, 1e-15));
    CHECK_THAT(s.standard_error, WithinRel(std::sqrt(0.01 / 3.0), 1e-12));

    // Equal judgments: the spread is only the round-off of the mean (~1e-16), where the one-pass
    // Σp² − n·mean² would leave ~1e-13 of cancellation and an SE near 1e-8.
    const std::vector<double> same(1000, 0.7);
    CHECK(rspo::eval::win_rate(same).standard_error < 1e-15);

    // One judgment: a mean but no standard error.
    const std::vector<double> one{0.3};
    const auto o = rspo::eval::win_rate(one);
    CHECK(o.value == 0.3);
    CHECK(std::isnan(o.standard_error));
    CHECK(o.count == 1);
}

TEST_CASE("win_rate: rejects empty input and judgments outside [0, 1]") {
    const std::string fn = "rspo::eval::win_rate";
    check_throws<rspo::shape_error>([] { (void)rspo::eval::win_rate({}); }, fn, "preferences",
                                    "empty");
    for (const double bad : {-0.25, 1.5, not_a_number, inf}) {
        const std::vector<double> p{0.5, bad};
        check_throws<rspo::domain_error>([&] { (void)rspo::eval::win_rate(p); }, fn,
                                         "preferences[1]", "preferences[1] = ");
    }
}

// ---------------------------------------------------------------------------------------------
// Length-controlled win rate
// ---------------------------------------------------------------------------------------------

TEST_CASE("length_controlled: the GLM recovers known coefficients") {
    // 40 prompts × 250 Bernoulli judgments from θ = 0.4, φ = −1.1 and centred u_x ~ N(0, 0.7²)
    // (centred because the fit pins Σu ≈ 0, so θ is the mean prompt logit). Each estimate must lie
    // within 4 standard errors of the truth, the standard errors taken from the Fisher information
    // (the inverse penalized Hessian), which is computed here densely, independently of the
    // library's Schur-complement solve. The shrinkage bias of u_x under λ = 1 is about
    // |u_x|/(250·0.2) ≤ 0.04, a third of a standard error.
    constexpr std::size_t prompts = 40, per_prompt = 250;
    constexpr double theta = 0.4, phi = -1.1;
    rspo::random_engine rng(2024);
    std::vector<double> u(prompts);
    for (auto& v : u) v = 0.7 * normal(rng);
    double u_mean = 0.0;
    for (const double v : u) u_mean += v / static_cast<double>(prompts);
    for (auto& v : u) v -= u_mean;
    const lc_data d = simulate(7, prompts, per_prompt, theta, phi, u, 50.0, 200.0);

    const auto r = fit(d);
    REQUIRE(r.converged);
    CHECK(r.iterations <= 20);
    REQUIRE(r.prompts.size() == prompts);
    const dense_fit_check c = dense_check(d, r);

    // At the optimum: the gradient is zero up to the round-off of 10⁴-term sums (~1e-12); a fit
    // stopped one Newton step early would leave ~1e-5.
    CHECK(c.gradient.lpNorm<Eigen::Infinity>() < 1e-8);

    // The reported standard errors are √diag(H⁻¹).
    CHECK_THAT(r.theta_standard_error, WithinRel(std::sqrt(c.covariance(0, 0)), 1e-8));
    CHECK_THAT(r.phi_standard_error, WithinRel(std::sqrt(c.covariance(1, 1)), 1e-8));

    // φ: SE ≈ 0.04, so the 4-SE window is tight enough to mean something.
    CHECK(r.phi_standard_error < 0.05);
    CHECK(std::abs(r.phi - phi) <= 4.0 * r.phi_standard_error);

    // θ + mean u (= θ for the centred truth): its SE excludes the θ ↔ u trade-off that only the
    // prior decides, so it is ≈ 0.02 while θ's own SE (≈ 1/√(λ·40) ≈ 0.16) is not.
    const auto m = static_cast<Eigen::Index>(prompts);
    Eigen::VectorXd mean_dir = Eigen::VectorXd::Zero(m + 2);
    mean_dir[0] = 1.0;
    mean_dir.tail(m).setConstant(1.0 / static_cast<double>(prompts));
    double fitted_mean = r.theta;
    for (const double v : r.prompt_terms) fitted_mean += v / static_cast<double>(prompts);
    const double mean_se = std::sqrt(mean_dir.dot(c.covariance * mean_dir));
    CHECK(mean_se < 0.03);
    CHECK(std::abs(fitted_mean - theta) <= 4.0 * mean_se);

    // Every prompt's logit θ + u_x (SE ≈ 0.14; 4.5 SE over 40 prompts: a false alarm has
    // probability ~3e-4 for a fresh seed, and this seed is fixed).
    for (Eigen::Index k = 0; k < m; ++k) {
        Eigen::VectorXd dir = Eigen::VectorXd::Zero(m + 2);
        dir[0] = 1.0;
        dir[2 + k] = 1.0;
        const double se = std::sqrt(dir.dot(c.covariance * dir));
        const auto ku = static_cast<std::size_t>(k);
        CAPTURE(k, r.prompt_terms[ku], u[ku], se);
        CHECK(std::abs(r.theta + r.prompt_terms[ku] - (theta + u[ku])) <= 4.5 * se);
    }

    // LC against the true 100·mean σ(θ + u_x), within 4 delta-method SEs.
    double lc_true = 0.0;
    Eigen::VectorXd lc_grad = Eigen::VectorXd::Zero(m + 2);
    for (Eigen::Index k = 0; k < m; ++k) {
        const auto ku = static_cast<std::size_t>(k);
        lc_true += 100.0 * logistic(theta + u[ku]) / static_cast<double>(prompts);
        const double q = logistic(r.theta + r.prompt_terms[ku]);
        lc_grad[0] += 100.0 * q * (1.0 - q) / static_cast<double>(prompts);
        lc_grad[2 + k] = 100.0 * q * (1.0 - q) / static_cast<double>(prompts);
    }
    const double lc_se = std::sqrt(lc_grad.dot(c.covariance * lc_grad));
    CHECK(lc_se < 1.0);
    CHECK(std::abs(r.lc_win_rate - lc_true) <= 4.0 * lc_se);
}

TEST_CASE("length_controlled: LC(m, m) = 50") {
    SECTION("all ties at equal length: the fit itself gives exactly 50") {
        lc_data d;
        for (std::size_t i = 0; i < 60; ++i) {
            d.prompts.push_back(i % 7);
            d.preferences.push_back(0.5);
            d.deltas.push_back(0.0);
        }
        const auto r = fit(d);
        CHECK(r.converged);
        CHECK(r.length_scale == 0.0);
        CHECK(r.lc_win_rate == 50.0);
        CHECK(r.raw_win_rate == 50.0);
        CHECK(r.theta == 0.0);
        CHECK(r.phi == 0.0);
        CHECK(std::isnan(r.phi_standard_error));  // φ is not fitted when Δ does not vary
        // All ties with lengths that differ: still exactly 50 (θ = φ = u = 0 is the optimum).
        for (std::size_t i = 0; i < d.deltas.size(); ++i) d.deltas[i] = static_cast<double>(i % 11) - 3.0;
        const auto q = fit(d);
        CHECK(q.converged);
        CHECK(q.length_scale > 0.0);
        CHECK(q.lc_win_rate == 50.0);
        CHECK(q.phi == 0.0);
    }
    SECTION("mirror-symmetric data: every row beside its mirror in the same prompt") {
        rspo::random_engine rng(5);
        lc_data d;
        for (std::size_t i = 0; i < 200; ++i) {
            const std::size_t prompt = i % 13;
            const double p = rspo::uniform01(rng);
            const double delta = std::round(100.0 * normal(rng));
            d.prompts.insert(d.prompts.end(), {prompt, prompt});
            d.preferences.insert(d.preferences.end(), {p, 1.0 - p});
            d.deltas.insert(d.deltas.end(), {delta, -delta});
        }
        const auto r = fit(d);
        REQUIRE(r.converged);
        // The optimum is θ = 0, u = 0 by symmetry; only round-off in 1 − p and the sums remains.
        CHECK_THAT(r.lc_win_rate, WithinAbs(50.0, 1e-9));
        CHECK_THAT(r.theta, WithinAbs(0.0, 1e-10));
    }
    SECTION("model_is_baseline: 50 by construction, whatever the judge said") {
        const lc_data d{{0, 0, 1, 2}, {0.9, 0.2, 0.7, 0.6}, {10.0, -3.0, 4.0, 0.0}};
        const auto r = fit(d, {.model_is_baseline = true});
        CHECK(r.lc_win_rate == 50.0);
        CHECK_THAT(r.raw_win_rate, WithinAbs(60.0, 1e-12));
        CHECK(r.converged);
        CHECK(r.iterations == 0);
        CHECK(r.prompt_terms == std::vector<double>(3, 0.0));
        // ... and without the flag the same rows do not give 50, so the flag is what did it.
        CHECK(std::abs(fit(d).lc_win_rate - 50.0) > 1.0);
    }
}

TEST_CASE("length_controlled: LC(a, b) + LC(b, a) = 100 on mirrored data") {
    // Fractional and hard judgments, unequal rows per prompt, sparse prompt ids, a length bias.
    rspo::random_engine rng(99);
    lc_data a;
    for (std::size_t i = 0; i < 500; ++i) {
        const std::size_t prompt = 1000 + 17 * (i % 23) + (i % 5 == 0 ? 3 : 0);
        const double delta = std::round(40.0 + 120.0 * normal(rng));
        const double p = i % 3 == 0 ? (rspo::uniform01(rng) < 0.7 ? 1.0 : 0.0)
                                    : logistic(0.3 + 0.01 * delta + 0.5 * normal(rng));
        a.prompts.push_back(prompt);
        a.preferences.push_back(p);
        a.deltas.push_back(delta);
    }
    const auto ab = fit(a);
    const auto ba = fit(mirrored(a));
    REQUIRE(ab.converged);
    REQUIRE(ba.converged);
    CHECK(std::abs(ab.lc_win_rate - 50.0) > 5.0);  // not trivially 50 each
    CHECK_THAT(ab.lc_win_rate + ba.lc_win_rate, WithinAbs(100.0, 1e-9));
    CHECK_THAT(ab.raw_win_rate + ba.raw_win_rate, WithinAbs(100.0, 1e-9));
    // The optimum maps to (−θ, φ, −u).
    CHECK_THAT(ab.theta + ba.theta, WithinAbs(0.0, 1e-9));
    CHECK_THAT(ab.phi - ba.phi, WithinAbs(0.0, 1e-9));
    REQUIRE(ab.prompt_terms.size() == ba.prompt_terms.size());
    for (std::size_t k = 0; k < ab.prompt_terms.size(); ++k)
        CHECK_THAT(ab.prompt_terms[k] + ba.prompt_terms[k], WithinAbs(0.0, 1e-9));
}

TEST_CASE("length_controlled: pure length bias is removed") {
    // The judge prefers longer answers and nothing else: P = σ(3.5·tanh(Δ/s)), θ = u = 0, and the
    // model is usually longer (Δ ~ N(60, 80²)), so the raw win rate is far above 50.
    SECTION("exact probabilities as targets: LC = 50 up to the tiny penalty on φ") {
        const lc_data d = simulate(11, 200, 10, 0.0, 3.5, {}, 60.0, 80.0, /*fractional=*/true);
        const auto r = fit(d);
        REQUIRE(r.converged);
        CHECK(r.raw_win_rate > 70.0);
        CHECK_THAT(r.phi, WithinAbs(3.5, 1e-4));
        CHECK_THAT(r.lc_win_rate, WithinAbs(50.0, 1e-4));
    }
    SECTION("Bernoulli judgments") {
        // 2·10⁴ rows: over 20 seeds the LC's spread around 50 was 0.45 (mean offset 0.03), so
        // ±2 is over 4 sd. One row per prompt (AlpacaEval's layout) and ten rows per prompt.
        for (const std::size_t per_prompt : {std::size_t{1}, std::size_t{10}}) {
            CAPTURE(per_prompt);
            const lc_data d = simulate(3, 20000 / per_prompt, per_prompt, 0.0, 3.5, {}, 60.0, 80.0);
            const auto r = fit(d);
            REQUIRE(r.converged);
            CHECK(r.raw_win_rate > 70.0);
            CHECK_THAT(r.lc_win_rate, WithinAbs(50.0, 2.0));
        }
    }
}

TEST_CASE("length_controlled: invariant to row order and to how prompts are numbered") {
    const lc_data d = simulate(21, 30, 8, 0.2, 1.0, std::vector<double>(30, 0.0), 20.0, 50.0);
    lc_data shuffled;
    // Reverse the rows and renumber prompt k as 7·(29 − k) + 5: same data, other ids and order.
    for (std::size_t i = d.prompts.size(); i-- > 0;) {
        shuffled.prompts.push_back(7 * (29 - d.prompts[i]) + 5);
        shuffled.preferences.push_back(d.preferences[i]);
        shuffled.deltas.push_back(d.deltas[i]);
    }
    const auto r = fit(d);
    const auto q = fit(shuffled);
    REQUIRE(r.converged);
    REQUIRE(q.converged);
    CHECK_THAT(q.lc_win_rate, WithinAbs(r.lc_win_rate, 1e-10));
    CHECK_THAT(q.theta, WithinAbs(r.theta, 1e-10));
    CHECK_THAT(q.phi, WithinAbs(r.phi, 1e-10));
    REQUIRE(q.prompts.size() == 30);
    CHECK(q.prompts.front() == 5);
    CHECK(q.prompts.back() == 7 * 29 + 5);
    for (std::size_t k = 0; k < 30; ++k)  // q's prompt k is r's prompt 29 − k
        CHECK_THAT(q.prompt_terms[k], WithinAbs(r.prompt_terms[29 - k], 1e-10));
}

TEST_CASE("length_controlled: LC weights every prompt equally, however many rows it has") {
    // Prompt 3 has three rows the model won, prompt 8 nine rows it mostly lost, lengths balanced:
    // the prompt mean of σ(θ + u_x) differs from the row mean by many points, and LC is the former.
    const lc_data d{{3, 3, 3, 8, 8, 8, 8, 8, 8, 8, 8, 8},
                    {1.0, 0.9, 1.0, 0.0, 0.1, 0.0, 0.2, 0.0, 1.0, 0.0, 0.3, 0.0},
                    {0.0, 1.0, -1.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0}};
    const auto r = fit(d);
    REQUIRE(r.converged);
    REQUIRE(r.prompts == std::vector<std::size_t>{3, 8});
    const double q3 = logistic(r.theta + r.prompt_terms[0]);
    const double q8 = logistic(r.theta + r.prompt_terms[1]);
    CHECK_THAT(r.lc_win_rate, WithinAbs(100.0 * (q3 + q8) / 2.0, 1e-12));
    CHECK(std::abs(r.lc_win_rate - 100.0 * (3.0 * q3 + 9.0 * q8) / 12.0) > 5.0);
}

TEST_CASE("length_controlled: constant length difference fits the intercept alone") {
    // s = 0: no length term, and with one prompt the optimality conditions read
    // Σ(σ(θ + u) − p) = −λ₀θ and λu = λ₀θ, so 100·σ(θ + u) = raw win rate up to ~λ₀.
    const lc_data d{{4, 4, 4, 4, 4}, {0.9, 0.6, 1.0, 0.7, 0.8}, {12.0, 12.0, 12.0, 12.0, 12.0}};
    const auto r = fit(d);
    REQUIRE(r.converged);
    CHECK(r.length_scale == 0.0);
    CHECK(r.phi == 0.0);
    CHECK_THAT(r.raw_win_rate, WithinAbs(80.0, 1e-12));
    CHECK_THAT(r.lc_win_rate, WithinAbs(80.0, 1e-4));
}

TEST_CASE("length_controlled: separable data converges only with the coefficient penalty") {
    // The longer answer always wins: without a penalty φ → ∞ and no optimum exists.
    lc_data d;
    for (int i = -20; i <= 20; ++i) {
        if (i == 0) continue;
        d.prompts.push_back(static_cast<std::size_t>(i + 20) % 4);
        d.preferences.push_back(i > 0 ? 1.0 : 0.0);
        d.deltas.push_back(static_cast<double>(i));
    }
    const auto penalized = fit(d);
    REQUIRE(penalized.converged);
    // Ill-conditioned (curvature ~1e-5 along φ), yet at the optimum: the gradient vanishes to
    // round-off, as computed independently.
    CHECK(dense_check(d, penalized).gradient.lpNorm<Eigen::Infinity>() < 1e-14);
    CHECK(penalized.phi > 10.0);
    CHECK(std::isfinite(penalized.lc_win_rate));
    const auto unpenalized = fit(d, {.coefficient_penalty = 0.0, .max_iterations = 50});
    CHECK_FALSE(unpenalized.converged);  // a status, not an exception
    CHECK(unpenalized.iterations <= 50);
}

TEST_CASE("length_controlled: rejects bad rows and options") {
    const std::string fn = "rspo::eval::length_controlled_win_rate";
    const std::vector<std::size_t> x{0, 1, 1};
    const std::vector<double> p{0.2, 0.9, 0.5};
    const std::vector<double> delta{1.0, -2.0, 0.0};
    namespace ev = rspo::eval;
    check_throws<rspo::shape_error>(
        [&] { (void)ev::length_controlled_win_rate({}, std::span<const double>{}, {}); }, fn,
        "preferences", "empty");
    const std::vector<std::size_t> x2{0, 1};
    check_throws<rspo::shape_error>([&] { (void)ev::length_controlled_win_rate(x2, p, delta); }, fn,
                                    "prompts", "size 2");
    const std::vector<double> delta4{1.0, 2.0, 3.0, 4.0};
    check_throws<rspo::shape_error>([&] { (void)ev::length_controlled_win_rate(x, p, delta4); },
                                    fn, "length_differences", "size 4");
    for (const double bad : {-0.1, 1.01, not_a_number}) {
        const std::vector<double> pb{0.2, bad, 0.5};
        check_throws<rspo::domain_error>([&] { (void)ev::length_controlled_win_rate(x, pb, delta); },
                                         fn, "preferences[1]", "not a probability");
    }
    for (const double bad : {not_a_number, inf}) {
        const std::vector<double> db{1.0, -2.0, bad};
        check_throws<rspo::domain_error>([&] { (void)ev::length_controlled_win_rate(x, p, db); },
                                         fn, "length_differences", "length_differences[2]");
    }
    check_throws<rspo::domain_error>(
        [&] { (void)ev::length_controlled_win_rate(x, p, delta, {.prompt_penalty = 0.0}); }, fn,
        "options.prompt_penalty", "must be > 0");
    check_throws<rspo::domain_error>(
        [&] { (void)ev::length_controlled_win_rate(x, p, delta, {.coefficient_penalty = -1.0}); },
        fn, "options.coefficient_penalty", "must be >= 0");
    check_throws<rspo::domain_error>(
        [&] { (void)ev::length_controlled_win_rate(x, p, delta, {.max_iterations = 0}); }, fn,
        "options.max_iterations", "= 0");
    check_throws<rspo::domain_error>(
        [&] { (void)ev::length_controlled_win_rate(x, p, delta, {.tolerance = not_a_number}); }, fn,
        "options.tolerance", "nan");
    // The flag does not skip validation.
    const std::vector<double> pb{0.2, 2.0, 0.5};
    check_throws<rspo::domain_error>(
        [&] { (void)ev::length_controlled_win_rate(x, pb, delta, {.model_is_baseline = true}); },
        fn, "preferences[1]", "= 2");
}

// ---------------------------------------------------------------------------------------------
// Diversity
// ---------------------------------------------------------------------------------------------

// Known answers from NLTK 3.8 (Debian bookworm's python3-nltk, Python 3.11.2):
//
//   /usr/bin/python3 -W ignore -c '
//   import random
//   from nltk.translate.bleu_score import sentence_bleu, SmoothingFunction
//   W = (1/3, 1/3, 1/3); sm = SmoothingFunction().method1
//   def bleu(refs, hyp): return sentence_bleu(refs, hyp, weights=W, smoothing_function=sm)
//   def self_bleu(s): return sum(bleu(s[:i] + s[i+1:], s[i]) for i in range(len(s))) / len(s)
//   for hyp, refs in [([1,2,3,4,5,6], [[1,2,3,9,5,6],[1,2,7]]), ([1,2], [[1,2,3,4],[1,2]]),
//                     ([7,7,7,7,7], [[7,1,7,2],[3,7]]), ([1,2,3,4], [[1,2,3],[4,1,2,3,9]]),
//                     ([5,1,2,3,4,5], [[1,2,3,4,5,6,7,8,9,10]]), ([8,9], [[1,2,3]])]:
//       print(repr(bleu(refs, hyp)))
//   print(repr(self_bleu([[1,2,3,4],[1,2,3,5],[2,3,4,1,1],[6],[1,6,2],[]])))
//   rng = random.Random(2024)
//   rand16 = [[rng.randrange(6) for _ in range(rng.randrange(1, 26))] for _ in range(16)]
//   print(rand16); print(repr(self_bleu(rand16)))
//   s4 = rand16[:4]
//   print(repr(sum(sentence_bleu(s4[:i] + s4[i+1:], s4[i], weights=(0.25,)*4,
//                                smoothing_function=sm) for i in range(4)) / 4))'
//
// Expected agreement: 1e-12. Both sides compute the same double operations except that NLTK sums
// the three weighted logs with math.fsum (one rounding) and rspo left to right (two), a difference
// of a few ulps of a number ≤ 1.

TEST_CASE("sentence_bleu: NLTK method1 known answers") {
    struct known {
        std::vector<std::int32_t> hypothesis;
        sequences references;
        double nltk;
    };
    const std::vector<known> cases{
        // p = (5/6, 3/5, 1/4), hypothesis longer than the closest reference (6 vs 6: BP = 1).
        {{1, 2, 3, 4, 5, 6}, {{1, 2, 3, 9, 5, 6}, {1, 2, 7}}, 0.5},
        // No trigram in a 2-token hypothesis: p₃ = ε/max(1, 0) = 0.1, BLEU = 0.1^(1/3).
        {{1, 2}, {{1, 2, 3, 4}, {1, 2}}, 0.464158883361278},
        // Clipping: five 7s, at most two in any one reference.
        {{7, 7, 7, 7, 7}, {{7, 1, 7, 2}, {3, 7}}, 0.06933612743506348},
        // Closest-length tie (3 and 5 for c = 4) goes to the shorter: BP = 1, not exp(−1/4).
        {{1, 2, 3, 4}, {{1, 2, 3}, {4, 1, 2, 3, 9}}, 0.6933612743506347},
        // Brevity penalty exp(1 − 10/6).
        {{5, 1, 2, 3, 4, 5}, {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, 0.40749943742540945},
        // No unigram match: 0 before any smoothing.
        {{8, 9}, {{1, 2, 3}}, 0.0},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        CAPTURE(i);
        CHECK_THAT(rspo::eval::sentence_bleu(cases[i].hypothesis, cases[i].references),
                   WithinAbs(cases[i].nltk, 1e-12));
    }
    // Views work as well as vectors.
    const std::vector<std::span<const std::int32_t>> views(cases[0].references.begin(),
                                                           cases[0].references.end());
    CHECK_THAT(rspo::eval::sentence_bleu(cases[0].hypothesis, views), WithinAbs(0.5, 1e-12));
}

TEST_CASE("self_bleu: NLTK known answers") {
    // Short samples (shorter than 3), repeats and an empty sample (BLEU 0 as a hypothesis, length 0
    // as a reference).
    const sequences mixed{{1, 2, 3, 4}, {1, 2, 3, 5}, {2, 3, 4, 1, 1}, {6}, {1, 6, 2}, {}};
    CHECK_THAT(rspo::eval::self_bleu(mixed), WithinAbs(0.4131336799153085, 1e-12));

    // n = 16 samples of 1..25 tokens from a 6-token vocabulary (printed by the script above).
    const sequences rand16{
        {1, 5, 4, 2, 1, 5, 3, 5, 2, 4, 1, 5, 5, 3, 2, 3},
        {5, 4, 1, 2, 4, 5, 2, 4, 0, 5, 1, 5, 5, 3, 5, 5, 1},
        {1, 3, 0, 2, 5, 3, 3, 0, 5, 5, 1, 2, 3, 2, 2, 1, 2, 3},
        {2, 4, 1, 3, 1, 1, 0, 5, 1, 0, 2, 4, 2, 4},
        {3, 4, 0, 2, 5, 4, 1, 1, 3, 2, 1, 1, 2, 3, 4, 5, 1, 2, 3, 4, 2, 2, 5},
        {3, 1, 5, 5, 1, 2, 1, 4, 5, 0, 0, 1, 0, 1, 3, 5, 1, 2, 1, 0, 1, 2, 1},
        {3, 4, 2, 3, 4, 3, 5, 3, 1, 0, 2, 2, 2, 1, 4, 5, 5, 2, 4, 0, 3, 1, 1},
        {1, 4, 1, 2, 2, 5, 0, 4, 5, 4, 3, 5, 5},
        {0, 0, 1, 0, 4, 1, 1, 5, 4, 0, 4, 1, 1, 3, 4, 5, 1, 1, 0, 1, 4},
        {4, 4, 4, 5},
        {4},
        {4, 1, 4, 5},
        {0, 0, 2, 0, 1, 0, 0, 5, 4, 5, 4},
        {1, 4, 1, 5, 1, 3, 1, 3, 2, 2, 5, 3, 5, 3, 5, 1, 3, 4, 3, 3, 4, 5, 1, 1},
        {2, 3, 1, 1, 2, 3},
        {0, 0, 2, 5, 0, 1, 4, 3, 5, 0, 1, 4, 3, 4, 3, 4, 0, 3, 2, 0, 4, 2},
    };
    CHECK_THAT(rspo::eval::self_bleu(rand16), WithinAbs(0.6870913314435949, 1e-12));
    // BLEU-4 (weights ¼) on the first four.
    const sequences first4(rand16.begin(), rand16.begin() + 4);
    CHECK_THAT(rspo::eval::self_bleu(first4, {.max_order = 4}), WithinAbs(0.24968104887247639, 1e-12));

    // The order of the samples does not matter (up to the order of the final sum).
    sequences reversed(rand16.rbegin(), rand16.rend());
    CHECK_THAT(rspo::eval::self_bleu(reversed), WithinAbs(0.6870913314435949, 1e-12));
}

TEST_CASE("self_bleu: identical samples give 1, disjoint vocabularies give 0") {
    const std::vector<std::int32_t> s{3, 1, 4, 1, 5, 9, 2, 6};
    CHECK_THAT(rspo::eval::self_bleu(sequences(16, s)), WithinAbs(1.0, 1e-15));
    sequences disjoint;
    for (std::int32_t k = 0; k < 16; ++k) disjoint.push_back({100 * k, 100 * k + 1, 100 * k + 2});
    CHECK(rspo::eval::self_bleu(disjoint) == 0.0);
    // Token ids are opaque: negative and extreme ids are ordinary tokens.
    constexpr std::int32_t lo = std::numeric_limits<std::int32_t>::min();
    constexpr std::int32_t hi = std::numeric_limits<std::int32_t>::max();
    CHECK_THAT(rspo::eval::self_bleu(sequences(2, {lo, -1, hi, 0})), WithinAbs(1.0, 1e-15));
}

TEST_CASE("self_bleu: rejects fewer than two samples and bad options") {
    const std::string fn = "rspo::eval::self_bleu";
    check_throws<rspo::shape_error>([] { (void)rspo::eval::self_bleu(sequences{{1, 2, 3}}); }, fn,
                                    "samples", "size 1");
    check_throws<rspo::shape_error>([] { (void)rspo::eval::self_bleu(sequences{}); }, fn,
                                    "samples", "size 0");
    const sequences two{{1, 2}, {2, 1}};
    check_throws<rspo::domain_error>([&] { (void)rspo::eval::self_bleu(two, {.max_order = 0}); }, fn,
                                     "options.max_order", "= 0");
    check_throws<rspo::domain_error>([&] { (void)rspo::eval::self_bleu(two, {.epsilon = 0.0}); }, fn,
                                     "options.epsilon", "must be > 0");
    const std::vector<std::int32_t> hyp{1};
    check_throws<rspo::shape_error>([&] { (void)rspo::eval::sentence_bleu(hyp, sequences{}); },
                                    "rspo::eval::sentence_bleu", "references", "empty");
}

TEST_CASE("distinct_n: distinct over total n-grams, pooled over samples") {
    // Unigrams 1 2 3 1 2 4: 4 distinct of 6. Bigrams 12 23 12 24: 3 of 4. Trigrams 123 124: 2 of 2.
    const sequences s{{1, 2, 3}, {1, 2, 4}};
    CHECK_THAT(rspo::eval::distinct_n(s, 1), WithinAbs(4.0 / 6.0, 1e-15));
    CHECK_THAT(rspo::eval::distinct_n(s, 2), WithinAbs(3.0 / 4.0, 1e-15));
    CHECK(rspo::eval::distinct_n(s, 3) == 1.0);
    CHECK(rspo::eval::distinct_n(s, 4) == 0.0);  // no 4-grams at all
    // Repeats: 5 5 5 5 has one distinct unigram of 4 and one distinct bigram of 3.
    const sequences rep{{5, 5, 5, 5}};
    CHECK_THAT(rspo::eval::distinct_n(rep, 1), WithinAbs(0.25, 1e-15));
    CHECK_THAT(rspo::eval::distinct_n(rep, 2), WithinAbs(1.0 / 3.0, 1e-15));
    // Order matters within an n-gram: 12 and 21 are different bigrams.
    CHECK(rspo::eval::distinct_n(sequences{{1, 2}, {2, 1}}, 2) == 1.0);
    // Empty samples contribute nothing.
    CHECK_THAT(rspo::eval::distinct_n(sequences{{}, {7, 7}}, 1), WithinAbs(0.5, 1e-15));

    const std::string fn = "rspo::eval::distinct_n";
    check_throws<rspo::shape_error>([] { (void)rspo::eval::distinct_n(sequences{}, 1); }, fn,
                                    "samples", "empty");
    check_throws<rspo::domain_error>([&] { (void)rspo::eval::distinct_n(s, 0); }, fn, "n", "n = 0");
}

TEST_CASE("entropy: exact entropy of tabular policies") {
    Eigen::VectorXd uniform = Eigen::VectorXd::Constant(4, 0.25);
    Eigen::VectorXd point(3);
    point << 0.0, 1.0, 0.0;
    Eigen::VectorXd coin(2);
    coin << 0.25, 0.75;
    CHECK_THAT(rspo::eval::entropy(uniform), WithinAbs(std::log(4.0), 1e-15));
    CHECK(rspo::eval::entropy(point) == 0.0);  // 0 log 0 = 0
    const double h_coin = -(0.25 * std::log(0.25) + 0.75 * std::log(0.75));
    CHECK_THAT(rspo::eval::entropy(coin), WithinAbs(h_coin, 1e-15));
    const std::vector<Eigen::VectorXd> policies{uniform, point, coin};
    CHECK_THAT(rspo::eval::mean_entropy(policies), WithinAbs((std::log(4.0) + h_coin) / 3.0, 1e-15));

    Eigen::VectorXd bad(2);
    bad << 0.5, 0.6;
    check_throws<rspo::domain_error>([&] { (void)rspo::eval::entropy(bad); }, "rspo::eval::entropy",
                                     "p", "sums to");
    const std::vector<Eigen::VectorXd> with_bad{uniform, bad};
    check_throws<rspo::domain_error>([&] { (void)rspo::eval::mean_entropy(with_bad); },
                                     "rspo::eval::mean_entropy", "policies[1]", "sums to");
    check_throws<rspo::shape_error>([] { (void)rspo::eval::mean_entropy({}); },
                                    "rspo::eval::mean_entropy", "policies", "empty");
}
