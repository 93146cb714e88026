#pragma once
// The published SPPO / RSPO pipeline as one reusable driver (docs/math §2–3, docs/experiments.md):
// for t = 1..T, freeze π_t := π_θ; per prompt sample K responses from π_t, judge every pair,
// estimate P̂(y ≻ π_t), keep (y_w, y_l) or all samples; then E epochs of the square loss
// (plus λ = 2ητ times the regularizer's sample terms, plus optional exact per-token KLs computed by
// the kernels against μ's logits) with the caller's optimizer. Three models are live: π_θ (trained,
// the caller's), π_t (a frozen copy made here) and μ (frozen, the caller's). Data parallel: every
// process runs the driver on all prompts; each samples, judges and differentiates its share of each
// minibatch, and the caller's all-reduce makes the steps identical (docs/integration.md).

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
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
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

/// This process's place in a data-parallel run, and the collective it uses. `world` processes call
/// iterative_self_play with the same policy, prompts and options (rank excepted); prompt i is
/// handled by rank (i mod prompts_per_step) mod world, which draws its samples from a stream seeded
/// by (seed, iteration, i) — so the samples do not depend on the world size — and scales its loss
/// by its share of the minibatch's prompts. Before each optimizer step the gradient is summed over
/// the world, so every rank takes the same step, and a world-size-W run equals the single-process
/// run up to the order of floating-point sums.
struct data_parallel {
    std::size_t rank = 0;   ///< in [0, world)
    std::size_t world = 1;  ///< number of processes
    /// In-place sum over all ranks (an all-reduce: Gloo, NCCL, MPI, …); called with the gradient
    /// before every optimizer step. Required when world > 1.
    std::function<void(std::span<float>)> sum_floats = {};
    /// In-place sum over all ranks of the driver's statistics (a few doubles per step and per
    /// iteration), so that every rank reports and decides the same. Required when world > 1.
    std::function<void(std::span<double>)> sum_doubles = {};

    void validate(const char* fn) const {
        check_not_empty(fn, "options.parallel.world", world);
        if (rank >= world)
            throw index_error(fn, "options.parallel.rank",
                              "options.parallel.rank = " + std::to_string(rank) + " is outside [0, " +
                                  std::to_string(world) + ")");
        if (world > 1 && !sum_floats)
            throw domain_error(fn, "options.parallel.sum_floats",
                               "options.parallel.sum_floats is empty but world = " + std::to_string(world));
        if (world > 1 && !sum_doubles)
            throw domain_error(fn, "options.parallel.sum_doubles",
                               "options.parallel.sum_doubles is empty but world = " + std::to_string(world));
    }
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
    data_parallel parallel = {};         ///< one process by default

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
        parallel.validate(fn);
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
// Every field is the same on every rank of a data-parallel run (summed over the world).

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
    std::size_t index = 0;  ///< in the caller's prompts
    Prompt prompt{};
    std::vector<token_sequence> responses{};     ///< the samples trained on
    std::vector<double> log_pi_t{}, log_mu{}, win_rate{};
    std::vector<token_sequence> reference_responses{};  ///< drawn from μ
    response_logits_batch reference_logits{};   ///< μ's logits of `responses` (token-level KLs)
};

inline bool all_finite(std::span<const float> values) {
    return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
}

/// The sampling stream of prompt i in iteration t: independent of which rank draws it.
inline random_engine prompt_stream(std::uint64_t seed, std::size_t t, std::size_t i) {
    return random_engine(mix64(mix64(seed ^ mix64(static_cast<std::uint64_t>(t))) ^ static_cast<std::uint64_t>(i)));
}

/// Sums `values` over the ranks (nothing to do for one process).
inline void sum_over_world(const data_parallel& parallel, std::span<double> values) {
    if (parallel.world > 1) parallel.sum_doubles(values);
}

/// Adds `share` × the gradient of the minibatch loss over `batch` (this rank's prompts of one
/// minibatch) to policy.gradient(), and returns `share` × the loss.
template <TrainableSequencePolicy P, Regularizer R>
double minibatch_gradient(P& policy, const rspo_algorithm<R>& method, const iterative_options& options,
                          double lambda, double share, bool token_kl, bool reference_samples,
                          std::span<const prompt_samples<typename P::prompt_type>> batch) {
    using prompt_type = typename P::prompt_type;
    // Flatten the minibatch: prompts, responses and per-sample inputs side by side.
    std::vector<prompt_type> xs, ref_xs;
    std::vector<token_sequence> ys, ref_ys;
    std::vector<double> lp_t, lp_mu, win;
    for (const auto& d : batch) {
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
        ref_lp = sequence_log_probs(
            batch_logits(policy, std::span<const prompt_type>(ref_xs), std::span<const token_sequence>(ref_ys)));
    sample_loss loss = method.loss({lp_theta, lp_t, lp_mu, win, ref_lp});
    if (share != 1.0) {
        loss.value *= share;
        for (double& g : loss.d_log_pi_theta) g *= share;
        for (double& g : loss.d_reference_log_pi_theta) g *= share;
    }
    double value = loss.value;
    accumulate_log_prob_gradient(policy, xs_span, ys_span, loss.d_log_pi_theta);
    if (reference_samples)
        accumulate_log_prob_gradient(policy, std::span<const prompt_type>(ref_xs),
                                     std::span<const token_sequence>(ref_ys), loss.d_reference_log_pi_theta);
    if (token_kl) {
        // Stack μ's logits in the same row order as z, then one kernel call gives the per-token
        // KLs and their gradient w.r.t. π_θ's logits.
        response_logits_batch mu_z;
        mu_z.vocabulary = z.vocabulary;
        mu_z.logits.reserve(z.logits.size());
        for (const auto& d : batch)
            mu_z.logits.insert(mu_z.logits.end(), d.reference_logits.logits.begin(), d.reference_logits.logits.end());
        mu_z.row_offsets = z.row_offsets;
        mu_z.ids = z.ids;
        mu_z.complete = z.complete;
        const double weight = lambda * share / static_cast<double>(ys.size());
        const std::vector<float> g_rev(z.rows(), static_cast<float>(weight * options.token_kl.reverse));
        const std::vector<float> g_fwd(z.rows(), static_cast<float>(weight * options.token_kl.forward));
        std::vector<float> rev(z.rows()), fwd(z.rows()), dz(z.rows() * z.vocabulary);
        kernels::simd::backward(z.inputs(&mu_z), kernels::token_grads{.reverse_kl = g_rev, .forward_kl = g_fwd},
                                kernels::gradient_view<float>{dz.data(), z.rows(), z.vocabulary, z.vocabulary}, {},
                                kernels::token_values{.reverse_kl = rev, .forward_kl = fwd});
        accumulate_batch_gradient(policy, xs_span, ys_span, z, dz);
        double kl_term = 0.0;
        for (std::size_t row = 0; row < z.rows(); ++row)
            kl_term += options.token_kl.reverse * rev[row] + options.token_kl.forward * fwd[row];
        value += weight * kl_term;
    }
    return value;
}
}  // namespace detail

