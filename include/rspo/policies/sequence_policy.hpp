#pragma once
// Sequence policies: π(y | x) over token sequences, scored through per-position logits and the
// token kernels (docs/math §5), and trainable through a flat parameter view that any rspo optimizer
// can step. Holds the SequencePolicy / TrainableSequencePolicy concepts, the batch helpers an
// RSPO/SPPO trainer uses (stacked logits, sequence log-probs, ∂L/∂log π → ∂L/∂θ), and the model
// rspo::prompt_bigram_policy used by the toy language task (games/toy_language_task.hpp).

#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>
#include <rspo/core/random.hpp>
#include <rspo/kernels/simd/token_reductions.hpp>
#include <rspo/kernels/types.hpp>
#include <rspo/policies/policy.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace rspo {

using token = std::int32_t;
using token_sequence = std::vector<token>;

/// Opt-in tag of sequence policies (it is also a policy_tag):
/// `using policy_category = rspo::sequence_policy_tag;`.
struct sequence_policy_tag : policy_tag {};

/// A complete response: 1 ≤ |y| ≤ max_length, the end token at most once and only last, and either
/// ending with it or cut at exactly max_length. Every other sequence has probability 0.
inline bool is_complete_response(std::span<const token> y, token end_token,
                                 std::size_t max_length) noexcept {
    if (y.empty() || y.size() > max_length) return false;
    for (std::size_t t = 0; t + 1 < y.size(); ++t)
        if (y[t] == end_token) return false;
    return y.back() == end_token || y.size() == max_length;
}

// clang-format off
/// A policy over token sequences that exposes its per-position logits. Requirements the compiler
/// cannot check (the tests in tests/sequence_policy.cpp show how to check them on a model):
///  1. Policy's requirements 1–3 hold, with response_type = token_sequence;
///  2. tokens are in [0, vocabulary_size()); end_token() is one of them; vocabulary_size() ≥ 2 and
///     max_length() ≥ 1;
///  3. response_logits(x, y, out) writes the row-major [y.size(), V] logits z, row t being the
///     logits of position t given x and y_<t only (causal: a prefix's rows are a prefix of the
///     rows); it requires y.size() ≤ max_length() and out.size() = y.size()·V, and is deterministic
///     and finite;
///  4. log_prob(x, y) = Σ_t log softmax(z_t)[y_t] for a complete response (is_complete_response)
///     and −∞ for any other sequence; sample(x, rng) draws position t from softmax(z_t) until the
///     end token or max_length() tokens.
/// The library's helpers (rspo::sequence_log_prob, rspo::batch_logits, …) use only these members,
/// and the optional batched ones below where the policy has them.
template <class P>
concept SequencePolicy =
    Policy<P> &&
    std::derived_from<typename P::policy_category, sequence_policy_tag> &&
    std::same_as<typename P::response_type, token_sequence> &&
    requires(const P& p, const typename P::prompt_type& x, const token_sequence& y, std::span<float> out) {
        { p.vocabulary_size() } -> std::convertible_to<std::size_t>;
        { p.max_length() } -> std::convertible_to<std::size_t>;
        { p.end_token() } -> std::convertible_to<token>;
        p.response_logits(x, y, out);
    };

/// A sequence policy with parameters θ that optimizers can step. Requirements the compiler cannot
/// check:
///  1. accumulate_gradient(x, y, dlogits) adds Σ_{t,v} dlogits[t·V + v] · ∂z_{t,v}/∂θ to
///     gradient(), where z = response_logits(x, y) (so the caller passes ∂L/∂z and gets ∂L/∂θ added);
///     zero_gradient() sets gradient() to 0;
///  2. parameters() and gradient() are views of the same size; the logits are a function of
///     parameters() alone, so writing through the view (an optimizer step) changes the model;
///  3. copies are independent values: π_t = π_θ is a frozen snapshot.
template <class P>
concept TrainableSequencePolicy =
    SequencePolicy<P> && std::copyable<P> &&
    requires(P& p, const typename P::prompt_type& x, const token_sequence& y,
             std::span<const float> dlogits) {
        p.accumulate_gradient(x, y, dlogits);
        p.zero_gradient();
        { p.parameters() } -> std::same_as<std::span<float>>;
        { p.gradient() } -> std::same_as<std::span<float>>;
    };

