#pragma once
// The one optimization every tabular step and best response reduces to (docs/math §4):
//
//     argmax_{π ∈ Δ}  ⟨π, s⟩ − α Σ_i π_i log π_i − β R(π, μ),      α, β ≥ 0.
//
// The proximal step of regularized self-play is s = η q + log π_t, α = 1, β = ητ; the best
// response of the regularized game is s = q, α = 0, β = τ. For separable R the stationarity
// condition per coordinate, in u = log π_i, is  α u + β R'_i(u) = s_i − ν,  increasing in u, so
// each coordinate is a monotone root and ν is found by bisection on Σπ = 1.

#include <rspo/core/log_space.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>

namespace rspo::detail {

inline constexpr double infinity = std::numeric_limits<double>::infinity();

/// Solves α u + β r.stationarity(u, μ_i) = target for u ∈ [−∞, +∞] (monotone in u). Returns −∞ when
/// the target is below the left-hand side for every finite u (π_i = 0), +∞ when above.
template <Regularizer R>
double solve_coordinate(double target, double alpha, double beta, const R& r, double mu_i) {
    const auto g = [&](double u) { return alpha * u + beta * r.stationarity(u, mu_i); };
    const auto slope = [&](double u) { return alpha + beta * r.stationarity_slope(u, mu_i); };
    double lo, hi;
    if (g(0.0) <= target) {
        lo = 0.0;
        hi = 1.0;
        while (g(hi) < target) {
            lo = hi;
            hi *= 2.0;
            if (hi > 2048.0) return infinity;  // π_i > e^2048: this ν is far too small
        }
    } else {
        hi = 0.0;
        lo = -1.0;
        while (g(lo) > target) {
            hi = lo;
            lo *= 2.0;
            if (lo < -1e9) return -infinity;  // π_i < e^-1e9 is 0 in any floating type
        }
    }
    double u = std::abs(g(lo) - target) < std::abs(g(hi) - target) ? lo : hi;
    for (int iter = 0; iter < 200; ++iter) {
        const double f = g(u) - target;
        if (f == 0.0) return u;
        (f > 0.0 ? hi : lo) = u;
        const double d = slope(u);
        double next = d > 0.0 ? u - f / d : 0.5 * (lo + hi);
        if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);  // Newton left the bracket
        if (std::abs(next - u) <= 4.0 * std::numeric_limits<double>::epsilon() * (1.0 + std::abs(u)))
            return next;
        u = next;
    }
    return u;
}

/// log of the maximizer above. Requires μ with full support, α + β > 0 unless R is log-linear.
template <Regularizer R>
Eigen::VectorXd regularized_argmax_log(const Eigen::VectorXd& s, double alpha, double beta,
                                       const R& r, const Eigen::VectorXd& mu) {
    const Eigen::Index n = s.size();
    if constexpr (LogLinearRegularizer<R>) {
        // α u + βκ (u − log μ + 1) = s − ν: closed form, then normalize.
        const double kappa = beta * r.log_linear_weight();
        if (alpha + kappa > 0.0) {
            const Eigen::VectorXd w =
                ((s.array() + kappa * mu.array().log()) / (alpha + kappa)).matrix();
            return log_normalize(w);
        }
        // Linear objective: a vertex at the first maximizer.
        Eigen::Index best = 0;
        s.maxCoeff(&best);
        Eigen::VectorXd out = Eigen::VectorXd::Constant(n, -infinity);
        out[best] = 0.0;
        return out;
    } else {
        Eigen::VectorXd u(n);
        // log Σ_i exp(u_i(ν)) − 0; decreasing in ν.
        const auto log_mass = [&](double nu) {
            for (Eigen::Index i = 0; i < n; ++i)
                u[i] = solve_coordinate(s[i] - nu, alpha, beta, r, mu[i]);
            return logsumexp(u);
        };
        // Bracket ν: the root has φ(lo) ≥ 0 ≥ φ(hi).
        double lo = s.maxCoeff(), hi = lo;
        double phi = log_mass(lo);
        for (double step = 1.0; phi < 0.0; step *= 2.0) phi = log_mass(lo -= step);
        phi = log_mass(hi);
        for (double step = 1.0; phi > 0.0; step *= 2.0) phi = log_mass(hi += step);
        double nu = 0.5 * (lo + hi);
        for (int iter = 0; iter < 300; ++iter) {
            phi = log_mass(nu);
            if (phi == 0.0) break;
            (phi > 0.0 ? lo : hi) = nu;
            // φ'(ν) = −Σ π_i / g'(u_i) / Σ π_i (the implicit derivative du_i/dν = −1/g'(u_i)).
            double dphi = 0.0, mass = 0.0;
            for (Eigen::Index i = 0; i < n; ++i) {
                if (!std::isfinite(u[i])) continue;
                const double p = std::exp(u[i]);
                mass += p;
                dphi -= p / (alpha + beta * r.stationarity_slope(u[i], mu[i]));
            }
            double next = (mass > 0.0 && dphi < 0.0 && std::isfinite(phi)) ? nu - phi / (dphi / mass)
                                                                            : 0.5 * (lo + hi);
            if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
            if (next == nu || hi - lo <= 4.0 * std::numeric_limits<double>::epsilon() *
                                             (1.0 + std::abs(nu)))
                break;
            nu = next;
        }
        log_mass(nu);
        return log_normalize(u);  // removes the last ~1e-16 of Σπ − 1
    }
}

}  // namespace rspo::detail
