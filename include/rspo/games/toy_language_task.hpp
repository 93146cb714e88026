#pragma once
// A toy language task with the mechanisms the RSPO paper names (arXiv 2503.00030): a hidden quality
// signal, a judge with a verbosity bias, an intransitive (non-Bradley–Terry) preference, a
// mis-specified surrogate judge to train on while the true judge evaluates (over-optimization),
// and a synthetic SFT corpus that makes a reference policy μ by maximum likelihood.
//
// Design (P prompts, vocabulary V with end token 0, responses of at most L tokens):
//  * Content tokens are 1..V−1. A response's content length len(y) counts its tokens other than
//    the end token.
//  * Hidden quality. Each prompt x has a set R_x of `relevant_tokens` content tokens (drawn from
//    the task's seed). quality(x, y) = |{t : y_t ∈ R_x}| / len(y) ∈ [0, 1] (0 for no content). It is
//    a fraction, so it does not reward length: any length preference is bias.
//  * Style. The first content token v sets style(y) = (v − 1) mod 3 ∈ {0, 1, 2} (none if there is
//    no content). Styles play rock-paper-scissors: s beats (s + 1) mod 3, cyc(s, s′) = +1, −1 or 0.
//  * Judge (toy_judge, a PreferenceOracle over (prompt index, token_sequence)):
//        P(y ≻ y′ | x) = σ(a·(q − q′) + b·tanh((len − len′)/c) + d·cyc(s, s′) + noise)
//    The logit is antisymmetric, so P(y ≻ y′) + P(y′ ≻ y) = 1 exactly and P = ½ on ties; the
//    quality term is transitive, the style term is a 3-cycle (no Bradley–Terry score fits it), and
//    b > 0 is the verbosity bias that length-controlled win rates correct for (docs/math §6).
//  * True judge: options.judge (moderate verbosity bias, exact quality, no noise). Surrogate judge:
//    options.surrogate (by default a stronger verbosity bias and per-pair noise) scoring quality
//    against R̃_x, which keeps only `surrogate_shared` tokens of R_x and replaces the rest with
//    decoys. Training against the surrogate raises its win rate by length and decoys while the
//    true judge's can fall: the over-optimization the regularizer toward μ is meant to limit.
//  * Noise is deterministic: a hash of (x, y, y′) taken in a canonical order (the lexicographically
//    smaller response first) and negated for the other order, so the judge stays complementary and
//    gives the same answer for the same call.
//  * Corpus (toy_corpus_policy, a Policy one can sample and score exactly): content length uniform
//    on {corpus_min_length, …, L} (length L is cut, without the end token); the first token's style
//    from a per-prompt mix (seeded), the token uniform within the style; each later token copies
//    the bigram successor v mod (V−1) + 1 of the previous one with probability corpus_coherence,
//    else comes from R_x with probability corpus_relevance, else is uniform over content tokens.
//    Its exact log-probabilities give the NLL floor that a fitted μ can be compared to.
//  * Reference: fit_reference trains a TrainableSequencePolicy (e.g. prompt_bigram_policy, which
//    can represent the corpus distribution up to its never-ending first position) by minibatch
//    maximum likelihood through the token kernels' backward and any rspo optimizer.

#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>
#include <rspo/core/optimizers.hpp>
#include <rspo/core/random.hpp>
#include <rspo/oracles/preference_oracle.hpp>
#include <rspo/policies/policy.hpp>
#include <rspo/policies/sequence_policy.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rspo {

// ---------------------------------------------------------------------------------------------
// Features of a response
// ---------------------------------------------------------------------------------------------

/// The style of a response with no content token.
inline constexpr int no_style = -1;

/// Style of a content token v ≥ 1: (v − 1) mod 3.
inline int toy_token_style(token v) noexcept { return (static_cast<int>(v) - 1) % 3; }

/// Style of a response: that of its first content token (no_style if it has none).
inline int toy_style(std::span<const token> y, token end_token = 0) noexcept {
    for (const token v : y)
        if (v != end_token) return toy_token_style(v);
    return no_style;
}

