// Benchmarks of rspo's SIMD token-reduction kernels (docs/math §5) beside a plain scalar baseline
// and two floors measured on the same machine in the same run, with a ratio table at the end.
//
//   Shapes N×V: 2048×32000 (the main one), 512×128256, 64×32000; fp32 and bf16 logits (the gradient
//   has the logits' type). Ops, each a single library call:
//     logprob_fwd          forward, log-probs
//     logprob_fwd_bwd      backward with the log-prob gradient (and values)
//     kl_fwd               forward, both KL directions in one pass
//     reverse_kl_fwd_bwd   backward with the reverse-KL gradient (and value)
//     forward_kl_fwd_bwd   backward with the forward-KL gradient (and value)
//     fused_fwd            forward, log-prob + both KLs
//     fused_fwd_bwd        backward with all three gradients (and values)
//   Implementations:
//     rspo    rspo::kernels::simd with kernel_options{.threads = t}
//     scalar  a straightforward scalar C++ baseline written here: per row a max pass, then a
//             sum-of-exp pass with std::exp in float (which also accumulates the KL sums), then for
//             backward a gradient pass recomputing std::exp; multi-threaded exactly like rspo (the
//             same t threads started per call, the same contiguous row blocks), for fairness.
//   Floors (floor.cpp, the kernels' instruction set):
//     floor/memory_r{1,2}w{0,1}[_nt]  reads the same 1 or 2 input matrices with the widest loads
//             (prefetched 16 KiB ahead) and sums them, and writes a gradient-sized buffer (w1) with
//             regular or streaming (_nt) stores, with the same thread count. The table uses the
//             faster store kind. Each runs just before the ops that move the same bytes.
//     floor/exp  the library's vectorized exp over an L1-resident buffer, N·V exps split over the
//             same threads; the table charges it once per input matrix.
//   Threads: 2 everywhere, and 1 for the main shape (scaling).
//
// Times are wall-clock (UseRealTime); the CPU column is the whole process's CPU time, all threads
// (MeasureProcessCPUTime), which the table divides by the thread count ("cpu/thr"): on a machine
// shared with other work it shows what the wall time would be with a core per thread.
// Bytes per call: N·V·sizeof(logit) per input matrix read, plus N·V·sizeof(logit) for the gradient
// written by backward ops (bytes_per_second); logits_per_second counts N·V per call.
//
// Every rspo and scalar case is checked once against the long-double reference backend on a few
// rows (a wrong kernel fails its benchmark instead of reporting a time).
//
//   build/benchmarks/bench_kernels --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true --benchmark_out=kernels.json
// prints the results and then the ratio table (medians when repeated; --ratio_statistic=min for
// the fastest repetition, steadier on a busy machine); benchmarks/compare_torch.py reads the JSON
// and adds PyTorch. --benchmark_filter=/64x32000/ keeps to the small shape (the CTest smoke run
// does: ~3 s).

#include <rspo/kernels/reference/token_reductions.hpp>
#include <rspo/kernels/simd/token_reductions.hpp>
#include <rspo/kernels/types.hpp>

#include "support/common.hpp"

#include <benchmark/benchmark.h>
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <ostream>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// The floors, compiled per instruction set from floor.cpp (see there).
namespace rspo_bench {
template <class Arch>
std::uint32_t memory_rows(const std::byte* a, const std::byte* b, std::size_t in_stride_bytes,
                          std::size_t in_row_bytes, std::byte* out, std::size_t out_stride_bytes,
                          std::size_t out_row_bytes, bool stream, std::size_t begin, std::size_t end);
template <class Arch>
float exp_l1(const float* buffer, std::size_t size, std::size_t count);
}  // namespace rspo_bench