/// Optional batched members, for models whose one call over many sequences costs about what one
/// call over one does (a neural network). Where a policy has them, rspo::sample_responses,
/// rspo::batch_logits and rspo::accumulate_batch_gradient call them instead of looping:
///  - sample_batch(x, n, rng, temperature) → n responses to x, each distributed as sample(x, ·, T),
///    independent, deterministic for rng (the draws need not be those of n sample() calls);
///  - batch_response_logits(prompts, responses, out): the rows response_logits would write for each
///    (prompts[b], responses[b]), stacked in order into out (Σ|y_b| rows of V); equal to them up
///    to the rounding of the model's batched arithmetic;
///  - accumulate_batch_gradient(prompts, responses, dlogits): accumulate_gradient over the stacked
///    rows, response by response, in one call.
template <class P>
concept BatchSampling = SequencePolicy<P> &&
    requires(const P& p, const typename P::prompt_type& x, std::size_t n, random_engine& rng, double t) {
        { p.sample_batch(x, n, rng, t) } -> std::same_as<std::vector<token_sequence>>;
    };
template <class P>
concept BatchScoring = SequencePolicy<P> &&
    requires(const P& p, std::span<const typename P::prompt_type> xs, std::span<const token_sequence> ys,
             std::span<float> out) {
        p.batch_response_logits(xs, ys, out);
    };
template <class P>
concept BatchTraining = TrainableSequencePolicy<P> &&
    requires(P& p, std::span<const typename P::prompt_type> xs, std::span<const token_sequence> ys,
             std::span<const float> dlogits) {
        p.accumulate_batch_gradient(xs, ys, dlogits);
    };
// clang-format on

/// n independent responses to x from policy.sample_batch where it has one, else n sample() calls.
template <SequencePolicy P>
std::vector<token_sequence> sample_responses(const P& policy, const typename P::prompt_type& x, std::size_t n,
                                             random_engine& rng, double temperature = 1.0) {
    if constexpr (BatchSampling<P>) {
        if (n == 0) return {};
        std::vector<token_sequence> ys = policy.sample_batch(x, n, rng, temperature);
        check_size("rspo::sample_responses", "policy.sample_batch(x, n, ...)", ys.size(), n, "n");
        return ys;
    } else {
        std::vector<token_sequence> ys(n);
        for (auto& y : ys) y = policy.sample(x, rng, temperature);
        return ys;
    }
}

namespace detail {

/// Tokens in [0, V): an index_error naming y[t] otherwise.
inline void check_token_ids(const char* fn, const std::string& name, std::span<const token> y,
                            std::size_t vocabulary) {
    for (std::size_t t = 0; t < y.size(); ++t)
        if (y[t] < 0 || static_cast<std::size_t>(y[t]) >= vocabulary)
            throw index_error(fn, name,
                              indexed(name, t) + " = " + std::to_string(y[t]) + " is outside [0, " +
                                  std::to_string(vocabulary) + ")");
}

inline void check_sampling_temperature(const char* fn, double temperature) {
    check_positive(fn, "temperature", temperature);
}

}  // namespace detail

