// torch_rspo: a small decoder-only transformer in libtorch (examples/torch_rspo/transformer.hpp),
// trained by supervised learning on the toy language task's corpus to become μ, then aligned with
// RSPO (regularizer 0.1·KL(μ‖π) + 1.0·KL(π‖μ), the paper's best) for a few iterations through the
// library's driver rspo::iterative_self_play, judged by the task's true judge. The model enters
// the library through rspo::adapters::torch::sequence_policy; μ's SFT runs the library's token
// kernels as a torch autograd function (rspo::adapters::torch::token_logprobs). It prints the
// same evaluation tables as examples/paper_table (one seed, so no ± SE) and checks that RSPO
// lowered its loss and raised the true judge's win rate against μ (exit code 3 if not).
//
// Data parallel: `--world W --rank R --port P` (one process per rank, as torchrun starts them) or
// `--launch W` (starts the W ranks of itself on a free port and waits for them). The ranks meet
// through a c10d::TCPStore on 127.0.0.1 and a c10d::ProcessGroupGloo; the driver gives each rank
// its share of every minibatch and calls the all-reduce below on the gradient before each step,
// so a W-process run equals the 1-process run up to the order of float sums (docs/integration.md
// states the tolerance `--compare` checks).
//
// Outputs in --out: torch_rspo.csv (metrics and training report per iteration; t = 0 is μ) and
// the flat float32 parameters of μ and of the final π (mu_parameters.f32, parameters.f32).
//
//   torch_rspo [--quick] [--seed N] [--iterations T] [--out DIR] [--threads N] [--quiet]
//              [--launch W | --world W --rank R --port P] [--compare DIR]

// g++ 12 at -O3 can report a bogus -Wrestrict inside libstdc++'s string concatenation once the
// library's error-message code is inlined (GCC PR 105329); as in tests/kernels.cpp.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <rspo/adapters/torch.hpp>
#include <rspo/adapters/torch_sequence_policy.hpp>
#include <rspo/rspo.hpp>

#include "command_line.hpp"
#include "metric_table.hpp"
#include "transformer.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#if defined(TORCH_RSPO_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;  // for posix_spawn: the ranks inherit this process's environment