namespace {

namespace kernels = rspo::kernels;
using kernels::bf16;
using kernels::logit_type;

// ---------------------------------------------------------------------------------------------
// The floors' instruction set: the same list, in the same order, as the kernels' dispatch
// (token_reductions.hpp), so both run at the same vector width.
// ---------------------------------------------------------------------------------------------
struct floor_functions {
    std::uint32_t (*memory)(const std::byte*, const std::byte*, std::size_t, std::size_t, std::byte*,
                            std::size_t, std::size_t, bool, std::size_t, std::size_t);
    float (*exp)(const float*, std::size_t, std::size_t);
    const char* isa;
};

const floor_functions& floors() {
#if defined(RSPO_BENCH_FLOOR_DISPATCH)
    // A generic lambda: a local class may not have member templates ([temp.mem]/2).
    const auto pick = []<class Arch>(Arch) -> floor_functions {
        return {&rspo_bench::memory_rows<Arch>, &rspo_bench::exp_l1<Arch>, Arch::name()};
    };
    using archs = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;
    static const floor_functions chosen = xsimd::dispatch<archs>(pick)();
#else
    static const floor_functions chosen{&rspo_bench::memory_rows<xsimd::default_arch>,
                                        &rspo_bench::exp_l1<xsimd::default_arch>,
                                        xsimd::default_arch::name()};
#endif
    return chosen;
}

// ---------------------------------------------------------------------------------------------
// Cases (the shape, op and dtype types are bench_cuda_kernels' too: support/common.hpp)
// ---------------------------------------------------------------------------------------------
using namespace rspo_bench;  // shape, op_spec, ops, dtype_name, bytes_moved, cell, minimum

constexpr shape shapes[] = {{2048, 32000}, {512, 128256}, {64, 32000}};
constexpr shape main_shape = shapes[0];
constexpr unsigned threads = 2;  // the machine's cores

std::string thread_suffix(unsigned t) { return "/threads:" + std::to_string(t); }

/// The shared name (support/common.hpp) with the thread count: "rspo/kl_fwd/f32/64x32000/threads:2".
std::string op_name(std::string_view impl, const op_spec& op, const char* dtype, shape s, unsigned t) {
    return rspo_bench::op_name(impl, op, dtype, s) + thread_suffix(t);
}

std::string memory_name(std::size_t inputs, bool write, bool stream, const char* dtype, shape s,
                        unsigned t) {
    return "floor/memory_r" + std::to_string(inputs) + "w" + (write ? "1" : "0") +
           (stream ? "_nt" : "") + "/" + dtype + "/" + s.str() + thread_suffix(t);
}

std::string exp_name(shape s, unsigned t) { return "floor/exp/" + s.str() + thread_suffix(t); }

// ---------------------------------------------------------------------------------------------
// Data: one shape and type alive at a time (the largest is ~0.8 GB), built on first use.
// ---------------------------------------------------------------------------------------------
struct free_deleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

/// 64-byte aligned (as PyTorch's CPU allocator does), so that rows of these shapes start aligned.
template <class T>
std::unique_ptr<T[], free_deleter> aligned_array(std::size_t count) {
    const std::size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, bytes);  // also faults the pages in before anything is timed
    return std::unique_ptr<T[], free_deleter>(static_cast<T*>(p));
}

std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/// Approximately standard normal (four uniforms summed, rescaled), deterministic in `key`.
float gaussian(std::uint64_t key) {
    const std::uint64_t h = splitmix(key);
    const double sum = static_cast<double>(h & 0xFFFF) + static_cast<double>((h >> 16) & 0xFFFF) +
                       static_cast<double>((h >> 32) & 0xFFFF) + static_cast<double>(h >> 48);
    return static_cast<float>((sum / 65536.0 - 2.0) * std::sqrt(3.0));
}

template <logit_type T>
T from_float(float x) {
    if constexpr (std::is_same_v<T, float>)
        return x;
    else
        return kernels::to_bf16(x);
}

struct dataset_base {
    virtual ~dataset_base() = default;
};

