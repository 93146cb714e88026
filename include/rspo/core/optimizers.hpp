#pragma once
// First-order optimizers over a flat parameter vector: Adam and RMSProp, as in PyTorch (the
// published SPPO/RSPO runs train with RMSProp). They act on std::span<float> so that any
// TrainableSequencePolicy (parameters() / gradient()) can be trained by any of them. Both descend:
// θ ← θ − (step), i.e. `grad` is the gradient of a loss to minimize.

#include <rspo/core/check.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace rspo {

/// Opt-in tag: `using optimizer_category = rspo::optimizer_tag;`.
struct optimizer_tag {};

// clang-format off
/// An optimizer updates parameters in place from their gradient. Requirements the compiler cannot
/// check:
///  1. step(params, grad) moves params against grad (a descent method) and reads nothing but its
///     own state, params and grad: the same sequence of calls gives the same parameters;
///  2. the state is sized by the first step; later steps must pass the same size (shape_error);
///  3. a non-finite gradient entry is rejected (domain_error) before any parameter is changed.
template <class O>
concept Optimizer =
    requires { typename O::optimizer_category; } &&
    std::derived_from<typename O::optimizer_category, optimizer_tag> &&
    requires(O& o, std::span<float> params, std::span<const float> grad) { o.step(params, grad); };
// clang-format on

namespace detail {

/// Sizes agree with each other and with the state (when it exists); the gradient is finite.
inline void check_optimizer_step(const char* fn, std::span<float> params,
                                 std::span<const float> grad, std::size_t state_size) {
    check_size(fn, "grad", grad.size(), params.size(), "params");
    check_not_empty(fn, "params", params.size());
    if (state_size != 0)
        check_size(fn, "params", params.size(), state_size,
                   "the optimizer's state (sized by its first step)");
    for (std::size_t i = 0; i < grad.size(); ++i)
        if (!std::isfinite(grad[i]))
            throw domain_error(fn, "grad",
                               indexed("grad", i) + " = " + format_value(grad[i]) + " is not finite");
}

}  // namespace detail

struct adam_options {
    double learning_rate = 1e-3;  ///< α
    double beta1 = 0.9;           ///< decay of the first-moment average, in [0, 1)
    double beta2 = 0.999;         ///< decay of the second-moment average, in [0, 1)
    double epsilon = 1e-8;        ///< added to √v̂ (outside the root, as PyTorch and the paper)

    void validate(const char* fn) const {
        check_positive(fn, "options.learning_rate", learning_rate);
        check_non_negative(fn, "options.beta1", beta1);
        check_non_negative(fn, "options.beta2", beta2);
        if (!(beta1 < 1.0))
            throw domain_error(fn, "options.beta1",
                               "options.beta1 = " + detail::format_value(beta1) + " must be < 1");
        if (!(beta2 < 1.0))
            throw domain_error(fn, "options.beta2",
                               "options.beta2 = " + detail::format_value(beta2) + " must be < 1");
        check_positive(fn, "options.epsilon", epsilon);
    }
};

/// Adam (Kingma & Ba 2015): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
/// θ ← θ − α·m̂/(√v̂ + ε) with the bias corrections m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).
/// State in double, so float parameters do not lose small updates to the moments' round-off.
class adam {
public:
    using optimizer_category = optimizer_tag;

    adam() = default;
    explicit adam(adam_options options) : options_(options) { options_.validate("rspo::adam"); }

    void step(std::span<float> params, std::span<const float> grad) {
        detail::check_optimizer_step("rspo::adam::step", params, grad, m_.size());
        if (m_.empty()) {
            m_.assign(params.size(), 0.0);
            v_.assign(params.size(), 0.0);
        }
        ++steps_;
        const double b1 = options_.beta1, b2 = options_.beta2;
        const double c1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
        const double c2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
        for (std::size_t i = 0; i < params.size(); ++i) {
            const double g = grad[i];
            m_[i] = b1 * m_[i] + (1.0 - b1) * g;
            v_[i] = b2 * v_[i] + (1.0 - b2) * g * g;
            const double update = options_.learning_rate * (m_[i] / c1) / (std::sqrt(v_[i] / c2) + options_.epsilon);
            params[i] = static_cast<float>(static_cast<double>(params[i]) - update);
        }
    }

    [[nodiscard]] std::size_t steps() const noexcept { return steps_; }
    [[nodiscard]] const adam_options& options() const noexcept { return options_; }
    /// Forget the moments and the step count (the next step sizes the state anew).
    void reset() noexcept {
        m_.clear();
        v_.clear();
        steps_ = 0;
    }

private:
    adam_options options_{};
    std::vector<double> m_{}, v_{};
    std::size_t steps_ = 0;
};

struct rmsprop_options {
    double learning_rate = 1e-2;  ///< α (PyTorch's default)
    double alpha = 0.99;          ///< decay of the squared-gradient average, in [0, 1)
    double epsilon = 1e-8;        ///< added to √v (outside the root, as PyTorch)

    void validate(const char* fn) const {
        check_positive(fn, "options.learning_rate", learning_rate);
        check_non_negative(fn, "options.alpha", alpha);
        if (!(alpha < 1.0))
            throw domain_error(fn, "options.alpha",
                               "options.alpha = " + detail::format_value(alpha) + " must be < 1");
        check_positive(fn, "options.epsilon", epsilon);
    }
};

/// RMSProp as torch.optim.RMSprop (no momentum, not centered): v ← αv + (1−α)g² from v = 0,
/// θ ← θ − lr·g/(√v + ε). There is no bias correction, so the first step is lr/√(1−α) · sign(g).
class rmsprop {
public:
    using optimizer_category = optimizer_tag;

    rmsprop() = default;
    explicit rmsprop(rmsprop_options options) : options_(options) { options_.validate("rspo::rmsprop"); }

    void step(std::span<float> params, std::span<const float> grad) {
        detail::check_optimizer_step("rspo::rmsprop::step", params, grad, v_.size());
        if (v_.empty()) v_.assign(params.size(), 0.0);
        ++steps_;
        const double a = options_.alpha;
        for (std::size_t i = 0; i < params.size(); ++i) {
            const double g = grad[i];
            v_[i] = a * v_[i] + (1.0 - a) * g * g;
            const double update = options_.learning_rate * g / (std::sqrt(v_[i]) + options_.epsilon);
            params[i] = static_cast<float>(static_cast<double>(params[i]) - update);
        }
    }

    [[nodiscard]] std::size_t steps() const noexcept { return steps_; }
    [[nodiscard]] const rmsprop_options& options() const noexcept { return options_; }
    void reset() noexcept {
        v_.clear();
        steps_ = 0;
    }

private:
    rmsprop_options options_{};
    std::vector<double> v_{};
    std::size_t steps_ = 0;
};

static_assert(Optimizer<adam>);
static_assert(Optimizer<rmsprop>);

}  // namespace rspo
