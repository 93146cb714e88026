// Benchmarks of rspo's CUDA token-reduction kernels (include/rspo/kernels/cuda/token_reductions.cuh,
// docs/math §5) on a GPU, beside the device's memory floors measured in the same run, with a table
// at the end: the GPU counterpart of bench_kernels (benchmarks/kernels.cpp), with the same op names.
//
//   Shapes N×V: 8192×128256 (the kernels issue's target: a Llama-3 vocabulary), 2048×32000,
//   512×128256; fp32 and bf16 logits (the gradient has the logits' type). Ops, each one library
//   call (forward_async / backward_async with a caller-owned workspace, as a trainer that must not
//   stall calls them):
//     logprob_fwd          forward, log-probs
//     logprob_fwd_bwd      backward with the log-prob gradient (and values)
//     kl_fwd               forward, both KL directions in one pass
//     reverse_kl_fwd_bwd   backward with the reverse-KL gradient (and value)
//     forward_kl_fwd_bwd   backward with the forward-KL gradient (and value)
//     fused_fwd            forward, log-prob + both KLs
//     fused_fwd_bwd        backward with all three gradients (and values)
//   Floors, each run just before the ops of its dtype and shape:
//     floor/read_r{1,2}[_cs]  a vectorized sum (16-byte loads, 64 bytes in flight per thread and
//             input, a full grid of resident blocks) over the same 1 or 2 input matrices, with plain
//             or streaming (__ldcs) loads; the table uses the faster.
//     floor/memcpy_d2d        cudaMemcpyAsync device-to-device of one logits matrix (it reads and
//             writes N·V elements), the driver's own copy as a reference for read+write traffic.
//   Theoretical peak: 2 × memory clock × bus width, from cudaDeviceGetAttribute
//   (cudaDevAttrMemoryClockRate, cudaDevAttrGlobalMemoryBusWidth; CUDA 13 dropped the
//   cudaDeviceProp fields). Where the device does not report them, only the measured floors are
//   printed.
//
// Timing: cudaEvents on an explicit stream around exactly what a call enqueues (the status-record
// reset, the row kernel, the diagnosis kernel), reported with SetIterationTime (UseManualTime).
// Before each timed call the L2 is flushed (a memset of twice its size: a trainer calls the kernels
// after matmuls that have evicted the logits) and a ~50 µs spin kernel is queued, so that the host
// has enqueued the whole call before the GPU reaches the start event: the events then time the
// device's work, not the host's launch latency.
//
// GB/s: the bytes an op must move (each input matrix read once, the gradient written once) over its
// time, as bench_kernels counts them. Backward at V = 128256 re-reads its inputs from HBM when the
// rows in flight exceed the L2 (see token_reductions.cuh), so it moves more than it is credited with.
//
// Correctness guard: before anything is timed, every op and dtype runs on two small shapes (the
// timed shapes' kernel path, a block per row) and is compared, every row, with the long-double
// reference backend (rspo/kernels/reference/token_reductions.hpp); a disagreement aborts the
// program (exit 1) rather than time a wrong kernel. After each timed case its status is checked
// and four rows of its result are compared again. Tolerances are loose: this guards against a
// wrong kernel; tests/cuda is the accuracy test.
//
// Without a CUDA device (cudaGetDeviceCount fails or finds none) the program says so and exits 77,
// which CTest reports as skipped.
//
//   build/benchmarks/bench_cuda_kernels --benchmark_filter=/8192x128256 --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true --benchmark_min_time=0.2 --benchmark_out=cuda.json
// prints the results and then the table (medians when repeated; --ratio_statistic=min for the
// fastest repetition). benchmarks/compare_torch_compile.py reads the JSON and adds PyTorch eager
// and torch.compile; scripts/gpu_check.sh runs both on a GPU machine.

#include <rspo/kernels/cuda/token_reductions.cuh>
#include <rspo/kernels/reference/token_reductions.hpp>
#include <rspo/kernels/types.hpp>

#include "support/common.hpp"

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <ostream>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace kernels = rspo::kernels;
namespace rc = rspo::kernels::cuda;
using kernels::bf16;
using kernels::logit_type;

void cuda_check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// ---------------------------------------------------------------------------------------------
// Cases (the shape, op and dtype types are bench_kernels' too: support/common.hpp)
// ---------------------------------------------------------------------------------------------
using namespace rspo_bench;  // shape, op_spec, ops, dtype_name, bytes_moved, cell, minimum, run_failed

constexpr shape target_shape{8192, 128256};
constexpr shape shapes[] = {target_shape, {2048, 32000}, {512, 128256}};
/// The guard's shapes: more than 8192 columns, so the timed shapes' path (a block per row).
constexpr shape guard_shapes[] = {{8, 128256}, {32, 32000}};

