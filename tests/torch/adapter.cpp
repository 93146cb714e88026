// The libtorch adapter (include/rspo/adapters/torch.hpp) against torch's own operators: values and
// gradients of the token functions against log_softmax + gather and kl_div(log_target = true)
// evaluated in float64 from the same inputs; finite differences; bf16; strided inputs; typed errors;
// the sample losses against the same formulas written with torch ops and differentiated by torch's
// autograd; the oracle functions against the library's scalar versions. Then the sequence policy
// adapter (include/rspo/adapters/torch_sequence_policy.hpp): the concept, flat buffers that alias
// the parameters and the gradients autograd accumulates into, log-probs and their gradients against
// torch's, independent copies, sampling, a short run of the driver, and typed errors.

// g++ 12 at -O3 can report a bogus -Wrestrict inside libstdc++'s string concatenation once the
// error-message code of the headers is inlined here (GCC PR 105329); as in tests/kernels.cpp.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <rspo/adapters/torch.hpp>
#include <rspo/adapters/torch_sequence_policy.hpp>
#include <rspo/algorithms/iterative_self_play.hpp>
#include <rspo/games/toy_language_task.hpp>
#include <rspo/regularizers/chi_squared.hpp>
#include <rspo/regularizers/composition.hpp>
#include <rspo/regularizers/forward_kl.hpp>
#include <rspo/regularizers/no_regularizer.hpp>
#include <rspo/regularizers/reverse_kl.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>
#include <torch/utils.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

namespace rt = rspo::adapters::torch;

namespace {

// Tolerances against a float64 evaluation of the same fp32 (or bf16) inputs (largest errors seen
// on these inputs in brackets). The kernels accumulate in fp32 (then double), so a log-prob carries
// a few fp32 round-offs of its size [9e-8]...
constexpr double fp32_value_tolerance = 1e-6;  // × (1 + |value|)
// ...and a KL, Σ p_v (log p_v − log m_v), those of its terms, which cancel: more than of its value
// [1.1e-6 at T = 0.7, where the terms are largest].
constexpr double fp32_kl_tolerance = 5e-6;  // × (1 + |KL|)
// A gradient entry, (g/T)·(δ − p_v) or (g/T)·p_v·(…), carries a few round-offs of g/T [2.7e-7].
constexpr double fp32_gradient_tolerance = 2e-6;  // × max |upstream| / T
// A bf16 gradient is the fp32 gradient rounded once to 8 significant bits: at most 2^-8 of it
// [3.83e-3] (plus the fp32 gradient's own error).
constexpr double bf16_gradient_relative = 1.0 / 256.0;
// Central differences of fp32 values with step h: truncation O(h²) plus rounding O(ε·|f|/h).
constexpr double finite_difference_step = 3e-3;
constexpr double finite_difference_tolerance = 1e-3;
// The losses run in double in both implementations; only the summation order differs.
constexpr double loss_tolerance = 1e-12;

at::Generator generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

at::Tensor randn(at::IntArrayRef sizes, at::Generator& gen, at::ScalarType type = at::kFloat) {
    return at::randn(sizes, gen, at::TensorOptions().dtype(at::kDouble)).to(type);
}

at::Tensor random_ids(std::int64_t n, std::int64_t v, at::Generator& gen) {
    return at::randint(v, {n}, gen, at::TensorOptions().dtype(at::kLong));
}

at::Tensor grad_of(const at::Tensor& scalar, const at::Tensor& x) {
    return torch::autograd::grad({scalar}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/false,
                                 /*allow_unused=*/true)[0];
}

double max_abs(const at::Tensor& t) { return t.numel() == 0 ? 0.0 : t.abs().max().item<double>(); }

/// max over entries of |a − b| / (1 + |b|).
double max_relative_error(const at::Tensor& a, const at::Tensor& b) {
    if (a.numel() == 0) return 0.0;
    const at::Tensor bd = b.to(at::kDouble);
    return ((a.to(at::kDouble) - bd).abs() / (1.0 + bd.abs())).max().item<double>();
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
    return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a, b);
}

/// torch's float64 log-probs, reverse and forward KL of the logits (same inputs, widened exactly).
struct torch_reference {
    at::Tensor logits;  ///< float64, requires grad
    at::Tensor logprob, reverse_kl, forward_kl;
};

torch_reference torch_terms(const at::Tensor& z, const at::Tensor& r, const at::Tensor& ids, double temperature) {
    torch_reference out;
    out.logits = z.detach().to(at::kDouble).requires_grad_(true);
    const at::Tensor logp = at::log_softmax(out.logits / temperature, 1);
    out.logprob = logp.gather(1, ids.unsqueeze(1)).squeeze(1);
    if (r.defined()) {
        const at::Tensor logm = at::log_softmax(r.detach().to(at::kDouble) / temperature, 1);
        // kl_div(input, target, log_target) = Σ exp(target)·(target − input) = KL(target ‖ input).
        out.reverse_kl = at::kl_div(logm, logp, at::Reduction::None, /*log_target=*/true).sum(1);
        out.forward_kl = at::kl_div(logp, logm, at::Reduction::None, /*log_target=*/true).sum(1);
    }
    return out;
}

}  // namespace

TEST_CASE("token log-probs match log_softmax + gather in float64", "[torch][tokens]") {
    const auto [n, v] = GENERATE(table<std::int64_t, std::int64_t>(
        {{1, 1}, {3, 7}, {5, 8}, {4, 9}, {6, 16}, {2, 17}, {17, 300}, {33, 1031}, {8, 5000}}));
    const double temperature = GENERATE(1.0, 0.7);
    CAPTURE(n, v, temperature);
    auto gen = generator(static_cast<std::uint64_t>(n * 7919 + v));
    const at::Tensor z = randn({n, v}, gen) * 3.0;
    const at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor g = randn({n}, gen);

    const at::Tensor zf = z.clone().requires_grad_(true);
    const at::Tensor lp = rt::token_logprobs(zf, ids, {.temperature = temperature});
    REQUIRE(lp.scalar_type() == at::kFloat);
    REQUIRE(lp.sizes() == at::IntArrayRef{n});
    const at::Tensor dz = grad_of((lp * g).sum(), zf);
    REQUIRE(dz.scalar_type() == at::kFloat);

    const torch_reference ref = torch_terms(z, {}, ids, temperature);
    const at::Tensor dref = grad_of((ref.logprob * g.to(at::kDouble)).sum(), ref.logits);
    CHECK(max_relative_error(lp, ref.logprob) <= fp32_value_tolerance);
    CHECK(max_abs(dz.to(at::kDouble) - dref) <= fp32_gradient_tolerance * max_abs(g) / temperature);
    CHECK(lp.le(0).all().item<bool>());
}

TEST_CASE("token KLs match kl_div(log_target=True) summed per row, both directions", "[torch][tokens]") {
    const auto [n, v] = GENERATE(table<std::int64_t, std::int64_t>({{1, 2}, {3, 7}, {5, 8}, {4, 9}, {17, 300}, {9, 4099}}));
    const double temperature = GENERATE(1.0, 1.3);
    CAPTURE(n, v, temperature);
    auto gen = generator(static_cast<std::uint64_t>(n * 131 + v));
    const at::Tensor z = randn({n, v}, gen) * 2.0;
    const at::Tensor r = z + randn({n, v}, gen);  // a reference near θ, as in training
    const at::Tensor g = randn({n}, gen);
    const torch_reference ref = torch_terms(z, r, random_ids(n, v, gen), temperature);

    SECTION("reverse KL(π_θ ‖ μ)") {
        const at::Tensor zf = z.clone().requires_grad_(true);
        const at::Tensor rf = r.clone().requires_grad_(true);
        const at::Tensor kl = rt::token_reverse_kl(zf, rf, {.temperature = temperature});
        CHECK(max_relative_error(kl, ref.reverse_kl) <= fp32_kl_tolerance);
        CHECK(kl.ge(0).all().item<bool>());
        const at::Tensor loss = (kl * g).sum();
        const at::Tensor dref = grad_of((ref.reverse_kl * g.to(at::kDouble)).sum(), ref.logits);
        CHECK(max_abs(grad_of(loss, zf).to(at::kDouble) - dref) <= fp32_gradient_tolerance * max_abs(g) / temperature);
        CHECK_FALSE(grad_of(loss, rf).defined());  // the reference gets no gradient
    }
    SECTION("forward KL(μ ‖ π_θ)") {
        const at::Tensor zf = z.clone().requires_grad_(true);
        const at::Tensor kl = rt::token_forward_kl(zf, r, {.temperature = temperature});
        CHECK(max_relative_error(kl, ref.forward_kl) <= fp32_kl_tolerance);
        CHECK(kl.ge(0).all().item<bool>());
        const at::Tensor dref = grad_of((ref.forward_kl * g.to(at::kDouble)).sum(), ref.logits);
        CHECK(max_abs(grad_of((kl * g).sum(), zf).to(at::kDouble) - dref) <=
              fp32_gradient_tolerance * max_abs(g) / temperature);
    }
}

