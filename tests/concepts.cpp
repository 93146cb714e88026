// Conformance of the library's models to its concepts (compile time), and the runtime conformance
// checks rspo::check_oracle / rspo::check_policy that users run on their own types.
//
// Each negative case is a "toy" type that differs from a known-good toy in exactly one respect, and
// the good toy is itself asserted to be a model, so every negative STATIC_REQUIRE fails for the
// reason its name gives and not because the toy is broken in some other way.

#include <rspo/rspo.hpp>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_container_properties.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Toy oracles: `toy_oracle<omit::nothing>` is a PreferenceOracle; each other value drops one thing.
// ---------------------------------------------------------------------------------------------
enum class omit { nothing, tag, wrong_tag, prompt_type, response_type, prefer, prefer_returns_string };

struct not_a_tag {};
struct prompt_a {};
struct prompt_b {};

template <omit O>
struct oracle_category_of {
    using oracle_category = rspo::preference_oracle_tag;
};
template <>
struct oracle_category_of<omit::tag> {};
template <>
struct oracle_category_of<omit::wrong_tag> {
    using oracle_category = not_a_tag;
};

template <omit O>
struct oracle_prompt_of {
    using prompt_type = prompt_a;
};
template <>
struct oracle_prompt_of<omit::prompt_type> {};

template <omit O>
struct oracle_response_of {
    using response_type = int;
};
template <>
struct oracle_response_of<omit::response_type> {};

template <omit O>
struct toy_oracle : oracle_category_of<O>, oracle_prompt_of<O>, oracle_response_of<O> {
    double prefer(const prompt_a&, int a, int b) const
        requires(O != omit::prefer && O != omit::prefer_returns_string)
    {
        return a == b ? 0.5 : (a < b ? 0.25 : 0.75);
    }
    std::string prefer(const prompt_a&, int, int) const
        requires(O == omit::prefer_returns_string)
    {
        return "0.5";
    }
};

/// Tagged, with the right members, but prefer takes a prompt_b while prompt_type says prompt_a.
struct prompt_mismatch_oracle {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = prompt_a;
    using response_type = int;
    double prefer(const prompt_b&, int, int) const { return 0.5; }
};

/// Tagged, but prefer takes std::string responses while response_type says int.
struct response_mismatch_oracle {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = prompt_a;
    using response_type = int;
    double prefer(const prompt_a&, const std::string&, const std::string&) const { return 0.5; }
};

/// A tagged oracle whose tag derives from preference_oracle_tag (derived tags are accepted).
struct derived_tag : rspo::preference_oracle_tag {};
struct derived_tag_oracle {
    using oracle_category = derived_tag;
    using prompt_type = prompt_a;
    using response_type = int;
    double prefer(const prompt_a&, int, int) const { return 0.5; }
};

/// A PreferenceOracle over single_prompt × std::size_t but without size() / preferences().
struct tabular_without_matrix {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = std::size_t;
    double prefer(rspo::single_prompt, std::size_t, std::size_t) const { return 0.5; }
};

/// Has size() and preferences(), but its responses are int, not std::size_t.
struct tabular_with_int_responses {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = int;
    double prefer(rspo::single_prompt, int, int) const { return 0.5; }
    std::size_t size() const { return 1; }
    const Eigen::MatrixXd& preferences() const { return matrix; }
    Eigen::MatrixXd matrix = Eigen::MatrixXd::Constant(1, 1, 0.5);
};

// ---------------------------------------------------------------------------------------------
// Toy regularizers: `toy_regularizer<drop::nothing>` is a Regularizer; each other drops one thing.
// ---------------------------------------------------------------------------------------------
enum class drop {
    nothing,
    tag,
    needs_reference_samples,
    sample_value,
    sample_derivative,
    reference_sample_value,
    value,
    gradient,
    stationarity,
    stationarity_slope,
    name,
    validate,
    copy,
};

template <drop D>
struct regularizer_category_of {
    using regularizer_category = rspo::regularizer_tag;
};
template <>
struct regularizer_category_of<drop::tag> {};

template <drop D>
struct needs_reference_samples_of {
    static constexpr bool needs_reference_samples = false;
};
template <>
struct needs_reference_samples_of<drop::needs_reference_samples> {};

