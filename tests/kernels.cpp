// Acceptance tests for the token-reduction kernels (docs/math §5, docs/kernels.md): the SIMD backend
// on every instruction set, fp32 and bf16 logits, fp32 and bf16 gradients, against the long-double
// reference; the reference against an independent long-double oracle and against finite
// differences; exact invariants; typed errors; determinism; in-place gradients; sequence sums; bf16.
//
// ---------------------------------------------------------------------------------------------
// Tolerances (SIMD vs reference). u = 2^-24 is the unit roundoff of fp32 (eps32 = 2u). Everything
// is computed per row from the exact (long double) quantities of the row, with zt = z/T, rt = r/T,
// p = softmax(zt), m = softmax(rt), d = zt − rt, y the target; both backends see the same widened
// fp32 inputs (bf16 widening is exact), so the bound is the same for bf16 logits.
//
//  scaled logits   x·fl(1/T): relative error ρ_T = α + u·[fl(1/T) ≠ 1], α = |fl(1/T)·T − 1| (≤ u,
//                  0 for T = 1).
//  exp weights     each weight e^(zt_v − shift) has relative error
//                    η_v = 4u (exp ≤ 2 ulp)  +  ρ_T·|zt_v| (argument scaling)
//                          + u·(max zt − zt_v + gap) (rounding of the shifted argument),
//                  where gap = min(65, max zt − max_{v<256} zt) bounds how far below the true
//                  maximum the shift can be (the shift is the max of the first 256 entries, and a
//                  later entry more than 64 above it sends the row to the exact path).
//  sums            fp32 per lane over ≤ 32 terms per block, a horizontal add of ≤ 16 lanes, one
//                  product rounding where FMA is emulated: relative 48u of Σ|terms| (worst case).
//  log-sum-exp     |Δlse_z| ≤ Λ_z = Σ_v p_v η_v + 48u   (Λ_r likewise with m).
//  log-prob        |Δℓ| ≤ ρ_T|zt_y| + Λ_z + 2u|ℓ|   (the last term: each backend rounds to fp32).
//  reverse KL      |ΔKL| ≤ Σ_v p_v [ρ_T(|zt_v|+|rt_v|) + u|d_v| + η_v(|d_v − E_p d| + 1)]
//                          + 48u(E_p|d| + |E_p d| + 1) + Λ_r + 2u·KL
//                  (first-order expansion of E_p[d] − lse_z + lse_r with perturbed weights: the
//                  weight errors enter as Σ p_v η_v (d_v − E_p d − 1)); forward KL symmetric.
//  gradients       dz_v = p_v c_v − (g_f/T) m_v (+ g_lp/T at y), c_v = (g_f − g_lp)/T +
//                  g_r(d_v − (lse_z − lse_r) − KL)/T. With ρ^z_v = η_v + Λ_z + 2u (weight,
//                  normalisation, product), k0 = (g_f − g_lp − g_r(lse_z − lse_r + KL))/T:
//                    |Δdz_v| ≤ p_v [ |c_v|(ρ^z_v + 2u) + |g_r|/T (Λ_z + Λ_r + τ_KL) + (α+u)|k0|
//                                    + |g_r|/T ((α+2u)|d_v| + ρ_T(|zt_v|+|rt_v|)) ]
//                              + |g_f|/T m_v (ρ^r_v + α + 3u) + 2u|dz_v| + [v=y](α+2u)|g_lp|/T
//                              + 1e-30·(|g_lp| + |g_r|(1 + max|d| + |lse_z − lse_r| + KL) + |g_f|)/T
//                  (the last term covers weights below 1e-38 that the exp flushes or makes
//                  subnormal).
//  bf16 gradients  within the fp32 bound plus one bf16 ulp of the reference's bf16 output, and
//                  equal to the bf16 rounding (RNE) of some value within twice the fp32 bound of
//                  the SIMD's own fp32 gradient (exact whenever no bf16 tie lies in between).
// The reference itself is checked against the oracle within its own fp32 rounding (u|x|) plus
// long-double noise (1e-13 of the row's magnitudes).
// ---------------------------------------------------------------------------------------------

#include <rspo/core/error.hpp>
#include <rspo/core/random.hpp>
#include <rspo/kernels/reference/token_reductions.hpp>
#include <rspo/kernels/sequence_sums.hpp>
#include <rspo/kernels/simd/exp.hpp>
#include <rspo/kernels/simd/token_reductions.hpp>
#include <rspo/kernels/types.hpp>

#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace {

namespace k = rspo::kernels;
namespace kd = rspo::kernels::simd::detail;
using k::bf16;
using ld = long double;

constexpr ld u = 0x1p-24L;           // fp32 unit roundoff
constexpr ld tiny_abs = 0x1p-149L;   // fp32 subnormal spacing: rounding to fp32 may cost this
constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();
constexpr std::size_t no_target = static_cast<std::size_t>(-1);

// ---------------------------------------------------------------------------------------------
// Instruction sets. xsimd 8's Arch::available() is a compile-time constant (always true), so the
// CPU is asked at run time, with the same features the dispatcher requires.
// ---------------------------------------------------------------------------------------------
struct isa_avx512 {
    static constexpr const char* name = "avx512bw";
    static bool available() {
#if defined(RSPO_SIMD_DISPATCH)
        const auto cpu = xsimd::available_architectures();
        return cpu.avx512f && cpu.avx512cd && cpu.avx512dq && cpu.avx512bw;
#else
        return false;
#endif
    }
    static kd::rows_function rows() {
#if defined(RSPO_SIMD_DISPATCH)
        return &kd::run_rows<xsimd::avx512bw>;
#else
        return nullptr;
#endif
    }
};
struct isa_avx2 {
    static constexpr const char* name = "avx2+fma";
    static bool available() {
#if defined(RSPO_SIMD_DISPATCH)
        return xsimd::available_architectures().fma3_avx2 != 0;
#else
        return false;
#endif
    }
    static kd::rows_function rows() {
#if defined(RSPO_SIMD_DISPATCH)
        return &kd::run_rows<xsimd::fma3<xsimd::avx2>>;
#else
        return nullptr;
#endif
    }
};
struct isa_sse2 {
    static constexpr const char* name = "sse2";
    static bool available() { return xsimd::available_architectures().sse2 != 0; }
    static kd::rows_function rows() { return &kd::run_rows<xsimd::sse2>; }
};

#define RSPO_REQUIRE_ISA()                                                                          \
    do {                                                                                            \
        if (!TestType::available())                                                                 \
            SKIP("instruction set " << TestType::name                                               \
                                    << " is not available on this CPU (or not compiled in)");       \
    } while (false)

/// Every instruction set this CPU runs, by name.
std::vector<std::pair<std::string, kd::rows_function>> available_isas() {
    std::vector<std::pair<std::string, kd::rows_function>> list;
    if (isa_avx512::available()) list.emplace_back(isa_avx512::name, isa_avx512::rows());
    if (isa_avx2::available()) list.emplace_back(isa_avx2::name, isa_avx2::rows());
    if (isa_sse2::available()) list.emplace_back(isa_sse2::name, isa_sse2::rows());
    return list;
}

