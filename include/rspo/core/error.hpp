#pragma once
// Typed errors. Every public function checks its arguments and throws one of these with a message
// that names the function, the argument and the bad value; nothing is silently clamped.

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace rspo {

/// Base of every argument error: the function and the argument that were wrong are kept apart from
/// the message so that callers (and tests) can react to them.
class argument_error : public std::invalid_argument {
public:
    argument_error(std::string function, std::string argument, const std::string& what)
        : std::invalid_argument(function + ": " + what),
          function_(std::move(function)),
          argument_(std::move(argument)) {}

    [[nodiscard]] const std::string& function() const noexcept { return function_; }
    [[nodiscard]] const std::string& argument() const noexcept { return argument_; }

private:
    std::string function_;
    std::string argument_;
};

/// Sizes that do not match (policy vs. matrix, samples vs. log-probs, ...).
class shape_error : public argument_error {
public:
    using argument_error::argument_error;
};

/// A value outside its domain: NaN, a negative weight or probability, P + Pᵀ ≠ 1, η ≤ 0, ...
class domain_error : public argument_error {
public:
    using argument_error::argument_error;
};

/// An index outside its range (an action or sample id).
class index_error : public argument_error {
public:
    using argument_error::argument_error;
};

/// Reading a file or parsing its contents failed.
class io_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] inline void assertion_failed(const char* expr, const char* file, int line) {
    std::fprintf(stderr, "rspo: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    std::abort();
}
}  // namespace detail

}  // namespace rspo

// Internal invariants (not argument checks). Users may define RSPO_ASSERT before including rspo to
// route failures into their own handler, or to nothing.
#ifndef RSPO_ASSERT
#define RSPO_ASSERT(expr) \
    ((expr) ? static_cast<void>(0) : ::rspo::detail::assertion_failed(#expr, __FILE__, __LINE__))
#endif
