#pragma once
// Length-controlled win rate (AlpacaEval 2; Dubois et al. 2024, arXiv 2404.04475; docs/math §6):
// a logistic GLM separates how much of a model's win rate over a baseline comes from answering
// longer, then predicts the win rate at equal length.
//
// Each row i is one judgment: the prompt x_i, the preference p_i ∈ [0, 1] of the model's response
// over the baseline's (a 0/1 label or a judge's probability: the binomial deviance takes fractional
// targets) and the length difference Δ_i = len(model) − len(baseline) (tokens here; AlpacaEval uses
// characters). The fitted model is
//
//     logit P_i = θ + φ·tanh(Δ_i / s) + u_{x_i},        s = sample std of Δ (tanh term 0 if s = 0),
//
// minimizing Σ_i [softplus(η_i) − p_i η_i] + (λ/2) Σ_x u_x² + (λ₀/2)(θ² + φ²), and
//
//     LC = 100 · mean_x σ(θ + u_x)        (the prediction at Δ = 0, each prompt weighted equally).
//
// Differences from AlpacaEval, on purpose: AlpacaEval's instruction difficulty γ_x is fitted once on
// many models and enters as ψ·γ_x with an L1 penalty and cross-validation; here u_x is a free
// per-prompt offset with an L2 penalty, fitted on the given rows alone, so the numbers differ
// slightly from the leaderboard's. Because θ is (almost) unpenalized, the optimality conditions give
// Σ_x u_x = (λ₀/λ)·θ ≈ 0: the penalty is what separates θ from the mean prompt offset.
//
// Properties (tested): LC = 50 when every p_i = ½ (the optimum is then θ = φ = u = 0), on
// mirror-symmetric data, and by construction with lc_options::model_is_baseline; LC(a, b) + LC(b, a) = 100 on mirrored data (p → 1 − p, Δ → −Δ),
// since the penalty is even and the optimum maps to (−θ, φ, −u); preferences that depend only on Δ
// give LC ≈ 50 whatever the raw win rate.

#include <rspo/core/check.hpp>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace rspo::eval {

struct lc_options {
    /// λ: weight of (λ/2) Σ_x u_x², i.e. a N(0, 1/λ) prior on each prompt's logit offset. It is an
    /// absolute weight on the summed deviance, not scaled by the number of rows, so prompts with
    /// many judgments are barely shrunk; with one judgment per prompt (AlpacaEval's layout) the
    /// offsets are identified only through it. 1 = a unit-scale prior on the logit.
    double prompt_penalty = 1.0;
    /// λ₀ on θ and φ: negligible on ordinary data, but keeps the optimum finite when length
    /// separates the labels perfectly (φ → ∞ otherwise). May be 0 (then such data does not converge).
    double coefficient_penalty = 1e-6;
    /// LC(m, m) = 50 by construction: AlpacaEval skips the fit when the model is the baseline.
    /// The rows are still validated and raw_win_rate is still reported.
    bool model_is_baseline = false;
    std::size_t max_iterations = 100;  ///< Newton steps
    /// Stop after a full Newton step with max |step| ≤ tolerance · (1 + max |parameter|), or once
    /// the decrease a step promises is below the round-off of the objective. Newton converges
    /// quadratically, so the parameters are then as accurate as the data's conditioning allows.
    double tolerance = 1e-10;
};

struct lc_result {
    double lc_win_rate = 0.0;   ///< 100 · mean_x σ(θ + u_x), in percent
    double raw_win_rate = 0.0;  ///< 100 · mean_i p_i, in percent (each row weighted equally)
    double theta = 0.0;         ///< θ: the model's logit advantage at equal length, average prompt
    double phi = 0.0;           ///< φ: coefficient of tanh(Δ / s); 0 when s = 0
    /// Model-based standard errors of θ and φ: √ of the diagonal of the inverse penalized Hessian
    /// (observed information) at the optimum. θ's includes the prompt-to-prompt spread that the
    /// prior on u stands for (it is at least about 1/√(λ · prompts)), since θ is the logit on the
    /// average prompt, not on these prompts. φ's is NaN when s = 0 (φ is not fitted). Both are 0
    /// with model_is_baseline.
    double theta_standard_error = 0.0;
    double phi_standard_error = 0.0;
    double length_scale = 0.0;               ///< s = sample std of Δ (0 for a single row)
    std::vector<std::size_t> prompts = {};   ///< the distinct prompt ids, ascending
    std::vector<double> prompt_terms = {};   ///< u_x, aligned with prompts
    std::size_t iterations = 0;              ///< Newton steps taken
    bool converged = false;  ///< false: the step criterion was not met in max_iterations, or the
                             ///< line search or a solve failed; the result holds the last iterate
};

