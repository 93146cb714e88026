#pragma once
// Argument checks shared by every public function. Each throws a typed rspo error whose message
// names the function, the argument and the offending value.

#include <rspo/core/error.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <span>
#include <string>

namespace rspo {

/// Tolerances used when validating probability inputs. Input that is off by more than round-off is
/// rejected, never renormalized.
struct validation_tolerance {
    static constexpr double sum_to_one = 1e-9;     ///< |Σπ − 1| allowed for a distribution
    static constexpr double complementary = 1e-9;  ///< |P_ij + P_ji − 1| allowed for preferences
};

namespace detail {

inline std::string format_value(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

/// Short form for names and tables (0.1, 1, 2.5e-05).
inline std::string format_weight(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

inline std::string indexed(const std::string& name, std::size_t i) {
    return name + "[" + std::to_string(i) + "]";
}

inline std::string indexed(const std::string& name, std::size_t i, std::size_t j) {
    return name + "(" + std::to_string(i) + ", " + std::to_string(j) + ")";
}

}  // namespace detail

inline void check_finite(const char* function, const std::string& argument, double value) {
    if (!std::isfinite(value))
        throw domain_error(function, argument,
                           argument + " = " + detail::format_value(value) + " is not finite");
}

inline void check_positive(const char* function, const std::string& argument, double value) {
    check_finite(function, argument, value);
    if (!(value > 0.0))
        throw domain_error(function, argument,
                           argument + " = " + detail::format_value(value) + " must be > 0");
}

inline void check_non_negative(const char* function, const std::string& argument, double value) {
    check_finite(function, argument, value);
    if (value < 0.0)
        throw domain_error(function, argument,
                           argument + " = " + detail::format_value(value) + " must be >= 0");
}

/// A probability in [0, 1] (a preference P(a ≻ b), a win-rate estimate).
inline void check_probability(const char* function, const std::string& argument, double value) {
    if (!(value >= 0.0 && value <= 1.0))  // also rejects NaN
        throw domain_error(function, argument,
                           argument + " = " + detail::format_value(value) +
                               " is not a probability in [0, 1]");
}

inline void check_size(const char* function, const std::string& argument, std::size_t size,
                       std::size_t expected, const std::string& expected_from) {
    if (size != expected)
        throw shape_error(function, argument,
                          argument + " has size " + std::to_string(size) + " but " +
                              expected_from + " has size " + std::to_string(expected));
}

inline void check_not_empty(const char* function, const std::string& argument, std::size_t size) {
    if (size == 0) throw shape_error(function, argument, argument + " is empty");
}

inline void check_index(const char* function, const std::string& argument, std::size_t index,
                        std::size_t size) {
    if (index >= size)
        throw index_error(function, argument,
                          argument + " = " + std::to_string(index) + " is outside [0, " +
                              std::to_string(size) + ")");
}

/// Every entry finite.
inline void check_all_finite(const char* function, const std::string& argument,
                             std::span<const double> values) {
    for (std::size_t i = 0; i < values.size(); ++i)
        if (!std::isfinite(values[i]))
            throw domain_error(function, argument,
                               detail::indexed(argument, i) + " = " +
                                   detail::format_value(values[i]) + " is not finite");
}

inline void check_all_finite(const char* function, const std::string& argument,
                             const Eigen::VectorXd& values) {
    check_all_finite(function, argument,
                     std::span<const double>(values.data(), static_cast<std::size_t>(values.size())));
}

/// A probability vector: non-empty, entries finite and >= 0, summing to 1 within
/// validation_tolerance::sum_to_one.
inline void check_distribution(const char* function, const std::string& argument,
                               const Eigen::VectorXd& p) {
    check_not_empty(function, argument, static_cast<std::size_t>(p.size()));
    double sum = 0.0;
    for (Eigen::Index i = 0; i < p.size(); ++i) {
        const double v = p[i];
        if (!std::isfinite(v) || v < 0.0)
            throw domain_error(function, argument,
                               detail::indexed(argument, static_cast<std::size_t>(i)) + " = " +
                                   detail::format_value(v) + " is not a probability");
        sum += v;
    }
    if (std::abs(sum - 1.0) > validation_tolerance::sum_to_one)
        throw domain_error(function, argument,
                           argument + " sums to " + detail::format_value(sum) +
                               ", not 1 (it is not renormalized for you)");
}

/// A probability vector with full support (every entry > 0): required of reference policies on
/// tabular problems, where reverse KL and χ² to a zero entry are infinite.
inline void check_full_support(const char* function, const std::string& argument,
                               const Eigen::VectorXd& p) {
    check_distribution(function, argument, p);
    for (Eigen::Index i = 0; i < p.size(); ++i)
        if (!(p[i] > 0.0))
            throw domain_error(function, argument,
                               detail::indexed(argument, static_cast<std::size_t>(i)) + " = " +
                                   detail::format_value(p[i]) +
                                   " must be > 0 (a reference policy needs full support)");
}

/// A preference matrix: square, entries in [0, 1], P + Pᵀ = 1 (so the diagonal is ½).
inline void check_preference_matrix(const char* function, const std::string& argument,
                                    const Eigen::MatrixXd& P) {
    if (P.rows() != P.cols())
        throw shape_error(function, argument,
                          argument + " is " + std::to_string(P.rows()) + "x" +
                              std::to_string(P.cols()) + ", not square");
    check_not_empty(function, argument, static_cast<std::size_t>(P.rows()));
    const auto n = static_cast<std::size_t>(P.rows());
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
            check_probability(function, detail::indexed(argument, i, j),
                              P(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)));
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = i; j < n; ++j) {
            const double pij = P(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
            const double pji = P(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(i));
            if (std::abs(pij + pji - 1.0) > validation_tolerance::complementary)
                throw domain_error(function, argument,
                                   detail::indexed(argument, i, j) + " + " +
                                       detail::indexed(argument, j, i) + " = " +
                                       detail::format_value(pij + pji) +
                                       ", but preferences must satisfy P + Pᵀ = 1");
        }
}

}  // namespace rspo
