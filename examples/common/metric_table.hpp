#pragma once
// The evaluation the sequence examples report (support code, not part of the library): the
// metrics of a policy against the reference μ on the toy language task — LC and raw win rate,
// length, Self-BLEU, distinct-2, entropy (true judge), the surrogate judge's win rate and
// KL(π‖μ) — their mean ± SE over seeds, and the tables and CSV fields they are printed as.
// examples/paper_table and examples/torch_rspo print the same tables from it.
//
// The evaluation is four independent parts, each with its own random stream, so that a
// data-parallel run can give each process some of them and sum the results (evaluate_part).

#include <rspo/eval/sequence_evaluation.hpp>
#include <rspo/games/toy_language_task.hpp>
#include <rspo/policies/sequence_policy.hpp>

#include "text_table.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace metric_table {

inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// ------------------------------------------------------------------------------------------------
// Metrics of a policy, all against μ and measured by the TRUE judge (except the proxy win rate)
// ------------------------------------------------------------------------------------------------

enum metric_id : std::size_t {
    lc_win_rate,      ///< % length-controlled win rate vs μ (the paper's headline number)
    win_rate,         ///< % raw win rate vs μ
    length,           ///< mean response length, content tokens + end token
    self_bleu,        ///< over 16 samples per prompt; lower = more diverse
    distinct_2,       ///< distinct bigrams / bigrams over the same samples; higher = more diverse
    token_entropy,    ///< nats, mean next-token entropy along the policy's own samples
    proxy_win_rate,   ///< % raw win rate vs μ judged by the SURROGATE judge
    kl_to_reference,  ///< nats per response, Monte Carlo KL(π‖μ)
    metric_count
};

struct metric_info {
    const char* column;  ///< CSV column
    const char* header;  ///< table header
    int decimals;
};

inline constexpr std::array<metric_info, metric_count> metric_infos{{
    {"lc_win_rate", "LC win %", 2},
    {"win_rate", "win %", 2},
    {"length", "length", 2},
    {"self_bleu", "Self-BLEU", 3},
    {"distinct_2", "distinct-2", 3},
    {"token_entropy", "entropy", 3},
    {"proxy_win_rate", "proxy win %", 2},
    {"kl_to_reference", "KL(pi||mu)", 2},
}};

using metric_values = std::array<double, metric_count>;

inline metric_values missing_metrics() {
    metric_values v;
    v.fill(nan);
    return v;
}

/// Samples per prompt of each part of the evaluation.
struct evaluation_sizes {
    std::size_t win_rate_samples = 256;  ///< for win rates, LC, length and entropy
    std::size_t diversity_samples = 16;  ///< the paper's Self-BLEU group size
    std::size_t proxy_samples = 128;     ///< for the surrogate judge's win rate
    std::size_t kl_samples = 64;         ///< for the Monte Carlo KL(π‖μ)
};

/// Monte Carlo KL(π‖μ) = E_{y∼π}[log π(y) − log μ(y)], averaged over prompts (exactly 0 for π = μ).
template <rspo::SequencePolicy Policy>
double kl_to_reference_estimate(const Policy& pi, const Policy& mu, std::span<const std::size_t> prompts,
                                std::size_t samples, std::uint64_t seed) {
    rspo::random_engine rng(seed);
    double sum = 0.0;
    for (const std::size_t x : prompts)
        for (std::size_t k = 0; k < samples; ++k) {
            const rspo::token_sequence y = pi.sample(x, rng);
            sum += pi.log_prob(x, y) - mu.log_prob(x, y);
        }
    return sum / static_cast<double>(prompts.size() * samples);
}

/// The evaluation's parts: each draws from its own stream (base + 1 + part) and writes only its
/// metrics, so parts can run anywhere and in any order.
enum evaluation_part : std::size_t {
    judged_part,     ///< true judge, many samples: LC win rate, win rate, length, entropy
    diversity_part,  ///< true judge, the paper's 16 samples: Self-BLEU, distinct-2
    proxy_part,      ///< surrogate judge: proxy win rate
    kl_part,         ///< KL(π‖μ)
    evaluation_part_count
};

