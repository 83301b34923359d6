// dtrain::Error: the one exception type library code throws. It carries a code
// that main() and RPC handlers map to an exit status or a gRPC status, and a
// message that says what was wrong and what is allowed.
#pragma once

#include <stdexcept>
#include <string>

namespace dtrain {

enum class ErrorCode {
  kInvalidArgument,   // bad input: spec field, flag, file contents
  kNotFound,
  kDeadlineExceeded,  // a wait ran out of time
  kUnavailable,       // a peer or the coordinator cannot be reached
  kAborted,           // the job was cancelled or a peer failed
  kDataLoss,          // corrupt or truncated file
  kInternal,
  kPermissionDenied,  // refused: a missing or wrong token
};

const char* ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void Fail(ErrorCode code, const std::string& message) {
  throw Error(code, message);
}

}  // namespace dtrain
