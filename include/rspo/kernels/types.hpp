#pragma once
// Types shared by every kernel backend (reference, simd, cuda): bf16 storage, strided [N, V] views
// of logits and gradients, token ids, the per-token outputs and upstream gradients, and options.
// The mathematics is in docs/math §5; docs/kernels.md describes the API.

#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace rspo::kernels {

/// bfloat16 storage: the upper 16 bits of an IEEE-754 binary32. Kernels widen it by a 16-bit shift
/// and accumulate in fp32 or wider.
struct bf16 {
    std::uint16_t bits = 0;
    friend bool operator==(bf16, bf16) = default;
};
static_assert(sizeof(bf16) == 2);

inline float to_float(bf16 x) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(x.bits) << 16);
}

/// Round to nearest, ties to even; NaN stays NaN (quiet), ±inf stay ±inf.
inline bf16 to_bf16(float x) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
    if (std::isnan(x)) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x0040u)};
    const std::uint32_t rounded = u + 0x7FFFu + ((u >> 16) & 1u);
    return bf16{static_cast<std::uint16_t>(rounded >> 16)};
}

/// The element types a logits matrix may have.
template <class T>
concept logit_type = std::same_as<T, float> || std::same_as<T, bf16>;

template <logit_type T>
inline float widen(T x) noexcept {
    if constexpr (std::same_as<T, float>)
        return x;
    else
        return to_float(x);
}

/// A row-major [rows, cols] matrix of logits with a row stride in elements (≥ cols), read-only.
template <logit_type T>
struct logits_view {
    const T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;        ///< V, the vocabulary size
    std::size_t row_stride = 0;  ///< elements between the starts of consecutive rows

    [[nodiscard]] const T* row(std::size_t n) const noexcept { return data + n * row_stride; }
    [[nodiscard]] bool empty() const noexcept { return data == nullptr; }
};

/// A contiguous [rows, cols] view.
template <logit_type T>
logits_view<T> contiguous(const T* data, std::size_t rows, std::size_t cols) noexcept {
    return {data, rows, cols, cols};
}

/// Where ∂L/∂logits is written: row-major [rows, cols] with a row stride. Its element type may
/// differ from the logits' (bf16 logits, fp32 gradient). It may alias the logits (in place) when
/// the types and strides agree.
template <logit_type G>
struct gradient_view {
    G* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t row_stride = 0;

    [[nodiscard]] G* row(std::size_t n) const noexcept { return data + n * row_stride; }
};

/// What a forward pass computes per row n, each optional (an empty span is not computed):
///  logprob[n]    = log softmax(z_n / T)[ids[n]]                       ≤ 0
///  reverse_kl[n] = KL(softmax(z_n / T) ‖ softmax(r_n / T))             ≥ 0
///  forward_kl[n] = KL(softmax(r_n / T) ‖ softmax(z_n / T))             ≥ 0
struct token_values {
    std::span<float> logprob = {};
    std::span<float> reverse_kl = {};
    std::span<float> forward_kl = {};
};

/// Upstream gradients dL/d(value)[n] for a backward pass; an empty span means that term is absent.
/// The gradient written is the sum of the requested terms' contributions.
struct token_grads {
    std::span<const float> logprob = {};
    std::span<const float> reverse_kl = {};
    std::span<const float> forward_kl = {};
};

/// The inputs of one call: θ-logits z, reference logits r (needed for the KLs), target ids
/// (needed for log-probs).
template <logit_type T>
struct token_inputs {
    logits_view<T> logits{};
    logits_view<T> reference{};
    std::span<const std::int64_t> ids = {};
};

struct kernel_options {
    /// Logits (θ and reference alike) are divided by T > 0; gradients are w.r.t. the raw logits.
    float temperature = 1.0f;
    /// Optional, one entry per row: rows with 0 (prompt positions, padding) get value 0 and a zero
    /// gradient and are not read.
    std::span<const std::uint8_t> row_mask = {};
    /// Worker threads for the CPU backends; 0 = std::thread::hardware_concurrency(). Results are
    /// bit-identical for every thread count (each row is reduced by one thread, in a fixed order).
    unsigned threads = 0;
    /// false skips the O(N) argument checks (sizes, ids, mask). Non-finite results are always
    /// diagnosed: a NaN logit, an all −∞ row, a −∞ target or masks that differ between θ and the
    /// reference throw rspo::domain_error naming the row and entry.
    bool checked = true;
};

}  // namespace rspo::kernels
