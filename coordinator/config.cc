#include "coordinator/config.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "common/net.h"
#include "common/secrets.h"
#include "coordinator/auth.h"

namespace dtrain::coordinator {

void CoordinatorConfig::Validate() const {
  ParseHostPort("--listen", listen);
  if (!(heartbeat_timeout_seconds >= 0.1 && heartbeat_timeout_seconds <= 3600)) {
    Fail(ErrorCode::kInvalidArgument, "--heartbeat-timeout " +
                                          std::to_string(heartbeat_timeout_seconds) +
                                          ": allowed 0.1 .. 3600 seconds");
  }
  if (!metrics.empty()) ParseHostPort("--metrics", metrics);
  if (tls_cert_file.empty() != tls_key_file.empty()) {
    Fail(ErrorCode::kInvalidArgument, "--tls-cert and --tls-key go together: give both or neither");
  }
  if (!(stall_timeout_seconds >= 0.1 && stall_timeout_seconds <= 86400)) {
    Fail(ErrorCode::kInvalidArgument, "--stall-timeout: allowed 0.1 .. 86400 seconds");
  }
  if (stall_timeout_seconds >= heartbeat_timeout_seconds) {
    spdlog::warn("--stall-timeout {} s is not below --heartbeat-timeout {} s: a stopped rank fails its job "
                 "by the heartbeat deadline before the stall inspector can name it",
                 stall_timeout_seconds, heartbeat_timeout_seconds);
  }
  if (!(dead_worker_seconds > 0 && dead_worker_seconds <= 365 * 86400.0)) {
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "--dead-worker-seconds %g: allowed more than 0 and at most 31536000 (one year)",
                  dead_worker_seconds);
    Fail(ErrorCode::kInvalidArgument, buf);
  }
  if (!(heartbeat_interval_seconds > 0 && heartbeat_interval_seconds < heartbeat_timeout_seconds)) {
    Fail(ErrorCode::kInvalidArgument,
         "--heartbeat-interval must be > 0 and below --heartbeat-timeout (" +
             std::to_string(heartbeat_timeout_seconds) + " s)");
  }
}

std::string CoordinatorConfig::Describe() const {
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "listen=%s metrics=%s heartbeat_timeout=%.1fs heartbeat_interval=%.1fs "
                "stall_timeout=%.1fs dead_worker=%.0fs state_dir=%s log_level=%s",
                listen.c_str(), metrics.empty() ? "off" : metrics.c_str(),
                heartbeat_timeout_seconds, heartbeat_interval_seconds, stall_timeout_seconds,
                dead_worker_seconds,
                state_dir.empty() ? "none (jobs are lost on restart)" : state_dir.c_str(),
                log_level.c_str());
  return std::string(buf) + " tls=" + (tls_cert_file.empty() ? "off" : "on (cert " + tls_cert_file + ")") +
         " client_token=" + client_token_source + " join_token=" + join_token_source;
}

void CoordinatorConfig::LoadSecrets() {
  if (!tls_cert_file.empty()) {
    tls_cert_pem = ReadPemFile("--tls-cert", tls_cert_file);
    tls_key_pem = ReadPemFile("--tls-key", tls_key_file);
  }
  TokenSource ct = LoadToken("--client-token-file", client_token_file, "DTRAIN_CLIENT_TOKEN");
  TokenSource jt = LoadToken("--join-token-file", join_token_file, "DTRAIN_JOIN_TOKEN");
  Authorizer::ValidateTokens(ct.token, jt.token);
  client_token = std::move(ct.token);
  client_token_source = std::move(ct.where);
  join_token = std::move(jt.token);
  join_token_source = std::move(jt.where);
}

CoordinatorConfig ParseCoordinatorFlags(int argc, char** argv) {
  CoordinatorConfig c;
  if (const char* e = std::getenv("DTRAIN_LISTEN")) c.listen = e;
  CLI::App app{"dtrain-coordinator: job queue, worker registry and rendezvous for dtrain workers"};
  app.add_option("--listen", c.listen, "HOST:PORT to serve gRPC on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", c.heartbeat_timeout_seconds,
                 "seconds of silence after which a worker is declared dead and its job fails")
      ->capture_default_str();
  app.add_option("--heartbeat-interval", c.heartbeat_interval_seconds,
                 "seconds between worker heartbeats (told to workers)")
      ->capture_default_str();
  app.add_option("--metrics", c.metrics, "HOST:PORT to serve Prometheus /metrics on (port 0: any)");
  app.add_option("--stall-timeout", c.stall_timeout_seconds,
                 "seconds after which a rank that has not reached a step the others finished is "
                 "reported as stalled")
      ->capture_default_str();
  app.add_option("--dead-worker-seconds", c.dead_worker_seconds,
                 "seconds after which a DEAD worker is dropped from the registry (dtrain workers) "
                 "unless it registers again first")
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--state-dir", c.state_dir,
                 "directory of the job store (SQLite): jobs survive a coordinator restart");
  app.add_option("--port-file", c.port_file, "write the bound port to this file once listening");
  app.add_option("--tls-cert", c.tls_cert_file, "PEM certificate (chain) to serve TLS with (with --tls-key)");
  app.add_option("--tls-key", c.tls_key_file, "PEM private key of --tls-cert");
  app.add_option("--client-token-file", c.client_token_file,
                 "file holding the bearer token client RPCs must carry (else env DTRAIN_CLIENT_TOKEN)");
  app.add_option("--join-token-file", c.join_token_file,
                 "file holding the bearer token workers must carry (else env DTRAIN_JOIN_TOKEN)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help (rc 0) or the error
    std::exit(rc == 0 ? 0 : 2);  // bad flags: exit 2, as every other bad input
  }
  c.Validate();
  c.LoadSecrets();
  return c;
}

}  // namespace dtrain::coordinator