inline std::vector<metric_id> metrics_of(evaluation_part part) {
    switch (part) {
        case judged_part:
            return {lc_win_rate, win_rate, length, token_entropy};
        case diversity_part:
            return {self_bleu, distinct_2};
        case proxy_part:
            return {proxy_win_rate};
        case kl_part:
            return {kl_to_reference};
        case evaluation_part_count:
            break;
    }
    return {};
}

/// Writes part `part`'s metrics of π against μ into v. `base` seeds the evaluation (callers derive
/// it from (seed, t), so every method at the same (seed, iteration) sees the same streams).
/// `is_reference`: π is μ itself, whose LC win rate is 50 by construction (AlpacaEval skips the
/// fit for the baseline).
template <rspo::SequencePolicy Policy>
void evaluate_part(evaluation_part part, metric_values& v, const evaluation_sizes& sizes,
                   const rspo::toy_language_task& task, const Policy& pi, const Policy& mu,
                   std::span<const std::size_t> prompts, std::uint64_t base, bool is_reference) {
    namespace eval = rspo::eval;
    const eval::lc_options lc{.model_is_baseline = is_reference};
    // evaluate_sequences computes every metric on the same n samples; Self-BLEU must use the
    // paper's n = 16 (it grows with n), while win rates need many more samples. Hence two calls.
    switch (part) {
        case judged_part: {
            const eval::sequence_evaluation judged = eval::evaluate_sequences(
                pi, mu, task.true_judge(), prompts,
                {.samples_per_prompt = sizes.win_rate_samples, .seed = base + 1, .length_control = lc});
            v[lc_win_rate] = judged.lc_win_rate;
            v[win_rate] = judged.win_rate;
            v[length] = judged.mean_length;
            v[token_entropy] = judged.token_entropy;  // a per-token mean: the larger sample is less noisy
            break;
        }
        case diversity_part: {
            const eval::sequence_evaluation diverse = eval::evaluate_sequences(
                pi, mu, task.true_judge(), prompts,
                {.samples_per_prompt = sizes.diversity_samples, .seed = base + 2, .length_control = lc});
            v[self_bleu] = diverse.self_bleu;
            v[distinct_2] = diverse.distinct_2;
            break;
        }
        case proxy_part: {
            const eval::sequence_evaluation proxy = eval::evaluate_sequences(
                pi, mu, task.surrogate_judge(), prompts,
                {.samples_per_prompt = sizes.proxy_samples, .seed = base + 3, .length_control = lc});
            v[proxy_win_rate] = proxy.win_rate;
            break;
        }
        case kl_part:
            v[kl_to_reference] = kl_to_reference_estimate(pi, mu, prompts, sizes.kl_samples, base + 4);
            break;
        case evaluation_part_count:
            break;
    }
}

/// Every part, in one process.
template <rspo::SequencePolicy Policy>
metric_values evaluate(const evaluation_sizes& sizes, const rspo::toy_language_task& task, const Policy& pi,
                       const Policy& mu, std::span<const std::size_t> prompts, std::uint64_t base,
                       bool is_reference) {
    metric_values v = missing_metrics();
    for (std::size_t part = 0; part < evaluation_part_count; ++part)
        evaluate_part(static_cast<evaluation_part>(part), v, sizes, task, pi, mu, prompts, base, is_reference);
    return v;
}

// ------------------------------------------------------------------------------------------------
// Statistics over seeds
// ------------------------------------------------------------------------------------------------

struct estimate {
    double mean = nan;
    double se = nan;  ///< sample std / √n; NaN for n < 2
    std::size_t n = 0;
};

