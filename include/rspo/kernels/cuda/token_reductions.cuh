#pragma once
// The CUDA backend of the token reductions (docs/math §5): per-token log-probs and exact KL
// divergences over the vocabulary, forward and backward, fp32 or bf16 logits, fp32 or bf16
// gradient, fp32 accumulation. Same values, gradients, masking and error causes as
// rspo::kernels::reference (the oracle) and rspo::kernels::simd; compiled by nvcc only.
//
// API (namespace rspo::kernels::cuda). Every pointer in the views and spans is a DEVICE pointer.
//   status forward(in, values, options, stream)                        synchronous
//   status backward(in, grads, dlogits, options, stream, values = {})  synchronous
//   status forward_async(in, values, options, workspace, stream)       enqueue only
//   status backward_async(in, grads, dlogits, options, workspace, stream, values = {})
//   status check(workspace, stream)                                    result of an *_async call
//   workspace_size(rows, cols)                                         bytes of device workspace
//
// Errors. Argument errors that the host can see (shapes, strides, sizes, temperature, overlap of
// dlogits and logits, a too small workspace) throw the same rspo::argument_error types as the CPU
// backends, before anything is enqueued; options.checked = false skips them except the workspace
// check. Everything that needs the data is found on the device and returned as a status (never
// thrown): ids outside [0, V), a non-finite upstream gradient, NaN/+inf logits, an all −∞ row, a
// −∞ target, masks that differ where a requested KL needs them equal, and CUDA errors. A status
// names the FIRST (lowest-index) bad row and, within it, the cause and entry the CPU backends
// would name, with the same message text (the CPU backends check every id, then every upstream
// gradient, before any row; here the lowest bad row wins whatever its cause). Bad rows get NaN
// values and their gradient row is left unwritten (so an in-place backward keeps the logits for
// the diagnosis); every other row is computed normally.
//
// Synchronization and workspace. forward/backward allocate their 64-byte status record with
// cudaMallocAsync on `stream` (stream-ordered, from the device's default pool), enqueue the work,
// then copy the record back and SYNCHRONIZE the stream (so they also wait for earlier work on it).
// A trainer that must not stall uses the *_async forms with a caller-owned workspace of
// workspace_size(rows, cols) bytes (8-byte aligned device memory): they only enqueue (a
// cudaMemsetAsync of the record, the row kernel and a one-block diagnosis kernel) and return
// launch errors; check(workspace, stream) later copies the record back, synchronizes the stream
// and returns the status. One workspace holds the result of one call: check it before passing it
// to the next call, or give each in-flight call its own workspace.
//
// Algorithm. One group of threads per row: a warp for V ≤ 8192 (8 rows per block of 256), else a
// block of 256. Each thread streams its share of the row with 16-byte loads (4 floats or 8 bf16;
// 64 bytes in flight per thread per step; a scalar head and tail where the row is not 16-byte
// aligned) and keeps an online logsumexp in log2 units: a running max shift, rescaled once per
// chunk, and one exp2 per entry with x·log2(e)/T folded into an fma; the KL sums are kept relative
// to the shifts so that a large common offset of θ and the reference cancels before rounding.
// fp32 accumulation, then warp shuffles and shared memory combine the threads; the values are
// finished in double. Backward recomputes the statistics in a first sweep and writes the gradient
// in a second one, re-reading the row: from L2 when the rows in flight fit (about 3–4 blocks per
// SM, so ~500 rows on an H100/H200: 32 MB of L2 for V = 32000 in bf16), else from HBM (V = 128256:
// then backward reads the inputs twice and writes the gradient once). Forward reads each input
// exactly once and aims at ≥ 80% of HBM bandwidth.
//
// Determinism. Each row is reduced by one fixed group of threads in a fixed order: a fixed
// element-to-thread assignment, fixed partial sums per chunk, and fixed shuffle/shared-memory
// trees across threads (no atomics on values). Results are bit-identical from run to run for the
// same inputs at the same addresses on the same GPU and build. (The vector path starts at the
// first 16-byte boundary of each row, so the same row at a differently aligned address may round
// differently in the last bits.) The *_async forms enqueue no host synchronization and can be
// captured in a CUDA graph.
//
// Eigen note: the host-side checks include rspo/core/check.hpp, hence Eigen. Under nvcc, Eigen
// 3.4 then emits warnings 20012/20015 about its own __host__ __device__ annotations; define
// EIGEN_NO_CUDA for such translation units (rspo uses no Eigen on the device).

#if !defined(__CUDACC__)
#error "rspo/kernels/cuda/token_reductions.cuh is CUDA code: compile it with nvcc (a .cu file)"
#endif

#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>
#include <rspo/kernels/types.hpp>
#include <rspo/kernels/validation.hpp>

#include <cuda_runtime.h>

#include <bit>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

namespace rspo::kernels::cuda {

/// What went wrong; `ok` is success.
enum class errc : std::uint8_t {
    ok = 0,
    cuda_error,             ///< a CUDA runtime call or launch failed (status::cuda_error)
    bad_id,                 ///< ids[row] outside [0, V)
    bad_gradient,           ///< a non-finite upstream gradient grads.<term>[row]
    bad_logit,              ///< logits(row, entry) is NaN or +inf
    bad_reference,          ///< reference(row, entry) is NaN or +inf
    reverse_kl_infinite,    ///< reference −∞ where logits finite: KL(π‖μ) = +∞ (masks differ)
    forward_kl_infinite,    ///< logits −∞ where reference finite: KL(μ‖π) = +∞ (masks differ)
    all_logits_neg_inf,     ///< every entry of the logits row is −∞
    all_reference_neg_inf,  ///< every entry of the reference row is −∞
    neg_inf_target,         ///< logits(row, ids[row]) = −∞: the log-probability is −∞
    not_finite,             ///< the fp32 reduction overflowed though no input error was found
                            ///< (|logits|/T near FLT_MAX)
};

/// The result of a call. For input errors, `row` is the first bad row and `entry` the entry
/// (column) where the cause has one; `argument` names the offending input as the CPU backends'
/// exceptions do; `message` is the full text ("rspo::kernels::cuda::forward: logits(2, 5) = nan
/// (logits may be finite or -inf only)").
struct status {
    errc code = errc::ok;
    cudaError_t cuda_error = cudaSuccess;
    std::size_t row = 0;
    std::size_t entry = 0;
    std::string argument;
    std::string message;

