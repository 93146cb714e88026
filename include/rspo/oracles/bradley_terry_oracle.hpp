#pragma once
// A reward-model oracle: P(a ≻ b | x) = σ(scale · (s(x, a) − s(x, b))) for a user score function.
// This is how the published SPPO/RSPO pipeline turns a ranker's scores into preferences.

#include <rspo/core/check.hpp>
#include <rspo/oracles/preference_oracle.hpp>

#include <cmath>
#include <concepts>
#include <utility>

namespace rspo {

template <class Prompt, class Response, class Score>
    requires std::invocable<const Score&, const Prompt&, const Response&>
class bradley_terry_oracle {
public:
    using oracle_category = preference_oracle_tag;
    using prompt_type = Prompt;
    using response_type = Response;

    explicit bradley_terry_oracle(Score score, double scale = 1.0)
        : score_(std::move(score)), scale_(scale) {
        check_positive("rspo::bradley_terry_oracle", "scale", scale);
    }

    double prefer(const Prompt& x, const Response& a, const Response& b) const {
        const double sa = static_cast<double>(score_(x, a));
        const double sb = static_cast<double>(score_(x, b));
        check_finite("rspo::bradley_terry_oracle::prefer", "score(x, a)", sa);
        check_finite("rspo::bradley_terry_oracle::prefer", "score(x, b)", sb);
        // σ(z) written so that it is exactly 1 − σ(−z): complementarity holds bit for bit.
        const double z = scale_ * (sa - sb);
        return z >= 0.0 ? 1.0 / (1.0 + std::exp(-z)) : 1.0 - 1.0 / (1.0 + std::exp(z));
    }

private:
    Score score_;
    double scale_;
};

/// Deduces the score type: make_bradley_terry_oracle<std::string, std::string>(score_fn).
template <class Prompt, class Response, class Score>
bradley_terry_oracle<Prompt, Response, Score> make_bradley_terry_oracle(Score score,
                                                                         double scale = 1.0) {
    return bradley_terry_oracle<Prompt, Response, Score>(std::move(score), scale);
}

}  // namespace rspo