std::string op_name(const op_spec& op, const char* dtype, shape s) { return rspo_bench::op_name("rspo", op, dtype, s); }

std::string read_name(std::size_t inputs, bool stream, const char* dtype, shape s) {
    return "floor/read_r" + std::to_string(inputs) + (stream ? "_cs" : "") + "/" + dtype + "/" + s.str();
}

std::string memcpy_name(const char* dtype, shape s) { return std::string("floor/memcpy_d2d/") + dtype + "/" + s.str(); }

// ---------------------------------------------------------------------------------------------
// Device memory
// ---------------------------------------------------------------------------------------------
template <class E>
class device_buffer {
public:
    device_buffer() = default;
    explicit device_buffer(std::size_t count) : size_(count) {
        if (count != 0) cuda_check(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(E)), "cudaMalloc");
    }
    device_buffer(device_buffer&& other) noexcept
        : ptr_(std::exchange(other.ptr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    device_buffer& operator=(device_buffer&& other) noexcept {
        std::swap(ptr_, other.ptr_);
        std::swap(size_, other.size_);
        return *this;
    }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    ~device_buffer() {
        if (ptr_ != nullptr) (void)cudaFree(ptr_);  // nothing to do about a failure here
    }

    [[nodiscard]] E* get() const { return ptr_; }
    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] std::span<E> span() const { return {ptr_, size_}; }

    /// Elements [begin, begin + count) copied to the host (synchronous).
    [[nodiscard]] std::vector<E> download(std::size_t begin, std::size_t count) const {
        std::vector<E> h(count);
        if (count != 0)
            cuda_check(cudaMemcpy(h.data(), ptr_ + begin, count * sizeof(E), cudaMemcpyDeviceToHost), "cudaMemcpy");
        return h;
    }
    [[nodiscard]] std::vector<E> download() const { return download(0, size_); }

private:
    E* ptr_ = nullptr;
    std::size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Data: the distribution of bench_kernels, bit for bit (same hash), generated on the device (the
// target shape has 10^9 entries per matrix).
// ---------------------------------------------------------------------------------------------
__host__ __device__ inline std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/// Approximately standard normal (four uniforms summed, rescaled), deterministic in `key`.
__host__ __device__ inline float gaussian(std::uint64_t key) {
    const std::uint64_t h = splitmix(key);
    const double sum = static_cast<double>(h & 0xFFFF) + static_cast<double>((h >> 16) & 0xFFFF) +
                       static_cast<double>((h >> 32) & 0xFFFF) + static_cast<double>(h >> 48);
    return static_cast<float>((sum / 65536.0 - 2.0) * 1.7320508075688772);  // × √3: unit variance
}

__host__ __device__ inline std::size_t target_of(std::size_t n, std::size_t cols) { return splitmix(3 * n + 1) % cols; }

/// rspo::kernels::to_bf16 (round to nearest even) for the finite values generated here.
__device__ inline std::uint16_t bf16_bits(float x) {
    const unsigned u = __float_as_uint(x);
    return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

template <class S>
__device__ inline S stored(float x) {
    if constexpr (std::is_same_v<S, float>)
        return x;
    else
        return bf16_bits(x);
}

/// z ~ 2.5·N(0, 1) with the target token raised by 6 (a model that likes its samples); r = z + 0.3·N(0, 1).
template <class S>
__global__ void fill_logits(S* z, S* r, std::size_t rows, std::size_t cols) {
    const std::size_t total = rows * cols;
    const std::size_t step = static_cast<std::size_t>(gridDim.x) * blockDim.x;
    for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
        const std::size_t n = i / cols;
        float zv = 2.5f * gaussian(2 * i);
        if (i - n * cols == target_of(n, cols)) zv += 6.0f;
        z[i] = stored<S>(zv);
        r[i] = stored<S>(zv + 0.3f * gaussian(2 * i + 1));
    }
}

/// Target ids and upstream gradients in [0.5, 1.5), per row.
__global__ void fill_rows(std::int64_t* ids, float* g_logprob, float* g_reverse, float* g_forward, std::size_t rows,
                          std::size_t cols) {
    const std::size_t step = static_cast<std::size_t>(gridDim.x) * blockDim.x;
    for (std::size_t n = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; n < rows; n += step) {
        const auto u = [](std::uint64_t k) {
            return 0.5f + static_cast<float>(splitmix(k) >> 40) / static_cast<float>(1ull << 24);
        };
        ids[n] = static_cast<std::int64_t>(target_of(n, cols));
        g_logprob[n] = u(4 * n + 1);
        g_reverse[n] = u(4 * n + 2);
        g_forward[n] = u(4 * n + 3);
    }
}

// ---------------------------------------------------------------------------------------------
// The process-wide GPU state: stream, events, L2 flush buffer, the kernels' workspace.
// ---------------------------------------------------------------------------------------------
struct device_info {
    std::string name;
    int sms = 0;
    int l2_bytes = 0;
    double peak_gbs = std::nan("");  ///< theoretical; NaN when the device does not report it
    std::string peak_note;           ///< how it was obtained, or why it is missing
};

struct gpu_state {
    device_info info;
    cudaStream_t stream = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    device_buffer<std::byte> flush;
    device_buffer<std::byte> workspace;
    device_buffer<unsigned> sink;  ///< the read floor's result, written only to keep its loads

    gpu_state() {
        int dev = 0;
        cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
        cudaDeviceProp prop{};
        cuda_check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
        info.name = prop.name;
        info.name += " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
        cuda_check(cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, dev), "SM count");
        if (cudaDeviceGetAttribute(&info.l2_bytes, cudaDevAttrL2CacheSize, dev) != cudaSuccess) info.l2_bytes = 0;
        int clock_khz = 0, bus_bits = 0;
        const cudaError_t ec = cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev);
        const cudaError_t eb = cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
        if (ec == cudaSuccess && eb == cudaSuccess && clock_khz > 0 && bus_bits > 0) {
            // HBM moves data on both clock edges: 2 transfers per memory clock per bus bit.
            info.peak_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
            info.peak_note = "2 x " + std::to_string(clock_khz / 1000) + " MHz x " + std::to_string(bus_bits) +
                             " bits (cudaDevAttrMemoryClockRate, cudaDevAttrGlobalMemoryBusWidth)";
        } else {
            info.peak_note = std::string("unavailable: the device reports no memory clock / bus width (") +
                             cudaGetErrorName(ec != cudaSuccess ? ec : eb) + ", " + std::to_string(clock_khz) +
                             " kHz, " + std::to_string(bus_bits) + " bits); only the measured floors are printed";
            (void)cudaGetLastError();
        }
        cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
        cuda_check(cudaEventCreate(&start), "cudaEventCreate");
        cuda_check(cudaEventCreate(&stop), "cudaEventCreate");
        // Twice the L2, so that a flush evicts all of it whatever the replacement policy; 256 MiB
        // when the size is not reported (larger than any current L2).
        flush = device_buffer<std::byte>(info.l2_bytes > 0 ? 2 * static_cast<std::size_t>(info.l2_bytes) : 256u << 20);
        workspace = device_buffer<std::byte>(rc::workspace_size(0, 0));
        sink = device_buffer<unsigned>(1);
    }
    gpu_state(const gpu_state&) = delete;
    gpu_state& operator=(const gpu_state&) = delete;
    ~gpu_state() {
        (void)cudaEventDestroy(start);
        (void)cudaEventDestroy(stop);
        (void)cudaStreamDestroy(stream);
    }
};

