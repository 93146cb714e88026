// toy_games: rspo's headline experiment. Exact self-play on rock-paper-scissors and biased RPS with
// SPPO, regularized self-play (RSPO) under four regularizers, Nash-MD, MPO and INPO, all through
// the one driver rspo::self_play, and a check of each last iterate against the point its method
// targets:
//   * SPPO (multiplicative weights, R = 0) and MPO aim at the Nash equilibrium of the game itself;
//   * every regularized method aims at π*_τ, the equilibrium of ITS regularized game
//     J_τ(π, π′) = P(π ≻ π′) − τ R(π, μ) + τ R(π′, μ), computed independently of self-play by
//     rspo::solve_regularized_equilibrium (docs/math.md §1).
// Expected: SPPO's last iterate cycles (only its average converges); reverse-KL methods converge
// linearly in the last iterate for η ≤ τ/L² (docs/math.md §3); Nash-MD converges, but only at
// rate O(1/t).
//
// Prints a table and a verdict computed from the trajectories; writes trajectories.csv,
// summary.csv, exploitability.svg, kl_to_target.svg and simplex.svg to --out.
//
//   toy_games [--steps N] [--tau X] [--eta X] [--out DIR] [--quiet]

#include <rspo/rspo.hpp>

#include "command_line.hpp"
#include "svg_plot.hpp"
#include "text_table.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// ------------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------------

constexpr const char* usage_text =
    "usage: toy_games [--steps N] [--tau X] [--eta X] [--out DIR] [--quiet]\n"
    "  --steps N   self-play steps T per run, 1..100000 (default 3000)\n"
    "  --tau X     regularization strength tau > 0 shared by all methods (default 0.1)\n"
    "  --eta X     step size eta > 0 with eta*tau <= 1 (default min(tau/L^2, 1/tau); tau/L^2\n"
    "              is the largest step for which reverse-KL RSPO provably converges, L = 1/2)\n"
    "  --out DIR   output directory (default toy_games_out)\n"
    "  --quiet     no progress bars\n";

struct options {
    std::size_t steps = 3000;
    double tau = 0.1;
    std::optional<double> eta = std::nullopt;  ///< unset: min(τ/L², 1/τ)
    std::filesystem::path out = "toy_games_out";
    bool quiet = false;
};

using command_line::usage_error;

/// Accepts "--flag value" and "--flag=value". Returns nullopt after printing --help.
std::optional<options> parse_command_line(int argc, char** argv) {
    constexpr std::size_t max_steps = 100000;  // every iterate is kept in memory
    options opt;
    command_line::reader args(argc, argv);
    while (args.next()) {
        const std::string& flag = args.flag();
        if (flag == "--help" || flag == "-h") {
            std::cout << usage_text;
            return std::nullopt;
        } else if (flag == "--quiet") {
            args.no_value();
            opt.quiet = true;
        } else if (flag == "--steps") {
            opt.steps = args.count(1, max_steps);
        } else if (flag == "--tau") {
            opt.tau = args.positive();
        } else if (flag == "--eta") {
            opt.eta = args.positive();
        } else if (flag == "--out") {
            opt.out = args.non_empty();
        } else {
            args.unknown();
        }
    }
    return opt;
}

// ------------------------------------------------------------------------------------------------
// The experiment's fixed choices
// ------------------------------------------------------------------------------------------------

struct setup {
    std::vector<rspo::preference_game> games;
    Eigen::VectorXd reference;  ///< μ, shared by every method
    Eigen::VectorXd start;      ///< π_0, shared by every method
    double tau = 0.0;
    double eta = 0.0;
    double eta_bound = 0.0;  ///< τ/L²
    std::size_t mpo_reset_every = 0;
    options opt;
};