template <drop D>
struct toy_regularizer : regularizer_category_of<D>, needs_reference_samples_of<D> {
    toy_regularizer() = default;
    toy_regularizer(const toy_regularizer&)
        requires(D != drop::copy)
    = default;
    toy_regularizer(const toy_regularizer&)
        requires(D == drop::copy)
    = delete;

    double sample_value(double) const requires(D != drop::sample_value) { return 0.0; }
    double sample_derivative(double) const requires(D != drop::sample_derivative) { return 0.0; }
    double reference_sample_value(double) const requires(D != drop::reference_sample_value) {
        return 0.0;
    }
    double reference_sample_derivative(double) const { return 0.0; }
    double value(const Eigen::VectorXd&, const Eigen::VectorXd&) const requires(D != drop::value) {
        return 0.0;
    }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd&) const
        requires(D != drop::gradient)
    {
        return Eigen::VectorXd::Zero(pi.size());
    }
    double stationarity(double, double) const requires(D != drop::stationarity) { return 0.0; }
    double stationarity_slope(double, double) const requires(D != drop::stationarity_slope) {
        return 0.0;
    }
    std::string name() const requires(D != drop::name) { return "toy"; }
    void validate(const char*) const requires(D != drop::validate) {}
};

/// Whether the composition operators accept the operands (they are constrained on Regularizer).
template <class R>
concept scalable = requires(R r) { 2.0 * r; };
template <class A, class B>
concept addable = requires(A a, B b) { a + b; };

/// A complete Regularizer plus log_linear_weight(): a user's log-linear regularizer.
struct toy_log_linear : toy_regularizer<drop::nothing> {
    double log_linear_weight() const { return 0.0; }
};

// ---------------------------------------------------------------------------------------------
// Toy policies and algorithms.
// ---------------------------------------------------------------------------------------------
enum class policy_defect { none, tag, log_prob, sample, sample_returns_int, size, probabilities };

template <policy_defect D>
struct policy_category_of {
    using policy_category = rspo::policy_tag;
};
template <>
struct policy_category_of<policy_defect::tag> {};

template <policy_defect D>
struct toy_policy : policy_category_of<D> {
    using prompt_type = rspo::single_prompt;
    using response_type = std::size_t;
    double log_prob(rspo::single_prompt, std::size_t) const requires(D != policy_defect::log_prob) {
        return 0.0;
    }
    std::size_t sample(rspo::single_prompt, rspo::random_engine&) const
        requires(D != policy_defect::sample && D != policy_defect::sample_returns_int)
    {
        return 0;
    }
    int sample(rspo::single_prompt, rspo::random_engine&) const
        requires(D == policy_defect::sample_returns_int)
    {
        return 0;
    }
    std::size_t size() const requires(D != policy_defect::size) { return 1; }
    Eigen::VectorXd probabilities() const requires(D != policy_defect::probabilities) {
        return Eigen::VectorXd::Ones(1);
    }
};

/// A Policy over string responses: a Policy, but not a TabularPolicy.
struct string_policy {
    using policy_category = rspo::policy_tag;
    using prompt_type = std::string;
    using response_type = std::string;
    double log_prob(const std::string&, const std::string&) const { return 0.0; }
    std::string sample(const std::string&, rspo::random_engine&) const { return "y"; }
};

enum class algorithm_defect { none, step, validate, name, copy };

template <algorithm_defect D>
struct toy_algorithm {
    toy_algorithm() = default;
    toy_algorithm(const toy_algorithm&)
        requires(D != algorithm_defect::copy)
    = default;
    toy_algorithm(const toy_algorithm&)
        requires(D == algorithm_defect::copy)
    = delete;

    void step(const rspo::preference_game&, rspo::tabular_iterate&) const
        requires(D != algorithm_defect::step)
    {}
    void validate(const char*) const requires(D != algorithm_defect::validate) {}
    std::string name() const requires(D != algorithm_defect::name) { return "toy"; }
};

/// step advances a tabular_policy instead of the driver's tabular_iterate.
struct policy_step_algorithm {
    void step(const rspo::preference_game&, rspo::tabular_policy&) const {}
    void validate(const char*) const {}
    std::string name() const { return "policy_step"; }
};

