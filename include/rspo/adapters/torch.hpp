#pragma once
// The libtorch adapter: rspo's token kernels, sample losses and win-rate estimators as functions of
// at::Tensor, the kernels and losses as autograd functions (torch::autograd::Function) whose backward
// is the library's own gradient. Optional: include it only in a program that links libtorch (it is
// not part of <rspo/rspo.hpp>). docs/kernels.md describes the kernels, docs/math §3-§5 the maths.
//
//   namespace rt = rspo::adapters::torch;
//   at::Tensor lp = rt::token_logprobs(logits, ids);                  // [N, V], [N] -> [N] float32
//   at::Tensor kl = rt::token_reverse_kl(logits, ref_logits, {.temperature = 0.7});
//   auto t = rt::token_terms(logits, ref_logits, ids);                 // all three in one pass
//   at::Tensor loss = rt::rspo_loss(rspo::make_rspo(rspo::reverse_kl{}, {.eta = 10, .tau = 0.01}),
//                                   {.log_pi_theta = lp_seq, .log_pi_t = lp_t, .log_mu = lp_mu,
//                                    .win_rate = rt::estimate_win_rates(pairwise).flatten()});
//   loss.backward();
//
// Token functions (logits [N, V] float32 or bfloat16; reference [N, V] of the same dtype; ids [N]
// int64; optional row_mask [N] bool or uint8):
//  - Values are [N] float32 on the logits' device, whatever the logits' dtype.
//  - The gradient w.r.t. the logits has the logits' dtype: bfloat16 logits get a bfloat16
//    gradient, computed in fp32 and rounded once (to nearest even). It is a fresh contiguous
//    [N, V] tensor. The reference gets no gradient (it is treated as detached), nor do ids or mask.
//  - Strides: a row stride (logits.stride(0) >= V) is passed to the kernels as is, so a column
//    slice such as big[:, :V] or a row slice big[::2] costs no copy. The last dimension must be
//    contiguous (stride(1) == 1): otherwise a tensor_error is thrown rather than a hidden copy of an
//    [N, V] matrix (call .contiguous() if that is what you want); so are overlapping rows
//    (stride(0) < V, e.g. an expanded tensor). ids, mask and upstream gradients are small and are
//    made contiguous (and the gradients float32) silently.
//  - Backward keeps only the inputs (no [N, V] activation is saved: torch's log_softmax keeps its
//    [N, V] output) and recomputes each row's statistics; the fused function's backward combines
//    the gradients of whichever outputs were used (an unused output's gradient is undefined and
//    costs nothing). The backward is not itself differentiable (no double backward).
//  - CPU threads: token_options::threads, 0 = at::get_num_threads() (so torch.set_num_threads and
//    at::set_num_threads apply). Results are bit-identical for every thread count.
//  - CUDA tensors go to rspo::kernels::cuda when RSPO_TORCH_CUDA is defined (CMake's
//    RSPO_TORCH_CUDA is ON when libtorch has CUDA and nvcc is found). libtorch's headers never pass
//    through nvcc (libtorch 1.13's do not compile there as C++20): the kernels are instantiated
//    by ONE .cu file of the program, compiled by nvcc, that holds exactly
//        #define RSPO_TORCH_CUDA_IMPLEMENTATION
//        #include <rspo/adapters/torch.hpp>
//    (which then includes no torch header and defines the rspo::adapters::torch::cuda_bridge
//    functions), while every C++ file that uses the adapter defines RSPO_TORCH_CUDA. The kernels
//    run on the current torch stream of the logits' device; each call synchronizes that stream
//    once, to turn the kernels' status into an exception. Without RSPO_TORCH_CUDA a CUDA tensor is
//    a tensor_error.
//
// Errors. Bad arguments are never reported as c10::Error: whatever this adapter or the library
// rejects is a typed rspo error, all derived from std::invalid_argument:
//  - tensor_error (an rspo::argument_error): a tensor of the wrong dtype, device, rank or layout,
//    or a required tensor that is undefined;
//  - rspo::shape_error: sizes that do not match (ids has 5 rows, logits 4; reference has V = 7);
//  - rspo::index_error: ids outside [0, V) (the kernels' check, unless checked = false);
//  - rspo::domain_error: bad values (NaN or +inf logits, an all -inf row, a -inf target, masks that
//    differ under a KL, temperature <= 0, win rates outside [0, 1], log-probabilities > 0, ...).
// Messages name the function, the argument and the value ("rspo::adapters::torch::token_logprobs:
// logits is Double [4, 10] on cpu; it must be float32 or bfloat16"; the kernels' own: "...: ids[2]
// = 10 is outside [0, 10)"). The CUDA path maps the kernels' status to the same types (a CUDA
// runtime failure is a std::runtime_error). An error inside backward reaches the caller of
// backward() / torch::autograd::grad() unchanged. (libtorch's own failures, such as running out of
// memory, stay c10::Error.)
//
// Losses (log-probabilities of whole sequences, [K] float32 or float64 on any device): rspo_loss
// (SPPO, RSPO and MMD, i.e. rspo_algorithm<R>) and inpo_loss return a 0-dim tensor of
// log_pi_theta's dtype and device; backward multiplies the library's ∂L/∂log π_θ (computed in
// double with the value) by the upstream gradient. The inputs are copied to the CPU in double (a
// synchronization for CUDA tensors: K numbers). log_pi_t, log_mu and win_rate get no gradient.
//
// Oracles: estimate_win_rates([B, K, K] or [K, K] pairwise preferences) -> [B, K] or [K] P̂ in the
// input's dtype and device; select_best_worst and draw_ordered_pairs give int64 index tensors. They
// run the library's scalar functions row by row (in double, on the CPU) and are not differentiable;
// an error names the prompt ("pairwise[3]: ..."). A float32 matrix can satisfy M + Mᵀ = 1 only to
// float32 round-off, not to the library's 1e-9: it is checked to 1e-6 and then projected onto
// M + Mᵀ = 1 as (M + 1 − Mᵀ)/2.
//
// Sequences: sequence_sums(per_token [B, T], offsets, lengths) -> [B] (differentiable) and
// response_row_mask(T, offsets, lengths) -> [B, T] bool, rspo::kernels::sequence_sums on tensors.

#include <rspo/core/error.hpp>
#include <rspo/kernels/types.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