setup make_setup(const options& opt) {
    setup s;
    s.opt = opt;
    s.games = {rspo::games::rock_paper_scissors(), rspo::games::biased_rock_paper_scissors()};
    // A non-uniform reference: with μ uniform, symmetry makes every π*_τ of RPS the uniform NE, so
    // "converges to π*_τ" could not be told apart from "converges to the NE".
    s.reference = (Eigen::VectorXd(3) << 0.5, 0.3, 0.2).finished();
    // Far from every equilibrium, so that spiralling in (or out) is visible.
    s.start = (Eigen::VectorXd(3) << 0.1, 0.1, 0.8).finished();
    s.tau = opt.tau;

    // Reverse-KL RSPO converges linearly for η ≤ τ/L² (docs/math.md §3); default to the largest
    // such η that INPO also accepts (its weight 1 − ητ on log π_t must be ≥ 0).
    double lipschitz = 0.0;
    for (const auto& g : s.games) lipschitz = std::max(lipschitz, g.lipschitz());
    s.eta_bound = opt.tau / (lipschitz * lipschitz);
    s.eta = opt.eta.value_or(std::min(s.eta_bound, 1.0 / opt.tau));
    if (s.eta * s.tau > 1.0) {
        char message[80];
        std::snprintf(message, sizeof message, "eta * tau = %g must be <= 1 (INPO needs it)",
                      s.eta * s.tau);
        throw usage_error(message);
    }
    if (s.eta > s.eta_bound)
        std::cerr << "note: eta = " << s.eta << " exceeds tau/L^2 = " << s.eta_bound
                  << "; reverse-KL convergence is then not guaranteed\n";
    // MPO resets its magnet every K = ⌈5/(ητ)⌉ steps: each MMD phase then shrinks KL to the
    // magnet's π*_τ by about (1 + ητ)^−K ≈ e^−5 before the magnet moves.
    s.mpo_reset_every =
        std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(5.0 / (s.eta * s.tau))));
    return s;
}

// ------------------------------------------------------------------------------------------------
// Recording a run: a user-written callback. rspo::self_play calls on_begin with π_0 and on_step
// after every step; any object with (some of) these members is a callback.
// ------------------------------------------------------------------------------------------------

/// Every iterate of one run with the metrics the verdict and the plots need.
struct trajectory {
    std::vector<Eigen::Vector3d> policy;         ///< π_t, t = 0..T (both games have 3 actions)
    std::vector<double> exploitability;          ///< of π_t
    std::vector<double> average_exploitability;  ///< of the average iterate
    std::vector<double> kl_to_target;            ///< KL(target‖π_t)
};

class trajectory_recorder {
public:
    explicit trajectory_recorder(Eigen::VectorXd target) : target_(std::move(target)) {}

    void on_begin(const rspo::self_play_step& s) { record(s); }
    void on_step(const rspo::self_play_step& s) { record(s); }

    [[nodiscard]] trajectory take() && { return std::move(path_); }

private:
    void record(const rspo::self_play_step& s) {
        path_.policy.emplace_back(s.policy);
        path_.exploitability.push_back(rspo::exploitability(s.game, s.policy));
        path_.average_exploitability.push_back(rspo::exploitability(s.game, s.average_policy));
        path_.kl_to_target.push_back(rspo::kl_divergence(target_, s.policy));
    }

    Eigen::VectorXd target_;
    trajectory path_;
};

// ------------------------------------------------------------------------------------------------
// Methods. The algorithms are different types, so a method_spec type-erases each one behind
// std::function: how to run it, what its last iterate should converge to, and its own duality gap.
// ------------------------------------------------------------------------------------------------

/// The callbacks every run reports to (rspo::self_play takes any number of callbacks).
struct observers {
    trajectory_recorder& recorder;
    rspo::csv_logger& logger;
    rspo::progress_bar& progress;  ///< silent with --quiet
};

using run_function = std::function<rspo::self_play_result(
    const rspo::preference_game&, const rspo::self_play_options&, observers&)>;

template <rspo::TabularAlgorithm A>
run_function runner(A algorithm) {
    return [algorithm](const rspo::preference_game& game, const rspo::self_play_options& options,
                       observers& to) {
        return rspo::self_play(algorithm, game, options, to.recorder, to.logger, to.progress);
    };
}

using target_function =
    std::function<Eigen::VectorXd(const rspo::preference_game&, const Eigen::VectorXd& mu)>;
