// lintrain's one error policy: library code throws lintrain::Error (or a
// subclass) whose message says what went wrong, where, the offending value and
// the fix. `main` catches it, prints one line and exits non-zero.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lintrain {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A bad run file, command-line override or other user input.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A command line that does not parse: main prints it with the usage and
// exits 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// A missing, unreadable or corrupt file (data, weights, checkpoints).
class IoError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void format_into(std::ostringstream&) {}
template <typename T, typename... Rest>
void format_into(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  format_into(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::format_into(os, args...);
  return os.str();
}

}  // namespace lintrain

// LT_CHECK(cond, parts...): throws lintrain::Error("[where] parts...") when cond
// is false. Use for invariants a caller can violate (shapes, dtypes, ranges).
#define LT_CHECK(cond, ...)                                              \
  do {                                                                   \
    if (!(cond)) throw ::lintrain::Error(::lintrain::str_cat(__VA_ARGS__)); \
  } while (0)
