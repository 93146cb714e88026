// The SequencePolicy / TrainableSequencePolicy concepts, the model rspo::prompt_bigram_policy
// (normalization, sampling, gradients against finite differences), the batch helpers that route
// logits through the token kernels, and the optimizers rspo::adam / rspo::rmsprop.

#include <rspo/core/optimizers.hpp>
#include <rspo/policies/sequence_policy.hpp>
#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <vector>

using Catch::Matchers::WithinAbs;
using rspo::token;
using rspo::token_sequence;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

/// Every sequence over {0, …, V−1} of length 0..max_size.
std::vector<token_sequence> all_sequences(std::size_t V, std::size_t max_size) {
    std::vector<token_sequence> out{{}};
    std::vector<token_sequence> frontier{{}};
    for (std::size_t n = 0; n < max_size; ++n) {
        std::vector<token_sequence> next;
        for (const auto& s : frontier)
            for (std::size_t v = 0; v < V; ++v) {
                auto t = s;
                t.push_back(static_cast<token>(v));
                next.push_back(t);
            }
        out.insert(out.end(), next.begin(), next.end());
        frontier = std::move(next);
    }
    return out;
}

/// log π(y|x) computed here in double from response_logits, independently of the kernels.
double plain_log_prob(const rspo::prompt_bigram_policy& p, std::size_t x, const token_sequence& y) {
    const std::size_t V = p.vocabulary_size();
    std::vector<float> z(y.size() * V);
    p.response_logits(x, y, z);
    double lp = 0.0;
    for (std::size_t t = 0; t < y.size(); ++t) {
        double top = -inf;
        for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(z[t * V + v]));
        double s = 0.0;
        for (std::size_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(z[t * V + v]) - top);
        lp += static_cast<double>(z[t * V + static_cast<std::size_t>(y[t])]) - top - std::log(s);
    }
    return lp;
}

rspo::prompt_bigram_policy tiny_policy(std::uint64_t seed = 7) {
    // init_scale 1.5: far from uniform, so normalization and sampling checks see real structure.
    return rspo::prompt_bigram_policy({.prompts = 2, .vocabulary = 3, .max_length = 3, .init_scale = 1.5, .seed = seed});
}

// A minimal SequencePolicy toy and variants that each lack one requirement.
enum class lack { nothing, sequence_tag, logits, end_token, accumulate, parameters, copy };