std::unique_ptr<gpu_state> gpu;

/// Keeps the GPU busy for `ns` nanoseconds (its global timer).
__global__ void spin_kernel(unsigned long long ns) {
    unsigned long long t0 = 0, t = 0;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

/// Times what `enqueue()` puts on the stream with events (see the header for the flush and spin).
/// `enqueue` returns false to stop with an error already reported to `state`.
template <class Enqueue>
void timed_loop(benchmark::State& state, Enqueue&& enqueue) {
    constexpr unsigned long long spin_ns = 50'000;  // > the host's time to enqueue one call
    gpu_state& g = *gpu;
    for (auto _ : state) {
        cuda_check(cudaMemsetAsync(g.flush.get(), 0, g.flush.size(), g.stream), "L2 flush");
        spin_kernel<<<1, 1, 0, g.stream>>>(spin_ns);
        cuda_check(cudaGetLastError(), "spin kernel");
        cuda_check(cudaEventRecord(g.start, g.stream), "cudaEventRecord");
        if (!enqueue()) break;
        cuda_check(cudaEventRecord(g.stop, g.stream), "cudaEventRecord");
        cuda_check(cudaEventSynchronize(g.stop), "cudaEventSynchronize");
        float ms = 0;
        cuda_check(cudaEventElapsedTime(&ms, g.start, g.stop), "cudaEventElapsedTime");
        state.SetIterationTime(static_cast<double>(ms) * 1e-3);
    }
}

// ---------------------------------------------------------------------------------------------
// Datasets: one shape and type alive at a time (the target shape in fp32 takes 12.6 GB).
// ---------------------------------------------------------------------------------------------
struct dataset_base {
    virtual ~dataset_base() = default;
};

template <logit_type T>
struct dataset : dataset_base {
    using storage = std::conditional_t<std::is_same_v<T, float>, float, std::uint16_t>;
    static_assert(sizeof(storage) == sizeof(T));

    shape s;
    device_buffer<T> z, r, dz;
    device_buffer<std::int64_t> ids;
    device_buffer<float> g_logprob, g_reverse, g_forward, logprob, reverse_kl, forward_kl;

    explicit dataset(shape s_)
        : s(s_),
          z(s.size()),
          r(s.size()),
          dz(s.size()),
          ids(s.rows),
          g_logprob(s.rows),
          g_reverse(s.rows),
          g_forward(s.rows),
          logprob(s.rows),
          reverse_kl(s.rows),
          forward_kl(s.rows) {
        const gpu_state& g = *gpu;
        const auto blocks = static_cast<unsigned>(g.info.sms) * 16u;
        fill_logits<storage><<<blocks, 256, 0, g.stream>>>(reinterpret_cast<storage*>(z.get()),
                                                           reinterpret_cast<storage*>(r.get()), s.rows, s.cols);
        cuda_check(cudaGetLastError(), "fill_logits");
        fill_rows<<<static_cast<unsigned>((s.rows + 255) / 256), 256, 0, g.stream>>>(
            ids.get(), g_logprob.get(), g_reverse.get(), g_forward.get(), s.rows, s.cols);
        cuda_check(cudaGetLastError(), "fill_rows");
        cuda_check(cudaStreamSynchronize(g.stream), "data generation");
    }

    [[nodiscard]] kernels::logits_view<T> view(const device_buffer<T>& m) const {
        return kernels::contiguous(static_cast<const T*>(m.get()), s.rows, s.cols);
    }

    /// Fills the outputs with NaN bits, so that a call that writes nothing cannot pass the guard.
    void poison_outputs() const {
        for (const device_buffer<float>* b : {&logprob, &reverse_kl, &forward_kl})
            cuda_check(cudaMemsetAsync(b->get(), 0xFF, b->size() * sizeof(float), gpu->stream), "cudaMemset");
        cuda_check(cudaMemsetAsync(dz.get(), 0xFF, dz.size() * sizeof(T), gpu->stream), "cudaMemset");
    }
};

std::unique_ptr<dataset_base> current_data;

template <logit_type T>
dataset<T>& data_for(shape s) {
    if (auto* d = dynamic_cast<dataset<T>*>(current_data.get()); d != nullptr && d->s == s) return *d;
    current_data.reset();  // free the previous one first: the fp32 target-shape set alone is 12.6 GB
    auto fresh = std::make_unique<dataset<T>>(s);
    dataset<T>& d = *fresh;
    current_data = std::move(fresh);
    return d;
}

// ---------------------------------------------------------------------------------------------
// The library calls
// ---------------------------------------------------------------------------------------------
template <class E>
std::span<E> if_(bool wanted, const device_buffer<E>& b) {
    return wanted ? b.span() : std::span<E>();
}

/// Enqueues one call of `op` on `d` (values, and for backward ops the gradient into d.dz).
template <logit_type T>
rc::status enqueue_op(const op_spec& op, const dataset<T>& d) {
    const kernels::token_inputs<T> in{d.view(d.z), op.kl() ? d.view(d.r) : kernels::logits_view<T>{},
                                      op.logprob ? std::span<const std::int64_t>(d.ids.span())
                                                 : std::span<const std::int64_t>()};
    const kernels::token_values values{if_(op.logprob, d.logprob), if_(op.reverse_kl, d.reverse_kl),
                                       if_(op.forward_kl, d.forward_kl)};
    const std::span<std::byte> ws = gpu->workspace.span();
    if (!op.backward) return rc::forward_async(in, values, kernels::kernel_options{}, ws, gpu->stream);
    const kernels::token_grads grads{if_(op.logprob, d.g_logprob), if_(op.reverse_kl, d.g_reverse),
                                     if_(op.forward_kl, d.g_forward)};
    return rc::backward_async(in, grads, kernels::gradient_view<T>{d.dz.get(), d.s.rows, d.s.cols, d.s.cols},
                              kernels::kernel_options{}, ws, gpu->stream, values);
}

// ---------------------------------------------------------------------------------------------
// Checks against the long-double reference backend
// ---------------------------------------------------------------------------------------------
/// Empty if rows `rows` of what the last call of `op` left in `d` match the reference backend (on
/// the same input bits, copied back), else what did not. A guard against a wrong kernel, not an
/// accuracy test (tests/cuda is): values within 1e-4·(1 + |ref|); gradients within 1e-3·|ref| (plus
/// one bf16 rounding for bf16) + 1e-4·max|ref| of the row.
template <logit_type T>
std::string compare_rows(const op_spec& op, const dataset<T>& d, const std::vector<std::size_t>& rows) {
    const shape s = d.s;
    const std::vector<std::int64_t> ids = d.ids.download();
    const std::vector<float> g_lp = d.g_logprob.download(), g_rev = d.g_reverse.download(),
                             g_fwd = d.g_forward.download();
    const std::vector<float> lp_got = d.logprob.download(), rev_got = d.reverse_kl.download(),
                             fwd_got = d.forward_kl.download();
    const double relative = 1e-3 + (std::is_same_v<T, float> ? 0.0 : 1.0 / 128);
    std::vector<T> g(s.cols);
    char message[320];
    for (const std::size_t n : rows) {
        const std::vector<T> z = d.z.download(n * s.cols, s.cols);
        const std::vector<T> r = op.kl() ? d.r.download(n * s.cols, s.cols) : std::vector<T>{};
        const kernels::token_inputs<T> in{
            kernels::contiguous(z.data(), 1, s.cols),
            op.kl() ? kernels::contiguous(r.data(), 1, s.cols) : kernels::logits_view<T>{},
            op.logprob ? std::span<const std::int64_t>(&ids[n], 1) : std::span<const std::int64_t>()};
        float lp = 0, rk = 0, fk = 0;
        const kernels::token_values values{op.logprob ? std::span<float>(&lp, 1) : std::span<float>(),
                                           op.reverse_kl ? std::span<float>(&rk, 1) : std::span<float>(),
                                           op.forward_kl ? std::span<float>(&fk, 1) : std::span<float>()};
        if (op.backward) {
            const kernels::token_grads grads{
                op.logprob ? std::span<const float>(&g_lp[n], 1) : std::span<const float>(),
                op.reverse_kl ? std::span<const float>(&g_rev[n], 1) : std::span<const float>(),
                op.forward_kl ? std::span<const float>(&g_fwd[n], 1) : std::span<const float>()};
            kernels::reference::backward(in, grads, kernels::gradient_view<T>{g.data(), 1, s.cols, s.cols}, {},
                                         values);
        } else {
            kernels::reference::forward(in, values);
        }
        const auto value_bad = [&](const char* what, bool wanted, float ref, float got) {
            if (!wanted || std::abs(static_cast<double>(got) - ref) <= 1e-4 * (1.0 + std::abs(ref))) return false;
            std::snprintf(message, sizeof message, "row %zu: %s = %.9g, reference %.9g", n, what,
                          static_cast<double>(got), static_cast<double>(ref));
            return true;
        };
        if (value_bad("logprob", op.logprob, lp, lp_got[n]) || value_bad("reverse_kl", op.reverse_kl, rk, rev_got[n]) ||
            value_bad("forward_kl", op.forward_kl, fk, fwd_got[n]))
            return message;
        if (!op.backward) continue;
        const std::vector<T> dz = d.dz.download(n * s.cols, s.cols);
        double scale = 0;
        for (std::size_t v = 0; v < s.cols; ++v) scale = std::max(scale, std::abs(double{kernels::widen(g[v])}));
        for (std::size_t v = 0; v < s.cols; ++v) {
            const double ref = kernels::widen(g[v]), got = kernels::widen(dz[v]);
            if (!(std::abs(got - ref) <= relative * std::abs(ref) + 1e-4 * scale)) {  // also catches NaN
                std::snprintf(message, sizeof message, "row %zu: dlogits[%zu] = %.9g, reference %.9g", n, v, got, ref);
                return message;
            }
        }
    }
    return {};
}

/// Runs every op once on `s` and compares every row with the reference; false (after saying what
/// disagreed) if any op fails.
template <logit_type T>
bool guard_shape(shape s) {
    dataset<T>& d = data_for<T>(s);
    std::vector<std::size_t> all(s.rows);
    for (std::size_t n = 0; n < s.rows; ++n) all[n] = n;
    for (const op_spec& op : ops) {
        d.poison_outputs();
        rc::status st = enqueue_op(op, d);
        if (st.ok()) st = rc::check(gpu->workspace.span(), gpu->stream);
        std::string error = st.ok() ? compare_rows(op, d, all) : "status: " + st.message;
        if (!error.empty()) {
            std::fprintf(stderr,
                         "bench_cuda_kernels: %s disagrees with rspo::kernels::reference on the guard shape: %s\n"
                         "Not timing a wrong kernel: aborting.\n",
                         op_name(op, dtype_name<T>(), s).c_str(), error.c_str());
            return false;
        }
    }
    std::printf("guard: %s, %s: all ops agree with the reference backend\n", dtype_name<T>(), s.str().c_str());
    return true;
}

bool guard() {
    for (const shape s : guard_shapes)
        if (!guard_shape<float>(s) || !guard_shape<bf16>(s)) return false;
    current_data.reset();
    return true;
}

// ---------------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------------
void recover_stream() {
    (void)cudaStreamSynchronize(gpu->stream);  // let the failed case finish before the next one
    (void)cudaGetLastError();
}

template <logit_type T>
void bm_op(benchmark::State& state, const op_spec& op, shape s) {
    try {
        dataset<T>& d = data_for<T>(s);
        bool launched = true;
        timed_loop(state, [&] {
            const rc::status st = enqueue_op(op, d);
            if (!st.ok()) state.SkipWithError(("launch: " + st.message).c_str());
            launched = st.ok();
            return launched;
        });
        const rc::status st = launched ? rc::check(gpu->workspace.span(), gpu->stream) : rc::status{};
        if (!launched) {
            recover_stream();
        } else if (!st.ok()) {
            state.SkipWithError(("status: " + st.message).c_str());
        } else {
            static std::set<std::string> checked;  // once per case, not per repetition
            if (checked.insert(op_name(op, dtype_name<T>(), s)).second) {
                const std::string error = compare_rows(op, d, {0, s.rows / 3, 2 * s.rows / 3, s.rows - 1});
                if (!error.empty()) state.SkipWithError(("wrong result: " + error).c_str());
            }
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        recover_stream();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(bytes_moved(op.inputs(), op.backward, sizeof(T), s)));
}

/// Sums 16-byte vectors of one or two buffers with U vectors per input in flight per thread
/// (64 bytes, as the rspo kernels keep), grid-stride. The sum is stored only if it hits an
/// improbable value: the loads must happen, the stores almost never do.
template <int Inputs, bool Stream>
__global__ void __launch_bounds__(256)
    read_floor_kernel(const uint4* __restrict__ a, const uint4* __restrict__ b, std::size_t vectors, unsigned* sink) {
    constexpr int U = 4;
    const auto load = [](const uint4* p) {
        if constexpr (Stream)
            return __ldcs(p);
        else
            return *p;
    };
    const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
    std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    unsigned acc = 0;
    for (; i + (U - 1) * stride < vectors; i += U * stride) {
        uint4 va[U], vb[U];
#pragma unroll
        for (int k = 0; k < U; ++k) {
            va[k] = load(a + i + k * stride);
            if constexpr (Inputs == 2) vb[k] = load(b + i + k * stride);
        }
#pragma unroll
        for (int k = 0; k < U; ++k) {
            acc += va[k].x ^ va[k].y ^ va[k].z ^ va[k].w;
            if constexpr (Inputs == 2) acc += vb[k].x ^ vb[k].y ^ vb[k].z ^ vb[k].w;
        }
    }
    for (; i < vectors; i += stride) {
        const uint4 va = load(a + i);
        acc += va.x ^ va.y ^ va.z ^ va.w;
        if constexpr (Inputs == 2) {
            const uint4 vb = load(b + i);
            acc += vb.x ^ vb.y ^ vb.z ^ vb.w;
        }
    }
    if (acc == 0x9E3779B9u) *sink = acc;
}

template <int Inputs, bool Stream>
void launch_read_floor(const void* a, const void* b, std::size_t bytes) {
    const auto kernel = read_floor_kernel<Inputs, Stream>;
    static const unsigned blocks = [kernel] {  // a full grid of resident blocks
        int per_sm = 0;
        cuda_check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 256, 0), "occupancy");
        return static_cast<unsigned>(std::max(per_sm, 1) * gpu->info.sms);
    }();
    kernel<<<blocks, 256, 0, gpu->stream>>>(static_cast<const uint4*>(a), static_cast<const uint4*>(b), bytes / 16,
                                           gpu->sink.get());
    cuda_check(cudaGetLastError(), "read floor kernel");
}

