#pragma once
// Argument checks and non-finite diagnosis shared by every kernel backend, so each reports the same
// typed error, naming the argument, row and entry.

#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>
#include <rspo/kernels/types.hpp>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

namespace rspo::kernels::detail {

/// Which terms a call computes.
struct request_terms {
    bool logprob = false;
    bool reverse_kl = false;
    bool forward_kl = false;
    [[nodiscard]] bool kl() const noexcept { return reverse_kl || forward_kl; }
    [[nodiscard]] bool any() const noexcept { return logprob || kl(); }
};

inline request_terms terms_of(const token_values& v) {
    return {!v.logprob.empty(), !v.reverse_kl.empty(), !v.forward_kl.empty()};
}
inline request_terms terms_of(const token_grads& g) {
    return {!g.logprob.empty(), !g.reverse_kl.empty(), !g.forward_kl.empty()};
}

inline std::string entry(const char* name, std::size_t n, std::size_t v) {
    return std::string(name) + "(" + std::to_string(n) + ", " + std::to_string(v) + ")";
}

template <logit_type T>
void check_view(const char* fn, const char* name, const logits_view<T>& view, std::size_t rows,
                std::size_t cols, const char* rows_from) {
    if (view.data == nullptr && view.rows != 0)
        throw shape_error(fn, name, std::string(name) + " has no data but " +
                                        std::to_string(view.rows) + " rows");
    check_size(fn, std::string(name) + ".rows", view.rows, rows, rows_from);
    check_size(fn, std::string(name) + ".cols", view.cols, cols, "logits.cols");
    if (view.rows > 0 && view.row_stride < view.cols)
        throw shape_error(fn, std::string(name) + ".row_stride",
                          std::string(name) + ".row_stride = " + std::to_string(view.row_stride) +
                              " is less than its cols = " + std::to_string(view.cols));
}

/// Checks shapes, ids, mask and temperature of one call. `terms` says which inputs are needed.
template <logit_type T>
void check_inputs(const char* fn, const token_inputs<T>& in, request_terms terms,
                  const kernel_options& options) {
    const std::size_t n = in.logits.rows;
    if (n > 0) check_not_empty(fn, "logits.cols", in.logits.cols);
    check_view(fn, "logits", in.logits, n, in.logits.cols, "logits.rows");
    check_positive(fn, "options.temperature", options.temperature);
    if (!options.row_mask.empty()) check_size(fn, "options.row_mask", options.row_mask.size(), n, "logits.rows");
    if (terms.kl()) check_view(fn, "reference", in.reference, n, in.logits.cols, "logits.rows");
    if (terms.logprob) {
        check_size(fn, "ids", in.ids.size(), n, "logits.rows");
        for (std::size_t i = 0; i < n; ++i) {
            if (!options.row_mask.empty() && options.row_mask[i] == 0) continue;
            const std::int64_t id = in.ids[i];
            if (id < 0 || static_cast<std::uint64_t>(id) >= in.logits.cols)
                throw index_error(fn, "ids",
                                  "ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                                      " is outside [0, " + std::to_string(in.logits.cols) + ")");
        }
    }
}

inline void check_outputs(const char* fn, const token_values& out, std::size_t rows) {
    if (!out.logprob.empty()) check_size(fn, "values.logprob", out.logprob.size(), rows, "logits.rows");
    if (!out.reverse_kl.empty()) check_size(fn, "values.reverse_kl", out.reverse_kl.size(), rows, "logits.rows");
    if (!out.forward_kl.empty()) check_size(fn, "values.forward_kl", out.forward_kl.size(), rows, "logits.rows");
}

inline void check_grads(const char* fn, const token_grads& g, std::size_t rows) {
    const auto one = [&](const char* name, std::span<const float> s) {
        if (s.empty()) return;
        check_size(fn, name, s.size(), rows, "logits.rows");
        for (std::size_t i = 0; i < s.size(); ++i)
            if (!std::isfinite(s[i]))
                throw domain_error(fn, name,
                                   std::string(name) + "[" + std::to_string(i) + "] = " +
                                       rspo::detail::format_value(s[i]) + " is not finite");
    };
    one("grads.logprob", g.logprob);
    one("grads.reverse_kl", g.reverse_kl);
    one("grads.forward_kl", g.forward_kl);
}

/// Whether two strided buffers share any byte (their address ranges intersect).
template <class A, class B>
bool overlaps(const A* a, std::size_t a_rows, std::size_t a_cols, std::size_t a_stride, const B* b,
              std::size_t b_rows, std::size_t b_cols, std::size_t b_stride) {
    if (a == nullptr || b == nullptr || a_rows == 0 || b_rows == 0) return false;
    const auto* a0 = reinterpret_cast<const unsigned char*>(a);
    const auto* a1 = reinterpret_cast<const unsigned char*>(a + (a_rows - 1) * a_stride + a_cols);
    const auto* b0 = reinterpret_cast<const unsigned char*>(b);
    const auto* b1 = reinterpret_cast<const unsigned char*>(b + (b_rows - 1) * b_stride + b_cols);
    return a0 < b1 && b0 < a1;
}

/// dlogits must not overlap the inputs, except as an exact in-place overlay of the logits.
template <logit_type T, logit_type G>
void check_gradient_view(const char* fn, const gradient_view<G>& dz, const token_inputs<T>& in,
                         request_terms terms) {
    const logits_view<T>& z = in.logits;
    if (dz.data == nullptr && z.rows != 0)
        throw shape_error(fn, "dlogits", "dlogits has no data");
    check_size(fn, "dlogits.rows", dz.rows, z.rows, "logits.rows");
    check_size(fn, "dlogits.cols", dz.cols, z.cols, "logits.cols");
    if (dz.rows > 0 && dz.row_stride < dz.cols)
        throw shape_error(fn, "dlogits.row_stride",
                          "dlogits.row_stride = " + std::to_string(dz.row_stride) +
                              " is less than its cols = " + std::to_string(dz.cols));
    const bool same_buffer = static_cast<const void*>(dz.data) == static_cast<const void*>(z.data);
    if (z.rows > 0 && same_buffer && (!std::same_as<T, G> || dz.row_stride != z.row_stride))
        throw shape_error(fn, "dlogits",
                          "in-place dlogits must have the logits' element type and row stride");
    if (!same_buffer && overlaps(dz.data, dz.rows, dz.cols, dz.row_stride, z.data, z.rows, z.cols, z.row_stride))
        throw shape_error(fn, "dlogits",
                          "dlogits overlaps logits without being the same buffer (in place needs "
                          "the same data pointer)");
    const logits_view<T>& r = in.reference;
    if (terms.kl() && overlaps(dz.data, dz.rows, dz.cols, dz.row_stride, r.data, r.rows, r.cols, r.row_stride))
        throw shape_error(fn, "dlogits", "dlogits overlaps the reference logits, which must stay unchanged");
}

/// Called when a row's reduction came out non-finite: scans the row exactly and throws the
/// rspo::domain_error that names the cause (row n, entry v). Returns only if nothing is wrong
/// (the caller's result was a genuine overflow it must handle itself).
template <logit_type T>
void diagnose_row(const char* fn, const token_inputs<T>& in, std::size_t n, request_terms terms) {
    const T* z = in.logits.row(n);
    const T* r = terms.kl() ? in.reference.row(n) : nullptr;
    bool any_finite_z = false, any_finite_r = false;
    for (std::size_t v = 0; v < in.logits.cols; ++v) {
        const float zv = widen(z[v]);
        if (std::isnan(zv) || zv == std::numeric_limits<float>::infinity())
            throw domain_error(fn, "logits",
                               entry("logits", n, v) + " = " + rspo::detail::format_value(zv) +
                                   " (logits may be finite or -inf only)");
        any_finite_z = any_finite_z || std::isfinite(zv);
        if (r) {
            const float rv = widen(r[v]);
            if (std::isnan(rv) || rv == std::numeric_limits<float>::infinity())
                throw domain_error(fn, "reference",
                                   entry("reference", n, v) + " = " + rspo::detail::format_value(rv) +
                                       " (logits may be finite or -inf only)");
            any_finite_r = any_finite_r || std::isfinite(rv);
            if (terms.reverse_kl && std::isfinite(zv) && !std::isfinite(rv))
                throw domain_error(fn, "reference",
                                   entry("reference", n, v) + " = -inf where " + entry("logits", n, v) +
                                       " is finite: KL(pi_theta || mu) is infinite (the masks differ)");
            if (terms.forward_kl && std::isfinite(rv) && !std::isfinite(zv))
                throw domain_error(fn, "logits",
                                   entry("logits", n, v) + " = -inf where " + entry("reference", n, v) +
                                       " is finite: KL(mu || pi_theta) is infinite (the masks differ)");
        }
    }
    if (!any_finite_z)
        throw domain_error(fn, "logits", "logits row " + std::to_string(n) + ": every entry is -inf");
    if (r && !any_finite_r)
        throw domain_error(fn, "reference", "reference row " + std::to_string(n) + ": every entry is -inf");
    if (terms.logprob) {
        const auto id = static_cast<std::size_t>(in.ids[n]);
        if (!std::isfinite(widen(z[id])))
            throw domain_error(fn, "ids",
                               "ids[" + std::to_string(n) + "] = " + std::to_string(id) + " points at " +
                                   entry("logits", n, id) + " = -inf: its log-probability is -inf");
    }
}

}  // namespace rspo::kernels::detail
