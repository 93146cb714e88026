#pragma once
// Loads that widen bf16 to fp32 by a 16-bit shift, and stores that narrow fp32 to bf16 with
// round-to-nearest-even, per instruction set (xsimd 8 has no fast widening load of its own).

#include <rspo/kernels/types.hpp>

#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__SSE__) || defined(__SSE2__) || defined(__AVX2__) || defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace rspo::kernels::simd::detail {

template <class Arch>
inline xsimd::batch<float, Arch> load(const float* p) noexcept {
    return xsimd::batch<float, Arch>::load_unaligned(p);
}

template <class Arch>
inline xsimd::batch<float, Arch> load(const bf16* p) noexcept {
    using B = xsimd::batch<float, Arch>;
#if XSIMD_WITH_AVX512BW
    if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch>) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return B(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    } else
#endif
#if XSIMD_WITH_AVX2
    if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return B(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    } else
#endif
#if XSIMD_WITH_SSE2
    if constexpr (std::is_base_of_v<xsimd::sse2, Arch> && B::size == 4) {
        const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return B(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)));
    } else
#endif
    {
        alignas(64) float tmp[B::size];
        for (std::size_t i = 0; i < B::size; ++i) tmp[i] = to_float(p[i]);
        return B::load_aligned(tmp);
    }
}

template <class Arch>
inline void store(float* p, xsimd::batch<float, Arch> x) noexcept {
    x.store_unaligned(p);
}

template <class Arch>
inline void store(bf16* p, xsimd::batch<float, Arch> x) noexcept {
    using B = xsimd::batch<float, Arch>;
    using I = xsimd::batch<std::uint32_t, Arch>;
    // Round to nearest even: add 0x7FFF plus the lowest kept bit, keep the top 16 bits. A NaN
    // becomes a quiet NaN (the rounding could otherwise carry it into ±inf).
    const I u = xsimd::bitwise_cast<I>(x);
    const I rounded = (u + I(0x7FFFu) + ((u >> 16) & I(1u))) >> 16;
    const I quiet_nan = (u >> 16) | I(0x0040u);
    const I bits = xsimd::bitwise_cast<I>(
        xsimd::select(x != x, xsimd::bitwise_cast<B>(quiet_nan), xsimd::bitwise_cast<B>(rounded)));
#if XSIMD_WITH_AVX512BW
    if constexpr (std::is_base_of_v<xsimd::avx512bw, Arch>) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(bits));
        return;
    }
#endif
#if XSIMD_WITH_AVX2
    if constexpr (std::is_base_of_v<xsimd::avx2, Arch> && !std::is_base_of_v<xsimd::avx512f, Arch>) {
        const __m256i packed = _mm256_packus_epi32(bits, bits);  // per 128-bit lane
        const __m256i ordered = _mm256_permute4x64_epi64(packed, 0xD8);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(ordered));
        return;
    }
#endif
    alignas(64) std::uint32_t wide[B::size];
    bits.store_aligned(wide);
    for (std::size_t i = 0; i < B::size; ++i) p[i] = bf16{static_cast<std::uint16_t>(wide[i])};
}

/// Entries of G before `p` reaches the alignment a streamed vector store needs.
template <class Arch, class G>
inline std::size_t unaligned_entries(const G* p) noexcept {
    constexpr std::size_t bytes = xsimd::batch<float, Arch>::size * sizeof(G);
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    const std::size_t misaligned = address % bytes;
    if (misaligned == 0) return 0;
    if (misaligned % sizeof(G) != 0) return static_cast<std::size_t>(-1);  // never aligned: all scalar
    return (bytes - misaligned) / sizeof(G);
}

/// A non-temporal (cache-bypassing) store of one vector to an aligned address.
template <class Arch>
inline void stream(float* p, xsimd::batch<float, Arch> x) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
        _mm512_stream_ps(p, x);
        return;
    }
#endif
#if XSIMD_WITH_AVX
    if constexpr (std::is_base_of_v<xsimd::avx, Arch> && !std::is_base_of_v<xsimd::avx512f, Arch>) {
        _mm256_stream_ps(p, x);
        return;
    }
#endif
#if XSIMD_WITH_SSE2
    if constexpr (std::is_base_of_v<xsimd::sse2, Arch> && xsimd::batch<float, Arch>::size == 4) {
        _mm_stream_ps(p, x);
        return;
    }
#endif
    x.store_aligned(p);
}

template <class Arch>
inline void stream(bf16* p, xsimd::batch<float, Arch> x) noexcept {
    store<Arch>(p, x);  // 16-bit lanes: a regular store (the narrowing dominates)
}

/// A hint to bring the cache line at byte `offset` from p into L1. Prefetches never fault, so the
/// address may lie past the end of the buffer; it is formed as an integer for that reason.
inline void prefetch(const void* p, std::size_t offset) noexcept {
#if defined(__SSE__)
    const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(p) + offset;
    _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0);
#else
    static_cast<void>(p);
    static_cast<void>(offset);
#endif
}

/// Orders this thread's streamed stores before what follows (the join that publishes them).
template <class Arch>
inline void stream_fence() noexcept {
#if XSIMD_WITH_SSE2
    _mm_sfence();
#endif
}

}  // namespace rspo::kernels::simd::detail
