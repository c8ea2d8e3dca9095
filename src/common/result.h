// Result<T>: a value or an Error, for every fallible step of the analysis.
// (std::expected is C++23; GCC 12 does not ship it.)
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace gotlscap {

// Each kind maps to its own exit code in the CLI (see cli/exit_codes.h), so scripts can tell a
// non-Go file from a corrupt one without parsing messages.
enum class ErrorKind {
  kUsage,
  kIo,
  kNotElf,
  kNotGo,
  kUnsupportedArch,
  kCorrupt,
  kMissingFunction,
  kNoReturn,
  kPermission,
  kNoProcess,
  kInternal,
};

struct Error {
  ErrorKind kind;
  std::string message;
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

inline Error MakeError(ErrorKind kind, std::string message) { return Error{kind, std::move(message)}; }

}  // namespace gotlscap

// Propagates an Error from a Result-returning expression; binds the value otherwise.
#define GOTLSCAP_CONCAT_INNER(a, b) a##b
#define GOTLSCAP_CONCAT(a, b) GOTLSCAP_CONCAT_INNER(a, b)
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(GOTLSCAP_CONCAT(_res_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.error();          \
  lhs = std::move(tmp).value()