/// Logits z ~ 2.5·N(0, 1) with the target token raised by 6 (a model that likes its samples);
/// reference logits r = z + 0.3·N(0, 1); upstream gradients in [0.5, 1.5).
template <logit_type T>
struct dataset : dataset_base {
    shape s;
    std::unique_ptr<T[], free_deleter> z, r, dz;
    std::vector<std::int64_t> ids;
    std::vector<float> g_logprob, g_reverse, g_forward;
    std::vector<float> logprob, reverse_kl, forward_kl;

    explicit dataset(shape s_)
        : s(s_),
          z(aligned_array<T>(s.size())),
          r(aligned_array<T>(s.size())),
          dz(aligned_array<T>(s.size())),
          ids(s.rows),
          g_logprob(s.rows),
          g_reverse(s.rows),
          g_forward(s.rows),
          logprob(s.rows),
          reverse_kl(s.rows),
          forward_kl(s.rows) {
        for (std::size_t n = 0; n < s.rows; ++n) {
            ids[n] = static_cast<std::int64_t>(splitmix(3 * n + 1) % s.cols);
            const auto u = [&](std::uint64_t k) {
                return 0.5f + static_cast<float>(splitmix(k) >> 40) / static_cast<float>(1ull << 24);
            };
            g_logprob[n] = u(4 * n + 1);
            g_reverse[n] = u(4 * n + 2);
            g_forward[n] = u(4 * n + 3);
            for (std::size_t v = 0; v < s.cols; ++v) {
                const std::size_t i = n * s.cols + v;
                float zv = 2.5f * gaussian(2 * i);
                if (v == static_cast<std::size_t>(ids[n])) zv += 6.0f;
                z[i] = from_float<T>(zv);
                r[i] = from_float<T>(zv + 0.3f * gaussian(2 * i + 1));
            }
        }
    }

    [[nodiscard]] kernels::logits_view<T> view(const std::unique_ptr<T[], free_deleter>& m) const {
        return kernels::contiguous(m.get(), s.rows, s.cols);
    }
};

std::unique_ptr<dataset_base> current_data;

template <logit_type T>
dataset<T>& data_for(shape s) {
    if (auto* d = dynamic_cast<dataset<T>*>(current_data.get()); d != nullptr && d->s == s) return *d;
    current_data.reset();  // free the previous one first
    auto fresh = std::make_unique<dataset<T>>(s);
    dataset<T>& d = *fresh;
    current_data = std::move(fresh);
    return d;
}

// ---------------------------------------------------------------------------------------------
// Threads: `count` workers started per call, the caller being worker 0 (as the kernels do).
// ---------------------------------------------------------------------------------------------
template <class F>
void parallel(std::size_t count, F&& work) {
    if (count <= 1) {
        work(std::size_t{0});
        return;
    }
    std::vector<std::jthread> pool;
    pool.reserve(count - 1);
    for (std::size_t t = 1; t < count; ++t) pool.emplace_back([&work, t] { work(t); });
    work(std::size_t{0});
}

/// Rows [begin, end) of worker t of `count`: the kernels' contiguous blocks.
std::size_t block_begin(std::size_t rows, std::size_t t, std::size_t count) { return rows * t / count; }

// ---------------------------------------------------------------------------------------------
// The scalar baseline
// ---------------------------------------------------------------------------------------------
struct row_values {
    float logprob = 0, reverse_kl = 0, forward_kl = 0;
};