namespace {

using namespace metric_table;  // the metrics, tables and CSV fields shared with paper_table
namespace rt = rspo::adapters::torch;
using policy = rt::sequence_policy<torch_rspo::transformer>;

// ------------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------------

constexpr const char* usage_text =
    "usage: torch_rspo [--quick] [--seed N] [--iterations T] [--out DIR] [--threads N] [--quiet]\n"
    "                  [--launch W | --world W --rank R --port P] [--compare DIR]\n"
    "  --quick         CI-sized settings (smaller corpus, fewer prompts and evaluation samples)\n"
    "  --seed N        seed of the whole pipeline: corpus, initialization, self-play, evaluation\n"
    "  --iterations T  self-play iterations, 1..20 (default 3, 2 with --quick)\n"
    "  --learning-rate A  rspo::adam's step size in self-play (default 3e-4)\n"
    "  --out DIR       output directory (default torch_rspo_out)\n"
    "  --threads N     torch intra-op threads per process, 1..256 (default 1)\n"
    "  --quiet         no progress on stderr\n"
    "  --launch W      start W data-parallel ranks of this program on a free loopback port\n"
    "  --world W       data parallel: W processes in all (with --rank and --port)\n"
    "  --rank R        this process's rank in [0, W); rank 0 hosts the TCP store and reports\n"
    "  --port P        the TCP store's port on 127.0.0.1\n"
    "  --compare DIR   check the results against those another run wrote to DIR (exit code 4\n"
    "                  if they differ by more than docs/integration.md's tolerance)\n"
    "  --fault-skip-gradient-sum  data parallel without summing gradients (each rank steps on\n"
    "                  its own share): a broken all-reduce, for the test that --compare sees it\n";

struct options {
    bool quick = false;
    std::uint64_t seed = 0;
    std::optional<std::size_t> iterations = std::nullopt;
    std::optional<double> learning_rate = std::nullopt;
    std::filesystem::path out = "torch_rspo_out";
    unsigned threads = 1;
    bool quiet = false;
    std::size_t launch = 0;  ///< > 0: start this many ranks and wait
    std::size_t world = 1;
    std::size_t rank = 0;
    std::uint16_t port = 0;
    std::optional<std::filesystem::path> compare = std::nullopt;
    bool fault_skip_gradient_sum = false;
};

using command_line::usage_error;

/// Accepts "--flag value" and "--flag=value". Returns nullopt after printing --help.
std::optional<options> parse_command_line(int argc, char** argv) {
    options opt;
    bool rank_given = false, port_given = false;
    command_line::reader args(argc, argv);
    while (args.next()) {
        const std::string& flag = args.flag();
        if (flag == "--help" || flag == "-h") {
            std::cout << usage_text;
            return std::nullopt;
        } else if (flag == "--quick") {
            args.no_value();
            opt.quick = true;
        } else if (flag == "--quiet") {
            args.no_value();
            opt.quiet = true;
        } else if (flag == "--fault-skip-gradient-sum") {
            args.no_value();
            opt.fault_skip_gradient_sum = true;
        } else if (flag == "--seed") {
            opt.seed = args.count(0, 1'000'000'000);
        } else if (flag == "--iterations") {
            opt.iterations = args.count(1, 20);
        } else if (flag == "--learning-rate") {
            opt.learning_rate = args.positive();
        } else if (flag == "--threads") {
            opt.threads = static_cast<unsigned>(args.count(1, 256));
        } else if (flag == "--launch") {
            opt.launch = args.count(1, 64);
        } else if (flag == "--world") {
            opt.world = args.count(1, 64);
        } else if (flag == "--rank") {
            opt.rank = args.count(0, 63);
            rank_given = true;
        } else if (flag == "--port") {
            opt.port = static_cast<std::uint16_t>(args.count(1, 65535));
            port_given = true;
        } else if (flag == "--out") {
            opt.out = args.non_empty();
        } else if (flag == "--compare") {
            opt.compare = args.non_empty();
        } else {
            args.unknown();
        }
    }
    if (opt.launch > 0 && (opt.world != 1 || rank_given || port_given))
        throw usage_error("--launch starts the ranks itself: do not combine it with --world, --rank or --port");
    if (opt.world > 1 && !port_given) throw usage_error("--world " + std::to_string(opt.world) + " needs --port");
    if (opt.rank >= opt.world)
        throw usage_error("--rank " + std::to_string(opt.rank) + " is outside [0, --world = " +
                          std::to_string(opt.world) + ")");
    return opt;
}

// ------------------------------------------------------------------------------------------------
// Settings: the task, the model, μ's SFT, self-play and evaluation
// ------------------------------------------------------------------------------------------------

struct settings {
    rspo::toy_task_options task = {};  ///< the library's defaults: 8 prompts, V = 16, <= 12 tokens

    // The model: 2 pre-LN layers of width 64, 4 heads; prompt x is the input id V + x.
    std::int64_t width = 64, heads = 4, layers = 2, hidden = 128;

    // μ: maximum likelihood on the synthetic corpus with torch::optim::Adam.
    std::size_t corpus_per_prompt = 512;
    std::size_t heldout_per_prompt = 256;
    std::size_t sft_epochs = 8;
    double sft_learning_rate = 3e-3;
    std::size_t sft_batch = 64;

    // Self-play through rspo::iterative_self_play, rspo::adam on the flat parameters.
    double eta = 5.0;  ///< η, as paper_table
    double tau = 0.1;  ///< τ, so λ = 2ητ = 1
    double learning_rate = 3e-4;
    std::size_t iterations = 3;
    std::size_t epochs = 2;  ///< two passes, so the report shows the loss falling on fixed samples
    std::size_t samples_per_prompt = 5;
    std::size_t instances_per_prompt = 32;
    std::size_t prompts_per_step = 16;

    evaluation_sizes evaluation = {};
    bool quick = false;
};

settings make_settings(const options& opt) {
    settings s;
    if (opt.quick) {
        s.quick = true;
        s.corpus_per_prompt = 128;
        s.heldout_per_prompt = 32;
        s.sft_epochs = 6;
        s.iterations = 2;
        s.instances_per_prompt = 16;
        s.evaluation = {.win_rate_samples = 64, .diversity_samples = 16, .proxy_samples = 32, .kl_samples = 16};
    }
    if (opt.iterations) s.iterations = *opt.iterations;
    if (opt.learning_rate) s.learning_rate = *opt.learning_rate;
    return s;
}

/// Independent seeds for every random stream: (seed, stream, t) -> 64 bits.
enum class stream : std::uint64_t { corpus = 1, init, shuffle, heldout, training, evaluation };

std::uint64_t derive_seed(std::uint64_t seed, stream which, std::size_t t = 0) {
    return rspo::mix64(rspo::mix64(seed ^ (static_cast<std::uint64_t>(which) << 48)) ^ static_cast<std::uint64_t>(t));
}

// ------------------------------------------------------------------------------------------------
// Data parallel: the collectives, on Gloo
// ------------------------------------------------------------------------------------------------

/// This process's rank and the collectives it uses (all no-ops for one process).
class collectives {
public:
    collectives() = default;
#if defined(TORCH_RSPO_GLOO)
    collectives(std::size_t rank, std::size_t world, std::uint16_t port) : rank_(rank), world_(world) {
        // Rank 0 hosts the store; every rank's Gloo device binds to the loopback interface. On many
        // machines: the store at rank 0's address and createDefaultDevice() (docs/integration.md).
        c10d::TCPStoreOptions store_options;
        store_options.port = port;
        store_options.isServer = rank == 0;
        store_options.numWorkers = static_cast<std::size_t>(world);
        store_options.timeout = std::chrono::seconds(120);
        const auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store_options);
        auto group_options = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(600));
        group_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(world),
                                                              group_options);
    }