/// Runs T iterations of regularized self-play on `policy` (π_θ, updated in place) against the frozen
/// `reference` (μ), judged by `oracle`, over `prompts`. `method` gives η, τ and the regularizer
/// (τ = 0 is SPPO). Deterministic for options.seed; options.parallel splits the work over processes.
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

    const data_parallel& parallel = options.parallel;
    const std::size_t step_prompts = options.prompts_per_step;
    const auto owns = [&](std::size_t i) { return (i % step_prompts) % parallel.world == parallel.rank; };

    iterative_result result;
    for (std::size_t t = 1; t <= options.iterations; ++t) {
        const P frozen = policy;  // π_t
        iteration_report report{.iteration = t, .total_iterations = options.iterations};

        // 1. Samples, judgments and the frozen models' log-probabilities of this rank's prompts.
        std::vector<detail::prompt_samples<prompt_type>> data;
        // Σ length, Σ P̂ of the chosen, number chosen: summed over the world below.
        std::array<double, 3> totals{};
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            if (!owns(i)) continue;
            const prompt_type& x = prompts[i];
            random_engine rng = detail::prompt_stream(options.seed, t, i);
            detail::prompt_samples<prompt_type> d;
            d.index = i;
            d.prompt = x;
            const std::vector<token_sequence> ys =
                sample_responses(frozen, x, options.samples_per_prompt, rng, options.sampling_temperature);
            for (const auto& y : ys) totals[0] += static_cast<double>(y.size());
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
                totals[1] += p_hat[static_cast<Eigen::Index>(k)];
                totals[2] += 1.0;
            }
            const std::span<const token_sequence> kept(d.responses);
            d.log_pi_t = sequence_log_probs(batch_logits(frozen, x, kept));
            const response_logits_batch mu_logits = batch_logits(reference, x, kept);
            d.log_mu = sequence_log_probs(mu_logits);
            if (token_kl) d.reference_logits = mu_logits;
            if (reference_samples)
                d.reference_responses = sample_responses(reference, x, options.reference_samples_per_prompt, rng);
            data.push_back(std::move(d));
        }
        detail::sum_over_world(parallel, totals);
        report.mean_length = totals[0] / static_cast<double>(prompts.size() * options.samples_per_prompt);
        report.mean_win_rate_chosen = totals[1] / totals[2];

        // 2. E epochs of the loss over minibatches of prompts; this rank holds data[begin, end) of
        // minibatch [first, last), and weighs its mean by its share of the minibatch's prompts
        // (each prompt contributes the same number of samples), so the sum over ranks is the mean.
        double loss_sum = 0.0;
        for (std::size_t epoch = 0; epoch < options.epochs; ++epoch) {
            double epoch_loss = 0.0;
            std::size_t epoch_steps = 0, begin = 0;
            for (std::size_t first = 0; first < prompts.size(); first += step_prompts) {
                const std::size_t last = std::min(prompts.size(), first + step_prompts);
                std::size_t end = begin;
                while (end < data.size() && data[end].index < last) ++end;
                const double share = static_cast<double>(end - begin) / static_cast<double>(last - first);
                std::array<double, 1> step_loss{};
                policy.zero_gradient();
                if (end > begin) step_loss[0] = detail::minibatch_gradient(policy, method, options, lambda, share,
                                                                           token_kl, reference_samples,
                                                                           std::span(data).subspan(begin, end - begin));
                begin = end;
                if (parallel.world > 1) parallel.sum_floats(policy.gradient());
                detail::sum_over_world(parallel, step_loss);
                if (!detail::all_finite(policy.gradient()) || !std::isfinite(step_loss[0])) {
                    result.status = iterative_status::numeric_failure;
                    result.message = std::string(fn) + ": iteration " + std::to_string(t) +
                                     " produced a non-finite loss or gradient";
                    result.iterations.push_back(report);
                    return result;
                }
                optimizer.step(policy.parameters(), policy.gradient());
                epoch_loss += step_loss[0];
                loss_sum += step_loss[0];
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
