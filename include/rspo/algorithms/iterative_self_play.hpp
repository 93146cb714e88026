#pragma once
// The published SPPO / RSPO pipeline as one reusable driver (docs/math §2–3, docs/experiments.md):
// for t = 1..T, freeze π_t := π_θ; per prompt sample K responses from π_t, judge every pair,
// estimate P̂(y ≻ π_t), keep (y_w, y_l) or all samples; then E epochs of the square loss
// (plus λ = 2ητ times the regularizer's sample terms, plus optional exact per-token KLs computed by
// the kernels against μ's logits) with the caller's optimizer. Three models are live: π_θ (trained,
// the caller's), π_t (a frozen copy made here) and μ (frozen, the caller's).

#include <rspo/algorithms/rspo.hpp>
#include <rspo/core/check.hpp>
#include <rspo/core/optimizers.hpp>
#include <rspo/core/random.hpp>
#include <rspo/kernels/simd/token_reductions.hpp>
#include <rspo/oracles/preference_oracle.hpp>
#include <rspo/oracles/win_rate_estimate.hpp>
#include <rspo/policies/sequence_policy.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace rspo {

/// Which of a prompt's K samples the loss trains on.
enum class sample_selection {
    best_and_worst,  ///< y_w = argmax P̂, y_l = argmin P̂: the published pipeline
    all,             ///< every sample
};

/// Exact per-token KLs against μ, summed over each response's positions and averaged over the
/// samples like the other terms, with *divergence* weights scaled by the same λ = 2ητ as the
/// regularizer (beyond the paper: the kernels make them cheap, and they remove the sampling noise
/// of the sequence surrogates). Their gradient is taken with the sampled prefixes held fixed.
struct token_kl_weights {
    double reverse = 0.0;  ///< weight of Σ_t KL(π_θ(·|x, y_<t) ‖ μ(·|x, y_<t))
    double forward = 0.0;  ///< weight of Σ_t KL(μ(·|x, y_<t) ‖ π_θ(·|x, y_<t))
};

struct iterative_options {
    std::size_t iterations = 3;          ///< T (the paper: 3)
    std::size_t epochs = 1;              ///< E per iteration (the paper: 1)
    std::size_t samples_per_prompt = 5;  ///< K (the paper: 5)
    std::size_t reference_samples_per_prompt = 2;  ///< responses from μ, for regularizers that need them
    std::size_t prompts_per_step = 8;    ///< prompts per optimizer step
    double sampling_temperature = 1.0;   ///< for drawing responses; log-probabilities use T = 1
    win_rate_estimator estimator = win_rate_estimator::published;
    sample_selection selection = sample_selection::best_and_worst;
    pair_query query = pair_query::once;
    token_kl_weights token_kl = {};
    std::uint64_t seed = 0;              ///< all sampling draws from engines seeded by this

    void validate(const char* fn) const {
        check_not_empty(fn, "options.iterations", iterations);
        check_not_empty(fn, "options.epochs", epochs);
        if (samples_per_prompt < 2)
            throw domain_error(fn, "options.samples_per_prompt",
                               "options.samples_per_prompt = " + std::to_string(samples_per_prompt) +
                                   " must be >= 2 (win rates compare samples)");
        check_not_empty(fn, "options.prompts_per_step", prompts_per_step);
        check_positive(fn, "options.sampling_temperature", sampling_temperature);
        check_non_negative(fn, "options.token_kl.reverse", token_kl.reverse);
        check_non_negative(fn, "options.token_kl.forward", token_kl.forward);
    }
};

/// What callbacks see after each iteration.
struct iteration_report {
    std::size_t iteration = 0;         ///< t, 1-based
    std::size_t total_iterations = 0;  ///< T
    double mean_loss = 0.0;            ///< over the optimizer steps of the iteration
    double first_epoch_loss = 0.0;     ///< mean loss of the first epoch (before most updates)
    double last_epoch_loss = 0.0;      ///< mean loss of the last epoch
    double mean_win_rate_chosen = 0.0; ///< mean P̂ of the samples trained on
    double mean_length = 0.0;          ///< of π_t's samples (tokens)
    std::size_t steps = 0;             ///< optimizer steps taken
};

enum class iterative_status { completed, stopped, numeric_failure };

struct iterative_result {
    std::vector<iteration_report> iterations = {};
    iterative_status status = iterative_status::completed;
    std::string message = {};
};