/// The instruction set the public entry points must use on this CPU: the best available under
/// runtime dispatch, else the translation unit's own.
kd::rows_function best_isa() {
#if defined(RSPO_SIMD_DISPATCH)
    if (isa_avx512::available()) return isa_avx512::rows();
    if (isa_avx2::available()) return isa_avx2::rows();
    return isa_sse2::rows();
#else
    return &kd::run_rows<xsimd::default_arch>;
#endif
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------
template <class T>
T narrow(float x) {
    if constexpr (std::is_same_v<T, float>)
        return x;
    else
        return k::to_bf16(x);
}

template <class T>
std::uint32_t bits_of(T x) {
    if constexpr (std::is_same_v<T, float>)
        return std::bit_cast<std::uint32_t>(x);
    else
        return x.bits;
}

/// A strided [rows, cols] matrix. By default its allocation ends exactly with its last row (so
/// that a read past the end of the data is a heap overflow under ASan); `aligned` starts it on a
/// 64-byte boundary instead (the SIMD backward picks scalar or vector stores by the destination's
/// alignment, so bitwise comparisons between two buffers need equal alignment). Padding between
/// rows keeps `fill`.
template <class T>
struct matrix {
    std::size_t rows = 0, cols = 0, stride = 0, offset = 0, size = 0;
    std::vector<T> storage;

    matrix() = default;
    matrix(std::size_t r, std::size_t c, std::size_t s, T fill, bool aligned = false)
        : rows(r), cols(c), stride(s), size(r == 0 ? 0 : (r - 1) * s + c) {
        if (!aligned) {
            storage.assign(size, fill);
            return;
        }
        storage.assign(size + 64 / sizeof(T), fill);
        const auto address = reinterpret_cast<std::uintptr_t>(storage.data());
        offset = ((64 - address % 64) % 64) / sizeof(T);
    }

    T& flat(std::size_t i) { return storage[offset + i]; }
    const T& flat(std::size_t i) const { return storage[offset + i]; }
    T& at(std::size_t n, std::size_t v) { return flat(n * stride + v); }
    const T& at(std::size_t n, std::size_t v) const { return flat(n * stride + v); }
    T* ptr() { return size == 0 ? nullptr : storage.data() + offset; }
    const T* ptr() const { return size == 0 ? nullptr : storage.data() + offset; }
    k::logits_view<T> view() const { return {ptr(), rows, cols, stride}; }
    k::gradient_view<T> grad_view() { return {ptr(), rows, cols, stride}; }
    std::vector<float> widened_row(std::size_t n) const {
        std::vector<float> out(cols);
        for (std::size_t v = 0; v < cols; ++v) out[v] = k::widen(at(n, v));
        return out;
    }
    /// Same bits in every entry of every row (padding ignored).
    bool same_entries(const matrix& other) const {
        for (std::size_t n = 0; n < rows; ++n)
            if (std::memcmp(&at(n, 0), &other.at(n, 0), cols * sizeof(T)) != 0) return false;
        return true;
    }
};

/// One test problem: θ-logits z, reference logits r, ids, optional row mask, upstream gradients.
template <class T>
struct kernel_case {
    std::string name;
    float temperature = 1.0f;
    matrix<T> z, r;
    std::vector<std::int64_t> ids;
    std::vector<std::uint8_t> mask;  ///< empty: every row active
    std::vector<float> g_lp, g_rk, g_fk;

    std::size_t rows() const { return z.rows; }
    std::size_t cols() const { return z.cols; }
    bool active(std::size_t n) const { return mask.empty() || mask[n] != 0; }
};

template <class T>
kernel_case<T> convert_case(const kernel_case<float>& c) {
    kernel_case<T> out;
    out.name = c.name + (std::is_same_v<T, bf16> ? " [bf16 logits]" : " [fp32 logits]");
    out.temperature = c.temperature;
    out.z = matrix<T>(c.z.rows, c.z.cols, c.z.stride, T{});
    out.r = matrix<T>(c.r.rows, c.r.cols, c.r.stride, T{});
    for (std::size_t i = 0; i < c.z.size; ++i) out.z.flat(i) = narrow<T>(c.z.flat(i));
    for (std::size_t i = 0; i < c.r.size; ++i) out.r.flat(i) = narrow<T>(c.r.flat(i));
    out.ids = c.ids;
    out.mask = c.mask;
    out.g_lp = c.g_lp;
    out.g_rk = c.g_rk;
    out.g_fk = c.g_fk;
    return out;
}

struct rng {
    rspo::random_engine engine;
    explicit rng(std::uint64_t seed) : engine(seed) {}
    double uniform() { return rspo::uniform01(engine); }
    float uniform(double a, double b) { return static_cast<float>(a + (b - a) * uniform()); }
    std::size_t index(std::size_t n) { return std::min(n - 1, static_cast<std::size_t>(uniform() * n)); }
};

/// An empty case of the given shape: logits and padding NaN (padding must never be read), ids 0.
kernel_case<float> blank_case(std::string name, std::size_t rows, std::size_t cols, std::size_t stride,
                              float temperature) {
    kernel_case<float> c;
    c.name = std::move(name);
    c.temperature = temperature;
    c.z = matrix<float>(rows, cols, stride, qnan);
    c.r = matrix<float>(rows, cols, stride + 1 + cols % 3, qnan);  // strides independent of z's
    c.ids.assign(rows, 0);
    c.g_lp.assign(rows, 0.0f);
    c.g_rk.assign(rows, 0.0f);
    c.g_fk.assign(rows, 0.0f);
    return c;
}

/// Random upstream gradients of mixed sign.
void random_grads(kernel_case<float>& c, rng& g) {
    for (std::size_t n = 0; n < c.rows(); ++n) {
        c.g_lp[n] = g.uniform(-2.0, 2.0);
        c.g_rk[n] = g.uniform(-2.0, 2.0);
        c.g_fk[n] = g.uniform(-2.0, 2.0);
    }
}

/// Fills row n with one of several kinds of random logits.
///  0: z uniform, r = z + noise (close distributions)   1: z, r independent
///  2: peaked (one entry far above the rest)             3: masked vocabulary (−inf in z and r alike)
void random_row(kernel_case<float>& c, std::size_t n, int kind, rng& g) {
    const std::size_t V = c.cols();
    const double scales[] = {0.5, 4.0, 16.0};
    const double s = scales[g.index(3)];
    for (std::size_t v = 0; v < V; ++v) {
        c.z.at(n, v) = g.uniform(-s, s);
        c.r.at(n, v) = kind == 1 ? g.uniform(-s, s) : c.z.at(n, v) + g.uniform(-0.25 * s, 0.25 * s);
    }
    std::size_t y = g.index(V);
    if (kind == 2) {
        const std::size_t peak = g.index(V);
        c.z.at(n, peak) += 12.0f;
        c.r.at(n, g.index(V)) += 8.0f;
        if (g.uniform() < 0.5) y = peak;
    }
    if (kind == 3) {
        for (std::size_t v = 0; v < V; ++v)
            if (v != y && g.uniform() < 0.3) c.z.at(n, v) = c.r.at(n, v) = -inf;
    }
    c.ids[n] = static_cast<std::int64_t>(y);
}

/// Rows of every kind, random grads; if `masked`, row 1 is masked out (its logits stay NaN and its
/// id is invalid: a masked row must not be read) and row 2 has mask value 7 (active: nonzero).
kernel_case<float> random_case(std::string name, std::size_t rows, std::size_t cols, std::size_t stride,
                               float temperature, std::uint64_t seed, bool masked) {
    kernel_case<float> c = blank_case(std::move(name), rows, cols, stride, temperature);
    rng g(seed);
    if (masked && rows >= 3) {
        c.mask.assign(rows, 1);
        c.mask[1] = 0;
        c.mask[2] = 7;
    }
    for (std::size_t n = 0; n < rows; ++n) {
        if (!c.active(n)) {
            c.ids[n] = -3;
            continue;
        }
        random_row(c, n, static_cast<int>((n + seed) % 4), g);
    }
    random_grads(c, g);
    return c;
}

// ---------------------------------------------------------------------------------------------
// The oracle: exact (long double) values, gradients and the error bounds of the header comment.
// ---------------------------------------------------------------------------------------------
struct side_truth {
    std::vector<ld> x;    ///< logits / T (−inf kept)
    std::vector<ld> w;    ///< softmax weights
    std::vector<ld> eta;  ///< relative error bound of each SIMD weight
    ld max = -std::numeric_limits<ld>::infinity();
    ld lse = -std::numeric_limits<ld>::infinity();
    ld lam = 0;           ///< bound on |Δ lse| of the SIMD
};

side_truth analyse_side(const std::vector<float>& values, ld inv_temperature, ld rho_t) {
    side_truth s;
    const std::size_t V = values.size();
    s.x.resize(V);
    ld probe = -std::numeric_limits<ld>::infinity();
    for (std::size_t v = 0; v < V; ++v) {
        s.x[v] = static_cast<ld>(values[v]) * inv_temperature;
        if (std::isfinite(s.x[v])) {
            s.max = std::max(s.max, s.x[v]);
            if (v < 256) probe = std::max(probe, s.x[v]);
        }
    }
    s.w.assign(V, 0);
    s.eta.assign(V, 0);
    if (!std::isfinite(s.max)) return s;
    ld sum = 0;
    for (std::size_t v = 0; v < V; ++v)
        if (std::isfinite(s.x[v])) sum += std::exp(s.x[v] - s.max);
    s.lse = s.max + std::log(sum);
    const ld gap = std::isfinite(probe) ? std::min<ld>(65, s.max - probe) : 0;
    ld weighted = 0;
    for (std::size_t v = 0; v < V; ++v) {
        if (!std::isfinite(s.x[v])) continue;
        s.w[v] = std::exp(s.x[v] - s.lse);
        s.eta[v] = 4 * u + rho_t * std::fabs(s.x[v]) + u * (s.max - s.x[v] + gap);
        weighted += s.w[v] * s.eta[v];
    }
    s.lam = weighted + 48 * u;
    return s;
}

struct row_truth {
    ld temperature = 1, alpha = 0, rho_t = 0;
    std::size_t y = no_target;
    bool kl = false;
    side_truth z, r;
    ld logprob = 0, rkl = 0, fkl = 0;
    bool rkl_finite = true, fkl_finite = true;
    ld lse_gap = 0;  ///< lse_z − lse_r
    ld max_abs_d = 0;
    ld tol_lp = 0, tol_rkl = 0, tol_fkl = 0;
    ld noise = 0;    ///< long-double noise of the reference's values
};

/// `r` empty: no KL. y = no_target: no log-prob.
row_truth analyse_row(const std::vector<float>& z, const std::vector<float>& r, std::size_t y,
                      float temperature) {
    row_truth t;
    t.temperature = temperature;
    const float inv_t_f = 1.0f / temperature;
    t.alpha = std::fabs(static_cast<ld>(inv_t_f) * static_cast<ld>(temperature) - 1);
    t.rho_t = t.alpha + (inv_t_f == 1.0f ? 0 : u);
    const ld inv_temperature = 1 / static_cast<ld>(temperature);
    t.z = analyse_side(z, inv_temperature, t.rho_t);
    t.y = y;
    ld zy = 0;
    if (y != no_target) {
        zy = t.z.x[y];
        t.logprob = std::min<ld>(0, zy - t.z.lse);
        t.tol_lp = t.rho_t * std::fabs(zy) + t.z.lam + 2 * u * std::fabs(t.logprob) + tiny_abs;
    }
    ld ep_abs = 0, em_abs = 0;
    if (!r.empty()) {
        t.kl = true;
        t.r = analyse_side(r, inv_temperature, t.rho_t);
        t.lse_gap = t.z.lse - t.r.lse;
        const std::size_t V = z.size();
        ld rkl = 0, fkl = 0, ep_d = 0, em_d = 0;
        for (std::size_t v = 0; v < V; ++v) {
            const bool zf = std::isfinite(t.z.x[v]), rf = std::isfinite(t.r.x[v]);
            if (zf && !rf) t.rkl_finite = false;
            if (rf && !zf) t.fkl_finite = false;
            if (!zf || !rf) continue;
            const ld d = t.z.x[v] - t.r.x[v];
            t.max_abs_d = std::max(t.max_abs_d, std::fabs(d));
            const ld lp = t.z.x[v] - t.z.lse, lm = t.r.x[v] - t.r.lse;
            rkl += t.z.w[v] * (lp - lm);
            fkl += t.r.w[v] * (lm - lp);
            ep_d += t.z.w[v] * d;
            em_d += t.r.w[v] * d;
            ep_abs += t.z.w[v] * std::fabs(d);
            em_abs += t.r.w[v] * std::fabs(d);
        }
        t.rkl = t.rkl_finite ? std::max<ld>(0, rkl) : std::numeric_limits<ld>::infinity();
        t.fkl = t.fkl_finite ? std::max<ld>(0, fkl) : std::numeric_limits<ld>::infinity();
        ld sr = 0, sf = 0;
        for (std::size_t v = 0; v < V; ++v) {
            if (!std::isfinite(t.z.x[v]) || !std::isfinite(t.r.x[v])) continue;
            const ld d = t.z.x[v] - t.r.x[v];
            const ld scaled = t.rho_t * (std::fabs(t.z.x[v]) + std::fabs(t.r.x[v])) + u * std::fabs(d);
            sr += t.z.w[v] * (scaled + t.z.eta[v] * (std::fabs(d - ep_d) + 1));
            sf += t.r.w[v] * (scaled + t.r.eta[v] * (std::fabs(d - em_d) + 1));
        }
        t.tol_rkl = sr + 48 * u * (ep_abs + std::fabs(ep_d) + 1) + t.r.lam + 2 * u * t.rkl + tiny_abs;
        t.tol_fkl = sf + 48 * u * (em_abs + std::fabs(em_d) + 1) + t.z.lam + 2 * u * t.fkl + tiny_abs;
    }
    t.noise = 1e-13L * (1 + std::fabs(t.z.lse) + (t.kl ? std::fabs(t.r.lse) : 0) + ep_abs + em_abs +
                        std::fabs(zy));
    return t;
}

struct grad_truth {
    ld value = 0;  ///< exact ∂L/∂z_v
    ld tol = 0;    ///< bound on |SIMD − reference| (fp32 output)
    ld noise = 0;  ///< bound on |reference − exact| beyond its fp32 rounding
};

/// The exact gradient entry and its bounds; g_* are the upstream gradients (0 when absent).
grad_truth gradient_entry(const row_truth& t, std::size_t v, ld g_lp, ld g_r, ld g_f) {
    const ld T = t.temperature;
    const ld p = t.z.w[v];
    const ld m = t.kl ? t.r.w[v] : 0;
    const bool zf = std::isfinite(t.z.x[v]);
    const ld d = (t.kl && zf && std::isfinite(t.r.x[v])) ? t.z.x[v] - t.r.x[v] : 0;
    const ld kl = g_r != 0 ? t.rkl : 0;
    grad_truth out;
    ld c = (g_f - g_lp) / T;
    if (g_r != 0 && zf) c += g_r * (d - t.lse_gap - kl) / T;
    out.value = zf ? p * c : 0;
    if (g_f != 0) out.value -= g_f * m / T;
    if (v == t.y) out.value += g_lp / T;
    const ld k0 = (g_f - g_lp - (g_r != 0 ? g_r * (t.lse_gap + kl) : 0)) / T;
    ld dk0 = (t.alpha + u) * std::fabs(k0);
    if (g_r != 0) dk0 += std::fabs(g_r) / T * (t.z.lam + t.r.lam + t.tol_rkl);
    ld tol = 0;
    if (zf && p > 0) {
        const ld rho_z = t.z.eta[v] + t.z.lam + 2 * u;
        tol += p * (std::fabs(c) * (rho_z + 2 * u) + dk0);
        if (g_r != 0)
            tol += p * std::fabs(g_r) / T *
                   ((t.alpha + 2 * u) * std::fabs(d) +
                    t.rho_t * (std::fabs(t.z.x[v]) + std::fabs(t.r.x[v])));
    }
    if (g_f != 0 && m > 0) tol += std::fabs(g_f) / T * m * (t.r.eta[v] + t.r.lam + 2 * u + t.alpha + 3 * u);
    if (v == t.y) tol += (t.alpha + 2 * u) * std::fabs(g_lp) / T;
    const ld scale = (std::fabs(g_lp) +
                      (g_r != 0 ? std::fabs(g_r) * (1 + t.max_abs_d + std::fabs(t.lse_gap) + kl) : 0) +
                      std::fabs(g_f)) /
                     T;
    tol += 2 * u * std::fabs(out.value) + 1e-30L * scale + tiny_abs;
    out.tol = tol;
    out.noise = 1e-13L * scale * (p + m + (v == t.y ? 1 : 0)) + tiny_abs;
    return out;
}

// ---------------------------------------------------------------------------------------------
// Reporting: loops over millions of entries record only the worst violation.
// ---------------------------------------------------------------------------------------------
struct violations {
    std::size_t count = 0;
    ld worst = 0;
    std::string first;

    template <class Describe>
    void check(ld error, ld tolerance, Describe&& describe) {
        if (error <= tolerance) return;  // false for NaN: recorded
        ++count;
        const ld ratio = std::isnan(error) ? std::numeric_limits<ld>::infinity() : error / tolerance;
        if (count == 1 || ratio > worst) {
            worst = ratio;
            std::ostringstream os;
            os.precision(9);
            describe(os);
            os << " | error " << static_cast<double>(error) << " > tolerance "
               << static_cast<double>(tolerance);
            first = os.str();
        }
    }
    template <class Describe>
    void require(bool ok, Describe&& describe) {
        if (ok) return;
        ++count;
        if (count == 1 || worst < std::numeric_limits<ld>::infinity()) {
            worst = std::numeric_limits<ld>::infinity();
            std::ostringstream os;
            os.precision(9);
            describe(os);
            first = os.str();
        }
    }
    std::string report() const { return std::to_string(count) + " violation(s); worst: " + first; }
};

#define CHECK_NO_VIOLATIONS(v)           \
    do {                                 \
        INFO((v).report());              \
        CHECK((v).count == 0);           \
    } while (false)

/// ulp of a bf16 value of magnitude |x| (the smallest subnormal's for 0).
ld bf16_ulp(ld x) {
    x = std::fabs(x);
    if (x < 0x1p-126L) return 0x1p-133L;
    int e = 0;
    (void)std::frexp(static_cast<double>(x), &e);  // x = f·2^e, f ∈ [0.5, 1)
    return std::ldexp(1.0L, e - 1 - 7);
}

float bf16_value(bf16 b) { return k::to_float(b); }

// ---------------------------------------------------------------------------------------------
// Which terms a call asks for.
// ---------------------------------------------------------------------------------------------
struct combo {
    const char* name;
    bool v_lp, v_rk, v_fk;  ///< values
    bool g_lp, g_rk, g_fk;  ///< upstream gradients
    bool lp() const { return v_lp || g_lp; }
    bool kl() const { return v_rk || v_fk || g_rk || g_fk; }
};

constexpr combo all_combos[] = {
    {"log-prob", true, false, false, true, false, false},
    {"reverse KL", false, true, false, false, true, false},
    {"forward KL", false, false, true, false, false, true},
    {"fused", true, true, true, true, true, true},
    {"all values, log-prob gradient", true, true, true, true, false, false},
    {"both KL gradients, no values", false, false, false, false, true, true},
};

template <class T>
k::token_inputs<T> inputs_for(const kernel_case<T>& c, const combo& cb) {
    return {c.z.view(), cb.kl() ? c.r.view() : k::logits_view<T>{},
            cb.lp() ? std::span<const std::int64_t>(c.ids) : std::span<const std::int64_t>{}};
}

template <class T>
k::kernel_options options_for(const kernel_case<T>& c, unsigned threads = 0) {
    return {c.temperature, c.mask, threads, true};
}

struct value_buffers {
    std::vector<float> lp, rk, fk;
    explicit value_buffers(std::size_t rows, float fill = 999.0f) : lp(rows, fill), rk(rows, fill), fk(rows, fill) {}
    k::token_values values(bool want_lp, bool want_rk, bool want_fk) {
        return {want_lp ? std::span<float>(lp) : std::span<float>{},
                want_rk ? std::span<float>(rk) : std::span<float>{},
                want_fk ? std::span<float>(fk) : std::span<float>{}};
    }
};

template <class T>
k::token_grads grads_for(const kernel_case<T>& c, const combo& cb) {
    return {cb.g_lp ? std::span<const float>(c.g_lp) : std::span<const float>{},
            cb.g_rk ? std::span<const float>(c.g_rk) : std::span<const float>{},
            cb.g_fk ? std::span<const float>(c.g_fk) : std::span<const float>{}};
}

template <class T>
std::vector<row_truth> analyse_case(const kernel_case<T>& c) {
    std::vector<row_truth> truth(c.rows());
    for (std::size_t n = 0; n < c.rows(); ++n) {
        if (!c.active(n)) continue;
        truth[n] = analyse_row(c.z.widened_row(n), c.r.widened_row(n), static_cast<std::size_t>(c.ids[n]),
                               c.temperature);
    }
    return truth;
}

constexpr float grad_sentinel = 7777.0f;

/// Checks a call's values (SIMD and reference, same request) against each other and the oracle.
void check_values(const char* what, std::size_t rows, const std::vector<std::uint8_t>& mask,
                  const std::vector<row_truth>& truth, const std::vector<float>& simd,
                  const std::vector<float>& ref, int term, violations& bad) {
    for (std::size_t n = 0; n < rows; ++n) {
        const auto where = [&](std::ostream& os) {
            os << what << " row " << n << ": simd " << simd[n] << ", reference " << ref[n];
        };
        if (!mask.empty() && mask[n] == 0) {
            bad.require(bits_of(simd[n]) == 0 && bits_of(ref[n]) == 0,
                        [&](std::ostream& os) { where(os); os << " (masked row must be exactly +0)"; });
            continue;
        }
        const row_truth& t = truth[n];
        const ld exact = term == 0 ? t.logprob : term == 1 ? t.rkl : t.fkl;
        const ld tol = term == 0 ? t.tol_lp : term == 1 ? t.tol_rkl : t.tol_fkl;
        // Invariants, exactly: log-prob ≤ 0, KL ≥ 0 (never NaN).
        if (term == 0)
            bad.require(simd[n] <= 0.0f && ref[n] <= 0.0f,
                        [&](std::ostream& os) { where(os); os << " (log-prob must be <= 0)"; });
        else
            bad.require(simd[n] >= 0.0f && ref[n] >= 0.0f,
                        [&](std::ostream& os) { where(os); os << " (KL must be >= 0)"; });
        bad.check(std::fabs(static_cast<ld>(simd[n]) - ref[n]), tol, [&](std::ostream& os) {
            where(os);
            os << " (simd vs reference)";
        });
        bad.check(std::fabs(static_cast<ld>(ref[n]) - exact), u * std::fabs(exact) + tiny_abs + t.noise,
                  [&](std::ostream& os) {
                      where(os);
                      os << ", exact " << static_cast<double>(exact) << " (reference vs oracle)";
                  });
    }
}

/// Runs every combo of one case on one instruction set, forward and backward (fp32 and bf16
/// gradients), against the reference; with rows_fn == nullptr, the reference alone against the
/// oracle (and the invariants).
template <class T>
void check_against_reference(kd::rows_function rows_fn, const kernel_case<T>& c,
                             std::span<const combo> which, const std::vector<row_truth>& truth) {
    const std::size_t N = c.rows(), V = c.cols();
    // The gradient's own stride differs from the logits' (they are independent unless in place).
    const std::size_t dz_stride = V + (c.z.stride - V + 5) % 11;
    for (const combo& cb : which) {
        INFO("case " << c.name << ", V = " << V << ", N = " << N << ", T = " << c.temperature
                     << ", terms: " << cb.name << (rows_fn ? "" : " (the reference alone: 'simd' is the reference)"));
        const auto in = inputs_for(c, cb);
        const auto opt = options_for(c);
        violations bad;

        // Forward.
        if (cb.v_lp || cb.v_rk || cb.v_fk) {
            value_buffers ref(N), simd(N);
            k::reference::forward(in, ref.values(cb.v_lp, cb.v_rk, cb.v_fk), opt);
            if (rows_fn)
                kd::forward_with(rows_fn, in, simd.values(cb.v_lp, cb.v_rk, cb.v_fk), opt);
            else  // reference only: its outputs stand in for the SIMD's
                k::reference::forward(in, simd.values(cb.v_lp, cb.v_rk, cb.v_fk), opt);
            if (cb.v_lp) check_values("forward log-prob", N, c.mask, truth, simd.lp, ref.lp, 0, bad);
            if (cb.v_rk) check_values("forward reverse KL", N, c.mask, truth, simd.rk, ref.rk, 1, bad);
            if (cb.v_fk) check_values("forward forward KL", N, c.mask, truth, simd.fk, ref.fk, 2, bad);
        }

        // Backward, fp32 and bf16 gradients, with the values it also returns.
        const auto grads = grads_for(c, cb);
        value_buffers ref_v(N), simd_v(N), simd_vb(N);
        matrix<float> ref_dz(N, V, dz_stride, grad_sentinel), simd_dz(N, V, dz_stride, grad_sentinel);
        matrix<bf16> simd_dzb(N, V, dz_stride, k::to_bf16(grad_sentinel));
        k::reference::backward(in, grads, ref_dz.grad_view(), opt, ref_v.values(cb.v_lp, cb.v_rk, cb.v_fk));
        if (rows_fn) {
            kd::backward_with(rows_fn, in, grads, simd_dz.grad_view(), opt, simd_v.values(cb.v_lp, cb.v_rk, cb.v_fk));
            kd::backward_with(rows_fn, in, grads, simd_dzb.grad_view(), opt,
                              simd_vb.values(cb.v_lp, cb.v_rk, cb.v_fk));
        } else {
            k::reference::backward(in, grads, simd_dz.grad_view(), opt, simd_v.values(cb.v_lp, cb.v_rk, cb.v_fk));
            k::reference::backward(in, grads, simd_dzb.grad_view(), opt, simd_vb.values(cb.v_lp, cb.v_rk, cb.v_fk));
        }
        if (cb.v_lp) {
            check_values("backward log-prob", N, c.mask, truth, simd_v.lp, ref_v.lp, 0, bad);
            check_values("backward (bf16) log-prob", N, c.mask, truth, simd_vb.lp, ref_v.lp, 0, bad);
        }
        if (cb.v_rk) {
            check_values("backward reverse KL", N, c.mask, truth, simd_v.rk, ref_v.rk, 1, bad);
            check_values("backward (bf16) reverse KL", N, c.mask, truth, simd_vb.rk, ref_v.rk, 1, bad);
        }
        if (cb.v_fk) {
            check_values("backward forward KL", N, c.mask, truth, simd_v.fk, ref_v.fk, 2, bad);
            check_values("backward (bf16) forward KL", N, c.mask, truth, simd_vb.fk, ref_v.fk, 2, bad);
        }
        // The reference's bf16 output is its fp32 output rounded (checked once per case: costly).
        matrix<bf16> ref_dzb;
        const bool run_ref_bf16 = which.size() == 1 || std::string(cb.name) == "fused";
        if (run_ref_bf16) {
            ref_dzb = matrix<bf16>(N, V, dz_stride, k::to_bf16(grad_sentinel));
            k::reference::backward(in, grads, ref_dzb.grad_view(), opt);
        }

        for (std::size_t n = 0; n < N; ++n) {
            if (!c.active(n)) {
                bool zero = true;
                for (std::size_t v = 0; v < V; ++v)
                    zero = zero && bits_of(simd_dz.at(n, v)) == 0 && bits_of(simd_dzb.at(n, v)) == 0 &&
                           bits_of(ref_dz.at(n, v)) == 0;
                bad.require(zero, [&](std::ostream& os) { os << "masked row " << n << ": gradient not exactly +0"; });
                continue;
            }
            const row_truth& t = truth[n];
            const ld g_lp = cb.g_lp ? c.g_lp[n] : 0, g_r = cb.g_rk ? c.g_rk[n] : 0, g_f = cb.g_fk ? c.g_fk[n] : 0;
            ld sum_simd = 0, sum_tol = 0, sum_abs = 0;
            for (std::size_t v = 0; v < V; ++v) {
                const grad_truth e = gradient_entry(t, v, g_lp, g_r, g_f);
                const float s = simd_dz.at(n, v), r = ref_dz.at(n, v);
                const auto where = [&](std::ostream& os) {
                    os << "gradient (" << n << ", " << v << "): simd " << s << ", reference " << r
                       << ", exact " << static_cast<double>(e.value) << ", p " << static_cast<double>(t.z.w[v]);
                };
                bad.check(std::fabs(static_cast<ld>(s) - r), e.tol, where);
                bad.check(std::fabs(static_cast<ld>(r) - e.value), u * std::fabs(e.value) + e.noise,
                          [&](std::ostream& os) { where(os); os << " (reference vs oracle)"; });
                if (!std::isfinite(t.z.x[v]))  // a masked vocabulary entry: exactly 0
                    bad.require(s == 0.0f && r == 0.0f && k::to_float(simd_dzb.at(n, v)) == 0.0f,
                                [&](std::ostream& os) { where(os); os << " (-inf logit: gradient must be exactly 0)"; });
                // bf16 gradient: the RNE rounding of a value within 2·tol of the SIMD's fp32 value,
                // and within tol + 1 bf16 ulp of the reference's bf16 rounding.
                const bf16 b = simd_dzb.at(n, v);
                const float lo = static_cast<float>(s - 2 * e.tol), hi = static_cast<float>(s + 2 * e.tol);
                const float bv = bf16_value(b);
                bad.require(bv >= bf16_value(k::to_bf16(lo)) && bv <= bf16_value(k::to_bf16(hi)),
                            [&](std::ostream& os) {
                                where(os);
                                os << " (bf16 gradient " << bv << " is not a rounding of the fp32 one)";
                            });
                const float rb = bf16_value(k::to_bf16(r));
                bad.check(std::fabs(static_cast<ld>(bv) - rb), e.tol + bf16_ulp(std::max(std::fabs(bv), std::fabs(rb))),
                          [&](std::ostream& os) { where(os); os << " (bf16 gradient " << bv << " vs reference " << rb << ")"; });
                if (run_ref_bf16)
                    bad.require(ref_dzb.at(n, v) == k::to_bf16(r), [&](std::ostream& os) {
                        where(os);
                        os << " (reference bf16 output is not its fp32 output rounded)";
                    });
                sum_simd += s;
                sum_tol += e.tol;
                sum_abs += std::fabs(s);
            }
            // Invariant: every term's gradient sums to 0 over the vocabulary.
            bad.check(std::fabs(sum_simd), sum_tol + 1e-18L * V * sum_abs,
                      [&](std::ostream& os) { os << "row " << n << ": sum of the gradient"; });
        }
        // Padding between gradient rows is never written.
        for (std::size_t i = 0; i < simd_dz.size; ++i) {
            if (i % dz_stride < V) continue;
            bad.require(simd_dz.flat(i) == grad_sentinel && simd_dzb.flat(i) == k::to_bf16(grad_sentinel) &&
                            ref_dz.flat(i) == grad_sentinel,
                        [&](std::ostream& os) {
                            os << "gradient padding at flat index " << i << " was written: simd " << simd_dz.flat(i)
                               << ", simd bf16 " << k::to_float(simd_dzb.flat(i)) << ", reference " << ref_dz.flat(i);
                        });
        }
        CHECK_NO_VIOLATIONS(bad);
    }
}

/// fp32 and bf16 logits of a float case, on one instruction set.
void check_case_both_types(kd::rows_function rows_fn, const kernel_case<float>& c,
                           std::span<const combo> which = all_combos) {
    check_against_reference(rows_fn, c, which, analyse_case(c));
    const auto b = convert_case<bf16>(c);
    check_against_reference(rows_fn, b, which, analyse_case(b));
}

}  // namespace