#endif

    [[nodiscard]] std::size_t rank() const noexcept { return rank_; }
    [[nodiscard]] std::size_t world() const noexcept { return world_; }

    /// In-place all-reduce (SUM) of host memory, as a CPU tensor over the same memory.
    template <class T>
    void sum(std::span<T> values) const {
        reduce(at::from_blob(values.data(), {static_cast<std::int64_t>(values.size())},
                             at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value)),
               true);
    }
    /// In-place all-reduce (MAX).
    void max(std::span<double> values) const {
        reduce(at::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, at::kDouble), false);
    }
    /// Rank 0's tensor to every rank, in place.
    void broadcast(const at::Tensor& t) const {
        if (world_ == 1) return;
#if defined(TORCH_RSPO_GLOO)
        std::vector<at::Tensor> tensors{t};
        group_->broadcast(tensors, c10d::BroadcastOptions{.rootRank = 0})->wait();
#endif
    }

    /// The driver's hooks.
    [[nodiscard]] rspo::data_parallel driver_hooks(bool skip_gradient_sum) const {
        if (world_ == 1) return {};
        return {.rank = rank_,
                .world = world_,
                .sum_floats = [this, skip_gradient_sum](std::span<float> g) {
                    if (!skip_gradient_sum) sum(g);
                },
                .sum_doubles = [this](std::span<double> v) { sum(v); }};
    }

private:
    void reduce([[maybe_unused]] const at::Tensor& t, [[maybe_unused]] bool sum) const {
        if (world_ == 1) return;
#if defined(TORCH_RSPO_GLOO)
        std::vector<at::Tensor> tensors{t};
        c10d::AllreduceOptions o;
        o.reduceOp = sum ? c10d::ReduceOp::SUM : c10d::ReduceOp::MAX;
        group_->allreduce(tensors, o)->wait();
#endif
    }

    std::size_t rank_ = 0;
    std::size_t world_ = 1;
#if defined(TORCH_RSPO_GLOO)
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
#endif
};

// ------------------------------------------------------------------------------------------------
// The model and μ
// ------------------------------------------------------------------------------------------------

/// A freshly initialized transformer as a policy: prompt x is the input id V + x.
policy make_policy(const settings& s, const rspo::toy_language_task& task, std::uint64_t init_seed) {
    const auto V = static_cast<std::int64_t>(task.vocabulary_size());
    const auto P = static_cast<std::int64_t>(task.prompts());
    const auto L = static_cast<std::int64_t>(task.max_length());
    torch::manual_seed(init_seed);  // the initialization draws from torch's default generator
    torch_rspo::transformer model(torch_rspo::transformer_options{.input_vocabulary = V + P,
                                                                  .vocabulary = V,
                                                                  .positions = L,  // 1 context id + L − 1
                                                                  .width = s.width,
                                                                  .heads = s.heads,
                                                                  .layers = s.layers,
                                                                  .hidden = s.hidden});
    const std::size_t prompts = task.prompts();
    return policy(std::move(model),
                  {.vocabulary = task.vocabulary_size(),
                   .max_length = task.max_length(),
                   .end_token = task.end_token(),
                   .input_vocabulary = static_cast<std::size_t>(V + P),
                   .max_positions = static_cast<std::size_t>(L)},
                  [V, prompts](std::size_t x) {
                      rspo::check_index("torch_rspo: encode_prompt", "x", x, prompts);
                      return rspo::token_sequence{static_cast<rspo::token>(V + static_cast<std::int64_t>(x))};
                  });
}

struct sft_report {
    double initial_nll = 0.0;  ///< held-out NLL of the initialized model
    double final_nll = 0.0;    ///< held-out NLL of μ
    double floor_nll = 0.0;    ///< the corpus distribution's own NLL on the held-out corpus
    std::vector<double> epoch_nll = {};
    std::size_t steps = 0;
};

