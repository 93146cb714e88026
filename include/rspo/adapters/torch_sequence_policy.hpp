#pragma once
// Any libtorch causal language model as an rspo::TrainableSequencePolicy, so that the library's
// driver (rspo::iterative_self_play), losses, optimizers and evaluation train and score it
// unchanged. Optional, like rspo/adapters/torch.hpp: include it only in a program that links
// libtorch (it is not part of <rspo/rspo.hpp>). docs/integration.md walks through it.
//
//   struct lm_impl : torch::nn::Cloneable<lm_impl> { ... at::Tensor forward(const at::Tensor& ids); };
//   TORCH_MODULE(lm);                                  // ids [B, L] int64 -> logits [B, L, V] float32
//   rspo::adapters::torch::sequence_policy<lm> pi(
//       lm(...), {.vocabulary = 16, .max_length = 12, .input_vocabulary = 24},
//       [](std::size_t x) { return rspo::token_sequence{static_cast<rspo::token>(16 + x)}; });
//   rspo::iterative_self_play(pi, mu, judge, prompts, method, optimizer, options);
//
// The model. Module is a torch::nn::ModuleHolder (what TORCH_MODULE declares) of a
// torch::nn::Cloneable impl whose forward maps token ids [B, L] (int64) to next-token logits
// [B, L, V] (float32): row l depends on ids[:, 0..l] only. The adapter feeds it one sequence at a
// time (B = 1): the prompt's context c = encode_prompt(x) (C ≥ 1 ids, any ids the model embeds,
// e.g. prompt tokens beyond the response vocabulary) followed by the response y; the logits of y_t
// are row C − 1 + t, so the model sees C + |y| − 1 ids. Response tokens are [0, V) and the
// model's output dimension must be V (options.vocabulary): that is the distribution π(· | x, y_<t).
//
// Parameters. At construction every parameter of the module (module->parameters(), recursively)
// is re-seated into ONE flat float32 CPU buffer and every .grad() into a second one: each
// parameter's tensor is a (non-autograd-view) window of the flat storage, so
//  - parameters() / gradient() are std::span<float> over those buffers, which rspo's optimizers
//    step and a data-parallel all-reduce sums in one call;
//  - torch code sees the same numbers: torch::optim optimizers and module->zero_grad() (without
//    set_to_none) act on the flat buffers, and backward() of any loss built from the module's
//    outputs accumulates into gradient() (autograd adds into an existing dense .grad in place
//    unless create_graph is set; tests/torch/adapter.cpp checks it). If something replaces a
//    .grad (zero_grad(true), a double-backward), the next gradient() call copies it back in.
// Never swap a parameter's storage afterwards (p.set_data(...)), and keep the parameters float32
// on the CPU: the spans are host memory (docs/integration.md: GPUs and many machines).
//
// Members and where gradients flow:
//  - response_logits(x, y, out): one forward under NoGradGuard; out = rows [C − 1, C − 1 + |y|)
//    of the logits, row-major [|y|, V]; finite (a non-finite logit is a domain_error).
//  - accumulate_gradient(x, y, dlogits): the same forward with autograd on, then
//    logits.backward(dlogits): gradient() += Σ dlogits · ∂z/∂θ (∂L/∂z in, ∂L/∂θ added).
//  - sample(x, rng, T): token by token, one forward per token (no key/value cache), drawing from
//    softmax(z_t / T) with rspo::sample_categorical, so samples depend on rng alone.
//  - log_prob(x, y[, T]): rspo::sequence_log_prob (the token kernels over response_logits).
//  - the batched members (rspo::BatchSampling / BatchScoring / BatchTraining), which the
//    library's helpers and driver prefer: sample_batch draws n responses with one forward per
//    position; batch_response_logits and accumulate_batch_gradient run one forward (and one
//    backward) over the right-padded [B, L] inputs of many (prompt, response) pairs.
//  - copies are deep and independent (module->clone(), then re-flattened), gradients included;
//    moves keep the module. A copy re-initializes a fresh module before overwriting it (that is
//    how Cloneable::clone works), which draws from torch's default generator.
// The module is put in eval() mode (no dropout): the concept requires deterministic logits, and
// the gradient is then that of exactly the logits that were scored. Const members run forward on
// the shared module, so they may run concurrently only if the module's forward allows it.