using gap_function = std::function<double(const rspo::preference_game&, const Eigen::VectorXd& pi,
                                          const Eigen::VectorXd& mu)>;

struct method_spec {
    std::string name;         ///< label in the table, the CSV files and the plots
    std::string api_name;     ///< the algorithm's own name(), e.g. "rspo[forward_kl_importance]"
    std::string target_name;  ///< "NE" or "pi*_tau[<regularizer>]"
    double tau = 0.0;         ///< τ of the game the method solves: 0 for SPPO and MPO
    std::string color;        ///< plot colour
    target_function target;   ///< the point the last iterate should reach for reference μ
    gap_function gap;         ///< duality gap of the method's own game (zero iff π is the target)
    run_function run;
};

/// A method whose game is the one regularized by (τ, R): its target is π*_τ. The regularizer is
/// the method's own (A::regularizer_type), so the target cannot disagree with the step.
template <rspo::TabularAlgorithm A, rspo::Regularizer R = typename A::regularizer_type>
method_spec regularized_method(std::string name, std::string color, const A& algorithm,
                               R regularizer = {}) {
    const double tau = algorithm.tau;
    target_function target = [tau, regularizer](const rspo::preference_game& game,
                                                const Eigen::VectorXd& mu) {
        const rspo::equilibrium_result eq =
            rspo::solve_regularized_equilibrium(game, mu, tau, regularizer);
        if (!eq.converged)  // possible for extreme τ; the KL column then uses an approximation
            std::cerr << "warning: pi*_tau[" << regularizer.name() << "] on " << game.name()
                      << " has KKT residual " << eq.residual << '\n';
        return eq.policy;
    };
    gap_function gap = [tau, regularizer](const rspo::preference_game& game,
                                          const Eigen::VectorXd& pi, const Eigen::VectorXd& mu) {
        return rspo::regularized_gap(game, pi, mu, tau, regularizer);
    };
    return {std::move(name), algorithm.name(), "pi*_tau[" + regularizer.name() + "]", tau,
            std::move(color), std::move(target), std::move(gap), runner(algorithm)};
}

/// RSPO instances carry their regularizer, so the target cannot disagree with the step.
template <rspo::Regularizer R>
method_spec rspo_method(std::string name, std::string color,
                        const rspo::rspo_algorithm<R>& algorithm) {
    return regularized_method(std::move(name), std::move(color), algorithm, algorithm.regularizer);
}

/// A method for the unregularized game (SPPO; MPO, whose moving magnet removes the bias): its
/// target is the Nash equilibrium and its gap is gap_0 = 2·exploitability.
template <rspo::TabularAlgorithm A>
method_spec unregularized_method(std::string name, std::string color, const A& algorithm) {
    target_function target = [](const rspo::preference_game& game, const Eigen::VectorXd&) {
        if (!game.nash_equilibrium()) throw std::runtime_error(game.name() + " has no known NE");
        return Eigen::VectorXd(*game.nash_equilibrium());
    };
    gap_function gap = [](const rspo::preference_game& game, const Eigen::VectorXd& pi,
                          const Eigen::VectorXd& mu) {
        return rspo::regularized_gap(game, pi, mu, 0.0, rspo::no_regularizer{});
    };
    return {std::move(name), algorithm.name(), "NE", 0.0, std::move(color), std::move(target),
            std::move(gap), runner(algorithm)};
}

