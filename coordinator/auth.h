// Authorizer: the coordinator's bearer-token check, free of gRPC. Each RPC
// needs one role: kClient (SubmitJob, GetJob, ListJobs, CancelJob, WatchJob,
// ListWorkers) or kWorker (WorkerSession). A role whose token is not
// configured is open. Otherwise the caller's "authorization" metadata must be
// "Bearer <that role's token>":
//   missing, malformed or unknown token      -> kUnauthenticated
//   the OTHER role's valid token (a worker's
//   join token on a client RPC, or back)     -> kPermissionDenied
// Tokens are compared in constant time (the time depends on the configured
// token's length only, never on where the first difference is), and both
// configured tokens are always compared, so the timing does not say which
// role a guess came close to. Messages never contain a token.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace dtrain::coordinator {

enum class Role { kClient, kWorker };
const char* RoleName(Role role);  // "client" | "worker"

struct AuthResult {
  enum Code { kOk, kUnauthenticated, kPermissionDenied };
  Code code = kOk;
  std::string message;  // empty when kOk
  bool ok() const { return code == kOk; }
};

// True when a == b; touches every byte of `expected` whatever `given` is.
bool ConstantTimeEquals(std::string_view given, std::string_view expected);

class Authorizer {
 public:
  using Equals = std::function<bool(std::string_view given, std::string_view expected)>;

  // Empty token: that role is open. `equals` is for tests (default:
  // ConstantTimeEquals). The two tokens must differ (ValidateTokens).
  Authorizer(std::string client_token, std::string worker_token, Equals equals = {});

  // Throws Error(kInvalidArgument) when both tokens are set and equal: the
  // roles could not be told apart.
  static void ValidateTokens(const std::string& client_token, const std::string& worker_token);

  bool client_open() const { return client_token_.empty(); }
  bool worker_open() const { return worker_token_.empty(); }

  // `authorization`: the metadata value (empty when absent). `rpc`: the
  // method name, for the message.
  AuthResult Check(std::string_view authorization, Role required, std::string_view rpc) const;

 private:
  std::string client_token_, worker_token_;
  Equals equals_;
};

}  // namespace dtrain::coordinator
