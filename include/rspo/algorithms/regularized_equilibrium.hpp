#pragma once
// The symmetric Nash equilibrium π*_τ of the regularized game J_τ, found directly by Newton's method
// on its KKT system — independent of the self-play iterations that converge to it, so each checks
// the other (docs/math §1):
//     τ ∂R/∂π_i(π, μ) − (Pπ)_i + ν = 0  for all i,     Σ_i π_i = 1,
// solved in u = log π (interior equilibria: reverse or forward KL, and χ² where π*_τ > 0).

#include <rspo/core/check.hpp>
#include <rspo/core/log_space.hpp>
#include <rspo/games/preference_game.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Dense>

#include <cmath>
#include <cstddef>

namespace rspo {

struct equilibrium_result {
    Eigen::VectorXd policy = {};         ///< π*_τ
    double residual = 0.0;          ///< max-norm of the KKT residual at `policy`
    std::size_t iterations = 0;     ///< Newton steps taken
    bool converged = false;         ///< residual ≤ tolerance
};

template <Regularizer R>
equilibrium_result solve_regularized_equilibrium(const preference_game& game,
                                                 const Eigen::VectorXd& reference, double tau,
                                                 const R& regularizer, double tolerance = 1e-13,
                                                 std::size_t max_iterations = 200) {
    constexpr const char* fn = "rspo::solve_regularized_equilibrium";
    check_size(fn, "reference", static_cast<std::size_t>(reference.size()), game.size(), "the game");
    check_full_support(fn, "reference", reference);
    check_positive(fn, "tau", tau);
    check_positive(fn, "tolerance", tolerance);
    regularizer.validate(fn);

    const Eigen::MatrixXd& P = game.preferences();
    const Eigen::Index n = P.rows();
    const auto residual = [&](const Eigen::VectorXd& u, double nu) {
        const Eigen::VectorXd pi = exp_of(u);
        const Eigen::VectorXd q = P * pi;
        Eigen::VectorXd f(n + 1);
        for (Eigen::Index i = 0; i < n; ++i)
            f[i] = tau * regularizer.stationarity(u[i], reference[i]) - q[i] + nu;
        f[n] = pi.sum() - 1.0;
        return f;
    };

    Eigen::VectorXd u = reference.array().log();
    double nu = 0.0;
    {  // ν that best fits the stationarity rows at the start
        const Eigen::VectorXd f = residual(u, 0.0);
        nu = -f.head(n).mean();
    }
    Eigen::VectorXd f = residual(u, nu);
    equilibrium_result result;
    for (; result.iterations < max_iterations; ++result.iterations) {
        if (f.lpNorm<Eigen::Infinity>() <= tolerance) break;
        const Eigen::VectorXd pi = exp_of(u);
        Eigen::MatrixXd J = Eigen::MatrixXd::Zero(n + 1, n + 1);
        J.topLeftCorner(n, n) = -P * pi.asDiagonal();
        for (Eigen::Index i = 0; i < n; ++i) {
            J(i, i) += tau * regularizer.stationarity_slope(u[i], reference[i]);
            J(i, n) = 1.0;
            J(n, i) = pi[i];
        }
        const Eigen::VectorXd delta = J.fullPivLu().solve(-f);
        // Backtracking on the residual norm keeps the damped Newton iteration globally descending.
        const double norm = f.norm();
        double step = 1.0;
        Eigen::VectorXd u_next;
        double nu_next = nu;
        Eigen::VectorXd f_next;
        for (int halvings = 0; halvings < 60; ++halvings, step *= 0.5) {
            u_next = u + step * delta.head(n);
            nu_next = nu + step * delta[n];
            f_next = residual(u_next, nu_next);
            if (f_next.allFinite() && f_next.norm() < (1.0 - 1e-4 * step) * norm) break;
        }
        if (!f_next.allFinite() || !(f_next.norm() < norm)) break;  // no progress: stop
        u = u_next;
        nu = nu_next;
        f = f_next;
    }
    result.policy = exp_of(u);
    result.policy /= result.policy.sum();
    result.residual = f.lpNorm<Eigen::Infinity>();
    result.converged = result.residual <= tolerance;
    return result;
}

}  // namespace rspo