/// Number of tokens other than the end token.
inline std::size_t toy_content_length(std::span<const token> y, token end_token = 0) noexcept {
    return static_cast<std::size_t>(std::count_if(y.begin(), y.end(), [&](token v) { return v != end_token; }));
}

/// Rock-paper-scissors between styles: +1 if s beats s′ (s′ = s + 1 mod 3), −1 if s′ beats s, 0 if
/// equal or either has no style.
inline int toy_style_cycle(int s, int s_other) noexcept {
    if (s == no_style || s_other == no_style || s == s_other) return 0;
    return s_other == (s + 1) % 3 ? 1 : -1;
}

// ---------------------------------------------------------------------------------------------
// The judge
// ---------------------------------------------------------------------------------------------

struct toy_judge_options {
    double quality_weight = 4.0;  ///< a: weight of the quality difference (q ∈ [0, 1])
    double length_weight = 0.5;   ///< b ≥ 0: verbosity bias
    double length_scale = 4.0;    ///< c > 0: content tokens over which the length term saturates
    double style_weight = 1.0;    ///< d ≥ 0: the rock-paper-scissors term
    double noise = 0.0;           ///< ≥ 0: per-pair logit noise, uniform in [−noise, noise]
    std::uint64_t noise_seed = 0;

    void validate(const char* fn) const {
        check_non_negative(fn, "options.quality_weight", quality_weight);
        check_non_negative(fn, "options.length_weight", length_weight);
        check_positive(fn, "options.length_scale", length_scale);
        check_non_negative(fn, "options.style_weight", style_weight);
        check_non_negative(fn, "options.noise", noise);
    }
};

namespace detail {

/// An index uniform on {0, …, n − 1} from one uniform01 draw (n ≥ 1).
inline std::size_t toy_uniform_index(random_engine& rng, std::size_t n) {
    return std::min(n - 1, static_cast<std::size_t>(uniform01(rng) * static_cast<double>(n)));
}

/// σ(z) computed so that σ(−z) = 1 − σ(z) bit for bit (as bradley_terry_oracle).
inline double toy_sigmoid(double z) noexcept {
    return z >= 0.0 ? 1.0 / (1.0 + std::exp(-z)) : 1.0 - 1.0 / (1.0 + std::exp(z));
}

}  // namespace detail

/// P(y ≻ y′ | x) = σ(a·(q − q′) + b·tanh((len − len′)/c) + d·cyc(s, s′) + noise), with q the
/// fraction of content tokens in this judge's relevant set of x. See the header's design notes.
class toy_judge {
public:
    using oracle_category = preference_oracle_tag;
    using prompt_type = std::size_t;
    using response_type = token_sequence;

    /// relevant: [prompts × vocabulary] row-major, 1 where token v is relevant to prompt x (the end
    /// token 0 never is). Usually built by toy_language_task.
    toy_judge(std::vector<std::uint8_t> relevant, std::size_t prompts, std::size_t vocabulary,
              toy_judge_options options = {})
        : relevant_(std::move(relevant)), prompts_(prompts), vocabulary_(vocabulary), options_(options) {
        constexpr const char* fn = "rspo::toy_judge";
        options_.validate(fn);
        check_not_empty(fn, "prompts", prompts_);
        check_not_empty(fn, "vocabulary", vocabulary_);
        check_size(fn, "relevant", relevant_.size(), prompts_ * vocabulary_, "prompts * vocabulary");
        for (std::size_t x = 0; x < prompts_; ++x)
            if (relevant_[x * vocabulary_] != 0)
                throw domain_error(fn, "relevant",
                                   detail::indexed("relevant", x * vocabulary_) +
                                       " marks the end token 0 relevant to prompt " + std::to_string(x));
    }

    double prefer(std::size_t x, const token_sequence& a, const token_sequence& b) const {
        return detail::toy_sigmoid(logit(x, a, b));
    }