#include <rspo/adapters/torch.hpp>
#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>
#include <rspo/core/random.hpp>
#include <rspo/policies/sequence_policy.hpp>

#include <ATen/ATen.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rspo::adapters::torch {

// clang-format off
/// A torch::nn::ModuleHolder of a Cloneable module with forward(ids) -> logits. What the compiler
/// cannot check: ids [B, L] int64 -> logits [B, L, V] float32, causal (row l depends on
/// ids[:, 0..l] only), parameters float32 on the CPU.
template <class M>
concept CausalLanguageModel =
    requires { typename M::ContainedType; } &&
    std::derived_from<typename M::ContainedType, ::torch::nn::Cloneable<typename M::ContainedType>> &&
    std::constructible_from<M, std::shared_ptr<typename M::ContainedType>> &&
    requires(typename M::ContainedType& impl, const at::Tensor& ids) {
        { impl.forward(ids) } -> std::convertible_to<at::Tensor>;
    };
// clang-format on

struct sequence_policy_options {
    std::size_t vocabulary = 0;        ///< V ≥ 2: response tokens [0, V), the logits' last size
    std::size_t max_length = 0;        ///< ≥ 1: responses are cut after this many tokens
    token end_token = 0;               ///< in [0, V)
    std::size_t input_vocabulary = 0;  ///< ids the model embeds (context ids are checked against
                                       ///< it); 0 = V
    std::size_t max_positions = 0;     ///< the longest input the model takes (C + max_length − 1
                                       ///< is checked against it); 0 = no limit

    void validate(const char* fn) const {
        if (vocabulary < 2)
            throw domain_error(fn, "options.vocabulary",
                               "options.vocabulary = " + std::to_string(vocabulary) +
                                   " must be >= 2 (the end token and at least one other)");
        if (max_length == 0)
            throw domain_error(fn, "options.max_length", "options.max_length = 0 must be >= 1");
        if (end_token < 0 || static_cast<std::size_t>(end_token) >= vocabulary)
            throw index_error(fn, "options.end_token",
                              "options.end_token = " + std::to_string(end_token) + " is outside [0, " +
                                  std::to_string(vocabulary) + ")");
        if (input_vocabulary != 0 && input_vocabulary < vocabulary)
            throw domain_error(fn, "options.input_vocabulary",
                               "options.input_vocabulary = " + std::to_string(input_vocabulary) +
                                   " must be 0 or >= options.vocabulary = " + std::to_string(vocabulary) +
                                   " (responses are fed back as input)");
    }
};

/// The context the model sees before the response: C ≥ 1 input ids for prompt x.
template <class Prompt>
using prompt_encoder = std::function<token_sequence(const Prompt&)>;

/// A libtorch causal LM as a TrainableSequencePolicy over prompts of type Prompt (see the header's
/// notes for the layout of the flat parameter buffer and where gradients flow).
template <CausalLanguageModel Module, class Prompt = std::size_t>
class sequence_policy {
public:
    using policy_category = sequence_policy_tag;
    using prompt_type = Prompt;
    using response_type = token_sequence;
    using module_type = Module;

    sequence_policy(Module module, sequence_policy_options options, prompt_encoder<Prompt> encode_prompt)
        : module_(std::move(module)), options_(options), encode_(std::move(encode_prompt)) {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy";
        options_.validate(fn);
        if (module_.is_empty()) throw tensor_error(fn, "module", "module is an empty module holder");
        if (!encode_) throw domain_error(fn, "encode_prompt", "encode_prompt is an empty function");
        flatten(fn);
    }

