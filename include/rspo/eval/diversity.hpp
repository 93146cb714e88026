#pragma once
// Diversity of a policy's samples (docs/math §6): Self-BLEU and distinct-n on sampled token
// sequences, and the exact entropy of tabular policies. Lower Self-BLEU, higher distinct-n and
// higher entropy mean more diverse.
//
// BLEU mirrors NLTK 3.8's sentence_bleu(references, hypothesis, weights, SmoothingFunction().method1)
// exactly, including its corner cases, so that numbers are comparable with published Self-BLEU
// (Zhu et al. 2018, Texygen), which is computed with it:
//   - modified precision p_k: hypothesis k-gram counts clipped by the maximum count in any one
//     reference, over max(1, number of hypothesis k-grams): a hypothesis shorter than k has p_k's
//     denominator 1, not 0;
//   - method1: an order with no clipped match gets p_k = ε / denominator (ε = 0.1), so a
//     hypothesis shorter than k gets p_k = ε;
//   - BLEU = 0 when no unigram matches (this test comes before smoothing);
//   - brevity penalty with the reference length closest to the hypothesis length, ties to the
//     shorter reference: 1 if c > r, 0 if c = 0, else exp(1 − r/c);
//   - BLEU = BP · exp(Σ_k w_k log p_k), w_k = 1/max_order.

#include <rspo/core/check.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace rspo::eval {

struct bleu_options {
    std::size_t max_order = 3;  ///< n-grams of orders 1..max_order, uniform weights 1/max_order
    double epsilon = 0.1;       ///< NLTK SmoothingFunction().method1's ε (its default)
};

namespace detail {

using token_sequence = std::span<const std::int32_t>;

/// An n-gram as a pointer into the sequence that holds it; its order is fixed per table, so the
/// hash and equality carry it. No copies of the tokens are made.
struct ngram_hash {
    std::size_t order = 1;
    std::size_t operator()(const std::int32_t* g) const noexcept {
        std::uint64_t h = 0x9e3779b97f4a7c15ull ^ order;
        for (std::size_t i = 0; i < order; ++i) {
            h ^= static_cast<std::uint32_t>(g[i]);
            h *= 0xff51afd7ed558ccdull;  // multiply-xorshift mixing (MurmurHash3's finalizer)
            h ^= h >> 33;
        }
        return static_cast<std::size_t>(h);
    }
};

struct ngram_equal {
    std::size_t order = 1;
    bool operator()(const std::int32_t* a, const std::int32_t* b) const noexcept {
        return std::equal(a, a + order, b);
    }
};

using ngram_counts = std::unordered_map<const std::int32_t*, std::size_t, ngram_hash, ngram_equal>;
using ngram_set = std::unordered_set<const std::int32_t*, ngram_hash, ngram_equal>;

inline std::size_t ngram_total(std::size_t length, std::size_t order) {
    return length >= order ? length - order + 1 : 0;
}

/// One sequence's k-gram counts for k = 1..max_order.
struct ngram_profile {
    std::size_t length = 0;
    std::vector<ngram_counts> by_order;  ///< by_order[k − 1]
};

inline ngram_profile make_profile(token_sequence s, std::size_t max_order) {
    ngram_profile p;
    p.length = s.size();
    p.by_order.reserve(max_order);
    for (std::size_t k = 1; k <= max_order; ++k) {
        const std::size_t total = ngram_total(s.size(), k);
        ngram_counts counts(total, ngram_hash{k}, ngram_equal{k});
        for (std::size_t i = 0; i < total; ++i) ++counts[s.data() + i];
        p.by_order.push_back(std::move(counts));
    }
    return p;
}

/// NLTK's sentence BLEU with method1 smoothing (see the top of this header), from profiles.
inline double bleu_from_profiles(const ngram_profile& hyp, std::span<const ngram_profile* const> refs,
                                 const bleu_options& options) {
    const std::size_t c = hyp.length;
    const double weight = 1.0 / static_cast<double>(options.max_order);
    double log_sum = 0.0;
    for (std::size_t k = 1; k <= options.max_order; ++k) {
        std::size_t clipped = 0;
        for (const auto& [gram, count] : hyp.by_order[k - 1]) {
            std::size_t max_ref = 0;
            for (const ngram_profile* r : refs) {
                const auto it = r->by_order[k - 1].find(gram);
                if (it != r->by_order[k - 1].end()) max_ref = std::max(max_ref, it->second);
            }
            clipped += std::min(count, max_ref);
        }
        if (k == 1 && clipped == 0) return 0.0;  // NLTK: no unigram match → 0, before smoothing
        const auto denominator = static_cast<double>(std::max<std::size_t>(1, ngram_total(c, k)));
        const double precision = clipped > 0 ? static_cast<double>(clipped) / denominator
                                             : options.epsilon / denominator;
        log_sum += weight * std::log(precision);
    }
    // Closest reference length, ties to the shorter one.
    std::size_t r = refs.front()->length;
    for (const ngram_profile* ref : refs) {
        const std::size_t len = ref->length;
        const std::size_t d = len > c ? len - c : c - len;
        const std::size_t best = r > c ? r - c : c - r;
        if (d < best || (d == best && len < r)) r = len;
    }
    // c = 0 cannot reach here (it has no unigram match), so the penalty is well defined.
    const double brevity =
        c > r ? 1.0 : std::exp(1.0 - static_cast<double>(r) / static_cast<double>(c));
    return brevity * std::exp(log_sum);
}

inline void check_bleu_options(const char* fn, const bleu_options& options) {
    if (options.max_order == 0)
        throw domain_error(fn, "options.max_order", "options.max_order = 0 must be >= 1");
    check_positive(fn, "options.epsilon", options.epsilon);
}

inline std::vector<token_sequence> as_views(std::span<const std::vector<std::int32_t>> samples) {
    return {samples.begin(), samples.end()};
}

}  // namespace detail

