// dtrain-worker: registers with the coordinator and runs its jobs until
// SIGINT/SIGTERM.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/net.h"
#include "worker/comm/ucx_worker.h"
#include "worker/config.h"
#include "worker/control_client.h"
#include "worker/devices.h"
#include "worker/job_log.h"
#include "worker/job_runner.h"
#include "worker/log_requests.h"
#include "worker/worker_metrics.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace dtrain;
  using namespace dtrain::worker;
  try {
    WorkerConfig cfg = ParseWorkerFlags(argc, argv);
    // OpenBLAS and OpenMP (oneDNN's runtime) size their thread pools when
    // they load: set the counts in the environment and start again, so no
    // idle compute thread spins on cores another worker was given.
    const std::string blas = std::to_string(cfg.blas_threads);
    const char* have = std::getenv("OPENBLAS_NUM_THREADS");
    const char* have_omp = std::getenv("OMP_NUM_THREADS");
    if (!have || blas != have || !have_omp || blas != have_omp) {
      setenv("OPENBLAS_NUM_THREADS", blas.c_str(), 1);
      setenv("OMP_NUM_THREADS", blas.c_str(), 1);
      char self[4096];  // the resolved path, so ps and top still say dtrain-worker
      const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
      self[n > 0 ? n : 0] = '\0';
      execv(n > 0 ? self : "/proc/self/exe", argv);
      std::perror("dtrain-worker: re-exec with OPENBLAS_NUM_THREADS/OMP_NUM_THREADS failed; continuing");
    }
    InitLogging("worker-" + std::to_string(cfg.local_rank), cfg.log_level);
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    if (int64_t(cfg.blas_threads) * cfg.local_workers > cores) {
      spdlog::warn("this host's {} cores are oversubscribed: {} local workers x {} compute threads; give "
                   "--local-workers (the workers on this host) and leave --blas-threads at 0 (cores / workers)",
                   cores, cfg.local_workers, cfg.blas_threads);
    }
    spdlog::info("dtrain-worker starting: {}", cfg.Describe());
    std::vector<DeviceInfo> devices = DetectDevices(cfg.device, cfg.local_rank);
    for (const auto& d : devices) {
      spdlog::info("device: {} {} ({:.1f} GiB)", d.kind, d.name, d.memory_bytes / 1073741824.0);
    }
    std::unique_ptr<comm::UcxWorker> ucx;
    try {
      ucx = std::make_unique<comm::UcxWorker>();
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kInvalidArgument) throw;  // a bad setting: say so and stop
      spdlog::error("UCX did not start ({}); only single-worker jobs can run here", e.what());
    }
    auto metrics = std::make_shared<WorkerMetrics>(
        cfg.host, devices.at(0).kind + ":" + std::to_string(devices.at(0).index));
    std::unique_ptr<MetricsServer> exposer;
    std::string metrics_address;
    if (!cfg.metrics.empty()) {
      exposer = std::make_unique<MetricsServer>("--metrics", cfg.metrics, metrics);
      // Advertise the address as bound: a specific address (loopback
      // included) as it is, a wildcard as this host's name.
      const std::string bound = ParseHostPort("--metrics", cfg.metrics).host;
      const bool wildcard = bound.empty() || bound == "0.0.0.0" || bound == "::" || bound == "[::]";
      metrics_address = (wildcard ? cfg.host : bound) + ":" + std::to_string(exposer->port());
      spdlog::info("serving Prometheus metrics at {} (/metrics)", metrics_address);
    }
    v1::Register reg;
    reg.set_host(cfg.host);
    reg.set_local_rank(cfg.local_rank);
    reg.set_pid(getpid());
    reg.set_metrics_address(metrics_address);
    if (ucx) reg.set_ucx_address(ucx->Address());
    for (const auto& d : devices) {
      v1::Device* pd = reg.add_devices();
      pd->set_kind(d.kind);
      pd->set_index(d.index);
      pd->set_name(d.name);
      pd->set_memory_bytes(d.memory_bytes);
    }
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);

    // Every job's lines, kept for `dtrain logs` (in memory and under --log-dir).
    JobLogStore job_logs(cfg.log_dir);
    spdlog::default_logger()->sinks().push_back(job_logs.Sink());
    std::unique_ptr<JobRunner> runner;
    std::unique_ptr<LogRequestServer> log_server;
    ControlClient control(
        cfg, reg,
        {.on_assignment = [&](const v1::Assignment& a) { runner->Start(a); },
         .on_abort = [&](const std::string& job, const std::string& why) { runner->Abort(job, why); },
         .on_log_request = [&](const v1::LogRequest& r) { log_server->Handle(r); },
         .on_disconnect = [&](const std::string& why) {
           runner->AbortAndJoin("lost the coordinator: " + why);
         }});
    log_server = std::make_unique<LogRequestServer>(
        job_logs, cfg.host, [&control](const v1::WorkerMessage& m) { return control.Send(m); });
    runner = std::make_unique<JobRunner>(cfg, devices, ucx.get(), &control,
                                         exposer ? metrics.get() : nullptr, &job_logs);
    std::thread watcher([&] {
      while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      spdlog::info("stopping");
      runner->AbortAndJoin("worker stopping");
      control.Shutdown();
    });
    int rc = 0;
    try {
      control.Run();
    } catch (const Error& e) {
      spdlog::error("{}", e.what());
      std::fprintf(stderr, "dtrain-worker: %s\n", e.what());
      rc = e.code() == ErrorCode::kPermissionDenied ? 6 : 1;  // 6: not authorized, as the CLI
    }
    g_stop = true;
    watcher.join();
    log_server.reset();
    return rc;
  } catch (const Error& e) {
    std::fprintf(stderr, "dtrain-worker: %s\n", e.what());
    return 2;
  }
}
