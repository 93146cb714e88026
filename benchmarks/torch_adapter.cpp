// The libtorch adapter (include/rspo/adapters/torch.hpp) against PyTorch's own idiom on the same
// tensors, in the same process and run (docs/performance.md, "libtorch adapter"):
//   rspo/<op>/<dtype>/<N>x<V>   rspo::adapters::torch::token_logprobs(logits, ids)
//   torch/<op>/<dtype>/<N>x<V>  at::log_softmax(logits, -1).gather(1, ids[:, None]).squeeze(1)
// with op = fwd (values under no_grad) or fwd_bwd (values, then backward of their sum into a fresh
// logits.grad, as a trainer's step does). Both sides run on at::get_num_threads() = 2 threads
// (--threads=<t> to change) and see identical tensors; the ratio table printed last is torch / rspo
// per row (> 1: the adapter is faster). bytes_per_second counts N·V·sizeof(logit) read, plus the
// same written by backward.
//
//   build/benchmarks/bench_torch_adapter --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
// --benchmark_filter=/64x32000 keeps to the small shape (the CTest smoke run does).

#include <rspo/adapters/torch.hpp>

#include "support/common.hpp"

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct shape {
    std::int64_t rows, cols;
    [[nodiscard]] std::string str() const { return std::to_string(rows) + "x" + std::to_string(cols); }
};
constexpr shape shapes[] = {{2048, 32000}, {512, 128256}, {64, 32000}};

enum class impl { rspo, torch };
const char* impl_name(impl i) { return i == impl::rspo ? "rspo" : "torch"; }

std::string bench_name(impl i, bool backward, at::ScalarType dtype, shape s) {
    return std::string(impl_name(i)) + (backward ? "/fwd_bwd/" : "/fwd/") +
           (dtype == at::kFloat ? "f32/" : "bf16/") + s.str();
}

/// N(0, 3²) logits (a trained model's spread) and uniform ids, fixed seeds.
struct tensors {
    at::Tensor logits, ids;
    tensors(shape s, at::ScalarType dtype) {
        at::manual_seed(7);
        logits = (at::randn({s.rows, s.cols}) * 3.0).to(dtype);
        ids = at::randint(s.cols, {s.rows}, at::kLong);
    }
};

at::Tensor token_values(impl i, const at::Tensor& logits, const at::Tensor& ids) {
    if (i == impl::rspo) return rspo::adapters::torch::token_logprobs(logits, ids);
    return at::log_softmax(logits, -1).gather(1, ids.unsqueeze(1)).squeeze(1);
}

void bm_logprob(benchmark::State& state, impl i, bool backward, at::ScalarType dtype, shape s) {
    const tensors t(s, dtype);
    for (auto _ : state) {
        if (backward) {
            const at::Tensor logits = t.logits.detach().requires_grad_(true);  // a fresh .grad each step
            at::Tensor lp = token_values(i, logits, t.ids);
            lp.sum().backward();
            benchmark::DoNotOptimize(logits.grad().data_ptr());
        } else {
            const at::NoGradGuard no_grad;
            at::Tensor lp = token_values(i, t.logits, t.ids);
            benchmark::DoNotOptimize(lp.data_ptr());
        }
    }
    const auto bytes = s.rows * s.cols * static_cast<std::int64_t>(t.logits.element_size()) * (backward ? 2 : 1);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * bytes);
}

/// Prints torch / rspo per (op, dtype, shape) after the usual console output.
class ratio_reporter : public rspo_bench::table_reporter {
public:
    explicit ratio_reporter(OutputOptions options) : table_reporter(options, "median") {}

private:
    void print_table(std::ostream& out) const override {
        out << "\ntorch / rspo (real time, the median when repeated; > 1: the adapter is faster)\n";
        char line[160];
        std::snprintf(line, sizeof line, "%-8s %-5s %-11s %10s %10s %8s\n", "op", "dtype", "shape", "rspo ms",
                      "torch ms", "ratio");
        out << line;
        for (const shape s : shapes)
            for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
                for (const bool backward : {false, true}) {
                    const double r = find(bench_name(impl::rspo, backward, dtype, s));
                    const double t = find(bench_name(impl::torch, backward, dtype, s));
                    if (std::isnan(r) || std::isnan(t)) continue;
                    std::snprintf(line, sizeof line, "%-8s %-5s %-11s %10.3f %10.3f %7.2fx\n",
                                  backward ? "fwd_bwd" : "fwd", dtype == at::kFloat ? "f32" : "bf16",
                                  s.str().c_str(), r, t, t / r);
                    out << line;
                }
    }
};

}  // namespace

int main(int argc, char** argv) {
    int threads = 2;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg.starts_with("--threads=")) {
            threads = std::stoi(std::string(arg.substr(arg.find('=') + 1)));
            continue;
        }
        argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = nullptr;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    at::set_num_threads(threads);
    for (const shape s : shapes)
        for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
            for (const bool backward : {false, true})
                for (const impl i : {impl::rspo, impl::torch})
                    benchmark::RegisterBenchmark(bench_name(i, backward, dtype, s).c_str(), bm_logprob, i, backward,
                                                 dtype, s)
                        ->Unit(benchmark::kMillisecond)
                        ->UseRealTime();
    benchmark::AddCustomContext("threads", std::to_string(threads) + " (at::set_num_threads; the adapter uses the same)");
    ratio_reporter reporter(benchmark::ConsoleReporter::OO_Tabular);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}
