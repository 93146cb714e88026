#pragma once
// A host replay of rspo::kernels::cuda's kernels for machines without a GPU: the kernels' own
// per-thread code (setup_row, sweep, the online statistics, finish_row, pass 2, the diagnosis
// steps), the same thread partition and the same reduction trees (warp butterflies in lower-lane-
// first order, then the block's partials), run one thread after the other. Only the rounding of
// exp2f/log2 differs from the device (the host's libm). It checks the arithmetic, the indexing and
// the error paths against the reference; the device itself is checked by kernels.cu when present.

#include <rspo/kernels/cuda/token_reductions.cuh>

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace rspo_test::emulation {

namespace cd = rspo::kernels::cuda::detail;
namespace rk = rspo::kernels;

inline bool same_bits(const cd::row_stats& a, const cd::row_stats& b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

/// warp_allreduce over 32 lanes; also checks the claim that every lane ends bit-identical.
template <bool KL>
cd::row_stats warp_allreduce(std::vector<cd::row_stats> lanes) {
    for (unsigned m = cd::warp_threads / 2; m >= 1; m /= 2) {
        std::vector<cd::row_stats> next(lanes.size());
        for (unsigned l = 0; l < lanes.size(); ++l)
            next[l] = (l & m) ? cd::merged<KL>(lanes[l ^ m], lanes[l])
                              : cd::merged<KL>(lanes[l], lanes[l ^ m]);
        lanes = next;
    }
    for (const auto& s : lanes)
        if (!same_bits(s, lanes[0]))
            throw std::logic_error("emulation: lanes of a warp disagree after the butterfly");
    return lanes[0];
}

/// group_allreduce: a warp per row, or a block of 256 (8 warps, then every warp over the partials).
template <bool KL>
cd::row_stats group_allreduce(const std::vector<cd::row_stats>& threads, bool warp_per_row) {
    if (warp_per_row) return warp_allreduce<KL>(threads);
    constexpr unsigned warps = cd::block_threads / cd::warp_threads;
    std::vector<cd::row_stats> partial(warps);
    for (unsigned w = 0; w < warps; ++w) {
        const auto first = threads.begin() + w * cd::warp_threads;
        partial[w] = warp_allreduce<KL>(std::vector<cd::row_stats>(first, first + cd::warp_threads));
    }
    std::vector<cd::row_stats> lanes(cd::warp_threads, cd::empty_stats());
    for (unsigned l = 0; l < warps; ++l) lanes[l] = partial[l];
    return warp_allreduce<KL>(lanes);
}

/// rows_kernel for one row.
template <class T, class G, bool LP, bool KL, bool BWD>
void row(const cd::row_params& p, std::size_t n) {
    const bool warp_per_row = p.rows_per_block > 1;
    const unsigned group = warp_per_row ? cd::warp_threads : cd::block_threads;
    const cd::row_setup st = cd::setup_row<T, LP, BWD>(p, n);
    if (st.masked || st.bad) {
        cd::row_values v;
        v.bad = !st.masked;
        cd::write_values(p, n, v);
        if (st.bad) cd::flag_row(p.report, n);
        if constexpr (BWD)
            if (st.masked)
                for (unsigned lane = 0; lane < group; ++lane)
                    cd::zero_row(cd::row_out<G>(p.dz, p.dz_stride, n), p.cols, lane, group);
        return;
    }
    std::vector<cd::row_stats> threads(group);
    for (unsigned lane = 0; lane < group; ++lane) threads[lane] = cd::pass1<T, KL, BWD>(p, n, lane, group);
    const cd::row_stats s = group_allreduce<KL>(threads, warp_per_row);
    const cd::row_values v = cd::finish_row<LP, KL>(p, s, st);
    cd::write_values(p, n, v);
    if (v.bad) cd::flag_row(p.report, n);
    if constexpr (BWD)
        if (!v.bad)
            for (unsigned lane = 0; lane < group; ++lane)
                cd::pass2<T, G, LP, KL>(p, n, st, s, v, lane, group);
}

/// diagnose_kernel (sequential scan: the first offending entry, and whether any entry is finite).
template <class T>
void diagnose(const cd::row_params& p, bool lp, bool kl) {
    cd::device_report* rep = p.report;
    if (rep->first_bad_row == cd::no_row) return;
    const auto n = static_cast<std::size_t>(rep->first_bad_row);
    if (cd::diagnose_prologue(p, n, lp, rep) != rspo::kernels::cuda::errc::ok) return;
    using S = cd::storage_t<T>;
    const S* z = reinterpret_cast<const S*>(cd::row_in<T>(p.z, p.z_stride, n));
    const S* r = kl ? reinterpret_cast<const S*>(cd::row_in<T>(p.r, p.r_stride, n)) : nullptr;
    unsigned long long key = ~0ull;
    bool any_z = false, any_r = false;
    for (std::size_t v = 0; v < p.cols; ++v) {
        const float zv = cd::widen_bits(z[v]);
        const float rv = kl ? cd::widen_bits(r[v]) : 0.0f;
        any_z = any_z || cd::is_finite(zv);
        any_r = any_r || (kl && cd::is_finite(rv));
        const unsigned kind = cd::entry_kind(zv, rv, kl, p.want_reverse, p.want_forward);
        if (kind < 4 && key == ~0ull) key = 4ull * v + kind;
    }
    cd::diagnose_conclusion<T>(p, n, key, any_z, any_r, lp, kl, rep);
}

template <class T, class G, bool BWD>
void rows(const cd::row_params& p, std::size_t count, bool lp, bool kl) {
    for (std::size_t n = 0; n < count; ++n) {
        if (lp && kl)
            row<T, G, true, true, BWD>(p, n);
        else if (lp)
            row<T, G, true, false, BWD>(p, n);
        else
            row<T, G, false, true, BWD>(p, n);
    }
    diagnose<T>(p, lp, kl);
}

inline cd::device_report fresh_report() {
    cd::device_report rep;
    std::memset(&rep, 0xFF, sizeof rep);
    return rep;
}

/// rspo::kernels::cuda::forward on host memory.
template <rk::logit_type T>
rspo::kernels::cuda::status forward(const rk::token_inputs<T>& in, const rk::token_values& out,
                                    const rk::kernel_options& options) {
    const char* fn = cd::function_name(cd::op_forward);
    const auto terms = rk::detail::terms_of(out);
    if (options.checked) {
        cd::check_shapes(fn, in, terms, options);
        rk::detail::check_outputs(fn, out, in.logits.rows);
    }
    cd::device_report rep = fresh_report();
    if (in.logits.rows == 0 || !terms.any()) return {};
    cd::row_params p = cd::make_params(in, terms, options, &rep, cd::op_forward);
    p.out_logprob = cd::data_or_null(out.logprob);
    p.out_reverse = cd::data_or_null(out.reverse_kl);
    p.out_forward = cd::data_or_null(out.forward_kl);
    rows<T, float, false>(p, in.logits.rows, terms.logprob, terms.kl());
    return cd::decode(rep);
}

/// rspo::kernels::cuda::backward on host memory.
template <rk::logit_type T, rk::logit_type G>
rspo::kernels::cuda::status backward(const rk::token_inputs<T>& in, const rk::token_grads& grads,
                                     rk::gradient_view<G> dlogits, const rk::kernel_options& options,
                                     const rk::token_values& values = {}) {
    const char* fn = cd::function_name(cd::op_backward);
    const auto g = rk::detail::terms_of(grads);
    const auto v = rk::detail::terms_of(values);
    const rk::detail::request_terms terms{g.logprob || v.logprob, g.reverse_kl || v.reverse_kl,
                                          g.forward_kl || v.forward_kl};
    if (options.checked) {
        cd::check_shapes(fn, in, terms, options);
        cd::check_grad_sizes(fn, grads, in.logits.rows);
        rk::detail::check_outputs(fn, values, in.logits.rows);
        rk::detail::check_gradient_view(fn, dlogits, in, terms);
    }
    cd::device_report rep = fresh_report();
    if (in.logits.rows == 0) return {};
    if (!terms.any()) {
        for (std::size_t n = 0; n < dlogits.rows; ++n)
            for (std::size_t c = 0; c < dlogits.cols; ++c) dlogits.row(n)[c] = G{};
        return {};
    }
    cd::row_params p = cd::make_params(in, terms, options, &rep, cd::op_backward);
    p.out_logprob = cd::data_or_null(values.logprob);
    p.out_reverse = cd::data_or_null(values.reverse_kl);
    p.out_forward = cd::data_or_null(values.forward_kl);
    p.g_logprob = cd::data_or_null(grads.logprob);
    p.g_reverse = cd::data_or_null(grads.reverse_kl);
    p.g_forward = cd::data_or_null(grads.forward_kl);
    p.dz = dlogits.data;
    p.dz_stride = dlogits.row_stride;
    rows<T, G, true>(p, in.logits.rows, terms.logprob, terms.kl());
    return cd::decode(rep);
}

}  // namespace rspo_test::emulation