TEST_CASE("the fused pass gives the single functions' values and combines the used gradients", "[torch][tokens]") {
    const std::int64_t n = 13, v = 517;
    auto gen = generator(42);
    const at::Tensor z = randn({n, v}, gen) * 2.0;
    const at::Tensor r = z + 0.5 * randn({n, v}, gen);
    const at::Tensor ids = random_ids(n, v, gen);
    const double temperature = 0.9;
    const rt::token_options options{.temperature = temperature};
    const at::Tensor zf = z.clone().requires_grad_(true);
    const rt::token_term_tensors t = rt::token_terms(zf, r, ids, options);

    const at::Tensor lp = rt::token_logprobs(z, ids, options);
    const at::Tensor rkl = rt::token_reverse_kl(z, r, options);
    const at::Tensor fkl = rt::token_forward_kl(z, r, options);
    CHECK(max_relative_error(t.logprob, lp) <= fp32_value_tolerance);
    CHECK(max_relative_error(t.reverse_kl, rkl) <= fp32_kl_tolerance);
    CHECK(max_relative_error(t.forward_kl, fkl) <= fp32_kl_tolerance);

    const torch_reference ref = torch_terms(z, r, ids, temperature);
    const at::Tensor a = randn({n}, gen), b = randn({n}, gen), c = randn({n}, gen);
    const double scale = (max_abs(a) + max_abs(b) + max_abs(c)) / temperature;
    const auto ad = a.to(at::kDouble), bd = b.to(at::kDouble), cd = c.to(at::kDouble);

    SECTION("all three used") {
        const at::Tensor dz = grad_of((a * t.logprob + b * t.reverse_kl + c * t.forward_kl).sum(), zf);
        const at::Tensor dref =
            grad_of((ad * ref.logprob + bd * ref.reverse_kl + cd * ref.forward_kl).sum(), ref.logits);
        CHECK(max_abs(dz.to(at::kDouble) - dref) <= fp32_gradient_tolerance * scale);
    }
    SECTION("only the KLs used: the log-prob's gradient is undefined and costs nothing") {
        const at::Tensor dz = grad_of((b * t.reverse_kl + c * t.forward_kl).sum(), zf);
        const at::Tensor dref = grad_of((bd * ref.reverse_kl + cd * ref.forward_kl).sum(), ref.logits);
        CHECK(max_abs(dz.to(at::kDouble) - dref) <= fp32_gradient_tolerance * scale);
    }
    SECTION("only the log-prob used") {
        const at::Tensor dz = grad_of((a * t.logprob).sum(), zf);
        const at::Tensor dref = grad_of((ad * ref.logprob).sum(), ref.logits);
        CHECK(max_abs(dz.to(at::kDouble) - dref) <= fp32_gradient_tolerance * scale);
    }
    SECTION("a typical token-level objective: −logprob·advantage + β·KL, through mean()") {
        // mean() hands backward an expanded (stride-0) upstream gradient.
        const at::Tensor dz = grad_of((-(t.logprob * a) + 0.1 * t.reverse_kl).mean(), zf);
        const at::Tensor dref = grad_of((-(ref.logprob * ad) + 0.1 * ref.reverse_kl).mean(), ref.logits);
        CHECK(max_abs(dz.to(at::kDouble) - dref) <= fp32_gradient_tolerance * scale);
    }
}

TEST_CASE("gradients agree with central finite differences (gradcheck-style)", "[torch][tokens]") {
    const std::int64_t n = 3, v = 5;
    auto gen = generator(7);
    const at::Tensor z = randn({n, v}, gen);
    const at::Tensor r = randn({n, v}, gen);
    const at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor a = randn({n}, gen), b = randn({n}, gen), c = randn({n}, gen);
    const rt::token_options options{.temperature = 0.8};
    // f(z) = Σ a·logprob + b·KL(p‖m) + c·KL(m‖p), evaluated in double from the fp32 values.
    const auto f = [&](const at::Tensor& x) {
        const rt::token_term_tensors t = rt::token_terms(x, r, ids, options);
        return (a.to(at::kDouble) * t.logprob.to(at::kDouble) + b.to(at::kDouble) * t.reverse_kl.to(at::kDouble) +
                c.to(at::kDouble) * t.forward_kl.to(at::kDouble))
            .sum()
            .item<double>();
    };
    const at::Tensor zf = z.clone().requires_grad_(true);
    const rt::token_term_tensors t = rt::token_terms(zf, r, ids, options);
    const at::Tensor analytic = grad_of((a * t.logprob + b * t.reverse_kl + c * t.forward_kl).sum(), zf);
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < v; ++j) {
            at::Tensor plus = z.clone(), minus = z.clone();
            plus[i][j] += finite_difference_step;
            minus[i][j] -= finite_difference_step;
            const double numeric = (f(plus) - f(minus)) / (2.0 * finite_difference_step);
            CAPTURE(i, j, numeric);
            CHECK(std::abs(analytic[i][j].item<double>() - numeric) <= finite_difference_tolerance);
        }
}

TEST_CASE("bf16 logits: fp32 values, bf16 gradients within named tolerances", "[torch][tokens][bf16]") {
    const auto [n, v] = GENERATE(table<std::int64_t, std::int64_t>({{3, 7}, {4, 16}, {5, 17}, {11, 2000}}));
    CAPTURE(n, v);
    auto gen = generator(static_cast<std::uint64_t>(n + 1000 * v));
    const at::Tensor z = randn({n, v}, gen, at::kBFloat16) * 2.0;
    const at::Tensor r = (z.to(at::kFloat) + randn({n, v}, gen)).to(at::kBFloat16);
    const at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor a = randn({n}, gen), b = randn({n}, gen), c = randn({n}, gen);
    const at::Tensor zf = z.clone().requires_grad_(true);
    const rt::token_term_tensors t = rt::token_terms(zf, r, ids);
    REQUIRE(t.logprob.scalar_type() == at::kFloat);
    const at::Tensor dz = grad_of((a * t.logprob + b * t.reverse_kl + c * t.forward_kl).sum(), zf);
    REQUIRE(dz.scalar_type() == at::kBFloat16);

    // bf16 widens exactly, so the float64 reference sees the very same numbers.
    const torch_reference ref = torch_terms(z, r, ids, 1.0);
    CHECK(max_relative_error(t.logprob, ref.logprob) <= fp32_value_tolerance);
    CHECK(max_relative_error(t.reverse_kl, ref.reverse_kl) <= fp32_kl_tolerance);
    CHECK(max_relative_error(t.forward_kl, ref.forward_kl) <= fp32_kl_tolerance);
    const at::Tensor dref = grad_of(
        (a.to(at::kDouble) * ref.logprob + b.to(at::kDouble) * ref.reverse_kl + c.to(at::kDouble) * ref.forward_kl)
            .sum(),
        ref.logits);
    const double scale = max_abs(a) + max_abs(b) + max_abs(c);
    const at::Tensor excess =
        (dz.to(at::kDouble) - dref).abs() - (bf16_gradient_relative * dref.abs() + fp32_gradient_tolerance * scale);
    CHECK(excess.max().item<double>() <= 0.0);
}

TEST_CASE("strided logits: row and column slices are read in place and match contiguous ones", "[torch][tokens]") {
    const std::int64_t n = 6, v = 301, pad = 13;
    auto gen = generator(3);
    const at::Tensor big = randn({2 * n, v + pad}, gen);
    const at::Tensor big_ref = randn({2 * n, v + pad}, gen);
    const at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor g = randn({n}, gen);

    const auto check_layout = [&](const at::Tensor& z, const at::Tensor& r) {
        REQUIRE_FALSE(z.is_contiguous());
        REQUIRE(z.stride(1) == 1);
        const at::Tensor zs = z.detach().requires_grad_(true);  // the view itself, not a copy
        const at::Tensor zc = z.contiguous().requires_grad_(true);
        const rt::token_term_tensors s = rt::token_terms(zs, r, ids);
        const rt::token_term_tensors c = rt::token_terms(zc, r.contiguous(), ids);
        // Each row is reduced in the same order wherever it lies in memory.
        CHECK(max_relative_error(s.logprob, c.logprob) <= fp32_value_tolerance);
        CHECK(max_relative_error(s.reverse_kl, c.reverse_kl) <= fp32_kl_tolerance);
        CHECK(max_relative_error(s.forward_kl, c.forward_kl) <= fp32_kl_tolerance);
        const at::Tensor ds = grad_of((g * (s.logprob + s.reverse_kl + s.forward_kl)).sum(), zs);
        const at::Tensor dc = grad_of((g * (c.logprob + c.reverse_kl + c.forward_kl)).sum(), zc);
        CHECK(max_abs(ds - dc) <= fp32_gradient_tolerance * max_abs(g));
        const torch_reference ref = torch_terms(z, r, ids, 1.0);
        CHECK(max_relative_error(s.logprob, ref.logprob) <= fp32_value_tolerance);
    };
    SECTION("a column slice (row stride V + pad)") {
        check_layout(big.slice(0, 0, n).slice(1, 5, 5 + v), big_ref.slice(0, 0, n).slice(1, 2, 2 + v));
    }
    SECTION("every other row (row stride 2(V + pad))") {
        check_layout(big.slice(0, 0, 2 * n, 2).slice(1, 0, v), big_ref.slice(0, 1, 2 * n, 2).slice(1, 0, v));
    }
    SECTION("a transposed matrix is refused, not copied") {
        const at::Tensor zt = randn({v, n}, gen).t();
        REQUIRE_THROWS_AS(rt::token_logprobs(zt, ids), rt::tensor_error);
        REQUIRE_THROWS_WITH(rt::token_logprobs(zt, ids),
                            Catch::Matchers::ContainsSubstring("last dimension must be contiguous"));
    }
    SECTION("overlapping rows (an expanded row) are refused") {
        const at::Tensor ze = randn({1, v}, gen).expand({n, v});
        REQUIRE_THROWS_AS(rt::token_logprobs(ze, ids), rt::tensor_error);
        REQUIRE_THROWS_WITH(rt::token_logprobs(ze, ids), Catch::Matchers::ContainsSubstring("rows overlap"));
    }
}

