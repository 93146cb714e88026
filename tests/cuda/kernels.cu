// The CUDA token-reduction kernels against rspo::kernels::reference (long double), on the sizes
// and special values of the CPU kernel tests: V = 1, 31, 32, 33, 1000, 8192 | 8193 (one warp vs.
// one block per row), 32000, 128256; ±1e4 logits, a large common offset of θ and the reference,
// shared −∞ masks, bf16 logits and gradients, temperature, row masks, padded and misaligned rows,
// in-place gradients; every input error as a status with the CPU backends' message; and run-to-run
// determinism (bit-identical results).
//
// Each case runs through the host replay of the kernels (emulation.hpp: the kernels' own code and
// reduction order, on the CPU) and, when a CUDA device is present, through the real kernels
// (synchronous and *_async + check). Without a device the replay still runs; then the program
// prints "no CUDA device: skipped" and exits with 77, which CTest reports as skipped — unless the
// replay failed, which is a real failure (exit 1).
//
// Plain checks (no Catch2 in .cu); each case prints the worst |error| / tolerance it saw, so that
// the tolerances can be judged on a GPU run.

#include "emulation.hpp"

#include <rspo/core/error.hpp>
#include <rspo/kernels/cuda/token_reductions.cuh>
#include <rspo/kernels/reference/token_reductions.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace rk = rspo::kernels;
namespace rc = rspo::kernels::cuda;
namespace emu = rspo_test::emulation;

int failures = 0;
long long checks = 0;