    /// The logit of prefer: antisymmetric bit for bit (logit(x, b, a) = −logit(x, a, b)), 0 for a = b.
    double logit(std::size_t x, const token_sequence& a, const token_sequence& b) const {
        constexpr const char* fn = "rspo::toy_judge::prefer";
        check_index(fn, "x", x, prompts_);
        detail::check_token_ids(fn, "a", a, vocabulary_);
        detail::check_token_ids(fn, "b", b, vocabulary_);
        if (a == b) return 0.0;
        // Evaluate in one canonical order and negate for the other: exact antisymmetry even though
        // tanh and the noise hash are not written to be odd.
        return a < b ? canonical_logit(x, a, b) : -canonical_logit(x, b, a);
    }

    /// Fraction of y's content tokens that this judge counts as relevant to x (0 with no content).
    double quality(std::size_t x, const token_sequence& y) const {
        constexpr const char* fn = "rspo::toy_judge::quality";
        check_index(fn, "x", x, prompts_);
        detail::check_token_ids(fn, "y", y, vocabulary_);
        return quality_unchecked(x, y);
    }

    [[nodiscard]] bool is_relevant(std::size_t x, token v) const {
        constexpr const char* fn = "rspo::toy_judge::is_relevant";
        check_index(fn, "x", x, prompts_);
        check_index(fn, "v", static_cast<std::size_t>(v), vocabulary_);
        return relevant_[x * vocabulary_ + static_cast<std::size_t>(v)] != 0;
    }
    [[nodiscard]] const toy_judge_options& options() const noexcept { return options_; }
    [[nodiscard]] std::size_t prompts() const noexcept { return prompts_; }
    [[nodiscard]] std::size_t vocabulary_size() const noexcept { return vocabulary_; }

private:
    double quality_unchecked(std::size_t x, const token_sequence& y) const {
        std::size_t content = 0, hits = 0;
        for (const token v : y) {
            if (v == 0) continue;
            ++content;
            hits += relevant_[x * vocabulary_ + static_cast<std::size_t>(v)];
        }
        return content == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(content);
    }

    double canonical_logit(std::size_t x, const token_sequence& a, const token_sequence& b) const {
        const double dq = quality_unchecked(x, a) - quality_unchecked(x, b);
        const double dlen = static_cast<double>(toy_content_length(a)) - static_cast<double>(toy_content_length(b));
        const int cyc = toy_style_cycle(toy_style(a), toy_style(b));
        double z = options_.quality_weight * dq + options_.length_weight * std::tanh(dlen / options_.length_scale) +
                   options_.style_weight * static_cast<double>(cyc);
        if (options_.noise > 0.0) {
            std::uint64_t h = mix64(options_.noise_seed ^ mix64(x));
            for (const token v : a) h = mix64(h ^ static_cast<std::uint64_t>(v));
            h = mix64(h ^ 0xA5A5A5A5A5A5A5A5ull);  // separates a from b: (12, 3) ≠ (1, 23)
            for (const token v : b) h = mix64(h ^ static_cast<std::uint64_t>(v));
            const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
            z += options_.noise * (2.0 * u - 1.0);
        }
        return z;
    }

    std::vector<std::uint8_t> relevant_;
    std::size_t prompts_;
    std::size_t vocabulary_;
    toy_judge_options options_;
};

static_assert(PreferenceOracle<toy_judge>);

// ---------------------------------------------------------------------------------------------
// The corpus distribution
// ---------------------------------------------------------------------------------------------

/// One supervised example: a prompt index and a complete response.
struct corpus_example {
    std::size_t prompt = 0;
    token_sequence response = {};
};

/// The distribution the synthetic corpus is drawn from (see the header's design notes). A Policy:
/// its exact log_prob is the floor of the corpus NLL.
class toy_corpus_policy {
public:
    using policy_category = policy_tag;
    using prompt_type = std::size_t;
    using response_type = token_sequence;

    struct tables {
        std::size_t prompts = 0, vocabulary = 0, max_length = 0, min_length = 1;
        double coherence = 0.0, relevance = 0.0;
        std::vector<std::uint8_t> relevant = {};       ///< [prompts × vocabulary]
        std::vector<std::array<double, 3>> style = {};  ///< per prompt, P(style s) of the first token
    };