TEST_CASE("row mask: masked rows give 0 and a zero gradient row and are not read", "[torch][tokens]") {
    const std::int64_t n = 8, v = 100;
    auto gen = generator(11);
    at::Tensor z = randn({n, v}, gen);
    const at::Tensor r = randn({n, v}, gen);
    at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor mask = at::tensor(std::vector<std::int64_t>{1, 0, 1, 1, 0, 0, 1, 1}).to(at::kBool);
    ids[1] = 1000000;  // outside [0, V), but masked
    z[4][3] = NAN;     // masked too
    const at::Tensor zf = z.clone().requires_grad_(true);
    const rt::token_term_tensors t = rt::token_terms(zf, r, ids, {.temperature = 1.2, .row_mask = mask});
    const at::Tensor dz = grad_of((t.logprob + t.reverse_kl + t.forward_kl).sum(), zf);
    const at::Tensor off = mask.logical_not().nonzero().squeeze(1);
    CHECK(t.logprob.index_select(0, off).eq(0).all().item<bool>());
    CHECK(t.reverse_kl.index_select(0, off).eq(0).all().item<bool>());
    CHECK(t.forward_kl.index_select(0, off).eq(0).all().item<bool>());
    CHECK(dz.index_select(0, off).eq(0).all().item<bool>());
    // The kept rows are those of an unmasked call on the kept rows alone.
    const at::Tensor kept = mask.nonzero().squeeze(1);
    const rt::token_term_tensors k =
        rt::token_terms(z.index_select(0, kept), r.index_select(0, kept), ids.index_select(0, kept), {.temperature = 1.2});
    CHECK(bitwise_equal(t.logprob.index_select(0, kept), k.logprob));
    CHECK(bitwise_equal(t.forward_kl.index_select(0, kept), k.forward_kl));
    // A uint8 mask is the same mask.
    CHECK(bitwise_equal(rt::token_logprobs(z, ids, {.temperature = 1.2, .row_mask = mask.to(at::kByte)}), t.logprob));
}

TEST_CASE("results do not depend on the thread count", "[torch][tokens]") {
    const std::int64_t n = 64, v = 8192;  // enough work for several threads
    auto gen = generator(5);
    const at::Tensor z = randn({n, v}, gen);
    const at::Tensor r = randn({n, v}, gen);
    const at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor g = randn({n}, gen);
    const auto run = [&](unsigned threads) {
        const at::Tensor zf = z.clone().requires_grad_(true);
        const rt::token_term_tensors t = rt::token_terms(zf, r, ids, {.threads = threads});
        return std::vector<at::Tensor>{t.logprob, t.reverse_kl, t.forward_kl,
                                       grad_of((g * (t.logprob - t.reverse_kl + t.forward_kl)).sum(), zf)};
    };
    const auto one = run(1), two = run(2), four = run(4), any = run(0);
    for (std::size_t i = 0; i < one.size(); ++i) {
        CHECK(bitwise_equal(one[i], two[i]));
        CHECK(bitwise_equal(one[i], four[i]));
        CHECK(bitwise_equal(one[i], any[i]));
    }
}

TEST_CASE("empty batches, no-grad mode and unchecked calls", "[torch][tokens]") {
    auto gen = generator(9);
    const at::Tensor none = at::empty({0, 10});
    const at::Tensor no_ids = at::empty({0}, at::TensorOptions().dtype(at::kLong));
    CHECK(rt::token_logprobs(none, no_ids).sizes() == at::IntArrayRef{0});
    const at::Tensor zf = none.clone().requires_grad_(true);
    const rt::token_term_tensors t = rt::token_terms(zf, none, no_ids);
    const at::Tensor dz = grad_of(t.logprob.sum() + t.reverse_kl.sum(), zf);
    CHECK((!dz.defined() || dz.numel() == 0));

    const at::Tensor z = randn({4, 10}, gen).requires_grad_(true);
    const at::Tensor ids = random_ids(4, 10, gen);
    {
        const at::NoGradGuard no_grad;
        const at::Tensor lp = rt::token_logprobs(z, ids);
        CHECK_FALSE(lp.requires_grad());
    }
    CHECK(bitwise_equal(rt::token_logprobs(z, ids, {.checked = false}), rt::token_logprobs(z, ids)));
}

TEST_CASE("bad tensors raise typed errors (all std::invalid_argument)", "[torch][tokens][errors]") {
    auto gen = generator(13);
    const std::int64_t n = 4, v = 10;
    const at::Tensor z = randn({n, v}, gen);
    const at::Tensor r = randn({n, v}, gen);
    const at::Tensor ids = random_ids(n, v, gen);

    // dtype, rank, device, definedness: tensor_error
    CHECK_THROWS_AS(rt::token_logprobs(z.to(at::kDouble), ids), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(z.to(at::kHalf), ids), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(z, ids.to(at::kInt)), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(z.flatten(), ids), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(z.unsqueeze(0), ids), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(z, ids.unsqueeze(1)), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(at::Tensor(), ids), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_reverse_kl(z, r.to(at::kBFloat16)), rt::tensor_error);
    CHECK_THROWS_AS(rt::token_logprobs(z, ids, {.row_mask = at::ones({n}, at::TensorOptions().dtype(at::kFloat))}),
                    rt::tensor_error);
    const at::Tensor meta = at::empty({n, v}, at::TensorOptions().device(at::kMeta));
    CHECK_THROWS_AS(rt::token_logprobs(meta, ids), rt::tensor_error);
    CHECK_THROWS_WITH(rt::token_logprobs(meta, ids), Catch::Matchers::ContainsSubstring("meta"));
    CHECK_THROWS_WITH(rt::token_logprobs(z.to(at::kDouble), ids),
                      Catch::Matchers::ContainsSubstring("rspo::adapters::torch::token_logprobs: logits is Double"));

    // mismatched sizes: shape_error
    CHECK_THROWS_AS(rt::token_logprobs(z, random_ids(n + 1, v, gen)), rspo::shape_error);
    CHECK_THROWS_AS(rt::token_reverse_kl(z, randn({n, v + 1}, gen)), rspo::shape_error);
    CHECK_THROWS_AS(rt::token_forward_kl(z, randn({n - 1, v}, gen)), rspo::shape_error);
    CHECK_THROWS_AS(rt::token_logprobs(z, ids, {.row_mask = at::ones({n + 2}, at::TensorOptions().dtype(at::kBool))}),
                    rspo::shape_error);
    CHECK_THROWS_AS(rt::token_logprobs(at::empty({n, 0}), ids), rspo::shape_error);

    // ids out of range: the kernels' index_error, naming the row
    at::Tensor bad_ids = ids.clone();
    bad_ids[2] = v;
    CHECK_THROWS_AS(rt::token_logprobs(z, bad_ids), rspo::index_error);
    CHECK_THROWS_WITH(rt::token_logprobs(z, bad_ids), Catch::Matchers::ContainsSubstring("ids[2] = 10 is outside [0, 10)"));
    bad_ids[2] = -1;
    CHECK_THROWS_AS(rt::token_logprobs(z, bad_ids), rspo::index_error);

    // bad values: domain_error (temperature, NaN / +inf logits, −inf target, differing masks)
    CHECK_THROWS_AS(rt::token_logprobs(z, ids, {.temperature = 0.0}), rspo::domain_error);
    CHECK_THROWS_AS(rt::token_logprobs(z, ids, {.temperature = -1.0}), rspo::domain_error);
    CHECK_THROWS_AS(rt::token_logprobs(z, ids, {.temperature = 1e-300}), rspo::domain_error);
    at::Tensor nan = z.clone();
    nan[1][3] = NAN;
    CHECK_THROWS_AS(rt::token_logprobs(nan, ids), rspo::domain_error);
    CHECK_THROWS_WITH(rt::token_logprobs(nan, ids), Catch::Matchers::ContainsSubstring("logits(1, 3) = nan"));
    at::Tensor target_inf = z.clone();
    target_inf[0][ids[0].item<std::int64_t>()] = -INFINITY;
    CHECK_THROWS_AS(rt::token_logprobs(target_inf, ids), rspo::domain_error);
    at::Tensor r_inf = r.clone();
    r_inf[3][0] = -INFINITY;  // μ = 0 where π_θ > 0: KL(π_θ ‖ μ) = ∞
    CHECK_THROWS_AS(rt::token_reverse_kl(z, r_inf), rspo::domain_error);
    CHECK_NOTHROW(rt::token_forward_kl(z, r_inf));  // KL(μ ‖ π_θ) is finite there

    // a bad upstream gradient surfaces from backward() unchanged
    const at::Tensor zf = z.clone().requires_grad_(true);
    const at::Tensor lp = rt::token_logprobs(zf, ids);
    const at::Tensor upstream = at::full({n}, NAN);
    CHECK_THROWS_AS(torch::autograd::grad({lp}, {zf}, {upstream}), rspo::domain_error);

    // every one of them is a std::invalid_argument
    CHECK_THROWS_AS(rt::token_logprobs(z.to(at::kDouble), ids), std::invalid_argument);
    CHECK_THROWS_AS(rt::token_logprobs(z, bad_ids), std::invalid_argument);
}

