#pragma once
// Numerics on log-probability vectors: every tabular step works in log space and normalizes at the
// end, so that probabilities down to exp(-700) keep full relative precision.

#include <Eigen/Core>

#include <cmath>
#include <limits>

namespace rspo {

/// exp of a log-probability vector, elementwise with std::exp. Eigen's vectorized exp clamps its
/// argument to about −709, so it maps −∞ to 5e-309 instead of 0: a masked response would get mass.
inline Eigen::VectorXd exp_of(const Eigen::VectorXd& log_p) {
    Eigen::VectorXd out(log_p.size());
    for (Eigen::Index i = 0; i < log_p.size(); ++i) out[i] = std::exp(log_p[i]);
    return out;
}

/// log Σ exp(x_i), exact for -inf entries; -inf for an all -inf vector.
inline double logsumexp(const Eigen::VectorXd& x) {
    const double m = x.size() ? x.maxCoeff() : -std::numeric_limits<double>::infinity();
    if (!std::isfinite(m)) return m;
    double s = 0.0;
    for (Eigen::Index i = 0; i < x.size(); ++i) s += std::exp(x[i] - m);
    return m + std::log(s);
}

/// Shift a log-weight vector so that it is a log-probability vector.
inline Eigen::VectorXd log_normalize(const Eigen::VectorXd& log_weights) {
    return log_weights.array() - logsumexp(log_weights);
}

inline Eigen::VectorXd softmax(const Eigen::VectorXd& logits) {
    return exp_of(log_normalize(logits));
}

/// log of a probability vector, with log 0 = -inf.
inline Eigen::VectorXd log_of(const Eigen::VectorXd& p) {
    Eigen::VectorXd out(p.size());
    for (Eigen::Index i = 0; i < p.size(); ++i)
        out[i] = p[i] > 0.0 ? std::log(p[i]) : -std::numeric_limits<double>::infinity();
    return out;
}

namespace detail {
/// KL(p‖q) = Σ p_i log(p_i / q_i) with 0 log 0 = 0; +inf when p_i > 0 = q_i. Unchecked: the public,
/// checked form is rspo::kl_divergence. The sum can round below zero only by round-off, which is
/// clamped so that KL ≥ 0 holds exactly.
inline double kl_unchecked(const Eigen::VectorXd& p, const Eigen::VectorXd& q) {
    double s = 0.0;
    for (Eigen::Index i = 0; i < p.size(); ++i) {
        if (p[i] <= 0.0) continue;
        if (q[i] <= 0.0) return std::numeric_limits<double>::infinity();
        s += p[i] * std::log(p[i] / q[i]);
    }
    return s > 0.0 ? s : 0.0;
}
}  // namespace detail

}  // namespace rspo
