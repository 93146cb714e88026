#pragma once
// The per-row SIMD kernels, templated on the xsimd architecture. One pass over each row computes
// every requested value (docs/math §5); a backward call keeps the row's exponentials (and, for the
// KLs, the differences z − r and the reference's exponentials) in a per-thread scratch sized to the
// row, so the gradient is written by a second pass over that scratch without another exp or another
// read of the inputs.
//
// No separate max pass: each row is shifted by the maximum of its first 256 entries. A later entry
// more than 64 above that shift (its exp could overflow the fp32 sum) or any non-finite sum sends
// the row to an exact path that takes the true maximum and redoes the pass; a row that is still
// non-finite has bad input and is reported to the caller, which diagnoses it.
//
// Private: use rspo/kernels/simd/token_reductions.hpp.

#include <rspo/kernels/simd/exp.hpp>
#include <rspo/kernels/simd/memory.hpp>
#include <rspo/kernels/types.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace rspo::kernels::simd::detail {

enum class element { f32, bf16 };

/// One call's work, type-erased so that a single function per architecture can be compiled in its
/// own translation unit (runtime dispatch) and declared extern elsewhere.
struct row_job {
    element logits_type = element::f32;
    element grad_type = element::f32;
    const void* z = nullptr;
    std::size_t z_stride = 0;
    const void* r = nullptr;  ///< reference logits, when a KL is computed
    std::size_t r_stride = 0;
    std::size_t cols = 0;
    const std::int64_t* ids = nullptr;
    const std::uint8_t* mask = nullptr;
    float inv_t = 1.0f;
    bool logprob = false;  ///< compute the log-prob (value or gradient)
    bool kl = false;       ///< compute the KLs (both values share every exp)
    bool reverse_grad = false;  ///< backward: the reverse KL's gradient is requested
    bool forward_grad = false;  ///< backward: the forward KL's gradient is requested
    bool backward = false;
    float* out_logprob = nullptr;
    float* out_reverse = nullptr;
    float* out_forward = nullptr;
    const float* g_logprob = nullptr;
    const float* g_reverse = nullptr;
    const float* g_forward = nullptr;
    void* dz = nullptr;
    std::size_t dz_stride = 0;
};

/// Per-thread scratch for backward rows, allocated by the caller (outside the per-ISA code, so that
/// no standard-library instantiation is compiled with wider instructions than the CPU may have):
/// each array holds cols + 2·(widest vector) floats.
struct row_scratch {
    float* ez = nullptr;
    float* d = nullptr;
    float* er = nullptr;
};

template <class T>
inline T negative_infinity() noexcept {
    if constexpr (std::is_same_v<T, float>)
        return -std::numeric_limits<float>::infinity();
    else
        return bf16{0xFF80u};
}

/// RK / FK: the reverse / forward KL gradient terms of a backward row (their scratch arrays);
/// forward rows compute both KL values with RK = FK = true.
template <class Arch, class T, class G, bool LP, bool RK, bool FK, bool BWD>
struct row_kernel {
    static constexpr bool KL = RK || FK;
    using B = xsimd::batch<float, Arch>;
    static constexpr std::size_t W = B::size;
    static constexpr std::size_t block = 64 * W;  ///< entries summed in fp32 before moving to double
    /// How far ahead a backward row's inputs are prefetched. The hardware prefetchers alone fall
    /// behind once the scratch stores compete for the core's miss buffers (measured: log-prob
    /// forward+backward 12.9 → 8.5 ms at 2048×32000 fp32); forward rows do not need it.
    static constexpr std::size_t prefetch_distance = 16384;
    static constexpr std::size_t step_bytes = 2 * W * sizeof(T);  ///< input bytes per loop step

    struct sums {
        double sz = 0, sr = 0, a = 0, b = 0;  ///< Σe_z, Σe_r, Σe_z·d, Σe_r·(−d)
        float mz = -std::numeric_limits<float>::infinity();   ///< max of z/T (overflow check)
        float mr = -std::numeric_limits<float>::infinity();
        float dmax = -std::numeric_limits<float>::infinity(); ///< +∞: z finite where r = −∞
        float dmin = std::numeric_limits<float>::infinity();  ///< −∞: r finite where z = −∞
    };