#if defined(RSPO_TORCH_CUDA)
TEST_CASE("CUDA tensors: the CUDA kernels give the CPU kernels' values and gradients", "[torch][tokens][cuda]") {
    if (!at::hasCUDA()) SKIP("no CUDA device");
    const std::int64_t n = 37, v = 32000;
    auto gen = generator(101);
    const auto type = GENERATE(at::kFloat, at::kBFloat16);
    const at::Tensor z = randn({n, v}, gen, type) * 2.0;
    const at::Tensor r = (z.to(at::kFloat) + randn({n, v}, gen)).to(type);
    const at::Tensor ids = random_ids(n, v, gen);
    const at::Tensor g = randn({n}, gen);
    const auto run = [&](const at::Device& device) {
        const at::Tensor zf = z.to(device).requires_grad_(true);
        const rt::token_term_tensors t = rt::token_terms(zf, r.to(device), ids.to(device), {.temperature = 0.9});
        const at::Tensor dz = grad_of((g.to(device) * (t.logprob + t.reverse_kl - t.forward_kl)).sum(), zf);
        return std::vector<at::Tensor>{t.logprob.cpu(), t.reverse_kl.cpu(), t.forward_kl.cpu(), dz.cpu().to(at::kDouble)};
    };
    const auto cpu = run(at::kCPU), gpu = run(at::Device(at::kCUDA, 0));
    CHECK(max_relative_error(gpu[0], cpu[0]) <= fp32_value_tolerance);
    CHECK(max_relative_error(gpu[1], cpu[1]) <= fp32_kl_tolerance);
    CHECK(max_relative_error(gpu[2], cpu[2]) <= fp32_kl_tolerance);
    const double bf16 = type == at::kBFloat16 ? bf16_gradient_relative : 0.0;
    CHECK(((gpu[3] - cpu[3]).abs() - (2.0 * bf16 * cpu[3].abs() + fp32_gradient_tolerance * max_abs(g) / 0.9))
              .max()
              .item<double>() <= 0.0);
    at::Tensor bad_ids = ids.clone();
    bad_ids[5] = v;
    CHECK_THROWS_AS(rt::token_logprobs(z.cuda(), bad_ids.cuda()), rspo::index_error);
    CHECK_THROWS_AS(rt::token_logprobs(z.cuda(), ids), rt::tensor_error);  // ids on another device
}
#endif

// ---------------------------------------------------------------------------------------------
// Sample losses: the adapter's backward (the library's ∂L/∂log π_θ) against torch's autograd of the
// same loss written with torch ops.
// ---------------------------------------------------------------------------------------------

namespace {

struct loss_inputs {
    at::Tensor theta, t, mu, win, reference;
};

/// Sequence log-probs in [−30, −0.1], as sums of token log-probs are.
loss_inputs random_loss_inputs(std::int64_t k, at::Generator& gen, at::ScalarType type = at::kDouble) {
    const auto lp = [&](std::int64_t size) {
        return (-0.1 - 29.9 * at::rand({size}, gen, at::TensorOptions().dtype(at::kDouble))).to(type);
    };
    loss_inputs in;
    in.theta = lp(k);
    in.t = (in.theta.to(at::kDouble) + 0.3 * at::randn({k}, gen, at::TensorOptions().dtype(at::kDouble)))
               .clamp_max(-0.01)
               .to(type);
    in.mu = lp(k);
    in.win = at::rand({k}, gen, at::TensorOptions().dtype(at::kDouble)).to(type);
    in.reference = lp(k + 2);
    return in;
}

/// The adapter's loss and gradients against a torch formula f(θ, θ_ref) in double.
template <class Algorithm, class Formula>
void check_loss_against_torch(const Algorithm& algorithm, const loss_inputs& in, bool with_reference, Formula formula) {
    const at::Tensor theta = in.theta.clone().requires_grad_(true);
    const at::Tensor reference = in.reference.clone().requires_grad_(true);
    const at::Tensor loss = rt::rspo_loss(algorithm, {.log_pi_theta = theta,
                                                      .log_pi_t = in.t,
                                                      .log_mu = in.mu,
                                                      .win_rate = in.win,
                                                      .reference_log_pi_theta = with_reference ? reference : at::Tensor()});
    REQUIRE(loss.dim() == 0);
    REQUIRE(loss.scalar_type() == in.theta.scalar_type());
    const double upstream = 3.0;  // backward scales the library's derivative by the upstream gradient
    const at::Tensor d_theta = grad_of(upstream * loss, theta);
    REQUIRE(d_theta.scalar_type() == in.theta.scalar_type());

    const at::Tensor theta_d = in.theta.to(at::kDouble).requires_grad_(true);
    const at::Tensor reference_d = in.reference.to(at::kDouble).requires_grad_(true);
    const at::Tensor expected = formula(theta_d, in.t.to(at::kDouble), in.mu.to(at::kDouble),
                                        in.win.to(at::kDouble), reference_d);
    const double tolerance = in.theta.scalar_type() == at::kDouble ? loss_tolerance : 1e-6;
    CHECK(std::abs(loss.item<double>() - expected.item<double>()) <= tolerance * (1.0 + std::abs(expected.item<double>())));
    CHECK(max_relative_error(d_theta, grad_of(upstream * expected, theta_d)) <= tolerance);
    if (with_reference) {
        const at::Tensor d_ref = grad_of(upstream * loss, reference);
        const at::Tensor d_ref_expected = grad_of(upstream * expected, reference_d);
        REQUIRE(d_ref.defined());
        CHECK(max_relative_error(d_ref, d_ref_expected.defined() ? d_ref_expected : at::zeros_like(d_ref_expected)) <=
              tolerance);
    }
}

}  // namespace

TEST_CASE("SPPO loss: gradient equals torch autograd of the square loss written in torch", "[torch][losses]") {
    const auto type = GENERATE(at::kDouble, at::kFloat);
    auto gen = generator(17);
    const loss_inputs in = random_loss_inputs(6, gen, type);
    const rspo::sppo algorithm{.eta = 2.5};
    check_loss_against_torch(algorithm, in, false, [&](auto theta, auto t, auto, auto win, auto) {
        return (theta - t - algorithm.eta * (win - 0.5)).pow(2).mean();
    });
}

TEST_CASE("RSPO losses: each regularizer's sample terms match the torch formula", "[torch][losses]") {
    auto gen = generator(19);
    loss_inputs in = random_loss_inputs(7, gen);
    const double eta = 3.0, tau = 0.05, lambda = 2.0 * eta * tau;
    const auto square = [eta](const at::Tensor& theta, const at::Tensor& t, const at::Tensor& win) {
        return (theta - t - eta * (win - 0.5)).pow(2);
    };
    SECTION("reverse KL (MMD): λ·d²/2") {
        check_loss_against_torch(rspo::make_rspo(rspo::reverse_kl{}, {.eta = eta, .tau = tau}), in, false,
                                 [&](auto theta, auto t, auto mu, auto win, auto) {
                                     return (square(theta, t, win) + lambda * (theta - mu).pow(2) / 2.0).mean();
                                 });
    }
    SECTION("forward KL, importance-weighted: λ·exp(min(−d, c)), the clamp binding on one sample") {
        in.mu[0] = -1.0;
        in.theta[0] = -13.0;  // −d = 12 > c = 10: the regularizer gives this sample no gradient
        check_loss_against_torch(rspo::make_rspo(rspo::forward_kl_importance{}, {.eta = eta, .tau = tau}), in, false,
                                 [&](auto theta, auto t, auto mu, auto win, auto) {
                                     return (square(theta, t, win) + lambda * at::exp((mu - theta).clamp_max(10.0))).mean();
                                 });
    }
    SECTION("forward KL on samples from μ: λ·mean(−log π_θ(y′)), a gradient for the reference samples") {
        check_loss_against_torch(rspo::make_rspo(rspo::forward_kl_direct{}, {.eta = eta, .tau = tau}), in, true,
                                 [&](auto theta, auto t, auto, auto win, auto reference) {
                                     return square(theta, t, win).mean() + lambda * (-reference).mean();
                                 });
    }
    SECTION("a composition: 0.5·KL(π‖μ) + 0.2·χ²") {
        check_loss_against_torch(
            rspo::make_rspo(0.5 * rspo::reverse_kl{} + 0.2 * rspo::chi_squared{}, {.eta = eta, .tau = tau}), in, false,
            [&](auto theta, auto t, auto mu, auto win, auto) {
                const at::Tensor d = theta - mu;
                // chi_squared's sample value: its surrogate exp(min(d, c)) over its factor ½.
                return (square(theta, t, win) +
                        lambda * (0.5 * d.pow(2) / 2.0 + 0.2 * at::exp(d.clamp_max(10.0)) / 0.5))
                    .mean();
            });
    }
}

