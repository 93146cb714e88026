#pragma once
// Callbacks for rspo::self_play: a progress bar, a CSV logger with metric columns, and stopping
// rules. Each implements any subset of on_begin(step), on_step(step) [-> bool: true stops],
// on_end(result); users write their own the same way.

#include <rspo/algorithms/self_play.hpp>
#include <rspo/core/check.hpp>
#include <rspo/eval/game_metrics.hpp>
#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <cstdio>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace rspo {

/// A named per-step quantity, for CSV columns and stopping rules.
struct metric {
    std::string name;
    std::function<double(const self_play_step&)> value;
};

namespace metrics {
inline metric exploitability() {
    return {"exploitability", [](const self_play_step& s) { return rspo::exploitability(s.game, s.policy); }};
}
inline metric average_exploitability() {
    return {"average_exploitability",
            [](const self_play_step& s) { return rspo::exploitability(s.game, s.average_policy); }};
}
/// gap_τ of the last iterate for the regularized game (R, τ) around the run's reference μ.
template <Regularizer R>
metric regularized_gap(double tau, R regularizer) {
    return {"regularized_gap", [tau, regularizer](const self_play_step& s) {
                return rspo::regularized_gap(s.game, s.policy, s.reference, tau, regularizer);
            }};
}
inline metric kl_to_reference() {
    return {"kl_to_reference",
            [](const self_play_step& s) { return rspo::kl_divergence(s.policy, s.reference); }};
}
/// KL(target‖π_t): the Lyapunov function of MMD's convergence proof when target = π*_τ.
inline metric kl_from(Eigen::VectorXd target, std::string name = "kl_from_target") {
    return {std::move(name), [target = std::move(target)](const self_play_step& s) {
                return rspo::kl_divergence(target, s.policy);
            }};
}
/// π_t(i) for one action.
inline metric probability(std::size_t action) {
    return {"pi_" + std::to_string(action), [action](const self_play_step& s) {
                return s.policy[static_cast<Eigen::Index>(action)];
            }};
}
}  // namespace metrics

/// Writes "<labels>,iteration,<metric>..." then one row at t = 0, every `every` steps, and at the
/// last step. Labels are constant leading columns (game, method, seed, ...), quoted as RFC 4180
/// requires when they hold a comma, quote or newline.
class csv_logger {
public:
    csv_logger(std::ostream& out, std::vector<metric> columns, std::size_t every = 1)
        : out_(&out), columns_(std::move(columns)), every_(every) {
        if (every_ == 0) throw domain_error("rspo::csv_logger", "every", "every = 0 must be >= 1");
    }
    /// Adds a constant leading column; call once per label.
    csv_logger& with_label(std::string header, std::string value) {
        labels_.emplace_back(quoted(header), quoted(value));
        return *this;
    }
    /// Whether to write the header line (off when appending runs to one file).
    csv_logger& with_header(bool write) {
        header_ = write;
        return *this;
    }

    void on_begin(const self_play_step& s) {
        if (header_) {
            for (const auto& label : labels_) *out_ << label.first << ',';
            *out_ << "iteration";
            for (const auto& c : columns_) *out_ << ',' << quoted(c.name);
            *out_ << '\n';
        }
        row(s);
    }
    void on_step(const self_play_step& s) {
        if (s.iteration % every_ == 0 || s.iteration == s.total_iterations) row(s);
    }

private:
    static std::string quoted(const std::string& field) {
        if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
        std::string out = "\"";
        for (char c : field) {
            if (c == '"') out += '"';
            out += c;
        }
        return out + '"';
    }
    void row(const self_play_step& s) {
        for (const auto& label : labels_) *out_ << label.second << ',';
        *out_ << s.iteration;
        char buf[32];
        for (const auto& c : columns_) {
            std::snprintf(buf, sizeof buf, "%.10g", c.value(s));
            *out_ << ',' << buf;
        }
        *out_ << '\n';
    }

    std::ostream* out_;
    std::vector<metric> columns_;
    std::size_t every_;
    bool header_ = true;
    std::vector<std::pair<std::string, std::string>> labels_;
};

/// Stops the run once metric ≤ threshold.
struct stop_below {
    metric watched;
    double threshold;
    bool on_step(const self_play_step& s) const { return watched.value(s) <= threshold; }
};

/// Stops once max_i |π_t(i) − π_{t−1}(i)| ≤ tolerance: the iteration has reached its fixed point.
class stop_when_stationary {
public:
    explicit stop_when_stationary(double tolerance) : tolerance_(tolerance) {
        check_positive("rspo::stop_when_stationary", "tolerance", tolerance);
    }
    void on_begin(const self_play_step& s) { previous_ = s.policy; }
    bool on_step(const self_play_step& s) {
        const double change = (s.policy - previous_).lpNorm<Eigen::Infinity>();
        previous_ = s.policy;
        return change <= tolerance_;
    }

private:
    double tolerance_;
    Eigen::VectorXd previous_;
};

/// A one-line progress bar on a terminal stream, redrawn when the percentage changes. A null stream
/// makes it silent, so a --quiet flag needs no second call site.
class progress_bar {
public:
    explicit progress_bar(std::ostream* out, std::string label = "", std::size_t width = 30)
        : out_(out), label_(std::move(label)), width_(width) {}
    explicit progress_bar(std::ostream& out, std::string label = "", std::size_t width = 30)
        : progress_bar(&out, std::move(label), width) {}

    void on_begin(const self_play_step& s) { draw(s); }
    void on_step(const self_play_step& s) { draw(s); }
    void on_end(const self_play_result&) {
        if (out_ && shown_ != npos) *out_ << '\n' << std::flush;
    }

private:
    void draw(const self_play_step& s) {
        if (!out_) return;
        const std::size_t percent = s.total_iterations ? 100 * s.iteration / s.total_iterations : 100;
        if (percent == shown_) return;
        shown_ = percent;
        const std::size_t filled = width_ * percent / 100;
        *out_ << '\r' << label_ << " [" << std::string(filled, '#') << std::string(width_ - filled, ' ')
              << "] " << percent << "% " << s.iteration << '/' << s.total_iterations << std::flush;
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::ostream* out_;
    std::string label_;
    std::size_t width_;
    std::size_t shown_ = npos;
};

}  // namespace rspo