/// Supervised fine-tuning of `mu` on the corpus, batched: a minibatch is one forward of
/// [B, L] ids (context id + response, right-padded), the per-token log-probs from the library's
/// kernels as a torch autograd function (padding masked out), and torch::optim::Adam on the
/// module's parameters, which alias mu.parameters().
sft_report fit_mu(policy& mu, const settings& s, const rspo::toy_language_task& task, std::uint64_t seed) {
    const auto corpus = task.make_corpus(
        {.responses_per_prompt = s.corpus_per_prompt, .seed = derive_seed(seed, stream::corpus)});
    const auto heldout = task.make_corpus(
        {.responses_per_prompt = s.heldout_per_prompt, .seed = derive_seed(seed, stream::heldout)});
    const std::span<const rspo::corpus_example> heldout_span(heldout);
    sft_report report;
    report.initial_nll = rspo::corpus_nll(mu, heldout_span);
    for (const auto& e : heldout) report.floor_nll -= task.corpus_policy().log_prob(e.prompt, e.response);
    report.floor_nll /= static_cast<double>(heldout.size());

    const auto L = static_cast<std::int64_t>(task.max_length());
    const auto V = static_cast<std::int64_t>(task.vocabulary_size());
    torch::optim::Adam adam(mu.module()->parameters(), torch::optim::AdamOptions(s.sft_learning_rate));
    std::vector<std::size_t> order(corpus.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    rspo::random_engine rng(derive_seed(seed, stream::shuffle));
    for (std::size_t epoch = 0; epoch < s.sft_epochs; ++epoch) {
        for (std::size_t i = order.size() - 1; i > 0; --i)
            std::swap(order[i], order[std::min(i, static_cast<std::size_t>(rspo::uniform01(rng) * static_cast<double>(i + 1)))]);
        double epoch_total = 0.0;
        for (std::size_t begin = 0; begin < order.size(); begin += s.sft_batch) {
            const std::size_t end = std::min(order.size(), begin + s.sft_batch);
            const auto B = static_cast<std::int64_t>(end - begin);
            at::Tensor ids = at::zeros({B, L}, at::kLong), targets = at::zeros({B, L}, at::kLong),
                       mask = at::zeros({B, L}, at::kBool);
            auto id = ids.accessor<std::int64_t, 2>();
            auto target = targets.accessor<std::int64_t, 2>();
            auto keep = mask.accessor<bool, 2>();
            for (std::int64_t b = 0; b < B; ++b) {
                const auto& e = corpus[order[begin + static_cast<std::size_t>(b)]];
                id[b][0] = V + static_cast<std::int64_t>(e.prompt);
                for (std::size_t t = 0; t < e.response.size(); ++t) {
                    const auto tt = static_cast<std::int64_t>(t);
                    if (tt + 1 < L) id[b][tt + 1] = e.response[t];
                    target[b][tt] = e.response[t];
                    keep[b][tt] = true;
                }
            }
            const at::Tensor logits = mu.module()->forward(ids).reshape({B * L, V});
            // −(1/B) Σ_b log π(y_b | x_b): the kernels' per-token log-probs, padding rows masked.
            const at::Tensor token_lp = rt::token_logprobs(logits, targets.reshape({B * L}), {.row_mask = mask.reshape({B * L})});
            const at::Tensor loss = -token_lp.sum() / static_cast<double>(B);
            mu.zero_gradient();
            loss.backward();
            adam.step();
            epoch_total += loss.item<double>() * static_cast<double>(B);
            ++report.steps;
        }
        report.epoch_nll.push_back(epoch_total / static_cast<double>(corpus.size()));
    }
    mu.zero_gradient();
    report.final_nll = rspo::corpus_nll(mu, heldout_span);
    return report;
}

// ------------------------------------------------------------------------------------------------
// Evaluation, shared out over the ranks
// ------------------------------------------------------------------------------------------------

/// Which rank evaluates a part: the large judged part alone on rank 0, the three small ones
/// (together about as costly) spread over the others.
std::size_t part_owner(std::size_t part, std::size_t world) {
    if (world == 1 || part == judged_part) return 0;
    return 1 + (part - 1) % (world - 1);
}

struct evaluation_context {
    const settings* config;
    const rspo::toy_language_task* task;
    const policy* mu;
    std::span<const std::size_t> prompts;  ///< each toy prompt once
    std::uint64_t seed;
    const collectives* group;
};

/// Every rank calls this; each evaluates its parts, and a sum gives every rank all the metrics.
metric_values evaluate(const evaluation_context& c, const policy& pi, std::size_t t, bool is_reference) {
    metric_values v{};
    v.fill(0.0);
    for (std::size_t part = 0; part < evaluation_part_count; ++part)
        if (part_owner(part, c.group->world()) == c.group->rank())
            evaluate_part(static_cast<evaluation_part>(part), v, c.config->evaluation, *c.task, pi, *c.mu,
                          c.prompts, derive_seed(c.seed, stream::evaluation, t), is_reference);
    c.group->sum(std::span<double>(v));
    return v;
}

/// Evaluates π after each iteration (the driver updates it in place) and records the report.
class evaluating_observer {
public:
    evaluating_observer(evaluation_context c, const policy& pi, std::vector<metric_values>& metrics,
                        std::vector<rspo::iteration_report>& reports, bool verbose)
        : c_(c), pi_(&pi), metrics_(&metrics), reports_(&reports), verbose_(verbose) {}

    void on_iteration(const rspo::iteration_report& r) {
        const auto start = std::chrono::steady_clock::now();
        (*metrics_)[r.iteration] = evaluate(c_, *pi_, r.iteration, false);
        (*reports_)[r.iteration - 1] = r;
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        if (verbose_) {
            const metric_values& m = (*metrics_)[r.iteration];
            std::fprintf(stderr,
                         "t = %zu/%zu: loss %.4g -> %.4g (first -> last epoch); LC %.1f, win %.1f, length %.2f, "
                         "KL %.2f (evaluated in %.1f s)\n",
                         r.iteration, r.total_iterations, r.first_epoch_loss, r.last_epoch_loss, m[lc_win_rate],
                         m[win_rate], m[length], m[kl_to_reference], took.count());
        }
    }

private:
    evaluation_context c_;
    const policy* pi_;
    std::vector<metric_values>* metrics_;
    std::vector<rspo::iteration_report>* reports_;
    bool verbose_;
};

/// Each iteration a fresh optimizer, as the paper's iterations are separate runs (as paper_table).
struct fresh_optimizer_each_iteration {
    rspo::adam* optimizer;
    void on_iteration(const rspo::iteration_report&) const { optimizer->reset(); }
};

// ------------------------------------------------------------------------------------------------
// Results: CSV, parameter files, checks and the comparison with another run
// ------------------------------------------------------------------------------------------------

struct run_result {
    sft_report sft;
    std::vector<metric_values> metrics;            ///< [T + 1]; t = 0 is μ
    std::vector<rspo::iteration_report> training;  ///< [T]
    rspo::iterative_status status = rspo::iterative_status::completed;
    std::string message;
    std::vector<float> mu_parameters, parameters;  ///< μ's and the final π's flat parameters
    double rank_disagreement = 0.0;                ///< max over ranks of max |θ_rank − θ_0|
};

constexpr const char* training_columns[] = {"train_first_epoch_loss", "train_last_epoch_loss", "train_mean_loss",
                                            "train_chosen_win_rate", "train_sample_length"};

void write_csv(const std::filesystem::path& file, const run_result& r) {
    std::ofstream out(file);
    if (!out) throw std::runtime_error("cannot open '" + file.string() + "'");
    out << "iteration";
    for (const auto& info : metric_infos) out << ',' << info.column;
    for (const char* c : training_columns) out << ',' << c;
    out << '\n';
    for (std::size_t t = 0; t < r.metrics.size(); ++t) {
        out << t;
        for (const double v : r.metrics[t]) out << ',' << csv_number(v);
        if (t == 0) {
            out << ",,,,,";
        } else {
            const rspo::iteration_report& tr = r.training[t - 1];
            for (const double v : {tr.first_epoch_loss, tr.last_epoch_loss, tr.mean_loss, tr.mean_win_rate_chosen,
                                   tr.mean_length})
                out << ',' << csv_number(v);
        }
        out << '\n';
    }
    close_checked(out, file);
}

/// The CSV's numbers by column name, per row (empty fields are NaN).
std::vector<std::map<std::string, double>> read_csv(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in) throw std::runtime_error("cannot open '" + file.string() + "'");
    const auto split = [](const std::string& line) {
        std::vector<std::string> fields;
        std::stringstream ss(line);
        for (std::string f; std::getline(ss, f, ',');) fields.push_back(f);
        if (!line.empty() && line.back() == ',') fields.emplace_back();
        return fields;
    };
    std::string line;
    if (!std::getline(in, line)) throw std::runtime_error("'" + file.string() + "' is empty");
    const std::vector<std::string> header = split(line);
    std::vector<std::map<std::string, double>> rows;
    while (std::getline(in, line)) {
        const std::vector<std::string> fields = split(line);
        if (fields.size() != header.size())
            throw std::runtime_error("'" + file.string() + "': a row has " + std::to_string(fields.size()) +
                                     " fields, the header " + std::to_string(header.size()));
        std::map<std::string, double> row;
        for (std::size_t i = 0; i < fields.size(); ++i)
            row[header[i]] = fields[i].empty() ? metric_table::nan : std::stod(fields[i]);
        rows.push_back(std::move(row));
    }
    return rows;
}

