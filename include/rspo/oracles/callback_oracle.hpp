#pragma once
// Wraps a user's judge — any callable (x, a, b) -> P(a ≻ b | x) — as a PreferenceOracle. Every
// answer is checked to be a probability: a judge that returns 1.3 or NaN is an error, not clamped.

#include <rspo/core/check.hpp>
#include <rspo/oracles/preference_oracle.hpp>

#include <concepts>
#include <utility>

namespace rspo {

template <class Prompt, class Response, class Judge>
    requires std::invocable<const Judge&, const Prompt&, const Response&, const Response&>
class callback_oracle {
public:
    using oracle_category = preference_oracle_tag;
    using prompt_type = Prompt;
    using response_type = Response;

    explicit callback_oracle(Judge judge) : judge_(std::move(judge)) {}

    double prefer(const Prompt& x, const Response& a, const Response& b) const {
        const double p = static_cast<double>(judge_(x, a, b));
        check_probability("rspo::callback_oracle::prefer", "judge(x, a, b)", p);
        return p;
    }

private:
    Judge judge_;
};

template <class Prompt, class Response, class Judge>
callback_oracle<Prompt, Response, Judge> make_callback_oracle(Judge judge) {
    return callback_oracle<Prompt, Response, Judge>(std::move(judge));
}

}  // namespace rspo