/// log π(y | x) = Σ_t log softmax(z_t / T)[y_t] with the per-token values from
/// kernels::simd::forward over the response's logits rows; −∞ for an incomplete response.
/// Tokens outside [0, V) throw rspo::index_error.
template <SequencePolicy P>
double sequence_log_prob(const P& policy, const typename P::prompt_type& x, const token_sequence& y,
                         double temperature = 1.0) {
    constexpr const char* fn = "rspo::sequence_log_prob";
    detail::check_sampling_temperature(fn, temperature);
    const std::size_t V = policy.vocabulary_size();
    detail::check_token_ids(fn, "y", y, V);
    if (!is_complete_response(y, static_cast<token>(policy.end_token()), policy.max_length()))
        return -std::numeric_limits<double>::infinity();
    std::vector<float> z(y.size() * V);
    policy.response_logits(x, y, std::span<float>(z));
    const std::vector<std::int64_t> ids(y.begin(), y.end());
    std::vector<float> per_token(y.size());
    kernels::simd::forward(kernels::token_inputs<float>{kernels::contiguous(z.data(), y.size(), V), {}, ids},
                           kernels::token_values{.logprob = per_token},
                           kernels::kernel_options{.temperature = static_cast<float>(temperature), .threads = 1});
    double sum = 0.0;
    for (const float lp : per_token) sum += lp;
    return sum;
}

// ---------------------------------------------------------------------------------------------
// Batches: the responses' logits stacked row-major, one kernel call for all of them.
// ---------------------------------------------------------------------------------------------

/// Logits of B responses stacked for the token kernels: response b owns rows
/// [row_offsets[b], row_offsets[b + 1]) of the row-major [rows(), vocabulary] matrix, and ids holds
/// its tokens (the kernels' targets). Build it with rspo::batch_logits.
struct response_logits_batch {
    std::size_t vocabulary = 0;
    std::vector<float> logits = {};              ///< [rows(), vocabulary]
    std::vector<std::int64_t> ids = {};          ///< [rows()]
    std::vector<std::size_t> row_offsets = {0};  ///< [responses() + 1]
    std::vector<std::uint8_t> complete = {};     ///< is_complete_response, per response

    [[nodiscard]] std::size_t responses() const noexcept { return row_offsets.size() - 1; }
    [[nodiscard]] std::size_t rows() const noexcept { return row_offsets.back(); }
    [[nodiscard]] kernels::logits_view<float> view() const noexcept {
        return kernels::contiguous(logits.data(), rows(), vocabulary);
    }
    /// Kernel inputs: these logits and targets, and optionally a reference's logits for the same
    /// responses (for exact per-token KLs; it must have the same rows).
    [[nodiscard]] kernels::token_inputs<float> inputs(const response_logits_batch* reference = nullptr) const {
        if (reference != nullptr) {
            constexpr const char* fn = "rspo::response_logits_batch::inputs";
            check_size(fn, "reference->rows()", reference->rows(), rows(), "rows()");
            check_size(fn, "reference->vocabulary", reference->vocabulary, vocabulary, "vocabulary");
        }
        return {view(), reference != nullptr ? reference->view() : kernels::logits_view<float>{}, ids};
    }
};

/// The stacked logits of responses[b] given prompts[b], from the policy's response_logits.
template <SequencePolicy P>
response_logits_batch batch_logits(const P& policy, std::span<const typename P::prompt_type> prompts,
                                   std::span<const token_sequence> responses) {
    constexpr const char* fn = "rspo::batch_logits";
    check_size(fn, "prompts", prompts.size(), responses.size(), "responses");
    response_logits_batch batch;
    batch.vocabulary = policy.vocabulary_size();
    const std::size_t V = batch.vocabulary;
    std::size_t rows = 0;
    for (std::size_t b = 0; b < responses.size(); ++b) {
        detail::check_token_ids(fn, detail::indexed("responses", b), responses[b], V);
        if (responses[b].size() > policy.max_length())
            throw shape_error(fn, "responses",
                              detail::indexed("responses", b) + " has " +
                                  std::to_string(responses[b].size()) + " tokens, more than max_length() = " +
                                  std::to_string(policy.max_length()));
        rows += responses[b].size();
    }
    batch.logits.resize(rows * V);
    batch.ids.reserve(rows);
    batch.row_offsets.reserve(responses.size() + 1);
    batch.complete.reserve(responses.size());
    if constexpr (BatchScoring<P>) {
        if (rows > 0) policy.batch_response_logits(prompts, responses, std::span<float>(batch.logits));
    }
    for (std::size_t b = 0; b < responses.size(); ++b) {
        const auto& y = responses[b];
        const std::size_t first = batch.row_offsets.back();
        if constexpr (!BatchScoring<P>)
            policy.response_logits(prompts[b], y, std::span<float>(batch.logits).subspan(first * V, y.size() * V));
        batch.ids.insert(batch.ids.end(), y.begin(), y.end());
        batch.row_offsets.push_back(first + y.size());
        batch.complete.push_back(
            is_complete_response(y, static_cast<token>(policy.end_token()), policy.max_length()) ? 1 : 0);
    }
    return batch;
}