void write_floats(const std::filesystem::path& file, std::span<const float> values) {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
    close_checked(out, file);
}

std::vector<float> read_floats(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    if (!in) throw std::runtime_error("cannot open '" + file.string() + "'");
    std::vector<float> values(static_cast<std::size_t>(in.tellg()) / sizeof(float));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
    if (!in) throw std::runtime_error("cannot read '" + file.string() + "'");
    return values;
}

double max_abs_difference(std::span<const float> a, std::span<const float> b) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    double m = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    return m;
}

// How far a data-parallel run may be from the single-process one (docs/integration.md has the
// measurements behind them). The runs draw the same samples and differ only in the order of float
// sums (each rank's share of the gradient, then the all-reduce), ~1e-7 relative per step, which
// Adam carries through the steps; as long as no sample's categorical draw flips, the metrics
// differ only by the log-probabilities' round-off.
constexpr double parameter_tolerance = 1e-4;  ///< max |Δθ|
constexpr double metric_tolerance = 1e-4;     ///< |Δ| of every metric and training statistic

/// Compares this run with the one in `dir`; prints each difference; true if within tolerance.
bool compare_with(const std::filesystem::path& dir, const run_result& r, std::ostream& out) {
    const auto theirs = read_csv(dir / "torch_rspo.csv");
    const std::vector<float> their_mu = read_floats(dir / "mu_parameters.f32");
    const std::vector<float> their_theta = read_floats(dir / "parameters.f32");
    bool ok = theirs.size() == r.metrics.size();
    double worst_metric = 0.0;
    std::string worst_name = "-";
    for (std::size_t t = 0; t < std::min(theirs.size(), r.metrics.size()); ++t) {
        const auto check = [&](const std::string& name, double mine) {
            const auto it = theirs[t].find(name);
            const double other = it == theirs[t].end() ? metric_table::nan : it->second;
            if (std::isnan(mine) && std::isnan(other)) return;
            const double d = std::abs(mine - other);
            if (!(d <= worst_metric)) {
                worst_metric = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
                worst_name = name + " at t = " + std::to_string(t);
            }
        };
        for (std::size_t k = 0; k < metric_count; ++k) check(metric_infos[k].column, r.metrics[t][k]);
        if (t > 0) {
            const rspo::iteration_report& tr = r.training[t - 1];
            const double values[] = {tr.first_epoch_loss, tr.last_epoch_loss, tr.mean_loss, tr.mean_win_rate_chosen,
                                     tr.mean_length};
            for (std::size_t i = 0; i < std::size(training_columns); ++i) check(training_columns[i], values[i]);
        }
    }
    const double d_mu = max_abs_difference(r.mu_parameters, their_mu);
    const double d_theta = max_abs_difference(r.parameters, their_theta);
    ok = ok && worst_metric <= metric_tolerance && d_mu <= parameter_tolerance && d_theta <= parameter_tolerance;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "\nComparison with %s:\n  max |delta mu| = %.3g, max |delta theta| = %.3g (tolerance %g);\n"
                  "  largest metric difference %.3g (%s; tolerance %g)\n  -> %s\n",
                  dir.string().c_str(), d_mu, d_theta, parameter_tolerance, worst_metric, worst_name.c_str(),
                  metric_tolerance, ok ? "MATCH (within tolerance)" : "MISMATCH");
    out << buf;
    return ok;
}