std::vector<method_spec> make_methods(const setup& s) {
    const double eta = s.eta, tau = s.tau;
    // Divergence weights: R = 0.1·KL(μ‖π) + 1.0·KL(π‖μ), the paper's best mix (its surrogate
    // weights 0.1 and 0.5; docs/regularizers.md).
    const auto forward_plus_reverse = 0.1 * rspo::forward_kl{} + 1.0 * rspo::reverse_kl{};
    const rspo::rspo_parameters step{.eta = eta, .tau = tau};
    return {
        unregularized_method("SPPO", "#d62728", rspo::sppo{.eta = eta}),
        // rspo::mmd is rspo_algorithm<reverse_kl>: RSPO with reverse KL *is* magnetic mirror
        // descent, so one row covers both.
        rspo_method("RSPO rKL (=MMD)", "#1f77b4", rspo::mmd{.eta = eta, .tau = tau}),
        rspo_method("RSPO fKL", "#2ca02c", rspo::make_rspo(rspo::forward_kl{}, step)),
        rspo_method("RSPO chi2", "#9467bd", rspo::make_rspo(rspo::chi_squared{}, step)),
        rspo_method("RSPO 0.1fKL+rKL", "#17becf", rspo::make_rspo(forward_plus_reverse, step)),
        // Nash-MD and INPO regularize with reverse KL, so they share MMD's target. Nash-MD uses
        // its decreasing schedule η_t = 2/(τ(t+2)), not η.
        regularized_method("Nash-MD", "#ff7f0e", rspo::nash_md{.tau = tau}),
        unregularized_method("MPO", "#8c564b",
                             rspo::mpo{.eta = eta, .tau = tau,
                                       .magnet_reset_every = s.mpo_reset_every}),
        // With the same η, INPO's step is MMD's with step η/(1 − ητ) (docs/math.md §4).
        regularized_method("INPO", "#e377c2", rspo::inpo{.eta = eta, .tau = tau}),
    };
}

// ------------------------------------------------------------------------------------------------
// Judging a run from its trajectory
// ------------------------------------------------------------------------------------------------

constexpr double converged_kl = 1e-8;  ///< KL(target‖π_T) below this counts as converged

enum class behaviour { converged, converging, cycling, not_converging };

const char* to_string(behaviour b) {
    switch (b) {
        case behaviour::converged: return "converged";
        case behaviour::converging: return "converging";
        case behaviour::cycling: return "cycling";
        case behaviour::not_converging: return "not converging";
    }
    return "?";
}

struct assessment {
    behaviour kind = behaviour::not_converging;
    std::size_t window_start = 0;           ///< first iteration of the final 20%
    double window_min = 0, window_max = 0;  ///< last-iterate exploitability over the window
    double window_mean = 0;
    double kl_window_start = 0;             ///< KL(target‖π) at window_start
};

/// Judged on the final 20% of steps, [window_start, T]:
///   converged:  KL(target‖π_T) < converged_kl;
///   converging: otherwise, if KL(target‖π_t) fell by at least 10% over the window;
///   cycling:    KL(target‖π_t) never got below half its value at the window's start (no
///               progress), the last iterate's exploitability swings by at least half its maximum
///               (it keeps moving), and the average iterate ends less than half as exploitable as
///               the last iterate is on average over the window (only the average converges).
assessment assess(const trajectory& path) {
    const std::size_t last = path.policy.size() - 1;  // = T
    assessment a;
    a.window_start = last - std::min(last, std::max<std::size_t>(1, last / 5));
    const auto begin = static_cast<std::ptrdiff_t>(a.window_start);
    const auto exploit = path.exploitability.begin() + begin;
    const auto [lo, hi] = std::minmax_element(exploit, path.exploitability.end());
    a.window_min = *lo;
    a.window_max = *hi;
    double sum = 0.0;
    for (auto it = exploit; it != path.exploitability.end(); ++it) sum += *it;
    a.window_mean = sum / static_cast<double>(last - a.window_start + 1);
    a.kl_window_start = path.kl_to_target[a.window_start];
    const double kl_min =
        *std::min_element(path.kl_to_target.begin() + begin, path.kl_to_target.end());
    const double kl_end = path.kl_to_target.back();

    if (kl_end < converged_kl)
        a.kind = behaviour::converged;
    else if (std::isfinite(kl_end) && kl_end <= 0.9 * a.kl_window_start)
        a.kind = behaviour::converging;
    else if (kl_min >= 0.5 * a.kl_window_start &&
             a.window_max - a.window_min >= 0.5 * a.window_max &&
             path.average_exploitability.back() < 0.5 * a.window_mean)
        a.kind = behaviour::cycling;
    else
        a.kind = behaviour::not_converging;
    return a;
}

// ------------------------------------------------------------------------------------------------
// Running every (game, method) pair
// ------------------------------------------------------------------------------------------------