// =============================================================================================
// 1. Agreement with the reference, every instruction set.
// =============================================================================================

TEMPLATE_TEST_CASE("SIMD kernels match the reference at vector, unroll, block and probe boundaries",
                   "[kernels][agreement]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    // Widths 4/8/16 floats and the 2x unroll: every size around 4, 8, 16, 32, 64; the 256-entry
    // probe; blocks of 64 vectors (256, 512, 1024 entries); and random lengths.
    std::vector<std::size_t> sizes = {1,  2,  3,  4,  5,   7,   8,   9,   15,   16,   17,   31,  32,
                                      33, 63, 64, 65, 127, 255, 256, 257, 1023, 1024, 1025, 2049};
    rng g(20240601);
    for (int i = 0; i < 5; ++i) sizes.push_back(66 + g.index(3000));
    std::uint64_t seed = 1;
    for (const float temperature : {1.0f, 0.7f}) {
        for (const std::size_t V : sizes) {
            const std::size_t pad[] = {0, 1, 3, 8, 17};
            const std::size_t stride = V + pad[seed % 5];
            const auto c = random_case("random", 4, V, stride, temperature, ++seed, true);
            check_case_both_types(TestType::rows(), c);
        }
    }
}

TEMPLATE_TEST_CASE("SIMD kernels match the reference at V = 32000", "[kernels][agreement]", isa_avx512,
                   isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    for (const float temperature : {1.0f, 0.7f}) {
        const auto c = random_case("V = 32000", 3, 32000, 32003, temperature, 77, false);
        check_case_both_types(TestType::rows(), c);
    }
}

TEST_CASE("Runtime dispatch runs the best instruction set of this CPU", "[kernels][agreement]") {
    const auto c = random_case("dispatch", 5, 1000, 1003, 0.7f, 5, true);
    for (const combo& cb : all_combos) {
        INFO("terms: " << cb.name);
        const auto in = inputs_for(c, cb);
        const auto opt = options_for(c);
        value_buffers pub(c.rows()), best(c.rows());
        k::simd::forward(in, pub.values(cb.v_lp, cb.v_rk, cb.v_fk), opt);
        kd::forward_with(best_isa(), in, best.values(cb.v_lp, cb.v_rk, cb.v_fk), opt);
        CHECK(std::memcmp(pub.lp.data(), best.lp.data(), c.rows() * sizeof(float)) == 0);
        CHECK(std::memcmp(pub.rk.data(), best.rk.data(), c.rows() * sizeof(float)) == 0);
        CHECK(std::memcmp(pub.fk.data(), best.fk.data(), c.rows() * sizeof(float)) == 0);
        // checked = false skips the argument checks only: the same bits.
        value_buffers unchecked(c.rows());
        k::kernel_options fast = opt;
        fast.checked = false;
        k::simd::forward(in, unchecked.values(cb.v_lp, cb.v_rk, cb.v_fk), fast);
        CHECK(std::memcmp(pub.lp.data(), unchecked.lp.data(), c.rows() * sizeof(float)) == 0);
        CHECK(std::memcmp(pub.rk.data(), unchecked.rk.data(), c.rows() * sizeof(float)) == 0);
        CHECK(std::memcmp(pub.fk.data(), unchecked.fk.data(), c.rows() * sizeof(float)) == 0);
        matrix<float> a(c.rows(), c.cols(), c.cols(), 0.0f, true), b(c.rows(), c.cols(), c.cols(), 0.0f, true);
        k::simd::backward(in, grads_for(c, cb), a.grad_view(), opt);
        kd::backward_with(best_isa(), in, grads_for(c, cb), b.grad_view(), opt, {});
        CHECK(a.same_entries(b));
    }
}