// ---------------------------------------------------------------------------------------------
// The CUDA bridge: plain C++ declarations between the adapter (a host compiler, libtorch) and the
// CUDA kernels (nvcc, no libtorch). The status is the kernels' cuda::status without CUDA types.
// ---------------------------------------------------------------------------------------------
#if defined(RSPO_TORCH_CUDA) || defined(RSPO_TORCH_CUDA_IMPLEMENTATION)
namespace rspo::adapters::torch::cuda_bridge {

struct status {
    int code = 0;          ///< rspo::kernels::cuda::errc; 0 = ok
    int cuda_error = 0;    ///< the cudaError_t, for code = errc::cuda_error
    std::string argument;  ///< the offending input, as the CPU backends name it
    std::string message;   ///< "<function>: <what>", the CPU backends' text
};
/// errc values the adapter tells apart.
inline constexpr int ok = 0, cuda_error = 1, bad_id = 2;

// `stream` is a cudaStream_t. Every pointer in the views is a device pointer.
status forward(const kernels::token_inputs<float>&, const kernels::token_values&, const kernels::kernel_options&, void* stream);
status forward(const kernels::token_inputs<kernels::bf16>&, const kernels::token_values&, const kernels::kernel_options&,
               void* stream);
status backward(const kernels::token_inputs<float>&, const kernels::token_grads&, kernels::gradient_view<float>,
                const kernels::kernel_options&, void* stream);
status backward(const kernels::token_inputs<kernels::bf16>&, const kernels::token_grads&,
                kernels::gradient_view<kernels::bf16>, const kernels::kernel_options&, void* stream);

}  // namespace rspo::adapters::torch::cuda_bridge
#endif

#if defined(RSPO_TORCH_CUDA_IMPLEMENTATION)
// The one nvcc-compiled file: the bridge's definitions, and nothing of libtorch.
#if !defined(__CUDACC__)
#error "RSPO_TORCH_CUDA_IMPLEMENTATION: define it in one .cu file compiled by nvcc"
#endif
#include <rspo/kernels/cuda/token_reductions.cuh>

namespace rspo::adapters::torch::cuda_bridge {
static_assert(static_cast<int>(kernels::cuda::errc::ok) == ok && static_cast<int>(kernels::cuda::errc::cuda_error) == cuda_error &&
              static_cast<int>(kernels::cuda::errc::bad_id) == bad_id);
namespace detail {
inline status convert(const kernels::cuda::status& s) {
    return {static_cast<int>(s.code), static_cast<int>(s.cuda_error), s.argument, s.message};
}
}  // namespace detail
status forward(const kernels::token_inputs<float>& in, const kernels::token_values& out,
               const kernels::kernel_options& options, void* stream) {
    return detail::convert(kernels::cuda::forward(in, out, options, static_cast<cudaStream_t>(stream)));
}
status forward(const kernels::token_inputs<kernels::bf16>& in, const kernels::token_values& out,
               const kernels::kernel_options& options, void* stream) {
    return detail::convert(kernels::cuda::forward(in, out, options, static_cast<cudaStream_t>(stream)));
}
status backward(const kernels::token_inputs<float>& in, const kernels::token_grads& grads,
                kernels::gradient_view<float> dz, const kernels::kernel_options& options, void* stream) {
    return detail::convert(kernels::cuda::backward(in, grads, dz, options, static_cast<cudaStream_t>(stream)));
}
status backward(const kernels::token_inputs<kernels::bf16>& in, const kernels::token_grads& grads,
                kernels::gradient_view<kernels::bf16> dz, const kernels::kernel_options& options, void* stream) {
    return detail::convert(kernels::cuda::backward(in, grads, dz, options, static_cast<cudaStream_t>(stream)));
}
}  // namespace rspo::adapters::torch::cuda_bridge

#else  // the adapter itself