// ---------------------------------------------------------------------------------------------
// Runtime helpers.
// ---------------------------------------------------------------------------------------------
double toy_score(const std::string&, const std::string& response) {
    return static_cast<double>(response.size());
}
using toy_score_fn = double (*)(const std::string&, const std::string&);
using string_bt_oracle = rspo::bradley_terry_oracle<std::string, std::string, toy_score_fn>;
using string_callback_oracle =
    rspo::callback_oracle<std::string, std::string,
                          double (*)(const std::string&, const std::string&, const std::string&)>;

/// True when some failure line contains `fragment`.
bool mentions(const std::vector<std::string>& failures, const std::string& fragment) {
    return std::any_of(failures.begin(), failures.end(),
                       [&](const std::string& f) { return f.find(fragment) != std::string::npos; });
}

/// A user oracle over int responses with one chosen defect; otherwise P(a ≻ b) = ½ + (b − a)/10.
enum class oracle_defect { none, out_of_range, not_complementary, self_not_half, nondeterministic };

struct broken_oracle {
    using oracle_category = rspo::preference_oracle_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = int;

    oracle_defect defect = oracle_defect::none;
    mutable int calls = 0;

    double prefer(rspo::single_prompt, int a, int b) const {
        ++calls;
        const double fair = 0.5 + 0.1 * (b - a);
        switch (defect) {
            case oracle_defect::none: return fair;
            // 0.5 + 0.8·(b − a) leaves [0, 1] for |a − b| ≥ 1 but stays complementary.
            case oracle_defect::out_of_range: return 0.5 + 0.8 * (b - a);
            // Both orders of a distinct pair answer 0.6: the sum is 1.2.
            case oracle_defect::not_complementary: return a == b ? 0.5 : 0.6;
            // Only the self-pair is wrong. (Then P(a,a) + P(a,a) = 1.4 ≠ 1 too.)
            case oracle_defect::self_not_half: return a == b ? 0.7 : fair;
            // Drifts by 1e-9 per call: well inside the 1e-6 tolerance used for requirements 1-3,
            // but never the same answer twice.
            case oracle_defect::nondeterministic: return fair + 1e-9 * calls;
        }
        return fair;
    }
};

/// A tabular policy that samples from its own state instead of the engine it is given.
struct self_seeded_policy {
    using policy_category = rspo::policy_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = std::size_t;
    mutable std::size_t counter = 0;
    double log_prob(rspo::single_prompt, std::size_t) const { return -std::log(2.0); }
    std::size_t sample(rspo::single_prompt, rspo::random_engine&) const { return counter++ % 2; }
    std::size_t size() const { return 2; }
    Eigen::VectorXd probabilities() const { return Eigen::VectorXd::Constant(2, 0.5); }
};

/// A tabular policy whose log_prob is positive for response 0.
struct positive_log_prob_policy {
    using policy_category = rspo::policy_tag;
    using prompt_type = rspo::single_prompt;
    using response_type = std::size_t;
    double log_prob(rspo::single_prompt, std::size_t y) const { return y == 0 ? 0.1 : -1.0; }
    std::size_t sample(rspo::single_prompt, rspo::random_engine& rng) const {
        return rspo::sample_categorical(probabilities(), rng);
    }
    std::size_t size() const { return 2; }
    Eigen::VectorXd probabilities() const { return Eigen::VectorXd::Constant(2, 0.5); }
};

}  // namespace

// ===============================================================================================
// Compile time
// ===============================================================================================

TEST_CASE("library oracles model PreferenceOracle, matrix_oracle also TabularOracle",
          "[concepts][oracles]") {
    STATIC_REQUIRE(rspo::PreferenceOracle<rspo::matrix_oracle>);
    STATIC_REQUIRE(rspo::TabularOracle<rspo::matrix_oracle>);

    STATIC_REQUIRE(rspo::PreferenceOracle<string_bt_oracle>);
    STATIC_REQUIRE_FALSE(rspo::TabularOracle<string_bt_oracle>);  // no finite response set

    auto lambda_bt = rspo::make_bradley_terry_oracle<int, double>(
        [](int, double y) { return 2.0 * y; });
    STATIC_REQUIRE(rspo::PreferenceOracle<decltype(lambda_bt)>);

    STATIC_REQUIRE(rspo::PreferenceOracle<string_callback_oracle>);
    auto lambda_judge = rspo::make_callback_oracle<rspo::single_prompt, std::size_t>(
        [](rspo::single_prompt, std::size_t a, std::size_t b) { return a < b ? 0.3 : 0.7; });
    STATIC_REQUIRE(rspo::PreferenceOracle<decltype(lambda_judge)>);
    // A callback oracle over the tabular types still has no size()/preferences().
    STATIC_REQUIRE_FALSE(rspo::TabularOracle<decltype(lambda_judge)>);
}