template <lack L>
struct toy_sequence_policy {
    using policy_category = std::conditional_t<L == lack::sequence_tag, rspo::policy_tag, rspo::sequence_policy_tag>;
    using prompt_type = int;
    using response_type = token_sequence;
    toy_sequence_policy() = default;
    toy_sequence_policy(const toy_sequence_policy&) requires(L != lack::copy) = default;
    toy_sequence_policy& operator=(const toy_sequence_policy&) requires(L != lack::copy) = default;
    double log_prob(int, const token_sequence&) const { return 0.0; }
    token_sequence sample(int, rspo::random_engine&) const { return {0}; }
    std::size_t vocabulary_size() const { return 2; }
    std::size_t max_length() const { return 1; }
    token end_token() const requires(L != lack::end_token) { return 0; }
    void response_logits(int, const token_sequence&, std::span<float>) const requires(L != lack::logits) {}
    void accumulate_gradient(int, const token_sequence&, std::span<const float>) requires(L != lack::accumulate) {}
    void zero_gradient() {}
    std::span<float> parameters() requires(L != lack::parameters) { return {}; }
    std::span<float> gradient() { return {}; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Concepts
// ---------------------------------------------------------------------------------------------

TEST_CASE("the concepts accept the model and reject types that lack a requirement", "[sequence][concepts]") {
    STATIC_REQUIRE(rspo::TrainableSequencePolicy<rspo::prompt_bigram_policy>);
    STATIC_REQUIRE(rspo::SequencePolicy<rspo::prompt_bigram_policy>);
    STATIC_REQUIRE(rspo::Policy<rspo::prompt_bigram_policy>);
    // The bigram table has no batched members: the helpers loop over its per-response ones.
    STATIC_REQUIRE_FALSE(rspo::BatchSampling<rspo::prompt_bigram_policy>);
    STATIC_REQUIRE_FALSE(rspo::BatchScoring<rspo::prompt_bigram_policy>);
    STATIC_REQUIRE_FALSE(rspo::BatchTraining<rspo::prompt_bigram_policy>);
    STATIC_REQUIRE(rspo::TrainableSequencePolicy<toy_sequence_policy<lack::nothing>>);
    STATIC_REQUIRE_FALSE(rspo::SequencePolicy<toy_sequence_policy<lack::sequence_tag>>);
    STATIC_REQUIRE(rspo::Policy<toy_sequence_policy<lack::sequence_tag>>);  // still a Policy
    STATIC_REQUIRE_FALSE(rspo::SequencePolicy<toy_sequence_policy<lack::logits>>);
    STATIC_REQUIRE_FALSE(rspo::SequencePolicy<toy_sequence_policy<lack::end_token>>);
    STATIC_REQUIRE(rspo::SequencePolicy<toy_sequence_policy<lack::accumulate>>);
    STATIC_REQUIRE_FALSE(rspo::TrainableSequencePolicy<toy_sequence_policy<lack::accumulate>>);
    STATIC_REQUIRE_FALSE(rspo::TrainableSequencePolicy<toy_sequence_policy<lack::parameters>>);
    STATIC_REQUIRE_FALSE(rspo::TrainableSequencePolicy<toy_sequence_policy<lack::copy>>);
    STATIC_REQUIRE_FALSE(rspo::SequencePolicy<rspo::tabular_policy>);
    STATIC_REQUIRE(rspo::Optimizer<rspo::adam>);
    STATIC_REQUIRE(rspo::Optimizer<rspo::rmsprop>);
    STATIC_REQUIRE_FALSE(rspo::Optimizer<rspo::adam_options>);
}

TEST_CASE("is_complete_response: ends with the end token once, or is cut at max_length", "[sequence]") {
    CHECK(rspo::is_complete_response(token_sequence{0}, 0, 3));
    CHECK(rspo::is_complete_response(token_sequence{2, 1, 0}, 0, 3));
    CHECK(rspo::is_complete_response(token_sequence{2, 1, 1}, 0, 3));  // cut
    CHECK_FALSE(rspo::is_complete_response(token_sequence{}, 0, 3));
    CHECK_FALSE(rspo::is_complete_response(token_sequence{2, 1}, 0, 3));        // neither
    CHECK_FALSE(rspo::is_complete_response(token_sequence{0, 1, 0}, 0, 3));     // end before the last
    CHECK_FALSE(rspo::is_complete_response(token_sequence{1, 1, 1, 0}, 0, 3));  // too long
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

TEST_CASE("prompt_bigram_policy validates its options and is deterministic for a seed", "[sequence][model]") {
    CHECK_THROWS_AS(rspo::prompt_bigram_policy({.vocabulary = 1}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::prompt_bigram_policy({.prompts = 0}), rspo::shape_error);
    CHECK_THROWS_AS(rspo::prompt_bigram_policy({.max_length = 0}), rspo::shape_error);
    CHECK_THROWS_AS(rspo::prompt_bigram_policy({.init_scale = -1.0}), rspo::domain_error);

    const rspo::prompt_bigram_policy a({.seed = 3}), b({.seed = 3}), c({.seed = 4});
    CHECK(a.parameter_count() == 8 * 17 * 16 + 12 * 16);
    CHECK(std::ranges::equal(a.parameters(), b.parameters()));
    CHECK_FALSE(std::ranges::equal(a.parameters(), c.parameters()));
    CHECK(std::ranges::all_of(a.parameters(), [](float v) { return std::abs(v) <= 0.1f; }));
    CHECK(std::ranges::all_of(a.gradient(), [](float v) { return v == 0.0f; }));
}

TEST_CASE("response_logits are W[x][prev] + b[t], causal, and checked", "[sequence][model]") {
    const auto p = tiny_policy();
    const token_sequence y{2, 1, 0};
    std::vector<float> z(9);
    p.response_logits(1, y, z);
    const auto theta = p.parameters();
    for (std::size_t t = 0; t < 3; ++t)
        for (std::size_t v = 0; v < 3; ++v) {
            const std::size_t prev = t == 0 ? p.start_symbol() : static_cast<std::size_t>(y[t - 1]);
            CAPTURE(t, v);
            CHECK(z[t * 3 + v] == theta[p.weight_index(1, prev, v)] + theta[p.bias_index(t, v)]);
        }
    std::vector<float> prefix(6);
    p.response_logits(1, token_sequence{2, 1}, prefix);
    CHECK(std::equal(prefix.begin(), prefix.end(), z.begin()));
    std::vector<float> other_prompt(9);
    p.response_logits(0, y, other_prompt);
    CHECK(other_prompt != z);

    std::vector<float> wrong(8);
    CHECK_THROWS_AS(p.response_logits(1, y, wrong), rspo::shape_error);
    CHECK_THROWS_AS(p.response_logits(2, y, z), rspo::index_error);
    CHECK_THROWS_AS(p.response_logits(1, token_sequence{2, 3, 0}, z), rspo::index_error);
    std::vector<float> long_out(12);
    CHECK_THROWS_AS(p.response_logits(1, token_sequence{1, 1, 1, 0}, long_out), rspo::shape_error);
}

TEST_CASE("log_prob goes through the kernels, is <= 0, and sums to 1 over all responses", "[sequence][model]") {
    const auto p = tiny_policy();
    // V = 3, L = 3: the 15 complete responses are among the 40 sequences of length <= 4.
    const auto sequences = all_sequences(3, 4);
    REQUIRE(sequences.size() == 1 + 3 + 9 + 27 + 81);
    for (std::size_t x = 0; x < 2; ++x) {
        double total = 0.0;
        std::size_t complete = 0;
        for (const auto& y : sequences) {
            const double lp = p.log_prob(x, y);
            CAPTURE(x, y);
            CHECK(lp <= 0.0);
            if (rspo::is_complete_response(y, 0, 3)) {
                ++complete;
                CHECK(std::isfinite(lp));
                CHECK_THAT(lp, WithinAbs(plain_log_prob(p, x, y), 2e-6));
            } else {
                CHECK(lp == -inf);
            }
            total += std::exp(lp);
        }
        CHECK(complete == 15);
        CHECK_THAT(total, WithinAbs(1.0, 1e-5));
    }
    CHECK_THROWS_AS(p.log_prob(0, token_sequence{1, 5, 0}), rspo::index_error);
    CHECK_THROWS_AS(p.log_prob(2, token_sequence{0}), rspo::index_error);
}

TEST_CASE("sample draws each response with probability exp(log_prob), at any temperature", "[sequence][model]") {
    const auto p = tiny_policy();
    const auto sequences = all_sequences(3, 3);
    for (const double temperature : {1.0, 0.5}) {
        constexpr std::size_t draws = 20000;
        std::map<token_sequence, std::size_t> counts;
        rspo::random_engine rng(11);
        for (std::size_t i = 0; i < draws; ++i) ++counts[p.sample(1, rng, temperature)];
        double covered = 0.0;
        for (const auto& y : sequences) {
            const double q = std::exp(p.log_prob(1, y, temperature));
            const auto it = counts.find(y);
            const double n = it == counts.end() ? 0.0 : static_cast<double>(it->second);
            CAPTURE(temperature, y, q, n);
            if (q == 0.0) {
                CHECK(n == 0.0);
                continue;
            }
            covered += n;
            const double sd = std::sqrt(draws * q * (1.0 - q));
            CHECK(std::abs(n - draws * q) <= 5.0 * sd);
        }
        CHECK(covered == static_cast<double>(draws));  // nothing outside the complete responses
    }
    // Temperature matters: at 0.5 the distribution is sharper, so the top response is likelier.
    double top1 = -inf, top05 = -inf;
    for (const auto& y : sequences) {
        top1 = std::max(top1, p.log_prob(1, y, 1.0));
        top05 = std::max(top05, p.log_prob(1, y, 0.5));
    }
    CHECK(top05 > top1 + 0.1);
    rspo::random_engine rng(1);
    CHECK_THROWS_AS(p.sample(1, rng, 0.0), rspo::domain_error);
    CHECK_THROWS_AS(p.sample(5, rng), rspo::index_error);
}

TEST_CASE("sampling depends only on the engine; responses are complete", "[sequence][model]") {
    const rspo::prompt_bigram_policy p({.seed = 5});
    rspo::random_engine a(42), b(42), c(43);
    bool any_difference = false;
    std::vector<std::size_t> lengths;
    for (int i = 0; i < 200; ++i) {
        const auto ya = p.sample(3, a);
        CHECK(ya == p.sample(3, b));
        any_difference = any_difference || ya != p.sample(3, c);
        CHECK(rspo::is_complete_response(ya, 0, p.max_length()));
        CHECK(p.log_prob(3, ya) <= 0.0);
        CHECK(std::isfinite(p.log_prob(3, ya)));
        lengths.push_back(ya.size());
    }
    CHECK(any_difference);
    CHECK(std::ranges::max(lengths) == 12);  // some responses are cut at max_length
    CHECK(std::ranges::min(lengths) < 6);
}

TEST_CASE("copies are independent snapshots", "[sequence][model]") {
    auto theta = tiny_policy();
    const auto frozen = theta;
    const token_sequence y{2, 2, 1};
    const double before = frozen.log_prob(0, y);
    theta.parameters()[theta.weight_index(0, theta.start_symbol(), 2)] += 1.0f;
    CHECK(theta.log_prob(0, y) > before);
    CHECK(frozen.log_prob(0, y) == before);
}

// ---------------------------------------------------------------------------------------------
// Gradients
// ---------------------------------------------------------------------------------------------

TEST_CASE("accumulate_gradient is the adjoint of the logits (they are linear in the parameters)", "[sequence][gradient]") {
    auto p = rspo::prompt_bigram_policy({.prompts = 2, .vocabulary = 4, .max_length = 4, .init_scale = 0.5, .seed = 2});
    const token_sequence y{3, 1, 1, 0};
    std::vector<float> g(16);
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = 0.25f * static_cast<float>(i % 5) - 0.5f;
    p.accumulate_gradient(1, y, g);
    // f(θ) = Σ g·z(θ); ∂f/∂θ_i by moving θ_i by 1 (exact, f is linear).
    const auto f = [&](const rspo::prompt_bigram_policy& q) {
        std::vector<float> z(16);
        q.response_logits(1, y, z);
        double s = 0.0;
        for (std::size_t i = 0; i < 16; ++i) s += static_cast<double>(g[i]) * z[i];
        return s;
    };
    for (std::size_t i = 0; i < p.parameter_count(); ++i) {
        auto q = p;
        q.parameters()[i] += 1.0f;
        CAPTURE(i);
        CHECK_THAT(f(q) - f(p), WithinAbs(p.gradient()[i], 1e-5));
    }
    // W[x][1] gets rows 2 and 3 (prev = 1 twice): their sum.
    CHECK(p.gradient()[p.weight_index(1, 1, 2)] == g[2 * 4 + 2] + g[3 * 4 + 2]);
    const std::vector<float> before(p.gradient().begin(), p.gradient().end());
    p.accumulate_gradient(1, y, g);
    for (std::size_t i = 0; i < before.size(); ++i) CHECK(p.gradient()[i] == 2.0f * before[i]);
    p.zero_gradient();
    CHECK(std::ranges::all_of(p.gradient(), [](float v) { return v == 0.0f; }));
    std::vector<float> bad = g;
    bad[3] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(p.accumulate_gradient(1, y, bad), rspo::domain_error);
    CHECK_THROWS_AS(p.accumulate_gradient(1, y, std::span<const float>(g).first(12)), rspo::shape_error);
}

TEST_CASE("the log-prob gradient through the kernels matches central differences", "[sequence][gradient]") {
    auto p = rspo::prompt_bigram_policy({.prompts = 2, .vocabulary = 5, .max_length = 4, .init_scale = 0.5, .seed = 9});
    const std::vector<token_sequence> ys{{3, 1, 4, 0}, {2, 2, 2, 2}};
    const std::vector<double> w{0.7, -1.3};
    const std::size_t x = 1;
    const auto objective = [&](const rspo::prompt_bigram_policy& q) {
        return w[0] * q.log_prob(x, ys[0]) + w[1] * q.log_prob(x, ys[1]);
    };
    p.zero_gradient();
    const auto lp = rspo::accumulate_log_prob_gradient(p, x, std::span<const token_sequence>(ys), w);
    REQUIRE(lp.size() == 2);
    CHECK(lp[0] == p.log_prob(x, ys[0]));
    CHECK(lp[1] == p.log_prob(x, ys[1]));

    const std::size_t start = p.start_symbol();
    const std::vector<std::size_t> indices{
        p.weight_index(x, start, 3), p.weight_index(x, start, 0), p.weight_index(x, start, 2),
        p.weight_index(x, 3, 1),     p.weight_index(x, 1, 4),     p.weight_index(x, 2, 2),
        p.weight_index(x, 2, 0),     p.bias_index(0, 3),          p.bias_index(2, 0),
        p.bias_index(3, 2),          p.bias_index(3, 0),          p.weight_index(0, start, 3),  // prompt 0: unused
    };
    const double h = 1e-2;
    for (const std::size_t i : indices) {
        auto plus = p, minus = p;
        plus.parameters()[i] += static_cast<float>(h);
        minus.parameters()[i] -= static_cast<float>(h);
        const double numeric = (objective(plus) - objective(minus)) / (2.0 * h);
        CAPTURE(i, numeric, p.gradient()[i]);
        CHECK_THAT(p.gradient()[i], WithinAbs(numeric, 2e-3));
    }
    CHECK(p.gradient()[p.weight_index(0, start, 3)] == 0.0f);
    // The gradient is not trivially small: the check above would catch a missing term.
    CHECK(std::abs(p.gradient()[p.weight_index(x, start, 3)]) > 0.3);
}

// ---------------------------------------------------------------------------------------------
// Batch helpers
// ---------------------------------------------------------------------------------------------

TEST_CASE("batch_logits stacks response_logits; sequence_log_probs equals log_prob", "[sequence][batch]") {
    const rspo::prompt_bigram_policy p({.prompts = 3, .vocabulary = 6, .max_length = 5, .init_scale = 0.8, .seed = 4});
    const std::vector<std::size_t> prompts{0, 2, 1, 2};
    const std::vector<token_sequence> ys{{1, 0}, {5, 4, 3, 2, 1}, {0}, {3, 3}};  // the last is incomplete
    const auto z = rspo::batch_logits(p, std::span<const std::size_t>(prompts), std::span<const token_sequence>(ys));
    REQUIRE(z.responses() == 4);
    REQUIRE(z.rows() == 2 + 5 + 1 + 2);
    CHECK(z.row_offsets == std::vector<std::size_t>{0, 2, 7, 8, 10});
    CHECK(z.complete == std::vector<std::uint8_t>{1, 1, 1, 0});
    for (std::size_t b = 0; b < 4; ++b) {
        std::vector<float> own(ys[b].size() * 6);
        p.response_logits(prompts[b], ys[b], own);
        CHECK(std::equal(own.begin(), own.end(), z.logits.begin() + static_cast<std::ptrdiff_t>(z.row_offsets[b] * 6)));
    }
    const auto lp = rspo::sequence_log_probs(z);
    for (std::size_t b = 0; b < 3; ++b) CHECK(lp[b] == p.log_prob(prompts[b], ys[b]));
    CHECK(lp[3] == -inf);
    // sum_rows and broadcast_to_rows are adjoint: ⟨sum_rows(u), w⟩ = ⟨u, broadcast(w)⟩.
    std::vector<float> u(z.rows());
    for (std::size_t n = 0; n < u.size(); ++n) u[n] = static_cast<float>(n) - 3.0f;
    const std::vector<double> w{0.5, -1.0, 2.0, 0.25};
    const auto su = rspo::sum_rows(z, u);
    const auto bw = rspo::broadcast_to_rows(z, w);
    double lhs = 0.0, rhs = 0.0;
    for (std::size_t b = 0; b < 4; ++b) lhs += su[b] * w[b];
    for (std::size_t n = 0; n < u.size(); ++n) rhs += static_cast<double>(u[n]) * bw[n];
    CHECK_THAT(lhs, WithinAbs(rhs, 1e-9));

    auto q = p;
    const std::vector<double> d{1.0, 1.0, 1.0, 1.0};
    CHECK_THROWS_AS(rspo::accumulate_log_prob_gradient(q, std::span<const std::size_t>(prompts),
                                                       std::span<const token_sequence>(ys), d),
                    rspo::domain_error);
    const std::vector<std::size_t> short_prompts{0, 2};
    CHECK_THROWS_AS(rspo::batch_logits(p, std::span<const std::size_t>(short_prompts), std::span<const token_sequence>(ys)),
                    rspo::shape_error);
}

TEST_CASE("a KL term from the kernels' backward maps back through accumulate_batch_gradient", "[sequence][batch]") {
    // ∂/∂θ Σ_t KL(π_θ(·|t) ‖ μ(·|t)) via kernels::simd::backward + accumulate_batch_gradient, against
    // central differences: the path a trainer uses for exact per-token regularizers.
    auto theta = rspo::prompt_bigram_policy({.prompts = 1, .vocabulary = 4, .max_length = 3, .init_scale = 0.7, .seed = 1});
    const auto mu = rspo::prompt_bigram_policy({.prompts = 1, .vocabulary = 4, .max_length = 3, .init_scale = 0.7, .seed = 2});
    const std::vector<token_sequence> ys{{1, 2, 0}, {3, 0}};
    const auto total_kl = [&](const rspo::prompt_bigram_policy& q) {
        const auto z = rspo::batch_logits(q, std::size_t{0}, std::span<const token_sequence>(ys));
        const auto m = rspo::batch_logits(mu, std::size_t{0}, std::span<const token_sequence>(ys));
        std::vector<float> kl(z.rows());
        rspo::kernels::simd::forward(z.inputs(&m), {.reverse_kl = kl});
        double s = 0.0;
        for (const float v : kl) s += v;
        return s;
    };
    const auto z = rspo::batch_logits(theta, std::size_t{0}, std::span<const token_sequence>(ys));
    const auto m = rspo::batch_logits(mu, std::size_t{0}, std::span<const token_sequence>(ys));
    const std::vector<float> ones(z.rows(), 1.0f);
    std::vector<float> dz(z.rows() * 4);
    rspo::kernels::simd::backward(z.inputs(&m), {.reverse_kl = ones},
                                  rspo::kernels::gradient_view<float>{dz.data(), z.rows(), 4, 4});
    theta.zero_gradient();
    rspo::accumulate_batch_gradient(theta, std::size_t{0}, std::span<const token_sequence>(ys), z, dz);
    const double h = 1e-2;
    double largest = 0.0;
    for (std::size_t i = 0; i < theta.parameter_count(); ++i) {
        auto plus = theta, minus = theta;
        plus.parameters()[i] += static_cast<float>(h);
        minus.parameters()[i] -= static_cast<float>(h);
        const double numeric = (total_kl(plus) - total_kl(minus)) / (2.0 * h);
        CAPTURE(i, numeric);
        CHECK_THAT(theta.gradient()[i], WithinAbs(numeric, 2e-3));
        largest = std::max(largest, std::abs(numeric));
    }
    CHECK(largest > 0.05);
}

// ---------------------------------------------------------------------------------------------
// Optimizers
// ---------------------------------------------------------------------------------------------

TEST_CASE("adam takes the hand-computed first and second steps", "[optimizers]") {
    rspo::adam opt({.learning_rate = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8});
    std::vector<float> theta{1.0f, -2.0f};
    const std::vector<float> g1{0.5f, -0.25f}, g2{-1.0f, 0.75f};
    opt.step(theta, g1);
    // t = 1: m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr·sign(g).
    CHECK_THAT(theta[0], WithinAbs(1.0 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6));
    CHECK_THAT(theta[1], WithinAbs(-2.0 + 0.1 * 0.25 / (0.25 + 1e-8), 1e-6));
    opt.step(theta, g2);
    for (std::size_t i = 0; i < 2; ++i) {
        const double a = g1[i], b = g2[i];
        const double m = 0.9 * (0.1 * a) + 0.1 * b;
        const double v = 0.999 * (0.001 * a * a) + 0.001 * b * b;
        const double mhat = m / (1.0 - 0.81), vhat = v / (1.0 - 0.999 * 0.999);
        const double first = i == 0 ? 1.0 - 0.1 * 0.5 / (0.5 + 1e-8) : -2.0 + 0.1 * 0.25 / (0.25 + 1e-8);
        CAPTURE(i);
        CHECK_THAT(theta[i], WithinAbs(first - 0.1 * mhat / (std::sqrt(vhat) + 1e-8), 1e-6));
    }
    CHECK(opt.steps() == 2);
}

TEST_CASE("rmsprop takes the hand-computed first and second steps", "[optimizers]") {
    rspo::rmsprop opt({.learning_rate = 0.01, .alpha = 0.99, .epsilon = 1e-8});
    std::vector<float> theta{0.5f, 0.0f, 3.0f};
    const std::vector<float> g1{2.0f, 0.0f, -0.1f}, g2{1.0f, 0.5f, -0.1f};
    opt.step(theta, g1);
    // v = 0.01·g², no bias correction: the first step is lr·g/(0.1|g| + ε) ≈ 0.1·sign(g).
    CHECK_THAT(theta[0], WithinAbs(0.5 - 0.01 * 2.0 / (0.1 * 2.0 + 1e-8), 1e-6));
    CHECK(theta[1] == 0.0f);
    CHECK_THAT(theta[2], WithinAbs(3.0 + 0.01 * 0.1 / (0.1 * 0.1 + 1e-8), 1e-6));
    const std::vector<double> after1{theta[0], theta[1], theta[2]};
    opt.step(theta, g2);
    for (std::size_t i = 0; i < 3; ++i) {
        const double v = 0.99 * 0.01 * g1[i] * g1[i] + 0.01 * g2[i] * g2[i];
        CAPTURE(i);
        CHECK_THAT(theta[i], WithinAbs(after1[i] - 0.01 * g2[i] / (std::sqrt(v) + 1e-8), 1e-6));
    }
}

TEST_CASE("optimizers check their options, sizes and gradients", "[optimizers]") {
    CHECK_THROWS_AS(rspo::adam({.learning_rate = 0.0}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::adam({.beta1 = 1.0}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::adam({.beta2 = -0.1}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::adam({.epsilon = 0.0}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::rmsprop({.alpha = 1.0}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::rmsprop({.learning_rate = std::numeric_limits<double>::quiet_NaN()}), rspo::domain_error);

    rspo::adam opt;
    std::vector<float> theta{1.0f, 2.0f};
    const std::vector<float> three{1.0f, 1.0f, 1.0f};
    CHECK_THROWS_AS(opt.step(theta, three), rspo::shape_error);
    std::vector<float> nan_grad{0.0f, std::numeric_limits<float>::infinity()};
    CHECK_THROWS_AS(opt.step(theta, nan_grad), rspo::domain_error);
    CHECK(theta == std::vector<float>{1.0f, 2.0f});  // rejected before any change
    const std::vector<float> g{1.0f, 1.0f};
    opt.step(theta, g);
    std::vector<float> bigger{0.0f, 0.0f, 0.0f};
    CHECK_THROWS_AS(opt.step(bigger, three), rspo::shape_error);  // state was sized by the first step
    opt.reset();
    opt.step(bigger, three);
    CHECK(opt.steps() == 1);
}
