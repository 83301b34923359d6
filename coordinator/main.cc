// dtrain-coordinator: serves the control plane until SIGINT/SIGTERM.
#include <absl/synchronization/mutex.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/logging.h"
#include "common/net.h"
#include "coordinator/config.h"
#include "common/metrics.h"
#include "coordinator/core.h"
#include "coordinator/metrics.h"
#include "coordinator/service.h"
#include "coordinator/state_lock.h"
#include "coordinator/store.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// Says what is open: tokens not configured, or a non-loopback address without TLS.
void WarnAboutSecurity(const dtrain::coordinator::CoordinatorConfig& cfg) {
  if (cfg.client_token.empty() && cfg.join_token.empty()) {
    spdlog::warn("no tokens configured: the control plane accepts any client and worker (fine for "
                 "loopback quickstart, not for a shared cluster)");
  } else if (cfg.client_token.empty()) {
    spdlog::warn("no client token configured: client RPCs (submit, cancel, list, ...) accept any caller");
  } else if (cfg.join_token.empty()) {
    spdlog::warn("no join token configured: any process can register as a worker");
  }
  const std::string host = dtrain::ParseHostPort("--listen", cfg.listen).host;
  const bool loopback = host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
  if (cfg.tls_cert_pem.empty() && !loopback) {
    spdlog::warn("listening on {} without TLS: tokens, job specs and results cross the network in "
                 "clear text (use --tls-cert and --tls-key)", cfg.listen);
  }
}
}  // namespace

int main(int argc, char** argv) {
  using namespace dtrain;
  try {
    coordinator::CoordinatorConfig cfg = coordinator::ParseCoordinatorFlags(argc, argv);
    InitLogging("coordinator", cfg.log_level);
    // Debian builds Abseil without NDEBUG, so every absl::Mutex inside gRPC
    // also maintains a lock-order graph (deadlock detection for debugging):
    // ~4 % of the coordinator's CPU at 2,048 workers (bench/README.md). Off.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    spdlog::info("dtrain-coordinator starting: {}", cfg.Describe());
    WarnAboutSecurity(cfg);
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    coordinator::CoreOptions opt;
    opt.heartbeat_timeout_seconds = cfg.heartbeat_timeout_seconds;
    opt.heartbeat_interval_seconds = cfg.heartbeat_interval_seconds;
    opt.stall_timeout_seconds = cfg.stall_timeout_seconds;
    opt.dead_worker_seconds = cfg.dead_worker_seconds;
    std::unique_ptr<coordinator::StateDirLock> lock;
    std::unique_ptr<coordinator::JobStore> store;
    if (!cfg.state_dir.empty()) {
      lock = std::make_unique<coordinator::StateDirLock>(cfg.state_dir);  // before anything is read
      store = std::make_unique<coordinator::JobStore>(cfg.state_dir);
      opt.store = store.get();
    }
    coordinator::CoordinatorCore core(opt);
    std::unique_ptr<MetricsServer> exposer;
    if (!cfg.metrics.empty()) {
      exposer = std::make_unique<MetricsServer>(
          "--metrics", cfg.metrics, std::make_shared<coordinator::CoordinatorMetrics>(core));
      spdlog::info("serving Prometheus metrics on port {} (/metrics)", exposer->port());
    }
    const coordinator::ServerSecurity security{cfg.tls_cert_pem, cfg.tls_key_pem, cfg.client_token,
                                               cfg.join_token};
    coordinator::RunServer(core, cfg.listen, g_stop, [&](int port) {
      spdlog::info("serving dtrain.v1.Coordinator and grpc.health.v1 on port {}", port);
      if (!cfg.port_file.empty()) {
        const std::string tmp = cfg.port_file + ".tmp";
        std::ofstream(tmp) << port << "\n";
        std::rename(tmp.c_str(), cfg.port_file.c_str());
      }
    }, security);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "dtrain-coordinator: %s\n", e.what());
    return 2;
  }
}