TEST_CASE("PreferenceOracle requires the opt-in tag, every member and matching types",
          "[concepts][oracles]") {
    STATIC_REQUIRE(rspo::PreferenceOracle<toy_oracle<omit::nothing>>);
    STATIC_REQUIRE(rspo::PreferenceOracle<derived_tag_oracle>);

    // Right member names, but no oracle_category: not taken by accident.
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<toy_oracle<omit::tag>>);
    // An oracle_category that is not (derived from) preference_oracle_tag.
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<toy_oracle<omit::wrong_tag>>);
    // One member missing at a time.
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<toy_oracle<omit::prompt_type>>);
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<toy_oracle<omit::response_type>>);
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<toy_oracle<omit::prefer>>);
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<toy_oracle<omit::prefer_returns_string>>);
    // prefer's parameters disagree with the declared prompt / response types.
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<prompt_mismatch_oracle>);
    STATIC_REQUIRE_FALSE(rspo::PreferenceOracle<response_mismatch_oracle>);
}

TEST_CASE("TabularOracle needs single_prompt, std::size_t responses, size() and preferences()",
          "[concepts][oracles]") {
    STATIC_REQUIRE(rspo::PreferenceOracle<tabular_without_matrix>);
    STATIC_REQUIRE_FALSE(rspo::TabularOracle<tabular_without_matrix>);
    STATIC_REQUIRE(rspo::PreferenceOracle<tabular_with_int_responses>);
    STATIC_REQUIRE_FALSE(rspo::TabularOracle<tabular_with_int_responses>);
    STATIC_REQUIRE_FALSE(rspo::TabularOracle<toy_oracle<omit::nothing>>);  // prompt_a, int
}

TEST_CASE("every library regularizer, weighted and summed, models Regularizer",
          "[concepts][regularizers]") {
    STATIC_REQUIRE(rspo::Regularizer<rspo::no_regularizer>);
    STATIC_REQUIRE(rspo::Regularizer<rspo::reverse_kl>);
    STATIC_REQUIRE(rspo::Regularizer<rspo::forward_kl>);
    STATIC_REQUIRE(rspo::Regularizer<rspo::forward_kl_importance>);
    STATIC_REQUIRE(rspo::Regularizer<rspo::forward_kl_direct>);
    STATIC_REQUIRE(rspo::Regularizer<rspo::chi_squared>);

    STATIC_REQUIRE(rspo::Regularizer<rspo::weighted<rspo::reverse_kl>>);
    STATIC_REQUIRE(rspo::Regularizer<rspo::weighted<rspo::chi_squared>>);
    STATIC_REQUIRE(rspo::Regularizer<decltype(0.5 * rspo::forward_kl_direct{})>);
    STATIC_REQUIRE(rspo::Regularizer<decltype(0.1 * rspo::forward_kl{} + 1.0 * rspo::reverse_kl{})>);
    STATIC_REQUIRE(rspo::Regularizer<decltype(rspo::chi_squared{} + rspo::forward_kl_direct{} +
                                              2.0 * rspo::reverse_kl{})>);
    STATIC_REQUIRE(rspo::Regularizer<decltype(rspo::with_surrogate_weight(0.5, rspo::reverse_kl{}))>);

    // The expression types are what the header says they are: weights multiply rather than nest.
    STATIC_REQUIRE(std::is_same_v<decltype(2.0 * (0.5 * rspo::reverse_kl{})),
                                  rspo::weighted<rspo::reverse_kl>>);
    STATIC_REQUIRE(std::is_same_v<decltype(0.1 * rspo::forward_kl{} + 1.0 * rspo::reverse_kl{}),
                                  rspo::regularizer_sum<rspo::weighted<rspo::forward_kl>,
                                                        rspo::weighted<rspo::reverse_kl>>>);

    // needs_reference_samples propagates through weights and sums.
    STATIC_REQUIRE(decltype(0.5 * rspo::forward_kl_direct{})::needs_reference_samples);
    STATIC_REQUIRE(decltype(rspo::reverse_kl{} + rspo::forward_kl_direct{})::needs_reference_samples);
    STATIC_REQUIRE_FALSE(decltype(rspo::reverse_kl{} + rspo::forward_kl{})::needs_reference_samples);
}