template <logit_type T>
void bm_read_floor(benchmark::State& state, shape s, std::size_t inputs, bool stream) {
    const std::size_t bytes = s.size() * sizeof(T);  // per matrix; a multiple of 16 for every shape here
    try {
        if (bytes % 16 != 0) throw std::logic_error("read floor: the matrix is not a whole number of 16-byte vectors");
        const dataset<T>& d = data_for<T>(s);
        timed_loop(state, [&] {
            if (inputs == 1 && !stream) launch_read_floor<1, false>(d.z.get(), nullptr, bytes);
            if (inputs == 1 && stream) launch_read_floor<1, true>(d.z.get(), nullptr, bytes);
            if (inputs == 2 && !stream) launch_read_floor<2, false>(d.z.get(), d.r.get(), bytes);
            if (inputs == 2 && stream) launch_read_floor<2, true>(d.z.get(), d.r.get(), bytes);
            return true;
        });
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        recover_stream();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(bytes_moved(inputs, false, sizeof(T), s)));
}

template <logit_type T>
void bm_memcpy_floor(benchmark::State& state, shape s) {
    try {
        const dataset<T>& d = data_for<T>(s);
        timed_loop(state, [&] {
            cuda_check(cudaMemcpyAsync(d.dz.get(), d.z.get(), s.size() * sizeof(T), cudaMemcpyDeviceToDevice,
                                       gpu->stream),
                       "cudaMemcpyAsync");
            return true;
        });
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        recover_stream();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(bytes_moved(1, true, sizeof(T), s)));
}

