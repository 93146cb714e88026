// The toy language task: its features (quality, length, style), the true and surrogate judges
// (conformance, quality preference, verbosity bias, rock-paper-scissors between styles, determinism),
// the synthetic corpus distribution, and the supervised fit of the reference policy μ.

#include <rspo/core/optimizers.hpp>
#include <rspo/games/toy_language_task.hpp>
#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <vector>

using Catch::Matchers::WithinAbs;
using rspo::token;
using rspo::token_sequence;

namespace {

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

/// The content tokens of the given style that are (or are not) in the judge's relevant set of x.
std::vector<token> tokens_of(const rspo::toy_judge& judge, std::size_t x, int style, bool relevant) {
    std::vector<token> out;
    for (std::size_t v = 1; v < judge.vocabulary_size(); ++v)
        if (rspo::toy_token_style(static_cast<token>(v)) == style && judge.is_relevant(x, static_cast<token>(v)) == relevant)
            out.push_back(static_cast<token>(v));
    return out;
}

token find_token(const rspo::toy_judge& judge, std::size_t x, int style, bool relevant) {
    const auto found = tokens_of(judge, x, style, relevant);
    if (found.empty()) FAIL("no token of style " << style << " with relevant = " << relevant);
    return found.front();
}

/// Sampled responses of several kinds for conformance checks: corpus draws, draws of a random
/// bigram policy (many cut at max_length), and edge cases.
std::vector<token_sequence> assorted_responses(const rspo::toy_language_task& task, std::size_t x) {
    std::vector<token_sequence> out{{0}, {1, 0}, {1, 0}};  // a duplicate: P = ½ on identical inputs
    rspo::random_engine rng(3);
    for (int i = 0; i < 12; ++i) out.push_back(task.corpus_policy().sample(x, rng));
    const rspo::prompt_bigram_policy p(task.policy_options(1, 0.5));
    for (int i = 0; i < 12; ++i) out.push_back(p.sample(x, rng));
    return out;
}

struct fitted {
    rspo::toy_language_task task{};
    std::vector<rspo::corpus_example> corpus{};
    std::vector<rspo::corpus_example> held_out{};
    rspo::prompt_bigram_policy mu{};
    rspo::fit_result result{};
};

/// μ fitted as the test documents: 512 corpus responses per prompt, 8 epochs of Adam (lr 0.02).
const fitted& fitted_reference() {
    static const fitted f = [] {
        fitted out;
        out.corpus = out.task.make_corpus({.responses_per_prompt = 512, .seed = 1});
        out.held_out = out.task.make_corpus({.responses_per_prompt = 256, .seed = 2});
        out.mu = rspo::prompt_bigram_policy(out.task.policy_options(3));
        rspo::adam optimizer({.learning_rate = 0.02});
        out.result = rspo::fit_reference(out.mu, std::span<const rspo::corpus_example>(out.corpus), 8, optimizer);
        return out;
    }();
    return f;
}

double mean_floor(const rspo::toy_language_task& task, const std::vector<rspo::corpus_example>& corpus) {
    double total = 0.0;
    for (const auto& e : corpus) total -= task.corpus_policy().log_prob(e.prompt, e.response);
    return total / static_cast<double>(corpus.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Task construction and features
// ---------------------------------------------------------------------------------------------

TEST_CASE("the task draws relevant sets and decoys from its seed", "[toy_task]") {
    const rspo::toy_language_task task;
    CHECK(task.prompts() == 8);
    CHECK(task.vocabulary_size() == 16);
    CHECK(task.max_length() == 12);
    std::set<std::vector<token>> distinct_sets;
    for (std::size_t x = 0; x < task.prompts(); ++x) {
        const auto r = task.relevant_tokens(x), s = task.surrogate_relevant_tokens(x);
        CHECK(r.size() == 4);
        CHECK(s.size() == 4);
        CHECK(std::ranges::none_of(r, [](token v) { return v == 0; }));
        std::vector<token> shared;
        std::ranges::set_intersection(r, s, std::back_inserter(shared));
        CHECK(shared.size() == 2);
        distinct_sets.insert(r);
    }
    CHECK(distinct_sets.size() >= 6);  // prompts differ
    const rspo::toy_language_task same({.seed = 0}), other({.seed = 1});
    CHECK(same.relevant_tokens(3) == task.relevant_tokens(3));
    bool differs = false;
    for (std::size_t x = 0; x < 8; ++x) differs = differs || other.relevant_tokens(x) != task.relevant_tokens(x);
    CHECK(differs);

    CHECK_THROWS_AS(rspo::toy_language_task({.vocabulary = 3}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::toy_language_task({.relevant_tokens = 0}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::toy_language_task({.relevant_tokens = 2, .surrogate_shared = 3}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::toy_language_task({.vocabulary = 6, .relevant_tokens = 4, .surrogate_shared = 1}),
                    rspo::domain_error);  // no room for 3 decoys among 5 content tokens
    CHECK_THROWS_AS(rspo::toy_language_task({.judge = {.length_scale = 0.0}}), rspo::domain_error);
    CHECK_THROWS_AS(rspo::toy_language_task({.corpus_relevance = 1.5}), rspo::domain_error);
    CHECK_THROWS_AS(task.relevant_tokens(8), rspo::index_error);
}

TEST_CASE("features: quality is a bounded fraction, style is the first content token's", "[toy_task]") {
    const rspo::toy_language_task task;
    const auto& judge = task.true_judge();
    const token r = find_token(judge, 0, 0, true), n = find_token(judge, 0, 1, false);
    CHECK(task.quality(0, {r, n, 0}) == 0.5);
    CHECK(task.quality(0, {r, r, r, r}) == 1.0);
    CHECK(task.quality(0, {n, 0}) == 0.0);
    CHECK(task.quality(0, {0}) == 0.0);
    CHECK(rspo::toy_content_length(token_sequence{r, n, 0}) == 2);
    CHECK(rspo::toy_content_length(token_sequence{0}) == 0);
    CHECK(rspo::toy_style(token_sequence{4, 1, 0}) == 0);  // (4 − 1) mod 3
    CHECK(rspo::toy_style(token_sequence{5, 0}) == 1);
    CHECK(rspo::toy_style(token_sequence{3}) == 2);
    CHECK(rspo::toy_style(token_sequence{0}) == rspo::no_style);
    for (int s = 0; s < 3; ++s) {
        CHECK(rspo::toy_style_cycle(s, s) == 0);
        CHECK(rspo::toy_style_cycle(s, (s + 1) % 3) == 1);
        CHECK(rspo::toy_style_cycle((s + 1) % 3, s) == -1);
        CHECK(rspo::toy_style_cycle(s, rspo::no_style) == 0);
    }
    CHECK_THROWS_AS(task.quality(0, {16, 0}), rspo::index_error);
}

// ---------------------------------------------------------------------------------------------
// Judges
// ---------------------------------------------------------------------------------------------

TEST_CASE("both judges are conforming preference oracles", "[toy_task][judge]") {
    const rspo::toy_language_task task;
    STATIC_REQUIRE(rspo::PreferenceOracle<rspo::toy_judge>);
    for (std::size_t x : {std::size_t{0}, std::size_t{5}}) {
        const auto responses = assorted_responses(task, x);
        const std::span<const token_sequence> view(responses);
        const auto true_report = rspo::check_oracle(task.true_judge(), x, view, 0.0);  // exact
        const auto surrogate_report = rspo::check_oracle(task.surrogate_judge(), x, view, 0.0);
        CAPTURE(x);
        for (const auto& f : true_report.failures) UNSCOPED_INFO(f);
        CHECK(true_report.ok());
        for (const auto& f : surrogate_report.failures) UNSCOPED_INFO(f);
        CHECK(surrogate_report.ok());
        const Eigen::MatrixXd m = rspo::preference_matrix(task.surrogate_judge(), x, view);
        CHECK(m.rows() == static_cast<Eigen::Index>(responses.size()));
    }
    const token_sequence y{1, 0};
    CHECK_THROWS_AS(task.true_judge().prefer(8, y, y), rspo::index_error);
    CHECK_THROWS_AS(task.true_judge().prefer(0, y, {1, -1}), rspo::index_error);
}

TEST_CASE("the true judge prefers quality, length, and styles in a cycle", "[toy_task][judge]") {
    const rspo::toy_language_task task;
    const auto& judge = task.true_judge();
    const auto& o = judge.options();
    const std::size_t x = 2;
    SECTION("higher quality wins at equal length and style") {
        const token first = find_token(judge, x, 0, false), r = find_token(judge, x, 1, true),
                    n = find_token(judge, x, 2, false);
        const token_sequence good{first, r, r, 0}, bad{first, n, n, 0};
        CHECK_THAT(judge.prefer(x, good, bad), WithinAbs(sigmoid(o.quality_weight * (2.0 / 3.0)), 1e-12));
        CHECK(judge.prefer(x, good, bad) > 0.9);
        CHECK_THAT(judge.prefer(x, bad, good), WithinAbs(1.0 - judge.prefer(x, good, bad), 0.0));
    }
    SECTION("longer wins at equal quality and style: the verbosity bias") {
        const token first = find_token(judge, x, 1, false), n = find_token(judge, x, 2, false);
        const token_sequence longer{first, n, n, n, n, 0}, shorter{first, n, 0};
        const double expected = sigmoid(o.length_weight * std::tanh(3.0 / o.length_scale));
        CHECK_THAT(judge.prefer(x, longer, shorter), WithinAbs(expected, 1e-12));
        CHECK(judge.prefer(x, longer, shorter) > 0.55);
        const token_sequence longest{first, n, n, n, n, n, n, n, n, n, n, n};  // cut at max_length
        CHECK(judge.prefer(x, longest, longer) > 0.5);
    }
    SECTION("styles play rock-paper-scissors: a 3-cycle of strict preferences") {
        token_sequence y[3];
        for (int s = 0; s < 3; ++s) {
            const token n = find_token(judge, x, s, false);
            y[s] = {n, n, 0};  // quality 0, content length 2
        }
        const double beat = sigmoid(o.style_weight);
        for (int s = 0; s < 3; ++s) {
            CAPTURE(s);
            CHECK_THAT(judge.prefer(x, y[s], y[(s + 1) % 3]), WithinAbs(beat, 1e-12));
            CHECK(judge.prefer(x, y[s], y[(s + 1) % 3]) > 0.5);
        }
        // No Bradley–Terry score can do this: s0 ≻ s1 ≻ s2 ≻ s0.
    }
    SECTION("ties and identical responses give exactly one half") {
        const auto same_style = tokens_of(judge, x, 0, false);
        REQUIRE(same_style.size() >= 2);
        const token n = same_style[0], m = same_style[1];
        CHECK(judge.prefer(x, {n, m, 0}, {m, n, 0}) == 0.5);  // equal quality, length and style
        CHECK(judge.prefer(x, {n, 0}, {n, 0}) == 0.5);
        CHECK(task.surrogate_judge().prefer(x, {n, 0}, {n, 0}) == 0.5);
    }
}

TEST_CASE("the surrogate judge differs from the true one, misranks decoys, and is deterministic", "[toy_task][judge]") {
    const rspo::toy_language_task task;
    const auto& truth = task.true_judge();
    const auto& sur = task.surrogate_judge();
    // Over many sampled pairs the two judges disagree by a visible margin.
    const auto responses = assorted_responses(task, 1);
    double largest = 0.0, total = 0.0;
    std::size_t pairs = 0;
    for (const auto& a : responses)
        for (const auto& b : responses) {
            const double d = std::abs(truth.prefer(1, a, b) - sur.prefer(1, a, b));
            largest = std::max(largest, d);
            total += d;
            ++pairs;
        }
    CHECK(largest > 0.2);
    CHECK(total / static_cast<double>(pairs) > 0.03);

    // Mis-specified quality: a response made of decoys beats one made of truly relevant tokens
    // (that the surrogate does not count) under the surrogate, and loses under the true judge.
    for (std::size_t x = 0; x < task.prompts(); ++x) {
        const auto r = task.relevant_tokens(x), s = task.surrogate_relevant_tokens(x);
        token decoy = 0, missed = 0;
        for (const token v : s)
            if (!std::ranges::binary_search(r, v)) decoy = v;
        for (const token v : r)
            if (!std::ranges::binary_search(s, v)) missed = v;
        REQUIRE(decoy != 0);
        REQUIRE(missed != 0);
        const token_sequence decoys{decoy, decoy, decoy, 0}, relevant{missed, missed, missed, 0};
        CAPTURE(x, decoy, missed);
        CHECK(sur.quality(x, decoys) == 1.0);
        CHECK(sur.quality(x, relevant) == 0.0);
        CHECK(truth.quality(x, decoys) == 0.0);
        CHECK(truth.quality(x, relevant) == 1.0);
        // Equal lengths; the styles may differ, but both judges weigh them alike, so the logits
        // differ by the two quality terms (2a) up to the surrogate's noise (±0.5).
        const double a = truth.options().quality_weight;
        REQUIRE(sur.options().quality_weight == a);
        CHECK(sur.logit(x, decoys, relevant) - truth.logit(x, decoys, relevant) >= 2.0 * a - sur.options().noise);
        CHECK(truth.prefer(x, relevant, decoys) > sur.prefer(x, relevant, decoys));
    }

    // Deterministic: the same call, and a task built again from the same options, answer the same.
    const rspo::toy_language_task again;
    bool noise_matters = false;
    const rspo::toy_judge noiseless(
        [&] {
            std::vector<std::uint8_t> table(task.prompts() * task.vocabulary_size(), 0);
            for (std::size_t x = 0; x < task.prompts(); ++x)
                for (const token v : task.surrogate_relevant_tokens(x)) table[x * 16 + static_cast<std::size_t>(v)] = 1;
            return table;
        }(),
        task.prompts(), task.vocabulary_size(), {.length_weight = 1.5});
    for (const auto& a : responses)
        for (const auto& b : responses) {
            CHECK(sur.prefer(1, a, b) == sur.prefer(1, a, b));
            CHECK(sur.prefer(1, a, b) == again.surrogate_judge().prefer(1, a, b));
            if (a != b) noise_matters = noise_matters || std::abs(sur.prefer(1, a, b) - noiseless.prefer(1, a, b)) > 1e-3;
            else CHECK(sur.prefer(1, a, b) == noiseless.prefer(1, a, b));  // no noise on a = b
        }
    CHECK(noise_matters);
    CHECK_THROWS_AS(rspo::toy_judge(std::vector<std::uint8_t>(10, 0), 1, 16), rspo::shape_error);
    CHECK_THROWS_AS(rspo::toy_judge(std::vector<std::uint8_t>(16, 1), 1, 16), rspo::domain_error);  // end token relevant
}

// ---------------------------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------------------------

TEST_CASE("the corpus distribution is normalized and sampled as its log_prob says", "[toy_task][corpus]") {
    // V = 4 (one token per style), L = 3: 1 + 3 + 9 + 27 complete responses.
    const rspo::toy_language_task task({.prompts = 2, .vocabulary = 4, .max_length = 3, .relevant_tokens = 1,
                                        .surrogate_shared = 0, .corpus_min_length = 0, .seed = 4});
    const auto& source = task.corpus_policy();
    std::vector<token_sequence> all{{}};
    for (std::size_t n = 0; n < 4; ++n) {
        const std::size_t count = all.size();
        for (std::size_t i = 0; i < count; ++i)
            if (all[i].size() == n)
                for (token v = 0; v < 4; ++v) {
                    auto y = all[i];
                    y.push_back(v);
                    all.push_back(y);
                }
    }
    for (std::size_t x = 0; x < 2; ++x) {
        double total = 0.0;
        for (const auto& y : all) total += std::exp(source.log_prob(x, y));
        CHECK_THAT(total, WithinAbs(1.0, 1e-12));
    }
    constexpr std::size_t draws = 20000;
    std::map<token_sequence, std::size_t> counts;
    rspo::random_engine rng(8);
    for (std::size_t i = 0; i < draws; ++i) ++counts[source.sample(1, rng)];
    for (const auto& [y, n] : counts) {
        const double q = std::exp(source.log_prob(1, y));
        CAPTURE(y, q, n);
        REQUIRE(q > 0.0);
        CHECK(std::abs(static_cast<double>(n) - draws * q) <= 5.0 * std::sqrt(draws * q * (1.0 - q)));
    }
}

TEST_CASE("make_corpus is deterministic for a seed and diverse", "[toy_task][corpus]") {
    const rspo::toy_language_task task;
    const auto a = task.make_corpus({.responses_per_prompt = 64, .seed = 5});
    const auto b = task.make_corpus({.responses_per_prompt = 64, .seed = 5});
    const auto c = task.make_corpus({.responses_per_prompt = 64, .seed = 6});
    REQUIRE(a.size() == 8 * 64);
    bool same = true, differs = false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        same = same && a[i].prompt == b[i].prompt && a[i].response == b[i].response;
        differs = differs || a[i].response != c[i].response;
    }
    CHECK(same);
    CHECK(differs);
    std::set<std::size_t> lengths;
    std::map<int, std::size_t> styles;
    double quality = 0.0;
    for (const auto& e : a) {
        CHECK(rspo::is_complete_response(e.response, 0, 12));
        CHECK(std::isfinite(task.corpus_policy().log_prob(e.prompt, e.response)));
        lengths.insert(rspo::toy_content_length(e.response));
        ++styles[rspo::toy_style(e.response)];
        quality += task.quality(e.prompt, e.response);
    }
    quality /= static_cast<double>(a.size());
    CHECK(lengths.size() == 12);  // every content length 1..12
    CHECK(styles.size() == 3);
    for (const auto& [s, n] : styles) CHECK(n > a.size() / 8);
    // Some relevance: above the 4/15 of uniform tokens, far from all-relevant.
    CHECK(quality > 0.4);
    CHECK(quality < 0.75);
}

// ---------------------------------------------------------------------------------------------
// The reference policy
// ---------------------------------------------------------------------------------------------

TEST_CASE("fit_reference lowers the corpus NLL to near the generator's floor", "[toy_task][fit]") {
    const auto& f = fitted_reference();
    const auto& r = f.result;
    REQUIRE(r.status == rspo::fit_status::completed);
    CHECK(r.steps == 8 * (8 * 512 / 32));
    REQUIRE(r.epoch_nll.size() == 8);
    CHECK(r.epoch_nll.back() < r.epoch_nll.front());
    const rspo::prompt_bigram_policy init(f.task.policy_options(3));
    CHECK_THAT(r.initial_nll, WithinAbs(rspo::corpus_nll(init, f.corpus), 1e-9));
    // Stated margins (nats per response): the untrained model is ~20.6 on the corpus and the
    // generator's own NLL ~17.1. The fit must gain at least 3 nats on the training corpus, and on
    // held-out responses it must gain 2.5 nats and be within 0.6 of the floor.
    CHECK(r.final_nll < r.initial_nll - 3.0);
    const double held_init = rspo::corpus_nll(init, f.held_out), held_fit = rspo::corpus_nll(f.mu, f.held_out);
    const double floor = mean_floor(f.task, f.held_out);
    CAPTURE(r.initial_nll, r.final_nll, held_init, held_fit, floor);
    CHECK(held_fit < held_init - 2.5);
    CHECK(held_fit < floor + 0.6);
    CHECK(held_fit > floor - 0.2);  // a model cannot beat the truth by much on fresh data
}

TEST_CASE("the fitted reference is diverse", "[toy_task][fit]") {
    const auto& f = fitted_reference();
    const auto& mu = f.mu;
    // First-token distribution (row 0 does not depend on the response): high entropy, end token rare.
    for (std::size_t x = 0; x < f.task.prompts(); ++x) {
        std::vector<float> z(16);
        mu.response_logits(x, {0}, z);
        Eigen::VectorXd logits(16);
        for (Eigen::Index v = 0; v < 16; ++v) logits[v] = z[static_cast<std::size_t>(v)];
        const Eigen::VectorXd p = rspo::softmax(logits);
        double entropy = 0.0;
        for (Eigen::Index v = 0; v < 16; ++v) entropy -= p[v] * std::log(p[v]);
        CAPTURE(x, entropy, p[0]);
        CHECK(entropy > 2.2);  // log 15 = 2.71 is uniform over content tokens
        CHECK(p[0] < 0.05);    // the corpus never answers with nothing
    }
    rspo::random_engine rng(17);
    std::set<std::size_t> lengths;
    std::map<int, std::size_t> styles;
    constexpr std::size_t draws = 400;
    for (std::size_t i = 0; i < draws; ++i) {
        const auto y = mu.sample(i % 8, rng);
        lengths.insert(y.size());
        ++styles[rspo::toy_style(y)];
    }
    CHECK(lengths.size() >= 9);
    for (int s = 0; s < 3; ++s) {
        CAPTURE(s);
        CHECK(styles[s] > draws / 10);
    }
}

TEST_CASE("fit_reference is deterministic, works with RMSProp, and reports divergence", "[toy_task][fit]") {
    const rspo::toy_language_task task;
    const auto corpus = task.make_corpus({.responses_per_prompt = 32, .seed = 1});
    const std::span<const rspo::corpus_example> view(corpus);
    rspo::prompt_bigram_policy a(task.policy_options(1)), b(task.policy_options(1));
    rspo::rmsprop oa({.learning_rate = 0.01}), ob({.learning_rate = 0.01});
    const auto ra = rspo::fit_reference(a, view, 2, oa, {.batch_size = 16, .shuffle_seed = 3});
    const auto rb = rspo::fit_reference(b, view, 2, ob, {.batch_size = 16, .shuffle_seed = 3});
    CHECK(std::ranges::equal(a.parameters(), b.parameters()));
    CHECK(ra.final_nll == rb.final_nll);
    CHECK(ra.final_nll < ra.initial_nll - 1.0);

    // An absurd step overflows the parameters: a status, the last good parameters kept.
    rspo::prompt_bigram_policy c(task.policy_options(1));
    const std::vector<float> before(c.parameters().begin(), c.parameters().end());
    rspo::adam huge({.learning_rate = 1e39});
    const auto rc = rspo::fit_reference(c, view, 1, huge);
    CHECK(rc.status == rspo::fit_status::numeric_failure);
    CHECK(rc.steps == 1);
    CHECK(std::ranges::equal(c.parameters(), before));
    CHECK(std::isfinite(rc.final_nll));

    std::vector<rspo::corpus_example> bad = corpus;
    bad[5].response = {3, 3};  // neither ended nor cut at max_length
    CHECK_THROWS_AS(rspo::fit_reference(a, std::span<const rspo::corpus_example>(bad), 1, oa), rspo::domain_error);
    CHECK_THROWS_AS(rspo::fit_reference(a, std::span<const rspo::corpus_example>(), 1, oa), rspo::shape_error);
}