TEST_CASE("LogLinearRegularizer holds exactly for (weighted sums of) reverse KL and none",
          "[concepts][regularizers]") {
    STATIC_REQUIRE(rspo::LogLinearRegularizer<rspo::reverse_kl>);
    STATIC_REQUIRE(rspo::LogLinearRegularizer<rspo::no_regularizer>);
    STATIC_REQUIRE(rspo::LogLinearRegularizer<rspo::weighted<rspo::reverse_kl>>);
    STATIC_REQUIRE(rspo::LogLinearRegularizer<decltype(2.0 * rspo::reverse_kl{} + rspo::no_regularizer{})>);
    STATIC_REQUIRE(rspo::LogLinearRegularizer<toy_log_linear>);

    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<rspo::forward_kl>);
    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<rspo::forward_kl_direct>);
    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<rspo::chi_squared>);
    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<rspo::weighted<rspo::chi_squared>>);
    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<decltype(0.1 * rspo::forward_kl{} + rspo::reverse_kl{})>);
    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<decltype(rspo::reverse_kl{} + rspo::chi_squared{})>);
    // A complete regularizer without log_linear_weight().
    STATIC_REQUIRE_FALSE(rspo::LogLinearRegularizer<toy_regularizer<drop::nothing>>);
}

TEST_CASE("Regularizer requires the opt-in tag and every member", "[concepts][regularizers]") {
    STATIC_REQUIRE(rspo::Regularizer<toy_regularizer<drop::nothing>>);

    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::tag>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::needs_reference_samples>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::sample_value>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::sample_derivative>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::reference_sample_value>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::value>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::gradient>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::stationarity>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::stationarity_slope>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::name>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::validate>>);
    STATIC_REQUIRE_FALSE(rspo::Regularizer<toy_regularizer<drop::copy>>);

    // Non-regularizers are rejected by the composition operators' constraints too.
    STATIC_REQUIRE(scalable<rspo::reverse_kl>);
    STATIC_REQUIRE_FALSE(scalable<toy_regularizer<drop::tag>>);
    STATIC_REQUIRE(addable<rspo::reverse_kl, toy_regularizer<drop::nothing>>);
    STATIC_REQUIRE_FALSE(addable<rspo::reverse_kl, toy_regularizer<drop::value>>);
}

TEST_CASE("tabular_policy models TabularPolicy; Policy requires tag and exact sample type",
          "[concepts][policies]") {
    STATIC_REQUIRE(rspo::Policy<rspo::tabular_policy>);
    STATIC_REQUIRE(rspo::TabularPolicy<rspo::tabular_policy>);

    STATIC_REQUIRE(rspo::TabularPolicy<toy_policy<policy_defect::none>>);
    STATIC_REQUIRE_FALSE(rspo::Policy<toy_policy<policy_defect::tag>>);
    STATIC_REQUIRE_FALSE(rspo::Policy<toy_policy<policy_defect::log_prob>>);
    STATIC_REQUIRE_FALSE(rspo::Policy<toy_policy<policy_defect::sample>>);
    // sample must return exactly response_type, not something convertible to it.
    STATIC_REQUIRE_FALSE(rspo::Policy<toy_policy<policy_defect::sample_returns_int>>);
    STATIC_REQUIRE(rspo::Policy<toy_policy<policy_defect::size>>);
    STATIC_REQUIRE_FALSE(rspo::TabularPolicy<toy_policy<policy_defect::size>>);
    STATIC_REQUIRE(rspo::Policy<toy_policy<policy_defect::probabilities>>);
    STATIC_REQUIRE_FALSE(rspo::TabularPolicy<toy_policy<policy_defect::probabilities>>);

    STATIC_REQUIRE(rspo::Policy<string_policy>);
    STATIC_REQUIRE_FALSE(rspo::TabularPolicy<string_policy>);
}

