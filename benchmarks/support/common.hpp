// What bench_kernels (kernels.cpp, CPU) and bench_cuda_kernels (cuda_kernels.cu, GPU) share: the
// cases (shapes, ops, dtypes), the benchmark names built from them, the bytes an op must move, the
// command-line flags of the table printed after the runs, and the reporter that collects the times
// it uses.
// Both programs name an op the same way (benchmarks/compare_torch*.py read their JSON by name).
//
// Plain C++20 and Google Benchmark only: cuda_kernels.cu compiles it with nvcc (host code).

#pragma once

#include <rspo/kernels/types.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace rspo_bench {

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------
/// N rows (tokens) × V columns (vocabulary) of logits.
struct shape {
    std::size_t rows;
    std::size_t cols;
    [[nodiscard]] std::size_t size() const { return rows * cols; }
    [[nodiscard]] std::string str() const { return std::to_string(rows) + "x" + std::to_string(cols); }
    friend bool operator==(shape, shape) = default;
};

/// One library call: which outputs it computes, and whether it is the backward (gradient) call.
struct op_spec {
    const char* name;
    bool logprob;
    bool reverse_kl;
    bool forward_kl;
    bool backward;
    [[nodiscard]] bool kl() const { return reverse_kl || forward_kl; }
    /// Input matrices read: the logits, and the reference logits for a KL.
    [[nodiscard]] std::size_t inputs() const { return kl() ? 2 : 1; }
};

inline constexpr op_spec ops[] = {
    {"logprob_fwd", true, false, false, false},
    {"logprob_fwd_bwd", true, false, false, true},
    {"kl_fwd", false, true, true, false},
    {"reverse_kl_fwd_bwd", false, true, false, true},
    {"forward_kl_fwd_bwd", false, false, true, true},
    {"fused_fwd", true, true, true, false},
    {"fused_fwd_bwd", true, true, true, true},
};

template <rspo::kernels::logit_type T>
constexpr const char* dtype_name() {
    return std::is_same_v<T, float> ? "f32" : "bf16";
}

/// "<impl>/<op>/<dtype>/<N>x<V>", e.g. "rspo/logprob_fwd/bf16/2048x32000" (bench_kernels appends
/// "/threads:<t>").
inline std::string op_name(std::string_view impl, const op_spec& op, const char* dtype, shape s) {
    return std::string(impl) + "/" + op.name + "/" + dtype + "/" + s.str();
}

/// Bytes an op must move: each input matrix read once, the gradient written once.
inline std::size_t bytes_moved(std::size_t inputs, bool write, std::size_t element_size, shape s) {
    return (inputs + (write ? 1 : 0)) * s.size() * element_size;
}

/// The "min" statistic (ComputeStatistics): with repetitions, the fastest one, a steadier figure
/// on a busy machine than the median.
inline double minimum(const std::vector<double>& v) {
    return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
}

// ---------------------------------------------------------------------------------------------
// The table after the runs
// ---------------------------------------------------------------------------------------------
/// The programs' own flags, taken out of argv before Google Benchmark parses the rest.
struct table_flags {
    /// The table goes with the console format; another --benchmark_format gets the plain reporter.
    bool console = true;
    /// --ratio_statistic=<median|min|mean>: the aggregate the table uses when repeated.
    std::string statistic = "median";
};

/// Removes --ratio_statistic=... from argv (argc and argv[argc] = nullptr updated) and notes a
/// --benchmark_format other than console, which it leaves for benchmark::Initialize.
inline table_flags take_table_flags(int& argc, char** argv) {
    table_flags flags;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg.starts_with("--ratio_statistic=")) {
            flags.statistic = arg.substr(arg.find('=') + 1);
            continue;
        }
        if (arg.starts_with("--benchmark_format=") && arg != "--benchmark_format=console") flags.console = false;
        argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = nullptr;
    return flags;
}

