#pragma once
// The reference backend: per-token log-probs and exact KL divergences over the vocabulary, forward
// and backward, in long double with a separate max pass. Slow and plain on purpose: it is the
// oracle every other backend is tested against (docs/math §5).

#include <rspo/kernels/types.hpp>
#include <rspo/kernels/validation.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace rspo::kernels::reference {

namespace detail {

using rspo::kernels::detail::request_terms;

/// log Σ_v exp(x_v / T) over one row, exact for −∞ entries; −∞ for an all −∞ row.
template <logit_type T>
long double row_logsumexp(const T* x, std::size_t cols, long double inv_t) {
    long double m = -std::numeric_limits<long double>::infinity();
    for (std::size_t v = 0; v < cols; ++v) m = std::max(m, static_cast<long double>(widen(x[v])) * inv_t);
    if (!std::isfinite(m)) return m;
    long double s = 0;
    for (std::size_t v = 0; v < cols; ++v) s += std::exp(static_cast<long double>(widen(x[v])) * inv_t - m);
    return m + std::log(s);
}

/// Everything a row's values and gradients need.
struct row_stats {
    long double lse_z = 0, lse_r = 0;
    long double logprob = 0, reverse_kl = 0, forward_kl = 0;
};

template <logit_type T>
row_stats row_values(const char* fn, const token_inputs<T>& in, std::size_t n, request_terms terms,
                     long double inv_t) {
    const T* z = in.logits.row(n);
    const std::size_t cols = in.logits.cols;
    // The reference checks every entry up front (it is the oracle, speed is no concern): NaN, +inf,
    // all −∞ rows, −∞ targets, and masks that differ where a KL needs them equal.
    bool bad = false;
    for (std::size_t v = 0; v < cols && !bad; ++v) {
        const float zv = widen(z[v]);
        bad = std::isnan(zv) || zv == std::numeric_limits<float>::infinity();
        if (terms.kl()) {
            const float rv = widen(in.reference.row(n)[v]);
            bad = bad || std::isnan(rv) || rv == std::numeric_limits<float>::infinity() ||
                  (terms.reverse_kl && std::isfinite(zv) && !std::isfinite(rv)) ||
                  (terms.forward_kl && std::isfinite(rv) && !std::isfinite(zv));
        }
    }
    row_stats s;
    s.lse_z = row_logsumexp(z, cols, inv_t);
    if (terms.kl()) s.lse_r = row_logsumexp(in.reference.row(n), cols, inv_t);
    if (terms.logprob) {
        const long double zy = static_cast<long double>(widen(z[static_cast<std::size_t>(in.ids[n])])) * inv_t;
        s.logprob = std::min<long double>(0, zy - s.lse_z);  // ≤ 0 exactly; above is round-off
        bad = bad || !std::isfinite(s.logprob);
    }
    bad = bad || !std::isfinite(s.lse_z) || !std::isfinite(s.lse_r);
    if (bad) rspo::kernels::detail::diagnose_row(fn, in, n, terms);
    if (terms.kl()) {
        const T* r = in.reference.row(n);
        long double rkl = 0, fkl = 0;
        for (std::size_t v = 0; v < cols; ++v) {
            const long double lp = static_cast<long double>(widen(z[v])) * inv_t - s.lse_z;
            const long double lm = static_cast<long double>(widen(r[v])) * inv_t - s.lse_r;
            if (std::isfinite(lp)) rkl += std::exp(lp) * (lp - lm);
            if (std::isfinite(lm)) fkl += std::exp(lm) * (lm - lp);
        }
        s.reverse_kl = std::max<long double>(0, rkl);  // KL ≥ 0 exactly; below is round-off
        s.forward_kl = std::max<long double>(0, fkl);
    }
    return s;
}

inline bool row_active(const kernel_options& options, std::size_t n) {
    return options.row_mask.empty() || options.row_mask[n] != 0;
}

}  // namespace detail