struct run_record {
    const rspo::preference_game* game = nullptr;
    const method_spec* method = nullptr;
    Eigen::VectorXd target;
    rspo::self_play_result result;
    trajectory path;
    double gap = 0, kl_to_target = 0, kl_to_reference = 0;
    assessment verdict;
};

/// Runs every method on every game; appends every run to <out>/trajectories.csv as it goes.
std::vector<run_record> run_all(const setup& s, const std::vector<method_spec>& methods) {
    const std::filesystem::path csv_path = s.opt.out / "trajectories.csv";
    std::ofstream csv(csv_path);
    if (!csv) throw std::runtime_error("cannot open '" + csv_path.string() + "'");
    const std::size_t csv_every = std::max<std::size_t>(1, s.opt.steps / 500);  // ~1 MB in all

    const rspo::self_play_options run_options{
        .iterations = s.opt.steps, .reference = s.reference, .initial = s.start};
    std::vector<run_record> runs;
    for (const auto& game : s.games) {
        for (const auto& method : methods) {
            run_record r;
            r.game = &game;
            r.method = &method;
            r.target = method.target(game, s.reference);

            trajectory_recorder recorder(r.target);
            rspo::csv_logger logger(csv,
                                    {rspo::metrics::probability(0), rspo::metrics::probability(1),
                                     rspo::metrics::probability(2), rspo::metrics::exploitability(),
                                     rspo::metrics::average_exploitability(),
                                     rspo::metrics::kl_from(r.target, "kl_to_target")},
                                    csv_every);
            // One CSV for all runs: the header goes only before the first run's rows.
            logger.with_label("game", game.name())
                .with_label("method", method.name)
                .with_header(runs.empty());
            std::string label = game.name() + " / " + method.name;
            label.resize(std::max<std::size_t>(label.size(), 46), ' ');  // aligns the bars
            rspo::progress_bar bar(s.opt.quiet ? nullptr : &std::cerr, label);
            observers to{recorder, logger, bar};

            r.result = method.run(game, run_options, to);
            if (r.result.status == rspo::self_play_status::numeric_failure)
                std::cerr << "warning: " << game.name() << " / " << method.name << ": "
                          << r.result.message << '\n';
            r.path = std::move(recorder).take();
            r.gap = method.gap(game, r.result.policy, s.reference);
            r.kl_to_target = rspo::kl_divergence(r.target, r.result.policy);
            r.kl_to_reference = rspo::kl_divergence(r.result.policy, s.reference);
            r.verdict = assess(r.path);
            runs.push_back(std::move(r));
        }
    }
    csv.close();
    if (!csv) throw std::runtime_error("cannot write '" + csv_path.string() + "'");
    return runs;
}

// ------------------------------------------------------------------------------------------------
// Report on stdout and summary.csv
// ------------------------------------------------------------------------------------------------

std::string sci(double v) {
    if (v == 0.0) return "0";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2e", v);
    return buf;
}

std::string vec(const Eigen::VectorXd& p, int digits = 4) {
    std::string out = "(";
    char buf[32];
    for (Eigen::Index i = 0; i < p.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%.*f", digits, p[i]);
        out += (i ? ", " : "") + std::string(buf);
    }
    return out + ")";
}

std::string padded(std::string text, std::size_t width) {
    text.resize(std::max(text.size(), width), ' ');
    return text;
}

/// Prints rows in columns padded to their widest cell; metric columns (all but the first two and
/// the last) are right-aligned.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
    text_table::print(out, rows, {.indent = "", .left_aligned = [](std::size_t c, std::size_t n) {
                                      return c < 2 || c + 1 == n;
                                  }});
}