/// One prompt for every response (the usual SPPO batch: K samples of one prompt).
template <SequencePolicy P>
response_logits_batch batch_logits(const P& policy, const typename P::prompt_type& x,
                                   std::span<const token_sequence> responses) {
    const std::vector<typename P::prompt_type> prompts(responses.size(), x);
    return batch_logits(policy, std::span<const typename P::prompt_type>(prompts), responses);
}

/// Per-row log-probs log softmax(z_n / T)[ids[n]] (kernels::simd::forward).
inline std::vector<float> token_log_probs(const response_logits_batch& z, double temperature = 1.0) {
    detail::check_sampling_temperature("rspo::token_log_probs", temperature);
    std::vector<float> out(z.rows());
    kernels::simd::forward(z.inputs(), kernels::token_values{.logprob = out},
                           kernels::kernel_options{.temperature = static_cast<float>(temperature)});
    return out;
}

/// Σ of per-row values over each response's rows, in double.
inline std::vector<double> sum_rows(const response_logits_batch& z, std::span<const float> per_row) {
    check_size("rspo::sum_rows", "per_row", per_row.size(), z.rows(), "z.rows()");
    std::vector<double> out(z.responses(), 0.0);
    for (std::size_t b = 0; b < z.responses(); ++b)
        for (std::size_t n = z.row_offsets[b]; n < z.row_offsets[b + 1]; ++n) out[b] += per_row[n];
    return out;
}

/// The adjoint of sum_rows: every row of response b gets per_response[b].
inline std::vector<float> broadcast_to_rows(const response_logits_batch& z,
                                            std::span<const double> per_response) {
    check_size("rspo::broadcast_to_rows", "per_response", per_response.size(), z.responses(),
               "z.responses()");
    std::vector<float> out(z.rows());
    for (std::size_t b = 0; b < z.responses(); ++b)
        std::fill(out.begin() + static_cast<std::ptrdiff_t>(z.row_offsets[b]),
                  out.begin() + static_cast<std::ptrdiff_t>(z.row_offsets[b + 1]),
                  static_cast<float>(per_response[b]));
    return out;
}

/// log π(y_b | x_b) per response: the kernels' per-token values summed; −∞ for an incomplete one
/// (as the policy's log_prob).
inline std::vector<double> sequence_log_probs(const response_logits_batch& z, double temperature = 1.0) {
    std::vector<double> out = sum_rows(z, token_log_probs(z, temperature));
    for (std::size_t b = 0; b < out.size(); ++b)
        if (!z.complete[b]) out[b] = -std::numeric_limits<double>::infinity();
    return out;
}

/// Maps stacked ∂L/∂z (e.g. written by kernels::simd::backward over z.inputs()) back to the
/// parameters: adds it to policy.gradient() response by response.
template <TrainableSequencePolicy P>
void accumulate_batch_gradient(P& policy, std::span<const typename P::prompt_type> prompts,
                               std::span<const token_sequence> responses, const response_logits_batch& z,
                               std::span<const float> dlogits) {
    constexpr const char* fn = "rspo::accumulate_batch_gradient";
    check_size(fn, "prompts", prompts.size(), responses.size(), "responses");
    check_size(fn, "responses", responses.size(), z.responses(), "z.responses()");
    check_size(fn, "dlogits", dlogits.size(), z.rows() * z.vocabulary, "z.rows() * z.vocabulary");
    for (std::size_t b = 0; b < responses.size(); ++b) {
        const std::size_t first = z.row_offsets[b], count = z.row_offsets[b + 1] - first;
        check_size(fn, detail::indexed("responses", b), responses[b].size(), count, "its rows in z");
        if constexpr (!BatchTraining<P>)
            policy.accumulate_gradient(prompts[b], responses[b],
                                       dlogits.subspan(first * z.vocabulary, count * z.vocabulary));
    }
    if constexpr (BatchTraining<P>) {
        if (z.rows() > 0) policy.accumulate_batch_gradient(prompts, responses, dlogits);
    }
}