namespace detail {
template <class C>
bool call_on_iteration(C& callback, const iteration_report& r) {
    if constexpr (requires { { callback.on_iteration(r) } -> std::same_as<bool>; })
        return callback.on_iteration(r);
    else if constexpr (requires { callback.on_iteration(r); })
        callback.on_iteration(r);
    return false;
}

/// One prompt's training data for an iteration.
template <class Prompt>
struct prompt_samples {
    Prompt prompt{};
    std::vector<token_sequence> responses{};     ///< the samples trained on
    std::vector<double> log_pi_t{}, log_mu{}, win_rate{};
    std::vector<token_sequence> reference_responses{};  ///< drawn from μ
    response_logits_batch reference_logits{};   ///< μ's logits of `responses` (token-level KLs)
};

inline bool all_finite(std::span<const float> values) {
    return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
}
}  // namespace detail

/// Runs T iterations of regularized self-play on `policy` (π_θ, updated in place) against the frozen
/// `reference` (μ), judged by `oracle`, over `prompts`. `method` gives η, τ and the regularizer
/// (τ = 0 is SPPO). Deterministic for options.seed.
template <TrainableSequencePolicy P, PreferenceOracle O, Regularizer R, Optimizer Opt, class... Callbacks>
    requires std::same_as<typename O::prompt_type, typename P::prompt_type> &&
             std::same_as<typename O::response_type, token_sequence>