TEST_CASE("every tabular method models TabularAlgorithm", "[concepts][algorithms]") {
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::sppo>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::mmd>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::rspo_algorithm<rspo::chi_squared>>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::rspo_algorithm<rspo::forward_kl>>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<decltype(rspo::make_rspo(
                       0.1 * rspo::forward_kl{} + 1.0 * rspo::reverse_kl{}, {.eta = 1.0, .tau = 0.1}))>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::nash_md>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::mpo>);
    STATIC_REQUIRE(rspo::TabularAlgorithm<rspo::inpo>);

    STATIC_REQUIRE(std::is_same_v<rspo::sppo, rspo::rspo_algorithm<rspo::no_regularizer>>);
    STATIC_REQUIRE(std::is_same_v<rspo::mmd, rspo::rspo_algorithm<rspo::reverse_kl>>);
}

TEST_CASE("TabularAlgorithm requires step, validate, name and copyability", "[concepts][algorithms]") {
    STATIC_REQUIRE(rspo::TabularAlgorithm<toy_algorithm<algorithm_defect::none>>);
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<toy_algorithm<algorithm_defect::step>>);
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<toy_algorithm<algorithm_defect::validate>>);
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<toy_algorithm<algorithm_defect::name>>);
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<toy_algorithm<algorithm_defect::copy>>);
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<policy_step_algorithm>);
    // Regularizers and oracles are not algorithms.
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<rspo::reverse_kl>);
    STATIC_REQUIRE_FALSE(rspo::TabularAlgorithm<rspo::matrix_oracle>);
}

TEST_CASE("the error hierarchy: typed argument errors are std::invalid_argument",
          "[concepts][errors]") {
    STATIC_REQUIRE(std::is_base_of_v<std::invalid_argument, rspo::argument_error>);
    STATIC_REQUIRE(std::is_base_of_v<rspo::argument_error, rspo::shape_error>);
    STATIC_REQUIRE(std::is_base_of_v<rspo::argument_error, rspo::domain_error>);
    STATIC_REQUIRE(std::is_base_of_v<rspo::argument_error, rspo::index_error>);
    STATIC_REQUIRE_FALSE(std::is_base_of_v<rspo::domain_error, rspo::shape_error>);
    STATIC_REQUIRE_FALSE(std::is_base_of_v<rspo::argument_error, rspo::io_error>);
    STATIC_REQUIRE(std::is_base_of_v<std::runtime_error, rspo::io_error>);
}

// ===============================================================================================
// Runtime conformance
// ===============================================================================================

TEST_CASE("check_oracle passes for matrix_oracle on every standard game", "[concepts][oracles]") {
    const std::vector<rspo::preference_game> games = {
        rspo::games::rock_paper_scissors(), rspo::games::biased_rock_paper_scissors(),
        rspo::games::weighted_cycle({0.1, 0.2, 0.3, 0.4}), rspo::games::random_skew_symmetric(6, 7),
        rspo::games::all_ties(3)};
    for (const auto& game : games) {
        CAPTURE(game.name());
        const rspo::matrix_oracle oracle(game);
        std::vector<std::size_t> responses(game.size());
        for (std::size_t i = 0; i < responses.size(); ++i) responses[i] = i;
        const auto report = rspo::check_oracle(oracle, rspo::single_prompt{},
                                               std::span<const std::size_t>(responses));
        CHECK_THAT(report.failures, Catch::Matchers::IsEmpty());
        CHECK(report.ok());
    }
}

TEST_CASE("check_oracle passes for a Bradley-Terry oracle, including large score gaps",
          "[concepts][oracles]") {
    const string_bt_oracle oracle(&toy_score, 3.0);
    // Lengths 0..40 and one of 400: score gaps up to 1200, where σ saturates to exactly 0 or 1.
    const std::vector<std::string> responses = {"", "a", "abc", std::string(40, 'x'),
                                                std::string(400, 'y')};
    const auto report =
        rspo::check_oracle(oracle, std::string("prompt"), std::span<const std::string>(responses));
    CHECK_THAT(report.failures, Catch::Matchers::IsEmpty());
}

