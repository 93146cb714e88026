#pragma once
// Magnetic preference optimization (Wang et al. 2024): magnetic mirror descent whose magnet is reset
// to the current policy every `magnet_reset_every` steps. Each inner phase converges toward the
// regularized equilibrium around the magnet; the resets move it to the NE of the unregularized game.

#include <rspo/algorithms/rspo.hpp>

#include <cstddef>
#include <string>

namespace rspo {

struct mpo {
    /// The divergence toward the magnet; the magnet moves, so the target is the unregularized NE.
    using regularizer_type = reverse_kl;

    double eta = 1.0;                     ///< MMD step size η
    double tau = 1.0;                     ///< magnet strength τ > 0
    std::size_t magnet_reset_every = 100; ///< K: steps between magnet resets ρ_{k+1} ← π

    void validate(const char* function) const {
        check_positive(function, "eta", eta);
        check_positive(function, "tau", tau);
        if (magnet_reset_every == 0)
            throw domain_error(function, "magnet_reset_every", "magnet_reset_every = 0 must be >= 1");
    }

    std::string name() const { return "mpo"; }

    void step(const preference_game& game, tabular_iterate& it) const {
        mmd{eta, tau, {}}.step(game, it);
        if ((it.iteration + 1) % magnet_reset_every == 0) it.log_magnet = it.log_policy;
    }
};

static_assert(TabularAlgorithm<mpo>);

}  // namespace rspo
