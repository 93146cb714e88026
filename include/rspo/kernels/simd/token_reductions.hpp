#pragma once
// The SIMD backend: per-token log-probs and exact KL divergences over the vocabulary, forward and
// backward, fp32 or bf16 logits, fp32 accumulation (promoted to double every 64 vectors), multi-
// threaded over rows with results identical for every thread count.
//
// Instruction sets. Header-only use compiles the kernels for the including translation unit's own
// target (xsimd::default_arch: SSE2 on a plain x86-64 build, AVX-512 with -march=native on such a
// CPU). For runtime dispatch across AVX-512, AVX2+FMA and SSE2 in one binary, link the CMake
// target rspo::simd_dispatch (or call rspo_add_simd_dispatch(<target>) from the installed package):
// it compiles one translation unit per instruction set and defines RSPO_SIMD_DISPATCH, under which
// this header declares those instantiations extern and picks one with xsimd::dispatch.

#include <rspo/kernels/simd/row_kernels.hpp>
#include <rspo/kernels/types.hpp>
#include <rspo/kernels/validation.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(RSPO_SIMD_DISPATCH)
namespace rspo::kernels::simd::detail {
extern template std::size_t run_rows<xsimd::avx512bw>(const row_job&, std::size_t, std::size_t, row_scratch);
extern template std::size_t run_rows<xsimd::fma3<xsimd::avx2>>(const row_job&, std::size_t, std::size_t, row_scratch);
extern template std::size_t run_rows<xsimd::sse2>(const row_job&, std::size_t, std::size_t, row_scratch);
}  // namespace rspo::kernels::simd::detail
#endif