/// Per-token values of every requested term (see token_values).
template <logit_type T>
void forward(const token_inputs<T>& in, const token_values& out, const kernel_options& options = {}) {
    constexpr const char* fn = "rspo::kernels::reference::forward";
    const auto terms = rspo::kernels::detail::terms_of(out);
    rspo::kernels::detail::check_inputs(fn, in, terms, options);
    rspo::kernels::detail::check_outputs(fn, out, in.logits.rows);
    const long double inv_t = 1.0L / static_cast<long double>(options.temperature);
    for (std::size_t n = 0; n < in.logits.rows; ++n) {
        detail::row_stats s;
        if (detail::row_active(options, n)) s = detail::row_values(fn, in, n, terms, inv_t);
        if (terms.logprob) out.logprob[n] = static_cast<float>(s.logprob);
        if (terms.reverse_kl) out.reverse_kl[n] = static_cast<float>(s.reverse_kl);
        if (terms.forward_kl) out.forward_kl[n] = static_cast<float>(s.forward_kl);
    }
}

/// dlogits[n, v] = Σ over requested terms of g_term[n] · ∂term[n]/∂z[n, v] (docs/math §5):
///   log-prob:  (δ_{v,y} − p_v) / T
///   reverse:   p_v (log p_v − log m_v − KL(p‖m)) / T
///   forward:   (p_v − m_v) / T
/// Also writes the forward values where `values` asks for them.
template <logit_type T, logit_type G>
void backward(const token_inputs<T>& in, const token_grads& grads, gradient_view<G> dlogits,
              const kernel_options& options = {}, const token_values& values = {}) {
    constexpr const char* fn = "rspo::kernels::reference::backward";
    using rspo::kernels::detail::request_terms;
    const request_terms g = rspo::kernels::detail::terms_of(grads);
    const request_terms v_terms = rspo::kernels::detail::terms_of(values);
    const request_terms terms{g.logprob || v_terms.logprob, g.reverse_kl || v_terms.reverse_kl,
                              g.forward_kl || v_terms.forward_kl};
    rspo::kernels::detail::check_inputs(fn, in, terms, options);
    rspo::kernels::detail::check_grads(fn, grads, in.logits.rows);
    rspo::kernels::detail::check_outputs(fn, values, in.logits.rows);
    rspo::kernels::detail::check_gradient_view(fn, dlogits, in, terms);
    const long double inv_t = 1.0L / static_cast<long double>(options.temperature);
    const std::size_t cols = in.logits.cols;
    std::vector<long double> row_grad(cols);
    for (std::size_t n = 0; n < in.logits.rows; ++n) {
        G* out = dlogits.row(n);
        if (!detail::row_active(options, n)) {
            std::fill(out, out + cols, G{});
            if (v_terms.logprob) values.logprob[n] = 0;
            if (v_terms.reverse_kl) values.reverse_kl[n] = 0;
            if (v_terms.forward_kl) values.forward_kl[n] = 0;
            continue;
        }
        const detail::row_stats s = detail::row_values(fn, in, n, terms, inv_t);
        const T* z = in.logits.row(n);
        const T* r = terms.kl() ? in.reference.row(n) : nullptr;
        const long double g_lp = g.logprob ? grads.logprob[n] : 0.0L;
        const long double g_r = g.reverse_kl ? grads.reverse_kl[n] : 0.0L;
        const long double g_f = g.forward_kl ? grads.forward_kl[n] : 0.0L;
        for (std::size_t v = 0; v < cols; ++v) {
            const long double lp = static_cast<long double>(widen(z[v])) * inv_t - s.lse_z;
            const long double p = std::isfinite(lp) ? std::exp(lp) : 0.0L;
            long double d = -g_lp * p;
            if (r) {
                const long double lm = static_cast<long double>(widen(r[v])) * inv_t - s.lse_r;
                const long double m = std::isfinite(lm) ? std::exp(lm) : 0.0L;
                if (g_r != 0 && p > 0) d += g_r * p * (lp - lm - s.reverse_kl);  // 0·∞ must not appear
                d += g_f * (p - m);
            }
            row_grad[v] = d;
        }
        if (g.logprob) row_grad[static_cast<std::size_t>(in.ids[n])] += g_lp;
        for (std::size_t v = 0; v < cols; ++v) {
            const float f = static_cast<float>(row_grad[v] * inv_t);
            if constexpr (std::same_as<G, float>)
                out[v] = f;
            else
                out[v] = to_bf16(f);
        }
        if (v_terms.logprob) values.logprob[n] = static_cast<float>(s.logprob);
        if (v_terms.reverse_kl) values.reverse_kl[n] = static_cast<float>(s.reverse_kl);
        if (v_terms.forward_kl) values.forward_kl[n] = static_cast<float>(s.forward_kl);
    }
}

}  // namespace rspo::kernels::reference