/// Sentence BLEU of one hypothesis against references, NLTK method1 (see the top of this header).
inline double sentence_bleu(std::span<const std::int32_t> hypothesis,
                            std::span<const std::span<const std::int32_t>> references,
                            const bleu_options& options = {}) {
    constexpr const char* fn = "rspo::eval::sentence_bleu";
    detail::check_bleu_options(fn, options);
    check_not_empty(fn, "references", references.size());
    const detail::ngram_profile hyp = detail::make_profile(hypothesis, options.max_order);
    std::vector<detail::ngram_profile> refs;
    refs.reserve(references.size());
    for (const auto r : references) refs.push_back(detail::make_profile(r, options.max_order));
    std::vector<const detail::ngram_profile*> ptrs;
    for (const auto& r : refs) ptrs.push_back(&r);
    return detail::bleu_from_profiles(hyp, ptrs, options);
}

inline double sentence_bleu(std::span<const std::int32_t> hypothesis,
                            std::span<const std::vector<std::int32_t>> references,
                            const bleu_options& options = {}) {
    return sentence_bleu(hypothesis, detail::as_views(references), options);
}

/// Self-BLEU of one prompt's n ≥ 2 samples: the mean over samples of the sentence BLEU of each
/// against the other n − 1 as references (the paper uses n = 16, max_order = 3). In [0, 1]; 1 for
/// identical samples, 0 when no sample shares a token with another. O(n² · length).
inline double self_bleu(std::span<const std::span<const std::int32_t>> samples,
                        const bleu_options& options = {}) {
    constexpr const char* fn = "rspo::eval::self_bleu";
    detail::check_bleu_options(fn, options);
    if (samples.size() < 2)
        throw shape_error(fn, "samples",
                          "samples has size " + std::to_string(samples.size()) +
                              " but Self-BLEU needs at least 2 samples (each is scored against "
                              "the others)");
    std::vector<detail::ngram_profile> profiles;
    profiles.reserve(samples.size());
    for (const auto s : samples) profiles.push_back(detail::make_profile(s, options.max_order));
    std::vector<const detail::ngram_profile*> others(samples.size() - 1);
    double sum = 0.0;
    for (std::size_t i = 0; i < samples.size(); ++i) {
        for (std::size_t j = 0, o = 0; j < samples.size(); ++j)
            if (j != i) others[o++] = &profiles[j];
        sum += detail::bleu_from_profiles(profiles[i], others, options);
    }
    return sum / static_cast<double>(samples.size());
}

inline double self_bleu(std::span<const std::vector<std::int32_t>> samples,
                        const bleu_options& options = {}) {
    return self_bleu(detail::as_views(samples), options);
}

/// distinct-n (Li et al. 2016): distinct n-grams / total n-grams, pooled over the samples. In
/// (0, 1]; 0 when no sample has n tokens (nothing was produced, so nothing distinct).
inline double distinct_n(std::span<const std::span<const std::int32_t>> samples, std::size_t n) {
    constexpr const char* fn = "rspo::eval::distinct_n";
    check_not_empty(fn, "samples", samples.size());
    if (n == 0) throw domain_error(fn, "n", "n = 0 must be >= 1");
    std::size_t total = 0;
    for (const auto s : samples) total += detail::ngram_total(s.size(), n);
    if (total == 0) return 0.0;
    detail::ngram_set seen(total, detail::ngram_hash{n}, detail::ngram_equal{n});
    for (const auto s : samples)
        for (std::size_t i = 0; i < detail::ngram_total(s.size(), n); ++i) seen.insert(s.data() + i);
    return static_cast<double>(seen.size()) / static_cast<double>(total);
}

inline double distinct_n(std::span<const std::vector<std::int32_t>> samples, std::size_t n) {
    return distinct_n(detail::as_views(samples), n);
}

namespace detail {
/// −Σ p log p with 0 log 0 = 0, unchecked.
inline double entropy_unchecked(const Eigen::VectorXd& p) {
    double h = 0.0;
    for (Eigen::Index i = 0; i < p.size(); ++i)
        if (p[i] > 0.0) h -= p[i] * std::log(p[i]);
    return h;
}
}  // namespace detail

/// Shannon entropy −Σ p_i log p_i in nats of a probability vector (checked), with 0 log 0 = 0.
inline double entropy(const Eigen::VectorXd& p) {
    check_distribution("rspo::eval::entropy", "p", p);
    return detail::entropy_unchecked(p);
}

/// Mean entropy (nats) of tabular policies, e.g. one per prompt: exact, no sampling.
inline double mean_entropy(std::span<const Eigen::VectorXd> policies) {
    constexpr const char* fn = "rspo::eval::mean_entropy";
    check_not_empty(fn, "policies", policies.size());
    double sum = 0.0;
    for (std::size_t i = 0; i < policies.size(); ++i) {
        check_distribution(fn, rspo::detail::indexed("policies", i), policies[i]);
        sum += detail::entropy_unchecked(policies[i]);
    }
    return sum / static_cast<double>(policies.size());
}

}  // namespace rspo::eval