#include <rspo/algorithms/inpo.hpp>
#include <rspo/algorithms/rspo.hpp>
#include <rspo/core/random.hpp>
#include <rspo/kernels/sequence_sums.hpp>
#include <rspo/kernels/simd/token_reductions.hpp>
#include <rspo/oracles/win_rate_estimate.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#if defined(RSPO_TORCH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// Note: inside this namespace `torch` names the adapter, so libtorch is spelled ::torch.
namespace rspo::adapters::torch {

/// A tensor of the wrong dtype, device, rank or layout (or undefined where one is required).
class tensor_error : public argument_error {
public:
    using argument_error::argument_error;
};

/// Options of the token functions (designated initializers: {.temperature = 0.7, .row_mask = m}).
struct token_options {
    /// T > 0: both the θ-logits and the reference are divided by it; gradients are w.r.t. the raw
    /// logits.
    double temperature = 1.0;
    /// Optional [N] bool or uint8 on the logits' device: rows with 0 (prompt positions, padding)
    /// get value 0 and a zero gradient row, and are not read (their ids may be anything).
    at::Tensor row_mask = {};
    /// CPU worker threads; 0 = at::get_num_threads(). Ignored for CUDA tensors.
    unsigned threads = 0;
    /// false skips the kernels' O(N) checks of ids, mask and upstream gradients (the O(1) checks of
    /// dtype, device, shape and temperature always run). Bad values found in the data (NaN
    /// logits, ...) are reported either way.
    bool checked = true;
};

/// The fused pass's outputs: each [N] float32.
struct token_term_tensors {
    at::Tensor logprob;
    at::Tensor reverse_kl;
    at::Tensor forward_kl;
};

/// Which values a token function computes (bit flags).
enum token_term : unsigned { logprob_term = 1u, reverse_kl_term = 2u, forward_kl_term = 4u };

namespace detail {

inline std::string describe(const at::Tensor& t) {
    std::string s = std::string(c10::toString(t.scalar_type())) + " [";
    for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
    return s + "] on " + t.device().str();
}

inline void require_defined(const char* fn, const char* name, const at::Tensor& t) {
    if (!t.defined()) throw tensor_error(fn, name, std::string(name) + " is an undefined tensor");
    if (t.layout() != at::kStrided)
        throw tensor_error(fn, name, std::string(name) + " (" + describe(t) + ") must be a dense (strided) tensor");
}

inline void require_dim(const char* fn, const char* name, const at::Tensor& t, std::int64_t dim,
                        const char* shape) {
    if (t.dim() != dim)
        throw tensor_error(fn, name, std::string(name) + " is " + describe(t) + "; it must be " + shape);
}

inline void require_same_device(const char* fn, const char* name, const at::Tensor& t,
                                const at::Tensor& first, const char* first_name) {
    if (t.device() != first.device())
        throw tensor_error(fn, name, std::string(name) + " is on " + t.device().str() + " but " + first_name +
                                         " is on " + first.device().str());
}

inline void require_size(const char* fn, const char* name, std::int64_t size, std::int64_t expected,
                         const char* expected_from) {
    if (size != expected)
        throw shape_error(fn, name, std::string(name) + " has " + std::to_string(size) + " rows but " +
                                        expected_from + " has " + std::to_string(expected));
}

/// float32 or float64 (the losses' and oracles' inputs).
inline void require_floating(const char* fn, const char* name, const at::Tensor& t) {
    if (t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble)
        throw tensor_error(fn, name, std::string(name) + " is " + describe(t) + "; it must be float32 or float64");
}

inline bool supported_device(const at::Tensor& t) {
#if defined(RSPO_TORCH_CUDA)
    return t.device().is_cpu() || t.device().is_cuda();
#else
    return t.device().is_cpu();
#endif
}

inline void require_supported_device(const char* fn, const char* name, const at::Tensor& t) {
    if (supported_device(t)) return;
#if defined(RSPO_TORCH_CUDA)
    throw tensor_error(fn, name, std::string(name) + " is on " + t.device().str() + "; the kernels run on cpu or cuda");
#else
    throw tensor_error(fn, name,
                       std::string(name) + " is on " + t.device().str() +
                           "; this build runs the kernels on the cpu only (the CUDA path needs "
                           "RSPO_TORCH_CUDA, see rspo/adapters/torch.hpp)");
#endif
}

/// An [N, V] logits tensor's geometry as the kernels see it.
struct matrix_layout {
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::size_t row_stride = 0;
};

inline matrix_layout logits_layout(const char* fn, const char* name, const at::Tensor& t) {
    require_defined(fn, name, t);
    require_dim(fn, name, t, 2, "[N, V]");
    if (t.scalar_type() != at::kFloat && t.scalar_type() != at::kBFloat16)
        throw tensor_error(fn, name, std::string(name) + " is " + describe(t) + "; it must be float32 or bfloat16");
    require_supported_device(fn, name, t);
    matrix_layout m{static_cast<std::size_t>(t.size(0)), static_cast<std::size_t>(t.size(1)),
                    static_cast<std::size_t>(t.stride(0))};
    const std::string strides = "(" + std::to_string(t.stride(0)) + ", " + std::to_string(t.stride(1)) + ")";
    if (m.cols > 1 && t.stride(1) != 1)
        throw tensor_error(fn, name,
                           std::string(name) + " (" + describe(t) + ") has strides " + strides +
                               ": its last dimension must be contiguous (stride 1); call .contiguous()");
    if (m.rows <= 1) {
        m.row_stride = std::max(m.row_stride, m.cols);  // a single row's stride is never used
    } else if (m.row_stride < m.cols) {
        throw tensor_error(fn, name,
                           std::string(name) + " (" + describe(t) + ") has strides " + strides +
                               ": its rows overlap (stride(0) < V, e.g. an expanded tensor); call .contiguous()");
    }
    return m;
}

/// What a token call reads, checked and in the kernels' form (ids and mask contiguous).
struct token_call {
    matrix_layout logits;
    at::Tensor ids;       ///< int64 [N] contiguous, or undefined
    at::Tensor row_mask;  ///< uint8 [N] contiguous, or undefined
};

inline token_call prepare_tokens(const char* fn, const at::Tensor& logits, const at::Tensor* reference,
                                 const at::Tensor* ids, const token_options& options) {
    token_call call;
    call.logits = logits_layout(fn, "logits", logits);
    const auto rows = static_cast<std::int64_t>(call.logits.rows);
    if (reference) {
        const matrix_layout r = logits_layout(fn, "reference", *reference);
        require_same_device(fn, "reference", *reference, logits, "logits");
        if (reference->scalar_type() != logits.scalar_type())
            throw tensor_error(fn, "reference",
                               "reference is " + describe(*reference) + " but logits is " + describe(logits) +
                                   "; they must have the same dtype");
        require_size(fn, "reference", static_cast<std::int64_t>(r.rows), rows, "logits");
        if (r.cols != call.logits.cols)
            throw shape_error(fn, "reference",
                              "reference has V = " + std::to_string(r.cols) + " columns but logits has V = " +
                                  std::to_string(call.logits.cols));
    }
    if (ids) {
        require_defined(fn, "ids", *ids);
        require_dim(fn, "ids", *ids, 1, "[N]");
        if (ids->scalar_type() != at::kLong)
            throw tensor_error(fn, "ids", "ids is " + describe(*ids) + "; it must be int64 (torch.long)");
        require_same_device(fn, "ids", *ids, logits, "logits");
        require_size(fn, "ids", ids->size(0), rows, "logits");
        call.ids = ids->contiguous();
    }
    if (options.row_mask.defined()) {
        const at::Tensor& m = options.row_mask;
        require_dim(fn, "options.row_mask", m, 1, "[N]");
        if (m.scalar_type() != at::kBool && m.scalar_type() != at::kByte)
            throw tensor_error(fn, "options.row_mask",
                               "options.row_mask is " + describe(m) + "; it must be bool or uint8");
        require_same_device(fn, "options.row_mask", m, logits, "logits");
        require_size(fn, "options.row_mask", m.size(0), rows, "logits");
        call.row_mask = m.to(at::kByte).contiguous();
    }
    check_positive(fn, "options.temperature", options.temperature);
    if (!(static_cast<float>(options.temperature) > 0.0f))  // it reaches the kernels as a float
        throw domain_error(fn, "options.temperature",
                           "options.temperature = " + rspo::detail::format_value(options.temperature) +
                               " is 0 in float32");
    return call;
}

template <kernels::logit_type T>
const T* elements(const at::Tensor& t) {
    if constexpr (std::is_same_v<T, float>) {
        return t.data_ptr<float>();
    } else {
        // Both are the upper 16 bits of a binary32 (c10::BFloat16::x, kernels::bf16::bits); the
        // kernels read them through this pointer as 16-bit patterns.
        static_assert(sizeof(at::BFloat16) == sizeof(kernels::bf16), "bf16 storage is 16 bits");
        return reinterpret_cast<const kernels::bf16*>(t.data_ptr<at::BFloat16>());
    }
}

template <kernels::logit_type T>
T* mutable_elements(at::Tensor& t) {
    return const_cast<T*>(elements<T>(t));
}

inline std::span<float> floats(at::Tensor& t) {
    return t.defined() ? std::span<float>(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()))
                       : std::span<float>{};
}
inline std::span<const float> const_floats(const at::Tensor& t) {
    return t.defined() ? std::span<const float>(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()))
                       : std::span<const float>{};
}

template <kernels::logit_type T>
kernels::token_inputs<T> inputs_of(const token_call& call, const at::Tensor& logits,
                                   const at::Tensor& reference) {
    const matrix_layout& m = call.logits;
    kernels::token_inputs<T> in;
    in.logits = {elements<T>(logits), m.rows, m.cols, m.row_stride};
    if (reference.defined())
        in.reference = {elements<T>(reference), m.rows, m.cols,
                        m.rows <= 1 ? std::max<std::size_t>(static_cast<std::size_t>(reference.stride(0)), m.cols)
                                    : static_cast<std::size_t>(reference.stride(0))};
    if (call.ids.defined())
        in.ids = {call.ids.data_ptr<std::int64_t>(), static_cast<std::size_t>(call.ids.numel())};
    return in;
}