// ------------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------------

run_result run(const settings& s, const options& opt, const collectives& group) {
    const bool leader = group.rank() == 0;
    const bool verbose = leader && !opt.quiet;
    const auto log = [&](const std::string& text) {
        if (verbose) std::cerr << text << '\n' << std::flush;
    };
    const rspo::toy_language_task task(s.task);
    std::vector<std::size_t> prompts(task.prompts());
    std::iota(prompts.begin(), prompts.end(), std::size_t{0});
    std::vector<std::size_t> training_prompts;  // every toy prompt instances_per_prompt times, interleaved
    for (std::size_t i = 0; i < s.instances_per_prompt; ++i)
        training_prompts.insert(training_prompts.end(), prompts.begin(), prompts.end());

    run_result r;
    // μ: rank 0 fits it and broadcasts its parameters, so every rank holds the same bits whatever
    // its CPU or BLAS (an SFT repeated on every rank agrees only where the float arithmetic does).
    policy mu = make_policy(s, task, derive_seed(opt.seed, stream::init));
    log("torch_rspo: " + std::to_string(mu.parameter_count()) + " parameters; fitting mu (" +
        std::to_string(s.sft_epochs) + " epochs on " + std::to_string(s.corpus_per_prompt * task.prompts()) +
        " responses)...");
    auto start = std::chrono::steady_clock::now();
    if (leader) r.sft = fit_mu(mu, s, task, opt.seed);
    group.broadcast(mu.flat_parameters());
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    log("  held-out NLL " + fixed(r.sft.initial_nll, 3) + " -> " + fixed(r.sft.final_nll, 3) + " nats (" +
        fixed(took.count(), 1) + " s)");

    const evaluation_context context{&s, &task, &mu, prompts, opt.seed, &group};
    r.metrics.assign(s.iterations + 1, missing_metrics());
    r.training.assign(s.iterations, rspo::iteration_report{});
    start = std::chrono::steady_clock::now();
    r.metrics[0] = evaluate(context, mu, 0, true);
    took = std::chrono::steady_clock::now() - start;
    log("  mu evaluated in " + fixed(took.count(), 1) + " s; self-play on " + std::to_string(group.world()) +
        " process(es)...");

    policy pi = mu;  // π_θ starts at μ
    rspo::adam optimizer({.learning_rate = s.learning_rate});
    const rspo::iterative_options options{.iterations = s.iterations,
                                          .epochs = s.epochs,
                                          .samples_per_prompt = s.samples_per_prompt,
                                          .prompts_per_step = s.prompts_per_step,
                                          .seed = derive_seed(opt.seed, stream::training),
                                          .parallel = group.driver_hooks(opt.fault_skip_gradient_sum)};
    const auto method = rspo::make_rspo(0.1 * rspo::forward_kl{} + 1.0 * rspo::reverse_kl{}, {.eta = s.eta, .tau = s.tau});
    evaluating_observer observer(context, pi, r.metrics, r.training, verbose);
    const rspo::iterative_result result =
        rspo::iterative_self_play(pi, mu, task.true_judge(), std::span<const std::size_t>(training_prompts), method,
                                  optimizer, options, observer, fresh_optimizer_each_iteration{&optimizer});
    r.status = result.status;
    r.message = result.message;
    r.mu_parameters.assign(mu.parameters().begin(), mu.parameters().end());
    r.parameters.assign(pi.parameters().begin(), pi.parameters().end());

    // The ranks must hold the same π: compare each with rank 0's.
    if (group.world() > 1) {
        at::Tensor rank0 = pi.flat_parameters().clone();
        group.broadcast(rank0);
        std::array<double, 1> d{(pi.flat_parameters() - rank0).abs().max().item<double>()};
        group.max(std::span<double>(d));
        r.rank_disagreement = d[0];
    }
    return r;
}