    struct accumulators {
        B sz = B(0.0f), sr = B(0.0f), a = B(0.0f), b = B(0.0f);
        B mz = B(-std::numeric_limits<float>::infinity()), mr = mz, dmax = mz;
        B dmin = B(std::numeric_limits<float>::infinity());
    };

    /// One vector of entries; `at` is where its scratch goes. Shifts are in units of the raw
    /// logits times 1/T (neg_shift = −shift), and the max trackers see raw logits (T > 0).
    static inline void step(accumulators& acc, B x, B y, B inv_t, B neg_shift_z, B neg_shift_r,
                            row_scratch* scratch, std::size_t at) noexcept {
        const B ez = exp(xsimd::fma(x, inv_t, neg_shift_z));
        acc.sz += ez;
        acc.mz = xsimd::max(x, acc.mz);  // x first: a NaN entry leaves the max alone (the sum
                                         // carries it instead)
        if constexpr (BWD) ez.store_unaligned(scratch->ez + at);
        if constexpr (KL) {
            const B er = exp(xsimd::fma(y, inv_t, neg_shift_r));
            acc.sr += er;
            acc.mr = xsimd::max(y, acc.mr);
            const B d = (x - y) * inv_t;  // NaN where both are −∞; ±∞ where exactly one is
            const B lowest(std::numeric_limits<float>::lowest());
            acc.a = xsimd::fma(ez, xsimd::max(d, lowest), acc.a);   // max(NaN, ·) → lowest, × 0
            acc.b = xsimd::fma(er, xsimd::max(-d, lowest), acc.b);
            acc.dmax = xsimd::max(d, acc.dmax);
            acc.dmin = xsimd::min(d, acc.dmin);
            if constexpr (BWD && RK) d.store_unaligned(scratch->d + at);
            if constexpr (BWD && FK) er.store_unaligned(scratch->er + at);
        }
    }

    static float horizontal_max(B x) noexcept {  // xsimd 8 has hadd but no horizontal max
        alignas(64) float lanes[W];
        x.store_aligned(lanes);
        float m = lanes[0];
        for (std::size_t i = 1; i < W; ++i) m = std::max(m, lanes[i]);
        return m;
    }
    static float horizontal_min(B x) noexcept {
        alignas(64) float lanes[W];
        x.store_aligned(lanes);
        float m = lanes[0];
        for (std::size_t i = 1; i < W; ++i) m = std::min(m, lanes[i]);
        return m;
    }

    static inline void flush(accumulators& acc, sums& s) noexcept {
        s.sz += static_cast<double>(xsimd::hadd(acc.sz));
        acc.sz = B(0.0f);
        if constexpr (KL) {
            s.sr += static_cast<double>(xsimd::hadd(acc.sr));
            s.a += static_cast<double>(xsimd::hadd(acc.a));
            s.b += static_cast<double>(xsimd::hadd(acc.b));
            acc.sr = acc.a = acc.b = B(0.0f);
        }
    }

    /// Prefetches the input lines prefetch_distance bytes beyond entry v's step (each line once).
    static inline void prefetch_ahead(const T* x, std::size_t v) noexcept {
        const std::size_t at = v * sizeof(T) + prefetch_distance;
        if constexpr (step_bytes >= 64) {
            for (std::size_t line = 0; line < step_bytes; line += 64) prefetch(x, at + line);
        } else if (v * sizeof(T) % 64 == 0) {
            prefetch(x, at);
        }
    }