inline kernels::kernel_options kernel_options_of(const token_call& call, const token_options& options) {
    kernels::kernel_options k;
    k.temperature = static_cast<float>(options.temperature);
    if (call.row_mask.defined())
        k.row_mask = {call.row_mask.data_ptr<std::uint8_t>(), static_cast<std::size_t>(call.row_mask.numel())};
    k.threads = options.threads != 0 ? options.threads : static_cast<unsigned>(std::max(1, at::get_num_threads()));
    k.checked = options.checked;
    return k;
}

/// For a fresh CPU buffer of many megabytes that is about to be written in full (the gradient of
/// the logits, which autograd allocates anew every step): asks Linux for transparent huge pages, so
/// that first touching it faults once per 2 MiB instead of once per 4 KiB. Page faults otherwise
/// cost several times the kernel's own time (docs/performance.md, "libtorch adapter"). A hint:
/// nothing changes where huge pages are off or unavailable.
inline void advise_huge_pages(void* data, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::uintptr_t huge = std::uintptr_t{1} << 21;
    if (bytes < 4 * huge) return;
    const auto first = reinterpret_cast<std::uintptr_t>(data);
    const std::uintptr_t begin = (first + huge - 1) & ~(huge - 1), end = (first + bytes) & ~(huge - 1);
    if (end > begin) static_cast<void>(::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE));
#else
    static_cast<void>(data);
    static_cast<void>(bytes);
#endif
}

#if defined(RSPO_TORCH_CUDA)
/// The CUDA kernels' status as the CPU backends' typed exception.
inline void throw_if_failed(const cuda_bridge::status& s) {
    if (s.code == cuda_bridge::ok) return;
    // message is "<function>: <what>"; split it back so that what() reads the same as on the CPU.
    const auto colon = s.message.find(": ");
    const std::string fn = colon == std::string::npos ? std::string("rspo::kernels::cuda") : s.message.substr(0, colon);
    const std::string what = colon == std::string::npos ? s.message : s.message.substr(colon + 2);
    if (s.code == cuda_bridge::cuda_error) throw std::runtime_error(s.message);
    if (s.code == cuda_bridge::bad_id) throw index_error(fn, s.argument, what);
    throw domain_error(fn, s.argument, what);
}

inline void* current_stream(const at::Tensor& logits) {
    return c10::cuda::getCurrentCUDAStream(logits.device().index()).stream();
}

template <kernels::logit_type T>
void forward_cuda(const kernels::token_inputs<T>& in, const kernels::token_values& out,
                  const kernels::kernel_options& options, const at::Tensor& logits) {
    const c10::cuda::CUDAGuard guard(logits.device());
    throw_if_failed(cuda_bridge::forward(in, out, options, current_stream(logits)));
}

template <kernels::logit_type T>
void backward_cuda(const kernels::token_inputs<T>& in, const kernels::token_grads& grads,
                   kernels::gradient_view<T> dz, const kernels::kernel_options& options, const at::Tensor& logits) {
    const c10::cuda::CUDAGuard guard(logits.device());
    throw_if_failed(cuda_bridge::backward(in, grads, dz, options, current_stream(logits)));
}
#endif

template <kernels::logit_type T>
void run_forward(const token_call& call, const token_options& options, const at::Tensor& logits,
                 const at::Tensor& reference, kernels::token_values out) {
    const auto in = inputs_of<T>(call, logits, reference);
    const auto k = kernel_options_of(call, options);
#if defined(RSPO_TORCH_CUDA)
    if (logits.device().is_cuda()) return forward_cuda(in, out, k, logits);
#endif
    kernels::simd::forward(in, out, k);
}

template <kernels::logit_type T>
void run_backward(const token_call& call, const token_options& options, const at::Tensor& logits,
                  const at::Tensor& reference, const kernels::token_grads& grads, at::Tensor& dlogits) {
    const auto in = inputs_of<T>(call, logits, reference);
    const auto k = kernel_options_of(call, options);
    const kernels::gradient_view<T> dz{mutable_elements<T>(dlogits), call.logits.rows, call.logits.cols,
                                       call.logits.cols};
#if defined(RSPO_TORCH_CUDA)
    if (logits.device().is_cuda()) return backward_cuda(in, grads, dz, k, logits);
#endif
    kernels::simd::backward(in, grads, dz, k);
}

inline const char* token_function_name(unsigned terms) {
    switch (terms) {
        case logprob_term: return "rspo::adapters::torch::token_logprobs";
        case reverse_kl_term: return "rspo::adapters::torch::token_reverse_kl";
        case forward_kl_term: return "rspo::adapters::torch::token_forward_kl";
        default: return "rspo::adapters::torch::token_terms";
    }
}

}  // namespace detail

/// The token kernels as one autograd function. `terms` (token_term flags) says which values are
/// computed; the outputs are those values in the order log-prob, reverse KL, forward KL. Inputs:
/// logits (differentiable), reference (needed for the KLs; no gradient), ids (needed for the
/// log-prob). Prefer the functions below, which call it.
struct token_function : ::torch::autograd::Function<token_function> {
    static ::torch::autograd::variable_list forward(::torch::autograd::AutogradContext* ctx,
                                                    const at::Tensor& logits,
                                                    const c10::optional<at::Tensor>& reference,
                                                    const c10::optional<at::Tensor>& ids,
                                                    const token_options& options, unsigned terms) {
        const char* fn = detail::token_function_name(terms);
        const bool kl = (terms & (reverse_kl_term | forward_kl_term)) != 0;
        const bool lp = (terms & logprob_term) != 0;
        if (kl && !reference) throw tensor_error(fn, "reference", "a KL needs the reference logits");
        if (lp && !ids) throw tensor_error(fn, "ids", "a log-probability needs the ids");
        const at::Tensor ref = kl ? *reference : at::Tensor();
        const detail::token_call call =
            detail::prepare_tokens(fn, logits, kl ? &ref : nullptr, lp ? &*ids : nullptr, options);

        const auto n = static_cast<std::int64_t>(call.logits.rows);
        const auto values = at::TensorOptions().dtype(at::kFloat).device(logits.device());
        ::torch::autograd::variable_list outputs;
        at::Tensor out[3];
        for (unsigned i = 0; i < 3; ++i)
            if (terms & (1u << i)) outputs.push_back(out[i] = at::empty({n}, values));
        const kernels::token_values views{detail::floats(out[0]), detail::floats(out[1]), detail::floats(out[2])};
        if (logits.scalar_type() == at::kFloat)
            detail::run_forward<float>(call, options, logits, ref, views);
        else
            detail::run_forward<kernels::bf16>(call, options, logits, ref, views);

        ctx->set_materialize_grads(false);  // an unused output's gradient stays undefined
        ctx->save_for_backward({logits, ref, call.ids});
        ctx->saved_data["row_mask"] = call.row_mask;
        ctx->saved_data["temperature"] = options.temperature;
        ctx->saved_data["threads"] = static_cast<std::int64_t>(options.threads);
        ctx->saved_data["checked"] = options.checked;
        ctx->saved_data["terms"] = static_cast<std::int64_t>(terms);
        return outputs;
    }

