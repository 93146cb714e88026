#pragma once
// exp for the kernels' inner loops: one call per logit, so it must be cheap and keep the semantics
// the reductions rely on. glibc's vector expf is ~3x slower here, and -ffast-math would break the
// −∞ handling. Cody–Waite range reduction and Cephes' minimax polynomial (degree 7 in Horner
// form): relative error ≤ 2 ulp for normal results; exp(−∞) = 0 exactly; NaN propagates (the
// kernels detect bad input through it). Tiny results: AVX-512 (scalef) returns subnormals down to
// e^−104 and 0 below; the other paths return 0 below −87 (weights under 1e-38 of the row's largest
// term, which is ≥ 1 after the shift). Arguments above 88 are not supported (callers shift first).

#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace rspo::kernels::simd::detail {

/// e^r for |r| ≤ ln2/2: Cephes' coefficients, 1 + r + r²·(degree-5 minimax), in Horner form.
template <class Arch>
inline xsimd::batch<float, Arch> horner(xsimd::batch<float, Arch> r) noexcept {
    using B = xsimd::batch<float, Arch>;
    B p(1.9875691500e-4f);
    p = xsimd::fma(p, r, B(1.3981999507e-3f));
    p = xsimd::fma(p, r, B(8.3334519073e-3f));
    p = xsimd::fma(p, r, B(4.1665795894e-2f));
    p = xsimd::fma(p, r, B(1.6666665459e-1f));
    p = xsimd::fma(p, r, B(5.0000001201e-1f));
    p = xsimd::fma(p, r, B(1.0f));
    return xsimd::fma(p, r, B(1.0f));
}

template <class Arch>
inline xsimd::batch<float, Arch> exp(xsimd::batch<float, Arch> x) noexcept {
    using B = xsimd::batch<float, Arch>;
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
        // AVX-512: scalef applies 2^n with the full exponent range (2^n underflows to exactly 0),
        // so clamping at −150 gives exp(−∞) = 0 without a final select.
        const __m512 xc = _mm512_max_ps(_mm512_set1_ps(-150.0f), x);  // NaN stays NaN (2nd operand)
        const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
        const __m512 p = horner(B(r)).data;
        return B(_mm512_scalef_ps(p, n));
    } else
#endif
    {
        const B lo(-87.0f), hi(88.0f);
        // Operand order matters: x86 max/min return their second operand when either is NaN, so
        // writing x second keeps a NaN argument NaN.
        const B xc = xsimd::min(hi, xsimd::max(lo, x));
        const B n = xsimd::nearbyint(xc * B(1.44269504088896341f));
        B r = xsimd::fnma(n, B(0.693359375f), xc);
        r = xsimd::fnma(n, B(-2.12194440e-4f), r);
        const B p = horner(r);
        // 2^n through the exponent field; n ∈ [−126, 127] by the clamp above.
        const auto ni = xsimd::batch_cast<std::int32_t>(n);
        const B scale = xsimd::bitwise_cast<B>((ni + 127) << 23);
        return xsimd::select(x < lo, B(0.0f), p * scale);
    }
}

}  // namespace rspo::kernels::simd::detail