// =============================================================================================
// 2. Extreme inputs.
// =============================================================================================

namespace {

/// ±1e4 logits (V = 300: past the probe, a tail on every width).
kernel_case<float> extreme_pm1e4(float temperature) {
    const std::size_t V = 300;
    kernel_case<float> c = blank_case("+-1e4", 4, V, V + 2, temperature);
    rng g(11);
    for (std::size_t v = 0; v < V; ++v) {
        c.z.at(0, v) = c.z.at(1, v) = -1e4f;
        c.r.at(0, v) = -1e4f;
        c.z.at(2, v) = v % 2 == 0 ? 1e4f : -1e4f;  // many maxima
        c.r.at(2, v) = -c.z.at(2, v);
        c.z.at(3, v) = 1e4f + g.uniform(-1.0, 1.0);  // r = z − 1e4 exactly: the KLs are 0
        c.r.at(3, v) = c.z.at(3, v) - 1e4f;
    }
    c.z.at(0, 137) = c.z.at(1, 137) = 1e4f;
    c.r.at(0, 290) = 1e4f;
    for (std::size_t v = 0; v < V; ++v) c.r.at(1, v) = c.z.at(1, v);  // r = z: the KLs are 0
    c.ids = {137, 5, 3, 299};
    random_grads(c, g);
    return c;
}

/// The row maximum beyond the 256-entry probe: just under the headroom (positive exp arguments
/// up to 63.5), just over it and far over it (the exact path), and a −∞ probe (V = 1000).
kernel_case<float> extreme_beyond_probe(float temperature) {
    const std::size_t V = 1000;
    kernel_case<float> c = blank_case("max beyond the probe", 4, V, V + 7, temperature);
    rng g(12);
    for (std::size_t n = 0; n < 4; ++n)
        for (std::size_t v = 0; v < V; ++v) {
            c.z.at(n, v) = g.uniform(-3.0, 0.0) * temperature;
            c.r.at(n, v) = g.uniform(-3.0, 0.0) * temperature;
        }
    for (std::size_t n = 0; n < 4; ++n) c.z.at(n, 0) = c.r.at(n, 0) = 0.0f;  // probe max 0
    c.z.at(0, 999) = 200.0f * temperature;                                    // exact path
    c.r.at(0, 998) = 200.0f * temperature;
    c.z.at(1, 999) = 63.5f * temperature;  // fast path, exp arguments up to +63.5
    c.r.at(1, 700) = 63.5f * temperature;
    c.z.at(2, 999) = 64.5f * temperature;  // just past the headroom
    c.r.at(2, 999) = 64.5f * temperature;
    for (std::size_t v = 0; v < 256; ++v) c.z.at(3, v) = c.r.at(3, v) = -inf;  // −∞ probe
    c.ids = {999, 3, 999, 300};
    random_grads(c, g);
    return c;
}

/// −∞ entries (the same in z and r) in the vector body and in every tail (V = 37).
kernel_case<float> extreme_masked_vocabulary(float temperature) {
    const std::size_t V = 37;
    kernel_case<float> c = blank_case("masked vocabulary", 4, V, V, temperature);
    rng g(13);
    for (std::size_t n = 0; n < 4; ++n)
        for (std::size_t v = 0; v < V; ++v) {
            c.z.at(n, v) = g.uniform(-5.0, 5.0);
            c.r.at(n, v) = g.uniform(-5.0, 5.0);
        }
    for (std::size_t v = 0; v < V; ++v)
        if (v != 35) c.z.at(0, v) = c.r.at(0, v) = -inf;  // one finite entry: ℓ = 0, KLs = 0
    for (const std::size_t v : {0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 36}) c.z.at(1, v) = c.r.at(1, v) = -inf;
    for (std::size_t v = 1; v < V; v += 2) c.z.at(2, v) = c.r.at(2, v) = -inf;
    for (std::size_t v = 1; v + 1 < V; ++v) c.z.at(3, v) = c.r.at(3, v) = -inf;  // entries 0 and 36
    c.ids = {35, 2, 4, 36};
    random_grads(c, g);
    return c;
}

}  // namespace

TEMPLATE_TEST_CASE("Extreme logits: +-1e4, the maximum beyond the probe, masked vocabulary",
                   "[kernels][extreme]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    // Extreme temperatures: logits/T spans ±500 (T = 0.01) or ±0.1 (T = 50).
    for (const float temperature : {0.01f, 50.0f})
        check_case_both_types(TestType::rows(), random_case("extreme temperature", 4, 300, 301, temperature, 17, true));
    for (const float temperature : {1.0f, 0.7f}) {
        check_case_both_types(TestType::rows(), extreme_pm1e4(temperature));
        check_case_both_types(TestType::rows(), extreme_beyond_probe(temperature));
        check_case_both_types(TestType::rows(), extreme_masked_vocabulary(temperature));
    }
}

TEMPLATE_TEST_CASE("V = 262144: a large vocabulary, including the worst case of the headroom",
                   "[kernels][extreme]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    const std::size_t V = 262144;
    kernel_case<float> c = blank_case("V = 262144", 2, V, V + 16, 1.0f);
    rng g(14);
    for (std::size_t v = 0; v < V; ++v) {
        c.z.at(0, v) = g.uniform(-8.0, 8.0);
        c.r.at(0, v) = c.z.at(0, v) + g.uniform(-1.0, 1.0);
        // Row 1: probe max 0, then every later entry just under 64 above it: the fp32 sums reach
        // 2^18·e^64 without taking the exact path.
        c.z.at(1, v) = v < 256 ? 0.0f : g.uniform(62.5, 63.9);
        c.r.at(1, v) = g.uniform(-8.0, 8.0);
    }
    c.ids = {12345, 200000};
    random_grads(c, g);
    const combo which[] = {all_combos[3], all_combos[0]};
    check_case_both_types(TestType::rows(), c, which);
}

TEST_CASE("N = 0 rows is valid and does nothing", "[kernels]") {
    for (const std::size_t V : {std::size_t{0}, std::size_t{5}}) {
        const k::token_inputs<float> in{{nullptr, 0, V, V}, {nullptr, 0, V, V}, {}};
        const k::token_inputs<bf16> inb{{nullptr, 0, V, V}, {nullptr, 0, V, V}, {}};
        const k::token_values none{};
        const k::token_grads no_grads{};
        k::gradient_view<float> dz{nullptr, 0, V, V};
        k::gradient_view<bf16> dzb{nullptr, 0, V, V};
        CHECK_NOTHROW(k::reference::forward(in, none));
        CHECK_NOTHROW(k::reference::backward(in, no_grads, dz));
        CHECK_NOTHROW(k::simd::forward(in, none));
        CHECK_NOTHROW(k::simd::backward(in, no_grads, dz));
        CHECK_NOTHROW(k::simd::forward(inb, none));
        CHECK_NOTHROW(k::simd::backward(inb, no_grads, dzb));
        CHECK_NOTHROW(k::reference::backward(inb, no_grads, dzb));
        // Every term requested, all spans of size 0.
        std::vector<float> empty;
        const k::token_values all{empty, empty, empty};
        const k::token_grads all_grads{empty, empty, empty};
        CHECK_NOTHROW(k::reference::forward(in, all));
        CHECK_NOTHROW(k::simd::forward(in, all));
        CHECK_NOTHROW(k::reference::backward(in, all_grads, dz, {}, all));
        CHECK_NOTHROW(k::simd::backward(in, all_grads, dz, {}, all));
    }
}

TEST_CASE("A backward call with no term writes a zero gradient", "[kernels]") {
    const auto c = random_case("no terms", 3, 40, 41, 1.0f, 3, false);
    const k::token_inputs<float> in{c.z.view(), {}, {}};
    matrix<float> ref(3, 40, 43, grad_sentinel), simd(3, 40, 43, grad_sentinel);
    k::reference::backward(in, k::token_grads{}, ref.grad_view());
    k::simd::backward(in, k::token_grads{}, simd.grad_view());
    for (std::size_t n = 0; n < 3; ++n)
        for (std::size_t v = 0; v < 40; ++v) {
            CHECK(ref.at(n, v) == 0.0f);
            CHECK(simd.at(n, v) == 0.0f);
        }
    CHECK(ref.at(0, 40) == grad_sentinel);
    CHECK(simd.at(0, 40) == grad_sentinel);
}

// =============================================================================================
// 3. Invariants on random data, exactly: ℓ ≤ 0, KL ≥ 0 (0 ≤ KL ≤ bound when z = r or z = r + c),
//    gradients summing to 0 per row.
// =============================================================================================

TEMPLATE_TEST_CASE("Invariants hold exactly on random rows", "[kernels][invariants]", isa_avx512, isa_avx2,
                   isa_sse2) {
    RSPO_REQUIRE_ISA();
    rng g(99);
    const combo& fused = all_combos[3];
    for (int trial = 0; trial < 40; ++trial) {
        const std::size_t V = 1 + g.index(trial < 20 ? 80 : 3000);
        const float temperature = g.uniform(0.3, 2.0);
        kernel_case<float> c = blank_case("invariants", 5, V, V, temperature);
        random_row(c, 0, trial % 4, g);
        const double scales[] = {1.0, 30.0, 300.0};
        const double s = scales[g.index(3)];
        for (std::size_t v = 0; v < V; ++v) {
            c.z.at(1, v) = c.r.at(1, v) = g.uniform(-s, s);     // z = r: KL = 0
            c.r.at(2, v) = g.uniform(-s, s);                      // z = r + c: KL = 0
            c.z.at(2, v) = c.r.at(2, v) + (trial % 2 == 0 ? 3.75f : 1000.0f);
            c.z.at(3, v) = g.uniform(-100.0, 100.0);              // wide
            c.r.at(3, v) = g.uniform(-100.0, 100.0);
            c.z.at(4, v) = g.uniform(-1e-3, 1e-3);                // nearly uniform: ℓ ≈ −log V
            c.r.at(4, v) = g.uniform(-1e-3, 1e-3);
        }
        for (std::size_t n = 1; n < 5; ++n) c.ids[n] = static_cast<std::int64_t>(g.index(V));
        random_grads(c, g);
        const auto truth = analyse_case(c);
        const auto in = inputs_for(c, fused);
        const auto opt = options_for(c);
        value_buffers out(5);
        matrix<float> dz(5, V, V, 0.0f);
        kd::backward_with(TestType::rows(), in, grads_for(c, fused), dz.grad_view(), opt,
                          out.values(true, true, true));
        violations bad;
        for (std::size_t n = 0; n < 5; ++n) {
            const auto where = [&](std::ostream& os) {
                os << "trial " << trial << " V " << V << " T " << temperature << " row " << n << ": logprob "
                   << out.lp[n] << ", reverse KL " << out.rk[n] << ", forward KL " << out.fk[n];
            };
            bad.require(out.lp[n] <= 0.0f && out.rk[n] >= 0.0f && out.fk[n] >= 0.0f, where);
            if (n == 1 || n == 2) {
                bad.check(out.rk[n], truth[n].tol_rkl, where);
                bad.check(out.fk[n], truth[n].tol_fkl, where);
            }
            ld sum = 0, tol = 0;
            for (std::size_t v = 0; v < V; ++v) {
                sum += dz.at(n, v);
                tol += gradient_entry(truth[n], v, c.g_lp[n], c.g_rk[n], c.g_fk[n]).tol;
            }
            bad.check(std::fabs(sum), tol, [&](std::ostream& os) { where(os); os << ", gradient sum " << static_cast<double>(sum); });
        }
        CHECK_NO_VIOLATIONS(bad);
    }
}

// =============================================================================================
// 4. Gradients against central finite differences of the exact values (long double).
// =============================================================================================

namespace {

struct exact_values {
    ld logprob = 0, reverse_kl = 0, forward_kl = 0;
};

exact_values exact_row_values(const std::vector<ld>& z, const std::vector<ld>& r, std::size_t y, ld T) {
    const auto lse = [&](const std::vector<ld>& x) {
        ld m = -std::numeric_limits<ld>::infinity();
        for (const ld v : x) m = std::max(m, v / T);
        ld s = 0;
        for (const ld v : x) s += std::exp(v / T - m);
        return m + std::log(s);
    };
    const ld lz = lse(z), lr = lse(r);
    exact_values e;
    e.logprob = z[y] / T - lz;
    for (std::size_t v = 0; v < z.size(); ++v) {
        if (!std::isfinite(z[v])) continue;
        const ld lp = z[v] / T - lz, lm = r[v] / T - lr;
        e.reverse_kl += std::exp(lp) * (lp - lm);
        e.forward_kl += std::exp(lm) * (lm - lp);
    }
    return e;
}

}  // namespace