    static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                     ::torch::autograd::variable_list grads) {
        ::torch::autograd::variable_list result(5);
        if (!ctx->needs_input_grad(0)) return result;
        const auto saved = ctx->get_saved_variables();
        const at::Tensor& logits = saved[0];
        const at::Tensor& ref = saved[1];
        token_options options;
        options.temperature = ctx->saved_data["temperature"].toDouble();
        options.threads = static_cast<unsigned>(ctx->saved_data["threads"].toInt());
        options.checked = ctx->saved_data["checked"].toBool();
        const auto terms = static_cast<unsigned>(ctx->saved_data["terms"].toInt());

        detail::token_call call;
        call.logits = detail::logits_layout("rspo::adapters::torch::token_function::backward", "logits", logits);
        call.ids = saved[2];
        const at::IValue& mask = ctx->saved_data["row_mask"];
        if (mask.isTensor()) call.row_mask = mask.toTensor();

        // grads[j] belongs to the j-th requested term; undefined = that output was not used.
        at::Tensor g[3];
        bool any = false;
        for (unsigned i = 0, j = 0; i < 3; ++i) {
            if (!(terms & (1u << i))) continue;
            if (j < grads.size() && grads[j].defined()) {
                g[i] = grads[j].to(logits.device(), at::kFloat).contiguous();
                any = true;
            }
            ++j;
        }
        if (!any) return result;  // no output reached the loss: a zero gradient
        const kernels::token_grads views{detail::const_floats(g[0]), detail::const_floats(g[1]),
                                         detail::const_floats(g[2])};
        at::Tensor dlogits = at::empty({logits.size(0), logits.size(1)}, logits.options());
        if (dlogits.device().is_cpu()) detail::advise_huge_pages(dlogits.data_ptr(), dlogits.nbytes());
        if (logits.scalar_type() == at::kFloat)
            detail::run_backward<float>(call, options, logits, ref, views, dlogits);
        else
            detail::run_backward<kernels::bf16>(call, options, logits, ref, views, dlogits);
        result[0] = dlogits;
        return result;
    }
};

/// log softmax(logits / T)[n, ids[n]] for each row n: [N] float32, ≤ 0.
inline at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& ids, const token_options& options = {}) {
    detail::require_defined(detail::token_function_name(logprob_term), "logits", logits);
    return token_function::apply(logits, c10::optional<at::Tensor>(), c10::optional<at::Tensor>(ids), options,
                                 static_cast<unsigned>(logprob_term))[0];
}

/// KL(softmax(logits_n / T) ‖ softmax(reference_n / T)) for each row n: [N] float32, ≥ 0. The
/// reference gets no gradient.
inline at::Tensor token_reverse_kl(const at::Tensor& logits, const at::Tensor& reference,
                                   const token_options& options = {}) {
    detail::require_defined(detail::token_function_name(reverse_kl_term), "logits", logits);
    return token_function::apply(logits, c10::optional<at::Tensor>(reference), c10::optional<at::Tensor>(),
                                 options, static_cast<unsigned>(reverse_kl_term))[0];
}

/// KL(softmax(reference_n / T) ‖ softmax(logits_n / T)) for each row n: [N] float32, ≥ 0. The
/// reference gets no gradient.
inline at::Tensor token_forward_kl(const at::Tensor& logits, const at::Tensor& reference,
                                   const token_options& options = {}) {
    detail::require_defined(detail::token_function_name(forward_kl_term), "logits", logits);
    return token_function::apply(logits, c10::optional<at::Tensor>(reference), c10::optional<at::Tensor>(),
                                 options, static_cast<unsigned>(forward_kl_term))[0];
}

/// The log-prob and both KLs in one pass over the logits; one backward pass for whichever of them
/// the loss uses.
inline token_term_tensors token_terms(const at::Tensor& logits, const at::Tensor& reference, const at::Tensor& ids,
                                      const token_options& options = {}) {
    detail::require_defined("rspo::adapters::torch::token_terms", "logits", logits);
    auto out = token_function::apply(logits, c10::optional<at::Tensor>(reference), c10::optional<at::Tensor>(ids),
                                     options, static_cast<unsigned>(logprob_term | reverse_kl_term | forward_kl_term));
    return {out[0], out[1], out[2]};
}

// ---------------------------------------------------------------------------------------------
// Sequence sums
// ---------------------------------------------------------------------------------------------

namespace detail {
/// A 1-D int64 tensor as a CPU vector.
inline std::vector<std::int64_t> int64_vector(const char* fn, const char* name, const at::Tensor& t) {
    require_defined(fn, name, t);
    require_dim(fn, name, t, 1, "[B]");
    if (t.scalar_type() != at::kLong)
        throw tensor_error(fn, name, std::string(name) + " is " + describe(t) + "; it must be int64 (torch.long)");
    const at::Tensor c = t.to(at::kCPU).contiguous();
    const auto* p = c.data_ptr<std::int64_t>();
    return std::vector<std::int64_t>(p, p + c.numel());
}
}  // namespace detail

/// Per-sequence sums of per-token values over each sequence's response positions (prompt masked):
/// per_token [B, T] float32, offsets and lengths [B] int64 → [B] float32, accumulated in double.
/// Differentiable in per_token (the adjoint spreads each sequence's gradient over its response).
/// Computed on the CPU (a copy for CUDA tensors). A sequence with no response token is a
/// rspo::domain_error.
struct sequence_sums_function : ::torch::autograd::Function<sequence_sums_function> {
    static at::Tensor forward(::torch::autograd::AutogradContext* ctx, const at::Tensor& per_token,
                              const at::Tensor& offsets, const at::Tensor& lengths) {
        constexpr const char* fn = "rspo::adapters::torch::sequence_sums";
        detail::require_defined(fn, "per_token", per_token);
        detail::require_dim(fn, "per_token", per_token, 2, "[B, T]");
        if (per_token.scalar_type() != at::kFloat)
            throw tensor_error(fn, "per_token", "per_token is " + detail::describe(per_token) + "; it must be float32");
        const auto o = detail::int64_vector(fn, "offsets", offsets);
        const auto l = detail::int64_vector(fn, "lengths", lengths);
        detail::require_size(fn, "offsets", static_cast<std::int64_t>(o.size()), per_token.size(0), "per_token");
        const at::Tensor x = per_token.to(at::kCPU).contiguous();
        at::Tensor out = at::empty({per_token.size(0)}, x.options());
        kernels::sequence_sums(detail::const_floats(x), static_cast<std::size_t>(per_token.size(1)), o, l,
                               detail::floats(out));
        ctx->saved_data["offsets"] = offsets.to(at::kCPU).contiguous();
        ctx->saved_data["lengths"] = lengths.to(at::kCPU).contiguous();
        ctx->saved_data["seq_len"] = per_token.size(1);
        return out.to(per_token.device());
    }

