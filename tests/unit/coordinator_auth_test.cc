// The coordinator's bearer-token check (coordinator/auth.h), without gRPC:
// roles, the metadata format, constant-time comparison of BOTH tokens on
// every check, messages that never echo a token, and the token file reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/error.h"
#include "common/secrets.h"
#include "coordinator/auth.h"

namespace dtrain::coordinator {
namespace {

const std::string kClient = "client-secret-0123456789abcdef";
const std::string kJoin = "join-secret-fedcba9876543210";

TEST(ConstantTimeEquals, Compares) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));     // prefix
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));   // longer
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("ab\0", 3), "ab"));
  EXPECT_FALSE(ConstantTimeEquals("xbc", "abc"));   // first byte differs
}

TEST(Authorizer, ClientRpcs) {
  const Authorizer a(kClient, kJoin);
  EXPECT_TRUE(a.Check("Bearer " + kClient, Role::kClient, "SubmitJob").ok());
  EXPECT_TRUE(a.Check("bearer " + kClient, Role::kClient, "SubmitJob").ok());  // scheme: any case
  EXPECT_TRUE(a.Check("Bearer  " + kClient + " ", Role::kClient, "SubmitJob").ok());

  EXPECT_EQ(a.Check("", Role::kClient, "ListJobs").code, AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer wrong", Role::kClient, "ListJobs").code, AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check(kClient, Role::kClient, "ListJobs").code, AuthResult::kUnauthenticated);  // no scheme
  EXPECT_EQ(a.Check("Basic " + kClient, Role::kClient, "ListJobs").code, AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer ", Role::kClient, "ListJobs").code, AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer " + kClient.substr(0, 10), Role::kClient, "ListJobs").code,
            AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer " + kClient + "x", Role::kClient, "ListJobs").code,
            AuthResult::kUnauthenticated);

  // A worker's valid join token on a client RPC: authenticated, not allowed.
  const AuthResult r = a.Check("Bearer " + kJoin, Role::kClient, "CancelJob");
  EXPECT_EQ(r.code, AuthResult::kPermissionDenied);
  EXPECT_NE(r.message.find("CancelJob"), std::string::npos) << r.message;
}

TEST(Authorizer, WorkerSession) {
  const Authorizer a(kClient, kJoin);
  EXPECT_TRUE(a.Check("Bearer " + kJoin, Role::kWorker, "WorkerSession").ok());
  EXPECT_EQ(a.Check("", Role::kWorker, "WorkerSession").code, AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer nope", Role::kWorker, "WorkerSession").code,
            AuthResult::kUnauthenticated);
  EXPECT_EQ(a.Check("Bearer " + kClient, Role::kWorker, "WorkerSession").code,
            AuthResult::kPermissionDenied);
}

TEST(Authorizer, MessagesNameRoleAndRpcButNeverAToken) {
  const Authorizer a(kClient, kJoin);
  const AuthResult missing = a.Check("", Role::kClient, "SubmitJob");
  EXPECT_EQ(missing.message, "missing or invalid bearer token for client RPC SubmitJob");
  const AuthResult worker = a.Check("", Role::kWorker, "WorkerSession");
  EXPECT_EQ(worker.message, "missing or invalid bearer token for worker RPC WorkerSession");
  const std::string guess = "guess-" + kClient;
  const std::vector<AuthResult> results = {
      a.Check("Bearer " + guess, Role::kClient, "GetJob"),
      a.Check("Bearer " + kJoin, Role::kClient, "GetJob"),
      a.Check("Bearer " + kClient, Role::kWorker, "WorkerSession"),
      a.Check("Bearer " + guess, Role::kWorker, "WorkerSession"),
  };
  for (const AuthResult& r : results) {
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.message.find(kClient), std::string::npos) << r.message;
    EXPECT_EQ(r.message.find(kJoin), std::string::npos) << r.message;
    EXPECT_EQ(r.message.find("guess"), std::string::npos) << r.message;
  }
}

TEST(Authorizer, UnconfiguredRoleIsOpen) {
  const Authorizer none("", "");
  EXPECT_TRUE(none.client_open());
  EXPECT_TRUE(none.worker_open());
  EXPECT_TRUE(none.Check("", Role::kClient, "ListJobs").ok());
  EXPECT_TRUE(none.Check("Bearer anything", Role::kWorker, "WorkerSession").ok());

  const Authorizer client_only(kClient, "");
  EXPECT_EQ(client_only.Check("", Role::kClient, "ListJobs").code, AuthResult::kUnauthenticated);
  EXPECT_TRUE(client_only.Check("", Role::kWorker, "WorkerSession").ok());
  // A client token on the open worker RPC is fine; a guess on a client RPC is not.
  EXPECT_EQ(client_only.Check("Bearer x", Role::kClient, "ListJobs").code,
            AuthResult::kUnauthenticated);

  const Authorizer join_only("", kJoin);
  EXPECT_TRUE(join_only.Check("", Role::kClient, "ListJobs").ok());
  EXPECT_EQ(join_only.Check("", Role::kWorker, "WorkerSession").code, AuthResult::kUnauthenticated);
}