    /// A deep copy: the module is cloned, its parameters and gradient copied into new buffers.
    sequence_policy(const sequence_policy& other)
        : module_(clone_module(other.module_)), options_(other.options_), encode_(other.encode_) {
        flatten("rspo::adapters::torch::sequence_policy (copy)");
        // From the other's parameters rather than its buffer: a .grad replaced since its last
        // attach_gradient() is the current one.
        const at::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params_.size(); ++i)
            if (const at::Tensor& g = other.params_[i].grad(); g.defined()) grads_[i].copy_(g);
    }
    sequence_policy& operator=(const sequence_policy& other) {
        if (this != &other) {
            sequence_policy copy(other);
            *this = std::move(copy);
        }
        return *this;
    }
    sequence_policy(sequence_policy&&) noexcept = default;
    sequence_policy& operator=(sequence_policy&&) noexcept = default;
    ~sequence_policy() = default;

    [[nodiscard]] const sequence_policy_options& options() const noexcept { return options_; }
    [[nodiscard]] std::size_t vocabulary_size() const noexcept { return options_.vocabulary; }
    [[nodiscard]] std::size_t max_length() const noexcept { return options_.max_length; }
    [[nodiscard]] token end_token() const noexcept { return options_.end_token; }
    [[nodiscard]] std::size_t parameter_count() const noexcept { return static_cast<std::size_t>(flat_.numel()); }
    /// The wrapped module: a holder sharing it, so changing it changes this policy. Its
    /// parameters alias parameters(), their .grad gradient().
    [[nodiscard]] Module module() const noexcept { return module_; }

    /// encode_prompt(x), checked: at least one id, ids in [0, input_vocabulary), and room for
    /// max_length response tokens within max_positions.
    [[nodiscard]] token_sequence context(const Prompt& x) const {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::context";
        token_sequence c = encode_(x);
        if (c.empty())
            throw domain_error(fn, "encode_prompt",
                               "encode_prompt(x) returned no ids; the model needs at least one context id "
                               "to predict the first response token from");
        rspo::detail::check_token_ids(fn, "encode_prompt(x)", c, input_vocabulary());
        if (options_.max_positions != 0 && c.size() + options_.max_length - 1 > options_.max_positions)
            throw shape_error(fn, "encode_prompt",
                              "encode_prompt(x) returned " + std::to_string(c.size()) +
                                  " ids; with max_length = " + std::to_string(options_.max_length) +
                                  " the model would see " + std::to_string(c.size() + options_.max_length - 1) +
                                  " positions, more than options.max_positions = " +
                                  std::to_string(options_.max_positions));
        return c;
    }

    void response_logits(const Prompt& x, const token_sequence& y, std::span<float> out) const {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::response_logits";
        check_response(fn, y);
        const std::size_t V = options_.vocabulary;
        check_size(fn, "out", out.size(), y.size() * V, "y.size() * vocabulary_size()");
        if (y.empty()) return;
        const at::NoGradGuard no_grad;
        const at::Tensor z = response_rows(fn, context(x), y);
        const float* data = z.data_ptr<float>();
        for (std::size_t i = 0; i < out.size(); ++i) {
            if (!std::isfinite(data[i]))
                throw domain_error(fn, "module",
                                   "the module's logit for response position " + std::to_string(i / V) +
                                       ", token " + std::to_string(i % V) + " is " +
                                       rspo::detail::format_value(data[i]) + ", not finite");
            out[i] = data[i];
        }
    }

    double log_prob(const Prompt& x, const token_sequence& y) const { return sequence_log_prob(*this, x, y); }
    /// log-probability under softmax(z / temperature), the distribution sample draws from.
    double log_prob(const Prompt& x, const token_sequence& y, double temperature) const {
        return sequence_log_prob(*this, x, y, temperature);
    }

    /// Draws y_t from softmax(z_t / temperature) until the end token or max_length tokens.
    token_sequence sample(const Prompt& x, random_engine& rng, double temperature = 1.0) const {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::sample";
        check_positive(fn, "temperature", temperature);
        const token_sequence c = context(x);
        const std::size_t V = options_.vocabulary;
        const at::NoGradGuard no_grad;
        at::Tensor ids = at::empty({1, static_cast<std::int64_t>(c.size() + options_.max_length)}, at::kLong);
        std::int64_t* id = ids.data_ptr<std::int64_t>();
        std::copy(c.begin(), c.end(), id);
        Eigen::VectorXd p(static_cast<Eigen::Index>(V));
        token_sequence y;
        y.reserve(options_.max_length);
        for (std::size_t t = 0; t < options_.max_length; ++t) {
            const auto length = static_cast<std::int64_t>(c.size() + t);
            const at::Tensor z = checked_logits(fn, ids.narrow(1, 0, length), length)[0][length - 1].contiguous();
            y.push_back(draw(fn, z.data_ptr<float>(), t, temperature, p, rng));
            if (y.back() == options_.end_token) break;
            id[c.size() + t] = y.back();
        }
        return y;
    }

    /// gradient() += Σ_{t,v} dlogits[t·V + v] · ∂z_{t,v}/∂θ, by torch's autograd.
    void accumulate_gradient(const Prompt& x, const token_sequence& y, std::span<const float> dlogits) {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::accumulate_gradient";
        check_response(fn, y);
        const std::size_t V = options_.vocabulary;
        check_size(fn, "dlogits", dlogits.size(), y.size() * V, "y.size() * vocabulary_size()");
        check_finite(fn, dlogits);
        if (y.empty()) return;
        const token_sequence c = context(x);
        attach_gradient();
        {
            const at::AutoGradMode enable(true);
            const at::Tensor z = response_rows(fn, c, y);
            const at::Tensor upstream =
                at::from_blob(const_cast<float*>(dlogits.data()), z.sizes(), at::kFloat).clone();
            z.backward(upstream);
        }
        attach_gradient();  // copies back any .grad autograd replaced instead of adding in place
    }

    /// n responses to x drawn together (rspo::BatchSampling): one forward over the unfinished
    /// responses per position, each drawing its token from softmax(z_t / T) with the engine in
    /// response order.
    std::vector<token_sequence> sample_batch(const Prompt& x, std::size_t n, random_engine& rng,
                                             double temperature = 1.0) const {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::sample_batch";
        check_positive(fn, "temperature", temperature);
        const token_sequence c = context(x);
        const std::size_t C = c.size(), V = options_.vocabulary;
        const at::NoGradGuard no_grad;
        std::vector<token_sequence> ys(n);
        std::vector<std::int64_t> active(n);  // rows of ids still drawing
        std::iota(active.begin(), active.end(), std::int64_t{0});
        at::Tensor ids = at::empty({static_cast<std::int64_t>(n), static_cast<std::int64_t>(C + options_.max_length)},
                                   at::kLong);
        for (std::size_t i = 0; i < n; ++i) std::copy(c.begin(), c.end(), ids.data_ptr<std::int64_t>() + i * ids.size(1));
        Eigen::VectorXd p(static_cast<Eigen::Index>(V));
        for (std::size_t t = 0; t < options_.max_length && !active.empty(); ++t) {
            const auto length = static_cast<std::int64_t>(C + t);
            const at::Tensor rows = at::from_blob(active.data(), {static_cast<std::int64_t>(active.size())}, at::kLong);
            const at::Tensor z = checked_logits(fn, ids.index_select(0, rows).narrow(1, 0, length), length)
                                     .select(1, length - 1)
                                     .contiguous();
            std::vector<std::int64_t> still;
            for (std::size_t a = 0; a < active.size(); ++a) {
                const auto i = static_cast<std::size_t>(active[a]);
                ys[i].push_back(draw(fn, z.data_ptr<float>() + a * V, t, temperature, p, rng));
                if (ys[i].back() == options_.end_token) continue;
                ids.data_ptr<std::int64_t>()[i * static_cast<std::size_t>(ids.size(1)) + C + t] = ys[i].back();
                still.push_back(active[a]);
            }
            active = std::move(still);
        }
        return ys;
    }

    /// response_logits of every (prompts[b], responses[b]) stacked into out, from one forward over
    /// the right-padded inputs (rspo::BatchScoring; padding after a row cannot change it: causal).
    void batch_response_logits(std::span<const Prompt> prompts, std::span<const token_sequence> responses,
                               std::span<float> out) const {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::batch_response_logits";
        const padded_batch batch = pad(fn, prompts, responses);
        check_size(fn, "out", out.size(), batch.rows * options_.vocabulary, "the responses' tokens * vocabulary_size()");
        if (batch.rows == 0) return;
        const at::NoGradGuard no_grad;
        const at::Tensor z = checked_logits(fn, batch.ids, batch.ids.size(1)).contiguous();
        const std::size_t V = options_.vocabulary, L = static_cast<std::size_t>(batch.ids.size(1));
        const float* data = z.data_ptr<float>();
        std::size_t at_row = 0;
        for (std::size_t k = 0; k < batch.response.size(); ++k) {
            const std::size_t count = responses[batch.response[k]].size();
            const float* first = data + (k * L + batch.first_row[k]) * V;
            for (std::size_t i = 0; i < count * V; ++i) {
                if (!std::isfinite(first[i]))
                    throw domain_error(fn, "module",
                                       "the module's logit for " + rspo::detail::indexed("responses", batch.response[k]) +
                                           ", position " + std::to_string(i / V) + ", token " + std::to_string(i % V) +
                                           " is " + rspo::detail::format_value(first[i]) + ", not finite");
                out[at_row * V + i] = first[i];
            }
            at_row += count;
        }
    }

    /// accumulate_gradient over stacked rows (rspo::BatchTraining): one forward with autograd over
    /// the right-padded inputs and one backward, ∂L/∂z placed at each response's rows.
    void accumulate_batch_gradient(std::span<const Prompt> prompts, std::span<const token_sequence> responses,
                                   std::span<const float> dlogits) {
        constexpr const char* fn = "rspo::adapters::torch::sequence_policy::accumulate_batch_gradient";
        const padded_batch batch = pad(fn, prompts, responses);
        const std::size_t V = options_.vocabulary, L = static_cast<std::size_t>(batch.ids.size(1));
        check_size(fn, "dlogits", dlogits.size(), batch.rows * V, "the responses' tokens * vocabulary_size()");
        check_finite(fn, dlogits);
        if (batch.rows == 0) return;
        at::Tensor upstream = at::zeros({batch.ids.size(0), batch.ids.size(1), static_cast<std::int64_t>(V)}, at::kFloat);
        float* up = upstream.data_ptr<float>();
        std::size_t at_row = 0;
        for (std::size_t k = 0; k < batch.response.size(); ++k) {
            const std::size_t count = responses[batch.response[k]].size();
            std::copy_n(dlogits.data() + at_row * V, count * V, up + (k * L + batch.first_row[k]) * V);
            at_row += count;
        }
        attach_gradient();
        {
            const at::AutoGradMode enable(true);
            checked_logits(fn, batch.ids, batch.ids.size(1)).backward(upstream);
        }
        attach_gradient();
    }

    void zero_gradient() {
        attach_gradient();
        flat_grad_.zero_();
    }

    [[nodiscard]] std::span<float> parameters() noexcept {
        return {flat_.data_ptr<float>(), static_cast<std::size_t>(flat_.numel())};
    }
    [[nodiscard]] std::span<const float> parameters() const noexcept {
        return {flat_.data_ptr<float>(), static_cast<std::size_t>(flat_.numel())};
    }
    [[nodiscard]] std::span<float> gradient() {
        attach_gradient();
        return gradient_span();
    }
    [[nodiscard]] std::span<const float> gradient() const noexcept { return gradient_span(); }

    /// The flat buffers as tensors (1-D float32, sharing memory with parameters() / gradient()):
    /// e.g. for a collective (broadcast of the parameters, all-reduce of the gradient).
    [[nodiscard]] const at::Tensor& flat_parameters() const noexcept { return flat_; }
    [[nodiscard]] const at::Tensor& flat_gradient() const noexcept { return flat_grad_; }