void print_report(std::ostream& out, const setup& s, const std::vector<method_spec>& methods,
                  const std::vector<run_record>& runs) {
    out << "rspo toy games: T = " << s.opt.steps << " steps, tau = " << s.tau << ", eta = " << s.eta
        << " (tau/L^2 = " << s.eta_bound << "), MPO magnet reset every " << s.mpo_reset_every
        << " steps\nreference mu = " << vec(s.reference) << ", start pi_0 = " << vec(s.start)
        << "\n\nMethods:\n";
    for (const auto& m : methods)
        out << "  " << padded(m.name, 17) << " " << m.api_name << "  ->  target " << m.target_name
            << '\n';

    out << "\nTargets [their exploitability: what regularization costs in the original game]:\n";
    for (const auto& game : s.games) {
        out << "  " << game.name() << ":\n";
        std::vector<std::string> shown;
        for (const auto& r : runs) {
            const std::string& name = r.method->target_name;
            if (r.game != &game || std::find(shown.begin(), shown.end(), name) != shown.end())
                continue;
            shown.push_back(name);
            out << "    " << padded(name, 48) << vec(r.target) << "  ["
                << sci(rspo::exploitability(game, r.target)) << "]\n";
        }
    }

    out << "\nAfter T = " << s.opt.steps << " steps (gap: duality gap of the method's own "
        << "regularized game; for SPPO and MPO tau = 0, i.e. 2 x exploitability):\n\n";
    std::vector<std::vector<std::string>> table{{"game", "method", "exploit(pi_T)", "exploit(avg)",
                                                 "gap", "KL(target||pi_T)", "KL(pi_T||mu)",
                                                 "pi_T"}};
    for (const auto& r : runs)
        table.push_back({r.game->name(), r.method->name, sci(r.path.exploitability.back()),
                         sci(r.path.average_exploitability.back()), sci(r.gap),
                         sci(r.kl_to_target), sci(r.kl_to_reference), vec(r.result.policy)});
    print_table(out, table);

    out << "\nVerdict (converged: KL(target||pi_T) < " << sci(converged_kl)
        << "; cycling: over the last 20% of steps KL to the target\n"
           "does not shrink while the last iterate keeps moving and the average iterate is far "
           "less exploitable):\n";
    for (const auto& game : s.games) {
        out << "  " << game.name() << ":\n";
        std::string converged;
        for (const auto& r : runs) {
            if (r.game != &game) continue;
            const assessment& a = r.verdict;
            const std::string who = "    " + r.method->name + " -> ";
            switch (a.kind) {
                case behaviour::converged:
                    converged += (converged.empty() ? "" : ", ") + r.method->name;
                    break;
                case behaviour::cycling:
                    out << who << "cycling; the average iterate's exploitability is "
                        << sci(r.path.average_exploitability.back()) << " at T\n"
                        << "      last iterate over t >= " << a.window_start << ": exploitability "
                        << sci(a.window_min) << " .. " << sci(a.window_max) << " ("
                        << sci(r.path.exploitability.back()) << " at T), KL to "
                        << r.method->target_name << " " << sci(a.kl_window_start) << " -> "
                        << sci(r.kl_to_target) << '\n';
                    break;
                case behaviour::converging:
                case behaviour::not_converging:
                    out << who
                        << (a.kind == behaviour::converging ? "still converging" : "not converging")
                        << ": KL to " << r.method->target_name << " " << sci(a.kl_window_start)
                        << " at t = " << a.window_start << " -> " << sci(r.kl_to_target)
                        << " at T\n";
                    break;
            }
        }
        if (!converged.empty())
            out << "    converged (KL < " << sci(converged_kl) << "): " << converged << '\n';
    }
}

void write_summary_csv(const std::filesystem::path& file, const std::vector<run_record>& runs) {
    std::ofstream out(file);
    out << "game,method,algorithm,target,tau,steps,exploitability,average_exploitability,gap,"
           "kl_to_target,kl_to_reference,pi_0,pi_1,pi_2,verdict\n";
    const auto num = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.10g", v);
        return std::string(buf);
    };
    for (const auto& r : runs) {
        out << r.game->name() << ',' << r.method->name << ',' << r.method->api_name << ','
            << r.method->target_name << ',' << num(r.method->tau) << ',' << r.result.iterations
            << ',' << num(r.path.exploitability.back()) << ','
            << num(r.path.average_exploitability.back()) << ',' << num(r.gap) << ','
            << num(r.kl_to_target) << ',' << num(r.kl_to_reference);
        for (Eigen::Index i = 0; i < r.result.policy.size(); ++i)
            out << ',' << num(r.result.policy[i]);
        out << ',' << to_string(r.verdict.kind) << '\n';
    }
    out.close();
    if (!out) throw std::runtime_error("cannot write '" + file.string() + "'");
}