void expect(bool ok, const std::string& what) {
    ++checks;
    if (ok) return;
    ++failures;
    if (failures <= 80) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

#define CUDA_OK(call)                                                                                  \
    do {                                                                                               \
        const cudaError_t e_ = (call);                                                                 \
        if (e_ != cudaSuccess) {                                                                       \
            std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            std::exit(1);                                                                              \
        }                                                                                              \
    } while (0)

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();

template <class T>
T from_float(float x) {
    if constexpr (std::is_same_v<T, float>)
        return x;
    else
        return rk::to_bf16(x);
}

template <class T>
const char* type_name() {
    return std::is_same_v<T, float> ? "f32" : "bf16";
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// A message without its "function: " prefix.
std::string without_function(const std::string& message) {
    const std::size_t colon = message.find(": ");
    return colon == std::string::npos ? message : message.substr(colon + 2);
}

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

struct terms {
    bool lp = false, rev = false, fwd = false;
    [[nodiscard]] bool kl() const { return rev || fwd; }
    [[nodiscard]] bool any() const { return lp || kl(); }
};
constexpr terms all_terms{true, true, true};

/// Where the rows live in their buffers: offset of row 0 and padding after each row (elements).
struct placement {
    std::size_t z_off = 0, z_pad = 0, r_off = 0, r_pad = 0, dz_off = 0, dz_pad = 0;
};

/// How the rows' values are drawn (row n uses kind n % 4 unless `uniform`).
enum class rows_kind { mixed, normal };

template <class T>
struct problem {
    std::size_t rows = 0, cols = 0;
    placement at;
    std::vector<T> z, r;  // NaN in the padding: a kernel reading outside its rows is caught
    std::vector<std::int64_t> ids;
    std::vector<std::uint8_t> mask;  // empty: no row mask
    std::vector<float> g_lp, g_rev, g_fwd;
    float temperature = 1.0f;

    [[nodiscard]] std::size_t z_stride() const { return cols + at.z_pad; }
    [[nodiscard]] std::size_t r_stride() const { return cols + at.r_pad; }
    [[nodiscard]] std::size_t dz_stride() const { return cols + at.dz_pad; }
    T& zat(std::size_t n, std::size_t v) { return z[at.z_off + n * z_stride() + v]; }
    T& rat(std::size_t n, std::size_t v) { return r[at.r_off + n * r_stride() + v]; }
    [[nodiscard]] float zv(std::size_t n, std::size_t v) const { return rk::widen(z[at.z_off + n * z_stride() + v]); }
    [[nodiscard]] float rv(std::size_t n, std::size_t v) const { return rk::widen(r[at.r_off + n * r_stride() + v]); }
    [[nodiscard]] bool active(std::size_t n) const { return mask.empty() || mask[n] != 0; }
};

template <class T>
problem<T> make_problem(std::size_t rows, std::size_t cols, std::uint64_t seed, placement at = {},
                        float temperature = 1.0f, bool row_mask = true, rows_kind kind = rows_kind::mixed) {
    problem<T> pr;
    pr.rows = rows;
    pr.cols = cols;
    pr.at = at;
    pr.temperature = temperature;
    pr.z.assign(at.z_off + rows * pr.z_stride() + 8, from_float<T>(qnan));
    pr.r.assign(at.r_off + rows * pr.r_stride() + 8, from_float<T>(qnan));
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<std::size_t> pick(0, cols - 1);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    pr.ids.resize(rows);
    for (std::size_t n = 0; n < rows; ++n) {
        const std::size_t y = pick(rng);
        pr.ids[n] = static_cast<std::int64_t>(y);
        const unsigned k = kind == rows_kind::normal ? 0u : static_cast<unsigned>(n % 4);
        for (std::size_t v = 0; v < cols; ++v) {
            float zv = 0.0f, rv = 0.0f;
            switch (k) {
                case 0:  // ordinary logits; the reference close to θ
                    zv = 2.0f * normal(rng);
                    rv = zv + 0.5f * normal(rng);
                    break;
                case 1: {  // ±1e4 mixed with ordinary values
                    const float u = unit(rng);
                    zv = u < 0.1f ? 1e4f : u < 0.2f ? -1e4f : 2.0f * normal(rng);
                    const float w = unit(rng);
                    rv = w < 0.1f ? 1e4f : w < 0.2f ? -1e4f : 2.0f * normal(rng);
                    break;
                }
                case 2:  // a shared −∞ mask on ~25% of the vocabulary (never the target)
                    zv = 2.0f * normal(rng);
                    rv = zv + 0.5f * normal(rng);
                    if (v != y && cols > 1 && unit(rng) < 0.25f) zv = rv = -inf;
                    break;
                default:  // a large common offset: KL must not lose the small difference
                    zv = 3000.0f + 2.0f * normal(rng);
                    rv = zv - 1000.0f + 0.3f * normal(rng);
                    break;
            }
            pr.zat(n, v) = from_float<T>(zv);
            pr.rat(n, v) = from_float<T>(rv);
        }
    }
    if (row_mask && rows > 2) {
        pr.mask.assign(rows, 1);
        for (std::size_t n = 1; n < rows; n += 3) pr.mask[n] = 0;
        pr.ids[1] = 1'000'000'000;  // a masked row's id is never checked or read
    }
    pr.g_lp.resize(rows);
    pr.g_rev.resize(rows);
    pr.g_fwd.resize(rows);
    for (std::size_t n = 0; n < rows; ++n) {
        pr.g_lp[n] = normal(rng);
        pr.g_rev[n] = normal(rng);
        pr.g_fwd[n] = normal(rng);
    }
    return pr;
}

// ---------------------------------------------------------------------------------------------
// Running one call through an engine
// ---------------------------------------------------------------------------------------------

enum class engine { reference, emulation, device, device_async };

const char* engine_name(engine e) {
    switch (e) {
        case engine::reference: return "reference";
        case engine::emulation: return "emulation";
        case engine::device: return "device";
        default: return "device_async";
    }
}

template <class G>
G sentinel() {
    return from_float<G>(777.0f);  // untouched gradient entries must keep it
}

template <class G>
struct result {
    bool threw = false;
    std::string what;  // the exception's message (the reference's errors)
    rc::status st;
    std::vector<float> lp, rev, fwd;
    std::vector<G> dz;  // the whole gradient buffer
};

/// What one call computes: values (forward, or the values of backward) and upstream gradients.
struct call {
    bool backward = false;
    terms values;
    terms grads;
    bool in_place = false;  // dlogits = logits (T = G)
    bool checked = true;
};

template <class E>
struct device_array {
    E* ptr = nullptr;
    std::size_t size = 0;
    explicit device_array(const std::vector<E>& host) : size(host.size()) {
        if (size == 0) return;
        CUDA_OK(cudaMalloc(&ptr, size * sizeof(E)));
        CUDA_OK(cudaMemcpy(ptr, host.data(), size * sizeof(E), cudaMemcpyHostToDevice));
    }
    device_array(const device_array&) = delete;
    device_array& operator=(const device_array&) = delete;
    ~device_array() {
        if (ptr) cudaFree(ptr);
    }
    [[nodiscard]] std::vector<E> download() const {
        std::vector<E> h(size);
        if (size) CUDA_OK(cudaMemcpy(h.data(), ptr, size * sizeof(E), cudaMemcpyDeviceToHost));
        return h;
    }
};

cudaStream_t test_stream = nullptr;

/// Runs `c` on `pr` with `e`; host engines work on copies, device engines on uploaded copies.
template <class T, class G>
result<G> run(engine e, const problem<T>& pr, const call& c) {
    result<G> out;
    const std::size_t rows = pr.rows, cols = pr.cols;
    std::vector<T> z = pr.z, r = pr.r;
    std::vector<G> dz(pr.at.dz_off + rows * pr.dz_stride() + 8, sentinel<G>());
    std::vector<float> lp(rows, -12345.0f), rev(rows, -12345.0f), fwd(rows, -12345.0f);

    const auto invoke = [&](T* zp, T* rp, const std::int64_t* ids, const std::uint8_t* mask, const float* glp,
                            const float* grev, const float* gfwd, G* dzp, float* lpp, float* revp, float* fwdp) {
        rk::token_inputs<T> in;
        in.logits = {zp + pr.at.z_off, rows, cols, pr.z_stride()};
        in.reference = {rp + pr.at.r_off, rows, cols, pr.r_stride()};
        in.ids = {ids, rows};
        rk::kernel_options opt;
        opt.temperature = pr.temperature;
        opt.checked = c.checked;
        if (!pr.mask.empty()) opt.row_mask = {mask, rows};
        rk::token_values vals;
        if (c.values.lp) vals.logprob = {lpp, rows};
        if (c.values.rev) vals.reverse_kl = {revp, rows};
        if (c.values.fwd) vals.forward_kl = {fwdp, rows};
        rk::token_grads gr;
        if (c.grads.lp) gr.logprob = {glp, rows};
        if (c.grads.rev) gr.reverse_kl = {grev, rows};
        if (c.grads.fwd) gr.forward_kl = {gfwd, rows};
        rk::gradient_view<G> dv{dzp + pr.at.dz_off, rows, cols, pr.dz_stride()};
        if constexpr (std::is_same_v<T, G>)
            if (c.in_place) dv = {zp + pr.at.z_off, rows, cols, pr.z_stride()};
        try {
            switch (e) {
                case engine::reference:
                    if (c.backward)
                        rk::reference::backward(in, gr, dv, opt, vals);
                    else
                        rk::reference::forward(in, vals, opt);
                    break;
                case engine::emulation:
                    out.st = c.backward ? emu::backward(in, gr, dv, opt, vals) : emu::forward(in, vals, opt);
                    break;
                case engine::device:
                    out.st = c.backward ? rc::backward(in, gr, dv, opt, test_stream, vals)
                                        : rc::forward(in, vals, opt, test_stream);
                    break;
                case engine::device_async: {
                    void* ws = nullptr;
                    const std::size_t bytes = rc::workspace_size(rows, cols);
                    CUDA_OK(cudaMalloc(&ws, bytes));
                    const std::span<std::byte> workspace(static_cast<std::byte*>(ws), bytes);
                    out.st = c.backward ? rc::backward_async(in, gr, dv, opt, workspace, test_stream, vals)
                                        : rc::forward_async(in, vals, opt, workspace, test_stream);
                    if (out.st.ok()) out.st = rc::check(workspace, test_stream);
                    CUDA_OK(cudaFree(ws));
                    break;
                }
            }
        } catch (const rspo::argument_error& ex) {
            out.threw = true;
            out.what = ex.what();
        }
    };

    if (e == engine::reference || e == engine::emulation) {
        invoke(z.data(), r.data(), pr.ids.data(), pr.mask.data(), pr.g_lp.data(), pr.g_rev.data(), pr.g_fwd.data(),
               dz.data(), lp.data(), rev.data(), fwd.data());
        if constexpr (std::is_same_v<T, G>)
            if (c.in_place) dz = z;
    } else {
        device_array<T> dz_z(z), d_r(r);
        device_array<std::int64_t> d_ids(pr.ids);
        device_array<std::uint8_t> d_mask(pr.mask);
        device_array<float> d_glp(pr.g_lp), d_grev(pr.g_rev), d_gfwd(pr.g_fwd), d_lp(lp), d_rev(rev), d_fwd(fwd);
        device_array<G> d_dz(dz);
        invoke(dz_z.ptr, d_r.ptr, d_ids.ptr, d_mask.ptr, d_glp.ptr, d_grev.ptr, d_gfwd.ptr, d_dz.ptr, d_lp.ptr,
               d_rev.ptr, d_fwd.ptr);
        CUDA_OK(cudaDeviceSynchronize());
        lp = d_lp.download();
        rev = d_rev.download();
        fwd = d_fwd.download();
        dz = d_dz.download();
        if constexpr (std::is_same_v<T, G>)
            if (c.in_place) dz = dz_z.download();
    }
    out.lp = std::move(lp);
    out.rev = std::move(rev);
    out.fwd = std::move(fwd);
    out.dz = std::move(dz);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Comparing with the reference
// ---------------------------------------------------------------------------------------------

/// Tolerances from fp32 arithmetic (u = 2^-24 ≈ 6e-8) with a margin (~30–130 u): the kernels' errors
/// are a few u relative to the magnitudes that enter each sum (p_v·|log p_v|, |log m_v|, KL, log V),
/// plus, for bf16 gradients, one bf16 ulp of the value (rounding may go either way near a tie). The
/// host replay stays below 0.1 of them; the device's exp2f (2 ulp) may add a little.
struct worst {
    double ratio = 0.0;  // max |err| / tol
    void see(double err, double tol) { ratio = std::max(ratio, tol > 0 ? err / tol : (err > 0 ? 1e30 : 0.0)); }
};

template <class T, class G>
void compare(const std::string& label, const problem<T>& pr, const call& c, const result<G>& ref,
             const result<G>& got) {
    expect(!ref.threw, label + ": the reference threw: " + ref.what);
    expect(!got.threw, label + ": threw: " + got.what);
    expect(got.st.ok(), label + ": status: " + got.st.message);
    if (ref.threw || got.threw || !got.st.ok()) return;
    const std::size_t rows = pr.rows, cols = pr.cols;
    const long double inv_t = 1.0L / static_cast<long double>(pr.temperature);
    const long double log_v = std::log(static_cast<long double>(std::max<std::size_t>(cols, 2)));
    worst w_lp, w_kl, w_g;
    int reported = 0;
    const auto bad = [&](const std::string& what) {
        if (reported++ < 8) expect(false, label + ": " + what);
        else ++failures;
    };
    std::vector<bool> inside(got.dz.size(), false);
    const terms need{c.values.lp || c.grads.lp, c.values.rev || c.grads.rev, c.values.fwd || c.grads.fwd};
    for (std::size_t n = 0; n < rows; ++n) {
        const std::size_t base = c.in_place ? pr.at.z_off + n * pr.z_stride() : pr.at.dz_off + n * pr.dz_stride();
        for (std::size_t v = 0; v < cols; ++v) inside[base + v] = true;
        if (!pr.active(n)) {  // exactly zero
            const auto zero = [&](const std::vector<float>& x, bool on, const char* name) {
                if (on && !same_bits(x[n], 0.0f))
                    bad(std::string(name) + "[" + std::to_string(n) + "] of a masked row is not 0");
            };
            zero(got.lp, c.values.lp, "logprob");
            zero(got.rev, c.values.rev, "reverse_kl");
            zero(got.fwd, c.values.fwd, "forward_kl");
            if (c.backward)
                for (std::size_t v = 0; v < cols; ++v)
                    if (rk::widen(got.dz[base + v]) != 0.0f) {
                        bad("gradient of masked row " + std::to_string(n) + " is not 0");
                        break;
                    }
            continue;
        }
        // Row statistics in long double, for the tolerances.
        using rk::reference::detail::row_logsumexp;
        const long double lse_z = row_logsumexp(&pr.z[pr.at.z_off + n * pr.z_stride()], cols, inv_t);
        const long double lse_r =
            need.kl() ? row_logsumexp(&pr.r[pr.at.r_off + n * pr.r_stride()], cols, inv_t) : 0.0L;
        long double s_kl = 0;  // Σ p(|log p| + |log m|) + Σ m(|log p| + |log m|), finite terms
        for (std::size_t v = 0; v < cols; ++v) {
            const long double lpv = pr.zv(n, v) * inv_t - lse_z;
            const long double lmv = need.kl() ? pr.rv(n, v) * inv_t - lse_r : 0.0L;
            const long double p = std::isfinite(lpv) ? std::exp(lpv) : 0.0L;
            const long double m = std::isfinite(lmv) ? std::exp(lmv) : 0.0L;
            const long double mag =
                (std::isfinite(lpv) ? std::fabs(lpv) : 0.0L) + (std::isfinite(lmv) ? std::fabs(lmv) : 0.0L);
            s_kl += (p + m) * mag;
        }
        const auto value = [&](const std::vector<float>& g, const std::vector<float>& rf, bool on, const char* name,
                               double tol, worst& w) {
            if (!on) return;
            const double err = std::fabs(static_cast<double>(g[n]) - rf[n]);
            w.see(err, tol);
            if (!(err <= tol))
                bad(std::string(name) + "[" + std::to_string(n) + "] = " + std::to_string(g[n]) + ", reference " +
                    std::to_string(rf[n]) + " (tol " + std::to_string(tol) + ")");
        };
        value(got.lp, ref.lp, c.values.lp, "logprob", 2e-6 * (1.0 + std::fabs(ref.lp[n])), w_lp);
        const double tol_kl = static_cast<double>(4e-6L * (1 + s_kl + log_v));
        value(got.rev, ref.rev, c.values.rev, "reverse_kl", tol_kl + 2e-6 * std::fabs(ref.rev[n]), w_kl);
        value(got.fwd, ref.fwd, c.values.fwd, "forward_kl", tol_kl + 2e-6 * std::fabs(ref.fwd[n]), w_kl);
        if (!c.backward) continue;
        const long double g_lp = c.grads.lp ? pr.g_lp[n] : 0.0f;
        const long double g_r = c.grads.rev ? pr.g_rev[n] : 0.0f;
        const long double g_f = c.grads.fwd ? pr.g_fwd[n] : 0.0f;
        const auto y = static_cast<std::size_t>(pr.ids[n]);
        for (std::size_t v = 0; v < cols; ++v) {
            const long double lpv = pr.zv(n, v) * inv_t - lse_z;
            const long double lmv = need.kl() ? pr.rv(n, v) * inv_t - lse_r : 0.0L;
            const long double p = std::isfinite(lpv) ? std::exp(lpv) : 0.0L;
            const long double m = std::isfinite(lmv) ? std::exp(lmv) : 0.0L;
            const long double alp = std::isfinite(lpv) ? std::fabs(lpv) : 0.0L;
            const long double alm = std::isfinite(lmv) ? std::fabs(lmv) : 0.0L;
            const long double target = c.grads.lp && v == y ? 1.0L : 0.0L;
            const long double weight =
                (std::fabs(g_lp) * (p + target) + std::fabs(g_r) * p * (alp + alm + s_kl + log_v + 1) +
                 std::fabs(g_f) * (p + m)) * inv_t;
            long double tol = 8e-6L * weight * (1 + std::min<long double>(alp, 1000) / 16) + 1e-35L;
            const double expected = rk::widen(ref.dz[base + v]);
            const double gv = rk::widen(got.dz[base + v]);
            if constexpr (!std::is_same_v<G, float>)  // one bf16 ulp
                tol += std::max(std::fabs(expected), std::fabs(gv)) * 0.0078125;
            const double err = std::fabs(gv - expected);
            w_g.see(err, static_cast<double>(tol));
            if (!(err <= tol))
                bad("dz(" + std::to_string(n) + ", " + std::to_string(v) + ") = " + std::to_string(gv) +
                    ", expected " +
                    std::to_string(expected) + " (tol " + std::to_string(static_cast<double>(tol)) + ")");
        }
    }
    if (c.backward)  // every entry outside the rows' cols keeps its sentinel (in place: the logits' padding)
        for (std::size_t i = 0; i < got.dz.size(); ++i) {
            bool kept = false;
            if constexpr (std::is_same_v<T, G>)
                kept = c.in_place ? std::memcmp(&got.dz[i], &pr.z[i], sizeof(G)) == 0 : got.dz[i] == sentinel<G>();
            else
                kept = got.dz[i] == sentinel<G>();
            if (!inside[i] && !kept) {
                bad("gradient buffer entry " + std::to_string(i) + " outside the rows was written");
                break;
            }
        }
    std::printf("  %-72s  worst err/tol: logprob %.3f  kl %.3f  grad %.3f\n", label.c_str(), w_lp.ratio, w_kl.ratio,
                w_g.ratio);
}

bool have_device = false;

std::vector<engine> engines_under_test() {
    if (have_device) return {engine::emulation, engine::device, engine::device_async};
    return {engine::emulation};
}

/// Runs a forward and a backward call through every engine and compares each with the reference.
template <class T, class G>
void check_case(const std::string& name, const problem<T>& pr, terms t, bool in_place = false) {
    const call fwd_call{false, t, {}, false, true};
    const call bwd_call{true, t, t, in_place, true};
    const auto ref_f = run<T, G>(engine::reference, pr, fwd_call);
    const auto ref_b = run<T, G>(engine::reference, pr, bwd_call);
    for (const engine e : engines_under_test()) {
        const std::string label = name + " [" + type_name<T>() + "->" + type_name<G>() + ", " + engine_name(e) + "]";
        compare(label + " forward", pr, fwd_call, ref_f, run<T, G>(e, pr, fwd_call));
        compare(label + " backward", pr, bwd_call, ref_b, run<T, G>(e, pr, bwd_call));
    }
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

template <class T>
void accuracy_cases() {
    const std::size_t sizes[] = {1, 31, 32, 33, 1000, 8192, 8193, 32000, 128256};
    std::uint64_t seed = 1;
    for (const std::size_t v : sizes) {
        const std::size_t rows = v >= 32000 ? 4 : 9;
        const float temperature = v % 2 ? 0.7f : 1.0f;
        const std::string size = "V=" + std::to_string(v) + " T=" + std::to_string(temperature).substr(0, 3);
        check_case<T, float>("all terms, contiguous, " + size, make_problem<T>(rows, v, seed++, {}, temperature),
                             all_terms);
        if (v > 8193) continue;
        // Padded rows with odd offsets: per-row alignment heads, a vector body and a scalar tail.
        const placement padded{1, 3, 1, 3, 2, 5};
        check_case<T, rk::bf16>("all terms, padded rows, " + size,
                                make_problem<T>(rows, v, seed++, padded, temperature), all_terms);
        const auto pr = make_problem<T>(rows, v, seed++, {}, 1.3f);
        check_case<T, T>("log-prob only, " + size, pr, {true, false, false});
        check_case<T, T>("reverse KL only, " + size, pr, {false, true, false});
        check_case<T, T>("forward KL only, " + size, pr, {false, false, true});
        check_case<T, T>("KLs, no log-prob, " + size, pr, {false, true, true});
    }
    for (const std::size_t v : {33u, 1000u, 10000u}) {
        const std::string size = "V=" + std::to_string(v);
        // The reference aligned differently from the logits: every entry on the scalar path.
        check_case<T, float>("reference misaligned vs logits, " + size,
                             make_problem<T>(5, v, seed++, placement{1, 0, 0, 0, 0, 0}), all_terms);
        // The gradient aligned differently from the logits: pass 2 on the scalar path.
        check_case<T, float>("gradient misaligned vs logits, " + size,
                             make_problem<T>(5, v, seed++, placement{0, 0, 0, 0, 1, 0}), all_terms);
        check_case<T, T>("in place, " + size, make_problem<T>(6, v, seed++, placement{0, 2, 0, 0, 0, 2}, 0.9f),
                         all_terms, true);
    }
    check_case<T, T>("in place, V=32000", make_problem<T>(4, 32000, seed++), all_terms, true);
    check_case<T, float>("no row mask, 40 rows, V=2000", make_problem<T>(40, 2000, seed++, {}, 1.0f, false),
                         all_terms);
}

/// Legal mask differences: the reference may be −∞ where θ is finite for the forward KL alone,
/// and θ may be −∞ where the reference is finite for the reverse KL alone.
template <class T>
void mask_difference_cases() {
    for (const std::size_t v : {33u, 1000u, 10000u}) {
        auto pr = make_problem<T>(5, v, 100 + v, {}, 1.0f, true, rows_kind::normal);
        for (std::size_t n = 0; n < pr.rows; ++n)
            for (std::size_t e = 0; e < v; e += 3)
                if (e != static_cast<std::size_t>(pr.ids[n])) pr.rat(n, e) = from_float<T>(-inf);
        // The absent reverse term must not form 0·∞ in the gradient.
        check_case<T, float>("forward KL, reference masked more, V=" + std::to_string(v), pr, {false, false, true});
        auto qr = make_problem<T>(5, v, 200 + v, {}, 1.0f, true, rows_kind::normal);
        for (std::size_t n = 0; n < qr.rows; ++n)
            for (std::size_t e = 1; e < v; e += 3)
                if (e != static_cast<std::size_t>(qr.ids[n])) qr.zat(n, e) = from_float<T>(-inf);
        check_case<T, float>("reverse KL + log-prob, logits masked more, V=" + std::to_string(v), qr,
                             {true, true, false});
    }
}

/// An input error: every engine reports it like the reference (same row, cause, message text).
template <class T>
void error_case(const std::string& name, problem<T> pr, const call& c, rc::errc code, std::size_t row) {
    const auto ref = run<T, float>(engine::reference, pr, c);
    expect(ref.threw, name + ": the reference did not throw");
    const int failures_before = failures;
    const std::string ref_text = without_function(ref.what);
    for (const engine e : engines_under_test()) {
        const std::string label = name + " [" + type_name<T>() + ", " + engine_name(e) + "]";
        const auto got = run<T, float>(e, pr, c);
        expect(!got.threw, label + ": threw " + got.what);
        expect(got.st.code == code, label + ": code " + std::to_string(static_cast<int>(got.st.code)) + ", expected " +
                                        std::to_string(static_cast<int>(code)) + " (" + got.st.message + ")");
        expect(got.st.row == row, label + ": row " + std::to_string(got.st.row) + ", expected " + std::to_string(row));
        const std::string text = without_function(got.st.message);
        expect(text == ref_text, label + ": message\n    " + got.st.message + "\n  reference says\n    " + ref.what);
        const std::string prefix = e == engine::device_async ? (c.backward ? "rspo::kernels::cuda::backward_async: "
                                                                           : "rspo::kernels::cuda::forward_async: ")
                                                             : (c.backward ? "rspo::kernels::cuda::backward: "
                                                                           : "rspo::kernels::cuda::forward: ");
        expect(got.st.message.rfind(prefix, 0) == 0, label + ": message prefix: " + got.st.message);
        // The bad row's values are NaN; the other active rows are computed.
        const auto& vals = c.values.lp ? got.lp : c.values.rev ? got.rev : got.fwd;
        if (c.values.any()) {
            if (pr.active(row))
                expect(std::isnan(vals[row]), label + ": the bad row's value is not NaN");
            else
                expect(vals[row] == 0.0f, label + ": a masked row's value is not 0");
            for (std::size_t n = 0; n < pr.rows; ++n)
                if (n != row && pr.active(n) && n != 3)  // row 3 carries a second defect in one case
                    expect(std::isfinite(vals[n]), label + ": row " + std::to_string(n) + " not computed");
        }
    }
    std::printf("  %-72s  %s\n", (name + " [" + type_name<T>() + "]").c_str(),
                failures == failures_before ? "ok" : "FAILED");
}

template <class T>
void error_cases() {
    for (const std::size_t v : {33u, 10000u}) {  // a warp per row, a block per row
        const std::string size = ", V=" + std::to_string(v);
        const auto base = [&] { return make_problem<T>(5, v, 300 + v, {}, 1.0f, true, rows_kind::normal); };
        const call lp_call{false, {true, false, false}, {}, false, true};
        const call rev_call{false, {false, true, false}, {}, false, true};
        const call fwd_call{false, {false, false, true}, {}, false, true};
        const call all_call{false, all_terms, {}, false, true};
        const std::size_t e = 5 % v, e2 = 9 % v;
        {
            auto pr = base();
            pr.zat(2, e) = from_float<T>(qnan);
            error_case("NaN logit" + size, pr, lp_call, rc::errc::bad_logit, 2);
        }
        {
            auto pr = base();
            pr.zat(2, e2) = from_float<T>(inf);
            pr.zat(2, e + 20) = from_float<T>(qnan);  // a later entry: the first one is named
            error_case("+inf logit before a NaN" + size, pr, rev_call, rc::errc::bad_logit, 2);
        }
        {
            auto pr = base();
            pr.rat(2, e2) = from_float<T>(qnan);
            error_case("NaN reference, forward KL" + size, pr, fwd_call, rc::errc::bad_reference, 2);
            // Not a mask difference: a NaN is named as such even where the reverse KL looks first.
            error_case("NaN reference, reverse KL" + size, pr, rev_call, rc::errc::bad_reference, 2);
            pr.rat(2, e2) = from_float<T>(inf);
            error_case("+inf reference, reverse KL" + size, pr, rev_call, rc::errc::bad_reference, 2);
        }
        {
            auto pr = base();
            for (std::size_t i = 0; i < v; ++i) pr.zat(2, i) = from_float<T>(-inf);
            error_case("all -inf logits" + size, pr, lp_call, rc::errc::all_logits_neg_inf, 2);
        }
        {
            auto pr = base();
            for (std::size_t i = 0; i < v; ++i) pr.rat(2, i) = from_float<T>(-inf);
            error_case("all -inf reference" + size, pr, fwd_call, rc::errc::all_reference_neg_inf, 2);
        }
        {
            auto pr = base();
            pr.zat(2, static_cast<std::size_t>(pr.ids[2])) = from_float<T>(-inf);
            error_case("-inf target" + size, pr, lp_call, rc::errc::neg_inf_target, 2);
        }
        {
            auto pr = base();
            pr.rat(2, e2) = from_float<T>(-inf);
            error_case("reference -inf where logits finite, reverse KL" + size, pr, rev_call,
                       rc::errc::reverse_kl_infinite, 2);
            error_case("same, all terms" + size, pr, all_call, rc::errc::reverse_kl_infinite, 2);
        }
        {
            auto pr = base();
            pr.zat(2, e2) = from_float<T>(-inf);
            if (static_cast<std::size_t>(pr.ids[2]) == e2) pr.ids[2] = static_cast<std::int64_t>((e2 + 1) % v);
            error_case("logits -inf where reference finite, forward KL" + size, pr, fwd_call,
                       rc::errc::forward_kl_infinite, 2);
        }
        {
            auto pr = base();
            pr.ids[2] = static_cast<std::int64_t>(v);
            error_case("id = V" + size, pr, lp_call, rc::errc::bad_id, 2);
            pr.ids[2] = -1;
            error_case("id = -1" + size, pr, all_call, rc::errc::bad_id, 2);
        }
        {
            auto pr = base();
            pr.g_rev[2] = inf;
            error_case("non-finite upstream gradient" + size, pr,
                       call{true, {}, all_terms, false, true}, rc::errc::bad_gradient, 2);
            auto qr = base();
            qr.g_lp[1] = qnan;  // row 1 is masked: its upstream gradient is still checked
            error_case("NaN upstream gradient of a masked row" + size, qr,
                       call{true, {true, false, false}, {true, false, false}, false, true}, rc::errc::bad_gradient, 1);
        }
        {
            auto pr = base();
            pr.zat(3, e) = from_float<T>(qnan);
            pr.zat(2, static_cast<std::size_t>(pr.ids[2])) = from_float<T>(-inf);
            error_case("two bad rows: the first is named" + size, pr, lp_call, rc::errc::neg_inf_target, 2);
        }
    }
}

/// Argument errors the host can see throw before anything is enqueued (no device needed).
void host_check_cases() {
    auto pr = make_problem<float>(3, 10, 7);
    rk::token_inputs<float> in;
    in.logits = {pr.z.data(), 3, 10, 10};
    in.reference = {pr.r.data(), 3, 10, 10};
    in.ids = {pr.ids.data(), 2};  // one short
    std::vector<float> lp(3);
    rk::token_values vals;
    vals.logprob = lp;
    const auto throws = [](auto&& f, const char* what) {
        bool threw = false;
        try {
            f();
        } catch (const rspo::argument_error&) {
            threw = true;
        }
        expect(threw, std::string("host check: ") + what);
    };
    throws([&] { (void)rc::forward(in, vals, {}, nullptr); }, "ids of the wrong size");
    in.ids = {pr.ids.data(), 3};
    rk::kernel_options cold;
    cold.temperature = 0.0f;
    throws([&] { (void)rc::forward(in, vals, cold, nullptr); }, "temperature 0");
    std::vector<float> dz(40);
    rk::gradient_view<float> overlap{pr.z.data() + 1, 3, 10, 10};
    rk::token_grads grads;
    grads.logprob = pr.g_lp;
    throws([&] { (void)rc::backward(in, grads, overlap, {}, nullptr); }, "dlogits overlapping the logits");
    std::vector<std::byte> small(8);
    throws([&] { (void)rc::forward_async(in, vals, {}, small, nullptr); }, "a too small workspace");
    std::printf("  %-72s  ok\n", "host-side argument checks throw");
}

/// Empty calls: no rows, or backward with no term (the gradient is zeroed).
template <class T>
void empty_cases() {
    auto pr = make_problem<T>(3, 40, 11);
    const call none{true, {}, {}, false, true};
    for (const engine e : engines_under_test()) {
        const auto got = run<T, float>(e, pr, none);
        expect(got.st.ok(), std::string("no terms: ") + got.st.message);
        bool zero = true;
        for (std::size_t n = 0; n < pr.rows; ++n)
            for (std::size_t v = 0; v < pr.cols; ++v) zero = zero && got.dz[n * pr.dz_stride() + v] == 0.0f;
        expect(zero, std::string("no terms: gradient not zero [") + engine_name(e) + "]");
    }
    auto empty = make_problem<T>(0, 40, 12);
    for (const engine e : engines_under_test()) {
        const auto got = run<T, float>(e, empty, call{false, all_terms, {}, false, true});
        expect(got.st.ok() && !got.threw, std::string("zero rows [") + engine_name(e) + "]");
    }
    std::printf("  %-72s  ok\n", (std::string("empty calls [") + type_name<T>() + "]").c_str());
}

/// Two runs give bit-identical values and gradients (device only), checked = false included.
template <class T, class G>
void determinism_case(std::size_t rows, std::size_t cols) {
    const auto pr = make_problem<T>(rows, cols, 99 + cols, {}, 0.8f);
    call c{true, all_terms, all_terms, false, true};
    const auto a = run<T, G>(engine::device, pr, c);
    const auto b = run<T, G>(engine::device, pr, c);
    c.checked = false;
    const auto u = run<T, G>(engine::device_async, pr, c);
    const auto same = [](const auto& x, const auto& y) {
        return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(x[0])) == 0;
    };
    const std::string label =
        "determinism V=" + std::to_string(cols) + " [" + type_name<T>() + "->" + type_name<G>() + "]";
    expect(a.st.ok() && b.st.ok() && u.st.ok(), label + ": status");
    expect(same(a.lp, b.lp) && same(a.rev, b.rev) && same(a.fwd, b.fwd), label + ": values differ between runs");
    expect(same(a.dz, b.dz), label + ": gradients differ between runs");
    expect(same(a.lp, u.lp) && same(a.dz, u.dz), label + ": async / unchecked run differs");
    std::printf("  %-72s  ok\n", label.c_str());
}

}  // namespace

int main() {
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    have_device = e == cudaSuccess && devices > 0;
    if (have_device) {
        cudaDeviceProp prop{};
        CUDA_OK(cudaGetDeviceProperties(&prop, 0));
        std::printf("CUDA device 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
        CUDA_OK(cudaStreamCreateWithFlags(&test_stream, cudaStreamNonBlocking));
    } else {
        std::printf("no CUDA device (%s): running the host replay of the kernels only\n",
                    e == cudaSuccess ? "none found" : cudaGetErrorName(e));
        (void)cudaGetLastError();
    }

    std::printf("accuracy against the reference:\n");
    accuracy_cases<float>();
    accuracy_cases<rk::bf16>();
    mask_difference_cases<float>();
    mask_difference_cases<rk::bf16>();
    std::printf("errors:\n");
    error_cases<float>();
    error_cases<rk::bf16>();
    host_check_cases();
    empty_cases<float>();
    empty_cases<rk::bf16>();
    if (have_device) {
        std::printf("determinism:\n");
        determinism_case<rk::bf16, rk::bf16>(64, 128256);
        determinism_case<float, float>(64, 32000);
        determinism_case<rk::bf16, float>(256, 1000);
        CUDA_OK(cudaStreamDestroy(test_stream));
    }

    std::printf("%lld checks, %d failures\n", checks, failures);
    if (failures > 0) return 1;
    if (!have_device) {
        std::printf("no CUDA device: skipped\n");
        return 77;
    }
    return 0;
}