/// One row, the textbook way (docs/math §5, T = 1): max pass, sum-of-exp pass, gradient pass.
template <bool LP, bool RK, bool FK, bool BWD, logit_type T>
row_values scalar_row(const T* z, const T* r, std::size_t cols, std::size_t y, float g_lp, float g_r,
                      float g_f, T* dz) {
    constexpr bool KL = RK || FK;
    float mz = -std::numeric_limits<float>::infinity(), mr = mz;
    for (std::size_t v = 0; v < cols; ++v) {
        mz = std::max(mz, kernels::widen(z[v]));
        if constexpr (KL) mr = std::max(mr, kernels::widen(r[v]));
    }
    float sz = 0, sr = 0, a = 0, b = 0;  // Σe^(z−mz), Σe^(r−mr), Σe^(z−mz)(z−r), Σe^(r−mr)(r−z)
    for (std::size_t v = 0; v < cols; ++v) {
        const float zv = kernels::widen(z[v]);
        const float ez = std::exp(zv - mz);
        sz += ez;
        if constexpr (KL) {
            const float rv = kernels::widen(r[v]);
            const float er = std::exp(rv - mr);
            sr += er;
            if constexpr (RK) a += ez * (zv - rv);
            if constexpr (FK) b += er * (rv - zv);
        }
    }
    const float lse_z = mz + std::log(sz);
    const float lse_r = KL ? mr + std::log(sr) : 0.0f;
    const float gap = lse_z - lse_r;
    row_values out;
    if constexpr (LP) out.logprob = kernels::widen(z[y]) - lse_z;
    if constexpr (RK) out.reverse_kl = a / sz - gap;      // E_p[z − r] − (lse_z − lse_r)
    if constexpr (FK) out.forward_kl = b / sr + gap;      // E_m[r − z] + (lse_z − lse_r)
    if constexpr (BWD) {
        const auto gradient = [&](std::size_t v) {
            const float zv = kernels::widen(z[v]);
            const float p = std::exp(zv - lse_z);
            float g = 0.0f;
            if constexpr (LP) g -= g_lp * p;
            if constexpr (KL) {
                const float rv = kernels::widen(r[v]);
                if constexpr (RK) g += g_r * p * ((zv - rv) - gap - out.reverse_kl);
                if constexpr (FK) g += g_f * (p - std::exp(rv - lse_r));
            }
            return g;
        };
        for (std::size_t v = 0; v < cols; ++v) dz[v] = from_float<T>(gradient(v));
        if constexpr (LP) dz[y] = from_float<T>(gradient(y) + g_lp);
    }
    return out;
}

/// Calls f(LP, RK, FK, BWD) with std::bool_constants for the op's terms.
template <class F>
void with_terms(const op_spec& op, F&& f) {
    using yes = std::true_type;
    using no = std::false_type;
    const auto bwd = [&](auto lp, auto rk, auto fk) {
        if (op.backward)
            f(lp, rk, fk, yes{});
        else
            f(lp, rk, fk, no{});
    };
    if (op.logprob && op.reverse_kl && op.forward_kl) bwd(yes{}, yes{}, yes{});
    else if (op.logprob && !op.kl()) bwd(yes{}, no{}, no{});
    else if (!op.logprob && op.reverse_kl && op.forward_kl) bwd(no{}, yes{}, yes{});
    else if (!op.logprob && op.reverse_kl) bwd(no{}, yes{}, no{});
    else if (!op.logprob && op.forward_kl) bwd(no{}, no{}, yes{});
    else throw std::logic_error(std::string("no scalar baseline for ") + op.name);
}

template <logit_type T>
void run_scalar(const op_spec& op, dataset<T>& d, unsigned t) {
    const shape s = d.s;
    const std::size_t count = std::min<std::size_t>(t, s.rows);
    with_terms(op, [&](auto lp, auto rk, auto fk, auto bwd) {
        parallel(count, [&](std::size_t w) {
            const std::size_t end = block_begin(s.rows, w + 1, count);
            for (std::size_t n = block_begin(s.rows, w, count); n < end; ++n) {
                const std::size_t at = n * s.cols;
                const row_values v =
                    scalar_row<decltype(lp)::value, decltype(rk)::value, decltype(fk)::value,
                               decltype(bwd)::value>(d.z.get() + at, d.r.get() + at, s.cols,
                                                     static_cast<std::size_t>(d.ids[n]), d.g_logprob[n],
                                                     d.g_reverse[n], d.g_forward[n], d.dz.get() + at);
                if (op.logprob) d.logprob[n] = v.logprob;
                if (op.reverse_kl) d.reverse_kl[n] = v.reverse_kl;
                if (op.forward_kl) d.forward_kl[n] = v.forward_kl;
            }
        });
    });
}