    /// Pass 1 over the row with the given shifts.
    static sums accumulate(const T* z, const T* r, std::size_t cols, float inv_t, float shift_z,
                           float shift_r, row_scratch* scratch) noexcept {
        accumulators acc[2];
        sums s;
        const B vt(inv_t), vz(-shift_z), vr(-shift_r);
        const B none(-std::numeric_limits<float>::infinity());
        std::size_t v = 0;
        const std::size_t full = cols - cols % (2 * W);
        while (v < full) {
            const std::size_t stop = std::min(full, v + block);
            for (; v < stop; v += 2 * W) {
                if constexpr (BWD) {
                    prefetch_ahead(z, v);
                    if constexpr (KL) prefetch_ahead(r, v);
                }
                step(acc[0], load<Arch>(z + v), KL ? load<Arch>(r + v) : none, vt, vz, vr, scratch, v);
                step(acc[1], load<Arch>(z + v + W), KL ? load<Arch>(r + v + W) : none, vt, vz, vr,
                     scratch, v + W);
            }
            flush(acc[0], s);
            flush(acc[1], s);
        }
        // The tail, padded with −∞ (which contributes exactly nothing) to whole vectors.
        for (; v < cols; v += W) {
            alignas(64) T zt[W], rt[W];
            const std::size_t n = std::min(W, cols - v);
            for (std::size_t i = 0; i < W; ++i) {
                zt[i] = i < n ? z[v + i] : negative_infinity<T>();
                rt[i] = KL && i < n ? r[v + i] : negative_infinity<T>();
            }
            step(acc[0], load<Arch>(zt), KL ? load<Arch>(rt) : none, vt, vz, vr, scratch, v);
        }
        flush(acc[0], s);
        flush(acc[1], s);
        s.mz = horizontal_max(xsimd::max(acc[0].mz, acc[1].mz)) * inv_t;
        if constexpr (KL) {
            s.mr = horizontal_max(xsimd::max(acc[0].mr, acc[1].mr)) * inv_t;
            s.dmax = horizontal_max(xsimd::max(acc[0].dmax, acc[1].dmax));
            s.dmin = horizontal_min(xsimd::min(acc[0].dmin, acc[1].dmin));
        }
        return s;
    }

    /// max_v x_v / T over the first `count` entries (NaN ignored).
    static float prefix_max(const T* x, std::size_t count, float inv_t) noexcept {
        float m = -std::numeric_limits<float>::infinity();
        for (std::size_t v = 0; v < count; ++v) {
            const float xv = widen(x[v]) * inv_t;
            m = xv > m ? xv : m;
        }
        return m;
    }

    /// Whether the sums a row needs are usable. Σe_z·d is infinite when z is finite where r = −∞, which
    /// only matters if the reverse KL is wanted; likewise Σe_r·(−d) for the forward KL.
    static bool finite(const sums& s, bool need_reverse, bool need_forward) noexcept {
        bool ok = std::isfinite(s.sz) && s.sz > 0;
        if constexpr (KL) {
            ok = ok && std::isfinite(s.sr) && s.sr > 0;
            ok = ok && (!need_reverse || std::isfinite(s.a)) && (!need_forward || std::isfinite(s.b));
        }
        return ok;
    }

    /// Computes row n; returns false if its input is bad (the caller diagnoses it).
    static bool row(const row_job& job, std::size_t n, row_scratch* scratch) noexcept {
        const T* z = static_cast<const T*>(job.z) + n * job.z_stride;
        const T* r = KL ? static_cast<const T*>(job.r) + n * job.r_stride : nullptr;
        const std::size_t cols = job.cols;
        const float inv_t = job.inv_t;
        const std::size_t probe = std::min<std::size_t>(cols, 256);
        float shift_z = prefix_max(z, probe, inv_t);
        float shift_r = KL ? prefix_max(r, probe, inv_t) : 0.0f;
        constexpr float headroom = 64.0f;  // e^64 · 262144 entries stays far below FLT_MAX
        const bool need_reverse = KL && (job.out_reverse || job.g_reverse);
        const bool need_forward = KL && (job.out_forward || job.g_forward);
        sums s;
        bool exact = !std::isfinite(shift_z) || (KL && !std::isfinite(shift_r));
        if (!exact) {
            s = accumulate(z, r, cols, inv_t, shift_z, shift_r, scratch);
            exact = !finite(s, need_reverse, need_forward) || s.mz - shift_z > headroom || (KL && s.mr - shift_r > headroom);
        }
        if (exact) {  // rare: the shift was too low, or the row is bad
            shift_z = prefix_max(z, cols, inv_t);
            if (KL) shift_r = prefix_max(r, cols, inv_t);
            if (!std::isfinite(shift_z) || (KL && !std::isfinite(shift_r))) return false;
            s = accumulate(z, r, cols, inv_t, shift_z, shift_r, scratch);
            if (!finite(s, need_reverse, need_forward)) return false;
        }
        const double log_sz = std::log(s.sz);
        float logprob = 0.0f, reverse = 0.0f, forward = 0.0f;
        double lse_gap = 0.0;  // lse_z − lse_r
        if constexpr (LP) {
            const float zy = widen(z[static_cast<std::size_t>(job.ids[n])]) * inv_t;
            if (!std::isfinite(zy)) return false;
            // ℓ = z_y − lse ≤ 0 exactly; a positive result is round-off and is clamped.
            logprob = static_cast<float>(std::min(0.0, static_cast<double>(zy) - shift_z - log_sz));
        }
        if constexpr (KL) {
            if ((need_reverse && s.dmax == std::numeric_limits<float>::infinity()) ||
                (need_forward && s.dmin == -std::numeric_limits<float>::infinity()))
                return false;  // the masks differ: that KL is infinite
            const double log_sr = std::log(s.sr);
            lse_gap = (static_cast<double>(shift_z) + log_sz) - (static_cast<double>(shift_r) + log_sr);
            // KL(p‖m) = E_p[z − r]/T − (lse_z − lse_r); ≥ 0 exactly, so round-off below is clamped.
            reverse = static_cast<float>(std::max(0.0, s.a / s.sz - lse_gap));
            forward = static_cast<float>(std::max(0.0, s.b / s.sr + lse_gap));
        }
        if (job.out_logprob) job.out_logprob[n] = logprob;
        if (job.out_reverse) job.out_reverse[n] = reverse;
        if (job.out_forward) job.out_forward[n] = forward;
        if constexpr (BWD) write_gradient(job, n, s, lse_gap, reverse, scratch);
        return true;
    }