TEST_CASE("Gradients match central finite differences of the exact values", "[kernels][gradients]") {
    const auto isas = available_isas();
    for (const float temperature : {0.7f, 1.0f, 1.3f}) {
        for (const std::size_t V : {std::size_t{23}, std::size_t{70}}) {
            kernel_case<float> c = random_case("finite differences", 3, V, V + 1, temperature,
                                               static_cast<std::uint64_t>(V) + 1000, false);
            const auto truth = analyse_case(c);
            for (const combo& cb : all_combos) {
                if (!(cb.g_lp || cb.g_rk || cb.g_fk)) continue;
                INFO("V = " << V << ", T = " << temperature << ", terms: " << cb.name);
                const auto in = inputs_for(c, cb);
                const auto opt = options_for(c);
                matrix<float> ref(3, V, V, 0.0f);
                k::reference::backward(in, grads_for(c, cb), ref.grad_view(), opt);
                std::vector<matrix<float>> simd;
                for (const auto& isa : isas) {
                    simd.emplace_back(3, V, V, 0.0f);
                    kd::backward_with(isa.second, in, grads_for(c, cb), simd.back().grad_view(), opt, {});
                }
                violations bad;
                for (std::size_t n = 0; n < 3; ++n) {
                    const ld g_lp = cb.g_lp ? c.g_lp[n] : 0, g_r = cb.g_rk ? c.g_rk[n] : 0,
                             g_f = cb.g_fk ? c.g_fk[n] : 0;
                    std::vector<ld> z(V), r(V);
                    for (std::size_t v = 0; v < V; ++v) {
                        z[v] = c.z.at(n, v);
                        r[v] = c.r.at(n, v);
                    }
                    const auto y = static_cast<std::size_t>(c.ids[n]);
                    const auto f = [&](const std::vector<ld>& zz) {
                        const exact_values e = exact_row_values(zz, r, y, temperature);
                        return g_lp * e.logprob + g_r * e.reverse_kl + g_f * e.forward_kl;
                    };
                    // Entries: the target, the argmax of z and of r, and a few others (finite).
                    std::vector<std::size_t> entries{y};
                    entries.push_back(static_cast<std::size_t>(std::max_element(z.begin(), z.end()) - z.begin()));
                    entries.push_back(static_cast<std::size_t>(std::max_element(r.begin(), r.end()) - r.begin()));
                    for (std::size_t v = 1; v < V; v += V / 4) entries.push_back(v);
                    for (const std::size_t v : entries) {
                        if (!std::isfinite(z[v])) continue;
                        const auto central = [&](ld h) {
                            std::vector<ld> a = z, b = z;
                            a[v] += h;
                            b[v] -= h;
                            return (f(a) - f(b)) / (2 * h);
                        };
                        // h = 2^-20: truncation h²/6·|f'''| ~ 1e-12; the Richardson difference
                        // |D(h) − D(2h)| (≈ 3× the truncation error) bounds it, and the long-double
                        // rounding of f is below 2V·LDBL_EPSILON·F/h.
                        const ld h = 0x1p-20L;
                        const ld dh = central(h), d2h = central(2 * h);
                        ld largest = 0;  // max |z/T|, |r/T|: every value is a sum of terms this size
                        for (std::size_t w = 0; w < V; ++w)
                            if (std::isfinite(z[w]))
                                largest = std::max({largest, std::fabs(z[w]) / temperature, std::fabs(r[w]) / temperature});
                        const ld F = (std::fabs(g_lp) + std::fabs(g_r) + std::fabs(g_f)) * (1 + 4 * largest);
                        const ld fd_error = std::fabs(dh - d2h) + 2 * V * std::numeric_limits<ld>::epsilon() * F / h;
                        const grad_truth e = gradient_entry(truth[n], v, g_lp, g_r, g_f);
                        const auto where = [&](std::ostream& os) {
                            os << "row " << n << " entry " << v << ": finite difference " << static_cast<double>(dh)
                               << ", analytic " << static_cast<double>(e.value);
                        };
                        bad.check(std::fabs(e.value - dh), fd_error, [&](std::ostream& os) { where(os); os << " (oracle)"; });
                        bad.check(std::fabs(static_cast<ld>(ref.at(n, v)) - dh), u * std::fabs(dh) + tiny_abs + fd_error,
                                  [&](std::ostream& os) { where(os); os << ", reference " << ref.at(n, v); });
                        for (std::size_t i = 0; i < isas.size(); ++i)
                            bad.check(std::fabs(static_cast<ld>(simd[i].at(n, v)) - dh), e.tol + fd_error,
                                      [&](std::ostream& os) {
                                          where(os);
                                          os << ", " << isas[i].first << " " << simd[i].at(n, v);
                                      });
                    }
                }
                CHECK_NO_VIOLATIONS(bad);
            }
        }
    }
}

// =============================================================================================
// 5. Errors: typed, naming the argument, row and entry; the same from every backend.
// =============================================================================================

namespace {

/// A backend: the reference, the public (dispatched) SIMD entry points, or one instruction set.
struct backend {
    std::string name;
    std::string prefix;  ///< the function() prefix of its errors
    kd::rows_function rows = nullptr;
    bool reference = false;

    template <class T>
    void forward(const k::token_inputs<T>& in, const k::token_values& out, const k::kernel_options& opt) const {
        if (reference)
            k::reference::forward(in, out, opt);
        else if (rows == nullptr)
            k::simd::forward(in, out, opt);
        else
            kd::forward_with(rows, in, out, opt);
    }
    template <class T, class G>
    void backward(const k::token_inputs<T>& in, const k::token_grads& grads, k::gradient_view<G> dz,
                  const k::kernel_options& opt, const k::token_values& values = {}) const {
        if (reference)
            k::reference::backward(in, grads, dz, opt, values);
        else if (rows == nullptr)
            k::simd::backward(in, grads, dz, opt, values);
        else
            kd::backward_with(rows, in, grads, dz, opt, values);
    }
};

std::vector<backend> all_backends() {
    std::vector<backend> list{{"reference", "rspo::kernels::reference", nullptr, true},
                              {"simd (dispatched)", "rspo::kernels::simd", nullptr, false}};
    for (const auto& isa : available_isas()) list.push_back({"simd " + isa.first, "rspo::kernels::simd", isa.second, false});
    return list;
}

/// Every backend throws exactly E from its `fn` ("forward" / "backward") about `argument`, with a
/// message "<function>: ..." containing every fragment.
template <class E, class Call>
void expect_error(const char* fn, const std::string& argument, const std::vector<std::string>& fragments,
                  Call&& call) {
    for (const backend& b : all_backends()) {
        INFO("backend " << b.name << ", expected argument '" << argument << "'");
        bool thrown = false;
        try {
            call(b);
        } catch (const rspo::argument_error& e) {
            thrown = true;
            const std::string what = e.what();
            INFO("what(): " << what);
            CHECK(typeid(e) == typeid(E));
            CHECK(e.function() == b.prefix + "::" + fn);
            CHECK(e.argument() == argument);
            CHECK(what.rfind(e.function() + ": ", 0) == 0);
            for (const std::string& fragment : fragments) {
                INFO("fragment: " << fragment);
                CHECK(what.find(fragment) != std::string::npos);
            }
        }
        CHECK(thrown);
    }
}

std::string entry_name(const char* name, std::size_t n, std::size_t v) {
    return std::string(name) + "(" + std::to_string(n) + ", " + std::to_string(v) + ")";
}

/// Rows of finite random logits (no −∞), every row active.
kernel_case<float> clean_case(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    kernel_case<float> c = blank_case("clean", rows, cols, cols + 3, 1.0f);
    rng g(seed);
    for (std::size_t n = 0; n < rows; ++n) {
        for (std::size_t v = 0; v < cols; ++v) {
            c.z.at(n, v) = g.uniform(-4.0, 4.0);
            c.r.at(n, v) = g.uniform(-4.0, 4.0);
        }
        c.ids[n] = static_cast<std::int64_t>(g.index(cols));
    }
    random_grads(c, g);
    return c;
}

/// Runs a forward and a backward of the given terms through backend b (all spans sized right).
template <class T>
void run_terms(const backend& b, const kernel_case<T>& c, const combo& cb, bool backward_pass,
               k::kernel_options opt) {
    const auto in = inputs_for(c, cb);
    value_buffers out(c.rows());
    if (!backward_pass) {
        b.forward(in, out.values(cb.v_lp, cb.v_rk, cb.v_fk), opt);
        return;
    }
    matrix<float> dz(c.rows(), c.cols(), c.cols(), 0.0f);
    b.backward(in, grads_for(c, cb), dz.grad_view(), opt, out.values(cb.v_lp, cb.v_rk, cb.v_fk));
}

template <class T>
void expect_domain_error_both_passes(const kernel_case<T>& c, const combo& cb, const std::string& argument,
                                     const std::vector<std::string>& fragments, bool checked = true) {
    k::kernel_options opt = options_for(c);
    opt.checked = checked;
    expect_error<rspo::domain_error>("forward", argument, fragments,
                                     [&](const backend& b) { run_terms(b, c, cb, false, opt); });
    expect_error<rspo::domain_error>("backward", argument, fragments,
                                     [&](const backend& b) { run_terms(b, c, cb, true, opt); });
}

}  // namespace

TEST_CASE("A NaN logit is a domain_error naming logits(n, v), in the vector body and the tail",
          "[kernels][errors]") {
    const std::size_t V = 37;
    // Positions: the first entry, the vector body of every width, and the tails of every width
    // (37 = 32 + 5 entries for widths 4, 8, 16 with the 2× unroll).
    for (const std::size_t v : {std::size_t{0}, std::size_t{5}, std::size_t{20}, std::size_t{31},
                                std::size_t{33}, std::size_t{36}}) {
        for (const combo& cb : {all_combos[0], all_combos[1], all_combos[2], all_combos[3]}) {
            kernel_case<float> c = clean_case(3, V, 40 + v);
            c.z.at(1, v) = qnan;
            c.z.at(2, 0) = qnan;  // a later bad row is not the one reported
            INFO("NaN at logits(1, " << v << "), terms: " << cb.name);
            const std::vector<std::string> fragments{entry_name("logits", 1, v) + " = nan"};
            expect_domain_error_both_passes(c, cb, "logits", fragments);
            expect_domain_error_both_passes(convert_case<bf16>(c), cb, "logits", fragments);
            // checked = false skips argument checks, never the diagnosis of non-finite results.
            expect_domain_error_both_passes(c, cb, "logits", fragments, false);
        }
    }
    SECTION("after the 256-entry probe and inside it, on a long row") {
        for (const std::size_t v : {std::size_t{3}, std::size_t{700}, std::size_t{999}}) {
            kernel_case<float> c = clean_case(2, 1000, 7);
            c.z.at(0, v) = qnan;
            INFO("NaN at logits(0, " << v << ")");
            expect_domain_error_both_passes(c, all_combos[3], "logits", {entry_name("logits", 0, v) + " = nan"});
        }
    }
    SECTION("a NaN reference logit, when a KL reads it, and not read for the log-prob alone") {
        kernel_case<float> c = clean_case(3, V, 8);
        c.r.at(2, 34) = qnan;
        for (const combo& cb : {all_combos[1], all_combos[2], all_combos[3]}) {
            INFO("terms: " << cb.name);
            expect_domain_error_both_passes(c, cb, "reference", {entry_name("reference", 2, 34) + " = nan"});
        }
        for (const backend& b : all_backends()) {
            INFO("backend " << b.name);
            CHECK_NOTHROW(run_terms(b, c, all_combos[0], false, options_for(c)));
            CHECK_NOTHROW(run_terms(b, c, all_combos[0], true, options_for(c)));
        }
    }
    SECTION("a masked row is not read") {
        kernel_case<float> c = clean_case(3, V, 9);
        c.z.at(1, 3) = qnan;
        c.r.at(1, 4) = qnan;
        c.ids[1] = 12345;
        c.mask = {1, 0, 1};
        for (const backend& b : all_backends()) {
            INFO("backend " << b.name);
            CHECK_NOTHROW(run_terms(b, c, all_combos[3], false, options_for(c)));
            CHECK_NOTHROW(run_terms(b, c, all_combos[3], true, options_for(c)));
        }
    }
    SECTION("with several threads, the first bad row is reported") {
        // 8 rows of 65536: 2^19 logits, two threads' worth; bad rows in both halves.
        kernel_case<float> c = clean_case(8, 65536, 10);
        c.z.at(6, 100) = qnan;
        c.z.at(2, 65535) = qnan;
        k::kernel_options opt = options_for(c);
        opt.threads = 2;
        expect_error<rspo::domain_error>("forward", "logits", {entry_name("logits", 2, 65535) + " = nan"},
                                         [&](const backend& b) { run_terms(b, c, all_combos[3], false, opt); });
    }
}

TEST_CASE("+inf logits, all -inf rows and -inf targets are domain_errors naming the row",
          "[kernels][errors]") {
    const std::size_t V = 37;
    for (const std::size_t v : {std::size_t{2}, std::size_t{18}, std::size_t{35}}) {
        kernel_case<float> c = clean_case(3, V, 50);
        c.z.at(1, v) = inf;
        INFO("+inf at logits(1, " << v << ")");
        for (const combo& cb : {all_combos[0], all_combos[3]})
            expect_domain_error_both_passes(c, cb, "logits", {entry_name("logits", 1, v) + " = inf"});
        kernel_case<float> cr = clean_case(3, V, 51);
        cr.r.at(2, v) = inf;
        expect_domain_error_both_passes(cr, all_combos[3], "reference", {entry_name("reference", 2, v) + " = inf"});
    }
    SECTION("an all -inf row") {
        kernel_case<float> c = clean_case(3, V, 52);
        for (std::size_t v = 0; v < V; ++v) c.z.at(2, v) = c.r.at(2, v) = -inf;
        for (const combo& cb : {all_combos[0], all_combos[1], all_combos[2], all_combos[3]}) {
            INFO("terms: " << cb.name);
            expect_domain_error_both_passes(c, cb, "logits", {"logits row 2: every entry is -inf"});
            expect_domain_error_both_passes(convert_case<bf16>(c), cb, "logits", {"logits row 2: every entry is -inf"});
        }
        kernel_case<float> cr = clean_case(3, V, 53);
        for (std::size_t v = 0; v < V; ++v) cr.r.at(0, v) = -inf;
        expect_domain_error_both_passes(cr, all_combos[2], "reference", {"reference row 0: every entry is -inf"});
    }
    SECTION("a target whose logit is -inf") {
        for (const std::size_t v : {std::size_t{0}, std::size_t{17}, std::size_t{36}}) {
            kernel_case<float> c = clean_case(3, V, 54);
            c.ids[1] = static_cast<std::int64_t>(v);
            c.z.at(1, v) = c.r.at(1, v) = -inf;
            const std::string fragment =
                "ids[1] = " + std::to_string(v) + " points at " + entry_name("logits", 1, v) + " = -inf";
            expect_domain_error_both_passes(c, all_combos[0], "ids", {fragment});
            expect_domain_error_both_passes(convert_case<bf16>(c), all_combos[0], "ids", {fragment});
        }
    }
}

