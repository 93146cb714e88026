#pragma once
// Win rate of a model against a baseline from sampled judgments P(y ≻ y′ | x) (docs/math §6), with
// the standard error of the mean so that two win rates can be told apart or not.

#include <rspo/core/check.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

namespace rspo::eval {

struct win_rate_result {
    double value = 0.0;           ///< mean judgment, in [0, 1] (not a percentage)
    double standard_error = 0.0;  ///< sample std (n − 1) / √n; NaN for a single judgment
    std::size_t count = 0;        ///< number of judgments
};

/// Mean of the judgments P(y_i ≻ y′_i) ∈ [0, 1] (hard 0/1 labels or a judge's probabilities) and its
/// standard error. Every judgment is checked; none is clamped.
inline win_rate_result win_rate(std::span<const double> preferences) {
    constexpr const char* fn = "rspo::eval::win_rate";
    check_not_empty(fn, "preferences", preferences.size());
    for (std::size_t i = 0; i < preferences.size(); ++i)
        check_probability(fn, rspo::detail::indexed("preferences", i), preferences[i]);

    const auto n = static_cast<double>(preferences.size());
    double sum = 0.0;
    for (const double p : preferences) sum += p;
    const double mean = sum / n;
    if (preferences.size() == 1) return {mean, std::numeric_limits<double>::quiet_NaN(), 1};
    // Two passes: the one-pass Σp² − n·mean² cancels catastrophically when all p are close.
    double squares = 0.0;
    for (const double p : preferences) squares += (p - mean) * (p - mean);
    return {mean, std::sqrt(squares / (n - 1.0) / n), preferences.size()};
}

}  // namespace rspo::eval