// ------------------------------------------------------------------------------------------------
// Plots
// ------------------------------------------------------------------------------------------------

/// Indices 0, stride, 2·stride, ..., last: at most ~max_points per line keeps the SVGs small.
std::vector<std::size_t> thinned(std::size_t count, std::size_t max_points = 600) {
    const std::size_t stride = std::max<std::size_t>(1, count / max_points);
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < count; i += stride) idx.push_back(i);
    if (idx.back() != count - 1) idx.push_back(count - 1);
    return idx;
}

svg_plot::point3 to_point(const Eigen::Ref<const Eigen::VectorXd>& p) { return {p[0], p[1], p[2]}; }

/// "τ = 0.1, η = 0.4, μ = (...)" for the titles (SVG text is UTF-8, so the paper's notation).
std::string plot_parameters(const setup& s) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "τ = %g, η = %g, μ = %s", s.tau, s.eta,
                  vec(s.reference, 2).c_str());
    return buf;
}

std::vector<svg_plot::legend_entry> methods_legend(const std::vector<method_spec>& methods) {
    std::vector<svg_plot::legend_entry> legend{{.label = "Methods", .heading = true}};
    for (const auto& m : methods)
        legend.push_back({.label = m.name, .line = {.color = m.color, .width = 2.5}});
    return legend;
}

/// exploitability.svg (last iterate solid, average dashed) and kl_to_target.svg, a panel per game.
void write_line_charts(const setup& s, const std::vector<method_spec>& methods,
                       const std::vector<run_record>& runs) {
    std::vector<svg_plot::line_panel> exploit_panels, kl_panels;
    for (const auto& game : s.games) {
        svg_plot::line_panel exploit{.title = game.name(), .x_label = "iteration t",
                                     .y_label = "exploitability (log scale)", .log_y = true,
                                     .y_floor = 1e-16};
        svg_plot::line_panel kl{.title = game.name(), .x_label = "iteration t",
                                .y_label = "KL(target ‖ π_t), floored at 1e-16", .log_y = true,
                                .y_floor = 1e-16};
        for (const auto& r : runs) {
            if (r.game != &game) continue;
            const std::string& color = r.method->color;
            svg_plot::line_series last{.style = {.color = color, .width = 1.8}};
            svg_plot::line_series average{
                .style = {.color = color, .dashed = true, .width = 1.2, .opacity = 0.75}};
            svg_plot::line_series divergence = last;
            for (const std::size_t i : thinned(r.path.policy.size())) {
                const auto t = static_cast<double>(i);
                last.x.push_back(t);
                last.y.push_back(r.path.exploitability[i]);
                average.x.push_back(t);
                average.y.push_back(r.path.average_exploitability[i]);
                divergence.x.push_back(t);
                divergence.y.push_back(r.path.kl_to_target[i]);
            }
            exploit.series.push_back(std::move(average));  // under the last iterates
            exploit.series.push_back(std::move(last));
            kl.series.push_back(std::move(divergence));
        }
        exploit_panels.push_back(std::move(exploit));
        kl_panels.push_back(std::move(kl));
    }

    auto exploit_legend = methods_legend(methods);
    exploit_legend.insert(
        exploit_legend.end(),
        {{.label = "Iterate", .heading = true},
         {.label = "last iterate π_t", .line = {.color = "#555555", .width = 1.8}},
         {.label = "average iterate", .line = {.color = "#555555", .dashed = true, .width = 1.2}},
         {.label = "Regularized methods level off at", .heading = true},
         {.label = "the exploitability of their π*_τ;", .note = true},
         {.label = "see kl_to_target.svg", .note = true}});
    svg_plot::write_file(
        s.opt.out / "exploitability.svg",
        svg_plot::line_chart(exploit_panels, {.title = "Exploitability, " + plot_parameters(s),
                                              .legend = exploit_legend}));

    auto kl_legend = methods_legend(methods);
    kl_legend.insert(kl_legend.end(),
                     {{.label = "Target", .heading = true},
                      {.label = "SPPO, MPO: the Nash equilibrium", .note = true},
                      {.label = "others: π*_τ of their own R", .note = true}});
    svg_plot::write_file(
        s.opt.out / "kl_to_target.svg",
        svg_plot::line_chart(kl_panels,
                             {.title = "Distance to each method's target, " + plot_parameters(s),
                              .legend = kl_legend}));
}

