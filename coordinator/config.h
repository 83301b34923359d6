// CoordinatorConfig: the coordinator's one typed configuration, filled once
// from flags (and DTRAIN_* environment defaults), validated in one place and
// logged once at start.
#pragma once

#include <string>

namespace dtrain::coordinator {

struct CoordinatorConfig {
  std::string listen = "127.0.0.1:7070";
  double heartbeat_timeout_seconds = 10.0;
  double heartbeat_interval_seconds = 1.0;
  // Below the heartbeat deadline, so a stopped rank is NAMED by the stall
  // inspector before the deadline fails its job (README, "Stall inspector").
  double stall_timeout_seconds = 5.0;
  std::string metrics;    // HOST:PORT for Prometheus (empty: none)
  std::string log_level = "info";
  std::string state_dir;  // SQLite job store (empty: jobs do not survive a restart)
  // A DEAD worker is dropped from the registry (`dtrain workers`) after this
  // long unless it registers again first (then it keeps its id).
  double dead_worker_seconds = 600.0;
  std::string port_file;  // written with the bound port once listening (tests, scripts)
  // Security (README "Security"). Secrets are loaded by LoadSecrets();
  // Describe() says only where each came from, never a token.
  std::string tls_cert_file, tls_key_file;  // both or neither
  std::string tls_cert_pem, tls_key_pem;
  std::string client_token_file, join_token_file;  // else env DTRAIN_CLIENT_TOKEN / DTRAIN_JOIN_TOKEN
  std::string client_token, join_token;            // empty: that role is open
  std::string client_token_source = "none", join_token_source = "none";

  void Validate() const;  // throws Error(kInvalidArgument) naming the flag
  std::string Describe() const;
  void LoadSecrets();      // reads the TLS and token files; throws Error naming the file
};

// Parses argv; prints help and exits 0 for --help; throws Error on bad flags.
CoordinatorConfig ParseCoordinatorFlags(int argc, char** argv);

}  // namespace dtrain::coordinator