    explicit toy_corpus_policy(tables t) : t_(std::move(t)) {
        constexpr const char* fn = "rspo::toy_corpus_policy";
        check_not_empty(fn, "t.prompts", t_.prompts);
        if (t_.vocabulary < 4)
            throw domain_error(fn, "t.vocabulary", "t.vocabulary = " + std::to_string(t_.vocabulary) + " must be >= 4");
        if (t_.min_length > t_.max_length || t_.max_length == 0)
            throw domain_error(fn, "t.min_length", "need 0 <= t.min_length <= t.max_length and t.max_length >= 1");
        check_probability(fn, "t.coherence", t_.coherence);
        check_probability(fn, "t.relevance", t_.relevance);
        check_size(fn, "t.relevant", t_.relevant.size(), t_.prompts * t_.vocabulary, "t.prompts * t.vocabulary");
        check_size(fn, "t.style", t_.style.size(), t_.prompts, "t.prompts");
        for (std::size_t x = 0; x < t_.prompts; ++x) {
            std::size_t count = 0;
            for (std::size_t v = 1; v < t_.vocabulary; ++v) count += t_.relevant[x * t_.vocabulary + v];
            if (count == 0)
                throw domain_error(fn, "t.relevant", "prompt " + std::to_string(x) + " has no relevant token");
            relevant_count_.push_back(count);
            Eigen::VectorXd mix(3);
            for (std::size_t s = 0; s < 3; ++s) mix[static_cast<Eigen::Index>(s)] = t_.style[x][s];
            check_full_support(fn, detail::indexed("t.style", x), mix);
        }
        for (std::size_t v = 1; v < t_.vocabulary; ++v)
            ++style_size_[static_cast<std::size_t>(toy_token_style(static_cast<token>(v)))];
    }

    double log_prob(std::size_t x, const token_sequence& y) const {
        constexpr const char* fn = "rspo::toy_corpus_policy::log_prob";
        check_index(fn, "x", x, t_.prompts);
        detail::check_token_ids(fn, "y", y, t_.vocabulary);
        const std::size_t n = toy_content_length(y);
        if (!is_complete_response(y, 0, t_.max_length) || n < t_.min_length)
            return -std::numeric_limits<double>::infinity();
        double lp = -std::log(static_cast<double>(t_.max_length - t_.min_length + 1));
        if (n == 0) return lp;
        const auto s = static_cast<std::size_t>(toy_token_style(y[0]));
        lp += std::log(t_.style[x][s]) - std::log(static_cast<double>(style_size_[s]));
        for (std::size_t t = 1; t < n; ++t) lp += std::log(next_probability(x, y[t - 1], y[t]));
        return lp;
    }

    token_sequence sample(std::size_t x, random_engine& rng) const {
        check_index("rspo::toy_corpus_policy::sample", "x", x, t_.prompts);
        const std::size_t lengths = t_.max_length - t_.min_length + 1;
        const std::size_t n = t_.min_length + detail::toy_uniform_index(rng, lengths);
        token_sequence y;
        y.reserve(n + 1);
        if (n > 0) {
            const double u = uniform01(rng);
            std::size_t s = 0;
            for (double c = t_.style[x][0]; s < 2 && u >= c; c += t_.style[x][++s]) {}
            const auto style = static_cast<int>(s);
            y.push_back(pick(rng, [&](std::size_t v) { return toy_token_style(static_cast<token>(v)) == style; }));
        }
        const std::size_t base = x * t_.vocabulary;
        while (y.size() < n) {
            const double u = uniform01(rng);
            if (u < t_.coherence) y.push_back(successor(y.back()));
            else if (u < t_.coherence + (1.0 - t_.coherence) * t_.relevance)
                y.push_back(pick(rng, [&](std::size_t v) { return t_.relevant[base + v] != 0; }));
            else y.push_back(pick(rng, [](std::size_t) { return true; }));
        }
        if (n < t_.max_length) y.push_back(0);
        return y;
    }