private:
    using impl_type = typename Module::ContainedType;

    static Module clone_module(const Module& m) {
        auto copy = std::dynamic_pointer_cast<impl_type>(m->clone());
        RSPO_ASSERT(copy != nullptr);  // Cloneable<impl_type>::clone makes an impl_type
        return Module(std::move(copy));
    }

    [[nodiscard]] std::size_t input_vocabulary() const noexcept {
        return options_.input_vocabulary != 0 ? options_.input_vocabulary : options_.vocabulary;
    }

    [[nodiscard]] std::span<float> gradient_span() const noexcept {
        return {flat_grad_.data_ptr<float>(), static_cast<std::size_t>(flat_grad_.numel())};
    }

    void check_response(const char* fn, const token_sequence& y) const {
        rspo::detail::check_token_ids(fn, "y", y, options_.vocabulary);
        if (y.size() > options_.max_length)
            throw shape_error(fn, "y",
                              "y has " + std::to_string(y.size()) + " tokens, more than max_length() = " +
                                  std::to_string(options_.max_length));
    }

    /// The module's logits for ids [B, length], checked to be [B, length, V] float32.
    at::Tensor checked_logits(const char* fn, const at::Tensor& ids, std::int64_t length) const {
        const at::Tensor z = module_.ptr()->forward(ids);
        const auto V = static_cast<std::int64_t>(options_.vocabulary);
        const std::int64_t B = ids.size(0);
        if (!z.defined() || z.dim() != 3 || z.size(0) != B || z.size(1) != length || z.size(2) != V) {
            const std::string batch = std::to_string(B), positions = std::to_string(length);
            throw shape_error(fn, "module",
                              "the module's forward returned " + (z.defined() ? detail::describe(z) : "undefined") +
                                  " for ids [" + batch + ", " + positions + "]; it must return [" + batch + ", " +
                                  positions + ", " + std::to_string(V) + "] (V = options.vocabulary)");
        }
        if (z.scalar_type() != at::kFloat || !z.device().is_cpu())
            throw tensor_error(fn, "module",
                               "the module's forward returned " + detail::describe(z) +
                                   "; the logits must be float32 on the cpu");
        return z;
    }

    static void check_finite(const char* fn, std::span<const float> dlogits) {
        for (std::size_t i = 0; i < dlogits.size(); ++i)
            if (!std::isfinite(dlogits[i]))
                throw domain_error(fn, "dlogits",
                                   rspo::detail::indexed("dlogits", i) + " = " +
                                       rspo::detail::format_value(dlogits[i]) + " is not finite");
    }

    /// One token from softmax(row / T) (V floats, the logits of response position t); p is scratch.
    token draw(const char* fn, const float* row, std::size_t t, double temperature, Eigen::VectorXd& p,
               random_engine& rng) const {
        const std::size_t V = options_.vocabulary;
        // The same float logits as response_logits, so sampling and scoring agree.
        double top = -std::numeric_limits<double>::infinity();
        for (std::size_t v = 0; v < V; ++v) top = std::max(top, static_cast<double>(row[v]));
        if (!std::isfinite(top))
            throw domain_error(fn, "module",
                               "the module's logits for response position " + std::to_string(t) + " have maximum " +
                                   rspo::detail::format_value(top) + ", not finite");
        for (std::size_t v = 0; v < V; ++v)
            p[static_cast<Eigen::Index>(v)] = std::exp((static_cast<double>(row[v]) - top) / temperature);
        p /= p.sum();
        return static_cast<token>(sample_categorical(p, rng));
    }

    /// The inputs of several (prompt, response) pairs as one right-padded [B, L] batch: row k holds
    /// context(prompts[response[k]]) followed by that response but its last token; the response's
    /// logits are rows [first_row[k], first_row[k] + |y|) of its output. Empty responses are left out.
    struct padded_batch {
        at::Tensor ids;                        ///< [B, L] int64
        std::vector<std::size_t> response;     ///< which response each row holds
        std::vector<std::size_t> first_row;    ///< C − 1 per row
        std::size_t rows = 0;                  ///< Σ |y_b|: the stacked logits' rows
    };
    padded_batch pad(const char* fn, std::span<const Prompt> prompts, std::span<const token_sequence> responses) const {
        check_size(fn, "prompts", prompts.size(), responses.size(), "responses");
        padded_batch batch;
        std::vector<token_sequence> inputs;
        std::size_t L = 0;
        for (std::size_t b = 0; b < responses.size(); ++b) {
            const token_sequence& y = responses[b];
            rspo::detail::check_token_ids(fn, rspo::detail::indexed("responses", b), y, options_.vocabulary);
            if (y.size() > options_.max_length)
                throw shape_error(fn, "responses",
                                  rspo::detail::indexed("responses", b) + " has " + std::to_string(y.size()) +
                                      " tokens, more than max_length() = " + std::to_string(options_.max_length));
            if (y.empty()) continue;
            token_sequence in = context(prompts[b]);
            batch.first_row.push_back(in.size() - 1);
            in.insert(in.end(), y.begin(), y.end() - 1);
            L = std::max(L, in.size());
            inputs.push_back(std::move(in));
            batch.response.push_back(b);
            batch.rows += y.size();
        }
        batch.ids = at::zeros({static_cast<std::int64_t>(inputs.size()), static_cast<std::int64_t>(L)}, at::kLong);
        std::int64_t* ids = batch.ids.template data_ptr<std::int64_t>();
        for (std::size_t k = 0; k < inputs.size(); ++k) std::copy(inputs[k].begin(), inputs[k].end(), ids + k * L);
        return batch;
    }

    /// Logits rows [C − 1, C − 1 + |y|) of context c followed by y (all but y's last token): the
    /// [|y|, V] logits of y, contiguous. Under the caller's grad mode.
    at::Tensor response_rows(const char* fn, const token_sequence& c, const token_sequence& y) const {
        const auto length = static_cast<std::int64_t>(c.size() + y.size() - 1);
        at::Tensor ids = at::empty({1, length}, at::kLong);
        std::int64_t* id = ids.data_ptr<std::int64_t>();
        std::copy(c.begin(), c.end(), id);
        std::copy(y.begin(), y.end() - 1, id + c.size());
        const at::Tensor z = checked_logits(fn, ids, length);
        return z[0].narrow(0, static_cast<std::int64_t>(c.size()) - 1, static_cast<std::int64_t>(y.size())).contiguous();
    }

    /// A tensor over `numel` floats of `flat` from `offset`, shaped like `like`: shares the flat
    /// storage but is not an autograd view of it (so torch's optimizers may detach_() it).
    static at::Tensor window(const at::Tensor& flat, std::int64_t offset, const at::Tensor& like) {
        std::vector<std::int64_t> strides(static_cast<std::size_t>(like.dim()), 1);
        for (std::int64_t d = like.dim() - 2; d >= 0; --d)
            strides[static_cast<std::size_t>(d)] = strides[static_cast<std::size_t>(d) + 1] * like.size(d + 1);
        at::Tensor w = at::empty({0}, flat.options());
        w.set_(flat.storage(), offset, like.sizes(), strides);
        return w;
    }

    /// Re-seats every parameter into flat_ and every gradient into flat_grad_ (values kept).
    void flatten(const char* fn) {
        module_->eval();
        const at::NoGradGuard no_grad;
        params_ = module_->parameters();
        if (params_.empty()) throw tensor_error(fn, "module", "module has no parameters to train");
        const auto named = module_->named_parameters();
        std::int64_t total = 0;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const at::Tensor& p = params_[i];
            const std::string name = "module parameter '" + named[i].key() + "'";
            if (!p.defined() || p.layout() != at::kStrided || p.scalar_type() != at::kFloat || !p.device().is_cpu())
                throw tensor_error(fn, "module",
                                   name + " is " + (p.defined() ? detail::describe(p) : "undefined") +
                                       "; every parameter must be a dense float32 tensor on the cpu");
            total += p.numel();
        }
        flat_ = at::empty({total}, at::TensorOptions().dtype(at::kFloat));
        flat_grad_ = at::zeros({total}, at::TensorOptions().dtype(at::kFloat));
        grads_.clear();
        std::int64_t offset = 0;
        for (at::Tensor& p : params_) {
            at::Tensor data = window(flat_, offset, p);
            data.copy_(p);
            at::Tensor grad = window(flat_grad_, offset, p);
            if (p.grad().defined()) grad.copy_(p.grad());
            p.set_data(data);
            p.mutable_grad() = grad;
            grads_.push_back(std::move(grad));
            offset += p.numel();
        }
    }

    /// Makes every parameter's .grad the window of flat_grad_ again, copying in a gradient that
    /// something else put there (undefined counts as zero).
    void attach_gradient() {
        const at::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            at::Tensor& g = params_[i].mutable_grad();
            if (g.defined() && g.data_ptr() == grads_[i].data_ptr() && g.sizes() == grads_[i].sizes()) continue;
            if (g.defined())
                grads_[i].copy_(g);
            else
                grads_[i].zero_();
            g = grads_[i];
        }
    }

    Module module_;
    sequence_policy_options options_;
    prompt_encoder<Prompt> encode_;
    at::Tensor flat_;                  ///< [parameter_count()] float32: every parameter's storage
    at::Tensor flat_grad_;             ///< [parameter_count()] float32: every .grad's storage
    std::vector<at::Tensor> params_;   ///< the module's parameters, in module->parameters() order
    std::vector<at::Tensor> grads_;    ///< their gradient windows of flat_grad_
};

}  // namespace rspo::adapters::torch