inline estimate mean_se(const std::vector<double>& values) {
    estimate out;
    double sum = 0.0;
    for (const double v : values)
        if (std::isfinite(v)) {
            sum += v;
            ++out.n;
        }
    if (out.n == 0) return out;
    out.mean = sum / static_cast<double>(out.n);
    if (out.n < 2) return out;
    double squares = 0.0;
    for (const double v : values)
        if (std::isfinite(v)) squares += (v - out.mean) * (v - out.mean);
    out.se =
        std::sqrt(squares / static_cast<double>(out.n - 1)) / std::sqrt(static_cast<double>(out.n));
    return out;
}

// ------------------------------------------------------------------------------------------------
// Text output
// ------------------------------------------------------------------------------------------------

inline std::string fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "n/a";
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

inline std::string signed_fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "n/a";
    char buf[48];
    std::snprintf(buf, sizeof buf, "%+.*f", decimals, v);
    return buf;
}

/// "mean +- se" (ASCII, so that the columns line up in any terminal).
inline std::string pm(const estimate& x, int decimals) {
    if (!std::isfinite(x.mean)) return "n/a";
    if (!std::isfinite(x.se)) return fixed(x.mean, decimals);
    return fixed(x.mean, decimals) + " +- " + fixed(x.se, decimals);
}

/// A number as %g writes it.
inline std::string g(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

/// Prints rows in columns padded to their widest cell; the first `text_columns` columns are
/// left-aligned, the rest right-aligned. A rule follows the header.
inline void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                        std::size_t text_columns = 1) {
    text_table::print(out, rows, {.left_aligned = [text_columns](std::size_t c, std::size_t) { return c < text_columns; }});
}

/// A metric of method m at iteration t (t = 0 is μ, the same for every method).
using summary_function = std::function<estimate(std::size_t m, std::size_t t, metric_id k)>;

/// The paper's table: LC win rate, raw win rate and length of every method at iteration T, below
/// μ's (method 0 at t = 0).
inline void print_paper_table(std::ostream& out, const std::vector<std::string>& methods, std::size_t T,
                              const summary_function& summarize) {
    std::vector<std::vector<std::string>> rows{{"method", "LC win rate %", "win rate %", "length"}};
    rows.push_back({"mu (t = 0)", pm(summarize(0, 0, lc_win_rate), 2), pm(summarize(0, 0, win_rate), 2),
                    pm(summarize(0, 0, length), 2)});
    for (std::size_t m = 0; m < methods.size(); ++m)
        rows.push_back({methods[m], pm(summarize(m, T, lc_win_rate), 2), pm(summarize(m, T, win_rate), 2),
                        pm(summarize(m, T, length), 2)});
    print_table(out, rows);
}

/// Rows: μ at t = 0, then every method at t = 1..T; columns: the given metrics.
inline void print_iteration_table(std::ostream& out, const std::vector<std::string>& methods, std::size_t T,
                                  const std::vector<metric_id>& columns, const summary_function& summarize) {
    std::vector<std::vector<std::string>> rows{{"method", "t"}};
    for (const metric_id k : columns) rows[0].push_back(metric_infos[k].header);
    const auto add = [&](const std::string& name, std::size_t m, std::size_t t) {
        std::vector<std::string> row{name, std::to_string(t)};
        for (const metric_id k : columns) row.push_back(pm(summarize(m, t, k), metric_infos[k].decimals));
        rows.push_back(std::move(row));
    };
    add("mu", 0, 0);
    for (std::size_t m = 0; m < methods.size(); ++m)
        for (std::size_t t = 1; t <= T; ++t) add(t == 1 ? methods[m] : "", m, t);
    print_table(out, rows, 1);
}

// ------------------------------------------------------------------------------------------------
// CSV files
// ------------------------------------------------------------------------------------------------

inline std::string csv_number(double v) {
    if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

/// Quoted as RFC 4180 requires when a field holds a comma, quote or newline.
inline std::string csv_field(const std::string& field) {
    if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
    std::string out = "\"";
    for (const char c : field) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

inline void close_checked(std::ofstream& out, const std::filesystem::path& file) {
    out.close();
    if (!out) throw std::runtime_error("cannot write '" + file.string() + "'");
}

}  // namespace metric_table