TEST(Authorizer, EqualTokensAreRejected) {
  EXPECT_THROW(Authorizer(kClient, kClient), Error);
  try {
    Authorizer::ValidateTokens(kJoin, kJoin);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find(kJoin), std::string::npos);
  }
  EXPECT_NO_THROW(Authorizer::ValidateTokens("", ""));
  EXPECT_NO_THROW(Authorizer::ValidateTokens(kClient, ""));
}

// Every comparison goes through the (constant-time) comparator, and both
// configured tokens are compared on every check with a token, whatever the
// outcome, so the timing does not tell which role a guess matched.
TEST(Authorizer, ComparesBothTokensThroughTheComparatorEveryTime) {
  std::vector<std::string> expected_seen;
  const Authorizer a(kClient, kJoin, [&](std::string_view given, std::string_view expected) {
    expected_seen.emplace_back(expected);
    return ConstantTimeEquals(given, expected);
  });
  for (const std::string& presented : {kClient, kJoin, std::string("wrong")}) {
    for (const Role role : {Role::kClient, Role::kWorker}) {
      expected_seen.clear();
      a.Check("Bearer " + presented, role, "X");
      ASSERT_EQ(expected_seen.size(), 2u) << presented;
      EXPECT_NE(std::find(expected_seen.begin(), expected_seen.end(), kClient), expected_seen.end());
      EXPECT_NE(std::find(expected_seen.begin(), expected_seen.end(), kJoin), expected_seen.end());
    }
  }
  // The default comparator is ConstantTimeEquals (same answers as above).
  const Authorizer d(kClient, kJoin);
  EXPECT_TRUE(d.Check("Bearer " + kClient, Role::kClient, "X").ok());
}

class TokenFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("dtrain-auth-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(TokenFile, ReadsTheFirstLineTrimmed) {
  EXPECT_EQ(ReadTokenFile("--join-token-file", Write("t", "  s3cret-token\n")), "s3cret-token");
  EXPECT_EQ(ReadTokenFile("--join-token-file", Write("t2", "abc\r\nignored\n")), "abc");
}

TEST_F(TokenFile, BadFilesNameTheFileNotTheContents) {
  const auto message = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    ADD_FAILURE() << "expected an Error";
    return std::string();
  };
  const std::string missing = (dir_ / "missing").string();
  std::string m = message([&] { ReadTokenFile("--client-token-file", missing); });
  EXPECT_NE(m.find("--client-token-file"), std::string::npos) << m;
  EXPECT_NE(m.find(missing), std::string::npos) << m;
  const std::string empty = Write("empty", "\n\n");
  m = message([&] { ReadTokenFile("--client-token-file", empty); });
  EXPECT_NE(m.find(empty), std::string::npos) << m;
  EXPECT_NE(m.find("empty"), std::string::npos) << m;
  const std::string spaced = Write("spaced", "two words-secretpart\n");
  m = message([&] { ReadTokenFile("--client-token-file", spaced); });
  EXPECT_EQ(m.find("secretpart"), std::string::npos) << m;
  m = message([&] { ReadTokenFile("--client-token-file", dir_.string()); });
  EXPECT_NE(m.find("directory"), std::string::npos) << m;
  const std::string notpem = Write("ca.pem", "hello\n");
  m = message([&] { ReadPemFile("--ca", notpem); });
  EXPECT_NE(m.find("--ca"), std::string::npos) << m;
  EXPECT_NE(m.find("not a PEM file"), std::string::npos) << m;
  m = message([&] { ReadPemFile("--tls-cert", missing); });
  EXPECT_NE(m.find(missing), std::string::npos) << m;
}

TEST_F(TokenFile, FilePreferredOverEnvironment) {
  setenv("DTRAIN_AUTH_TEST_TOKEN", "from-env", 1);
  TokenSource t = LoadToken("--token-file", Write("t", "from-file\n"), "DTRAIN_AUTH_TEST_TOKEN");
  EXPECT_EQ(t.token, "from-file");
  EXPECT_EQ(t.where.find("from-file"), std::string::npos);  // `where` is safe to log
  t = LoadToken("--token-file", "", "DTRAIN_AUTH_TEST_TOKEN");
  EXPECT_EQ(t.token, "from-env");
  EXPECT_EQ(t.where, "env DTRAIN_AUTH_TEST_TOKEN");
  unsetenv("DTRAIN_AUTH_TEST_TOKEN");
  t = LoadToken("--token-file", "", "DTRAIN_AUTH_TEST_TOKEN");
  EXPECT_EQ(t.token, "");
  EXPECT_EQ(t.where, "none");
}

}  // namespace
}  // namespace dtrain::coordinator