namespace rspo::kernels::simd {

namespace detail {

/// A compiled row kernel for one instruction set.
using rows_function = std::size_t (*)(const row_job&, std::size_t, std::size_t, row_scratch);

/// The instruction set the kernels run with: chosen at run time (once) under RSPO_SIMD_DISPATCH,
/// else the translation unit's own.
/// xsimd::dispatch's functor: the row kernel compiled for the chosen architecture.
struct pick_rows {
    template <class Arch>
    rows_function operator()(Arch) const {
        return &run_rows<Arch>;
    }
};

inline rows_function dispatched_rows() {
#if defined(RSPO_SIMD_DISPATCH)
    using archs = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;
    static const rows_function chosen = xsimd::dispatch<archs>(pick_rows{})();
    return chosen;
#else
    return &run_rows<xsimd::default_arch>;
#endif
}

/// Splits the rows into one contiguous block per thread. Each row is reduced by exactly one thread
/// in a fixed order, so the results do not depend on the thread count. Returns the first bad row.
inline std::size_t run_parallel(rows_function rows_fn, const row_job& job, std::size_t rows,
                                unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    // A thread is worth starting for at least ~256k logits of work.
    const std::size_t work = rows * std::max<std::size_t>(job.cols, 1);
    const std::size_t useful = std::max<std::size_t>(1, work / (1u << 18));
    const auto count = static_cast<std::size_t>(std::min<std::size_t>({threads, rows, useful}));
    const std::size_t arrays = job.backward ? (job.kl ? 3 : 1) : 0;
    const std::size_t per_array = scratch_size(job.cols);
    std::vector<float> scratch(count * arrays * per_array);
    const auto scratch_of = [&](std::size_t t) {
        float* base = scratch.data() + t * arrays * per_array;
        return row_scratch{arrays > 0 ? base : nullptr, arrays > 1 ? base + per_array : nullptr,
                           arrays > 2 ? base + 2 * per_array : nullptr};
    };
    if (count <= 1) return rows_fn(job, 0, rows, scratch_of(0));
    std::vector<std::size_t> first_bad(count, rows);
    const auto block = [&](std::size_t t) {
        const std::size_t begin = rows * t / count, end = rows * (t + 1) / count;
        const std::size_t bad = rows_fn(job, begin, end, scratch_of(t));
        first_bad[t] = bad == end ? rows : bad;
    };
    {
        std::vector<std::jthread> pool;
        pool.reserve(count - 1);
        for (std::size_t t = 1; t < count; ++t) pool.emplace_back(block, t);
        block(0);
    }  // joins
    return *std::min_element(first_bad.begin(), first_bad.end());
}

template <logit_type T>
constexpr element element_of() {
    return std::is_same_v<T, float> ? element::f32 : element::bf16;
}

template <logit_type T>
row_job make_job(const token_inputs<T>& in, rspo::kernels::detail::request_terms terms,
                 const kernel_options& options) {
    row_job job;
    job.logits_type = element_of<T>();
    job.z = in.logits.data;
    job.z_stride = in.logits.row_stride;
    job.cols = in.logits.cols;
    job.r = terms.kl() ? in.reference.data : nullptr;
    job.r_stride = terms.kl() ? in.reference.row_stride : 0;
    job.ids = terms.logprob ? in.ids.data() : nullptr;
    job.mask = options.row_mask.empty() ? nullptr : options.row_mask.data();
    job.inv_t = 1.0f / options.temperature;
    job.logprob = terms.logprob;
    job.kl = terms.kl();
    return job;
}

template <class Span>
auto data_or_null(Span s) {
    return s.empty() ? nullptr : s.data();
}

/// After the rows ran: diagnose the first bad row (throws the error naming its cause).
template <logit_type T>
void report(const char* fn, const token_inputs<T>& in, std::size_t bad,
            rspo::kernels::detail::request_terms terms) {
    if (bad >= in.logits.rows) return;
    rspo::kernels::detail::diagnose_row(fn, in, bad, terms);
    throw domain_error(fn, "logits",
                       "logits row " + std::to_string(bad) + ": the reduction is not finite");
}

}  // namespace detail

namespace detail {
template <logit_type T>
void forward_with(rows_function rows_fn, const token_inputs<T>& in, const token_values& out,
                  const kernel_options& options) {
    constexpr const char* fn = "rspo::kernels::simd::forward";
    const auto terms = rspo::kernels::detail::terms_of(out);
    if (options.checked) {
        rspo::kernels::detail::check_inputs(fn, in, terms, options);
        rspo::kernels::detail::check_outputs(fn, out, in.logits.rows);
    }
    if (in.logits.rows == 0 || !terms.any()) return;
    detail::row_job job = detail::make_job(in, terms, options);
    job.out_logprob = detail::data_or_null(out.logprob);
    job.out_reverse = detail::data_or_null(out.reverse_kl);
    job.out_forward = detail::data_or_null(out.forward_kl);
    detail::report(fn, in, detail::run_parallel(rows_fn, job, in.logits.rows, options.threads), terms);
}

template <logit_type T, logit_type G>
void backward_with(rows_function rows_fn, const token_inputs<T>& in, const token_grads& grads,
                   gradient_view<G> dlogits, const kernel_options& options, const token_values& values) {
    constexpr const char* fn = "rspo::kernels::simd::backward";
    const auto g = rspo::kernels::detail::terms_of(grads);
    const auto v = rspo::kernels::detail::terms_of(values);
    const rspo::kernels::detail::request_terms terms{g.logprob || v.logprob, g.reverse_kl || v.reverse_kl,
                                                     g.forward_kl || v.forward_kl};
    if (options.checked) {
        rspo::kernels::detail::check_inputs(fn, in, terms, options);
        rspo::kernels::detail::check_grads(fn, grads, in.logits.rows);
        rspo::kernels::detail::check_outputs(fn, values, in.logits.rows);
        rspo::kernels::detail::check_gradient_view(fn, dlogits, in, terms);
    }
    if (in.logits.rows == 0) return;
    if (!terms.any()) {  // no term: the gradient is zero
        for (std::size_t n = 0; n < dlogits.rows; ++n) std::fill(dlogits.row(n), dlogits.row(n) + dlogits.cols, G{});
        return;
    }
    detail::row_job job = detail::make_job(in, terms, options);
    job.backward = true;
    job.grad_type = detail::element_of<G>();
    job.out_logprob = detail::data_or_null(values.logprob);
    job.out_reverse = detail::data_or_null(values.reverse_kl);
    job.out_forward = detail::data_or_null(values.forward_kl);
    job.g_logprob = detail::data_or_null(grads.logprob);
    job.g_reverse = detail::data_or_null(grads.reverse_kl);
    job.g_forward = detail::data_or_null(grads.forward_kl);
    job.reverse_grad = g.reverse_kl;
    job.forward_grad = g.forward_kl;
    job.dz = dlogits.data;
    job.dz_stride = dlogits.row_stride;
    detail::report(fn, in, detail::run_parallel(rows_fn, job, in.logits.rows, options.threads), terms);
}

}  // namespace detail

/// Per-token values of every requested term (see rspo::kernels::token_values).
template <logit_type T>
void forward(const token_inputs<T>& in, const token_values& out, const kernel_options& options = {}) {
    detail::forward_with(detail::dispatched_rows(), in, out, options);
}

/// dlogits = Σ over requested terms of g_term[n]·∂term[n]/∂z (see the reference backend for the
/// formulas); also writes the forward values `values` asks for. dlogits may be the logits
/// themselves (same type and stride): the gradient then overwrites them.
template <logit_type T, logit_type G>
void backward(const token_inputs<T>& in, const token_grads& grads, gradient_view<G> dlogits,
              const kernel_options& options = {}, const token_values& values = {}) {
    detail::backward_with(detail::dispatched_rows(), in, grads, dlogits, options, values);
}

}  // namespace rspo::kernels::simd