TEST_CASE("INPO loss: gradients equal torch autograd of the pairwise square loss", "[torch][losses]") {
    auto gen = generator(23);
    const std::int64_t k = 8;
    const loss_inputs in = random_loss_inputs(k, gen);
    const rspo::inpo algorithm{.eta = 2.0, .tau = 0.1};
    // Winners and losers gathered from one log π_θ tensor: the gradients accumulate.
    const at::Tensor winners = at::tensor(std::vector<std::int64_t>{0, 2, 4, 6, 1});
    const at::Tensor losers = at::tensor(std::vector<std::int64_t>{1, 3, 5, 7, 2});
    const at::Tensor theta = in.theta.clone().requires_grad_(true);
    const at::Tensor loss = rt::inpo_loss(algorithm, {.winner_log_pi_theta = theta.index_select(0, winners),
                                                      .loser_log_pi_theta = theta.index_select(0, losers),
                                                      .winner_log_pi_t = in.t.index_select(0, winners),
                                                      .loser_log_pi_t = in.t.index_select(0, losers),
                                                      .winner_log_mu = in.mu.index_select(0, winners),
                                                      .loser_log_mu = in.mu.index_select(0, losers)});
    const at::Tensor theta_d = in.theta.clone().requires_grad_(true);
    const double mix = algorithm.eta * algorithm.tau;
    const auto pick = [](const at::Tensor& x, const at::Tensor& i) { return x.index_select(0, i); };
    const at::Tensor h = (pick(theta_d, winners) - pick(theta_d, losers)) -
                         mix * (pick(in.mu, winners) - pick(in.mu, losers)) -
                         (1.0 - mix) * (pick(in.t, winners) - pick(in.t, losers));
    const at::Tensor expected = (h - algorithm.eta / 2.0).pow(2).mean();
    CHECK(std::abs(loss.item<double>() - expected.item<double>()) <= loss_tolerance * (1.0 + expected.item<double>()));
    CHECK(max_relative_error(grad_of(-2.0 * loss, theta), grad_of(-2.0 * expected, theta_d)) <= loss_tolerance);
}

TEST_CASE("the losses reject bad tensors with typed errors", "[torch][losses][errors]") {
    auto gen = generator(29);
    const loss_inputs in = random_loss_inputs(5, gen);
    const rspo::sppo sppo{.eta = 1.0};
    const auto loss = [&](at::Tensor theta, at::Tensor t, at::Tensor win) {
        return rt::rspo_loss(sppo, {.log_pi_theta = theta, .log_pi_t = t, .win_rate = win});
    };
    CHECK_NOTHROW(loss(in.theta, in.t, in.win));
    CHECK_THROWS_AS(loss(in.theta.unsqueeze(1), in.t, in.win), rt::tensor_error);
    CHECK_THROWS_AS(loss(in.theta.to(at::kInt), in.t, in.win), rt::tensor_error);
    CHECK_THROWS_AS(loss(in.theta, at::Tensor(), in.win), rt::tensor_error);
    CHECK_THROWS_AS(loss(at::Tensor(), in.t, in.win), rt::tensor_error);
    CHECK_THROWS_AS(loss(in.theta, in.t.slice(0, 0, 4), in.win), rspo::shape_error);
    CHECK_THROWS_AS(loss(in.theta, in.t, in.win + 1.0), rspo::domain_error);  // P̂ > 1
    CHECK_THROWS_AS(loss(-in.theta, in.t, in.win), rspo::domain_error);       // log-probability > 0
    CHECK_THROWS_AS(rt::inpo_loss(rspo::inpo{}, {.winner_log_pi_theta = in.theta, .loser_log_pi_theta = in.theta}),
                    rt::tensor_error);
    CHECK_THROWS_AS(rt::rspo_loss(rspo::make_rspo(rspo::reverse_kl{}, {.eta = 1.0, .tau = 0.1}),
                                  {.log_pi_theta = in.theta, .log_pi_t = in.t, .win_rate = in.win}),
                    rspo::shape_error);  // τ > 0 needs log μ
}

// ---------------------------------------------------------------------------------------------
// Oracles and sequence sums
// ---------------------------------------------------------------------------------------------

namespace {
/// [B, K, K] pairwise preferences: M_ij = A_ij above the diagonal, 1 − A_ji below, ½ on it.
at::Tensor random_pairwise(std::int64_t b, std::int64_t k, at::Generator& gen) {
    const at::Tensor a = at::rand({b, k, k}, gen, at::TensorOptions().dtype(at::kDouble));
    const at::Tensor upper = at::triu(a, 1);
    return upper + at::tril(1.0 - upper.transpose(1, 2), -1) + 0.5 * at::eye(k, at::TensorOptions().dtype(at::kDouble));
}

Eigen::MatrixXd eigen_matrix(const at::Tensor& m) {
    Eigen::MatrixXd out(m.size(0), m.size(1));
    for (std::int64_t i = 0; i < m.size(0); ++i)
        for (std::int64_t j = 0; j < m.size(1); ++j) out(i, j) = m[i][j].item<double>();
    return out;
}
}  // namespace

TEST_CASE("win-rate estimates equal the library's scalar estimates", "[torch][oracles]") {
    auto gen = generator(31);
    const std::int64_t batch = 4, k = 5;
    const at::Tensor pairwise = random_pairwise(batch, k, gen);
    const auto estimator = GENERATE(rspo::win_rate_estimator::published, rspo::win_rate_estimator::unbiased);
    const at::Tensor p = rt::estimate_win_rates(pairwise, estimator);
    REQUIRE(p.sizes() == at::IntArrayRef({batch, k}));
    REQUIRE(p.scalar_type() == at::kDouble);
    for (std::int64_t b = 0; b < batch; ++b) {
        const Eigen::VectorXd expected = rspo::estimate_win_rates(eigen_matrix(pairwise[b]), estimator);
        for (std::int64_t i = 0; i < k; ++i) CHECK(p[b][i].item<double>() == expected[i]);
    }
    // [K, K] → [K]; float32 in, float32 out
    CHECK(bitwise_equal(rt::estimate_win_rates(pairwise[2], estimator), p[2]));
    // float32 matrices satisfy M + Mᵀ = 1 only to float32 round-off: checked to that, then projected.
    const at::Tensor p32 = rt::estimate_win_rates(pairwise.to(at::kFloat), estimator);
    CHECK(p32.scalar_type() == at::kFloat);
    CHECK(max_abs(p32.to(at::kDouble) - p) <= 1e-6);
    at::Tensor bad32 = pairwise.to(at::kFloat);
    bad32[1][3][2] = bad32[1][3][2] + 1e-4;
    CHECK_THROWS_WITH(rt::estimate_win_rates(bad32), Catch::Matchers::ContainsSubstring("pairwise[1]: pairwise(2, 3)"));

    at::Tensor bad = pairwise.clone();
    bad[2][0][1] = 0.9;
    bad[2][1][0] = 0.9;  // P + Pᵀ ≠ 1 in prompt 2
    CHECK_THROWS_AS(rt::estimate_win_rates(bad), rspo::domain_error);
    CHECK_THROWS_WITH(rt::estimate_win_rates(bad), Catch::Matchers::ContainsSubstring("pairwise[2]: "));
    CHECK_THROWS_AS(rt::estimate_win_rates(pairwise.slice(2, 0, k - 1)), rspo::shape_error);  // not square
    CHECK_THROWS_AS(rt::estimate_win_rates(pairwise[0][0]), rt::tensor_error);
}

TEST_CASE("pair selection equals the library's select_best_worst and draw_ordered_pairs", "[torch][oracles]") {
    auto gen = generator(37);
    const std::int64_t batch = 5, k = 6;
    at::Tensor win = at::rand({batch, k}, gen, at::TensorOptions().dtype(at::kDouble));
    win[3].fill_(0.5);         // all equal: (0, K−1)
    win[4][1] = 1.0;
    win[4][4] = 1.0;  // a tie for the best: the first index
    const rt::response_pair_tensors pairs = rt::select_best_worst(win);
    REQUIRE(pairs.winner.scalar_type() == at::kLong);
    REQUIRE(pairs.winner.sizes() == at::IntArrayRef{batch});
    for (std::int64_t b = 0; b < batch; ++b) {
        Eigen::VectorXd row(k);
        for (std::int64_t i = 0; i < k; ++i) row[i] = win[b][i].item<double>();
        const rspo::response_pair expected = rspo::select_best_worst(row);
        CHECK(pairs.winner[b].item<std::int64_t>() == static_cast<std::int64_t>(expected.winner));
        CHECK(pairs.loser[b].item<std::int64_t>() == static_cast<std::int64_t>(expected.loser));
    }
    CHECK(pairs.winner[3].item<std::int64_t>() == 0);
    CHECK(pairs.loser[3].item<std::int64_t>() == k - 1);
    CHECK(pairs.winner[4].item<std::int64_t>() == 1);
    const rt::response_pair_tensors single = rt::select_best_worst(win[1]);
    CHECK(single.winner.dim() == 0);
    CHECK(single.winner.item<std::int64_t>() == pairs.winner[1].item<std::int64_t>());
    CHECK_THROWS_AS(rt::select_best_worst(win.slice(1, 0, 1)), rspo::shape_error);  // K = 1
    CHECK_THROWS_AS(rt::select_best_worst(win + 1.0), rspo::domain_error);

    const at::Tensor pairwise = random_pairwise(batch, 7, gen);  // odd K: the last sample is left out
    rspo::random_engine rng(2024), replay(2024);
    const rt::response_pair_tensors drawn = rt::draw_ordered_pairs(pairwise, rng);
    REQUIRE(drawn.winner.sizes() == at::IntArrayRef({batch, 3}));
    for (std::int64_t b = 0; b < batch; ++b) {
        const auto expected = rspo::draw_ordered_pairs(eigen_matrix(pairwise[b]), replay);
        REQUIRE(expected.size() == 3);
        for (std::int64_t i = 0; i < 3; ++i) {
            CHECK(drawn.winner[b][i].item<std::int64_t>() == static_cast<std::int64_t>(expected[static_cast<std::size_t>(i)].winner));
            CHECK(drawn.loser[b][i].item<std::int64_t>() == static_cast<std::int64_t>(expected[static_cast<std::size_t>(i)].loser));
        }
    }
}