/// Runs the benchmarks with `Reporter` (a ConsoleReporter constructed from (OutputOptions,
/// statistic) that prints the table) when the output is the console, else with the default one.
template <class Reporter>
void run_benchmarks(const table_flags& flags) {
    if (flags.console) {
        Reporter reporter(benchmark::ConsoleReporter::OO_Tabular, flags.statistic);
        benchmark::RunSpecifiedBenchmarks(&reporter);
    } else {
        benchmark::RunSpecifiedBenchmarks();
    }
}

/// Whether a run failed or was skipped (Google Benchmark 1.8 replaced error_occurred by skipped).
template <class Run>
bool run_failed(const Run& run) {
    if constexpr (requires { run.error_occurred; })
        return run.error_occurred;
    else
        return static_cast<bool>(run.skipped);
}

/// Per benchmark name, the milliseconds a table uses: of the single run, or, when the benchmarks
/// are repeated, of the aggregate `statistic` (median, min, mean), which replaces the single runs
/// it summarises (they arrive first, if shown). Failed runs are left out.
class run_times {
public:
    explicit run_times(std::string statistic) : statistic_(std::move(statistic)) {}

    void add(const benchmark::BenchmarkReporter::Run& run) {
        using Run = benchmark::BenchmarkReporter::Run;
        if (run_failed(run)) return;
        const bool aggregate = run.run_type == Run::RT_Aggregate;
        if (aggregate && run.aggregate_name != statistic_) return;
        const double to_ms = 1e3 / benchmark::GetTimeUnitMultiplier(run.time_unit);
        const std::string& name = run.run_name.function_name;
        if (aggregate || !aggregated_.contains(name)) {
            real_ms_[name] = run.GetAdjustedRealTime() * to_ms;
            cpu_ms_[name] = run.GetAdjustedCPUTime() * to_ms;
        }
        if (aggregate) aggregated_.insert(name);
    }
    void add(const std::vector<benchmark::BenchmarkReporter::Run>& runs) {
        for (const auto& run : runs) add(run);
    }

    [[nodiscard]] const std::string& statistic() const { return statistic_; }
    /// Real (wall-clock, or manual) time; NaN when `name` has no successful run.
    [[nodiscard]] double real_ms(const std::string& name) const { return find(real_ms_, name); }
    /// CPU time as the benchmark measured it (the process's, with MeasureProcessCPUTime); NaN if none.
    [[nodiscard]] double cpu_ms(const std::string& name) const { return find(cpu_ms_, name); }

private:
    std::string statistic_;
    std::map<std::string, double> real_ms_;
    std::map<std::string, double> cpu_ms_;
    std::set<std::string> aggregated_;

    [[nodiscard]] static double find(const std::map<std::string, double>& in, const std::string& name) {
        const auto it = in.find(name);
        return it == in.end() ? std::nan("") : it->second;
    }
};

/// A console reporter that prints a table after the usual output, from the times of the runs it
/// reported (run_times). The table is the derived class's print_table.
class table_reporter : public benchmark::ConsoleReporter {
public:
    /// `statistic`: the aggregate the table uses when the benchmarks are repeated.
    table_reporter(OutputOptions options, std::string statistic)
        : ConsoleReporter(options), times_(std::move(statistic)) {}

    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        times_.add(runs);
    }

    void Finalize() override {
        print_table(GetOutputStream());
        ConsoleReporter::Finalize();
    }

protected:
    virtual void print_table(std::ostream& out) const = 0;

    [[nodiscard]] const run_times& times() const { return times_; }
    /// Real time in ms of the benchmark `name`; NaN when it did not run.
    [[nodiscard]] double find(const std::string& name) const { return times_.real_ms(name); }

private:
    run_times times_;
};

/// A table cell: x printed with `format`, or "-" for NaN (a benchmark that did not run).
inline std::string cell(double x, const char* format) {
    if (std::isnan(x)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, format, x);
    return buf;
}

}  // namespace rspo_bench
