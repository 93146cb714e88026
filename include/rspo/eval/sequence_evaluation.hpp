#pragma once
// The evaluation the paper reports, for sequence policies (docs/math §6, docs/experiments.md): a
// policy's responses against a baseline's (μ) judged pairwise on every prompt — raw win rate,
// length-controlled win rate, lengths — plus diversity (Self-BLEU, distinct-n) and the policy's
// mean per-token entropy on its own samples.

#include <rspo/core/check.hpp>
#include <rspo/core/random.hpp>
#include <rspo/eval/diversity.hpp>
#include <rspo/eval/length_controlled.hpp>
#include <rspo/eval/win_rate.hpp>
#include <rspo/oracles/preference_oracle.hpp>
#include <rspo/policies/sequence_policy.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace rspo::eval {

struct sequence_evaluation_options {
    std::size_t samples_per_prompt = 16;  ///< n: also the Self-BLEU group size (the paper: 16)
    double temperature = 1.0;             ///< sampling temperature of both policies
    std::uint64_t seed = 0;
    lc_options length_control = {};
    /// Self-BLEU costs O(n²) sentence-BLEU computations per prompt: turn it off for large n (the
    /// field is then NaN). The samples drawn do not depend on it.
    bool compute_self_bleu = true;
};

struct sequence_evaluation {
    double win_rate = 0.0;           ///< percent: mean P(y ≻ y_base) over paired samples
    double win_rate_se = 0.0;        ///< its standard error (percent)
    double lc_win_rate = 0.0;        ///< percent: length-controlled (a GLM at Δlen = 0)
    double mean_length = 0.0;        ///< tokens, the policy's responses
    double baseline_mean_length = 0.0;
    double self_bleu = 0.0;          ///< mean over prompts of Self-BLEU of the policy's n samples
                                     ///< (NaN if options.compute_self_bleu is false)
    double distinct_1 = 0.0;         ///< over all the policy's samples
    double distinct_2 = 0.0;
    double token_entropy = 0.0;      ///< nats: mean entropy of π(·| x, y_<t) over its own samples
};

/// Samples n responses per prompt from `policy` and from `baseline`, pairs the i-th with the i-th,
/// and judges each pair with `judge`. Deterministic for options.seed.
template <SequencePolicy P, PreferenceOracle O>
    requires std::same_as<typename O::prompt_type, typename P::prompt_type> &&
             std::same_as<typename O::response_type, token_sequence>
sequence_evaluation evaluate_sequences(const P& policy, const P& baseline, const O& judge,
                                       std::span<const typename P::prompt_type> prompts,
                                       const sequence_evaluation_options& options = {}) {
    constexpr const char* fn = "rspo::eval::evaluate_sequences";
    check_not_empty(fn, "prompts", prompts.size());
    if (options.samples_per_prompt < 2)
        throw domain_error(fn, "options.samples_per_prompt",
                           "options.samples_per_prompt = " + std::to_string(options.samples_per_prompt) +
                               " must be >= 2 (Self-BLEU compares samples)");
    check_positive(fn, "options.temperature", options.temperature);
    random_engine rng(options.seed);
    std::vector<std::size_t> row_prompt;
    std::vector<double> preference, length_difference;
    std::vector<token_sequence> all_samples;
    double self_bleu_sum = 0.0, length_sum = 0.0, base_length_sum = 0.0;
    double entropy_sum = 0.0;
    std::size_t entropy_rows = 0;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const auto& x = prompts[i];
        const std::vector<token_sequence> ys = sample_responses(policy, x, options.samples_per_prompt, rng, options.temperature);
        const std::vector<token_sequence> bs = sample_responses(baseline, x, options.samples_per_prompt, rng, options.temperature);
        for (std::size_t k = 0; k < ys.size(); ++k) {
            row_prompt.push_back(i);
            preference.push_back(static_cast<double>(judge.prefer(x, ys[k], bs[k])));
            length_difference.push_back(static_cast<double>(ys[k].size()) - static_cast<double>(bs[k].size()));
            length_sum += static_cast<double>(ys[k].size());
            base_length_sum += static_cast<double>(bs[k].size());
        }
        if (options.compute_self_bleu) self_bleu_sum += self_bleu(std::span<const std::vector<std::int32_t>>(ys));
        // Entropy of each next-token distribution along the policy's own samples.
        const response_logits_batch z = batch_logits(policy, x, std::span<const token_sequence>(ys));
        for (std::size_t row = 0; row < z.rows(); ++row) {
            const float* logits = z.logits.data() + row * z.vocabulary;
            double m = -std::numeric_limits<double>::infinity();
            for (std::size_t v = 0; v < z.vocabulary; ++v) m = std::max(m, static_cast<double>(logits[v]));
            double s = 0.0, weighted = 0.0;
            for (std::size_t v = 0; v < z.vocabulary; ++v) {
                const double d = static_cast<double>(logits[v]) - m;
                if (!std::isfinite(d)) continue;  // a masked token: probability 0, no entropy
                const double e = std::exp(d);
                s += e;
                weighted += e * d;
            }
            entropy_sum += std::log(s) - weighted / s;  // H = log Σe^d − E[d]
            ++entropy_rows;
        }
        all_samples.insert(all_samples.end(), ys.begin(), ys.end());
    }
    const auto rows = static_cast<double>(preference.size());
    sequence_evaluation out;
    const win_rate_result raw = win_rate(preference);
    out.win_rate = 100.0 * raw.value;
    out.win_rate_se = 100.0 * raw.standard_error;
    out.lc_win_rate =
        length_controlled_win_rate(row_prompt, preference, length_difference, options.length_control).lc_win_rate;
    out.mean_length = length_sum / rows;
    out.baseline_mean_length = base_length_sum / rows;
    out.self_bleu = options.compute_self_bleu ? self_bleu_sum / static_cast<double>(prompts.size())
                                              : std::numeric_limits<double>::quiet_NaN();
    const std::span<const std::vector<std::int32_t>> samples(all_samples);
    out.distinct_1 = distinct_n(samples, 1);
    out.distinct_2 = distinct_n(samples, 2);
    out.token_entropy = entropy_rows ? entropy_sum / static_cast<double>(entropy_rows) : 0.0;
    return out;
}

}  // namespace rspo::eval