    [[nodiscard]] const tables& parameters() const noexcept { return t_; }
    /// The corpus' bigram successor of a content token: v mod (V − 1) + 1.
    [[nodiscard]] token successor(token v) const noexcept {
        return static_cast<token>(static_cast<std::size_t>(v) % (t_.vocabulary - 1) + 1);
    }

private:
    double next_probability(std::size_t x, token prev, token v) const {
        const double content = static_cast<double>(t_.vocabulary - 1);
        const bool relevant = t_.relevant[x * t_.vocabulary + static_cast<std::size_t>(v)] != 0;
        const double fresh = t_.relevance * (relevant ? 1.0 / static_cast<double>(relevant_count_[x]) : 0.0) +
                             (1.0 - t_.relevance) / content;
        return t_.coherence * (v == successor(prev) ? 1.0 : 0.0) + (1.0 - t_.coherence) * fresh;
    }
    /// A content token uniform among those that satisfy keep (in increasing order of id).
    template <class Keep>
    token pick(random_engine& rng, Keep keep) const {
        std::size_t count = 0;
        for (std::size_t v = 1; v < t_.vocabulary; ++v) count += keep(v) ? 1 : 0;
        RSPO_ASSERT(count > 0);
        std::size_t k = detail::toy_uniform_index(rng, count);
        for (std::size_t v = 1; v < t_.vocabulary; ++v)
            if (keep(v) && k-- == 0) return static_cast<token>(v);
        return static_cast<token>(t_.vocabulary - 1);  // unreachable
    }

    tables t_;
    std::vector<std::size_t> relevant_count_;
    std::array<std::size_t, 3> style_size_{};
};

static_assert(Policy<toy_corpus_policy>);

// ---------------------------------------------------------------------------------------------
// The task
// ---------------------------------------------------------------------------------------------

struct toy_task_options {
    std::size_t prompts = 8;            ///< P
    std::size_t vocabulary = 16;        ///< V ≥ 4: the end token 0 and content tokens of all 3 styles
    std::size_t max_length = 12;        ///< L
    std::size_t relevant_tokens = 4;    ///< |R_x|, in [1, V − 1]
    std::size_t surrogate_shared = 2;   ///< |R_x ∩ R̃_x| ≤ |R_x|; R̃_x's other tokens are decoys
    toy_judge_options judge = {};       ///< the true judge (evaluation)
    toy_judge_options surrogate = {.length_weight = 1.5, .noise = 0.5, .noise_seed = 1};  ///< trained against
    double corpus_coherence = 0.3;      ///< P(a later corpus token is the previous one's successor)
    double corpus_relevance = 0.5;      ///< else P(it is drawn from R_x)
    std::size_t corpus_min_length = 1;  ///< fewest content tokens of a corpus response, ≤ L
    std::uint64_t seed = 0;             ///< relevant sets, decoys and the corpus' style mixes

    void validate(const char* fn) const {
        check_not_empty(fn, "options.prompts", prompts);
        if (vocabulary < 4)
            throw domain_error(fn, "options.vocabulary",
                               "options.vocabulary = " + std::to_string(vocabulary) +
                                   " must be >= 4 (the end token and one content token per style)");
        check_not_empty(fn, "options.max_length", max_length);
        if (relevant_tokens < 1 || relevant_tokens > vocabulary - 1)
            throw domain_error(fn, "options.relevant_tokens",
                               "options.relevant_tokens = " + std::to_string(relevant_tokens) +
                                   " must be in [1, vocabulary - 1]");
        if (surrogate_shared > relevant_tokens)
            throw domain_error(fn, "options.surrogate_shared",
                               "options.surrogate_shared = " + std::to_string(surrogate_shared) +
                                   " must be <= options.relevant_tokens");
        if (2 * relevant_tokens - surrogate_shared > vocabulary - 1)
            throw domain_error(fn, "options.surrogate_shared",
                               "options.surrogate_shared = " + std::to_string(surrogate_shared) +
                                   " leaves too few content tokens for the surrogate's decoys");
        judge.validate(fn);
        surrogate.validate(fn);
        check_probability(fn, "options.corpus_coherence", corpus_coherence);
        check_probability(fn, "options.corpus_relevance", corpus_relevance);
        if (corpus_min_length > max_length)
            throw domain_error(fn, "options.corpus_min_length",
                               "options.corpus_min_length = " + std::to_string(corpus_min_length) +
                                   " must be <= options.max_length = " + std::to_string(max_length));
    }
};

