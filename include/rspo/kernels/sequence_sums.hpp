#pragma once
// Sequence values from per-token values: log π(y|x) = Σ_t log π(y_t | x, y_<t) over the response
// positions of each sequence (prompt masked), and the same for token-level KLs (docs/math §5).
// Tokens are laid out [B, T] row-major; sequence b's response is [offset_b, offset_b + length_b).

#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rspo::kernels {

namespace detail {
/// Names the caller's own arguments: `tokens_name` is the [B, T] buffer, `per_sequence_name` the [B] one.
inline void check_sequences(const char* fn, const char* tokens_name, std::size_t tokens,
                            const char* per_sequence_name, std::size_t per_sequence, std::size_t seq_len,
                            std::span<const std::int64_t> offsets, std::span<const std::int64_t> lengths) {
    check_size(fn, "lengths", lengths.size(), offsets.size(), "offsets");
    check_size(fn, per_sequence_name, per_sequence, offsets.size(), "offsets");
    check_size(fn, tokens_name, tokens, offsets.size() * seq_len, "offsets.size() * seq_len");
    for (std::size_t b = 0; b < offsets.size(); ++b) {
        std::string at = "[";  // appends, not operator+ chains: g++ 12 warns falsely (-Wrestrict)
        at += std::to_string(b);
        at += ']';
        if (lengths[b] <= 0)
            throw domain_error(fn, "lengths",
                               "lengths" + at + " = " + std::to_string(lengths[b]) +
                                   ": a sequence with no response token has no log-probability");
        // Compare without forming offset + length, which could overflow.
        const auto offset = offsets[b];
        const auto length = static_cast<std::uint64_t>(lengths[b]);
        if (offset < 0 || static_cast<std::uint64_t>(offset) > seq_len ||
            length > seq_len - static_cast<std::uint64_t>(offset))
            throw index_error(fn, "offsets",
                              "offsets" + at + " = " + std::to_string(offset) + " with lengths" + at + " = " +
                                  std::to_string(length) + " is outside [0, " + std::to_string(seq_len) + ")");
    }
}
}  // namespace detail

/// out[b] = Σ_{t ∈ response of b} per_token[b·seq_len + t], accumulated in double.
inline void sequence_sums(std::span<const float> per_token, std::size_t seq_len,
                          std::span<const std::int64_t> offsets, std::span<const std::int64_t> lengths,
                          std::span<float> out) {
    detail::check_sequences("rspo::kernels::sequence_sums", "per_token", per_token.size(), "out", out.size(),
                            seq_len, offsets, lengths);
    for (std::size_t b = 0; b < offsets.size(); ++b) {
        double s = 0.0;
        const auto begin = b * seq_len + static_cast<std::size_t>(offsets[b]);
        for (std::size_t t = 0; t < static_cast<std::size_t>(lengths[b]); ++t) s += per_token[begin + t];
        out[b] = static_cast<float>(s);
    }
}

/// The adjoint: grad_per_token[b·seq_len + t] = grad[b] on b's response positions, 0 elsewhere.
inline void sequence_sums_backward(std::span<const float> grad, std::size_t seq_len,
                                   std::span<const std::int64_t> offsets,
                                   std::span<const std::int64_t> lengths,
                                   std::span<float> grad_per_token) {
    detail::check_sequences("rspo::kernels::sequence_sums_backward", "grad_per_token", grad_per_token.size(),
                            "grad", grad.size(), seq_len, offsets, lengths);
    for (std::size_t b = 0; b < offsets.size(); ++b)
        for (std::size_t t = 0; t < seq_len; ++t) {
            const auto o = static_cast<std::size_t>(offsets[b]);
            const bool response = t >= o && t < o + static_cast<std::size_t>(lengths[b]);
            grad_per_token[b * seq_len + t] = response ? grad[b] : 0.0f;
        }
}

/// The row mask for the token kernels that selects exactly the response positions.
inline void response_row_mask(std::size_t seq_len, std::span<const std::int64_t> offsets,
                              std::span<const std::int64_t> lengths, std::span<std::uint8_t> mask) {
    detail::check_sequences("rspo::kernels::response_row_mask", "mask", mask.size(), "offsets",
                            offsets.size(), seq_len, offsets, lengths);
    for (std::size_t b = 0; b < offsets.size(); ++b)
        for (std::size_t t = 0; t < seq_len; ++t) {
            const auto o = static_cast<std::size_t>(offsets[b]);
            mask[b * seq_len + t] = (t >= o && t < o + static_cast<std::size_t>(lengths[b])) ? 1 : 0;
        }
}

}  // namespace rspo::kernels
