#include "client/exit_code.h"

namespace dtrain::cli {

const char* ExitCodeHelp() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  the job FAILED or was CANCELLED (submit --wait, watch)\n"
         "  2  bad usage or invalid argument (bad flag, bad spec, unreadable file)\n"
         "  3  the coordinator cannot be reached\n"
         "  4  not found (unknown job id)\n"
         "  5  any other server error\n"
         "  6  not authorized (missing or wrong token: --token-file, $DTRAIN_CLIENT_TOKEN)\n"
         "\n"
         "The coordinator address comes from --coordinator, else $DTRAIN_COORDINATOR,\n"
         "else 127.0.0.1:7070. TLS: --ca FILE (else $DTRAIN_CA); without it, plaintext.";
}

ExitCode ExitCodeForStatus(grpc::StatusCode code, bool connected) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitUsage;
    case grpc::StatusCode::UNAVAILABLE:
      return kExitUnreachable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return connected ? kExitServerError : kExitUnreachable;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitUnauthorized;
    default:
      return kExitServerError;
  }
}

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::ABORTED;
}

}  // namespace dtrain::cli