TEST_CASE("sequence sums over response positions, and their adjoint", "[torch][sequences]") {
    auto gen = generator(41);
    const std::int64_t batch = 3, seq_len = 6;
    const at::Tensor per_token = randn({batch, seq_len}, gen).requires_grad_(true);
    const at::Tensor offsets = at::tensor(std::vector<std::int64_t>{2, 0, 5});
    const at::Tensor lengths = at::tensor(std::vector<std::int64_t>{3, 6, 1});
    const at::Tensor mask = rt::response_row_mask(seq_len, offsets, lengths);
    REQUIRE(mask.scalar_type() == at::kBool);
    CHECK(mask.sum().item<std::int64_t>() == 10);
    CHECK(mask[0][1].item<bool>() == false);
    CHECK(mask[0][2].item<bool>() == true);
    CHECK(mask[0][5].item<bool>() == false);

    const at::Tensor sums = rt::sequence_sums(per_token, offsets, lengths);
    const at::Tensor expected = (per_token.to(at::kDouble) * mask).sum(1);
    CHECK(max_relative_error(sums, expected) <= fp32_value_tolerance);
    const at::Tensor g = randn({batch}, gen);
    const at::Tensor d = grad_of((sums * g).sum(), per_token);
    CHECK(bitwise_equal(d, (g.unsqueeze(1) * mask.to(at::kFloat))));

    CHECK_THROWS_AS(rt::sequence_sums(per_token, offsets, at::tensor(std::vector<std::int64_t>{3, 0, 1})),
                    rspo::domain_error);  // a sequence with no response token
    CHECK_THROWS_AS(rt::sequence_sums(per_token, offsets, at::tensor(std::vector<std::int64_t>{3, 6, 2})),
                    rspo::index_error);  // past the end
    CHECK_THROWS_AS(rt::sequence_sums(per_token.to(at::kDouble), offsets, lengths), rt::tensor_error);
}

// ---------------------------------------------------------------------------------------------
// rspo::adapters::torch::sequence_policy: a libtorch causal LM as a TrainableSequencePolicy
// ---------------------------------------------------------------------------------------------

namespace {

/// A small causal LM: embeddings, a running mean over the prefix (causal by construction), a
/// tanh layer with a residual, a linear head. ids [B, L] -> logits [B, L, V].
class tiny_lm_impl : public torch::nn::Cloneable<tiny_lm_impl> {
public:
    tiny_lm_impl(std::int64_t input_vocabulary, std::int64_t vocabulary, std::int64_t width)
        : input_vocabulary_(input_vocabulary), vocabulary_(vocabulary), width_(width) {
        reset();
    }
    void reset() override {
        embed = register_module("embed", torch::nn::Embedding(input_vocabulary_, width_));
        mix = register_module("mix", torch::nn::Linear(width_, width_));
        head = register_module("head", torch::nn::Linear(width_, vocabulary_));
    }
    at::Tensor forward(const at::Tensor& ids) {
        const at::Tensor e = embed(ids);
        const at::Tensor count = at::arange(1, ids.size(1) + 1, e.options()).view({1, -1, 1});
        return head(at::tanh(mix(e.cumsum(1) / count)) + e);
    }
    torch::nn::Embedding embed{nullptr};
    torch::nn::Linear mix{nullptr}, head{nullptr};

private:
    std::int64_t input_vocabulary_, vocabulary_, width_;
};
TORCH_MODULE_IMPL(tiny_lm, tiny_lm_impl);

using tiny_policy = rt::sequence_policy<tiny_lm>;

/// Prompts 0..P−1 are input ids V..V+P−1; the model embeds V + P ids.
tiny_policy make_tiny_policy(std::uint64_t seed, std::int64_t vocabulary = 6, std::int64_t prompts = 3,
                             std::size_t max_length = 5, std::int64_t width = 8) {
    ::torch::manual_seed(seed);
    return tiny_policy(tiny_lm(vocabulary + prompts, vocabulary, width),
                       {.vocabulary = static_cast<std::size_t>(vocabulary),
                        .max_length = max_length,
                        .input_vocabulary = static_cast<std::size_t>(vocabulary + prompts)},
                       [vocabulary](std::size_t x) { return rspo::token_sequence{static_cast<rspo::token>(vocabulary) + static_cast<rspo::token>(x)}; });
}

/// log π(y | x) written with torch ops on the module: log_softmax (float64) of the logits rows of y.
at::Tensor torch_log_prob(const tiny_lm& model, std::size_t x, const rspo::token_sequence& y,
                          std::int64_t vocabulary, double temperature = 1.0) {
    std::vector<std::int64_t> ids{vocabulary + static_cast<std::int64_t>(x)};
    ids.insert(ids.end(), y.begin(), y.end() - 1);
    const at::Tensor z = model.ptr()->forward(at::tensor(ids).view({1, -1}))[0];
    const at::Tensor lp = at::log_softmax(z.to(at::kDouble) / temperature, 1);
    const at::Tensor targets = at::tensor(std::vector<std::int64_t>(y.begin(), y.end()));
    return lp.gather(1, targets.unsqueeze(1)).sum();
}

/// Every parameter's gradient from torch::autograd::grad (not accumulated anywhere), flattened in
/// module->parameters() order.
at::Tensor flat_autograd(const at::Tensor& scalar, const std::vector<at::Tensor>& params) {
    const auto grads = ::torch::autograd::grad({scalar}, params, {}, false, false, true);
    std::vector<at::Tensor> flat;
    for (std::size_t i = 0; i < grads.size(); ++i)
        flat.push_back(grads[i].defined() ? grads[i].reshape({-1}) : at::zeros({params[i].numel()}, params[i].options()));
    return at::cat(flat).to(at::kDouble);
}

at::Tensor span_tensor(std::span<const float> s) {
    return at::from_blob(const_cast<float*>(s.data()), {static_cast<std::int64_t>(s.size())}, at::kFloat)
        .to(at::kDouble);
}

/// A module whose parameters are float64: the adapter must refuse it.
class double_lm_impl : public torch::nn::Cloneable<double_lm_impl> {
public:
    double_lm_impl() { reset(); }
    void reset() override { w = register_parameter("w", at::zeros({4, 4}, at::kDouble)); }
    at::Tensor forward(const at::Tensor& ids) { return w.index_select(0, ids.view({-1})).unsqueeze(0); }
    at::Tensor w;
};
TORCH_MODULE_IMPL(double_lm, double_lm_impl);

}  // namespace

TEST_CASE("sequence_policy models TrainableSequencePolicy, and the module concept rejects non-modules", "[torch][sequence_policy]") {
    STATIC_REQUIRE(rspo::TrainableSequencePolicy<tiny_policy>);
    STATIC_REQUIRE(rspo::TrainableSequencePolicy<rt::sequence_policy<tiny_lm, rspo::token_sequence>>);
    STATIC_REQUIRE(rt::CausalLanguageModel<tiny_lm>);
    STATIC_REQUIRE_FALSE(rt::CausalLanguageModel<int>);
    STATIC_REQUIRE_FALSE(rt::CausalLanguageModel<std::shared_ptr<tiny_lm_impl>>);  // a holder is required
}

TEST_CASE("the flat buffers alias the module's parameters and gradients", "[torch][sequence_policy]") {
    tiny_policy pi = make_tiny_policy(1);
    const std::vector<at::Tensor> params = pi.module()->parameters();
    std::int64_t total = 0;
    const float* base = pi.parameters().data();
    const float* grad_base = pi.gradient().data();
    for (const at::Tensor& p : params) {
        // Each parameter is the next window of the flat buffer, and so is its .grad.
        CHECK(p.data_ptr<float>() == base + total);
        REQUIRE(p.grad().defined());
        CHECK(p.grad().data_ptr<float>() == grad_base + total);
        CHECK(p.is_contiguous());
        total += p.numel();
    }
    CHECK(static_cast<std::size_t>(total) == pi.parameters().size());
    CHECK(pi.parameter_count() == pi.parameters().size());
    CHECK(pi.gradient().size() == pi.parameters().size());
    CHECK(pi.flat_parameters().data_ptr<float>() == base);

    // Writing through the span changes the module; torch's in-place ops change the span.
    const at::Tensor head_bias = pi.module()->head->bias;
    const std::size_t offset = static_cast<std::size_t>(head_bias.data_ptr<float>() - base);
    pi.parameters()[offset] = 1.5f;
    CHECK(head_bias[0].item<float>() == 1.5f);
    {
        const at::NoGradGuard no_grad;
        head_bias.add_(1.0);
    }
    CHECK(pi.parameters()[offset] == 2.5f);
}