    /// Pass 2: dz_v = p_v (k0 + k1 d_v) − k2 m_v (+ g_lp/T at the target), from the scratch
    /// (docs/math §5 with p = softmax(z/T), m = softmax(r/T), d = (z − r)/T):
    ///   k0 = (g_f − g_lp − g_r (lse_z − lse_r + KL(p‖m))) / T,  k1 = g_r / T,  k2 = g_f / T.
    static void write_gradient(const row_job& job, std::size_t n, const sums& s, double lse_gap,
                               float reverse, row_scratch* scratch) noexcept {
        G* out = static_cast<G*>(job.dz) + n * job.dz_stride;
        const double inv_t = job.inv_t;
        const double g_lp = job.g_logprob ? job.g_logprob[n] : 0.0;
        const double g_r = job.g_reverse ? job.g_reverse[n] : 0.0;
        const double g_f = job.g_forward ? job.g_forward[n] : 0.0;
        const float inv_sz = static_cast<float>(1.0 / s.sz);
        const float inv_sr = KL ? static_cast<float>(1.0 / s.sr) : 0.0f;
        // g_r = 0 must contribute nothing even where KL(p‖m) is infinite (masks differ one way).
        const double reverse_term = g_r != 0.0 ? g_r * (lse_gap + reverse) : 0.0;
        const float k0 = static_cast<float>((g_f - g_lp - reverse_term) * inv_t);
        const float k1 = static_cast<float>(g_r * inv_t);
        const float k2 = static_cast<float>(g_f * inv_t);
        const auto element_gradient = [&](std::size_t v) {  // scalar form, for the target entry
            const float p = scratch->ez[v] * inv_sz;
            float g = p > 0.0f ? p * (k0 + (RK ? k1 * scratch->d[v] : 0.0f)) : 0.0f;
            if constexpr (FK) g -= k2 * (scratch->er[v] * inv_sr);
            return g;
        };
        const B vsz(inv_sz), vsr(inv_sr), vk0(k0), vk1(k1), vk2(k2), zero(0.0f);
        const auto vector_gradient = [&](std::size_t v) {
            const B p = B::load_unaligned(scratch->ez + v) * vsz;
            B g;
            if constexpr (RK)  // p = 0 (a −∞ entry, d may be NaN) contributes nothing from the p-term
                g = xsimd::select(p > zero, p * xsimd::fma(vk1, xsimd::load_unaligned(scratch->d + v), vk0), zero);
            else
                g = p * vk0;
            if constexpr (FK) g = xsimd::fnma(vk2, B::load_unaligned(scratch->er + v) * vsr, g);
            return g;
        };
        // The gradient is written once and not read back here: stream it past the caches (no
        // read-for-ownership of the destination), from the first vector-aligned entry on.
        const std::size_t cols = job.cols;
        std::size_t v = 0;
        const std::size_t head = std::min(cols, unaligned_entries<Arch>(out));
        for (; v < head; ++v) store_scalar(out + v, element_gradient(v));
        for (; v + W <= cols; v += W) stream<Arch>(out + v, vector_gradient(v));
        for (; v < cols; ++v) store_scalar(out + v, element_gradient(v));
        if constexpr (LP) {
            const auto y = static_cast<std::size_t>(job.ids[n]);
            store_scalar(out + y, element_gradient(y) + static_cast<float>(g_lp * inv_t));
        }
    }