TEST_CASE("check_oracle reports each violated requirement of a broken user oracle",
          "[concepts][oracles]") {
    const std::vector<int> responses = {0, 1, 2};
    const auto run = [&](oracle_defect defect, double tolerance) {
        const broken_oracle oracle{defect};
        return rspo::check_oracle(oracle, rspo::single_prompt{}, std::span<const int>(responses),
                                  tolerance)
            .failures;
    };
    const double tolerance = 1e-6;

    SECTION("a conforming oracle passes (the defects below are the only problems)") {
        CHECK_THAT(run(oracle_defect::none, tolerance), Catch::Matchers::IsEmpty());
    }
    SECTION("a value outside [0, 1]") {
        const auto failures = run(oracle_defect::out_of_range, tolerance);
        CHECK(mentions(failures, "pair (0, 1): P = 1.3"));
        CHECK(mentions(failures, "pair (1, 0): P = -0.3"));
        CHECK(mentions(failures, "pair (0, 2): P = 2.1"));
        CHECK_FALSE(mentions(failures, "not 1"));
        CHECK_FALSE(mentions(failures, "identical calls"));
        CHECK_FALSE(mentions(failures, "pair (0, 0)"));
    }
    SECTION("P(a > b) + P(b > a) != 1") {
        const auto failures = run(oracle_defect::not_complementary, tolerance);
        CHECK(mentions(failures, "pair (0, 1): P(a > b) + P(b > a) = 1.2"));
        CHECK(mentions(failures, "pair (1, 2): P(a > b) + P(b > a) = 1.2"));
        CHECK_FALSE(mentions(failures, "pair (2, 1): P(a > b)"));  // each unordered pair once
        CHECK_FALSE(mentions(failures, "outside [0, 1]"));
        CHECK_FALSE(mentions(failures, "not 1/2"));
        CHECK_FALSE(mentions(failures, "pair (1, 1)"));
    }
    SECTION("P(a > a) != 1/2") {
        const auto failures = run(oracle_defect::self_not_half, tolerance);
        CHECK(mentions(failures, "pair (1, 1): P(a > a) = 0.69999999999999996, not 1/2"));
        CHECK_FALSE(mentions(failures, "pair (0, 1)"));  // distinct pairs are fine
        CHECK_FALSE(mentions(failures, "outside [0, 1]"));
    }
    SECTION("nondeterministic (a mutable call counter)") {
        const auto failures = run(oracle_defect::nondeterministic, tolerance);
        CHECK(failures.size() == responses.size() * responses.size());  // every pair flagged once
        CHECK(mentions(failures, "pair (0, 0): two identical calls gave"));
        CHECK_FALSE(mentions(failures, "not 1"));
        CHECK_FALSE(mentions(failures, "outside [0, 1]"));
    }
    SECTION("the tolerance applies to requirements 2 and 3: the drift fails a tight one") {
        const auto failures = run(oracle_defect::nondeterministic, 1e-12);
        CHECK(mentions(failures, "not 1/2"));
        CHECK(mentions(failures, "P(a > b) + P(b > a) ="));
    }
}

TEST_CASE("check_policy passes for tabular_policy and flags broken policies",
          "[concepts][policies]") {
    Eigen::VectorXd p(4);
    p << 0.1, 0.2, 0.0, 0.7;
    CHECK_THAT(rspo::check_policy(rspo::tabular_policy::from_probabilities(p), rspo::single_prompt{}),
               Catch::Matchers::IsEmpty());
    CHECK_THAT(rspo::check_policy(rspo::tabular_policy::uniform(5), rspo::single_prompt{}, 42),
               Catch::Matchers::IsEmpty());

    const auto self_seeded = rspo::check_policy(self_seeded_policy{}, rspo::single_prompt{});
    CHECK(mentions(self_seeded, "two engines with the same seed drew different responses"));

    const auto positive = rspo::check_policy(positive_log_prob_policy{}, rspo::single_prompt{});
    CHECK(mentions(positive, "log_prob(0) > 0"));
    CHECK(mentions(positive, "exp(log_prob(0)) differs from probabilities()"));
    CHECK_FALSE(mentions(positive, "log_prob(1) > 0"));
}
