// The iterative SPPO/RSPO loop on the toy language task (docs/experiments.md): λ = 0 is SPPO,
// an iteration lowers the loss and raises the judge's win rate vs μ, determinism, token-level KLs.
#include <rspo/algorithms/iterative_self_play.hpp>
#include <rspo/eval/sequence_evaluation.hpp>
#include <rspo/games/toy_language_task.hpp>
#include <rspo/regularizers/chi_squared.hpp>
#include <rspo/regularizers/composition.hpp>
#include <rspo/regularizers/forward_kl.hpp>
#include <rspo/regularizers/reverse_kl.hpp>

#include <catch2/catch_test_macros.hpp>

#include <numeric>
#include <vector>

using namespace rspo;

namespace {

/// A small task and a fitted reference μ, shared by the tests (fixed seeds).
struct fixture {
    toy_language_task task{{.prompts = 4, .vocabulary = 8, .max_length = 6, .relevant_tokens = 2, .seed = 3}};
    prompt_bigram_policy mu{task.policy_options(7)};
    std::vector<std::size_t> prompts;
    fixture() {
        const auto corpus = task.make_corpus({.responses_per_prompt = 256, .seed = 1});
        adam opt({.learning_rate = 0.05});
        fit_reference(mu, std::span<const corpus_example>(corpus), 6, opt);
        prompts.resize(task.options().prompts);
        std::iota(prompts.begin(), prompts.end(), std::size_t{0});
    }
};

const fixture& shared() {
    static const fixture f;
    return f;
}

template <Regularizer R>
std::vector<float> train(const rspo_algorithm<R>& method, const iterative_options& options,
                         iterative_result* result = nullptr) {
    const fixture& f = shared();
    prompt_bigram_policy pi = f.mu;
    adam opt({.learning_rate = 0.05});
    auto r = iterative_self_play(pi, f.mu, f.task.true_judge(), std::span<const std::size_t>(f.prompts), method,
                                 opt, options);
    if (result) *result = r;
    const auto params = pi.parameters();
    return {params.begin(), params.end()};
}

}  // namespace

TEST_CASE("the loop with lambda = 0 is SPPO, bit for bit, whatever the regularizer", "[iterative]") {
    const iterative_options options{.iterations = 2, .epochs = 2, .samples_per_prompt = 4, .seed = 11};
    const auto sppo_params = train(sppo{.eta = 2.0}, options);
    CHECK(train(make_rspo(reverse_kl{}, {.eta = 2.0, .tau = 0.0}), options) == sppo_params);
    CHECK(train(make_rspo(0.1 * forward_kl{} + chi_squared{}, {.eta = 2.0, .tau = 0.0}), options) == sppo_params);
    // ...and a positive τ changes the result (the test above could not pass by ignoring τ).
    CHECK(train(make_rspo(reverse_kl{}, {.eta = 2.0, .tau = 0.5}), options) != sppo_params);
}

TEST_CASE("one iteration lowers the loss and raises the judge's win rate against mu", "[iterative]") {
    const fixture& f = shared();
    prompt_bigram_policy pi = f.mu;
    adam opt({.learning_rate = 0.05});
    const auto result = iterative_self_play(
        pi, f.mu, f.task.true_judge(), std::span<const std::size_t>(f.prompts), sppo{.eta = 4.0}, opt,
        {.iterations = 1, .epochs = 8, .samples_per_prompt = 8, .selection = sample_selection::all, .seed = 5});
    REQUIRE(result.status == iterative_status::completed);
    REQUIRE(result.iterations.size() == 1);
    const auto& report = result.iterations.front();
    INFO("first epoch loss " << report.first_epoch_loss << ", last " << report.last_epoch_loss);
    CHECK(report.last_epoch_loss < 0.8 * report.first_epoch_loss);

    const eval::sequence_evaluation_options eval_options{.samples_per_prompt = 400, .seed = 99};
    const auto before = eval::evaluate_sequences(f.mu, f.mu, f.task.true_judge(),
                                                 std::span<const std::size_t>(f.prompts), eval_options);
    const auto after = eval::evaluate_sequences(pi, f.mu, f.task.true_judge(),
                                                std::span<const std::size_t>(f.prompts), eval_options);
    INFO("win rate vs mu: before " << before.win_rate << " +- " << before.win_rate_se << ", after "
                                   << after.win_rate << " +- " << after.win_rate_se);
    // μ against itself is 50 in expectation; the trained policy must beat it by > 4 standard errors.
    CHECK(std::abs(before.win_rate - 50.0) < 4.0 * before.win_rate_se);
    CHECK(after.win_rate > 50.0 + 4.0 * after.win_rate_se);
}