    [[nodiscard]] bool ok() const noexcept { return code == errc::ok; }
};

namespace detail {

inline constexpr unsigned block_threads = 256;
inline constexpr unsigned warp_threads = 32;
/// Rows of at most this many entries are reduced by one warp (8 rows per block); longer rows by a
/// block of 256 threads.
inline constexpr std::size_t warp_row_max_cols = 8192;
/// Vectors (16 bytes each) each thread loads per step of a row sweep, per input: 64 bytes in
/// flight per thread either way (the KL kernels read two rows and need twice the registers).
template <bool KL>
inline constexpr int unroll = KL ? 2 : 4;
inline constexpr unsigned long long no_row = ~0ull;
inline constexpr float flt_max = 3.402823466e+38f;
inline constexpr double ln2 = 0.69314718055994530942;
inline constexpr double log2e = 1.44269504088896340736;

/// The status record the kernels fill (the whole workspace). Reset to all ones before each call.
struct device_report {
    unsigned long long first_bad_row;  ///< no_row when every row is fine
    unsigned int cause;                ///< an errc
    unsigned int op;                   ///< which public function (function_name)
    unsigned long long entry;          ///< column, or the term index for bad_gradient
    unsigned long long cols;
    double value;                      ///< the offending value
    long long id;                      ///< ids[row], when read
    unsigned long long reserved[2];
};
static_assert(sizeof(device_report) == 64);

enum op_code : unsigned { op_forward, op_forward_async, op_backward, op_backward_async };

inline const char* function_name(unsigned op) {
    switch (op) {
        case op_forward: return "rspo::kernels::cuda::forward";
        case op_forward_async: return "rspo::kernels::cuda::forward_async";
        case op_backward: return "rspo::kernels::cuda::backward";
        case op_backward_async: return "rspo::kernels::cuda::backward_async";
        default: return "rspo::kernels::cuda";
    }
}

/// Everything a row kernel needs, type-erased (the kernels are templates on the element types).
struct row_params {
    const void* z = nullptr;
    std::size_t z_stride = 0;
    const void* r = nullptr;
    std::size_t r_stride = 0;
    std::size_t cols = 0;
    std::size_t row_begin = 0, row_end = 0;
    unsigned rows_per_block = 1;  ///< 1: a block per row; block_threads / 32: a warp per row
    const std::int64_t* ids = nullptr;
    const std::uint8_t* mask = nullptr;
    float temperature = 1.0f;
    float c = 0.0f;  ///< log2(e) / T: exponentials are taken as exp2(x·c − shift)
    bool want_reverse = false;  ///< KL(π‖μ) requested (value or gradient): its masks must agree
    bool want_forward = false;  ///< KL(μ‖π) requested
    float* out_logprob = nullptr;
    float* out_reverse = nullptr;
    float* out_forward = nullptr;
    const float* g_logprob = nullptr;
    const float* g_reverse = nullptr;
    const float* g_forward = nullptr;
    void* dz = nullptr;
    std::size_t dz_stride = 0;
    device_report* report = nullptr;
    unsigned op = 0;
};

// ---------------------------------------------------------------------------------------------
// Row building blocks. __host__ __device__ wherever the hardware allows, so that tests/cuda can
// replay the kernels' per-thread arithmetic and reduction order on the host without a GPU.
// ---------------------------------------------------------------------------------------------

#define RSPO_CUDA_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)
#define RSPO_CUDA_UNROLL _Pragma("unroll")
#else
#define RSPO_CUDA_UNROLL  // the host compiler only replays these loops in tests
#endif

/// Storage of an element type (bf16 as its 16 bits).
template <class T>
using storage_t = std::conditional_t<std::is_same_v<T, float>, float, unsigned short>;

RSPO_CUDA_HD float float_from_bits(unsigned u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    return std::bit_cast<float>(u);
#endif
}
RSPO_CUDA_HD unsigned bits_from_float(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    return std::bit_cast<unsigned>(x);
#endif
}
RSPO_CUDA_HD float widen_bits(float x) { return x; }
RSPO_CUDA_HD float widen_bits(unsigned short x) { return float_from_bits(static_cast<unsigned>(x) << 16); }
RSPO_CUDA_HD bool is_finite(float x) { return fabsf(x) <= flt_max; }  // false for NaN
RSPO_CUDA_HD bool is_finite(double x) { return fabs(x) <= 1.7976931348623157e308; }
RSPO_CUDA_HD float negative_infinity() { return float_from_bits(0xFF800000u); }
RSPO_CUDA_HD float positive_infinity() { return float_from_bits(0x7F800000u); }
RSPO_CUDA_HD float quiet_nan() { return float_from_bits(0x7FC00000u); }

/// rspo::kernels::to_bf16 (round to nearest even, NaN stays a quiet NaN), bit for bit.
RSPO_CUDA_HD unsigned short bf16_bits(float x) {
    const unsigned u = bits_from_float(x);
    if (x != x) return static_cast<unsigned short>((u >> 16) | 0x0040u);
    return static_cast<unsigned short>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/// Loads with or without the streaming (evict-first) cache hint.
template <bool Stream, class P>
RSPO_CUDA_HD P load(const P* p) {
#if defined(__CUDA_ARCH__)
    if constexpr (Stream) return __ldcs(p);
#endif
    return *p;
}

/// Streaming (evict-first) store: the gradient is not read again by this kernel.
template <class P>
RSPO_CUDA_HD void store(P* p, P v) {
#if defined(__CUDA_ARCH__)
    __stcs(p, v);
#else
    *p = v;
#endif
}

/// 16 bytes of elements: 4 floats or 8 bf16.
template <class T>
struct vec;
template <>
struct vec<float> {
    static constexpr int width = 4;
    using raw = float4;
    RSPO_CUDA_HD static void unpack(const float4& v, float* x) {
        x[0] = v.x;
        x[1] = v.y;
        x[2] = v.z;
        x[3] = v.w;
    }
};
template <>
struct vec<bf16> {
    static constexpr int width = 8;
    using raw = uint4;
    RSPO_CUDA_HD static void unpack(const uint4& v, float* x) {
        const unsigned w[4] = {v.x, v.y, v.z, v.w};
RSPO_CUDA_UNROLL
        for (int i = 0; i < 4; ++i) {  // little-endian: element 2i is the low half of word i
            x[2 * i] = float_from_bits(w[i] << 16);
            x[2 * i + 1] = float_from_bits(w[i] & 0xFFFF0000u);
        }
    }
};

template <class T>
RSPO_CUDA_HD const T* row_in(const void* base, std::size_t stride, std::size_t n) {
    return static_cast<const T*>(base) + n * stride;
}
template <class G>
RSPO_CUDA_HD G* row_out(void* base, std::size_t stride, std::size_t n) {
    return static_cast<G*>(base) + n * stride;
}

/// A piece of a row handed to a sweep's functor: NV vectors of W contiguous entries each, vector
/// j starting at column at[j]; x from the logits, y from the reference (−∞ when not read).
template <int NV, int W>
struct chunk {
    static constexpr int vectors = NV, width = W, size = NV * W;
    float x[NV * W];
    float y[NV * W];
    std::size_t at[NV];
};

/// How a row's columns are visited (see sweep). `vectorized` is false when the reference row (or,
/// in pass 2, the gradient row) is not aligned like the logits row: every column is then a scalar.
struct row_layout {
    bool vectorized = false;
    std::size_t head = 0;  ///< scalar entries before the first 16-byte boundary of the logits row
};

template <class T>
RSPO_CUDA_HD row_layout layout_of(const T* z, const T* r, std::size_t cols) {
    const auto az = reinterpret_cast<std::uintptr_t>(z);
    row_layout l;
    if (az % sizeof(T) != 0) return l;
    l.head = ((16u - (az & 15u)) & 15u) / sizeof(T);
    if (l.head > cols) l.head = cols;
    l.vectorized = r == nullptr || (reinterpret_cast<std::uintptr_t>(r + l.head) & 15u) == 0;
    return l;
}

/// Thread `lane` of a group of `group` threads visits its share of a row, always in the same order:
/// the scalar head (lane < head), then steps of U coalesced 16-byte vectors (vector k of the body
/// belongs to lane k mod group), the remaining single vectors, and one scalar of the tail.
template <class T, bool KL, bool Stream, class F>
RSPO_CUDA_HD void sweep(const T* z, const T* r, std::size_t cols, row_layout l, unsigned lane, unsigned group,
                        F&& f) {
    using S = storage_t<T>;
    constexpr int W = vec<T>::width;
    using raw = typename vec<T>::raw;
    const S* zs = reinterpret_cast<const S*>(z);
    const S* rs = reinterpret_cast<const S*>(r);
    const float none = negative_infinity();  // the reference when it is not read
    const auto scalar = [&](std::size_t v) {
        chunk<1, 1> ch;
        ch.at[0] = v;
        ch.x[0] = widen_bits(load<Stream>(zs + v));
        ch.y[0] = KL ? widen_bits(load<Stream>(rs + v)) : none;
        f(ch);
    };
    if (!l.vectorized) {
        for (std::size_t v = lane; v < cols; v += group) scalar(v);
        return;
    }
    if (lane < l.head) scalar(lane);
    const std::size_t nvec = (cols - l.head) / W;
    const raw* zv = reinterpret_cast<const raw*>(zs + l.head);
    const raw* rv = KL ? reinterpret_cast<const raw*>(rs + l.head) : nullptr;
    constexpr int U = unroll<KL>;
    const std::size_t step = static_cast<std::size_t>(U) * group;
    const std::size_t full = nvec / step * step;
    for (std::size_t base = 0; base < full; base += step) {
        raw zr[U], rr[U];
RSPO_CUDA_UNROLL
        for (int j = 0; j < U; ++j) {  // all loads first: U × 16 bytes in flight per input
            const std::size_t k = base + static_cast<std::size_t>(j) * group + lane;
            zr[j] = load<Stream>(zv + k);
            if constexpr (KL) rr[j] = load<Stream>(rv + k);
        }
        chunk<U, W> ch;
RSPO_CUDA_UNROLL
        for (int j = 0; j < U; ++j) {
            ch.at[j] = l.head + (base + static_cast<std::size_t>(j) * group + lane) * W;
            vec<T>::unpack(zr[j], ch.x + j * W);
            if constexpr (KL)
                vec<T>::unpack(rr[j], ch.y + j * W);
            else
RSPO_CUDA_UNROLL
                for (int i = 0; i < W; ++i) ch.y[j * W + i] = none;
        }
        f(ch);
    }
    for (std::size_t k = full + lane; k < nvec; k += group) {
        chunk<1, W> ch;
        ch.at[0] = l.head + k * W;
        vec<T>::unpack(load<Stream>(zv + k), ch.x);
        if constexpr (KL)
            vec<T>::unpack(load<Stream>(rv + k), ch.y);
        else
RSPO_CUDA_UNROLL
            for (int i = 0; i < W; ++i) ch.y[i] = none;
        f(ch);
    }
    const std::size_t tail = l.head + nvec * W + lane;
    if (tail < cols) scalar(tail);
}

/// Online statistics of a row piece, in log2 units with u = x·c (c = log2(e)/T), w = y·c:
///   sz = Σ 2^(u − mz),  sr = Σ 2^(w − mr),  a = Σ 2^(u − mz)·d,  b = Σ 2^(w − mr)·(−d),
/// where d = (u − mz) − (w − mr). The shifts mz, mr are the running maxima of fl(x·c), fl(y·c),
/// floored at −FLT_MAX (so a piece with no finite entry yet has exp2(−∞) = 0 terms and no NaN);
/// d is taken relative to the shifts so that a large common offset of z and r cancels before it
/// is rounded. Then, with L = log2 sz − log2 sr (the shifts cancel):
///   KL(p‖m) = ln2·(a/sz − L),  KL(m‖p) = ln2·(b/sr + L).
/// A NaN or +∞ entry makes sz (or sr) NaN; a requested KL whose masks differ makes a (or b) +∞ or
/// NaN: the row is then reported, never silently wrong.
struct row_stats {
    float mz, sz, mr, sr, a, b;
};

RSPO_CUDA_HD row_stats empty_stats() { return {-flt_max, 0.0f, -flt_max, 0.0f, 0.0f, 0.0f}; }

/// The same sums expressed with the (larger or equal) shifts mz, mr.
template <bool KL>
RSPO_CUDA_HD row_stats rebased(row_stats s, float mz, float mr) {
    const float fz = exp2f(s.mz - mz);
    if constexpr (KL) {
        const float fr = exp2f(s.mr - mr);
        // d relative to the new shifts is d − delta. A piece with no finite entry has a = 0 (or
        // NaN from bad input) and must not meet delta, which may be ±∞ there.
        const float delta = (mz - s.mz) - (mr - s.mr);
        if (s.sz > 0.0f) s.a = (s.a - delta * s.sz) * fz;
        if (s.sr > 0.0f) s.b = (s.b + delta * s.sr) * fr;
        s.sr *= fr;
        s.mr = mr;
    }
    s.sz *= fz;
    s.mz = mz;
    return s;
}

/// Combines two pieces. Callers always pass the lower lane's piece first, so that both lanes of a
/// shuffle compute bit-identical results.
template <bool KL>
RSPO_CUDA_HD row_stats merged(const row_stats& lo, const row_stats& hi) {
    const float mz = fmaxf(lo.mz, hi.mz);
    const float mr = KL ? fmaxf(lo.mr, hi.mr) : 0.0f;
    row_stats s = rebased<KL>(lo, mz, mr);
    const row_stats t = rebased<KL>(hi, mz, mr);
    s.sz += t.sz;
    if constexpr (KL) {
        s.sr += t.sr;
        s.a += t.a;
        s.b += t.b;
    }
    return s;
}

/// Adds chunks to a thread's running statistics: one rescale per chunk, one exp2 per entry.
template <bool KL>
struct accumulate_stats {
    float c;
    row_stats s;

    template <class C>
    RSPO_CUDA_HD void operator()(const C& ch) {
        constexpr int N = C::size;
        float xmax = ch.x[0], ymax = ch.y[0];
RSPO_CUDA_UNROLL
        for (int i = 1; i < N; ++i) {  // fmaxf skips NaN: a NaN entry is caught by the sum instead
            xmax = fmaxf(xmax, ch.x[i]);
            if constexpr (KL) ymax = fmaxf(ymax, ch.y[i]);
        }
        const float mz = fmaxf(s.mz, xmax * c);
        const float mr = KL ? fmaxf(s.mr, ymax * c) : 0.0f;
        s = rebased<KL>(s, mz, mr);
        // Four interleaved partial sums per quantity (entry i goes to partial i mod 4), added in a
        // fixed order: short dependency chains, no local arrays.
        float e[4] = {0.0f, 0.0f, 0.0f, 0.0f}, f[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        float ea[4] = {0.0f, 0.0f, 0.0f, 0.0f}, fb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
RSPO_CUDA_UNROLL
        for (int i = 0; i < N; ++i) {
            const float u = fmaf(ch.x[i], c, -mz);  // x·c exact inside the fma
            const float ei = exp2f(u);
            e[i % 4] += ei;
            if constexpr (KL) {
                const float w = fmaf(ch.y[i], c, -mr);
                const float fi = exp2f(w);
                f[i % 4] += fi;
                const float d = u - w;  // NaN where both are −∞, ±∞ where one is
                // fmaxf(NaN or −∞, −FLT_MAX) = −FLT_MAX, times a zero weight: exactly 0.
                ea[i % 4] = fmaf(ei, fmaxf(d, -flt_max), ea[i % 4]);
                fb[i % 4] = fmaf(fi, fmaxf(-d, -flt_max), fb[i % 4]);
            }
        }
        s.sz += (e[0] + e[1]) + (e[2] + e[3]);
        if constexpr (KL) {
            s.sr += (f[0] + f[1]) + (f[2] + f[3]);
            s.a += (ea[0] + ea[1]) + (ea[2] + ea[3]);
            s.b += (fb[0] + fb[1]) + (fb[2] + fb[3]);
        }
    }
};

/// What a row needs before its statistics.
struct row_setup {
    bool masked = false;  ///< value 0, zero gradient, logits not read
    bool bad = false;     ///< a non-finite upstream gradient or an id outside [0, V)
    std::size_t y = 0;    ///< the target
    float g_lp = 0.0f, g_r = 0.0f, g_f = 0.0f;
    float zy = 0.0f;  ///< the target logit, read before pass 1: with an in-place gradient, another
                      ///< warp's pass 2 may overwrite it once the statistics are reduced
};

template <class T, bool LP, bool BWD>
RSPO_CUDA_HD row_setup setup_row(const row_params& p, std::size_t n) {
    row_setup st;
    if constexpr (BWD) {  // every row's upstream gradients must be finite, masked or not
        if (p.g_logprob) st.g_lp = p.g_logprob[n];
        if (p.g_reverse) st.g_r = p.g_reverse[n];
        if (p.g_forward) st.g_f = p.g_forward[n];
        st.bad = !is_finite(st.g_lp) || !is_finite(st.g_r) || !is_finite(st.g_f);
    }
    st.masked = p.mask != nullptr && p.mask[n] == 0;
    if (st.masked) return st;
    if constexpr (LP) {
        const long long id = p.ids[n];
        if (id < 0 || static_cast<unsigned long long>(id) >= p.cols) {
            st.bad = true;
        } else {
            st.y = static_cast<std::size_t>(id);
            st.zy = widen_bits(reinterpret_cast<const storage_t<T>*>(row_in<T>(p.z, p.z_stride, n))[st.y]);
        }
    }
    return st;
}

/// Pass 1: this thread's share of the row statistics. Forward streams the rows (evict-first);
/// backward leaves them cached for pass 2.
template <class T, bool KL, bool BWD>
RSPO_CUDA_HD row_stats pass1(const row_params& p, std::size_t n, unsigned lane, unsigned group) {
    const T* z = row_in<T>(p.z, p.z_stride, n);
    const T* r = KL ? row_in<T>(p.r, p.r_stride, n) : nullptr;
    accumulate_stats<KL> acc{p.c, empty_stats()};
    sweep<T, KL, !BWD>(z, r, p.cols, layout_of(z, r, p.cols), lane, group, acc);
    return acc.s;
}

/// A row's values, in double from the fp32 statistics.
struct row_values {
    bool bad = false;
    double logprob = 0.0, reverse = 0.0, forward = 0.0;
    double gap = 0.0;  ///< L = log2 sz − log2 sr
};

template <bool LP, bool KL>
RSPO_CUDA_HD row_values finish_row(const row_params& p, const row_stats& s, const row_setup& st) {
    row_values v;
    v.bad = !(s.sz > 0.0f && is_finite(s.sz));  // a NaN/+∞ entry, or an all −∞ row
    const double log2_sz = log2(static_cast<double>(s.sz));
    if constexpr (LP) {
        const double uy =
            fma(static_cast<double>(st.zy), static_cast<double>(p.c), -static_cast<double>(s.mz));
        v.logprob = fmin(0.0, ln2 * (uy - log2_sz));  // ≤ 0 exactly: above is round-off
        v.bad = v.bad || !is_finite(v.logprob);       // a −∞ target
    }
    if constexpr (KL) {
        v.bad = v.bad || !(s.sr > 0.0f && is_finite(s.sr));
        v.gap = log2_sz - log2(static_cast<double>(s.sr));
        v.reverse = fmax(0.0, ln2 * (static_cast<double>(s.a) / s.sz - v.gap));  // KL ≥ 0 exactly
        v.forward = fmax(0.0, ln2 * (static_cast<double>(s.b) / s.sr + v.gap));
        v.bad = v.bad || (p.want_reverse && !is_finite(s.a)) || (p.want_forward && !is_finite(s.b));
    }
    return v;
}

/// Writes the requested values of row n: NaN for a bad row (0 for a masked one: pass row_values{}).
RSPO_CUDA_HD void write_values(const row_params& p, std::size_t n, const row_values& v) {
    const float nan = quiet_nan();
    if (p.out_logprob) p.out_logprob[n] = v.bad ? nan : static_cast<float>(v.logprob);
    if (p.out_reverse) p.out_reverse[n] = v.bad ? nan : static_cast<float>(v.reverse);
    if (p.out_forward) p.out_forward[n] = v.bad ? nan : static_cast<float>(v.forward);
}

RSPO_CUDA_HD void flag_row(device_report* report, std::size_t n) {
#if defined(__CUDA_ARCH__)
    atomicMin(&report->first_bad_row, static_cast<unsigned long long>(n));
#else
    if (n < report->first_bad_row) report->first_bad_row = n;
#endif
}

/// Stores one vector (or scalar) of gradient entries; `at` is aligned for the vector form.
template <class G, int W>
RSPO_CUDA_HD void store_gradient(G* out, std::size_t at, const float (&g)[W]) {
    if constexpr (std::is_same_v<G, float>) {
        if constexpr (W == 1) {
            store(out + at, g[0]);
        } else {
            static_assert(W % 4 == 0);
            auto* q = reinterpret_cast<float4*>(out + at);
RSPO_CUDA_UNROLL
            for (int i = 0; i < W / 4; ++i)
                store(q + i, make_float4(g[4 * i], g[4 * i + 1], g[4 * i + 2], g[4 * i + 3]));
        }
    } else {
        auto* bits = reinterpret_cast<unsigned short*>(out) + at;
        if constexpr (W == 1) {
            store(bits, bf16_bits(g[0]));
        } else {
            static_assert(W == 8 || W == 4, "unsupported vector width");
            unsigned w[W / 2];
RSPO_CUDA_UNROLL
            for (int i = 0; i < W / 2; ++i)
                w[i] = static_cast<unsigned>(bf16_bits(g[2 * i])) |
                       (static_cast<unsigned>(bf16_bits(g[2 * i + 1])) << 16);
            if constexpr (W == 8)
                store(reinterpret_cast<uint4*>(bits), make_uint4(w[0], w[1], w[2], w[3]));
            else
                store(reinterpret_cast<uint2*>(bits), make_uint2(w[0], w[1]));
        }
    }
}

/// Pass 2 of backward: dz_v = p_v·(k0 + k1·d_v) − k2·m_v (+ g_lp/T at the target), with
/// p_v = 2^(u_v − mz)/sz, m_v = 2^(w_v − mr)/sr, d_v = (u_v − mz) − (w_v − mr) (docs/math §5):
///   k0 = (g_f − g_lp − g_r·(KL(p‖m) + ln2·L)) / T,  k1 = g_r·ln2 / T,  k2 = g_f / T.
template <class G, bool LP, bool KL>
struct write_gradient {
    G* out;
    float c, mz, mr, inv_sz, inv_sr, k0, k1, k2, g_target;
    bool use_k1;  ///< a reverse-KL gradient is requested; else d (maybe ±∞ or NaN) is never used
    std::size_t y;

    template <class C>
    RSPO_CUDA_HD void operator()(const C& ch) {
        constexpr int W = C::width;
RSPO_CUDA_UNROLL
        for (int j = 0; j < C::vectors; ++j) {
            const std::size_t at = ch.at[j];
            // Where the target falls in this vector (W: not here), so that the per-entry test below
            // compares with a constant.
            const bool here = LP && y - at < static_cast<std::size_t>(W);
            const unsigned target = here ? static_cast<unsigned>(y - at) : static_cast<unsigned>(W);
            float g[W];
RSPO_CUDA_UNROLL
            for (int i = 0; i < W; ++i) {
                const float u = fmaf(ch.x[j * W + i], c, -mz);
                const float p = exp2f(u) * inv_sz;
                float gi;
                if constexpr (KL) {
                    const float w = fmaf(ch.y[j * W + i], c, -mr);
                    const float m = exp2f(w) * inv_sr;
                    const float t = use_k1 ? fmaf(k1, u - w, k0) : k0;
                    gi = p > 0.0f ? p * t : 0.0f;  // p = 0: d may be NaN or ±∞, the term is 0
                    gi = fmaf(-k2, m, gi);
                } else {
                    gi = p * k0;
                }
                if constexpr (LP) gi += target == static_cast<unsigned>(i) ? g_target : 0.0f;
                g[i] = gi;
            }
            store_gradient<G, W>(out, at, g);
        }
    }
};

/// Pass 2: re-reads the row (from L2 when the rows in flight fit) and writes the gradient.
template <class T, class G, bool LP, bool KL>
RSPO_CUDA_HD void pass2(const row_params& p, std::size_t n, const row_setup& st, const row_stats& s,
                        const row_values& v, unsigned lane, unsigned group) {
    const T* z = row_in<T>(p.z, p.z_stride, n);
    const T* r = KL ? row_in<T>(p.r, p.r_stride, n) : nullptr;
    G* out = row_out<G>(p.dz, p.dz_stride, n);
    row_layout l = layout_of(z, r, p.cols);
    constexpr std::size_t out_align = vec<T>::width * sizeof(G) < 16 ? vec<T>::width * sizeof(G) : 16;
    l.vectorized = l.vectorized && reinterpret_cast<std::uintptr_t>(out + l.head) % out_align == 0;
    const double inv_t = 1.0 / static_cast<double>(p.temperature);
    // The reverse-KL term only when its gradient is requested: KL(p‖m) may be +∞ otherwise.
    const double reverse_term = p.g_reverse ? st.g_r * (v.reverse + ln2 * v.gap) : 0.0;
    write_gradient<G, LP, KL> wg;
    wg.out = out;
    wg.c = p.c;
    wg.mz = s.mz;
    wg.mr = s.mr;
    wg.inv_sz = static_cast<float>(1.0 / static_cast<double>(s.sz));
    wg.inv_sr = KL ? static_cast<float>(1.0 / static_cast<double>(s.sr)) : 0.0f;
    wg.k0 = static_cast<float>((static_cast<double>(st.g_f) - st.g_lp - reverse_term) * inv_t);
    wg.k1 = static_cast<float>(static_cast<double>(st.g_r) * ln2 * inv_t);
    wg.k2 = static_cast<float>(static_cast<double>(st.g_f) * inv_t);
    wg.g_target = static_cast<float>(static_cast<double>(st.g_lp) * inv_t);
    wg.use_k1 = p.g_reverse != nullptr;
    wg.y = st.y;
    sweep<T, KL, true>(z, r, p.cols, l, lane, group, wg);
}

/// Zeroes a gradient row (masked rows), with 16-byte stores where aligned.
template <class G>
RSPO_CUDA_HD void zero_row(G* out, std::size_t cols, unsigned lane, unsigned group) {
    using S = storage_t<G>;
    S* s = reinterpret_cast<S*>(out);
    const auto addr = reinterpret_cast<std::uintptr_t>(out);
    std::size_t head = addr % sizeof(S) == 0 ? ((16u - (addr & 15u)) & 15u) / sizeof(S) : cols;
    if (head > cols) head = cols;
    for (std::size_t v = lane; v < head; v += group) s[v] = S{};
    constexpr std::size_t per = 16 / sizeof(S);
    const std::size_t nvec = (cols - head) / per;
    uint4* body = reinterpret_cast<uint4*>(s + head);
    for (std::size_t k = lane; k < nvec; k += group) store(body + k, make_uint4(0u, 0u, 0u, 0u));
    for (std::size_t v = head + nvec * per + lane; v < cols; v += group) s[v] = S{};
}

// Diagnosis of the first flagged row: the checks of rspo::kernels::detail::diagnose_row, in its
// order, after those of check_grads and check_inputs (ids) for that row.

/// Thread 0's part: upstream gradients, mask, id. Fills the report; returns the cause (ok: none).
RSPO_CUDA_HD errc diagnose_prologue(const row_params& p, std::size_t n, bool lp, device_report* rep) {
    errc found = errc::ok;
    unsigned long long entry = 0;
    double value = 0.0;
    long long id = 0;
    const float* grads[3] = {p.g_logprob, p.g_reverse, p.g_forward};
    for (unsigned t = 0; t < 3 && found == errc::ok; ++t)
        if (grads[t] != nullptr && !is_finite(grads[t][n])) {
            found = errc::bad_gradient;
            entry = t;
            value = grads[t][n];
        }
    const bool active = p.mask == nullptr || p.mask[n] != 0;
    if (found == errc::ok && !active) found = errc::not_finite;  // not expected: masked rows are fine
    if (found == errc::ok && lp) {
        id = p.ids[n];
        if (id < 0 || static_cast<unsigned long long>(id) >= p.cols) found = errc::bad_id;
    }
    rep->op = p.op;
    rep->cols = p.cols;
    rep->cause = static_cast<unsigned>(found);
    rep->entry = entry;
    rep->value = value;
    rep->id = id;
    return found;
}

/// diagnose_row's per-entry checks in its order: 0 logits NaN/+∞, 1 reference NaN/+∞, 2 masks
/// differ for KL(p‖m), 3 masks differ for KL(m‖p); 4 = fine.
RSPO_CUDA_HD unsigned entry_kind(float zv, float rv, bool kl, bool want_reverse, bool want_forward) {
    const float inf = positive_infinity();
    if (zv != zv || zv == inf) return 0;
    if (!kl) return 4;
    if (rv != rv || rv == inf) return 1;
    if (want_reverse && is_finite(zv) && !is_finite(rv)) return 2;
    if (want_forward && is_finite(rv) && !is_finite(zv)) return 3;
    return 4;
}

/// Thread 0's conclusion from the first offending entry (key = 4·v + kind, ~0 if none) and
/// whether each row has a finite entry.
template <class T>
RSPO_CUDA_HD void diagnose_conclusion(const row_params& p, std::size_t n, unsigned long long key, bool any_z,
                                      bool any_r, bool lp, bool kl, device_report* rep) {
    using S = storage_t<T>;
    const S* z = reinterpret_cast<const S*>(row_in<T>(p.z, p.z_stride, n));
    const S* r = kl ? reinterpret_cast<const S*>(row_in<T>(p.r, p.r_stride, n)) : nullptr;
    errc found = errc::not_finite;
    unsigned long long entry = 0;
    double value = 0.0;
    if (key != ~0ull) {
        entry = key / 4;
        const auto kind = static_cast<unsigned>(key % 4);
        found = kind == 0   ? errc::bad_logit
                : kind == 1 ? errc::bad_reference
                : kind == 2 ? errc::reverse_kl_infinite
                            : errc::forward_kl_infinite;
        value = widen_bits(kind == 1 || kind == 2 ? r[entry] : z[entry]);
    } else if (!any_z) {
        found = errc::all_logits_neg_inf;
    } else if (kl && !any_r) {
        found = errc::all_reference_neg_inf;
    } else if (lp && !is_finite(widen_bits(z[rep->id]))) {
        found = errc::neg_inf_target;
        entry = static_cast<unsigned long long>(rep->id);
        value = widen_bits(z[entry]);
    }
    rep->cause = static_cast<unsigned>(found);
    rep->entry = entry;
    rep->value = value;
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

template <bool KL>
__device__ __forceinline__ row_stats shuffled(const row_stats& s, int mask) {
    row_stats o;
    o.mz = __shfl_xor_sync(0xFFFFFFFFu, s.mz, mask);
    o.sz = __shfl_xor_sync(0xFFFFFFFFu, s.sz, mask);
    if constexpr (KL) {
        o.mr = __shfl_xor_sync(0xFFFFFFFFu, s.mr, mask);
        o.sr = __shfl_xor_sync(0xFFFFFFFFu, s.sr, mask);
        o.a = __shfl_xor_sync(0xFFFFFFFFu, s.a, mask);
        o.b = __shfl_xor_sync(0xFFFFFFFFu, s.b, mask);
    } else {
        o.mr = o.sr = o.a = o.b = 0.0f;
    }
    return o;
}

/// Butterfly over a warp: every lane ends with the same, bit-identical statistics.
template <bool KL>
__device__ __forceinline__ row_stats warp_allreduce(row_stats s) {
    const unsigned lane = threadIdx.x & (warp_threads - 1);
RSPO_CUDA_UNROLL
    for (int m = warp_threads / 2; m >= 1; m /= 2) {
        const row_stats o = shuffled<KL>(s, m);
        s = (lane & static_cast<unsigned>(m)) ? merged<KL>(o, s) : merged<KL>(s, o);
    }
    return s;
}

/// Every thread of the group (a warp, or the whole block) gets the row's statistics.
template <bool KL>
__device__ __forceinline__ row_stats group_allreduce(row_stats s, bool warp_per_row) {
    s = warp_allreduce<KL>(s);
    if (warp_per_row) return s;
    constexpr unsigned warps = block_threads / warp_threads;
    __shared__ row_stats partial[warps];
    const unsigned lane = threadIdx.x & (warp_threads - 1);
    if (lane == 0) partial[threadIdx.x / warp_threads] = s;
    __syncthreads();
    // Every warp reduces the same partials in the same order: no second broadcast needed.
    s = lane < warps ? partial[lane] : empty_stats();
    return warp_allreduce<KL>(s);
}

/// One row per group (a warp for V ≤ warp_row_max_cols, else the block): setup, pass 1, the
/// reduction, values, and for backward pass 2.
template <class T, class G, bool LP, bool KL, bool BWD>
__global__ void __launch_bounds__(block_threads) rows_kernel(const row_params p) {
    const bool warp_per_row = p.rows_per_block > 1;
    const unsigned group = warp_per_row ? warp_threads : block_threads;
    const unsigned lane = warp_per_row ? threadIdx.x % warp_threads : threadIdx.x;
    const std::size_t n = p.row_begin + static_cast<std::size_t>(blockIdx.x) * p.rows_per_block +
                          (warp_per_row ? threadIdx.x / warp_threads : 0u);
    // A block per row: the grid is exact and every exit below is uniform over the block. A warp
    // per row: whole warps leave, and only warp-level synchronization is used.
    if (n >= p.row_end) return;
    const row_setup st = setup_row<T, LP, BWD>(p, n);
    if (st.masked || st.bad) {
        if (lane == 0) {
            row_values v;
            v.bad = !st.masked;  // a masked row gets 0 even when its upstream gradient is bad
            write_values(p, n, v);
            if (st.bad) flag_row(p.report, n);
        }
        if constexpr (BWD)
            if (st.masked) zero_row(row_out<G>(p.dz, p.dz_stride, n), p.cols, lane, group);
        return;
    }
    const row_stats s = group_allreduce<KL>(pass1<T, KL, BWD>(p, n, lane, group), warp_per_row);
    const row_values v = finish_row<LP, KL>(p, s, st);
    if (lane == 0) {
        write_values(p, n, v);
        if (v.bad) flag_row(p.report, n);
    }
    if constexpr (BWD) {
        if (v.bad) return;  // the gradient row is left as it was (an in-place row keeps its logits)
        // Orders every lane's read of the target logit (setup) before pass 2's writes, which may
        // be in place; with a block per row the reduction's __syncthreads does this.
        if (warp_per_row) __syncwarp();
        pass2<T, G, LP, KL>(p, n, st, s, v, lane, group);
    }
}

/// After the row kernel: if a row was flagged, one block scans the first one and records the
/// cause the CPU backends would name.
template <class T>
__global__ void __launch_bounds__(block_threads) diagnose_kernel(const row_params p, bool lp, bool kl) {
    using S = storage_t<T>;
    device_report* rep = p.report;
    const unsigned long long row = rep->first_bad_row;
    if (row == no_row) return;
    const auto n = static_cast<std::size_t>(row);
    __shared__ unsigned found;
    if (threadIdx.x == 0) found = static_cast<unsigned>(diagnose_prologue(p, n, lp, rep));
    __syncthreads();
    if (found != 0) return;
    const S* z = reinterpret_cast<const S*>(row_in<T>(p.z, p.z_stride, n));
    const S* r = kl ? reinterpret_cast<const S*>(row_in<T>(p.r, p.r_stride, n)) : nullptr;
    unsigned long long key = ~0ull;
    bool any_z = false, any_r = false;
    for (std::size_t v = threadIdx.x; v < p.cols; v += blockDim.x) {
        const float zv = widen_bits(z[v]);
        const float rv = kl ? widen_bits(r[v]) : 0.0f;
        any_z = any_z || is_finite(zv);
        any_r = any_r || (kl && is_finite(rv));
        const unsigned kind = entry_kind(zv, rv, kl, p.want_reverse, p.want_forward);
        if (kind < 4) {
            key = 4ull * v + kind;
            break;  // this thread's later entries come after v
        }
    }
RSPO_CUDA_UNROLL
    for (int m = warp_threads / 2; m >= 1; m /= 2) {
        const unsigned long long o = __shfl_xor_sync(0xFFFFFFFFu, key, m);
        key = o < key ? o : key;
    }
    __shared__ unsigned long long warp_key[block_threads / warp_threads];
    if (threadIdx.x % warp_threads == 0) warp_key[threadIdx.x / warp_threads] = key;
    any_z = __syncthreads_or(any_z) != 0;  // also publishes warp_key
    any_r = __syncthreads_or(any_r) != 0;
    if (threadIdx.x != 0) return;
    for (unsigned w = 0; w < block_threads / warp_threads; ++w) key = warp_key[w] < key ? warp_key[w] : key;
    diagnose_conclusion<T>(p, n, key, any_z, any_r, lp, kl, rep);
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

inline status cuda_status(const char* fn, cudaError_t e) {
    status s;
    s.code = errc::cuda_error;
    s.cuda_error = e;
    s.message = std::string(fn) + ": CUDA error " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    return s;
}

inline device_report* report_of(const char* fn, std::span<std::byte> workspace) {
    if (workspace.size() < sizeof(device_report))
        throw shape_error(fn, "workspace",
                          "workspace has " + std::to_string(workspace.size()) + " bytes but needs " +
                              std::to_string(sizeof(device_report)) + " (workspace_size)");
    if (workspace.data() == nullptr || reinterpret_cast<std::uintptr_t>(workspace.data()) % 8 != 0)
        throw shape_error(fn, "workspace", "workspace must be non-null, 8-byte aligned device memory");
    return reinterpret_cast<device_report*>(workspace.data());
}

/// check_inputs without the ids loop (ids live on the device: the kernel checks them).
template <logit_type T>
void check_shapes(const char* fn, const token_inputs<T>& in, rspo::kernels::detail::request_terms terms,
                  const kernel_options& options) {
    using namespace rspo::kernels::detail;
    const std::size_t n = in.logits.rows;
    if (n > 0) check_not_empty(fn, "logits.cols", in.logits.cols);
    check_view(fn, "logits", in.logits, n, in.logits.cols, "logits.rows");
    check_positive(fn, "options.temperature", options.temperature);
    if (!options.row_mask.empty())
        check_size(fn, "options.row_mask", options.row_mask.size(), n, "logits.rows");
    if (terms.kl()) check_view(fn, "reference", in.reference, n, in.logits.cols, "logits.rows");
    if (terms.logprob) check_size(fn, "ids", in.ids.size(), n, "logits.rows");
}

/// check_grads without the finiteness loop (on the device).
inline void check_grad_sizes(const char* fn, const token_grads& g, std::size_t rows) {
    if (!g.logprob.empty()) check_size(fn, "grads.logprob", g.logprob.size(), rows, "logits.rows");
    if (!g.reverse_kl.empty()) check_size(fn, "grads.reverse_kl", g.reverse_kl.size(), rows, "logits.rows");
    if (!g.forward_kl.empty()) check_size(fn, "grads.forward_kl", g.forward_kl.size(), rows, "logits.rows");
}

template <class Span>
auto data_or_null(Span s) {
    return s.empty() ? nullptr : s.data();
}

template <logit_type T>
row_params make_params(const token_inputs<T>& in, rspo::kernels::detail::request_terms terms,
                       const kernel_options& options, device_report* report, unsigned op) {
    row_params p;
    p.z = in.logits.data;
    p.z_stride = in.logits.row_stride;
    p.cols = in.logits.cols;
    if (terms.kl()) {
        p.r = in.reference.data;
        p.r_stride = in.reference.row_stride;
    }
    p.ids = terms.logprob ? in.ids.data() : nullptr;
    p.mask = data_or_null(options.row_mask);
    p.temperature = options.temperature;
    p.c = static_cast<float>(log2e / static_cast<double>(options.temperature));
    p.want_reverse = terms.reverse_kl;
    p.want_forward = terms.forward_kl;
    p.report = report;
    p.op = op;
    p.rows_per_block = p.cols <= warp_row_max_cols ? block_threads / warp_threads : 1u;
    return p;
}

/// Launches the row kernel over all rows (in grid-sized slices) and the diagnosis kernel.
template <class T, class G, bool BWD>
status enqueue_rows(const char* fn, row_params p, std::size_t rows, bool lp, bool kl, cudaStream_t stream) {
    using kernel_t = void (*)(row_params);
    const kernel_t kernel = lp && kl ? &rows_kernel<T, G, true, true, BWD>
                            : lp     ? &rows_kernel<T, G, true, false, BWD>
                                     : &rows_kernel<T, G, false, true, BWD>;
    const std::size_t rows_per_launch = static_cast<std::size_t>(INT_MAX) * p.rows_per_block;
    for (std::size_t begin = 0; begin < rows; begin += rows_per_launch) {
        p.row_begin = begin;
        p.row_end = rows - begin < rows_per_launch ? rows : begin + rows_per_launch;
        const auto blocks =
            static_cast<unsigned>((p.row_end - begin + p.rows_per_block - 1) / p.rows_per_block);
        kernel<<<blocks, block_threads, 0, stream>>>(p);
        if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cuda_status(fn, e);
    }
    diagnose_kernel<T><<<1, block_threads, 0, stream>>>(p, lp, kl);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return cuda_status(fn, e);
    return {};
}

inline status reset_report(const char* fn, device_report* report, cudaStream_t stream) {
    if (const cudaError_t e = cudaMemsetAsync(report, 0xFF, sizeof(device_report), stream); e != cudaSuccess)
        return cuda_status(fn, e);
    return {};
}

template <logit_type T>
status enqueue_forward(unsigned op, const token_inputs<T>& in, const token_values& out,
                       const kernel_options& options, std::span<std::byte> workspace, cudaStream_t stream,
                       bool host_checks) {
    const char* fn = function_name(op);
    const auto terms = rspo::kernels::detail::terms_of(out);
    if (host_checks) {
        check_shapes(fn, in, terms, options);
        rspo::kernels::detail::check_outputs(fn, out, in.logits.rows);
    }
    device_report* report = report_of(fn, workspace);
    if (status s = reset_report(fn, report, stream); !s.ok()) return s;
    if (in.logits.rows == 0 || !terms.any()) return {};
    row_params p = make_params(in, terms, options, report, op);
    p.out_logprob = data_or_null(out.logprob);
    p.out_reverse = data_or_null(out.reverse_kl);
    p.out_forward = data_or_null(out.forward_kl);
    return enqueue_rows<T, float, false>(fn, p, in.logits.rows, terms.logprob, terms.kl(), stream);
}

template <logit_type T, logit_type G>
status enqueue_backward(unsigned op, const token_inputs<T>& in, const token_grads& grads,
                        gradient_view<G> dlogits, const kernel_options& options,
                        std::span<std::byte> workspace, cudaStream_t stream, const token_values& values,
                        bool host_checks) {
    const char* fn = function_name(op);
    const auto g = rspo::kernels::detail::terms_of(grads);
    const auto v = rspo::kernels::detail::terms_of(values);
    const rspo::kernels::detail::request_terms terms{g.logprob || v.logprob, g.reverse_kl || v.reverse_kl,
                                                     g.forward_kl || v.forward_kl};
    if (host_checks) {
        check_shapes(fn, in, terms, options);
        check_grad_sizes(fn, grads, in.logits.rows);
        rspo::kernels::detail::check_outputs(fn, values, in.logits.rows);
        rspo::kernels::detail::check_gradient_view(fn, dlogits, in, terms);
    }
    device_report* report = report_of(fn, workspace);
    if (status s = reset_report(fn, report, stream); !s.ok()) return s;
    if (in.logits.rows == 0) return {};
    if (!terms.any()) {  // no term: the gradient is zero
        const cudaError_t e = cudaMemset2DAsync(dlogits.data, dlogits.row_stride * sizeof(G), 0,
                                                dlogits.cols * sizeof(G), dlogits.rows, stream);
        return e == cudaSuccess ? status{} : cuda_status(fn, e);
    }
    row_params p = make_params(in, terms, options, report, op);
    p.out_logprob = data_or_null(values.logprob);
    p.out_reverse = data_or_null(values.reverse_kl);
    p.out_forward = data_or_null(values.forward_kl);
    p.g_logprob = data_or_null(grads.logprob);
    p.g_reverse = data_or_null(grads.reverse_kl);
    p.g_forward = data_or_null(grads.forward_kl);
    p.dz = dlogits.data;
    p.dz_stride = dlogits.row_stride;
    return enqueue_rows<T, G, true>(fn, p, in.logits.rows, terms.logprob, terms.kl(), stream);
}

/// Turns a copied-back record into a status with the CPU backends' message.
inline status decode(const device_report& rep) {
    status s;
    if (rep.first_bad_row == no_row) return s;
    using rspo::detail::format_value;
    using rspo::kernels::detail::entry;
    const auto n = static_cast<std::size_t>(rep.first_bad_row);
    const auto v = static_cast<std::size_t>(rep.entry);
    const std::string row = std::to_string(n);
    s.code = static_cast<errc>(rep.cause);
    s.row = n;
    s.entry = v;
    std::string what;
    switch (s.code) {
        case errc::bad_gradient: {
            const char* names[3] = {"grads.logprob", "grads.reverse_kl", "grads.forward_kl"};
            s.argument = names[v < 3 ? v : 0];
            s.entry = 0;
            what = s.argument + "[" + row + "] = " + format_value(rep.value) + " is not finite";
            break;
        }
        case errc::bad_id:
            s.argument = "ids";
            s.entry = 0;
            what = "ids[" + row + "] = " + std::to_string(rep.id) + " is outside [0, " +
                   std::to_string(rep.cols) + ")";
            break;
        case errc::bad_logit:
            s.argument = "logits";
            what = entry("logits", n, v) + " = " + format_value(rep.value) +
                   " (logits may be finite or -inf only)";
            break;
        case errc::bad_reference:
            s.argument = "reference";
            what = entry("reference", n, v) + " = " + format_value(rep.value) +
                   " (logits may be finite or -inf only)";
            break;
        case errc::reverse_kl_infinite:
            s.argument = "reference";
            what = entry("reference", n, v) + " = -inf where " + entry("logits", n, v) +
                   " is finite: KL(pi_theta || mu) is infinite (the masks differ)";
            break;
        case errc::forward_kl_infinite:
            s.argument = "logits";
            what = entry("logits", n, v) + " = -inf where " + entry("reference", n, v) +
                   " is finite: KL(mu || pi_theta) is infinite (the masks differ)";
            break;
        case errc::all_logits_neg_inf:
            s.argument = "logits";
            s.entry = 0;
            what = "logits row " + row + ": every entry is -inf";
            break;
        case errc::all_reference_neg_inf:
            s.argument = "reference";
            s.entry = 0;
            what = "reference row " + row + ": every entry is -inf";
            break;
        case errc::neg_inf_target:
            s.argument = "ids";
            what = "ids[" + row + "] = " + std::to_string(rep.id) + " points at " + entry("logits", n, v) +
                   " = -inf: its log-probability is -inf";
            break;
        default:
            s.code = errc::not_finite;
            s.argument = "logits";
            s.entry = 0;
            what = "logits row " + row + ": the reduction is not finite";
            break;
    }
    s.message = std::string(function_name(rep.op)) + ": " + what;
    return s;
}

inline status collect(const char* fn, const device_report* report, cudaStream_t stream) {
    device_report host{};
    if (const cudaError_t e = cudaMemcpyAsync(&host, report, sizeof host, cudaMemcpyDeviceToHost, stream);
        e != cudaSuccess)
        return cuda_status(fn, e);
    if (const cudaError_t e = cudaStreamSynchronize(stream); e != cudaSuccess) return cuda_status(fn, e);
    return decode(host);
}

/// The synchronous forms: a stream-ordered workspace, the async call, then collect.
template <class Enqueue>
status run_synchronously(const char* fn, cudaStream_t stream, Enqueue&& enqueue) {
    void* ws = nullptr;
    if (const cudaError_t e = cudaMallocAsync(&ws, sizeof(device_report), stream); e != cudaSuccess)
        return cuda_status(fn, e);
    status s = enqueue(std::span<std::byte>(static_cast<std::byte*>(ws), sizeof(device_report)));
    if (s.ok()) s = collect(fn, static_cast<const device_report*>(ws), stream);
    const cudaError_t e = cudaFreeAsync(ws, stream);
    if (s.ok() && e != cudaSuccess) return cuda_status(fn, e);
    return s;
}

}  // namespace detail

/// Bytes of device workspace the *_async calls need (8-byte aligned). Constant today; call it
/// rather than hard-coding the number.
[[nodiscard]] constexpr std::size_t workspace_size([[maybe_unused]] std::size_t rows,
                                                   [[maybe_unused]] std::size_t cols) noexcept {
    return sizeof(detail::device_report);
}

/// Per-token values of every requested term (see rspo::kernels::token_values). Enqueues on
/// `stream` and returns launch errors only; the result is check(workspace, stream).
template <logit_type T>
[[nodiscard]] status forward_async(const token_inputs<T>& in, const token_values& out,
                                   const kernel_options& options, std::span<std::byte> workspace,
                                   cudaStream_t stream) {
    return detail::enqueue_forward(detail::op_forward_async, in, out, options, workspace, stream,
                                   options.checked);
}

/// dlogits = Σ over requested terms of g_term[n]·∂term[n]/∂z (the reference backend's formulas);
/// also writes the values `values` asks for. dlogits may be the logits themselves (same type and
/// stride). Enqueues on `stream`; the result is check(workspace, stream).
template <logit_type T, logit_type G>
[[nodiscard]] status backward_async(const token_inputs<T>& in, const token_grads& grads,
                                    gradient_view<G> dlogits, const kernel_options& options,
                                    std::span<std::byte> workspace, cudaStream_t stream,
                                    const token_values& values = {}) {
    return detail::enqueue_backward(detail::op_backward_async, in, grads, dlogits, options, workspace,
                                    stream, values, options.checked);
}

/// The status of the last *_async call that used `workspace`: copies its record back and
/// synchronizes `stream`.
[[nodiscard]] inline status check(std::span<const std::byte> workspace, cudaStream_t stream) {
    constexpr const char* fn = "rspo::kernels::cuda::check";
    if (workspace.size() < sizeof(detail::device_report) || workspace.data() == nullptr)
        throw shape_error(fn, "workspace", "workspace is smaller than workspace_size()");
    return detail::collect(fn, reinterpret_cast<const detail::device_report*>(workspace.data()), stream);
}

/// forward_async + check with a workspace of its own (cudaMallocAsync on `stream`). Synchronizes
/// `stream`.
template <logit_type T>
[[nodiscard]] status forward(const token_inputs<T>& in, const token_values& out,
                             const kernel_options& options, cudaStream_t stream) {
    const char* fn = detail::function_name(detail::op_forward);
    if (options.checked) {  // before allocating, so that a throw leaks nothing
        detail::check_shapes(fn, in, rspo::kernels::detail::terms_of(out), options);
        rspo::kernels::detail::check_outputs(fn, out, in.logits.rows);
    }
    return detail::run_synchronously(fn, stream, [&](std::span<std::byte> ws) {
        return detail::enqueue_forward(detail::op_forward, in, out, options, ws, stream, false);
    });
}

/// backward_async + check with a workspace of its own (cudaMallocAsync on `stream`).
/// Synchronizes `stream`.
template <logit_type T, logit_type G>
[[nodiscard]] status backward(const token_inputs<T>& in, const token_grads& grads,
                              gradient_view<G> dlogits, const kernel_options& options,
                              cudaStream_t stream, const token_values& values = {}) {
    const char* fn = detail::function_name(detail::op_backward);
    if (options.checked) {
        const auto g = rspo::kernels::detail::terms_of(grads);
        const auto v = rspo::kernels::detail::terms_of(values);
        const rspo::kernels::detail::request_terms terms{g.logprob || v.logprob, g.reverse_kl || v.reverse_kl,
                                                         g.forward_kl || v.forward_kl};
        detail::check_shapes(fn, in, terms, options);
        detail::check_grad_sizes(fn, grads, in.logits.rows);
        rspo::kernels::detail::check_outputs(fn, values, in.logits.rows);
        rspo::kernels::detail::check_gradient_view(fn, dlogits, in, terms);
    }
    return detail::run_synchronously(fn, stream, [&](std::span<std::byte> ws) {
        return detail::enqueue_backward(detail::op_backward, in, grads, dlogits, options, ws, stream, values,
                                        false);
    });
}

}  // namespace rspo::kernels::cuda