    static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                     ::torch::autograd::variable_list grads) {
        const at::Tensor offsets = ctx->saved_data["offsets"].toTensor();
        const at::Tensor lengths = ctx->saved_data["lengths"].toTensor();
        const auto seq_len = ctx->saved_data["seq_len"].toInt();
        const at::Tensor g = grads[0].to(at::kCPU, at::kFloat).contiguous();
        at::Tensor dx = at::empty({offsets.size(0), seq_len}, g.options());
        const std::span<const std::int64_t> o(offsets.data_ptr<std::int64_t>(), static_cast<std::size_t>(offsets.numel()));
        const std::span<const std::int64_t> l(lengths.data_ptr<std::int64_t>(), static_cast<std::size_t>(lengths.numel()));
        kernels::sequence_sums_backward(detail::const_floats(g), static_cast<std::size_t>(seq_len), o, l,
                                        detail::floats(dx));
        return {dx.to(grads[0].device()), at::Tensor(), at::Tensor()};
    }
};

inline at::Tensor sequence_sums(const at::Tensor& per_token, const at::Tensor& offsets, const at::Tensor& lengths) {
    constexpr const char* fn = "rspo::adapters::torch::sequence_sums";
    detail::require_defined(fn, "per_token", per_token);
    detail::require_defined(fn, "offsets", offsets);
    detail::require_defined(fn, "lengths", lengths);
    return sequence_sums_function::apply(per_token, offsets, lengths);
}

/// [B, T] bool: true exactly on each sequence's response positions (flatten it for
/// token_options::row_mask). On offsets' device.
inline at::Tensor response_row_mask(std::int64_t seq_len, const at::Tensor& offsets, const at::Tensor& lengths) {
    constexpr const char* fn = "rspo::adapters::torch::response_row_mask";
    check_non_negative(fn, "seq_len", static_cast<double>(seq_len));
    const auto o = detail::int64_vector(fn, "offsets", offsets);
    const auto l = detail::int64_vector(fn, "lengths", lengths);
    at::Tensor mask = at::empty({static_cast<std::int64_t>(o.size()), seq_len}, at::TensorOptions().dtype(at::kByte));
    kernels::response_row_mask(static_cast<std::size_t>(seq_len), o, l,
                               {mask.data_ptr<std::uint8_t>(), static_cast<std::size_t>(mask.numel())});
    return mask.to(offsets.device(), at::kBool);
}

// ---------------------------------------------------------------------------------------------
// Sample losses
// ---------------------------------------------------------------------------------------------

/// The SPPO / RSPO loss's inputs (rspo::rspo_sample_batch as tensors): [K] float32 or float64.
struct rspo_loss_tensors {
    at::Tensor log_pi_theta = {};  ///< log π_θ(y_k): gets the gradient
    at::Tensor log_pi_t = {};      ///< log π_t(y_k)
    at::Tensor log_mu = {};        ///< log μ(y_k); may be undefined when τ = 0
    at::Tensor win_rate = {};      ///< P̂(y_k ≻ π_t) ∈ [0, 1]
    /// [M] log π_θ(y′_m), y′_m ∼ μ (forward_kl_direct only; undefined otherwise): gets the gradient.
    at::Tensor reference_log_pi_theta = {};
};

/// The INPO loss's inputs (rspo::inpo_pair_batch as tensors): [M] float32 or float64.
struct inpo_loss_tensors {
    at::Tensor winner_log_pi_theta = {};  ///< gets the gradient
    at::Tensor loser_log_pi_theta = {};   ///< gets the gradient
    at::Tensor winner_log_pi_t = {};
    at::Tensor loser_log_pi_t = {};
    at::Tensor winner_log_mu = {};
    at::Tensor loser_log_mu = {};
};

namespace detail {
/// A [K] float tensor copied to the CPU in double; undefined → empty (when `optional`).
inline at::Tensor doubles(const char* fn, const char* name, const at::Tensor& t, const at::Tensor& first,
                          bool optional = false) {
    if (optional && !t.defined()) return {};
    require_defined(fn, name, t);
    require_dim(fn, name, t, 1, "[K]");
    require_floating(fn, name, t);
    require_same_device(fn, name, t, first, "log_pi_theta");
    return t.detach().to(at::kCPU, at::kDouble).contiguous();
}

inline std::span<const double> span_of(const at::Tensor& t) {
    return t.defined() ? std::span<const double>(t.data_ptr<double>(), static_cast<std::size_t>(t.numel()))
                       : std::span<const double>{};
}

/// ∂L/∂x as a tensor shaped, typed and placed like x.
inline at::Tensor derivative_like(const std::vector<double>& d, const at::Tensor& x) {
    return at::tensor(at::ArrayRef<double>(d), at::TensorOptions().dtype(at::kDouble)).to(x.device(), x.scalar_type());
}

/// upstream (0-dim) · ∂L/∂x.
inline at::Tensor chain(const at::Tensor& upstream, const at::IValue& derivative) {
    if (!upstream.defined() || !derivative.isTensor()) return {};
    const at::Tensor d = derivative.toTensor();
    return (d * upstream.to(d.scalar_type())).to(d.scalar_type());
}
}  // namespace detail

/// rspo_algorithm<R>::loss as an autograd function of log_pi_theta and reference_log_pi_theta.
template <Regularizer R>
struct rspo_loss_function : ::torch::autograd::Function<rspo_loss_function<R>> {
    static at::Tensor forward(::torch::autograd::AutogradContext* ctx, const at::Tensor& log_pi_theta,
                              const c10::optional<at::Tensor>& reference_log_pi_theta,
                              const rspo_algorithm<R>& algorithm, const rspo_loss_tensors& batch) {
        constexpr const char* fn = "rspo::adapters::torch::rspo_loss";
        const at::Tensor ref = reference_log_pi_theta ? *reference_log_pi_theta : at::Tensor();
        const at::Tensor theta = detail::doubles(fn, "log_pi_theta", log_pi_theta, log_pi_theta);
        const at::Tensor t = detail::doubles(fn, "log_pi_t", batch.log_pi_t, log_pi_theta);
        const at::Tensor mu = detail::doubles(fn, "log_mu", batch.log_mu, log_pi_theta, true);
        const at::Tensor p = detail::doubles(fn, "win_rate", batch.win_rate, log_pi_theta);
        const at::Tensor r = detail::doubles(fn, "reference_log_pi_theta", ref, log_pi_theta, true);
        rspo_sample_batch b;
        b.log_pi_theta = detail::span_of(theta);
        b.log_pi_t = detail::span_of(t);
        b.log_mu = detail::span_of(mu);
        b.win_rate = detail::span_of(p);
        b.reference_log_pi_theta = detail::span_of(r);
        const sample_loss loss = algorithm.loss(b);
        ctx->saved_data["d_theta"] = detail::derivative_like(loss.d_log_pi_theta, log_pi_theta);
        if (ref.defined()) ctx->saved_data["d_reference"] = detail::derivative_like(loss.d_reference_log_pi_theta, ref);
        return at::scalar_tensor(loss.value, log_pi_theta.options().requires_grad(false));
    }