struct corpus_options {
    std::size_t responses_per_prompt = 64;
    std::uint64_t seed = 0;
};

class toy_language_task {
public:
    toy_language_task() : toy_language_task(toy_task_options{}) {}
    explicit toy_language_task(toy_task_options options)
        : toy_language_task(options, make_tables((options.validate("rspo::toy_language_task"), options))) {}

    [[nodiscard]] const toy_task_options& options() const noexcept { return options_; }
    [[nodiscard]] std::size_t prompts() const noexcept { return options_.prompts; }
    [[nodiscard]] std::size_t vocabulary_size() const noexcept { return options_.vocabulary; }
    [[nodiscard]] std::size_t max_length() const noexcept { return options_.max_length; }
    [[nodiscard]] token end_token() const noexcept { return 0; }

    /// R_x and R̃_x, in increasing order.
    [[nodiscard]] std::vector<token> relevant_tokens(std::size_t x) const { return tokens_of(true_judge_, x); }
    [[nodiscard]] std::vector<token> surrogate_relevant_tokens(std::size_t x) const {
        return tokens_of(surrogate_judge_, x);
    }

    /// The hidden quality: the fraction of y's content tokens in R_x.
    double quality(std::size_t x, const token_sequence& y) const { return true_judge_.quality(x, y); }

    /// The judge that evaluates (options.judge, exact quality).
    [[nodiscard]] const toy_judge& true_judge() const noexcept { return true_judge_; }
    /// The judge to train against (options.surrogate, quality against R̃_x).
    [[nodiscard]] const toy_judge& surrogate_judge() const noexcept { return surrogate_judge_; }
    /// The distribution of the synthetic corpus.
    [[nodiscard]] const toy_corpus_policy& corpus_policy() const noexcept { return corpus_; }

    /// responses_per_prompt draws of the corpus distribution for every prompt, prompt by prompt;
    /// the same seed gives the same corpus.
    [[nodiscard]] std::vector<corpus_example> make_corpus(corpus_options options = {}) const {
        check_not_empty("rspo::toy_language_task::make_corpus", "options.responses_per_prompt",
                        options.responses_per_prompt);
        random_engine rng(options.seed);
        std::vector<corpus_example> corpus;
        corpus.reserve(options_.prompts * options.responses_per_prompt);
        for (std::size_t x = 0; x < options_.prompts; ++x)
            for (std::size_t i = 0; i < options.responses_per_prompt; ++i)
                corpus.push_back({x, corpus_.sample(x, rng)});
        return corpus;
    }

    /// Options of a prompt_bigram_policy sized for this task.
    [[nodiscard]] prompt_bigram_options policy_options(std::uint64_t seed = 0, double init_scale = 0.1) const {
        return {.prompts = options_.prompts,
                .vocabulary = options_.vocabulary,
                .max_length = options_.max_length,
                .init_scale = init_scale,
                .seed = seed};
    }

private:
    struct seeded_tables {
        std::vector<std::uint8_t> relevant, surrogate_relevant;
        std::vector<std::array<double, 3>> style;
    };