template <TrainableSequencePolicy P>
void accumulate_batch_gradient(P& policy, const typename P::prompt_type& x,
                               std::span<const token_sequence> responses, const response_logits_batch& z,
                               std::span<const float> dlogits) {
    const std::vector<typename P::prompt_type> prompts(responses.size(), x);
    accumulate_batch_gradient(policy, std::span<const typename P::prompt_type>(prompts), responses, z, dlogits);
}

/// The step every sequence-level loss needs: adds Σ_b d_log_prob[b] · ∇_θ log π(y_b | x_b) to
/// policy.gradient() (through kernels::simd::backward) and returns log π(y_b | x_b), computed in
/// the same pass. Every response must be complete: an incomplete one has log π = −∞ and no gradient
/// (rspo::domain_error). Typical d_log_prob: rspo_algorithm::loss's d_log_pi_theta, or −1/B for
/// maximum likelihood.
template <TrainableSequencePolicy P>
std::vector<double> accumulate_log_prob_gradient(P& policy, std::span<const typename P::prompt_type> prompts,
                                                 std::span<const token_sequence> responses,
                                                 std::span<const double> d_log_prob, double temperature = 1.0) {
    constexpr const char* fn = "rspo::accumulate_log_prob_gradient";
    detail::check_sampling_temperature(fn, temperature);
    check_size(fn, "d_log_prob", d_log_prob.size(), responses.size(), "responses");
    check_all_finite(fn, "d_log_prob", d_log_prob);
    const response_logits_batch z = batch_logits(policy, prompts, responses);
    for (std::size_t b = 0; b < responses.size(); ++b)
        if (!z.complete[b])
            throw domain_error(fn, "responses",
                               detail::indexed("responses", b) +
                                   " is not a complete response: its log-probability is -inf and has no gradient");
    const std::vector<float> g = broadcast_to_rows(z, d_log_prob);
    std::vector<float> per_token(z.rows()), dz(z.rows() * z.vocabulary);
    kernels::simd::backward(z.inputs(), kernels::token_grads{.logprob = g},
                            kernels::gradient_view<float>{dz.data(), z.rows(), z.vocabulary, z.vocabulary},
                            kernels::kernel_options{.temperature = static_cast<float>(temperature)},
                            kernels::token_values{.logprob = per_token});
    accumulate_batch_gradient(policy, prompts, responses, z, dz);
    return sum_rows(z, per_token);
}

template <TrainableSequencePolicy P>
std::vector<double> accumulate_log_prob_gradient(P& policy, const typename P::prompt_type& x,
                                                 std::span<const token_sequence> responses,
                                                 std::span<const double> d_log_prob, double temperature = 1.0) {
    const std::vector<typename P::prompt_type> prompts(responses.size(), x);
    return accumulate_log_prob_gradient(policy, std::span<const typename P::prompt_type>(prompts), responses,
                                        d_log_prob, temperature);
}

// ---------------------------------------------------------------------------------------------
// The model: a prompt-conditioned bigram table plus a position bias.
// ---------------------------------------------------------------------------------------------