// ---------------------------------------------------------------------------------------------
// Registration, remembered for the table
// ---------------------------------------------------------------------------------------------
struct table_row {
    const op_spec* op;
    const char* dtype;
    shape s;
    std::size_t element_size;
};

std::vector<table_row> table_rows;

/// Milliseconds of device time (events); with repetitions the fastest one is reported too ("min").
void configure(benchmark::internal::Benchmark* b) {
    b->Unit(benchmark::kMillisecond)->UseManualTime();
    b->ComputeStatistics("min", minimum);
}

template <logit_type T>
void register_dtype(shape s) {
    const char* dtype = dtype_name<T>();
    for (const std::size_t inputs : {1, 2})
        for (const bool stream : {false, true})
            configure(benchmark::RegisterBenchmark(read_name(inputs, stream, dtype, s).c_str(), bm_read_floor<T>, s,
                                                   inputs, stream));
    configure(benchmark::RegisterBenchmark(memcpy_name(dtype, s).c_str(), bm_memcpy_floor<T>, s));
    for (const op_spec& op : ops) {
        configure(benchmark::RegisterBenchmark(op_name(op, dtype, s).c_str(), bm_op<T>, op, s));
        table_rows.push_back({&op, dtype, s, sizeof(T)});
    }
}

void register_all() {
    for (const shape s : shapes) {  // dtype inside shape: each dataset is built once
        register_dtype<float>(s);
        register_dtype<bf16>(s);
    }
}