TEST_CASE("autograd accumulates into the flat gradient in place", "[torch][sequence_policy]") {
    tiny_policy pi = make_tiny_policy(2);
    const std::vector<at::Tensor> params = pi.module()->parameters();
    const at::Tensor ids = at::tensor(std::vector<std::int64_t>{6, 1, 2, 3}).view({1, -1});
    const at::Tensor once = flat_autograd(pi.module()->forward(ids).pow(2).sum(), params);
    std::vector<const void*> pointers;
    for (const at::Tensor& p : params) pointers.push_back(p.grad().data_ptr());

    SECTION("backward() of a loss built from the module") {
        pi.zero_gradient();
        pi.module()->forward(ids).pow(2).sum().backward();
        pi.module()->forward(ids).pow(2).sum().backward();
        for (std::size_t i = 0; i < params.size(); ++i) CHECK(params[i].grad().data_ptr() == pointers[i]);
        CHECK(max_relative_error(span_tensor(pi.gradient()), 2.0 * once) <= 1e-6);
    }
    SECTION("accumulate_gradient: Σ dlogits · ∂z/∂θ") {
        const rspo::token_sequence y{1, 2, 3, 0};  // context 6, then y: the logits rows of ids above
        at::Tensor z;
        {
            const at::NoGradGuard no_grad;
            z = pi.module()->forward(at::tensor(std::vector<std::int64_t>{6, 1, 2, 3}).view({1, -1}))[0];
        }
        const at::Tensor dz = (2.0 * z).contiguous();  // ∂(Σz²)/∂z
        pi.zero_gradient();
        pi.accumulate_gradient(0, y, std::span<const float>(dz.data_ptr<float>(), static_cast<std::size_t>(dz.numel())));
        pi.accumulate_gradient(0, y, std::span<const float>(dz.data_ptr<float>(), static_cast<std::size_t>(dz.numel())));
        for (std::size_t i = 0; i < params.size(); ++i) CHECK(params[i].grad().data_ptr() == pointers[i]);
        CHECK(max_relative_error(span_tensor(pi.gradient()), 2.0 * once) <= 1e-6);
    }
    SECTION("zero_grad(set_to_none) and torch optimizers keep the flat gradient in use") {
        pi.module()->forward(ids).pow(2).sum().backward();
        pi.module()->zero_grad(/*set_to_none=*/false);
        CHECK(span_tensor(pi.gradient()).abs().max().item<double>() == 0.0);
        pi.module()->zero_grad(/*set_to_none=*/true);  // .grad undefined: the next call re-attaches it
        pi.module()->forward(ids).pow(2).sum().backward();
        CHECK(max_relative_error(span_tensor(pi.gradient()), once) <= 1e-6);
        for (std::size_t i = 0; i < params.size(); ++i) CHECK(params[i].grad().data_ptr() == pointers[i]);
        // SGD through torch steps the flat buffer: θ ← θ − lr·g.
        const at::Tensor before = span_tensor(pi.parameters());
        ::torch::optim::SGD sgd(params, ::torch::optim::SGDOptions(0.5));
        sgd.step();
        CHECK(max_abs(span_tensor(pi.parameters()) - (before - 0.5 * once)) <= 1e-6);
        sgd.zero_grad();
        CHECK(span_tensor(pi.gradient()).abs().max().item<double>() == 0.0);
    }
}

TEST_CASE("log_prob is the model's log-softmax summed over the response, and logits are causal", "[torch][sequence_policy]") {
    const tiny_policy pi = make_tiny_policy(3);
    const std::vector<rspo::token_sequence> responses{{0}, {4, 0}, {1, 2, 3, 4, 5}, {5, 5, 0}};
    for (const double temperature : {1.0, 0.7})
        for (std::size_t x = 0; x < 3; ++x)
            for (const auto& y : responses) {
                CAPTURE(temperature, x, y);
                const double expected = torch_log_prob(pi.module(), x, y, 6, temperature).item<double>();
                CHECK(std::abs(pi.log_prob(x, y, temperature) - expected) <= 1e-5 * (1.0 + std::abs(expected)));
                CHECK(pi.log_prob(x, y, temperature) == rspo::sequence_log_prob(pi, x, y, temperature));
            }
    CHECK(pi.log_prob(0, {1, 2}) == -std::numeric_limits<double>::infinity());  // neither ended nor cut
    CHECK(pi.log_prob(0, {0, 1}) == -std::numeric_limits<double>::infinity());  // the end token inside

    // Requirement 3 of SequencePolicy: a prefix's rows are a prefix of the rows.
    const rspo::token_sequence y{3, 1, 4, 1, 5};
    std::vector<float> full(5 * 6), prefix(3 * 6);
    pi.response_logits(1, y, full);
    pi.response_logits(1, {3, 1, 4}, prefix);
    for (std::size_t i = 0; i < prefix.size(); ++i) CHECK(prefix[i] == full[i]);
    std::vector<float> none;
    pi.response_logits(1, {}, none);  // an empty response has no rows
}

TEST_CASE("the gradient of sequence log-probs equals torch autograd of the same sum", "[torch][sequence_policy]") {
    tiny_policy pi = make_tiny_policy(4);
    const std::vector<std::size_t> prompts{0, 2, 1, 2};
    const std::vector<rspo::token_sequence> responses{{1, 2, 0}, {5, 0}, {3, 3, 3, 3, 3}, {0}};
    const std::vector<double> weights{0.7, -1.3, 0.25, 2.0};
    pi.zero_gradient();
    const std::vector<double> lp = rspo::accumulate_log_prob_gradient(
        pi, std::span<const std::size_t>(prompts), std::span<const rspo::token_sequence>(responses), weights);
    at::Tensor total = at::zeros({}, at::kDouble);
    for (std::size_t b = 0; b < responses.size(); ++b) {
        const at::Tensor l = torch_log_prob(pi.module(), prompts[b], responses[b], 6);
        CHECK(std::abs(lp[b] - l.item<double>()) <= 1e-5 * (1.0 + std::abs(lp[b])));
        total = total + weights[b] * l;
    }
    const at::Tensor expected = flat_autograd(total, pi.module()->parameters());
    // fp32 kernels and fp32 backward against a float64 softmax of the same fp32 logits.
    CHECK(max_abs(span_tensor(pi.gradient()) - expected) <= 1e-5 * (1.0 + max_abs(expected)));
}

TEST_CASE("copies are deep and independent, gradients included", "[torch][sequence_policy]") {
    tiny_policy pi = make_tiny_policy(5);
    pi.gradient()[3] = 0.5f;
    const tiny_policy copy = pi;
    REQUIRE(copy.parameters().size() == pi.parameters().size());
    CHECK(copy.parameters().data() != pi.parameters().data());
    CHECK(std::equal(copy.parameters().begin(), copy.parameters().end(), pi.parameters().begin()));
    CHECK(copy.gradient()[3] == 0.5f);
    CHECK(copy.module().ptr() != pi.module().ptr());
    // The copy's module reads the copy's buffer.
    CHECK(copy.module()->parameters().front().data_ptr<float>() == copy.parameters().data());
    const rspo::token_sequence y{2, 0};
    const double before = copy.log_prob(1, y);
    CHECK(before == pi.log_prob(1, y));

    for (float& p : pi.parameters()) p += 0.25f;  // changing the original leaves the copy as it was
    CHECK(copy.log_prob(1, y) == before);
    CHECK(pi.log_prob(1, y) != before);

    tiny_policy assigned = make_tiny_policy(6);
    assigned = copy;
    CHECK(assigned.parameters().data() != copy.parameters().data());
    CHECK(assigned.log_prob(1, y) == before);
    tiny_policy moved = std::move(assigned);
    CHECK(moved.log_prob(1, y) == before);
}

TEST_CASE("sampling depends on the engine alone and draws responses with their probabilities", "[torch][sequence_policy]") {
    // V = 3, at most 2 tokens: 7 complete responses, few enough to enumerate.
    const tiny_policy pi = make_tiny_policy(7, 3, 2, 2, 4);
    std::vector<rspo::token_sequence> all{{0}};
    for (rspo::token a = 1; a < 3; ++a)
        for (rspo::token b = 0; b < 3; ++b) all.push_back({a, b});
    double total = 0.0;
    for (const auto& y : all) total += std::exp(pi.log_prob(1, y));
    CHECK(std::abs(total - 1.0) <= 1e-5);

    rspo::random_engine a(11), b(11);
    const std::size_t draws = 4000;
    std::vector<double> count(all.size(), 0.0);
    for (std::size_t i = 0; i < draws; ++i) {
        const rspo::token_sequence y = pi.sample(1, a);
        REQUIRE(y == pi.sample(1, b));
        const auto it = std::find(all.begin(), all.end(), y);
        REQUIRE(it != all.end());
        count[static_cast<std::size_t>(it - all.begin())] += 1.0;
    }
    for (std::size_t k = 0; k < all.size(); ++k) {
        const double p = std::exp(pi.log_prob(1, all[k]));
        const double se = std::sqrt(p * (1.0 - p) / static_cast<double>(draws));
        CAPTURE(k, p, count[k]);
        CHECK(std::abs(count[k] / static_cast<double>(draws) - p) <= 4.0 * se + 1e-3);
    }
}