namespace detail {

/// log(1 + e^z) without overflow.
inline double softplus(double z) {
    return z > 0.0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

/// σ(z) without overflow, accurate in both tails.
inline double logistic(double z) {
    if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
    const double e = std::exp(z);
    return e / (1.0 + e);
}

/// The rows in the form the fit uses: a dense prompt index per row and the length feature.
struct lc_rows {
    std::vector<std::size_t> group;  ///< dense index into the sorted distinct prompt ids
    std::vector<double> feature;     ///< tanh(Δ_i / s), all 0 when s = 0
    std::span<const double> target;  ///< p_i
    std::size_t prompt_count = 0;
    bool has_length = false;  ///< s > 0: φ is fitted
};

struct lc_parameters {
    double theta = 0.0;
    double phi = 0.0;
    std::vector<double> u;
};

/// Gradient and Hessian of the penalized objective, kept in the Hessian's arrowhead form: a 2×2
/// block for (θ, φ), a diagonal for u (each row touches one u_x) and the 2×m coupling.
struct lc_derivatives {
    Eigen::Vector2d g_a = Eigen::Vector2d::Zero();
    Eigen::Matrix2d h_aa = Eigen::Matrix2d::Zero();
    std::vector<double> g_u, h_uu, coupling_theta, coupling_phi;
};

inline double lc_objective(const lc_rows& rows, const lc_parameters& x, double lambda,
                           double lambda0) {
    double f = 0.0;
    for (std::size_t i = 0; i < rows.group.size(); ++i) {
        const double eta = x.theta + x.phi * rows.feature[i] + x.u[rows.group[i]];
        f += softplus(eta) - rows.target[i] * eta;  // cross-entropy to target p_i, up to a constant
    }
    double uu = 0.0;
    for (const double v : x.u) uu += v * v;
    return f + 0.5 * lambda * uu + 0.5 * lambda0 * (x.theta * x.theta + x.phi * x.phi);
}

inline lc_derivatives lc_derivatives_at(const lc_rows& rows, const lc_parameters& x, double lambda,
                                        double lambda0) {
    lc_derivatives d;
    const std::size_t m = rows.prompt_count;
    d.g_u.assign(m, 0.0);
    d.h_uu.assign(m, 0.0);
    d.coupling_theta.assign(m, 0.0);
    d.coupling_phi.assign(m, 0.0);
    for (std::size_t i = 0; i < rows.group.size(); ++i) {
        const std::size_t k = rows.group[i];
        const double t = rows.feature[i];
        const double eta = x.theta + x.phi * t + x.u[k];
        const double r = logistic(eta) - rows.target[i];
        // σ(η)σ(−η) rather than σ(1 − σ): keeps the weight's relative accuracy in the tails.
        const double w = logistic(eta) * logistic(-eta);
        d.g_a[0] += r;
        d.g_a[1] += r * t;
        d.h_aa(0, 0) += w;
        d.h_aa(0, 1) += w * t;
        d.h_aa(1, 1) += w * t * t;
        d.g_u[k] += r;
        d.h_uu[k] += w;
        d.coupling_theta[k] += w;
        d.coupling_phi[k] += w * t;
    }
    d.g_a[0] += lambda0 * x.theta;
    d.g_a[1] += lambda0 * x.phi;
    d.h_aa(0, 0) += lambda0;
    d.h_aa(1, 1) += lambda0;
    d.h_aa(1, 0) = d.h_aa(0, 1);
    for (std::size_t k = 0; k < m; ++k) {
        d.g_u[k] += lambda * x.u[k];
        d.h_uu[k] += lambda;
    }
    if (!rows.has_length) {  // φ is fixed at 0: drop its row and column
        d.g_a[1] = 0.0;
        d.h_aa(0, 1) = d.h_aa(1, 0) = 0.0;
        d.h_aa(1, 1) = 1.0;
        std::fill(d.coupling_phi.begin(), d.coupling_phi.end(), 0.0);
    }
    return d;
}

/// Schur complement of the u block, S = H_aa − C D⁻¹ Cᵀ: the inverse of the (θ, φ) block of H⁻¹.
inline Eigen::Matrix2d lc_schur(const lc_derivatives& d) {
    Eigen::Matrix2d s = d.h_aa;
    for (std::size_t k = 0; k < d.h_uu.size(); ++k) {
        const Eigen::Vector2d c(d.coupling_theta[k], d.coupling_phi[k]);
        s -= c * c.transpose() / d.h_uu[k];
    }
    return s;
}

/// Newton step solving H·step = −g through the Schur complement: O(rows + prompts), any number of
/// prompts. Returns false if S is not numerically positive definite.
inline bool lc_newton_step(const lc_derivatives& d, lc_parameters& step) {
    const Eigen::Matrix2d s = lc_schur(d);
    Eigen::Vector2d rhs = -d.g_a;
    for (std::size_t k = 0; k < d.h_uu.size(); ++k)
        rhs += Eigen::Vector2d(d.coupling_theta[k], d.coupling_phi[k]) * (d.g_u[k] / d.h_uu[k]);
    const Eigen::LLT<Eigen::Matrix2d> llt(s);
    if (llt.info() != Eigen::Success) return false;
    const Eigen::Vector2d da = llt.solve(rhs);
    if (!da.allFinite()) return false;
    step.theta = da[0];
    step.phi = da[1];
    step.u.resize(d.h_uu.size());
    for (std::size_t k = 0; k < d.h_uu.size(); ++k)
        step.u[k] = (-d.g_u[k] - d.coupling_theta[k] * da[0] - d.coupling_phi[k] * da[1]) / d.h_uu[k];
    return true;
}

inline double max_abs(const lc_parameters& x) {
    double m = std::max(std::abs(x.theta), std::abs(x.phi));
    for (const double v : x.u) m = std::max(m, std::abs(v));
    return m;
}

/// x + α·step
inline lc_parameters moved(const lc_parameters& x, const lc_parameters& step, double alpha) {
    lc_parameters y = x;
    y.theta += alpha * step.theta;
    y.phi += alpha * step.phi;
    for (std::size_t k = 0; k < y.u.size(); ++k) y.u[k] += alpha * step.u[k];
    return y;
}

}  // namespace detail

/// Length-controlled win rate of a model over a baseline from per-row (prompt, preference, length
/// difference); see the top of this header for the model. Rows of one prompt share u_x; prompt ids
/// need not be dense. Fitted by damped Newton (Armijo backtracking) to round-off; the result
/// carries the status instead of throwing on a failed fit.
inline lc_result length_controlled_win_rate(std::span<const std::size_t> prompts,
                                            std::span<const double> preferences,
                                            std::span<const double> length_differences,
                                            const lc_options& options = {}) {
    constexpr const char* fn = "rspo::eval::length_controlled_win_rate";
    check_not_empty(fn, "preferences", preferences.size());
    check_size(fn, "prompts", prompts.size(), preferences.size(), "preferences");
    check_size(fn, "length_differences", length_differences.size(), preferences.size(),
               "preferences");
    for (std::size_t i = 0; i < preferences.size(); ++i)
        check_probability(fn, rspo::detail::indexed("preferences", i), preferences[i]);
    check_all_finite(fn, "length_differences", length_differences);
    check_positive(fn, "options.prompt_penalty", options.prompt_penalty);
    check_non_negative(fn, "options.coefficient_penalty", options.coefficient_penalty);
    check_positive(fn, "options.tolerance", options.tolerance);
    if (options.max_iterations == 0)
        throw domain_error(fn, "options.max_iterations", "options.max_iterations = 0 must be >= 1");

    const std::size_t n = preferences.size();
    const auto nd = static_cast<double>(n);
    lc_result result;

    double p_sum = 0.0;
    for (const double p : preferences) p_sum += p;
    result.raw_win_rate = 100.0 * p_sum / nd;

    // Sample std, two passes (the one-pass form cancels when Δ is nearly constant).
    if (n > 1) {
        double mean = 0.0;
        for (const double v : length_differences) mean += v;
        mean /= nd;
        double ss = 0.0;
        for (const double v : length_differences) ss += (v - mean) * (v - mean);
        result.length_scale = std::sqrt(ss / (nd - 1.0));
    }

    result.prompts.assign(prompts.begin(), prompts.end());
    std::sort(result.prompts.begin(), result.prompts.end());
    result.prompts.erase(std::unique(result.prompts.begin(), result.prompts.end()),
                         result.prompts.end());
    const std::size_t m = result.prompts.size();

    if (options.model_is_baseline) {
        result.lc_win_rate = 50.0;
        result.prompt_terms.assign(m, 0.0);
        result.converged = true;
        return result;
    }

    detail::lc_rows rows;
    rows.prompt_count = m;
    rows.target = preferences;
    rows.has_length = result.length_scale > 0.0;
    rows.group.resize(n);
    rows.feature.assign(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        rows.group[i] = static_cast<std::size_t>(
            std::lower_bound(result.prompts.begin(), result.prompts.end(), prompts[i]) -
            result.prompts.begin());
        if (rows.has_length) rows.feature[i] = std::tanh(length_differences[i] / result.length_scale);
    }

    const double lambda = options.prompt_penalty;
    const double lambda0 = options.coefficient_penalty;
    // Start at 0: the mirrored data then starts at the mirrored point too.
    detail::lc_parameters x{0.0, 0.0, std::vector<double>(m, 0.0)};
    detail::lc_parameters step;
    constexpr double armijo = 1e-4;
    constexpr int max_halvings = 60;
    const double eps = std::numeric_limits<double>::epsilon();

    for (std::size_t iter = 1; iter <= options.max_iterations; ++iter) {
        const detail::lc_derivatives d = detail::lc_derivatives_at(rows, x, lambda, lambda0);
        if (!detail::lc_newton_step(d, step)) break;
        result.iterations = iter;
        double slope = d.g_a[0] * step.theta + d.g_a[1] * step.phi;  // gᵀstep = −(Newton decrement)²
        for (std::size_t k = 0; k < m; ++k) slope += d.g_u[k] * step.u[k];
        const double f0 = detail::lc_objective(rows, x, lambda, lambda0);
        // Done when the step is negligible, or when the decrease it promises (−slope/2) is below
        // the round-off of f: then no line search can measure progress (this happens on
        // ill-conditioned fits, e.g. nearly separable data), and the full step is the best
        // estimate there is. Either way we are inside Newton's quadratic region: take it whole.
        if (detail::max_abs(step) <= options.tolerance * (1.0 + detail::max_abs(x)) ||
            -slope <= 16.0 * eps * std::abs(f0)) {
            x = detail::moved(x, step, 1.0);
            result.converged = true;
            break;
        }
        // The slack of a few ulps of f keeps round-off from rejecting a step that is fine.
        const double slack = 8.0 * eps * std::abs(f0);
        bool accepted = false;
        double alpha = 1.0;
        for (int h = 0; h < max_halvings && !accepted; ++h, alpha *= 0.5) {
            detail::lc_parameters y = detail::moved(x, step, alpha);
            const double f = detail::lc_objective(rows, y, lambda, lambda0);
            if (std::isfinite(f) && f <= f0 + armijo * alpha * slope + slack) {
                x = std::move(y);
                accepted = true;
            }
        }
        if (!accepted) break;
    }

    result.theta = x.theta;
    result.phi = x.phi;
    result.prompt_terms = x.u;
    double lc = 0.0;
    for (const double u : x.u) lc += detail::logistic(x.theta + u);
    result.lc_win_rate = 100.0 * lc / static_cast<double>(m);

    const detail::lc_derivatives d = detail::lc_derivatives_at(rows, x, lambda, lambda0);
    const Eigen::Matrix2d s = detail::lc_schur(d);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (rows.has_length) {
        // (H⁻¹)_aa = S⁻¹: the (θ, φ) block of the inverse Hessian needs only the Schur complement.
        const Eigen::LLT<Eigen::Matrix2d> llt(s);
        const Eigen::Matrix2d cov = llt.solve(Eigen::Matrix2d::Identity());
        const bool ok = llt.info() == Eigen::Success;
        result.theta_standard_error = ok && cov(0, 0) > 0.0 ? std::sqrt(cov(0, 0)) : nan;
        result.phi_standard_error = ok && cov(1, 1) > 0.0 ? std::sqrt(cov(1, 1)) : nan;
    } else {
        result.theta_standard_error = s(0, 0) > 0.0 ? std::sqrt(1.0 / s(0, 0)) : nan;
        result.phi_standard_error = nan;
    }
    return result;
}

}  // namespace rspo::eval