void print_results(std::ostream& out, const settings& s, const options& opt, const run_result& r,
                   std::size_t parameter_count, std::size_t world) {
    const double lambda = rspo::lambda_from_tau(s.eta, s.tau);
    const rspo::toy_task_options& t = s.task;
    const std::string indent = "\n              ";
    out << "rspo torch_rspo: a libtorch transformer aligned with RSPO on the toy language task"
        << (s.quick ? "  [--quick]" : "") << "\n\n"
        << "Settings:\n"
        << "  task        the library's defaults: " << t.prompts << " prompts, vocabulary " << t.vocabulary << ", <= "
        << t.max_length << " tokens; seed " << opt.seed << "\n"
        << "  model       decoder-only transformer: " << s.layers << " pre-LN layers, width " << s.width << ", "
        << s.heads << " heads, MLP " << s.hidden << ", causal mask; " << parameter_count << " float32 parameters"
        << indent << "in one flat buffer (rspo::adapters::torch::sequence_policy)\n"
        << "  mu          SFT with torch::optim::Adam (lr " << g(s.sft_learning_rate) << ", " << s.sft_epochs
        << " epochs, batch " << s.sft_batch << ") on " << s.corpus_per_prompt << " corpus responses per prompt,"
        << indent << "token log-probs by rspo::adapters::torch::token_logprobs\n"
        << "  self-play   rspo::iterative_self_play, RSPO with 0.1 KL(mu||pi) + 1.0 KL(pi||mu), eta = " << g(s.eta)
        << ", tau = " << g(s.tau) << " (lambda = " << g(lambda) << ")," << indent << "true judge, K = "
        << s.samples_per_prompt << ", best and worst kept, " << s.instances_per_prompt * t.prompts
        << " prompt instances per iteration, E = " << s.epochs << " epochs," << indent << "rspo::adam (lr "
        << g(s.learning_rate) << ") on minibatches of " << s.prompts_per_step << ", fresh each iteration; "
        << world << " process(es)\n"
        << "  evaluation  against mu by the true judge: " << s.evaluation.win_rate_samples << " pairs per prompt, "
        << s.evaluation.diversity_samples << " samples for Self-BLEU," << indent << s.evaluation.proxy_samples
        << " pairs for the surrogate judge, " << s.evaluation.kl_samples << " samples for KL(pi||mu)\n";
    out << "\nReference mu: held-out NLL " << fixed(r.sft.initial_nll, 3) << " (initialized) -> "
        << fixed(r.sft.final_nll, 3) << " nats per response after SFT; the corpus distribution's own: "
        << fixed(r.sft.floor_nll, 3) << "\n";

    const std::size_t T = r.training.size();
    const std::vector<std::string> methods{"RSPO 0.1fKL+rKL"};
    const summary_function one_seed = [&](std::size_t, std::size_t it, metric_id k) {
        return estimate{.mean = r.metrics[it][k], .se = metric_table::nan, .n = 1};
    };
    out << "\nEvaluated by the true judge against mu: iteration " << T << " (the paper's table; length in tokens)\n";
    print_paper_table(out, methods, T, one_seed);
    out << "\nWin rates, length and distance from mu per iteration\n";
    print_iteration_table(out, methods, T, {lc_win_rate, win_rate, length, proxy_win_rate, kl_to_reference}, one_seed);
    out << "\nDiversity per iteration\n";
    print_iteration_table(out, methods, T, {self_bleu, distinct_2, token_entropy}, one_seed);

    out << "\nTraining (the driver's report; the loss over the first and the last epoch of each iteration):\n";
    std::vector<std::vector<std::string>> rows{
        {"t", "loss, first epoch", "loss, last epoch", "chosen P-hat", "sample length", "steps"}};
    for (const auto& tr : r.training)
        rows.push_back({std::to_string(tr.iteration), fixed(tr.first_epoch_loss, 4), fixed(tr.last_epoch_loss, 4),
                        fixed(tr.mean_win_rate_chosen, 3), fixed(tr.mean_length, 2), std::to_string(tr.steps)});
    print_table(out, rows);
}

/// The claims this run must show (exit code 3 otherwise): SFT and every RSPO iteration lower their
/// loss, and RSPO raises the true judge's win rate against μ.
bool print_checks(std::ostream& out, const run_result& r) {
    // The raw win rate of μ against itself is 50 up to sampling noise; a gain of more than this many
    // points is beyond that noise at the --quick sample size (512 pairs).
    constexpr double win_rate_margin = 2.0;
    bool ok = r.status == rspo::iterative_status::completed;
    out << "\nChecks:\n";
    if (!ok) out << "  the driver stopped: " << r.message << "  -> FAIL\n";
    const bool sft = r.sft.final_nll < r.sft.initial_nll;
    out << "  SFT lowers the held-out NLL: " << fixed(r.sft.initial_nll, 3) << " -> " << fixed(r.sft.final_nll, 3)
        << "  -> " << (sft ? "PASS" : "FAIL") << '\n';
    ok = ok && sft;
    for (const auto& tr : r.training) {
        const bool lower = tr.last_epoch_loss < tr.first_epoch_loss;
        out << "  RSPO iteration " << tr.iteration << " lowers its loss: " << fixed(tr.first_epoch_loss, 4) << " -> "
            << fixed(tr.last_epoch_loss, 4) << "  -> " << (lower ? "PASS" : "FAIL") << '\n';
        ok = ok && lower;
    }
    const double before = r.metrics.front()[win_rate], after = r.metrics.back()[win_rate];
    const bool raised = after > before + win_rate_margin;
    out << "  RSPO raises the true judge's win rate vs mu by > " << g(win_rate_margin) << " points: " << fixed(before, 2)
        << " -> " << fixed(after, 2) << "  -> " << (raised ? "PASS" : "FAIL") << '\n';
    return ok && raised;
}