// ---------------------------------------------------------------------------------------------
// The library
// ---------------------------------------------------------------------------------------------
template <class V>
std::span<V> if_(bool wanted, std::vector<V>& v) {
    return wanted ? std::span<V>(v) : std::span<V>();
}

template <logit_type T>
void run_rspo(const op_spec& op, dataset<T>& d, unsigned t) {
    const kernels::token_inputs<T> in{d.view(d.z), op.kl() ? d.view(d.r) : kernels::logits_view<T>{},
                                      op.logprob ? std::span<const std::int64_t>(d.ids)
                                                 : std::span<const std::int64_t>()};
    const kernels::token_values values{if_(op.logprob, d.logprob), if_(op.reverse_kl, d.reverse_kl),
                                       if_(op.forward_kl, d.forward_kl)};
    const kernels::kernel_options options{.threads = t};
    if (!op.backward) {
        kernels::simd::forward(in, values, options);
        return;
    }
    const kernels::token_grads grads{if_(op.logprob, d.g_logprob), if_(op.reverse_kl, d.g_reverse),
                                     if_(op.forward_kl, d.g_forward)};
    kernels::simd::backward(in, grads, kernels::gradient_view<T>{d.dz.get(), d.s.rows, d.s.cols, d.s.cols},
                            options, values);
}

// ---------------------------------------------------------------------------------------------
// Checks against the long-double reference backend, on a few rows, once per case.
// ---------------------------------------------------------------------------------------------
struct tolerance {
    double value;     ///< |Δ| ≤ value·(1 + |ref|)
    double relative;  ///< gradient: |Δ| ≤ relative·|ref| + absolute·max_v |ref_v|
    double absolute;
};

/// Empty if the values and gradient in `d` (as the last call left them) match the reference on the
/// sampled rows, else what did not.
template <logit_type T>
std::string check(const op_spec& op, const dataset<T>& d, tolerance tol) {
    const shape s = d.s;
    constexpr std::size_t samples = 8;
    std::vector<T> g(s.cols);
    char message[256];
    for (std::size_t k = 0; k < samples; ++k) {
        const std::size_t n = (s.rows - 1) * k / (samples - 1);
        const std::size_t at = n * s.cols;
        const kernels::token_inputs<T> in{
            kernels::contiguous(d.z.get() + at, 1, s.cols),
            op.kl() ? kernels::contiguous(d.r.get() + at, 1, s.cols) : kernels::logits_view<T>{},
            op.logprob ? std::span<const std::int64_t>(&d.ids[n], 1) : std::span<const std::int64_t>()};
        float lp = 0, rk = 0, fk = 0;
        const kernels::token_values values{op.logprob ? std::span<float>(&lp, 1) : std::span<float>(),
                                           op.reverse_kl ? std::span<float>(&rk, 1) : std::span<float>(),
                                           op.forward_kl ? std::span<float>(&fk, 1) : std::span<float>()};
        if (op.backward) {
            const kernels::token_grads grads{
                op.logprob ? std::span<const float>(&d.g_logprob[n], 1) : std::span<const float>(),
                op.reverse_kl ? std::span<const float>(&d.g_reverse[n], 1) : std::span<const float>(),
                op.forward_kl ? std::span<const float>(&d.g_forward[n], 1) : std::span<const float>()};
            kernels::reference::backward(in, grads, kernels::gradient_view<T>{g.data(), 1, s.cols, s.cols},
                                         {}, values);
        } else {
            kernels::reference::forward(in, values);
        }
        const auto value_bad = [&](const char* what, bool wanted, float ref, float got) {
            if (!wanted || std::abs(static_cast<double>(got) - ref) <= tol.value * (1.0 + std::abs(ref)))
                return false;
            std::snprintf(message, sizeof message, "row %zu: %s = %.9g, reference %.9g", n, what,
                          static_cast<double>(got), static_cast<double>(ref));
            return true;
        };
        if (value_bad("logprob", op.logprob, lp, d.logprob[n]) ||
            value_bad("reverse_kl", op.reverse_kl, rk, d.reverse_kl[n]) ||
            value_bad("forward_kl", op.forward_kl, fk, d.forward_kl[n]))
            return message;
        if (!op.backward) continue;
        double scale = 0;
        for (std::size_t v = 0; v < s.cols; ++v)
            scale = std::max(scale, std::abs(double{kernels::widen(g[v])}));
        for (std::size_t v = 0; v < s.cols; ++v) {
            const double ref = kernels::widen(g[v]), got = kernels::widen(d.dz[at + v]);
            if (!(std::abs(got - ref) <= tol.relative * std::abs(ref) + tol.absolute * scale)) {
                std::snprintf(message, sizeof message, "row %zu: dlogits[%zu] = %.9g, reference %.9g", n, v,
                              got, ref);
                return message;
            }
        }
    }
    return {};
}

