#pragma once
// A validated probability vector over n responses, kept in log space (the tabular steps work there).

#include <rspo/core/check.hpp>
#include <rspo/core/log_space.hpp>
#include <rspo/core/random.hpp>
#include <rspo/oracles/preference_oracle.hpp>
#include <rspo/policies/policy.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <utility>

namespace rspo {

class tabular_policy {
public:
    using policy_category = policy_tag;
    using prompt_type = single_prompt;
    using response_type = std::size_t;

    /// From probabilities: entries ≥ 0 summing to 1 (within validation_tolerance::sum_to_one);
    /// anything else throws rspo::domain_error; it is not renormalized.
    static tabular_policy from_probabilities(const Eigen::VectorXd& p) {
        check_distribution("rspo::tabular_policy::from_probabilities", "p", p);
        return tabular_policy(log_normalize(log_of(p)));
    }
    /// softmax(logits); logits may be −∞ (masked responses) but not NaN or +∞, and not all −∞.
    static tabular_policy from_logits(const Eigen::VectorXd& logits) {
        constexpr const char* fn = "rspo::tabular_policy::from_logits";
        check_not_empty(fn, "logits", static_cast<std::size_t>(logits.size()));
        for (Eigen::Index i = 0; i < logits.size(); ++i)
            if (std::isnan(logits[i]) || logits[i] == std::numeric_limits<double>::infinity())
                throw domain_error(fn, "logits",
                                   detail::indexed("logits", static_cast<std::size_t>(i)) + " = " +
                                       detail::format_value(logits[i]) + " is not allowed");
        if (!std::isfinite(logits.maxCoeff()))
            throw domain_error(fn, "logits", "every entry of logits is -inf");
        return tabular_policy(log_normalize(logits));
    }
    static tabular_policy uniform(std::size_t n) {
        check_not_empty("rspo::tabular_policy::uniform", "n", n);
        return tabular_policy(
            Eigen::VectorXd::Constant(static_cast<Eigen::Index>(n), -std::log(static_cast<double>(n))));
    }

    [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(log_p_.size()); }
    [[nodiscard]] const Eigen::VectorXd& log_probabilities() const noexcept { return log_p_; }
    [[nodiscard]] Eigen::VectorXd probabilities() const { return exp_of(log_p_); }

    double log_prob(single_prompt, std::size_t y) const {
        check_index("rspo::tabular_policy::log_prob", "y", y, size());
        return log_p_[static_cast<Eigen::Index>(y)];
    }
    std::size_t sample(single_prompt, random_engine& rng) const {
        return sample_categorical(probabilities(), rng);
    }

private:
    explicit tabular_policy(Eigen::VectorXd log_p) : log_p_(std::move(log_p)) {}
    Eigen::VectorXd log_p_;
};

static_assert(TabularPolicy<tabular_policy>);

}  // namespace rspo