    static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                     ::torch::autograd::variable_list grads) {
        return {detail::chain(grads[0], ctx->saved_data["d_theta"]),
                detail::chain(grads[0], ctx->saved_data["d_reference"]), at::Tensor(), at::Tensor()};
    }
};

/// The SPPO / RSPO / MMD sample loss (docs/math §3) as a 0-dim tensor whose gradient w.r.t.
/// log_pi_theta (and reference_log_pi_theta) is the library's ∂L/∂log π_θ.
template <Regularizer R>
at::Tensor rspo_loss(const rspo_algorithm<R>& algorithm, const rspo_loss_tensors& batch) {
    const c10::optional<at::Tensor> ref =
        batch.reference_log_pi_theta.defined() ? c10::optional<at::Tensor>(batch.reference_log_pi_theta) : c10::nullopt;
    if (!batch.log_pi_theta.defined())
        throw tensor_error("rspo::adapters::torch::rspo_loss", "log_pi_theta", "log_pi_theta is an undefined tensor");
    return rspo_loss_function<R>::apply(batch.log_pi_theta, ref, algorithm, batch);
}

/// inpo::loss as an autograd function of the winners' and losers' log π_θ.
struct inpo_loss_function : ::torch::autograd::Function<inpo_loss_function> {
    static at::Tensor forward(::torch::autograd::AutogradContext* ctx, const at::Tensor& winner_log_pi_theta,
                              const at::Tensor& loser_log_pi_theta, const inpo& algorithm,
                              const inpo_loss_tensors& batch) {
        constexpr const char* fn = "rspo::adapters::torch::inpo_loss";
        const at::Tensor& first = winner_log_pi_theta;
        detail::require_defined(fn, "winner_log_pi_theta", first);
        const at::Tensor w = detail::doubles(fn, "winner_log_pi_theta", winner_log_pi_theta, first);
        const at::Tensor l = detail::doubles(fn, "loser_log_pi_theta", loser_log_pi_theta, first);
        const at::Tensor wt = detail::doubles(fn, "winner_log_pi_t", batch.winner_log_pi_t, first);
        const at::Tensor lt = detail::doubles(fn, "loser_log_pi_t", batch.loser_log_pi_t, first);
        const at::Tensor wm = detail::doubles(fn, "winner_log_mu", batch.winner_log_mu, first);
        const at::Tensor lm = detail::doubles(fn, "loser_log_mu", batch.loser_log_mu, first);
        inpo_pair_batch b;
        b.winner_log_pi_theta = detail::span_of(w);
        b.loser_log_pi_theta = detail::span_of(l);
        b.winner_log_pi_t = detail::span_of(wt);
        b.loser_log_pi_t = detail::span_of(lt);
        b.winner_log_mu = detail::span_of(wm);
        b.loser_log_mu = detail::span_of(lm);
        const pair_loss loss = algorithm.loss(b);
        ctx->saved_data["d_winner"] = detail::derivative_like(loss.d_winner_log_pi_theta, winner_log_pi_theta);
        ctx->saved_data["d_loser"] = detail::derivative_like(loss.d_loser_log_pi_theta, loser_log_pi_theta);
        return at::scalar_tensor(loss.value, winner_log_pi_theta.options().requires_grad(false));
    }

    static ::torch::autograd::variable_list backward(::torch::autograd::AutogradContext* ctx,
                                                     ::torch::autograd::variable_list grads) {
        return {detail::chain(grads[0], ctx->saved_data["d_winner"]),
                detail::chain(grads[0], ctx->saved_data["d_loser"]), at::Tensor(), at::Tensor()};
    }
};

/// The INPO pairwise square loss (docs/math §4) as a 0-dim tensor whose gradient w.r.t. the
/// winners' and losers' log π_θ is the library's.
inline at::Tensor inpo_loss(const inpo& algorithm, const inpo_loss_tensors& batch) {
    constexpr const char* fn = "rspo::adapters::torch::inpo_loss";
    detail::require_defined(fn, "winner_log_pi_theta", batch.winner_log_pi_theta);
    detail::require_defined(fn, "loser_log_pi_theta", batch.loser_log_pi_theta);
    return inpo_loss_function::apply(batch.winner_log_pi_theta, batch.loser_log_pi_theta, algorithm, batch);
}

// ---------------------------------------------------------------------------------------------
// Oracles: win-rate estimates and pair selection
// ---------------------------------------------------------------------------------------------

/// Per-prompt (winner, loser) indices, int64, on the input's device.
struct response_pair_tensors {
    at::Tensor winner;
    at::Tensor loser;
};

