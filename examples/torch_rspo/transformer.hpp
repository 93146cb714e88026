#pragma once
// A small decoder-only transformer in libtorch (example code, not part of the library): token and
// learned position embeddings, pre-LayerNorm blocks of causal multi-head self-attention and a GELU
// MLP, a final LayerNorm and a linear head. forward maps ids [B, L] (int64) to next-token logits
// [B, L, V] (float32), row l seeing ids[:, 0..l] only: what rspo::adapters::torch::sequence_policy
// needs. Every submodule is created in reset(), so Cloneable::clone (the policy's deep copy) works.

#include <ATen/ATen.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace torch_rspo {

struct transformer_options {
    std::int64_t input_vocabulary = 0;  ///< ids the model embeds (response tokens and prompt ids)
    std::int64_t vocabulary = 0;        ///< V: the logits' size (response tokens)
    std::int64_t positions = 0;         ///< the longest input
    std::int64_t width = 64;
    std::int64_t heads = 4;
    std::int64_t layers = 2;
    std::int64_t hidden = 256;  ///< the MLP's inner width
    double init_std = 0.02;     ///< N(0, σ²) for embeddings and weights (GPT-2's)
};

/// x + attention(LN(x)), then x + MLP(LN(x)).
class block_impl : public torch::nn::Cloneable<block_impl> {
public:
    explicit block_impl(const transformer_options& options) : options_(options) { reset(); }

    void reset() override {
        const std::int64_t w = options_.width;
        ln_attention = register_module("ln_attention", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
        // No bias on q, k, v: softmax ignores a key bias exactly (it adds the same q·b to every
        // score of a row), so its gradient would be pure round-off, which Adam scales up to full
        // steps: parameters that move without changing the model.
        qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(w, 3 * w).bias(false)));
        projection = register_module("projection", torch::nn::Linear(w, w));
        ln_mlp = register_module("ln_mlp", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
        up = register_module("up", torch::nn::Linear(w, options_.hidden));
        down = register_module("down", torch::nn::Linear(options_.hidden, w));
        torch::nn::init::normal_(qkv->weight, 0.0, options_.init_std);
        for (auto* linear : {&projection, &up, &down}) {
            torch::nn::init::normal_((*linear)->weight, 0.0, options_.init_std);
            torch::nn::init::zeros_((*linear)->bias);
        }
    }

    /// x [B, L, W]; future [L, L] bool, true above the diagonal (the positions a row must not see).
    at::Tensor forward(const at::Tensor& x, const at::Tensor& future) {
        const std::int64_t B = x.size(0), L = x.size(1), W = options_.width, H = options_.heads, D = W / H;
        // [B, L, 3, H, D] -> [3, B, H, L, D]
        const at::Tensor qkv_heads = qkv(ln_attention(x)).view({B, L, 3, H, D}).permute({2, 0, 3, 1, 4});
        const at::Tensor q = qkv_heads[0], k = qkv_heads[1], v = qkv_heads[2];
        const at::Tensor scores =
            at::matmul(q, k.transpose(-2, -1)).mul(1.0 / std::sqrt(static_cast<double>(D)))
                .masked_fill(future, -std::numeric_limits<float>::infinity());
        const at::Tensor attended = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({B, L, W});
        const at::Tensor h = x + projection(attended);
        return h + down(at::gelu(up(ln_mlp(h))));
    }

    torch::nn::LayerNorm ln_attention{nullptr}, ln_mlp{nullptr};
    torch::nn::Linear qkv{nullptr}, projection{nullptr}, up{nullptr}, down{nullptr};

private:
    transformer_options options_;
};
TORCH_MODULE_IMPL(block, block_impl);

class transformer_impl : public torch::nn::Cloneable<transformer_impl> {
public:
    explicit transformer_impl(const transformer_options& options) : options_(options) {
        if (options_.input_vocabulary < options_.vocabulary || options_.vocabulary < 2 || options_.positions < 1 ||
            options_.width < 1 || options_.heads < 1 || options_.width % options_.heads != 0 || options_.layers < 1 ||
            options_.hidden < 1)
            throw std::invalid_argument(
                "torch_rspo::transformer: need input_vocabulary >= vocabulary >= 2, positions >= 1, "
                "layers >= 1, hidden >= 1 and width a multiple of heads");
        reset();
    }

    void reset() override {
        const std::int64_t w = options_.width;
        token = register_module("token", torch::nn::Embedding(options_.input_vocabulary, w));
        position = register_module("position", torch::nn::Embedding(options_.positions, w));
        blocks = register_module("blocks", torch::nn::ModuleList());
        for (std::int64_t l = 0; l < options_.layers; ++l) blocks->push_back(block(options_));
        ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
        head = register_module("head", torch::nn::Linear(w, options_.vocabulary));
        torch::nn::init::normal_(token->weight, 0.0, options_.init_std);
        torch::nn::init::normal_(position->weight, 0.0, options_.init_std);
        torch::nn::init::normal_(head->weight, 0.0, options_.init_std);
        torch::nn::init::zeros_(head->bias);
        future = register_buffer(
            "future", at::ones({options_.positions, options_.positions}, at::TensorOptions().dtype(at::kBool)).triu(1));
    }

    /// ids [B, L] int64, L <= positions -> logits [B, L, V] float32.
    at::Tensor forward(const at::Tensor& ids) {
        const std::int64_t L = ids.size(1);
        if (L > options_.positions)
            throw std::invalid_argument("torch_rspo::transformer: an input of " + std::to_string(L) +
                                        " ids is longer than positions = " + std::to_string(options_.positions));
        at::Tensor x = token(ids) + position(at::arange(L, at::TensorOptions().dtype(at::kLong)));
        const at::Tensor mask = future.narrow(0, 0, L).narrow(1, 0, L);
        for (const auto& b : *blocks) x = b->as<block_impl>()->forward(x, mask);
        return head(ln_final(x));
    }

    [[nodiscard]] const transformer_options& options() const noexcept { return options_; }

    torch::nn::Embedding token{nullptr}, position{nullptr};
    torch::nn::ModuleList blocks{nullptr};
    torch::nn::LayerNorm ln_final{nullptr};
    torch::nn::Linear head{nullptr};
    at::Tensor future;  ///< [positions, positions] bool: true where a row must not look

private:
    transformer_options options_;
};
TORCH_MODULE_IMPL(transformer, transformer_impl);

}  // namespace torch_rspo