/// rspo: fp32 sums promoted to double, so near the reference; bf16 gradients may differ by one
/// rounding. The scalar baseline sums in float, so it only has to be roughly right.
template <logit_type T>
tolerance tolerance_of(bool library) {
    const double rounding = std::is_same_v<T, float> ? 0.0 : 1.0 / 128;
    return library ? tolerance{1e-5, 1e-4 + rounding, 1e-5} : tolerance{2e-3, 1e-2 + rounding, 1e-3};
}

// ---------------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------------
enum class impl { rspo, scalar };

template <logit_type T>
void bm_op(benchmark::State& state, const op_spec& op, shape s, unsigned t, impl which) {
    const std::string name = op_name(which == impl::rspo ? "rspo" : "scalar", op, dtype_name<T>(), s, t);
    try {
        dataset<T>& d = data_for<T>(s);
        for (auto _ : state) {
            if (which == impl::rspo)
                run_rspo(op, d, t);
            else
                run_scalar(op, d, t);
            benchmark::ClobberMemory();
        }
        static std::set<std::string> checked;  // once per case, not per GB run of it
        if (checked.insert(name).second) {
            const std::string error = check(op, d, tolerance_of<T>(which == impl::rspo));
            if (!error.empty()) state.SkipWithError(("wrong result: " + error).c_str());
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
    }
    const auto calls = static_cast<double>(state.iterations());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(bytes_moved(op.inputs(), op.backward, sizeof(T), s)));
    state.counters["logits_per_second"] =
        benchmark::Counter(calls * static_cast<double>(s.size()), benchmark::Counter::kIsRate);
}

