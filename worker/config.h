// WorkerConfig: the worker daemon's one typed configuration, filled once from
// flags and the launcher's environment (local rank from SLURM_LOCALID,
// OMPI_COMM_WORLD_LOCAL_RANK, PBS/PALS or MPICH equivalents), validated in one
// place and logged once at start.
#pragma once

#include <string>

namespace dtrain::worker {

struct WorkerConfig {
  std::string coordinator = "127.0.0.1:7070";
  int local_rank = 0;
  std::string local_rank_source = "default";  // which flag or variable set it
  std::string device = "auto";                 // auto | cpu | cuda
  std::string host;                            // defaults to the short host name
  std::string metrics;                         // HOST:PORT for Prometheus /metrics (empty: none)
  int blas_threads = 0;                        // compute threads (OpenBLAS, oneDNN); 0: cores / local workers
  std::string cpu_kernels = "auto";            // CPU engine: auto | onednn | reference
  int data_threads = 0;                        // JPEG decoding threads; 0: auto (DataThreadsFor)
  int local_workers = 1;                       // workers sharing this host's cores
  double reconnect_max_seconds = 5.0;
  double rpc_timeout_seconds = 10.0;
  std::string log_level = "info";
  std::string log_dir = "/tmp/dtrain";  // rank 0 writes <log_dir>/<job>.mllog (MLPerf log)
  // Security (README "Security"): TLS when ca_file is set; the join token is
  // sent as "authorization: Bearer <token>" on the session stream, never logged.
  std::string ca_file;                 // --ca (env DTRAIN_CA)
  std::string ca_pem;                  // its contents (loaded by ParseWorkerFlags)
  std::string join_token_file;         // --join-token-file (else env DTRAIN_JOIN_TOKEN)
  std::string join_token;
  std::string join_token_source = "none";

  void Validate() const;
  std::string Describe() const;
};

WorkerConfig ParseWorkerFlags(int argc, char** argv);

// Decoding threads for a job on `engine` ("cpu" | "cuda"): --data-threads when
// given (> 0); auto (0): 1 on the CPU engine (one core decodes ~860 ImageNet images/s,
// far ahead of CPU training, so the worker's cores stay with the compute
// threads instead of being shared twice), else cores / local workers (a GPU
// engine needs the host's cores for decoding).
int DataThreadsFor(const WorkerConfig& c, const std::string& engine);

}  // namespace dtrain::worker
