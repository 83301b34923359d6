// dtrain-coordinator: serves the control plane until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/logging.h"
#include "coordinator/config.h"
#include "common/metrics.h"
#include "coordinator/core.h"
#include "coordinator/metrics.h"
#include "coordinator/service.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace dtrain;
  try {
    coordinator::CoordinatorConfig cfg = coordinator::ParseCoordinatorFlags(argc, argv);
    InitLogging("coordinator", cfg.log_level);
    spdlog::info("dtrain-coordinator starting: {}", cfg.Describe());
    spdlog::warn("control plane is plain gRPC without TLS or tokens: keep it on a trusted network");
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    coordinator::CoreOptions opt;
    opt.heartbeat_timeout_seconds = cfg.heartbeat_timeout_seconds;
    opt.heartbeat_interval_seconds = cfg.heartbeat_interval_seconds;
    opt.stall_timeout_seconds = cfg.stall_timeout_seconds;
    coordinator::CoordinatorCore core(opt);
    std::unique_ptr<MetricsServer> exposer;
    if (!cfg.metrics.empty()) {
      exposer = std::make_unique<MetricsServer>(
          "--metrics", cfg.metrics, std::make_shared<coordinator::CoordinatorMetrics>(core));
      spdlog::info("serving Prometheus metrics on port {} (/metrics)", exposer->port());
    }
    coordinator::RunServer(core, cfg.listen, g_stop, [&](int port) {
      spdlog::info("serving dtrain.v1.Coordinator and grpc.health.v1 on port {}", port);
      if (!cfg.port_file.empty()) {
        const std::string tmp = cfg.port_file + ".tmp";
        std::ofstream(tmp) << port << "\n";
        std::rename(tmp.c_str(), cfg.port_file.c_str());
      }
    });
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "dtrain-coordinator: %s\n", e.what());
    return 2;
  }
}