TEST_CASE("the loop is deterministic for a seed and changes with it", "[iterative]") {
    const auto method = make_rspo(0.1 * forward_kl{} + 1.0 * reverse_kl{}, {.eta = 2.0, .tau = 0.3});
    const iterative_options a{.iterations = 2, .samples_per_prompt = 4, .seed = 1};
    iterative_options b = a;
    b.seed = 2;
    CHECK(train(method, a) == train(method, a));
    CHECK(train(method, a) != train(method, b));
}

TEST_CASE("regularizers that need mu's samples get them; exact token-level KLs pull toward mu",
          "[iterative]") {
    const fixture& f = shared();
    const iterative_options base{.iterations = 2, .epochs = 3, .samples_per_prompt = 6,
                                 .selection = sample_selection::all, .seed = 4};
    iterative_result r;
    train(make_rspo(forward_kl_direct{}, {.eta = 4.0, .tau = 0.2}), base, &r);
    CHECK(r.status == iterative_status::completed);

    // Exact per-token reverse KL toward μ, with no sequence regularizer: the policy ends closer to μ
    // (measured by the sequence log-ratio on μ's own samples) than unregularized SPPO.
    iterative_options with_kl = base;
    with_kl.token_kl = {.reverse = 1.0};
    const auto distance_to_mu = [&](const std::vector<float>& params) {
        prompt_bigram_policy pi = f.mu;
        std::copy(params.begin(), params.end(), pi.parameters().begin());
        random_engine rng(8);
        double kl = 0.0;
        std::size_t n = 0;
        for (std::size_t x : f.prompts)
            for (int k = 0; k < 200; ++k) {
                const auto y = pi.sample(x, rng);
                kl += pi.log_prob(x, y) - f.mu.log_prob(x, y);  // Monte Carlo KL(π‖μ)
                ++n;
            }
        return kl / static_cast<double>(n);
    };
    const double free_kl = distance_to_mu(train(make_rspo(reverse_kl{}, {.eta = 4.0, .tau = 0.0}), base));
    const double kl_regularized = distance_to_mu(train(make_rspo(no_regularizer{}, {.eta = 4.0, .tau = 0.5}), with_kl));
    INFO("KL(pi || mu): SPPO " << free_kl << ", token-level reverse KL " << kl_regularized);
    CHECK(kl_regularized < 0.5 * free_kl);
}

TEST_CASE("the loop checks its options", "[iterative]") {
    const fixture& f = shared();
    prompt_bigram_policy pi = f.mu;
    adam opt({.learning_rate = 0.05});
    const auto run = [&](const iterative_options& o) {
        return iterative_self_play(pi, f.mu, f.task.true_judge(), std::span<const std::size_t>(f.prompts),
                                   sppo{.eta = 1.0}, opt, o);
    };
    CHECK_THROWS_AS(run({.samples_per_prompt = 1}), domain_error);
    CHECK_THROWS_AS(run({.iterations = 0}), shape_error);
    CHECK_THROWS_AS(run({.sampling_temperature = 0.0}), domain_error);
    CHECK_THROWS_AS(run({.token_kl = {.reverse = -1.0}}), domain_error);
    CHECK_THROWS_AS(iterative_self_play(pi, f.mu, f.task.true_judge(), std::span<const std::size_t>(f.prompts),
                                        make_rspo(forward_kl_direct{}, {.eta = 1.0, .tau = 0.1}), opt,
                                        {.reference_samples_per_prompt = 0}),
                    domain_error);
}