    static seeded_tables make_tables(const toy_task_options& o) {
        const std::size_t P = o.prompts, V = o.vocabulary;
        seeded_tables t{std::vector<std::uint8_t>(P * V, 0), std::vector<std::uint8_t>(P * V, 0),
                        std::vector<std::array<double, 3>>(P)};
        random_engine rng(o.seed);
        for (std::size_t x = 0; x < P; ++x) {
            // A seeded shuffle of the content tokens: the first k are R_x; R̃_x keeps the first
            // `surrogate_shared` of them and takes its decoys from just after R_x.
            std::vector<token> content;
            for (std::size_t v = 1; v < V; ++v) content.push_back(static_cast<token>(v));
            for (std::size_t i = content.size() - 1; i > 0; --i) {
                std::swap(content[i], content[detail::toy_uniform_index(rng, i + 1)]);
            }
            const std::size_t k = o.relevant_tokens, shared = o.surrogate_shared;
            const auto at = [&](std::size_t i) { return x * V + static_cast<std::size_t>(content[i]); };
            for (std::size_t i = 0; i < k; ++i) t.relevant[at(i)] = 1;
            for (std::size_t i = 0; i < shared; ++i) t.surrogate_relevant[at(i)] = 1;
            for (std::size_t i = k; i < 2 * k - shared; ++i) t.surrogate_relevant[at(i)] = 1;
            // Unequal style mixes, so μ does not start at the style game's (uniform) equilibrium.
            double total = 0.0;
            for (double& w : t.style[x]) total += (w = 0.25 + uniform01(rng));
            for (double& w : t.style[x]) w /= total;
        }
        return t;
    }

    toy_language_task(const toy_task_options& o, seeded_tables t)
        : options_(o),
          true_judge_(t.relevant, o.prompts, o.vocabulary, o.judge),
          surrogate_judge_(std::move(t.surrogate_relevant), o.prompts, o.vocabulary, o.surrogate),
          corpus_({.prompts = o.prompts,
                   .vocabulary = o.vocabulary,
                   .max_length = o.max_length,
                   .min_length = o.corpus_min_length,
                   .coherence = o.corpus_coherence,
                   .relevance = o.corpus_relevance,
                   .relevant = std::move(t.relevant),
                   .style = std::move(t.style)}) {}

    std::vector<token> tokens_of(const toy_judge& judge, std::size_t x) const {
        check_index("rspo::toy_language_task::relevant_tokens", "x", x, options_.prompts);
        std::vector<token> out;
        for (std::size_t v = 1; v < options_.vocabulary; ++v)
            if (judge.is_relevant(x, static_cast<token>(v))) out.push_back(static_cast<token>(v));
        return out;
    }

    toy_task_options options_;
    toy_judge true_judge_;
    toy_judge surrogate_judge_;
    toy_corpus_policy corpus_;
};

// ---------------------------------------------------------------------------------------------
// Supervised fitting of the reference policy
// ---------------------------------------------------------------------------------------------

namespace detail {
inline void check_corpus_examples(const char* fn, std::span<const corpus_example> corpus,
                                  std::size_t vocabulary, token end_token, std::size_t max_length) {
    check_not_empty(fn, "corpus", corpus.size());
    for (std::size_t i = 0; i < corpus.size(); ++i) {
        check_token_ids(fn, indexed("corpus", i) + ".response", corpus[i].response, vocabulary);
        if (!is_complete_response(corpus[i].response, end_token, max_length))
            throw domain_error(fn, "corpus",
                               indexed("corpus", i) + ".response is not a complete response (it must end "
                                                      "with the end token or have max_length tokens)");
    }
}
}  // namespace detail

/// Mean −log π(y | x) over the corpus (nats per response), through the token kernels. +∞ if the
/// policy gives some example probability 0.
template <SequencePolicy P>
    requires std::same_as<typename P::prompt_type, std::size_t>
double corpus_nll(const P& policy, std::span<const corpus_example> corpus) {
    check_not_empty("rspo::corpus_nll", "corpus", corpus.size());
    std::vector<std::size_t> prompts;
    std::vector<token_sequence> responses;
    for (const auto& e : corpus) {
        prompts.push_back(e.prompt);
        responses.push_back(e.response);
    }
    const std::vector<double> lp = sequence_log_probs(
        batch_logits(policy, std::span<const std::size_t>(prompts), std::span<const token_sequence>(responses)));
    double total = 0.0;
    for (const double v : lp) total -= v;
    return total / static_cast<double>(lp.size());
}