    static void store_scalar(G* p, float value) noexcept {
        if constexpr (std::is_same_v<G, float>)
            *p = value;
        else
            *p = to_bf16(value);
    }
};

/// Scratch floats per array for a row of `cols` entries (enough for the widest vector's tail).
constexpr std::size_t scratch_size(std::size_t cols) noexcept { return cols + 64; }

template <class Arch, class T, class G, bool LP, bool RK, bool FK, bool BWD>
std::size_t rows_with(const row_job& job, std::size_t begin, std::size_t end, row_scratch scratch) {
    using kernel = row_kernel<Arch, T, G, LP, RK, FK, BWD>;
    for (std::size_t n = begin; n < end; ++n) {
        if (job.mask && job.mask[n] == 0) {
            if (job.out_logprob) job.out_logprob[n] = 0.0f;
            if (job.out_reverse) job.out_reverse[n] = 0.0f;
            if (job.out_forward) job.out_forward[n] = 0.0f;
            if constexpr (BWD) {
                G* out = static_cast<G*>(job.dz) + n * job.dz_stride;
                for (std::size_t v = 0; v < job.cols; ++v) out[v] = G{};
            }
            continue;
        }
        if (!kernel::row(job, n, &scratch)) return n;
    }
    if constexpr (BWD) stream_fence<Arch>();  // streamed stores are visible before the join
    return end;
}

/// Forward rows compute both KLs when either is asked (they share every exp); backward rows keep
/// only the scratch their gradient terms read.
template <class Arch, class T, class G, bool BWD, bool LP>
std::size_t rows_with_kl(const row_job& job, std::size_t begin, std::size_t end, row_scratch scratch) {
    if (!job.kl) return rows_with<Arch, T, G, LP, false, false, BWD>(job, begin, end, scratch);
    if constexpr (BWD) {
        if (job.reverse_grad && !job.forward_grad)
            return rows_with<Arch, T, G, LP, true, false, BWD>(job, begin, end, scratch);
        if (job.forward_grad && !job.reverse_grad)
            return rows_with<Arch, T, G, LP, false, true, BWD>(job, begin, end, scratch);
    }
    return rows_with<Arch, T, G, LP, true, true, BWD>(job, begin, end, scratch);
}

template <class Arch, class T, class G, bool BWD>
std::size_t rows_with_terms(const row_job& job, std::size_t begin, std::size_t end, row_scratch scratch) {
    return job.logprob ? rows_with_kl<Arch, T, G, BWD, true>(job, begin, end, scratch)
                       : rows_with_kl<Arch, T, G, BWD, false>(job, begin, end, scratch);
}

/// Rows [begin, end) of the job; returns the first row with bad input, or end. Each architecture's
/// instantiation may live in its own translation unit (see token_reductions.hpp).
template <class Arch>
std::size_t run_rows(const row_job& job, std::size_t begin, std::size_t end, row_scratch scratch) {
    const bool bf16_in = job.logits_type == element::bf16;
    if (!job.backward)
        return bf16_in ? rows_with_terms<Arch, bf16, float, false>(job, begin, end, scratch)
                       : rows_with_terms<Arch, float, float, false>(job, begin, end, scratch);
    const bool bf16_out = job.grad_type == element::bf16;
    if (bf16_in)
        return bf16_out ? rows_with_terms<Arch, bf16, bf16, true>(job, begin, end, scratch)
                        : rows_with_terms<Arch, bf16, float, true>(job, begin, end, scratch);
    return bf16_out ? rows_with_terms<Arch, float, bf16, true>(job, begin, end, scratch)
                    : rows_with_terms<Arch, float, float, true>(job, begin, end, scratch);
}

}  // namespace rspo::kernels::simd::detail