TEST_CASE("Masks that differ make a KL infinite: a domain_error naming the entry", "[kernels][errors]") {
    const std::size_t V = 37;
    for (const std::size_t v : {std::size_t{1}, std::size_t{16}, std::size_t{36}}) {
        INFO("entry " << v);
        // z finite, r = −∞: KL(p‖m) = ∞.
        kernel_case<float> c = clean_case(3, V, 60);
        c.r.at(1, v) = -inf;
        const std::string reverse =
            entry_name("reference", 1, v) + " = -inf where " + entry_name("logits", 1, v) + " is finite";
        for (const combo& cb : {all_combos[1], all_combos[3]}) {
            expect_domain_error_both_passes(c, cb, "reference", {reverse});
            expect_domain_error_both_passes(convert_case<bf16>(c), cb, "reference", {reverse});
        }
        // r finite, z = −∞: KL(m‖p) = ∞.
        kernel_case<float> f = clean_case(3, V, 61);
        f.z.at(2, v) = -inf;
        f.ids[2] = static_cast<std::int64_t>((v + 3) % V);
        const std::string forward =
            entry_name("logits", 2, v) + " = -inf where " + entry_name("reference", 2, v) + " is finite";
        for (const combo& cb : {all_combos[2], all_combos[3]}) {
            expect_domain_error_both_passes(f, cb, "logits", {forward});
            expect_domain_error_both_passes(convert_case<bf16>(f), cb, "logits", {forward});
        }
    }
}

namespace {

/// KL(p‖m) only weighs entries where p > 0, so z = −∞ with r finite is legal for it (and likewise
/// r = −∞ with z finite for KL(m‖p)); docs/math §5: "contribute 0 where the weighting distribution
/// is 0".
kernel_case<float> legal_mask_case(bool reverse, float temperature) {
    kernel_case<float> c = random_case(reverse ? "reverse KL, z = -inf where r is finite"
                                               : "forward KL, r = -inf where z is finite",
                                       3, 37, 37, temperature, reverse ? 70 : 71, false);
    for (std::size_t n = 0; n < 3; ++n)
        for (const std::size_t v : {std::size_t{2}, std::size_t{20}, std::size_t{36}}) {
            (reverse ? c.z : c.r).at(n, v) = -inf;
            (reverse ? c.r : c.z).at(n, v) = static_cast<float>(v) * 0.1f;
        }
    return c;
}

constexpr combo reverse_only[] = {all_combos[1]};
constexpr combo forward_only[] = {all_combos[2]};

}  // namespace

TEMPLATE_TEST_CASE("Masks that differ the other way are finite: reverse KL with z = -inf, forward KL "
                   "with r = -inf",
                   "[kernels][agreement]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    for (const float temperature : {1.0f, 0.7f}) {
        SECTION("reverse KL, T = " + std::to_string(temperature)) {
            check_case_both_types(TestType::rows(), legal_mask_case(true, temperature), reverse_only);
        }
        SECTION("forward KL, T = " + std::to_string(temperature)) {
            check_case_both_types(TestType::rows(), legal_mask_case(false, temperature), forward_only);
        }
    }
}

TEST_CASE("The reference: masks that differ the other way give finite values and gradients",
          "[kernels][agreement]") {
    for (const float temperature : {1.0f, 0.7f}) {
        SECTION("reverse KL, T = " + std::to_string(temperature)) {
            check_case_both_types(nullptr, legal_mask_case(true, temperature), reverse_only);
        }
        SECTION("forward KL, T = " + std::to_string(temperature)) {
            check_case_both_types(nullptr, legal_mask_case(false, temperature), forward_only);
        }
    }
}

TEST_CASE("ids outside 0..V-1 are index_errors naming ids", "[kernels][errors]") {
    const std::size_t V = 37;
    for (const std::int64_t bad : {std::int64_t{37}, std::int64_t{-1}, std::int64_t{1} << 40}) {
        kernel_case<float> c = clean_case(3, V, 80);
        c.ids[2] = bad;
        const std::string fragment = "ids[2] = " + std::to_string(bad) + " is outside [0, 37)";
        // Without a log-prob the ids are not read, even if given.
        for (const backend& b : all_backends()) {
            INFO("backend " << b.name);
            value_buffers out(3);
            const k::token_inputs<float> in{c.z.view(), c.r.view(), c.ids};
            CHECK_NOTHROW(b.forward(in, out.values(false, true, true), options_for(c)));
        }
        for (const combo& cb : {all_combos[0], all_combos[3]}) {
            expect_error<rspo::index_error>("forward", "ids", {fragment}, [&](const backend& b) {
                run_terms(b, c, cb, false, options_for(c));
            });
            expect_error<rspo::index_error>("backward", "ids", {fragment}, [&](const backend& b) {
                run_terms(b, c, cb, true, options_for(c));
            });
        }
    }
}

TEST_CASE("Shape errors name the argument", "[kernels][errors]") {
    const std::size_t N = 3, V = 37;
    const kernel_case<float> c = clean_case(N, V, 90);
    const combo& fused = all_combos[3];
    const auto opt = options_for(c);
    const auto in = inputs_for(c, fused);
    const auto grads = grads_for(c, fused);
    value_buffers out(N);
    const auto values = out.values(true, true, true);
    matrix<float> dz(N, V, V, 0.0f);

    const auto both = [&](const std::string& argument, const std::vector<std::string>& fragments,
                          const k::token_inputs<float>& bad_in) {
        expect_error<rspo::shape_error>("forward", argument, fragments,
                                        [&](const backend& b) { b.forward(bad_in, values, opt); });
        expect_error<rspo::shape_error>("backward", argument, fragments,
                                        [&](const backend& b) { b.backward(bad_in, grads, dz.grad_view(), opt, values); });
    };
    SECTION("ids size") {
        const std::vector<std::int64_t> short_ids(c.ids.begin(), c.ids.end() - 1);
        both("ids", {"ids has size 2 but logits.rows has size 3"}, {in.logits, in.reference, short_ids});
    }
    SECTION("reference shape") {
        both("reference.rows", {"reference.rows has size 2"}, {in.logits, {c.r.ptr(), N - 1, V, c.r.stride}, in.ids});
        both("reference.cols", {"reference.cols has size 36"}, {in.logits, {c.r.ptr(), N, V - 1, c.r.stride}, in.ids});
        both("reference.rows", {}, {in.logits, {}, in.ids});  // a KL without a reference
    }
    SECTION("row strides below cols") {
        both("logits.row_stride", {"logits.row_stride = 36 is less than its cols = 37"},
             {{c.z.ptr(), N, V, V - 1}, in.reference, in.ids});
        both("reference.row_stride", {"reference.row_stride = 0 is less than its cols = 37"},
             {in.logits, {c.r.ptr(), N, V, 0}, in.ids});
    }
    SECTION("empty and missing logits") {
        both("logits.cols", {"logits.cols is empty"}, {{c.z.ptr(), N, 0, V}, in.reference, in.ids});
        both("logits", {"has no data"}, {{nullptr, N, V, V}, in.reference, in.ids});
    }
    SECTION("output sizes") {
        std::vector<float> longer(N + 1), shorter(N - 1);
        expect_error<rspo::shape_error>("forward", "values.logprob", {"values.logprob has size 4"},
                                        [&](const backend& b) { b.forward(in, {longer, out.rk, out.fk}, opt); });
        expect_error<rspo::shape_error>("forward", "values.forward_kl", {"values.forward_kl has size 2"},
                                        [&](const backend& b) { b.forward(in, {out.lp, out.rk, shorter}, opt); });
        expect_error<rspo::shape_error>("backward", "values.reverse_kl", {"values.reverse_kl has size 4"},
                                        [&](const backend& b) {
                                            b.backward(in, grads, dz.grad_view(), opt, {out.lp, longer, out.fk});
                                        });
        expect_error<rspo::shape_error>("backward", "grads.forward_kl", {"grads.forward_kl has size 2"},
                                        [&](const backend& b) {
                                            b.backward(in, {c.g_lp, c.g_rk, shorter}, dz.grad_view(), opt);
                                        });
    }
    SECTION("row mask size") {
        const std::vector<std::uint8_t> mask(N + 2, 1);
        k::kernel_options masked = opt;
        masked.row_mask = mask;
        expect_error<rspo::shape_error>("forward", "options.row_mask", {"options.row_mask has size 5"},
                                        [&](const backend& b) { b.forward(in, values, masked); });
    }
    SECTION("dlogits shape") {
        const auto bwd = [&](const std::string& argument, const std::vector<std::string>& fragments,
                             k::gradient_view<float> view) {
            expect_error<rspo::shape_error>("backward", argument, fragments,
                                            [&](const backend& b) { b.backward(in, grads, view, opt, values); });
        };
        bwd("dlogits.rows", {"dlogits.rows has size 2"}, {dz.ptr(), N - 1, V, V});
        bwd("dlogits.cols", {"dlogits.cols has size 38"}, {dz.ptr(), N, V + 1, V + 1});
        bwd("dlogits.row_stride", {"dlogits.row_stride = 20 is less than its cols = 37"}, {dz.ptr(), N, V, 20});
        bwd("dlogits", {"no data"}, {nullptr, N, V, V});
    }
    SECTION("dlogits overlapping the logits without being them") {
        // One buffer: the logits, then (optionally overlapping) the gradient.
        std::vector<float> buffer(2 * N * V + 8, 0.5f);
        const k::token_inputs<float> shared{{buffer.data(), N, V, V}, in.reference, in.ids};
        const auto overlapping = [&](std::size_t start, std::size_t stride, const std::string& fragment) {
            INFO("dlogits at element " << start << ", stride " << stride);
            expect_error<rspo::shape_error>("backward", "dlogits", {fragment}, [&](const backend& b) {
                b.backward(shared, grads, k::gradient_view<float>{buffer.data() + start, N, V, stride}, opt);
            });
        };
        overlapping(1, V, "overlaps");
        overlapping(N * V - 1, V, "overlaps");  // the last logit is the first gradient entry
        overlapping(0, V + 1, "in-place dlogits must have the logits' element type and row stride");
        // Adjacent but disjoint is fine.
        for (const backend& b : all_backends()) {
            INFO("backend " << b.name);
            CHECK_NOTHROW(b.backward(shared, grads, k::gradient_view<float>{buffer.data() + N * V, N, V, V}, opt));
        }
        // bf16 logits with fp32 dlogits at the same address.
        std::vector<bf16> zb(N * V, k::to_bf16(0.25f)), rb(N * V, k::to_bf16(0.5f));
        const k::token_inputs<bf16> inb{{zb.data(), N, V, V}, {rb.data(), N, V, V}, in.ids};
        expect_error<rspo::shape_error>("backward", "dlogits", {"in-place dlogits"}, [&](const backend& b) {
            // (never written: the call must throw first)
            b.backward(inb, grads, k::gradient_view<float>{reinterpret_cast<float*>(zb.data()), N, V, V}, opt);
        });
    }
}

TEST_CASE("dlogits overlapping the reference logits is a shape_error", "[kernels][errors]") {
    // The gradient of row n would overwrite reference rows not yet read: silently wrong results.
    // As for the logits, only disjoint buffers can be allowed (the reference is read-only input).
    const std::size_t N = 3, V = 37;
    const kernel_case<float> c = clean_case(N, V, 92);
    std::vector<float> buffer(2 * N * V, 0.5f);  // the reference, then the gradient, overlapping
    const k::token_inputs<float> in{c.z.view(), {buffer.data(), N, V, V}, c.ids};
    const combo& fused = all_combos[3];
    expect_error<rspo::shape_error>("backward", "dlogits", {"overlaps"}, [&](const backend& b) {
        b.backward(in, grads_for(c, fused), k::gradient_view<float>{buffer.data() + V / 2, N, V, V}, options_for(c));
    });
}

TEST_CASE("Temperature <= 0 and non-finite upstream gradients are domain_errors", "[kernels][errors]") {
    const std::size_t N = 3, V = 37;
    const kernel_case<float> c = clean_case(N, V, 91);
    const combo& fused = all_combos[3];
    const auto in = inputs_for(c, fused);
    value_buffers out(N);
    const auto values = out.values(true, true, true);
    matrix<float> dz(N, V, V, 0.0f);
    for (const float t : {0.0f, -0.5f, qnan, inf}) {
        INFO("temperature " << t);
        k::kernel_options opt = options_for(c);
        opt.temperature = t;
        expect_error<rspo::domain_error>("forward", "options.temperature", {"options.temperature = "},
                                         [&](const backend& b) { b.forward(in, values, opt); });
        expect_error<rspo::domain_error>("backward", "options.temperature", {"options.temperature = "},
                                         [&](const backend& b) { b.backward(in, grads_for(c, fused), dz.grad_view(), opt); });
    }
    std::vector<float> g = c.g_lp;
    g[2] = qnan;
    expect_error<rspo::domain_error>("backward", "grads.logprob", {"grads.logprob[2] = nan is not finite"},
                                     [&](const backend& b) {
                                         b.backward(in, {g, c.g_rk, c.g_fk}, dz.grad_view(), options_for(c));
                                     });
    g[2] = -inf;
    expect_error<rspo::domain_error>("backward", "grads.reverse_kl", {"grads.reverse_kl[2] = -inf is not finite"},
                                     [&](const backend& b) {
                                         b.backward(in, {c.g_lp, g, c.g_fk}, dz.grad_view(), options_for(c));
                                     });
}

// =============================================================================================
// 6. Determinism: identical bits for every thread count and on repeated calls.
// =============================================================================================