// ------------------------------------------------------------------------------------------------
// --launch: the ranks as child processes
// ------------------------------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t size = sizeof address;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
    const int error = errno;
    ::close(fd);
    if (!ok) throw std::runtime_error(std::string("binding a loopback port: ") + std::strerror(error));
    return ntohs(address.sin_port);
}

/// Starts `world` ranks of this program (its arguments minus --launch, plus --world/--rank/--port)
/// and waits; if one fails, stops the others. Returns the first failing rank's exit code, or 0.
int launch(int argc, char** argv, std::size_t world) {
    const std::uint16_t port = free_loopback_port();
    std::vector<std::string> base{"/proc/self/exe"};
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--launch") {
            ++i;
            continue;
        }
        if (a.rfind("--launch=", 0) == 0) continue;
        base.push_back(a);
    }
    std::vector<pid_t> children;
    const auto stop_all = [&] {
        for (const pid_t pid : children)
            if (pid > 0) ::kill(pid, SIGTERM);
    };
    for (std::size_t rank = 0; rank < world; ++rank) {
        std::vector<std::string> args = base;
        for (const std::string& a : {std::string("--world"), std::to_string(world), std::string("--rank"),
                                     std::to_string(rank), std::string("--port"), std::to_string(port)})
            args.push_back(a);
        std::vector<char*> c_args;
        for (auto& a : args) c_args.push_back(a.data());
        c_args.push_back(nullptr);
        pid_t pid = 0;
        // /proc/self/exe resolves in the parent at spawn time: this very binary.
        if (const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, c_args.data(), environ); rc != 0) {
            stop_all();
            throw std::runtime_error("posix_spawn of rank " + std::to_string(rank) + ": " + std::strerror(rc));
        }
        children.push_back(pid);
    }
    int failure = 0;
    for (std::size_t remaining = world; remaining > 0; --remaining) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
        const auto it = std::find(children.begin(), children.end(), pid);
        if (it == children.end()) {
            ++remaining;  // not one of ours
            continue;
        }
        const auto rank = static_cast<std::size_t>(it - children.begin());
        *it = -1;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        if (code != 0 && failure == 0) {
            std::cerr << "torch_rspo --launch: rank " << rank << " failed (exit code " << code
                      << "); stopping the others\n";
            failure = code;
            stop_all();
        }
    }
    return failure;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::optional<options> opt = parse_command_line(argc, argv);
        if (!opt) return 0;  // --help
        if (opt->launch > 0) return launch(argc, argv, opt->launch);
#if !defined(TORCH_RSPO_GLOO)
        if (opt->world > 1)
            throw usage_error("this build has no Gloo (libgloo-dev was not found): it runs one process only");
#endif
        // Intra-op threads for the tiny tensors here barely help; 1 keeps ranks from competing.
        at::set_num_threads(static_cast<int>(opt->threads));
        const settings s = make_settings(*opt);
        const auto start = std::chrono::steady_clock::now();
#if defined(TORCH_RSPO_GLOO)
        const collectives group = opt->world > 1 ? collectives(opt->rank, opt->world, opt->port) : collectives();
#else
        const collectives group;
#endif
        const run_result r = run(s, *opt, group);
        if (group.rank() != 0) return 0;  // rank 0 reports

        std::ostream& out = std::cout;
        print_results(out, s, *opt, r, r.parameters.size(), group.world());
        bool ok = print_checks(out, r);
        if (group.world() > 1) {
            const bool agree = r.rank_disagreement == 0.0;
            out << "  every rank holds rank 0's parameters: max |theta_rank - theta_0| = " << g(r.rank_disagreement)
                << "  -> " << (agree ? "PASS" : "FAIL") << '\n';
            ok = ok && agree;
        }
        std::filesystem::create_directories(opt->out);
        write_csv(opt->out / "torch_rspo.csv", r);
        write_floats(opt->out / "mu_parameters.f32", r.mu_parameters);
        write_floats(opt->out / "parameters.f32", r.parameters);
        out << "\nWrote torch_rspo.csv, mu_parameters.f32 and parameters.f32 to " << opt->out.string() << '\n';
        const bool same = !opt->compare || compare_with(*opt->compare, r, out);
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
        if (!opt->quiet) std::cerr << "done in " << fixed(elapsed.count(), 1) << " s\n";
        if (!same) return 4;
        return ok ? 0 : 3;
    } catch (const usage_error& e) {
        std::cerr << "torch_rspo: " << e.what() << '\n' << usage_text;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "torch_rspo: error: " << e.what() << '\n';
        return 1;
    }
}
