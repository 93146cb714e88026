// The machine floors bench_kernels prints beside the kernels (docs/math §5, "physical limit"):
//  - memory: a pass that only moves the bytes an op must move: reads each input matrix once with
//    the widest loads (prefetched ahead) and sums it, and for a backward op writes a gradient-sized
//    buffer once, with regular or streaming stores;
//  - exp: the library's own vectorized exp (rspo::kernels::simd::detail::exp<Arch>) over an
//    L1-resident buffer, i.e. the exp throughput with no memory traffic at all.
//
// Compiled once per instruction set by rspo_add_bench_floor (benchmarks/CMakeLists.txt), which
// defines RSPO_BENCH_FLOOR_ARCH, the same way rspo_add_simd_dispatch compiles the kernels;
// kernels.cpp declares the templates and picks an instantiation with xsimd::dispatch, so the floors
// run at the kernels' vector width. Like the kernels' per-ISA code, nothing here instantiates a standard-library
// template (an inline one compiled with AVX-512 could be picked by the linker for the other paths).

#include <rspo/kernels/simd/exp.hpp>

#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#if !defined(RSPO_BENCH_FLOOR_ARCH)
#error "floor.cpp is compiled through rspo_add_bench_floor, which defines RSPO_BENCH_FLOOR_ARCH"
#endif

#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace rspo_bench {

namespace {

/// How far ahead the reads are prefetched. The hardware prefetchers alone fall behind once stores
/// compete for the core's miss buffers (the write half of a backward floor, or a backward kernel's
/// scratch): prefetching this far ahead keeps the reads at full bandwidth.
constexpr std::size_t prefetch_distance = 16384;

/// Sums `bytes` bytes at p (vector steps with two accumulators, the tail byte by byte).
template <class Arch>
inline void sum_row(const std::byte* p, std::size_t bytes, xsimd::batch<std::uint32_t, Arch>& acc0,
                    xsimd::batch<std::uint32_t, Arch>& acc1, std::uint32_t& scalar) noexcept {
    using I = xsimd::batch<std::uint32_t, Arch>;
    constexpr std::size_t step = sizeof(std::uint32_t) * I::size;
    std::size_t i = 0;
    for (; i + 2 * step <= bytes; i += 2 * step) {
#if defined(__SSE__)
        for (std::size_t line = 0; line < 2 * step; line += 64) {  // a hint: may run past the end
            const std::uintptr_t ahead = reinterpret_cast<std::uintptr_t>(p + i + line) + prefetch_distance;
            _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
        }
#endif
        acc0 += I::load_unaligned(reinterpret_cast<const std::uint32_t*>(p + i));
        acc1 += I::load_unaligned(reinterpret_cast<const std::uint32_t*>(p + i + step));
    }
    for (; i < bytes; ++i) scalar += static_cast<std::uint32_t>(p[i]);
}

/// Writes `bytes` bytes at p, vector stores of `value` (streamed past the caches when `stream`
/// and the address allows it), the unaligned head and the tail byte by byte.
template <class Arch>
inline void write_row(std::byte* p, std::size_t bytes, xsimd::batch<std::uint32_t, Arch> value,
                      bool stream) noexcept {
    using I = xsimd::batch<std::uint32_t, Arch>;
    constexpr std::size_t step = sizeof(std::uint32_t) * I::size;
    constexpr std::byte fill{0};
    std::size_t i = 0;
    if (stream) {
#if XSIMD_WITH_SSE2
        const std::size_t misaligned = reinterpret_cast<std::uintptr_t>(p) % step;
        const std::size_t head = misaligned == 0 ? 0 : step - misaligned;
        for (; i < head && i < bytes; ++i) p[i] = fill;
        for (; i + step <= bytes; i += step) {
            auto* q = reinterpret_cast<std::uint32_t*>(p + i);
#if XSIMD_WITH_AVX512F
            if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
                _mm512_stream_si512(reinterpret_cast<__m512i*>(q), value);
            else
#endif
#if XSIMD_WITH_AVX
            if constexpr (std::is_base_of_v<xsimd::avx, Arch>)
                _mm256_stream_si256(reinterpret_cast<__m256i*>(q), value);
            else
#endif
                _mm_stream_si128(reinterpret_cast<__m128i*>(q), value);
        }
#endif
    }
    for (; i + step <= bytes; i += step) value.store_unaligned(reinterpret_cast<std::uint32_t*>(p + i));
    for (; i < bytes; ++i) p[i] = fill;
}

}  // namespace

/// Rows [begin, end) of the memory floor: sums row n of `a` (and of `b` unless null), in_row_bytes
/// each, in_stride_bytes apart; then, unless out is null, writes out_row_bytes at row n of out
/// (out_stride_bytes apart), with streaming stores when `stream`. Returns the sum, so that nothing
/// is optimised away.
template <class Arch>
std::uint32_t memory_rows(const std::byte* a, const std::byte* b, std::size_t in_stride_bytes,
                          std::size_t in_row_bytes, std::byte* out, std::size_t out_stride_bytes,
                          std::size_t out_row_bytes, bool stream, std::size_t begin, std::size_t end) {
    using I = xsimd::batch<std::uint32_t, Arch>;
    I acc0(0u), acc1(0u);
    std::uint32_t scalar = 0;
    for (std::size_t n = begin; n < end; ++n) {
        sum_row<Arch>(a + n * in_stride_bytes, in_row_bytes, acc0, acc1, scalar);
        if (b != nullptr) sum_row<Arch>(b + n * in_stride_bytes, in_row_bytes, acc0, acc1, scalar);
        if (out != nullptr) write_row<Arch>(out + n * out_stride_bytes, out_row_bytes, acc0 ^ acc1, stream);
    }
#if XSIMD_WITH_SSE2
    if (stream && out != nullptr) _mm_sfence();
#endif
    return xsimd::hadd(acc0 + acc1) + scalar;
}

/// The exp floor: `count` exps (rounded up to whole vectors) of the library's exp<Arch> over the
/// `size` floats at `buffer` (a multiple of two vectors, small enough for L1), read cyclically and
/// summed. Returns the sum.
template <class Arch>
float exp_l1(const float* buffer, std::size_t size, std::size_t count) {
    using B = xsimd::batch<float, Arch>;
    constexpr std::size_t W = B::size;
    B acc0(0.0f), acc1(0.0f);
    std::size_t done = 0;
    while (done < count) {
        const std::size_t left = count - done;
        const std::size_t stop = left >= size ? size : (left + 2 * W - 1) / (2 * W) * (2 * W);
        for (std::size_t v = 0; v < stop; v += 2 * W) {
            acc0 += rspo::kernels::simd::detail::exp(B::load_unaligned(buffer + v));
            acc1 += rspo::kernels::simd::detail::exp(B::load_unaligned(buffer + v + W));
        }
        done += stop;
    }
    return xsimd::hadd(acc0 + acc1);
}

template std::uint32_t memory_rows<RSPO_BENCH_FLOOR_ARCH>(const std::byte*, const std::byte*, std::size_t,
                                                          std::size_t, std::byte*, std::size_t,
                                                          std::size_t, bool, std::size_t, std::size_t);
template float exp_l1<RSPO_BENCH_FLOOR_ARCH>(const float*, std::size_t, std::size_t);

}  // namespace rspo_bench