// ---------------------------------------------------------------------------------------------
// The table: the console output, then every op against the floors and the peak.
// ---------------------------------------------------------------------------------------------
class device_table_reporter : public rspo_bench::table_reporter {
public:
    using table_reporter::table_reporter;

private:
    [[nodiscard]] static double gbs(std::size_t bytes, double ms) { return static_cast<double>(bytes) / (ms * 1e-3) / 1e9; }

    /// GB/s of the faster of the plain- and streaming-load read floors.
    [[nodiscard]] double read_floor_gbs(std::size_t inputs, const table_row& row) const {
        const double plain = find(read_name(inputs, false, row.dtype, row.s));
        const double cs = find(read_name(inputs, true, row.dtype, row.s));
        const double ms = std::isnan(plain) ? cs : std::isnan(cs) ? plain : std::min(plain, cs);
        return gbs(bytes_moved(inputs, false, row.element_size, row.s), ms);
    }

    [[nodiscard]] double copy_floor_gbs(const table_row& row) const {
        return gbs(bytes_moved(1, true, row.element_size, row.s), find(memcpy_name(row.dtype, row.s)));
    }

    void print_table(std::ostream& out) const override {
        const device_info& info = gpu->info;
        char line[512];
        out << "\nrspo CUDA kernels on " << info.name << " (device time; the " << times().statistic()
            << " of the repetitions when repeated).\n"
               "GB/s: bytes the op must move (inputs read once, gradient written once) / time.\n"
               "% read: of the read floor over the same inputs (the faster of plain and streaming loads);\n"
               "% copy (backward): of cudaMemcpy D2D, which reads and writes; % peak: of the theoretical peak.\n"
               "theoretical peak: "
            << (std::isnan(info.peak_gbs) ? std::string("-") : cell(info.peak_gbs, "%.1f") + " GB/s = ")
            << info.peak_note << "\n";
        const char* format = "%-20s %-5s %-13s %9s %9s %7s %7s %7s\n";
        std::snprintf(line, sizeof line, format, "op", "dtype", "shape", "ms", "GB/s", "% read", "% copy", "% peak");
        out << line;
        bool any = false;
        for (const table_row& row : table_rows) {
            const double ms = find(op_name(*row.op, row.dtype, row.s));
            if (std::isnan(ms)) continue;
            any = true;
            const double rate = gbs(bytes_moved(row.op->inputs(), row.op->backward, row.element_size, row.s), ms);
            const double read = read_floor_gbs(row.op->inputs(), row);
            const double copy = row.op->backward ? copy_floor_gbs(row) : std::nan("");
            std::snprintf(line, sizeof line, format, row.op->name, row.dtype, row.s.str().c_str(),
                          cell(ms, "%.4f").c_str(), cell(rate, "%.1f").c_str(), cell(100 * rate / read, "%.1f").c_str(),
                          cell(100 * rate / copy, "%.1f").c_str(), cell(100 * rate / info.peak_gbs, "%.1f").c_str());
            out << line;
        }
        if (!any) out << "(no op ran)\n";
        out << "floors (GB/s): read 1 matrix | read 2 | memcpy D2D\n";
        std::set<std::string> seen;
        for (const table_row& row : table_rows) {
            const std::string key = std::string(row.dtype) + " " + row.s.str();
            if (!seen.insert(key).second) continue;
            const double r1 = read_floor_gbs(1, row), r2 = read_floor_gbs(2, row), cp = copy_floor_gbs(row);
            if (std::isnan(r1) && std::isnan(r2) && std::isnan(cp)) continue;
            std::snprintf(line, sizeof line, "  %-19s %9s | %9s | %9s\n", key.c_str(), cell(r1, "%.1f").c_str(),
                          cell(r2, "%.1f").c_str(), cell(cp, "%.1f").c_str());
            out << line;
        }
        // The kernels issue's target: log-prob forward at 8192x128256 bf16 at >= 80% of HBM bandwidth.
        for (const table_row& row : table_rows) {
            if (std::string_view(row.op->name) != "logprob_fwd" || std::string_view(row.dtype) != "bf16" ||
                !(row.s == target_shape))
                continue;
            const double ms = find(op_name(*row.op, row.dtype, row.s));
            if (std::isnan(ms)) break;
            const double rate = gbs(bytes_moved(1, false, row.element_size, row.s), ms);
            const double of_peak = 100 * rate / info.peak_gbs, of_read = 100 * rate / read_floor_gbs(1, row);
            std::snprintf(line, sizeof line,
                          "target: logprob_fwd bf16 %s at %s GB/s = %s%% of the theoretical peak, %s%% of the "
                          "measured read floor: %s\n",
                          row.s.str().c_str(), cell(rate, "%.1f").c_str(), cell(of_peak, "%.1f").c_str(),
                          cell(of_read, "%.1f").c_str(),
                          std::isnan(of_peak) ? "no peak to judge the >= 80% target by"
                          : of_peak >= 80    ? "meets >= 80% of peak"
                                             : "below 80% of peak");
            out << line;
        }
        out.flush();
    }
};

}  // namespace