template <logit_type T>
void bm_memory_floor(benchmark::State& state, shape s, unsigned t, std::size_t inputs, bool write,
                     bool stream) {
    dataset<T>& d = data_for<T>(s);
    const auto* z = reinterpret_cast<const std::byte*>(d.z.get());
    const auto* r = inputs > 1 ? reinterpret_cast<const std::byte*>(d.r.get()) : nullptr;
    auto* out = write ? reinterpret_cast<std::byte*>(d.dz.get()) : nullptr;
    const std::size_t row_bytes = s.cols * sizeof(T);
    const std::size_t count = std::min<std::size_t>(t, s.rows);
    const auto memory = floors().memory;
    std::vector<std::uint32_t> sums(count);
    for (auto _ : state) {
        parallel(count, [&](std::size_t w) {
            sums[w] = memory(z, r, row_bytes, row_bytes, out, row_bytes, row_bytes, stream,
                             block_begin(s.rows, w, count), block_begin(s.rows, w + 1, count));
        });
        benchmark::DoNotOptimize(sums.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(bytes_moved(inputs, write, sizeof(T), s)));
}

void bm_exp_floor(benchmark::State& state, shape s, unsigned t) {
    constexpr std::size_t buffer = 4096;  // 16 KiB per thread: L1-resident
    const auto data = aligned_array<float>(buffer * t);
    for (std::size_t i = 0; i < buffer * t; ++i)  // arguments as the kernels see them: ≤ 0
        data[i] = -std::abs(8.0f * gaussian(1000003 + i));
    const auto exp = floors().exp;
    std::vector<float> sums(t);
    for (auto _ : state) {
        parallel(t, [&](std::size_t w) {
            sums[w] = exp(data.get() + w * buffer, buffer,
                          block_begin(s.size(), w + 1, t) - block_begin(s.size(), w, t));
        });
        benchmark::DoNotOptimize(sums.data());
    }
    state.counters["exps_per_second"] =
        benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(s.size()),
                           benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------------------------------------
// Registration, remembered for the ratio table
// ---------------------------------------------------------------------------------------------
struct table_row {
    const op_spec* op;
    const char* dtype;
    shape s;
    unsigned t;
    std::size_t element_size;
};

std::vector<table_row> table_rows;

/// Milliseconds of wall-clock time (the kernels start their own threads); the CPU column is the
/// whole process's CPU time (all threads). With repetitions, the fastest one is reported too
/// ("min"), a steadier figure on a busy machine than the median.
void configure(benchmark::internal::Benchmark* b) {
    b->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
    b->ComputeStatistics("min", minimum);
}

/// Each memory floor runs just before the ops that move the same bytes: this machine's memory
/// bandwidth drifts (a shared host), and a floor measured minutes apart would skew the ratio.
template <logit_type T>
void register_dtype(shape s, unsigned t) {
    const char* dtype = dtype_name<T>();
    for (const std::size_t inputs : {1, 2})
        for (const bool write : {false, true}) {
            for (const bool stream : write ? std::vector<bool>{false, true} : std::vector<bool>{false}) {
                const std::string name = memory_name(inputs, write, stream, dtype, s, t);
                configure(benchmark::RegisterBenchmark(name.c_str(), bm_memory_floor<T>, s, t, inputs, write,
                                                       stream));
            }
            for (const op_spec& op : ops) {
                if (op.inputs() != inputs || op.backward != write) continue;
                configure(benchmark::RegisterBenchmark(op_name("rspo", op, dtype, s, t).c_str(), bm_op<T>, op,
                                                       s, t, impl::rspo));
                configure(benchmark::RegisterBenchmark(op_name("scalar", op, dtype, s, t).c_str(), bm_op<T>,
                                                       op, s, t, impl::scalar));
            }
        }
    for (const op_spec& op : ops) table_rows.push_back({&op, dtype, s, t, sizeof(T)});
}

void register_all() {
    for (const shape s : shapes) {
        const std::vector<unsigned> thread_counts = s == main_shape ? std::vector<unsigned>{threads, 1}
                                                                    : std::vector<unsigned>{threads};
        for (const unsigned t : thread_counts)
            configure(benchmark::RegisterBenchmark(exp_name(s, t).c_str(), bm_exp_floor, s, t));
        // dtype outer, threads inner: each dataset is built once
        for (const unsigned t : thread_counts) register_dtype<float>(s, t);
        for (const unsigned t : thread_counts) register_dtype<bf16>(s, t);
    }
}

// ---------------------------------------------------------------------------------------------
// The ratio table: the console output, then every op against its baseline and the floors.
// ---------------------------------------------------------------------------------------------
class ratio_reporter : public rspo_bench::table_reporter {
public:
    using table_reporter::table_reporter;

private:
    /// The faster of the regular- and streaming-store memory floors.
    [[nodiscard]] double memory_floor(std::size_t inputs, bool write, const char* dtype, shape s,
                                      unsigned t) const {
        const double plain = find(memory_name(inputs, write, false, dtype, s, t));
        if (!write) return plain;
        const double streamed = find(memory_name(inputs, write, true, dtype, s, t));
        return std::isnan(plain) ? streamed : std::isnan(streamed) ? plain : std::min(plain, streamed);
    }

    void print_table(std::ostream& out) const override {
        char line[512];
        out << "\nRatios (real time; the " << times().statistic()
            << " of the repetitions when repeated). speedup = scalar / rspo;\n"
               "/mem, /exp = rspo / that floor, /bound = rspo / the larger floor (1.00 = at the floor).\n"
               "mem floor: the faster of regular and streaming stores; exp floor: the "
            << floors().isa << " exp, N*V exps per input matrix, same threads.\n"
               "cpu/thr: rspo's process CPU time / threads, what the wall time would be with every thread "
               "on a core\nof its own (compare with rspo ms on a busy machine).\n";
        const char* format = "%-20s %-5s %-11s %3s %9s %9s %10s %8s %9s %6s %9s %6s %6s %7s\n";
        std::snprintf(line, sizeof line, format, "op", "dtype", "shape", "thr", "rspo ms", "cpu/thr",
                      "scalar ms", "speedup", "mem ms", "/mem", "exp ms", "/exp", "/bound", "GB/s");
        out << line;
        bool any = false;
        for (const table_row& row : table_rows) {
            const std::string rspo_name = op_name("rspo", *row.op, row.dtype, row.s, row.t);
            const double rspo = find(rspo_name);
            const double cpu_per_thread = times().cpu_ms(rspo_name) / row.t;  // process CPU, all threads
            const double scalar = find(op_name("scalar", *row.op, row.dtype, row.s, row.t));
            if (std::isnan(rspo) && std::isnan(scalar)) continue;
            any = true;
            const double mem = memory_floor(row.op->inputs(), row.op->backward, row.dtype, row.s, row.t);
            const double exp = find(exp_name(row.s, row.t)) * static_cast<double>(row.op->inputs());
            const double bound = std::isnan(mem) || std::isnan(exp) ? std::nan("") : std::max(mem, exp);
            const auto bytes = bytes_moved(row.op->inputs(), row.op->backward, row.element_size, row.s);
            const double gbs = static_cast<double>(bytes) / (rspo * 1e-3) / 1e9;
            std::snprintf(line, sizeof line, format, row.op->name, row.dtype, row.s.str().c_str(),
                          std::to_string(row.t).c_str(), cell(rspo, "%.3f").c_str(),
                          cell(cpu_per_thread, "%.3f").c_str(), cell(scalar, "%.3f").c_str(),
                          cell(scalar / rspo, "%.1fx").c_str(), cell(mem, "%.3f").c_str(),
                          cell(rspo / mem, "%.2f").c_str(), cell(exp, "%.3f").c_str(),
                          cell(rspo / exp, "%.2f").c_str(), cell(rspo / bound, "%.2f").c_str(),
                          cell(gbs, "%.1f").c_str());
            out << line;
        }
        if (!any) out << "(no op ran)\n";
        for (const unsigned t : {threads, 1u}) {
            const double e = find(exp_name(main_shape, t));
            if (std::isnan(e)) continue;
            std::snprintf(line, sizeof line, "exp floor, %u thread(s): %.2f Gexp/s\n", t,
                          static_cast<double>(main_shape.size()) / (e * 1e-3) / 1e9);
            out << line;
        }
        out.flush();
    }
};

}  // namespace

int main(int argc, char** argv) {
    // The ratio table goes with the console format; --ratio_statistic=<median|min|mean> picks the
    // aggregate it uses when repeated (median by default).
    const rspo_bench::table_flags flags = rspo_bench::take_table_flags(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    register_all();
    benchmark::AddCustomContext("floor_isa", floors().isa);
    benchmark::AddCustomContext("kernel_threads",
                                std::to_string(threads) + " (1 for the single-thread rows)");
    benchmark::AddCustomContext("scalar_baseline",
                                "max pass + std::exp sum pass (+ gradient pass) in float, same threads and "
                                "row blocks as rspo");
    rspo_bench::run_benchmarks<ratio_reporter>(flags);
    benchmark::Shutdown();
    return 0;
}