/// simplex.svg: the trajectories on the 3-action simplex, one panel per game, with the NE, each
/// distinct π*_τ (in the colour of the first method that targets it), μ and π_0 marked.
void write_simplex(const setup& s, const std::vector<method_spec>& methods,
                   const std::vector<run_record>& runs) {
    using svg_plot::marker_shape;
    std::vector<svg_plot::ternary_panel> panels;
    for (const auto& game : s.games) {
        svg_plot::ternary_panel panel{.title = game.name(),
                                      .corner_labels = {"rock (0)", "paper (1)", "scissors (2)"}};
        std::vector<std::string> marked;
        for (const auto& r : runs) {
            if (r.game != &game) continue;
            svg_plot::ternary_series line{
                .style = {.color = r.method->color, .width = 1.3, .opacity = 0.85}};
            for (const std::size_t i : thinned(r.path.policy.size()))
                line.points.push_back(to_point(r.path.policy[i]));
            panel.series.push_back(std::move(line));
            const std::string& target = r.method->target_name;
            if (r.method->tau > 0.0 &&
                std::find(marked.begin(), marked.end(), target) == marked.end()) {
                marked.push_back(target);
                panel.markers.push_back({.at = to_point(r.target), .shape = marker_shape::diamond,
                                         .color = r.method->color, .size = 5.0});
            }
        }
        panel.markers.push_back({.at = to_point(s.reference), .shape = marker_shape::triangle,
                                 .color = "#ffffff", .size = 5.0});
        panel.markers.push_back({.at = to_point(s.start), .shape = marker_shape::square,
                                 .color = "#ffffff", .size = 4.5});
        panel.markers.push_back({.at = to_point(*game.nash_equilibrium()),
                                 .shape = marker_shape::star, .color = "#ffd700", .size = 6.0});
        panels.push_back(std::move(panel));
    }

    auto legend = methods_legend(methods);
    legend.insert(legend.end(),
                  {{.label = "Points", .heading = true},
                   {.label = "Nash equilibrium", .line = {.color = "#ffd700"},
                    .marker = marker_shape::star},
                   {.label = "π*_τ (colour: its RSPO)", .line = {.color = "#1f77b4"},
                    .marker = marker_shape::diamond},
                   {.label = "reference μ", .line = {.color = "#ffffff"},
                    .marker = marker_shape::triangle},
                   {.label = "start π_0", .line = {.color = "#ffffff"},
                    .marker = marker_shape::square}});
    svg_plot::write_file(s.opt.out / "simplex.svg",
                         svg_plot::ternary_chart(
                             panels, {.title = "Self-play trajectories, " + plot_parameters(s),
                                      .legend = legend, .panel_width = 560, .panel_height = 540}));
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::optional<options> opt = parse_command_line(argc, argv);
        if (!opt) return 0;  // --help
        const setup s = make_setup(*opt);
        const std::vector<method_spec> methods = make_methods(s);

        std::filesystem::create_directories(s.opt.out);
        const std::vector<run_record> runs = run_all(s, methods);
        print_report(std::cout, s, methods, runs);
        write_summary_csv(s.opt.out / "summary.csv", runs);
        write_line_charts(s, methods, runs);
        write_simplex(s, methods, runs);
        std::cout << "\nWrote trajectories.csv, summary.csv, exploitability.svg, kl_to_target.svg "
                     "and simplex.svg to "
                  << s.opt.out.string() << '\n';
        return 0;
    } catch (const usage_error& e) {
        std::cerr << "toy_games: " << e.what() << '\n' << usage_text;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "toy_games: error: " << e.what() << '\n';
        return 1;
    }
}