struct prompt_bigram_options {
    std::size_t prompts = 8;       ///< P: prompts are indices 0..P−1
    std::size_t vocabulary = 16;   ///< V ≥ 2, including the end token 0
    std::size_t max_length = 12;   ///< L ≥ 1: responses are cut after L tokens
    double init_scale = 0.1;       ///< parameters start uniform in [−init_scale, init_scale]
    std::uint64_t seed = 0;        ///< of the initialization

    void validate(const char* fn) const {
        check_not_empty(fn, "options.prompts", prompts);
        if (vocabulary < 2)
            throw domain_error(fn, "options.vocabulary",
                               "options.vocabulary = " + std::to_string(vocabulary) +
                                   " must be >= 2 (the end token and at least one other)");
        check_not_empty(fn, "options.max_length", max_length);
        check_non_negative(fn, "options.init_scale", init_scale);
    }
};

/// π(y | x) = Π_t softmax(z_t)[y_t] with z_t[v] = W[x][prev_t][v] + b[t][v], prev_t = y_{t−1} and a
/// start symbol (index V) at t = 0. Small enough to enumerate, rich enough to carry per-prompt
/// content, a first-token (style) choice and a length distribution (b[t][end]). Float parameters,
/// laid out flat as [W: P × (V+1) × V | b: L × V] (weight_index / bias_index).
class prompt_bigram_policy {
public:
    using policy_category = sequence_policy_tag;
    using prompt_type = std::size_t;
    using response_type = token_sequence;

    prompt_bigram_policy() : prompt_bigram_policy(prompt_bigram_options{}) {}
    explicit prompt_bigram_policy(prompt_bigram_options options) : options_(options) {
        options_.validate("rspo::prompt_bigram_policy");
        const std::size_t V = options_.vocabulary;
        params_.resize(options_.prompts * (V + 1) * V + options_.max_length * V);
        grad_.assign(params_.size(), 0.0f);
        random_engine rng(options_.seed);
        for (float& p : params_) p = static_cast<float>(options_.init_scale * (2.0 * uniform01(rng) - 1.0));
    }

    [[nodiscard]] const prompt_bigram_options& options() const noexcept { return options_; }
    [[nodiscard]] std::size_t prompts() const noexcept { return options_.prompts; }
    [[nodiscard]] std::size_t vocabulary_size() const noexcept { return options_.vocabulary; }
    [[nodiscard]] std::size_t max_length() const noexcept { return options_.max_length; }
    [[nodiscard]] token end_token() const noexcept { return 0; }
    /// The "previous token" of position 0.
    [[nodiscard]] std::size_t start_symbol() const noexcept { return options_.vocabulary; }

    [[nodiscard]] std::size_t weight_index(std::size_t x, std::size_t prev, std::size_t v) const noexcept {
        return (x * (options_.vocabulary + 1) + prev) * options_.vocabulary + v;
    }
    [[nodiscard]] std::size_t bias_index(std::size_t t, std::size_t v) const noexcept {
        return options_.prompts * (options_.vocabulary + 1) * options_.vocabulary + t * options_.vocabulary + v;
    }

    void response_logits(std::size_t x, const token_sequence& y, std::span<float> out) const {
        constexpr const char* fn = "rspo::prompt_bigram_policy::response_logits";
        check_response(fn, x, y);
        const std::size_t V = options_.vocabulary;
        check_size(fn, "out", out.size(), y.size() * V, "y.size() * vocabulary_size()");
        for (std::size_t t = 0; t < y.size(); ++t) row_logits(x, prev_of(y, t), t, out.subspan(t * V, V));
    }

    double log_prob(std::size_t x, const token_sequence& y) const { return log_prob(x, y, 1.0); }
    /// log-probability under softmax(z / temperature) (the distribution sample draws from at that
    /// temperature).
    double log_prob(std::size_t x, const token_sequence& y, double temperature) const {
        check_index("rspo::prompt_bigram_policy::log_prob", "x", x, options_.prompts);
        return sequence_log_prob(*this, x, y, temperature);
    }