iterative_result iterative_self_play(P& policy, const P& reference, const O& oracle,
                                     std::span<const typename P::prompt_type> prompts,
                                     const rspo_algorithm<R>& method, Opt& optimizer,
                                     const iterative_options& options, Callbacks&&... callbacks) {
    constexpr const char* fn = "rspo::iterative_self_play";
    using prompt_type = typename P::prompt_type;
    method.validate(fn);
    options.validate(fn);
    check_not_empty(fn, "prompts", prompts.size());
    const double lambda = lambda_from_tau(method.eta, method.tau);
    const bool token_kl = lambda > 0.0 && (options.token_kl.reverse > 0.0 || options.token_kl.forward > 0.0);
    const bool reference_samples = lambda > 0.0 && R::needs_reference_samples;
    if (reference_samples && options.reference_samples_per_prompt == 0)
        throw domain_error(fn, "options.reference_samples_per_prompt",
                           "the regularizer " + method.regularizer.name() +
                               " needs responses from the reference: reference_samples_per_prompt must be >= 1");

    iterative_result result;
    for (std::size_t t = 1; t <= options.iterations; ++t) {
        const P frozen = policy;  // π_t
        random_engine rng(options.seed + 0x9E3779B97F4A7C15ull * t);
        iteration_report report{.iteration = t, .total_iterations = options.iterations};

        // 1. Samples, judgments and the frozen models' log-probabilities.
        std::vector<detail::prompt_samples<prompt_type>> data;
        data.reserve(prompts.size());
        double total_length = 0.0, total_chosen_win = 0.0;
        std::size_t chosen = 0;
        for (const prompt_type& x : prompts) {
            detail::prompt_samples<prompt_type> d;
            d.prompt = x;
            std::vector<token_sequence> ys(options.samples_per_prompt);
            for (auto& y : ys) {
                y = frozen.sample(x, rng, options.sampling_temperature);
                total_length += static_cast<double>(y.size());
            }
            const Eigen::VectorXd p_hat = estimate_win_rates(
                preference_matrix(oracle, x, std::span<const token_sequence>(ys), options.query), options.estimator);
            std::vector<std::size_t> keep;
            if (options.selection == sample_selection::best_and_worst) {
                const response_pair pair = select_best_worst(p_hat);
                keep = {pair.winner, pair.loser};
            } else {
                for (std::size_t k = 0; k < ys.size(); ++k) keep.push_back(k);
            }
            for (std::size_t k : keep) {
                d.responses.push_back(ys[k]);
                d.win_rate.push_back(p_hat[static_cast<Eigen::Index>(k)]);
                total_chosen_win += p_hat[static_cast<Eigen::Index>(k)];
                ++chosen;
            }
            const std::span<const token_sequence> kept(d.responses);
            d.log_pi_t = sequence_log_probs(batch_logits(frozen, x, kept));
            const response_logits_batch mu_logits = batch_logits(reference, x, kept);
            d.log_mu = sequence_log_probs(mu_logits);
            if (token_kl) d.reference_logits = mu_logits;
            if (reference_samples)
                for (std::size_t m = 0; m < options.reference_samples_per_prompt; ++m)
                    d.reference_responses.push_back(reference.sample(x, rng));
            data.push_back(std::move(d));
        }
        report.mean_length = total_length / static_cast<double>(prompts.size() * options.samples_per_prompt);
        report.mean_win_rate_chosen = total_chosen_win / static_cast<double>(chosen);

        // 2. E epochs of the loss over minibatches of prompts.
        double loss_sum = 0.0;
        for (std::size_t epoch = 0; epoch < options.epochs; ++epoch) {
            double epoch_loss = 0.0;
            std::size_t epoch_steps = 0;
            for (std::size_t first = 0; first < data.size(); first += options.prompts_per_step) {
                const std::size_t last = std::min(data.size(), first + options.prompts_per_step);
                // Flatten the minibatch: prompts, responses and per-sample inputs side by side.
                std::vector<prompt_type> xs, ref_xs;
                std::vector<token_sequence> ys, ref_ys;
                std::vector<double> lp_t, lp_mu, win;
                for (std::size_t i = first; i < last; ++i) {
                    const auto& d = data[i];
                    for (std::size_t k = 0; k < d.responses.size(); ++k) {
                        xs.push_back(d.prompt);
                        ys.push_back(d.responses[k]);
                        lp_t.push_back(d.log_pi_t[k]);
                        lp_mu.push_back(d.log_mu[k]);
                        win.push_back(d.win_rate[k]);
                    }
                    for (const auto& y : d.reference_responses) {
                        ref_xs.push_back(d.prompt);
                        ref_ys.push_back(y);
                    }
                }
                const std::span<const prompt_type> xs_span(xs);
                const std::span<const token_sequence> ys_span(ys);
                const response_logits_batch z = batch_logits(policy, xs_span, ys_span);
                const std::vector<double> lp_theta = sequence_log_probs(z);
                std::vector<double> ref_lp;
                if (reference_samples)
                    ref_lp = sequence_log_probs(batch_logits(policy, std::span<const prompt_type>(ref_xs),
                                                             std::span<const token_sequence>(ref_ys)));
                const sample_loss loss = method.loss({lp_theta, lp_t, lp_mu, win, ref_lp});
                double step_loss = loss.value;

                policy.zero_gradient();
                accumulate_log_prob_gradient(policy, xs_span, ys_span, loss.d_log_pi_theta);
                if (reference_samples)
                    accumulate_log_prob_gradient(policy, std::span<const prompt_type>(ref_xs),
                                                 std::span<const token_sequence>(ref_ys),
                                                 loss.d_reference_log_pi_theta);
                if (token_kl) {
                    // Stack μ's logits in the same row order as z, then one kernel call gives the
                    // per-token KLs and their gradient w.r.t. π_θ's logits.
                    response_logits_batch mu_z;
                    mu_z.vocabulary = z.vocabulary;
                    mu_z.logits.reserve(z.logits.size());
                    for (std::size_t i = first; i < last; ++i)
                        mu_z.logits.insert(mu_z.logits.end(), data[i].reference_logits.logits.begin(),
                                           data[i].reference_logits.logits.end());
                    mu_z.row_offsets = z.row_offsets;
                    mu_z.ids = z.ids;
                    mu_z.complete = z.complete;
                    const auto samples = static_cast<double>(ys.size());
                    const std::vector<float> g_rev(z.rows(), static_cast<float>(lambda * options.token_kl.reverse / samples));
                    const std::vector<float> g_fwd(z.rows(), static_cast<float>(lambda * options.token_kl.forward / samples));
                    std::vector<float> rev(z.rows()), fwd(z.rows()), dz(z.rows() * z.vocabulary);
                    kernels::simd::backward(
                        z.inputs(&mu_z), kernels::token_grads{.reverse_kl = g_rev, .forward_kl = g_fwd},
                        kernels::gradient_view<float>{dz.data(), z.rows(), z.vocabulary, z.vocabulary}, {},
                        kernels::token_values{.reverse_kl = rev, .forward_kl = fwd});
                    accumulate_batch_gradient(policy, xs_span, ys_span, z, dz);
                    double kl_term = 0.0;
                    for (std::size_t row = 0; row < z.rows(); ++row)
                        kl_term += options.token_kl.reverse * rev[row] + options.token_kl.forward * fwd[row];
                    step_loss += lambda * kl_term / samples;
                }
                if (!detail::all_finite(policy.gradient()) || !std::isfinite(step_loss)) {
                    result.status = iterative_status::numeric_failure;
                    result.message = std::string(fn) + ": iteration " + std::to_string(t) +
                                     " produced a non-finite loss or gradient";
                    result.iterations.push_back(report);
                    return result;
                }
                optimizer.step(policy.parameters(), policy.gradient());
                epoch_loss += step_loss;
                loss_sum += step_loss;
                ++epoch_steps;
                ++report.steps;
            }
            const double mean = epoch_loss / static_cast<double>(epoch_steps);
            if (epoch == 0) report.first_epoch_loss = mean;
            report.last_epoch_loss = mean;
        }
        report.mean_loss = loss_sum / static_cast<double>(report.steps);
        result.iterations.push_back(report);
        bool stop = false;
        ((stop = detail::call_on_iteration(callbacks, report) || stop), ...);
        if (stop) {
            result.status = iterative_status::stopped;
            break;
        }
    }
    return result;
}

}  // namespace rspo
