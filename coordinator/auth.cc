#include "coordinator/auth.h"

#include <cctype>

#include "common/error.h"

namespace dtrain::coordinator {
namespace {

constexpr std::string_view kScheme = "bearer";  // RFC 6750: case-insensitive scheme

// "Bearer <token>" -> token; empty when the value is not of that form.
std::string_view BearerToken(std::string_view value) {
  if (value.size() <= kScheme.size() + 1) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kScheme[i]) return {};
  }
  if (value[kScheme.size()] != ' ') return {};
  std::string_view token = value.substr(kScheme.size() + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

}  // namespace

const char* RoleName(Role role) { return role == Role::kClient ? "client" : "worker"; }

bool ConstantTimeEquals(std::string_view given, std::string_view expected) {
  // Loop over the expected token's length whatever was given; accumulate the
  // differences without branching on them.
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | (g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

Authorizer::Authorizer(std::string client_token, std::string worker_token, Equals equals)
    : client_token_(std::move(client_token)),
      worker_token_(std::move(worker_token)),
      equals_(equals ? std::move(equals) : Equals(&ConstantTimeEquals)) {
  ValidateTokens(client_token_, worker_token_);
}

void Authorizer::ValidateTokens(const std::string& client_token, const std::string& worker_token) {
  if (!client_token.empty() && !worker_token.empty() &&
      ConstantTimeEquals(client_token, worker_token)) {
    Fail(ErrorCode::kInvalidArgument,
         "the client token and the join token are the same: give each role its own token "
         "(--client-token-file, --join-token-file)");
  }
}

AuthResult Authorizer::Check(std::string_view authorization, Role required,
                             std::string_view rpc) const {
  const std::string& mine = required == Role::kClient ? client_token_ : worker_token_;
  const std::string& other = required == Role::kClient ? worker_token_ : client_token_;
  if (mine.empty()) return {};  // this role is open
  const std::string_view token = BearerToken(authorization);
  // Both comparisons always run (no short-circuit), each in constant time.
  const bool is_mine = !token.empty() && equals_(token, mine);
  const bool is_other = !token.empty() && !other.empty() && equals_(token, other);
  if (is_mine) return {};
  const std::string role = RoleName(required);
  if (is_other) {
    return {AuthResult::kPermissionDenied,
            "permission denied for " + role + " RPC " + std::string(rpc) + ": the " +
                RoleName(required == Role::kClient ? Role::kWorker : Role::kClient) +
                " token is not allowed to call it; use the " + role + " token"};
  }
  return {AuthResult::kUnauthenticated,
          "missing or invalid bearer token for " + role + " RPC " + std::string(rpc)};
}

}  // namespace dtrain::coordinator
