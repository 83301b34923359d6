#include "worker/config.h"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <thread>

#include "common/error.h"
#include "common/net.h"
#include "common/secrets.h"
#include "worker/model/model.h"

namespace dtrain::worker {
namespace {

// Launchers name the local rank differently; the first one set wins.
constexpr const char* kLocalRankVars[] = {
    "SLURM_LOCALID",        // Slurm srun
    "OMPI_COMM_WORLD_LOCAL_RANK",  // Open MPI mpirun
    "MV2_COMM_WORLD_LOCAL_RANK",   // MVAPICH2
    "PALS_LOCAL_RANKID",    // PBS Pro / Cray PALS mpiexec
    "MPI_LOCALRANKID",      // MPICH / Intel MPI hydra (PBS pbsdsh + mpiexec)
    "PMI_LOCAL_RANK",
};

int ParseNonNegative(const std::string& what, const std::string& v) {
  if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos) {
    Fail(ErrorCode::kInvalidArgument, what + "='" + v + "' is not a local rank (0, 1, 2, ...)");
  }
  return std::atoi(v.c_str());
}

}  // namespace

void WorkerConfig::Validate() const {
  ParseHostPort("--coordinator", coordinator);
  if (!metrics.empty()) ParseHostPort("--metrics", metrics);
  if (device != "auto" && device != "cpu" && device != "cuda") {
    Fail(ErrorCode::kInvalidArgument, "--device '" + device + "': allowed auto, cpu, cuda");
  }
  if (local_rank < 0 || local_rank > 1023) {
    Fail(ErrorCode::kInvalidArgument, "--local-rank " + std::to_string(local_rank) + ": allowed 0 .. 1023");
  }
  if (blas_threads < 0 || blas_threads > 1024) {
    Fail(ErrorCode::kInvalidArgument, "--blas-threads: allowed 0 (auto) .. 1024");
  }
  try {
    model::ResolveKernels(cpu_kernels, /*batch_norm=*/true);  // the one list of names
  } catch (const Error& e) {
    Fail(e.code(), std::string("--cpu-kernels: ") + e.what());
  }
  if (data_threads < 0 || data_threads > 1024) {
    Fail(ErrorCode::kInvalidArgument, "--data-threads: allowed 0 (auto) .. 1024");
  }
  if (local_workers < 1 || local_workers > 1024) {
    Fail(ErrorCode::kInvalidArgument, "--local-workers: allowed 1 .. 1024");
  }
  if (!(reconnect_max_seconds >= 0.1 && reconnect_max_seconds <= 600)) {
    Fail(ErrorCode::kInvalidArgument, "--reconnect-max-seconds: allowed 0.1 .. 600");
  }
}

std::string WorkerConfig::Describe() const {
  return "coordinator=" + coordinator + " host=" + host + " local_rank=" +
         std::to_string(local_rank) + " (from " + local_rank_source + ") device=" + device +
         " blas_threads=" + std::to_string(blas_threads) + " cpu_kernels=" + cpu_kernels +
         " data_threads=" + (data_threads > 0 ? std::to_string(data_threads) : std::string("auto")) +
         " local_workers=" + std::to_string(local_workers) +
         (metrics.empty() ? "" : " metrics=" + metrics) + " log_dir=" + log_dir +
         " tls=" + (ca_file.empty() ? "off" : "on (ca " + ca_file + ")") +
         " join_token=" + join_token_source;
}

int DataThreadsFor(const WorkerConfig& c, const std::string& engine) {
  if (c.data_threads > 0) return c.data_threads;
  if (engine == "cpu") return 1;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, cores / c.local_workers);
}

WorkerConfig ParseWorkerFlags(int argc, char** argv) {
  WorkerConfig c;
  if (const char* e = std::getenv("DTRAIN_COORDINATOR")) c.coordinator = e;
  if (const char* e = std::getenv("DTRAIN_CA")) c.ca_file = e;
  for (const char* var : kLocalRankVars) {
    if (const char* v = std::getenv(var)) {
      c.local_rank = ParseNonNegative(var, v);
      c.local_rank_source = var;
      break;
    }
  }
  if (const char* v = std::getenv("SLURM_NTASKS_PER_NODE")) c.local_workers = std::max(1, std::atoi(v));
  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) c.local_workers = std::max(1, std::atoi(v));
  CLI::App app{"dtrain-worker: one per GPU (or CPU socket); registers with the coordinator and runs its jobs"};
  app.add_option("--coordinator", c.coordinator, "coordinator HOST:PORT (env DTRAIN_COORDINATOR)")
      ->capture_default_str();
  auto* lr = app.add_option("--local-rank", c.local_rank,
                            "GPU index on this host (default: SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, "
                            "PALS_LOCAL_RANKID, MPI_LOCALRANKID, else 0)");
  app.add_option("--device", c.device, "auto|cpu|cuda")->capture_default_str();
  app.add_option("--host", c.host, "host name reported to the coordinator (default: this host's)");
  app.add_option("--metrics", c.metrics, "HOST:PORT for the Prometheus endpoint");
  app.add_option("--blas-threads", c.blas_threads,
                 "compute threads per worker: OpenBLAS's and oneDNN's (0: cores / --local-workers)")
      ->capture_default_str();
  app.add_option("--cpu-kernels", c.cpu_kernels,
                 "CPU engine kernels: auto (oneDNN when built with it and the model has batch "
                 "norm), onednn, reference (im2col + OpenBLAS)")
      ->capture_default_str();
  app.add_option("--data-threads", c.data_threads,
                 "threads decoding and augmenting images (imagenet-folder, shards; 0: 1 for a CPU-engine job, "
                 "else cores / --local-workers)")
      ->capture_default_str();
  app.add_option("--local-workers", c.local_workers,
                 "workers sharing this host's CPU cores (default: SLURM_NTASKS_PER_NODE or 1)")
      ->capture_default_str();
  app.add_option("--reconnect-max-seconds", c.reconnect_max_seconds,
                 "longest wait between reconnection attempts")
      ->capture_default_str();
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-dir", c.log_dir,
                 "folder for per-job files; rank 0 writes the MLPerf log <job>.mllog there")
      ->capture_default_str();
  app.add_option("--ca", c.ca_file,
                 "PEM CA certificate(s) to verify the coordinator's TLS certificate with; "
                 "without it the connection is plaintext (env DTRAIN_CA)");
  app.add_option("--join-token-file", c.join_token_file,
                 "file holding the coordinator's join token (else env DTRAIN_JOIN_TOKEN)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help (rc 0) or the error
    std::exit(rc == 0 ? 0 : 2);  // bad flags: exit 2, as every other bad input
  }
  if (lr->count() > 0) c.local_rank_source = "--local-rank";
  if (c.host.empty()) c.host = LocalHostName();
  if (c.blas_threads == 0) {
    const int cores = std::max(1u, std::thread::hardware_concurrency());
    c.blas_threads = std::max(1, cores / c.local_workers);
  }
  c.Validate();
  if (!c.ca_file.empty()) c.ca_pem = ReadPemFile("--ca", c.ca_file);
  TokenSource jt = LoadToken("--join-token-file", c.join_token_file, "DTRAIN_JOIN_TOKEN");
  c.join_token = std::move(jt.token);
  c.join_token_source = std::move(jt.where);
  return c;
}

}  // namespace dtrain::worker
