#pragma once
// The examples' command lines: "--flag value" or "--flag=value", typed values with their allowed
// range, and a usage_error that main prints with the usage text (exit code 2). Example support
// code, not library code.
//
//   command_line::reader args(argc, argv);
//   while (args.next()) {
//       if (args.flag() == "--quiet") { args.no_value(); opt.quiet = true; }
//       else if (args.flag() == "--steps") opt.steps = args.count(1, 100000);
//       else args.unknown();
//   }

#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace command_line {

/// A bad command line: the message names the flag and the text it got.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Walks argv one flag at a time.
class reader {
public:
    reader(int argc, char** argv) : argc_(argc), argv_(argv) {}

    /// Moves to the next flag; false when there is none.
    bool next() {
        if (++i_ >= argc_) return false;
        flag_ = argv_[i_];
        value_.reset();
        if (const auto eq = flag_.find('='); flag_.rfind("--", 0) == 0 && eq != std::string::npos) {
            value_ = flag_.substr(eq + 1);
            flag_.resize(eq);
        }
        return true;
    }

    [[nodiscard]] const std::string& flag() const noexcept { return flag_; }

    /// The flag's value: after '=' or the next argument.
    std::string value() {
        if (value_) return *value_;
        if (i_ + 1 >= argc_) throw usage_error(flag_ + " needs a value");
        return argv_[++i_];
    }

    /// For a switch: "--quiet=1" is an error.
    void no_value() const {
        if (value_) throw usage_error(flag_ + " takes no value");
    }

    /// An integer in [lo, hi].
    std::size_t count(std::size_t lo, std::size_t hi) {
        const std::string text = value();
        std::size_t v = 0;
        const char* const last = text.data() + text.size();
        const auto [end, error] = std::from_chars(text.data(), last, v);
        if (text.empty() || error != std::errc{} || end != last || v < lo || v > hi)
            throw usage_error(flag_ + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                              "], got '" + text + "'");
        return v;
    }

    /// A positive finite number.
    double positive() {
        const std::string text = value();
        double v = 0.0;
        const char* const last = text.data() + text.size();
        const auto [end, error] = std::from_chars(text.data(), last, v);
        if (text.empty() || error != std::errc{} || end != last || !(v > 0.0) || !std::isfinite(v))
            throw usage_error(flag_ + " expects a positive finite number, got '" + text + "'");
        return v;
    }

    /// A non-empty string (a directory name, ...).
    std::string non_empty() {
        std::string text = value();
        if (text.empty()) throw usage_error(flag_ + " needs a non-empty value");
        return text;
    }

    [[noreturn]] void unknown() const { throw usage_error("unknown argument '" + std::string(argv_[i_]) + "'"); }

private:
    int argc_;
    char** argv_;
    int i_ = 0;
    std::string flag_;
    std::optional<std::string> value_;
};

}  // namespace command_line
