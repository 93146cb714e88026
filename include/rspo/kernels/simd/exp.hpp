#pragma once
// exp for the kernels' inner loops: one call per logit, so it must be cheap and keep the semantics
// the reductions rely on. glibc's vector expf is ~3x slower here, and -ffast-math would break the
// −∞ handling. Cody–Waite range reduction and Cephes' degree-5 minimax polynomial: relative error
// ≤ 2 ulp on [−87, 88]; exp(−∞) = 0 exactly; arguments below −87 give 0 (their weight is under
// 1e-38 of the row's largest term); NaN propagates (the kernels detect bad input through it).

#include <xsimd/xsimd.hpp>

#include <cstdint>

namespace rspo::kernels::simd::detail {

template <class Arch>
inline xsimd::batch<float, Arch> exp(xsimd::batch<float, Arch> x) noexcept {
    using B = xsimd::batch<float, Arch>;
    const B lo(-87.0f), hi(88.0f);
    // Operand order matters: x86 max/min return their second operand when either is NaN, so
    // writing x second keeps a NaN argument NaN.
    const B xc = xsimd::min(hi, xsimd::max(lo, x));
    const B n = xsimd::nearbyint(xc * B(1.44269504088896341f));
    B r = xsimd::fnma(n, B(0.693359375f), xc);
    r = xsimd::fnma(n, B(-2.12194440e-4f), r);
    B p(1.9875691500e-4f);
    p = xsimd::fma(p, r, B(1.3981999507e-3f));
    p = xsimd::fma(p, r, B(8.3334519073e-3f));
    p = xsimd::fma(p, r, B(4.1665795894e-2f));
    p = xsimd::fma(p, r, B(1.6666665459e-1f));
    p = xsimd::fma(p, r, B(5.0000001201e-1f));
    p = xsimd::fma(p, r * r, r + B(1.0f));
    // 2^n through the exponent field; n ∈ [−126, 127] by the clamp above.
    const auto ni = xsimd::batch_cast<std::int32_t>(n);
    const B scale = xsimd::bitwise_cast<B>((ni + 127) << 23);
    return xsimd::select(x < lo, B(0.0f), p * scale);
}

}  // namespace rspo::kernels::simd::detail