TEST_CASE("the batched members equal the per-response ones, and the helpers use them", "[torch][sequence_policy]") {
    STATIC_REQUIRE(rspo::BatchSampling<tiny_policy>);
    STATIC_REQUIRE(rspo::BatchScoring<tiny_policy>);
    STATIC_REQUIRE(rspo::BatchTraining<tiny_policy>);
    tiny_policy pi = make_tiny_policy(12);
    // Different contexts and lengths (so rows are padded), and an empty response (no rows).
    const std::vector<std::size_t> prompts{2, 0, 1, 0, 2};
    const std::vector<rspo::token_sequence> responses{{1, 2, 0}, {5, 0}, {}, {3, 3, 3, 3, 3}, {0}};
    std::size_t rows = 0;
    for (const auto& y : responses) rows += y.size();
    std::vector<float> batched(rows * 6), single(rows * 6);
    pi.batch_response_logits(prompts, responses, batched);
    for (std::size_t b = 0, at = 0; b < responses.size(); at += responses[b].size(), ++b)
        pi.response_logits(prompts[b], responses[b], std::span<float>(single).subspan(at * 6, responses[b].size() * 6));
    float largest = 0.0f;
    for (std::size_t i = 0; i < rows * 6; ++i) largest = std::max(largest, std::abs(batched[i] - single[i]));
    CHECK(largest <= 1e-5f);  // the same model; only the batched matmuls' rounding may differ

    at::Generator gen = at::detail::createCPUGenerator(13);
    const at::Tensor up = randn({static_cast<std::int64_t>(rows * 6)}, gen);
    const std::span<const float> dlogits(up.data_ptr<float>(), rows * 6);
    pi.zero_gradient();
    pi.accumulate_batch_gradient(prompts, responses, dlogits);
    const at::Tensor batched_grad = span_tensor(pi.gradient()).clone();
    pi.zero_gradient();
    for (std::size_t b = 0, at = 0; b < responses.size(); at += responses[b].size(), ++b)
        pi.accumulate_gradient(prompts[b], responses[b], dlogits.subspan(at * 6, responses[b].size() * 6));
    const at::Tensor single_grad = span_tensor(pi.gradient());
    CHECK(max_abs(batched_grad - single_grad) <= 1e-5 * (1.0 + max_abs(single_grad)));
    CHECK(max_abs(single_grad) > 0.0);
    CHECK_THROWS_AS(pi.batch_response_logits(prompts, responses, std::span<float>(batched).first(6)), rspo::shape_error);
    CHECK_THROWS_AS(pi.accumulate_batch_gradient(std::span<const std::size_t>(prompts).first(2), responses, dlogits),
                    rspo::shape_error);

    // sample_batch draws each response with its probability, deterministically for the engine.
    const tiny_policy small = make_tiny_policy(7, 3, 2, 2, 4);
    std::vector<rspo::token_sequence> all{{0}};
    for (rspo::token a = 1; a < 3; ++a)
        for (rspo::token b = 0; b < 3; ++b) all.push_back({a, b});
    rspo::random_engine a(21), b(21);
    const std::size_t draws = 4000;
    const std::vector<rspo::token_sequence> ys = rspo::sample_responses(small, 1, draws, a);
    REQUIRE(ys == small.sample_batch(1, draws, b, 1.0));
    std::vector<double> count(all.size(), 0.0);
    for (const auto& y : ys) {
        const auto it = std::find(all.begin(), all.end(), y);
        REQUIRE(it != all.end());
        count[static_cast<std::size_t>(it - all.begin())] += 1.0;
    }
    for (std::size_t k = 0; k < all.size(); ++k) {
        const double p = std::exp(small.log_prob(1, all[k]));
        const double se = std::sqrt(p * (1.0 - p) / static_cast<double>(draws));
        CAPTURE(k, p, count[k]);
        CHECK(std::abs(count[k] / static_cast<double>(draws) - p) <= 4.0 * se + 1e-3);
    }
    CHECK(rspo::sample_responses(small, 1, 0, a).empty());
}

TEST_CASE("a short self-play run through the library's driver lowers its loss", "[torch][sequence_policy]") {
    const rspo::toy_language_task task({.prompts = 3, .vocabulary = 6, .max_length = 5, .relevant_tokens = 2,
                                        .surrogate_shared = 1});
    const tiny_policy mu = make_tiny_policy(8, 6, 3, 5, 8);
    tiny_policy pi = mu;
    rspo::adam optimizer({.learning_rate = 1e-2});
    const std::vector<std::size_t> prompts{0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
    const rspo::iterative_result result = rspo::iterative_self_play(
        pi, mu, task.true_judge(), std::span<const std::size_t>(prompts),
        rspo::make_rspo(rspo::reverse_kl{}, {.eta = 5.0, .tau = 0.1}), optimizer,
        rspo::iterative_options{.iterations = 1, .epochs = 3, .prompts_per_step = 4, .seed = 3});
    REQUIRE(result.status == rspo::iterative_status::completed);
    const rspo::iteration_report& r = result.iterations.front();
    CAPTURE(r.first_epoch_loss, r.last_epoch_loss);
    CHECK(r.last_epoch_loss < r.first_epoch_loss);
    CHECK(max_abs(span_tensor(pi.parameters()) - span_tensor(mu.parameters())) > 0.0);  // μ untouched, π moved
}

TEST_CASE("sequence_policy rejects bad arguments with typed errors", "[torch][sequence_policy][errors]") {
    tiny_policy pi = make_tiny_policy(9);
    std::vector<float> out(2 * 6);
    CHECK_THROWS_AS(pi.response_logits(0, {1, 6}, out), rspo::index_error);        // token 6 of V = 6
    CHECK_THROWS_AS(pi.response_logits(0, {1, 2, 3}, out), rspo::shape_error);     // out too small
    CHECK_THROWS_AS(pi.response_logits(0, {1, 1, 1, 1, 1, 1}, out), rspo::shape_error);  // > max_length
    const std::vector<float> dz(2 * 6, 0.0f);
    CHECK_THROWS_AS(pi.accumulate_gradient(0, {1, 0}, std::span<const float>(dz).first(6)), rspo::shape_error);
    std::vector<float> bad(2 * 6, 0.0f);
    bad[7] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(pi.accumulate_gradient(0, {1, 0}, bad), rspo::domain_error);
    rspo::random_engine rng(0);
    CHECK_THROWS_AS(pi.sample(0, rng, 0.0), rspo::domain_error);
    CHECK_THROWS_WITH(pi.response_logits(3, {1, 0}, out),  // prompt 3 encodes as id 9 of 9
                      Catch::Matchers::ContainsSubstring("encode_prompt(x)[0] = 9 is outside [0, 9)"));

    const auto encode = [](std::size_t) { return rspo::token_sequence{6}; };
    CHECK_THROWS_AS(tiny_policy(tiny_lm(9, 6, 4), {.vocabulary = 1, .max_length = 5}, encode), rspo::domain_error);
    CHECK_THROWS_AS(tiny_policy(tiny_lm(9, 6, 4), {.vocabulary = 6, .max_length = 0}, encode), rspo::domain_error);
    CHECK_THROWS_AS(tiny_policy(tiny_lm(9, 6, 4), {.vocabulary = 6, .max_length = 5, .end_token = 6}, encode),
                    rspo::index_error);
    CHECK_THROWS_AS(tiny_policy(tiny_lm(9, 6, 4), {.vocabulary = 6, .max_length = 5}, nullptr), rspo::domain_error);
    CHECK_THROWS_AS(tiny_policy(tiny_lm(nullptr), {.vocabulary = 6, .max_length = 5}, encode), rt::tensor_error);
    CHECK_THROWS_AS(rt::sequence_policy<double_lm>(double_lm(), {.vocabulary = 4, .max_length = 2},
                                                   [](std::size_t) { return rspo::token_sequence{0}; }),
                    rt::tensor_error);

    // The module's output must have options.vocabulary columns.
    const tiny_policy wide(tiny_lm(9, 6, 4), {.vocabulary = 5, .max_length = 5, .input_vocabulary = 9}, encode);
    std::vector<float> five(5);
    CHECK_THROWS_WITH(wide.response_logits(0, {1}, five), Catch::Matchers::ContainsSubstring("it must return [1, 1, 5]"));
    CHECK_THROWS_AS(wide.response_logits(0, {1}, five), rspo::shape_error);
    const tiny_policy empty_context(tiny_lm(9, 6, 4), {.vocabulary = 6, .max_length = 5},
                                    [](std::size_t) { return rspo::token_sequence{}; });
    CHECK_THROWS_AS(empty_context.log_prob(0, {0}), rspo::domain_error);
    const tiny_policy long_context(tiny_lm(9, 6, 4), {.vocabulary = 6, .max_length = 5, .input_vocabulary = 9, .max_positions = 5},
                                   [](std::size_t) { return rspo::token_sequence{6, 7}; });
    CHECK_THROWS_AS(long_context.log_prob(0, {0}), rspo::shape_error);
}