namespace {

struct determinism_result {
    value_buffers forward, backward;
    matrix<float> dz;
    matrix<bf16> dzb;
    explicit determinism_result(std::size_t rows, std::size_t cols)
        : forward(rows), backward(rows), dz(rows, cols, cols, 0.0f, true), dzb(rows, cols, cols, bf16{}, true) {}
};

/// The fused forward and backward (fp32 gradient; bf16 too on the first and last run) for each
/// thread count in turn (0 = all cores): every run has the bits of the first.
template <class T>
void check_determinism(kd::rows_function rows_fn, const kernel_case<T>& c, std::vector<unsigned> thread_counts) {
    const std::size_t N = c.rows(), V = c.cols();
    const combo& fused = all_combos[3];
    const auto in = inputs_for(c, fused);
    std::vector<determinism_result> results;
    for (std::size_t i = 0; i < thread_counts.size(); ++i) {
        const auto opt = options_for(c, thread_counts[i]);
        determinism_result& r = results.emplace_back(N, V);
        kd::forward_with(rows_fn, in, r.forward.values(true, true, true), opt);
        kd::backward_with(rows_fn, in, grads_for(c, fused), r.dz.grad_view(), opt, r.backward.values(true, true, true));
        if (i == 0 || i + 1 == thread_counts.size())
            kd::backward_with(rows_fn, in, grads_for(c, fused), r.dzb.grad_view(), opt, {});
    }
    const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
        return std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    for (std::size_t i = 1; i < results.size(); ++i) {
        INFO("threads " << thread_counts[i] << " vs threads " << thread_counts[0]
                        << (std::is_same_v<T, bf16> ? ", bf16 logits" : ", fp32 logits"));
        CHECK(same(results[i].forward.lp, results[0].forward.lp));
        CHECK(same(results[i].forward.rk, results[0].forward.rk));
        CHECK(same(results[i].forward.fk, results[0].forward.fk));
        CHECK(same(results[i].backward.lp, results[0].backward.lp));
        CHECK(same(results[i].backward.rk, results[0].backward.rk));
        CHECK(same(results[i].backward.fk, results[0].backward.fk));
        CHECK(results[i].dz.same_entries(results[0].dz));
        if (i + 1 == results.size()) CHECK(results[i].dzb.same_entries(results[0].dzb));
    }
}

}  // namespace

TEMPLATE_TEST_CASE("Results are bit-identical for every thread count and across calls",
                   "[kernels][determinism]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    // 67 rows of 32771 logits: 2.2M logits, enough for 8 threads at one per 2^18 logits, and an
    // uneven split of rows for 3.
    const std::size_t N = 67, V = 32771;
    kernel_case<float> base = blank_case("determinism", N, V, V + 5, 0.7f);
    rng g(123);
    for (std::size_t n = 0; n < N; ++n) random_row(base, n, static_cast<int>(n % 4), g);
    random_grads(base, g);
    base.mask.assign(N, 1);
    base.mask[40] = 0;
    check_determinism(TestType::rows(), base, {1, 2, 3, 8, 0, 1});  // the last: a repeated call
    check_determinism(TestType::rows(), convert_case<bf16>(base), {1, 8});
}

TEMPLATE_TEST_CASE("bf16 gradients are the fp32 gradients rounded to nearest even, bit for bit",
                   "[kernels][bf16]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    // Both outputs 64-byte aligned with a stride of whole vectors, so every entry goes through the
    // same (vector or scalar) code in both calls; only the final store differs. 1M gradients
    // contain exact bf16 ties (low 16 bits 0x8000), where only round-to-nearest-even is right.
    const std::size_t N = 64, V = 16389, stride = 16400;
    kernel_case<float> c = blank_case("bf16 rounding", N, V, V + 3, 0.7f);
    rng g(321);
    for (std::size_t n = 0; n < N; ++n) random_row(c, n, static_cast<int>(n % 4), g);
    random_grads(c, g);
    for (const combo& cb : {all_combos[0], all_combos[3]}) {
        INFO("terms: " << cb.name);
        matrix<float> f32(N, V, stride, 0.0f, true);
        matrix<bf16> b16(N, V, stride, bf16{}, true);
        kd::backward_with(TestType::rows(), inputs_for(c, cb), grads_for(c, cb), f32.grad_view(), options_for(c), {});
        kd::backward_with(TestType::rows(), inputs_for(c, cb), grads_for(c, cb), b16.grad_view(), options_for(c), {});
        std::size_t ties = 0, mismatches = 0;
        std::string first;
        for (std::size_t n = 0; n < N; ++n)
            for (std::size_t v = 0; v < V; ++v) {
                const float x = f32.at(n, v);
                ties += (std::bit_cast<std::uint32_t>(x) & 0xFFFFu) == 0x8000u ? 1 : 0;
                if (b16.at(n, v) != k::to_bf16(x) && mismatches++ == 0) {
                    std::ostringstream where;  // not operator+ chains: g++ 12 warns falsely (-Wrestrict)
                    where << '(' << n << ", " << v << "): fp32 bits " << std::bit_cast<std::uint32_t>(x)
                          << ", bf16 bits " << b16.at(n, v).bits;
                    first = where.str();
                }
            }
        INFO(mismatches << " mismatches, first at " << first << "; " << ties << " exact ties");
        CHECK(mismatches == 0);
        CHECK(ties > 0);  // the data did exercise the tie rule
    }
}

// =============================================================================================
// 7. In place: dlogits == logits gives what a separate buffer gets.
// =============================================================================================

namespace {

template <class T>
void check_in_place(const backend& b, const kernel_case<float>& source) {
    const kernel_case<T> c = convert_case<T>(source);
    const std::size_t N = c.rows(), V = c.cols();
    for (const combo& cb : {all_combos[0], all_combos[3], all_combos[5]}) {
        INFO("backend " << b.name << ", terms " << cb.name << (std::is_same_v<T, bf16> ? ", bf16" : ", fp32"));
        // Logits copies with the same alignment (mod 64 bytes) and stride as the separate gradient.
        matrix<T> z(N, V, c.z.stride, T{}, true), separate(N, V, c.z.stride, narrow<T>(grad_sentinel), true);
        for (std::size_t i = 0; i < c.z.size; ++i) z.flat(i) = c.z.flat(i);
        const k::token_inputs<T> in{z.view(), cb.kl() ? c.r.view() : k::logits_view<T>{},
                                    cb.lp() ? std::span<const std::int64_t>(c.ids) : std::span<const std::int64_t>{}};
        value_buffers v_sep(N), v_in(N);
        b.backward(in, grads_for(c, cb), separate.grad_view(), options_for(c), v_sep.values(cb.v_lp, cb.v_rk, cb.v_fk));
        b.backward(in, grads_for(c, cb), z.grad_view(), options_for(c), v_in.values(cb.v_lp, cb.v_rk, cb.v_fk));
        CHECK(z.same_entries(separate));
        CHECK(std::memcmp(v_sep.lp.data(), v_in.lp.data(), N * sizeof(float)) == 0);
        CHECK(std::memcmp(v_sep.rk.data(), v_in.rk.data(), N * sizeof(float)) == 0);
        CHECK(std::memcmp(v_sep.fk.data(), v_in.fk.data(), N * sizeof(float)) == 0);
        bool padding_kept = true;  // the NaN padding between rows is neither read nor written
        for (std::size_t i = 0; i < z.size; ++i)
            if (i % z.stride >= V) padding_kept = padding_kept && bits_of(z.flat(i)) == bits_of(c.z.flat(i));
        CHECK(padding_kept);
    }
}

}  // namespace

TEST_CASE("In place: dlogits == logits gives the same gradient as a separate buffer", "[kernels][in-place]") {
    const auto c = random_case("in place", 6, 1000, 1005, 0.7f, 31, true);
    const auto tail = random_case("in place, short rows", 5, 45, 47, 1.0f, 32, true);
    for (const backend& b : all_backends()) {
        check_in_place<float>(b, c);
        check_in_place<bf16>(b, c);
        check_in_place<float>(b, tail);
        check_in_place<bf16>(b, tail);
    }
}

// =============================================================================================
// 8. Sequence sums.
// =============================================================================================

TEST_CASE("sequence_sums sums each response in double and does not read the prompts", "[kernels][sequence]") {
    const std::size_t seq_len = 7;
    const std::vector<std::int64_t> offsets{0, 2, 6}, lengths{7, 3, 1};
    std::vector<float> per_token(3 * seq_len, qnan);  // prompt positions stay NaN
    for (std::size_t b = 0; b < 3; ++b)
        for (std::size_t t = 0; t < seq_len; ++t)
            if (t >= static_cast<std::size_t>(offsets[b]) && t < static_cast<std::size_t>(offsets[b] + lengths[b]))
                per_token[b * seq_len + t] = static_cast<float>(static_cast<int>(b * seq_len + t) % 5 - 2);
    std::vector<float> out(3, 999.0f);
    k::sequence_sums(per_token, seq_len, offsets, lengths, out);
    // Small integers (flat index % 5 − 2): the sums are exact.
    CHECK(out[0] == -2.0f - 1.0f + 0.0f + 1.0f + 2.0f - 2.0f - 1.0f);  // flat 0..6
    CHECK(out[1] == 2.0f - 2.0f - 1.0f);                                // flat 9, 10, 11
    CHECK(out[2] == -2.0f);                                             // flat 20

    SECTION("random values: within one fp32 rounding of the exact sum") {
        rng g(5);
        const std::size_t L = 4096;
        const std::vector<std::int64_t> off{0, 100, 4095}, len{4096, 3000, 1};
        std::vector<float> x(3 * L);
        for (float& v : x) v = g.uniform(-1.0, 1.0) * (g.uniform() < 0.5 ? 1e4f : 1.0f);
        std::vector<float> s(3);
        k::sequence_sums(x, L, off, len, s);
        for (std::size_t b = 0; b < 3; ++b) {
            ld exact = 0, abs_sum = 0;
            for (std::int64_t t = off[b]; t < off[b] + len[b]; ++t) {
                exact += x[b * L + static_cast<std::size_t>(t)];
                abs_sum += std::fabs(x[b * L + static_cast<std::size_t>(t)]);
            }
            // double accumulation: ≤ len·2^-53·Σ|x|; then one rounding to fp32.
            CHECK(std::fabs(s[b] - exact) <= u * std::fabs(exact) + len[b] * 0x1p-53L * abs_sum + tiny_abs);
        }
    }
}

TEST_CASE("sequence_sums_backward is the adjoint of sequence_sums and response_row_mask selects the responses",
          "[kernels][sequence]") {
    const std::size_t seq_len = 9, B = 4;
    const std::vector<std::int64_t> offsets{0, 3, 8, 2}, lengths{9, 4, 1, 5};
    rng g(6);
    // Integer data: every inner product is exact, so the adjoint identity holds with ==.
    std::vector<float> x(B * seq_len), grad(B), back(B * seq_len, 999.0f), sums(B);
    for (float& v : x) v = static_cast<float>(static_cast<int>(g.index(21)) - 10);
    for (float& v : grad) v = static_cast<float>(static_cast<int>(g.index(21)) - 10);
    k::sequence_sums(x, seq_len, offsets, lengths, sums);
    k::sequence_sums_backward(grad, seq_len, offsets, lengths, back);
    double lhs = 0, rhs = 0;
    for (std::size_t b = 0; b < B; ++b) lhs += static_cast<double>(sums[b]) * grad[b];
    for (std::size_t i = 0; i < x.size(); ++i) rhs += static_cast<double>(x[i]) * back[i];
    CHECK(lhs == rhs);

    std::vector<std::uint8_t> mask(B * seq_len, 77);
    k::response_row_mask(seq_len, offsets, lengths, mask);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t t = 0; t < seq_len; ++t) {
            const bool response = t >= static_cast<std::size_t>(offsets[b]) &&
                                  t < static_cast<std::size_t>(offsets[b] + lengths[b]);
            INFO("b " << b << " t " << t);
            CHECK(mask[b * seq_len + t] == (response ? 1 : 0));
            CHECK(std::bit_cast<std::uint32_t>(back[b * seq_len + t]) ==
                  std::bit_cast<std::uint32_t>(response ? grad[b] : 0.0f));
        }

    SECTION("random real data: the identity within the rounding of the sums") {
        std::vector<float> xr(B * seq_len), gr(B), br(B * seq_len), sr(B);
        for (float& v : xr) v = g.uniform(-3.0, 3.0);
        for (float& v : gr) v = g.uniform(-3.0, 3.0);
        k::sequence_sums(xr, seq_len, offsets, lengths, sr);
        k::sequence_sums_backward(gr, seq_len, offsets, lengths, br);
        ld l = 0, r = 0, bound = 0;
        for (std::size_t b = 0; b < B; ++b) {
            l += static_cast<ld>(sr[b]) * gr[b];
            bound += std::fabs(gr[b]) * (u * std::fabs(sr[b]) + seq_len * 0x1p-52L * 3 * seq_len);
        }
        for (std::size_t i = 0; i < xr.size(); ++i) r += static_cast<ld>(xr[i]) * br[i];
        CHECK(std::fabs(l - r) <= bound);
    }
    SECTION("the mask drives the token kernels: prompt rows give 0") {
        kernel_case<float> c = clean_case(B * seq_len, 20, 7);
        c.mask = mask;
        value_buffers ref(B * seq_len), simd(B * seq_len);
        k::reference::forward(inputs_for(c, all_combos[0]), ref.values(true, false, false), options_for(c));
        k::simd::forward(inputs_for(c, all_combos[0]), simd.values(true, false, false), options_for(c));
        for (std::size_t i = 0; i < B * seq_len; ++i) {
            INFO("row " << i);
            if (mask[i] == 0) {
                CHECK(bits_of(ref.lp[i]) == 0);
                CHECK(bits_of(simd.lp[i]) == 0);
            } else {
                CHECK(ref.lp[i] < 0.0f);
                CHECK(simd.lp[i] < 0.0f);
            }
        }
    }
}