    /// Draws tokens from softmax(z_t / temperature) until the end token or max_length tokens.
    token_sequence sample(std::size_t x, random_engine& rng, double temperature = 1.0) const {
        constexpr const char* fn = "rspo::prompt_bigram_policy::sample";
        check_index(fn, "x", x, options_.prompts);
        detail::check_sampling_temperature(fn, temperature);
        const std::size_t V = options_.vocabulary;
        std::vector<float> row(V);
        Eigen::VectorXd p(static_cast<Eigen::Index>(V));
        token_sequence y;
        y.reserve(options_.max_length);
        for (std::size_t t = 0; t < options_.max_length; ++t) {
            // The same float logits as response_logits, so sampling and scoring agree.
            row_logits(x, t == 0 ? start_symbol() : static_cast<std::size_t>(y.back()), t, row);
            const double top = *std::max_element(row.begin(), row.end());
            for (std::size_t v = 0; v < V; ++v)
                p[static_cast<Eigen::Index>(v)] = std::exp((static_cast<double>(row[v]) - top) / temperature);
            p /= p.sum();
            y.push_back(static_cast<token>(sample_categorical(p, rng)));
            if (y.back() == end_token()) break;
        }
        return y;
    }

    /// gradient += ∂L/∂θ given ∂L/∂z: each row t adds to W[x][prev_t] and to b[t].
    void accumulate_gradient(std::size_t x, const token_sequence& y, std::span<const float> dlogits) {
        constexpr const char* fn = "rspo::prompt_bigram_policy::accumulate_gradient";
        check_response(fn, x, y);
        const std::size_t V = options_.vocabulary;
        check_size(fn, "dlogits", dlogits.size(), y.size() * V, "y.size() * vocabulary_size()");
        for (std::size_t i = 0; i < dlogits.size(); ++i)
            if (!std::isfinite(dlogits[i]))
                throw domain_error(fn, "dlogits",
                                   detail::indexed("dlogits", i) + " = " + detail::format_value(dlogits[i]) +
                                       " is not finite");
        for (std::size_t t = 0; t < y.size(); ++t) {
            float* w = grad_.data() + weight_index(x, prev_of(y, t), 0);
            float* b = grad_.data() + bias_index(t, 0);
            for (std::size_t v = 0; v < V; ++v) {
                w[v] += dlogits[t * V + v];
                b[v] += dlogits[t * V + v];
            }
        }
    }
    void zero_gradient() noexcept { std::fill(grad_.begin(), grad_.end(), 0.0f); }

    [[nodiscard]] std::span<float> parameters() noexcept { return params_; }
    [[nodiscard]] std::span<const float> parameters() const noexcept { return params_; }
    [[nodiscard]] std::span<float> gradient() noexcept { return grad_; }
    [[nodiscard]] std::span<const float> gradient() const noexcept { return grad_; }
    [[nodiscard]] std::size_t parameter_count() const noexcept { return params_.size(); }

private:
    void check_response(const char* fn, std::size_t x, const token_sequence& y) const {
        check_index(fn, "x", x, options_.prompts);
        detail::check_token_ids(fn, "y", y, options_.vocabulary);
        if (y.size() > options_.max_length)
            throw shape_error(fn, "y",
                              "y has " + std::to_string(y.size()) + " tokens, more than max_length() = " +
                                  std::to_string(options_.max_length));
    }
    std::size_t prev_of(const token_sequence& y, std::size_t t) const noexcept {
        return t == 0 ? start_symbol() : static_cast<std::size_t>(y[t - 1]);
    }
    void row_logits(std::size_t x, std::size_t prev, std::size_t t, std::span<float> out) const noexcept {
        const float* w = params_.data() + weight_index(x, prev, 0);
        const float* b = params_.data() + bias_index(t, 0);
        for (std::size_t v = 0; v < options_.vocabulary; ++v) out[v] = w[v] + b[v];
    }

    prompt_bigram_options options_;
    std::vector<float> params_;
    std::vector<float> grad_;
};

static_assert(TrainableSequencePolicy<prompt_bigram_policy>);

}  // namespace rspo