int main(int argc, char** argv) {
    // As in bench_kernels: the table goes with the console format, and --ratio_statistic=<median|min|
    // mean> picks the aggregate it uses when repeated.
    const rspo_bench::table_flags flags = rspo_bench::take_table_flags(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    int devices = 0;
    const cudaError_t found = cudaGetDeviceCount(&devices);
    if (found != cudaSuccess || devices == 0) {
        std::printf("bench_cuda_kernels: no CUDA device (%s): nothing to measure; exiting with 77 (skipped)\n",
                    found == cudaSuccess ? "none found" : cudaGetErrorString(found));
        return 77;
    }
    int status = 0;
    try {
        gpu = std::make_unique<gpu_state>();
        std::printf("CUDA device 0: %s, %d SMs, %d MiB L2; theoretical peak: %s\n", gpu->info.name.c_str(),
                    gpu->info.sms, gpu->info.l2_bytes >> 20, gpu->info.peak_note.c_str());
        if (!guard()) {
            status = 1;
        } else {
            register_all();
            int runtime = 0, driver = 0;
            (void)cudaRuntimeGetVersion(&runtime);
            (void)cudaDriverGetVersion(&driver);
            benchmark::AddCustomContext("cuda_device", gpu->info.name);
            benchmark::AddCustomContext("cuda_runtime", std::to_string(runtime));
            benchmark::AddCustomContext("cuda_driver", std::to_string(driver));
            benchmark::AddCustomContext("sm_count", std::to_string(gpu->info.sms));
            benchmark::AddCustomContext("l2_bytes", std::to_string(gpu->info.l2_bytes));
            benchmark::AddCustomContext("peak_GBps", std::isnan(gpu->info.peak_gbs)
                                                         ? std::string("unavailable")
                                                         : std::to_string(gpu->info.peak_gbs));
            benchmark::AddCustomContext("peak_source", gpu->info.peak_note);
            benchmark::AddCustomContext("timing", "cudaEvents around one call, L2 flushed, host launch hidden");
            rspo_bench::run_benchmarks<device_table_reporter>(flags);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cuda_kernels: %s\n", e.what());
        status = 1;
    }
    benchmark::Shutdown();
    current_data.reset();  // device memory before the runtime goes away at exit
    gpu.reset();
    return status;
}
