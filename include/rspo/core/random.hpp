#pragma once
// Deterministic randomness. The standard distributions are implementation-defined, so draws are
// made here from the engine's raw bits: the same seed gives the same numbers with every compiler
// and standard library.

#include <rspo/core/check.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <random>

namespace rspo {

/// The engine used throughout rspo (64-bit Mersenne twister: fully specified by the standard).
using random_engine = std::mt19937_64;

/// Uniform double in [0, 1) from the top 53 bits of one engine draw.
inline double uniform01(random_engine& rng) {
    return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

/// splitmix64's finalizer: a fixed, platform-independent 64-bit mix, for deriving independent
/// seeds (streams) from a seed and indices.
constexpr std::uint64_t mix64(std::uint64_t h) noexcept {
    h += 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

/// Index drawn from a probability vector by inversion. Entries with probability 0 are never drawn.
inline std::size_t sample_categorical(const Eigen::VectorXd& probabilities, random_engine& rng) {
    const double u = uniform01(rng);
    double cumulative = 0.0;
    std::size_t last_positive = 0;
    for (Eigen::Index i = 0; i < probabilities.size(); ++i) {
        if (probabilities[i] <= 0.0) continue;
        cumulative += probabilities[i];
        last_positive = static_cast<std::size_t>(i);
        if (u < cumulative) return last_positive;
    }
    return last_positive;  // u landed in the round-off beyond the last partial sum
}

}  // namespace rspo