namespace {

template <class E, class Call>
void expect_sequence_error(const std::string& function, const std::string& argument, const std::string& fragment,
                           Call&& call) {
    INFO("expected " << function << " about '" << argument << "' mentioning \"" << fragment << "\"");
    bool thrown = false;
    try {
        call();
    } catch (const rspo::argument_error& e) {
        thrown = true;
        INFO("what(): " << e.what());
        CHECK(typeid(e) == typeid(E));
        CHECK(e.function() == function);
        CHECK(e.argument() == argument);
        CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
    CHECK(thrown);
}

struct sequence_problem {
    std::size_t seq_len = 7;
    std::vector<std::int64_t> offsets{0, 2, 6}, lengths{7, 3, 1};
    std::vector<float> per_token = std::vector<float>(21, 1.0f), out = std::vector<float>(3);
    std::vector<std::uint8_t> mask = std::vector<std::uint8_t>(21);
};

/// Runs all three sequence functions on the problem and expects the same error from each.
template <class E>
void expect_error_from_all_three(const sequence_problem& p, const std::string& argument, const std::string& fragment) {
    sequence_problem q = p;
    expect_sequence_error<E>("rspo::kernels::sequence_sums", argument, fragment,
                             [&] { k::sequence_sums(q.per_token, q.seq_len, q.offsets, q.lengths, q.out); });
    expect_sequence_error<E>("rspo::kernels::sequence_sums_backward", argument, fragment, [&] {
        k::sequence_sums_backward(q.out, q.seq_len, q.offsets, q.lengths, q.per_token);
    });
    expect_sequence_error<E>("rspo::kernels::response_row_mask", argument, fragment,
                             [&] { k::response_row_mask(q.seq_len, q.offsets, q.lengths, q.mask); });
}

}  // namespace

TEST_CASE("sequence sums: empty responses and out-of-range responses are errors", "[kernels][sequence][errors]") {
    sequence_problem p;
    SECTION("a zero-length sequence has no log-probability") {
        p.lengths[1] = 0;
        expect_error_from_all_three<rspo::domain_error>(p, "lengths", "lengths[1] = 0");
        p.lengths[1] = -2;
        expect_error_from_all_three<rspo::domain_error>(p, "lengths", "lengths[1] = -2");
    }
    SECTION("a response past the sequence") {
        p.lengths[2] = 2;
        expect_error_from_all_three<rspo::index_error>(p, "offsets", "offsets[2] = 6 with lengths[2] = 2 is outside [0, 7)");
    }
    SECTION("a negative offset") {
        p.offsets[0] = -1;
        p.lengths[0] = 3;
        expect_error_from_all_three<rspo::index_error>(p, "offsets", "offsets[0]");
    }
    SECTION("lengths and offsets of different sizes") {
        p.lengths.push_back(1);
        expect_error_from_all_three<rspo::shape_error>(p, "lengths", "lengths has size 4");
    }
    SECTION("sequence_sums: wrong out and per_token sizes") {
        std::vector<float> out4(4), tokens(20);
        expect_sequence_error<rspo::shape_error>("rspo::kernels::sequence_sums", "out", "out has size 4", [&] {
            k::sequence_sums(p.per_token, p.seq_len, p.offsets, p.lengths, out4);
        });
        expect_sequence_error<rspo::shape_error>("rspo::kernels::sequence_sums", "per_token", "per_token has size 20",
                                                 [&] { k::sequence_sums(tokens, p.seq_len, p.offsets, p.lengths, p.out); });
    }
}

TEST_CASE("sequence sums: a size error names the caller's own argument", "[kernels][sequence][errors]") {
    // sequence_sums_backward(grad, ..., grad_per_token) and response_row_mask(..., mask) have no
    // argument called "out" or "per_token": argument() must name the one that is wrong.
    sequence_problem p;
    std::vector<float> grad4(4), tokens(20);
    std::vector<std::uint8_t> mask20(20);
    expect_sequence_error<rspo::shape_error>("rspo::kernels::sequence_sums_backward", "grad", "grad has size 4",
                                             [&] { k::sequence_sums_backward(grad4, p.seq_len, p.offsets, p.lengths, p.per_token); });
    expect_sequence_error<rspo::shape_error>("rspo::kernels::sequence_sums_backward", "grad_per_token",
                                             "grad_per_token has size 20",
                                             [&] { k::sequence_sums_backward(p.out, p.seq_len, p.offsets, p.lengths, tokens); });
    expect_sequence_error<rspo::shape_error>("rspo::kernels::response_row_mask", "mask", "mask has size 20",
                                             [&] { k::response_row_mask(p.seq_len, p.offsets, p.lengths, mask20); });
}

TEST_CASE("sequence sums: a huge offset is an index_error, without integer overflow", "[kernels][sequence][errors]") {
    // offsets[b] + lengths[b] must not overflow int64 (undefined behaviour; UBSan aborts here).
    sequence_problem p;
    p.offsets[1] = std::numeric_limits<std::int64_t>::max() - 1;
    p.lengths[1] = 3;
    expect_sequence_error<rspo::index_error>("rspo::kernels::sequence_sums", "offsets", "offsets[1]",
                                             [&] { k::sequence_sums(p.per_token, p.seq_len, p.offsets, p.lengths, p.out); });
}

// =============================================================================================
// 9. bf16.
// =============================================================================================

namespace {

/// Round-to-nearest-even of a finite or infinite float to bf16, by value comparison in long
/// double (independent of the library's bit trick).
std::uint16_t bf16_rne(float x) {
    const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
    const std::uint32_t sign = b & 0x80000000u, mag = b & 0x7FFFFFFFu;
    const std::uint32_t down = mag & 0xFFFF0000u;  // truncation toward 0
    const std::uint32_t up = down + 0x10000u;      // next bf16 away from 0 (may be +inf)
    if (down == mag) return static_cast<std::uint16_t>((sign | down) >> 16);
    const auto value = [](std::uint32_t m) -> ld {
        if (m == 0x7F800000u) return 0x1p128L;  // rounding treats the exponent as unbounded
        return static_cast<ld>(std::bit_cast<float>(m));
    };
    const ld a = value(mag), lo = value(down), hi = value(up);
    std::uint32_t pick;
    if (a - lo < hi - a)
        pick = down;
    else if (a - lo > hi - a)
        pick = up;
    else
        pick = ((down >> 16) & 1u) == 0 ? down : up;
    return static_cast<std::uint16_t>((sign | pick) >> 16);
}

}  // namespace

TEST_CASE("to_bf16 rounds to nearest with ties to even and keeps NaN and infinities", "[kernels][bf16]") {
    const auto bits = [](float x) { return k::to_bf16(x).bits; };
    const auto f = [](std::uint32_t b) { return std::bit_cast<float>(b); };
    CHECK(bits(1.0f) == 0x3F80);
    CHECK(bits(f(0x3F808000u)) == 0x3F80);  // 1 + 2^-8: tie, down to the even 0x3F80
    CHECK(bits(f(0x3F818000u)) == 0x3F82);  // 1 + 3·2^-8: tie, up to the even 0x3F82
    CHECK(bits(f(0x3F808001u)) == 0x3F81);  // just above the tie
    CHECK(bits(f(0x3F807FFFu)) == 0x3F80);  // just below the tie
    CHECK(bits(f(0xBF818000u)) == 0xBF82);  // negative tie
    CHECK(bits(-0.0f) == 0x8000);
    CHECK(bits(0.0f) == 0x0000);
    CHECK(bits(inf) == 0x7F80);
    CHECK(bits(-inf) == 0xFF80);
    CHECK(bits(f(0x7F7F7FFFu)) == 0x7F7F);  // below the midpoint to 2^128: the largest bf16
    CHECK(bits(f(0x7F7F8000u)) == 0x7F80);  // tie with an odd last bit: rounds to +inf (even)
    CHECK(bits(std::numeric_limits<float>::max()) == 0x7F80);
    CHECK(bits(f(0x00008000u)) == 0x0000);  // subnormal tie to even 0
    CHECK(bits(f(0x00018000u)) == 0x0002);  // subnormal tie to even 2
    for (const std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFC00000u}) {
        INFO("NaN bits " << nan);
        const bf16 b = k::to_bf16(f(nan));
        CHECK(std::isnan(k::to_float(b)));
        CHECK((b.bits & 0x8000u) == ((nan >> 16) & 0x8000u));  // sign kept
    }
    SECTION("against an independent rounding, on random bit patterns and around every tie") {
        rng g(77);
        std::size_t mismatches = 0;
        std::uint32_t first = 0;
        for (int i = 0; i < (1 << 20); ++i) {
            std::uint32_t b = static_cast<std::uint32_t>(g.engine());
            if (i % 4 == 1) b = (b & 0xFFFF0000u) | 0x8000u;                    // exact ties
            if (i % 4 == 2) b = (b & 0xFFFF0000u) | (0x7FFEu + (b & 3u));       // around the tie
            const float x = f(b);
            if (std::isnan(x)) continue;
            if (bits(x) != bf16_rne(x) && mismatches++ == 0) first = b;
        }
        INFO("first mismatch at float bits " << first);
        CHECK(mismatches == 0);
    }
}

TEST_CASE("bf16 round trip: to_float then to_bf16 is the identity on every bf16", "[kernels][bf16]") {
    std::size_t bad = 0;
    for (std::uint32_t b = 0; b < 0x10000u; ++b) {
        const bf16 x{static_cast<std::uint16_t>(b)};
        const float w = k::to_float(x);
        CHECK(std::bit_cast<std::uint32_t>(w) == (b << 16));  // widening is exact
        if (std::isnan(w))
            bad += std::isnan(k::to_float(k::to_bf16(w))) ? 0 : 1;
        else
            bad += k::to_bf16(w) == x ? 0 : 1;
    }
    CHECK(bad == 0);
}

// =============================================================================================
// The exp the kernels use: ≤ 2 ulp, exact 0 for −∞, NaN propagates.
// =============================================================================================

namespace {

ld ulp32(ld y) {
    int e = 0;
    (void)std::frexp(static_cast<double>(y), &e);  // y ∈ [2^(e−1), 2^e)
    return std::ldexp(1.0L, e - 1 - 23);
}

}  // namespace

TEST_CASE("The SSE2 exp is within 2 ulp from -87 to 88, is 0 below -87 and for -inf, and NaN for NaN", "[kernels][exp]") {
    using B = xsimd::batch<float, xsimd::sse2>;
    const auto exp4 = [](float a, float b, float c, float d) {
        alignas(16) float in[4] = {a, b, c, d}, out[4];
        kd::exp<xsimd::sse2>(B::load_aligned(in)).store_aligned(out);
        return std::vector<float>(out, out + 4);
    };
    std::size_t bad = 0;
    ld worst = 0;
    float worst_x = 0;
    const int steps = 1 << 20;
    for (int i = 0; i <= steps; i += 4) {
        float x[4];
        for (int j = 0; j < 4; ++j)
            x[j] = static_cast<float>(-87.0L + 175.0L * std::min(i + j, steps) / steps);
        const auto e = exp4(x[0], x[1], x[2], x[3]);
        for (int j = 0; j < 4; ++j) {
            const ld exact = std::exp(static_cast<ld>(x[j]));
            const ld err = std::fabs(e[j] - exact) / ulp32(exact);
            if (err > worst) {
                worst = err;
                worst_x = x[j];
            }
            bad += err <= 2 ? 0 : 1;
        }
    }
    INFO("worst error " << static_cast<double>(worst) << " ulp at x = " << worst_x);
    CHECK(bad == 0);
    const auto special = exp4(-inf, -87.5f, -1000.0f, qnan);
    CHECK(std::bit_cast<std::uint32_t>(special[0]) == 0u);
    CHECK(special[1] == 0.0f);
    CHECK(special[2] == 0.0f);
    CHECK(std::isnan(special[3]));
}

TEMPLATE_TEST_CASE("Each instruction set's exp is within 2 ulp (read through the log-prob gradient)",
                   "[kernels][exp]", isa_avx512, isa_avx2, isa_sse2) {
    RSPO_REQUIRE_ISA();
    // With T = 1, target 0, z_0 = 0 and Σ_{v≥1} e^{z_v} < 2^-25, the row sum rounds to exactly 1,
    // so the log-prob gradient with g = 1 is exactly −exp_simd(z_v) for v ≥ 1: the kernel's own exp,
    // bit for bit, through the vector body and the scalar tail.
    struct layout {
        std::size_t rows, cols;
        double lo, hi;
    };
    // 64 entries in [−87, −22] per row (63·e^-22 < 2^-25), 2 entries in [−22, −17.4] (e^-17.4 <
    // 2^-25), and arguments below −87 (0, or a subnormal as accurate as its spacing allows).
    for (const layout l : {layout{256, 64, -87.0, -22.0}, layout{2048, 2, -22.0, -17.4}, layout{64, 64, -130.0, -87.0}}) {
        kernel_case<float> c = blank_case("exp", l.rows, l.cols, l.cols, 1.0f);
        rng g(static_cast<std::uint64_t>(l.rows * 7 + l.cols));
        for (std::size_t n = 0; n < l.rows; ++n) {
            c.z.at(n, 0) = 0.0f;
            for (std::size_t v = 1; v < l.cols; ++v) c.z.at(n, v) = g.uniform(l.lo, l.hi);
            c.ids[n] = 0;
            c.g_lp[n] = 1.0f;
        }
        c.z.at(0, 1) = static_cast<float>(l.lo);
        c.z.at(l.rows - 1, l.cols - 1) = static_cast<float>(l.hi);
        if (l.lo < -87) c.z.at(1, 1) = -inf;
        const combo& lp = all_combos[0];
        matrix<float> dz(l.rows, l.cols, l.cols, 0.0f);
        kd::backward_with(TestType::rows(), inputs_for(c, lp), grads_for(c, lp), dz.grad_view(), options_for(c), {});
        violations bad;
        for (std::size_t n = 0; n < l.rows; ++n) {
            bad.require(dz.at(n, 0) == 0.0f, [&](std::ostream& os) { os << "row " << n << ": target gradient " << dz.at(n, 0); });
            for (std::size_t v = 1; v < l.cols; ++v) {
                const float x = c.z.at(n, v);
                const ld e = -static_cast<ld>(dz.at(n, v));
                const ld exact = std::exp(static_cast<ld>(x));
                const auto where = [&](std::ostream& os) {
                    os << "exp(" << x << ") = " << static_cast<double>(e) << ", exact " << static_cast<double>(exact);
                };
                if (x >= -87.0f) {
                    bad.check(std::fabs(e - exact), 2 * ulp32(exact), where);
                } else {
                    bad.require(e >= 0, where);
                    if (e != 0) bad.check(std::fabs(e - exact), 4 * u * exact + 0x1p-149L, where);
                }
            }
        }
        INFO("arguments in [" << l.lo << ", " << l.hi << "]");
        CHECK_NO_VIOLATIONS(bad);
    }
}
