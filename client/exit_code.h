// The dtrain CLI's exit codes, and the one error type its commands throw.
//   0 success
//   1 the job FAILED or was CANCELLED (submit --wait, watch)
//   2 bad usage or invalid argument (bad flag, bad spec, unreadable file)
//   3 the coordinator cannot be reached
//   4 not found (unknown job id)
//   5 any other server error
//   6 not authorized (UNAUTHENTICATED: missing or wrong token; PERMISSION_DENIED:
//     a token of the wrong role, e.g. a worker's join token)
// Only the small status-code enum header of gRPC is included here.
#pragma once

#include <grpcpp/support/status_code_enum.h>

#include <stdexcept>
#include <string>

namespace dtrain::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitJobFailed = 1,
  kExitUsage = 2,
  kExitUnreachable = 3,
  kExitNotFound = 4,
  kExitServerError = 5,
  kExitUnauthorized = 6,
};

// The text of the `dtrain --help` footer listing the codes above.
const char* ExitCodeHelp();

// Maps an RPC's status to an exit code. `connected`: the channel had reached
// the coordinator, so DEADLINE_EXCEEDED means a slow server (5), not an
// unreachable one (3).
ExitCode ExitCodeForStatus(grpc::StatusCode code, bool connected);

// Whether a follower (watch, submit --wait) should retry after this status
// rather than give up: the coordinator is down, restarting, or slow.
bool IsTransient(grpc::StatusCode code);

// Thrown by commands; main() prints message() to stderr and exits with code().
class CliError : public std::runtime_error {
 public:
  CliError(ExitCode code, const std::string& message, bool transient = false)
      : std::runtime_error(message), code_(code), transient_(transient) {}
  ExitCode code() const { return code_; }
  bool transient() const { return transient_; }

 private:
  ExitCode code_;
  bool transient_;
};

}  // namespace dtrain::cli
