#pragma once
// INPO (Zhang et al. 2024): a pairwise square loss on (y_w, y_l) ∼ π_t with no win-rate estimate,
//     h = log π_θ(y_w)/π_θ(y_l) − ητ log μ(y_w)/μ(y_l) − (1−ητ) log π_t(y_w)/π_t(y_l),
//     L = E[(h − η/2)²],
// whose population minimizer, when the pair's order is drawn from the preference
// (rspo::draw_ordered_pair), is the exact step
//     log π_{t+1} = (1−ητ) log π_t + ητ log μ + η P π_t − log Z                (docs/math §4),
// i.e. the MMD step with step size η/(1−ητ); equivalently MMD with η is INPO with η/(1+ητ).

#include <rspo/algorithms/rspo.hpp>
#include <rspo/algorithms/tabular_algorithm.hpp>
#include <rspo/core/check.hpp>
#include <rspo/regularizers/reverse_kl.hpp>
#include <rspo/core/log_space.hpp>

#include <Eigen/Core>

#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace rspo {

/// Per-pair inputs of the INPO loss (y_w preferred to y_l, ordered by a draw from P).
struct inpo_pair_batch {
    std::span<const double> winner_log_pi_theta = {};
    std::span<const double> loser_log_pi_theta = {};
    std::span<const double> winner_log_pi_t = {};
    std::span<const double> loser_log_pi_t = {};
    std::span<const double> winner_log_mu = {};
    std::span<const double> loser_log_mu = {};
};

/// Loss and derivatives with respect to each pair's log π_θ(y_w) and log π_θ(y_l).
struct pair_loss {
    double value = 0.0;
    std::vector<double> d_winner_log_pi_theta = {};
    std::vector<double> d_loser_log_pi_theta = {};
};

struct inpo {
    /// The divergence this method regularizes with (its π*_τ is that of τ·KL(π‖μ)).
    using regularizer_type = reverse_kl;

    double eta = 1.0;  ///< step size η
    double tau = 0.0;  ///< regularization strength τ ≥ 0, with ητ ≤ 1

    void validate(const char* function) const {
        check_positive(function, "eta", eta);
        check_non_negative(function, "tau", tau);
        if (eta * tau > 1.0)
            throw domain_error(function, "tau",
                               "eta * tau = " + detail::format_value(eta * tau) + " must be <= 1");
    }

    std::string name() const { return "inpo"; }

    void step(const preference_game& game, tabular_iterate& it) const {
        const double m = eta * tau;
        const Eigen::VectorXd q = game.preferences() * exp_of(it.log_policy);
        Eigen::VectorXd w = m * it.log_magnet + eta * q;
        if (m < 1.0) w += (1.0 - m) * it.log_policy;  // skip 0·(−∞)
        it.log_policy = log_normalize(w);
    }

    /// L = (1/M) Σ_m (h_m − η/2)², derivatives ±2(h_m − η/2)/M. Inputs checked: equal sizes,
    /// finite log-probabilities ≤ 0.
    pair_loss loss(const inpo_pair_batch& batch) const {
        constexpr const char* fn = "rspo::inpo::loss";
        validate(fn);
        const std::size_t m = batch.winner_log_pi_theta.size();
        check_not_empty(fn, "winner_log_pi_theta", m);
        const std::span<const double> inputs[] = {batch.winner_log_pi_theta, batch.loser_log_pi_theta,
                                                  batch.winner_log_pi_t,     batch.loser_log_pi_t,
                                                  batch.winner_log_mu,       batch.loser_log_mu};
        const char* names[] = {"winner_log_pi_theta", "loser_log_pi_theta", "winner_log_pi_t",
                               "loser_log_pi_t",      "winner_log_mu",      "loser_log_mu"};
        for (std::size_t a = 0; a < 6; ++a) {
            check_size(fn, names[a], inputs[a].size(), m, "winner_log_pi_theta");
            for (std::size_t i = 0; i < m; ++i)
                if (!(std::isfinite(inputs[a][i]) && inputs[a][i] <= 0.0))
                    throw domain_error(fn, names[a],
                                       detail::indexed(names[a], i) + " = " +
                                           detail::format_value(inputs[a][i]) +
                                           " is not a finite log-probability (<= 0)");
        }
        const double mix = eta * tau;
        pair_loss out;
        out.d_winner_log_pi_theta.resize(m);
        out.d_loser_log_pi_theta.resize(m);
        const double inv_m = 1.0 / static_cast<double>(m);
        for (std::size_t i = 0; i < m; ++i) {
            const double h = (batch.winner_log_pi_theta[i] - batch.loser_log_pi_theta[i]) -
                             mix * (batch.winner_log_mu[i] - batch.loser_log_mu[i]) -
                             (1.0 - mix) * (batch.winner_log_pi_t[i] - batch.loser_log_pi_t[i]);
            const double r = h - 0.5 * eta;
            out.value += inv_m * r * r;
            out.d_winner_log_pi_theta[i] = inv_m * 2.0 * r;
            out.d_loser_log_pi_theta[i] = -inv_m * 2.0 * r;
        }
        return out;
    }
};

static_assert(TabularAlgorithm<inpo>);

}  // namespace rspo