namespace detail {
/// Runs f() for batch entry b, re-throwing the library's error with the batch index in front.
template <class F>
decltype(auto) for_entry(const char* fn, const char* name, std::int64_t b, F&& f) {
    const auto where = [&](const std::exception& e) {
        return std::string(name) + "[" + std::to_string(b) + "]: " + e.what();
    };
    try {
        return std::forward<F>(f)();
    } catch (const shape_error& e) {
        throw shape_error(fn, name, where(e));
    } catch (const index_error& e) {
        throw index_error(fn, name, where(e));
    } catch (const domain_error& e) {
        throw domain_error(fn, name, where(e));
    }
}

/// |M_ij + M_ji − 1| allowed in a float32 pairwise matrix: a few float32 round-offs of 1 (the
/// library's own tolerance, validation_tolerance::complementary = 1e-9, is for double input).
inline constexpr double float32_complementary_tolerance = 1e-6;

/// [B, K, K] (or [K, K], as B = 1) float32/float64 → CPU double, contiguous, [B, K, K]. float32
/// input, whose M and 1 − Mᵀ differ by its round-off, is checked to that round-off and then
/// projected onto M + Mᵀ = 1, (M + 1 − Mᵀ)/2, so that the library's double check applies.
inline at::Tensor pairwise_batch(const char* fn, const at::Tensor& pairwise) {
    require_defined(fn, "pairwise", pairwise);
    if (pairwise.dim() != 2 && pairwise.dim() != 3)
        throw tensor_error(fn, "pairwise", "pairwise is " + describe(pairwise) + "; it must be [B, K, K] or [K, K]");
    require_floating(fn, "pairwise", pairwise);
    at::Tensor p = pairwise.detach().to(at::kCPU, at::kDouble).contiguous();
    if (pairwise.dim() == 2) p = p.unsqueeze(0);
    if (pairwise.scalar_type() == at::kFloat && p.size(1) == p.size(2)) {
        const at::Tensor gap = (p + p.transpose(1, 2) - 1.0).abs();
        const at::Tensor bad = gap.gt(float32_complementary_tolerance).logical_or(gap.isnan());
        if (bad.any().item<bool>()) {
            const at::Tensor first = bad.nonzero()[0];
            const std::int64_t b = first[0].item<std::int64_t>(), i = first[1].item<std::int64_t>(),
                               j = first[2].item<std::int64_t>();
            const auto at_ = [](std::int64_t r, std::int64_t c) {
                return "pairwise(" + std::to_string(r) + ", " + std::to_string(c) + ")";
            };
            throw domain_error(fn, "pairwise",
                               "pairwise[" + std::to_string(b) + "]: " + at_(i, j) + " + " + at_(j, i) + " = " +
                                   rspo::detail::format_value(p[b][i][j].item<double>() + p[b][j][i].item<double>()) +
                                   ", but preferences must satisfy P + Pᵀ = 1 (within 1e-6 for float32)");
        }
        p = ((p + (1.0 - p.transpose(1, 2))) * 0.5).contiguous();
    }
    return p;
}

using row_major_matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline Eigen::MatrixXd matrix_of(const at::Tensor& p, std::int64_t b) {
    const auto k = p.size(1), k2 = p.size(2);
    return Eigen::Map<const row_major_matrix>(p.data_ptr<double>() + b * k * k2, k, k2);
}
}  // namespace detail

/// P̂(y_i ≻ π_t) for each prompt b from its K×K pairwise matrix M_ij = P(y_i ≻ y_j)
/// (rspo::estimate_win_rates row by row): [B, K, K] → [B, K], [K, K] → [K], in the input's
/// dtype and device. Each matrix is validated (entries in [0, 1], M + Mᵀ = 1); an error names
/// the prompt: "pairwise[3]: ...".
inline at::Tensor estimate_win_rates(const at::Tensor& pairwise,
                                     win_rate_estimator estimator = win_rate_estimator::published) {
    constexpr const char* fn = "rspo::adapters::torch::estimate_win_rates";
    const at::Tensor p = detail::pairwise_batch(fn, pairwise);
    const std::int64_t batch = p.size(0), k = p.size(1);
    at::Tensor out = at::empty({batch, k}, at::TensorOptions().dtype(at::kDouble));
    for (std::int64_t b = 0; b < batch; ++b) {
        const Eigen::VectorXd w =
            detail::for_entry(fn, "pairwise", b, [&] { return rspo::estimate_win_rates(detail::matrix_of(p, b), estimator); });
        std::copy(w.data(), w.data() + w.size(), out.data_ptr<double>() + b * k);
    }
    if (pairwise.dim() == 2) out = out.squeeze(0);
    return out.to(pairwise.device(), pairwise.scalar_type());
}

/// The published pipeline's pair per prompt (rspo::select_best_worst row by row): argmax and
/// argmin of P̂, first index on ties, (0, K−1) if all are equal. [B, K] → winner, loser [B];
/// [K] → 0-dim.
inline response_pair_tensors select_best_worst(const at::Tensor& win_rates) {
    constexpr const char* fn = "rspo::adapters::torch::select_best_worst";
    detail::require_defined(fn, "win_rates", win_rates);
    if (win_rates.dim() != 1 && win_rates.dim() != 2)
        throw tensor_error(fn, "win_rates", "win_rates is " + detail::describe(win_rates) + "; it must be [B, K] or [K]");
    detail::require_floating(fn, "win_rates", win_rates);
    at::Tensor w = win_rates.detach().to(at::kCPU, at::kDouble).contiguous();
    if (w.dim() == 1) w = w.unsqueeze(0);
    const std::int64_t batch = w.size(0), k = w.size(1);
    at::Tensor winner = at::empty({batch}, at::TensorOptions().dtype(at::kLong));
    at::Tensor loser = at::empty({batch}, at::TensorOptions().dtype(at::kLong));
    for (std::int64_t b = 0; b < batch; ++b) {
        const Eigen::VectorXd row = Eigen::Map<const Eigen::VectorXd>(w.data_ptr<double>() + b * k, k);
        const response_pair pair = detail::for_entry(fn, "win_rates", b, [&] { return rspo::select_best_worst(row); });
        winner.data_ptr<std::int64_t>()[b] = static_cast<std::int64_t>(pair.winner);
        loser.data_ptr<std::int64_t>()[b] = static_cast<std::int64_t>(pair.loser);
    }
    if (win_rates.dim() == 1) {
        winner = winner.squeeze(0);
        loser = loser.squeeze(0);
    }
    return {winner.to(win_rates.device()), loser.to(win_rates.device())};
}

/// INPO's pairs per prompt (rspo::draw_ordered_pairs row by row, prompts in order from one
/// engine): samples (0, 1), (2, 3), … ordered by one draw from the preference each.
/// [B, K, K] → winner, loser [B, K/2]; [K, K] → [K/2].
inline response_pair_tensors draw_ordered_pairs(const at::Tensor& pairwise, random_engine& rng) {
    constexpr const char* fn = "rspo::adapters::torch::draw_ordered_pairs";
    const at::Tensor p = detail::pairwise_batch(fn, pairwise);
    const std::int64_t batch = p.size(0), half = p.size(1) / 2;
    at::Tensor winner = at::empty({batch, half}, at::TensorOptions().dtype(at::kLong));
    at::Tensor loser = at::empty({batch, half}, at::TensorOptions().dtype(at::kLong));
    for (std::int64_t b = 0; b < batch; ++b) {
        const std::vector<response_pair> pairs =
            detail::for_entry(fn, "pairwise", b, [&] { return rspo::draw_ordered_pairs(detail::matrix_of(p, b), rng); });
        for (std::int64_t i = 0; i < half; ++i) {
            winner.data_ptr<std::int64_t>()[b * half + i] = static_cast<std::int64_t>(pairs[static_cast<std::size_t>(i)].winner);
            loser.data_ptr<std::int64_t>()[b * half + i] = static_cast<std::int64_t>(pairs[static_cast<std::size_t>(i)].loser);
        }
    }
    if (pairwise.dim() == 2) {
        winner = winner.squeeze(0);
        loser = loser.squeeze(0);
    }
    return {winner.to(pairwise.device()), loser.to(pairwise.device())};
}

}  // namespace rspo::adapters::torch

#endif  // RSPO_TORCH_CUDA_IMPLEMENTATION