struct fit_options {
    std::size_t batch_size = 32;     ///< examples per optimizer step (the last batch may be smaller)
    std::uint64_t shuffle_seed = 0;  ///< order of the examples, reshuffled every epoch
};

enum class fit_status {
    completed,        ///< every epoch ran
    numeric_failure,  ///< a step made a parameter non-finite; the policy holds the last good ones
};

struct fit_result {
    double initial_nll = 0.0;            ///< corpus_nll before training
    double final_nll = 0.0;              ///< corpus_nll after training
    std::vector<double> epoch_nll = {};  ///< per epoch: mean NLL of its batches, each before its step
    std::size_t steps = 0;               ///< optimizer steps taken
    fit_status status = fit_status::completed;
    std::string message = {};            ///< what went wrong, for numeric_failure
};

/// Supervised maximum likelihood: minimizes the corpus' mean −log π(y | x) with minibatches, the
/// gradient from kernels::simd::backward (rspo::accumulate_log_prob_gradient) and `optimizer`. This
/// turns an initialized policy into the reference μ of a self-play run.
template <TrainableSequencePolicy P, Optimizer O>
    requires std::same_as<typename P::prompt_type, std::size_t>
fit_result fit_reference(P& policy, std::span<const corpus_example> corpus, std::size_t epochs, O& optimizer,
                         fit_options options = {}) {
    constexpr const char* fn = "rspo::fit_reference";
    detail::check_corpus_examples(fn, corpus, policy.vocabulary_size(), static_cast<token>(policy.end_token()),
                         policy.max_length());
    check_not_empty(fn, "options.batch_size", options.batch_size);
    fit_result result;
    result.initial_nll = corpus_nll(policy, corpus);
    std::vector<std::size_t> order(corpus.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    random_engine rng(options.shuffle_seed);
    std::vector<float> last_good(policy.parameters().begin(), policy.parameters().end());
    std::vector<std::size_t> prompts;
    std::vector<token_sequence> responses;
    for (std::size_t epoch = 0; epoch < epochs && result.status == fit_status::completed; ++epoch) {
        for (std::size_t i = order.size() - 1; i > 0; --i)
            std::swap(order[i], order[detail::toy_uniform_index(rng, i + 1)]);
        double epoch_total = 0.0;
        for (std::size_t begin = 0; begin < order.size(); begin += options.batch_size) {
            const std::size_t end = std::min(order.size(), begin + options.batch_size);
            prompts.clear();
            responses.clear();
            for (std::size_t i = begin; i < end; ++i) {
                prompts.push_back(corpus[order[i]].prompt);
                responses.push_back(corpus[order[i]].response);
            }
            // L = −(1/B) Σ log π(y_b | x_b), so ∂L/∂log π(y_b | x_b) = −1/B.
            const std::vector<double> d(prompts.size(), -1.0 / static_cast<double>(prompts.size()));
            policy.zero_gradient();
            const std::vector<double> lp = accumulate_log_prob_gradient(
                policy, std::span<const std::size_t>(prompts), std::span<const token_sequence>(responses), d);
            for (const double v : lp) epoch_total -= v;
            optimizer.step(policy.parameters(), policy.gradient());
            ++result.steps;
            const auto params = policy.parameters();
            if (!std::all_of(params.begin(), params.end(), [](float v) { return std::isfinite(v); })) {
                std::copy(last_good.begin(), last_good.end(), params.begin());
                result.status = fit_status::numeric_failure;
                result.message = "step " + std::to_string(result.steps) + " made a parameter non-finite";
                break;
            }
            std::copy(params.begin(), params.end(), last_good.begin());
        }
        if (result.status == fit_status::completed)
            result.epoch_nll.push_back(epoch_total / static_cast<double>(corpus.size()));
    }
    policy.zero_gradient();
    result.final_nll = corpus_nll(policy, corpus);
    return result;
}

}  // namespace rspo
