// train_bench: training throughput of the CPU backend with 1 and with N
// worker processes on this machine (UCX on loopback between them), measured
// side by side in one run: global and per-worker images/s, the scaling
// efficiency, and each step split into data wait, compute (forward +
// backward), exposed allreduce and update.
//
//   train_bench [--workers 1,2] [--steps 40] [--blas-threads 1]
//               [--cpu-kernels auto|onednn|reference] [--set key=value ...]
//
// --blas-threads: each worker's compute threads (OpenBLAS's and oneDNN's).
//
// The default job is resnet20 on Fashion-MNIST, batch 128 per worker.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/local_communicator.h"
#include "worker/comm/ucx_communicator.h"
#include "worker/trainer/trainer.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace {

using namespace dtrain;

struct Row {
  int workers = 0;
  trainer::TrainOutcome o;
  double compute_only = 0;  // images/s of one rank without data and communication
};

std::string g_kernels = "auto";
int g_threads = 1;

trainer::TrainOutcome RunRank(const JobSpec& spec, int rank, int world, comm::Communicator& c) {
  trainer::TrainEnv env;
  env.cpu_kernels = g_kernels;
  env.compute_threads = g_threads;
  env.rank = rank;
  env.world_size = world;
  env.seed = 1;
  env.comm = &c;
  return trainer::RunTraining(spec, env);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> worlds = {1, 2};
  int steps = 40, blas = 1;
  std::vector<std::string> sets = {
      "model=resnet20", "dataset.name=fashion-mnist", "dataset.train_limit=20480",
      "dataset.test_limit=256", "batch_per_worker=128", "epochs=100", "eval_every_epochs=1000",
      "optimizer.name=lars", "schedule.base_lr=2.0", "schedule.warmup_epochs=1",
      "allreduce.dtype=fp16", "allreduce.bucket_mb=4"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--workers" && i + 1 < argc) {
      worlds.clear();
      std::stringstream ss(argv[++i]);
      for (std::string w; std::getline(ss, w, ',');) worlds.push_back(std::atoi(w.c_str()));
    } else if (a == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else if (a == "--blas-threads" && i + 1 < argc) {
      blas = std::atoi(argv[++i]);
    } else if (a == "--cpu-kernels" && i + 1 < argc) {
      g_kernels = argv[++i];
    } else if (a == "--set" && i + 1 < argc) {
      sets.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: train_bench [--workers 1,2] [--steps N] [--blas-threads T] "
                           "[--cpu-kernels auto|onednn|reference] [--set k=v ...]\n");
      return 2;
    }
  }
  sets.push_back("max_steps=" + std::to_string(steps));
  g_threads = blas;
  std::string kernels;
  try {
    kernels = model::ResolveKernels(g_kernels, true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: %s\n", e.what());
    return 2;
  }
  const JobSpec spec = ParseJobSpec("kind: train\n", sets);
  char dir[] = "/tmp/dtrain-train-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;

  std::vector<Row> rows;
  for (int w : worlds) {
    const std::string out = std::string(dir) + "/w" + std::to_string(w);
    auto codes = comm::testing::RunRanks(w, 3600, [&](int rank, comm::UcxWorker& ucx,
                                                      std::vector<comm::PeerInfo> peers) {
      openblas_set_num_threads(blas);
      std::unique_ptr<comm::Communicator> c =
          w == 1 ? comm::MakeLocalCommunicator() : comm::MakeUcxCommunicator(ucx, 1, rank, peers);
      trainer::TrainOutcome o = RunRank(spec, rank, w, *c);
      if (rank == 0) std::ofstream(out, std::ios::binary).write(reinterpret_cast<char*>(&o), sizeof(o));
      return 0;
    });
    for (int c : codes) {
      if (c != 0) {
        std::fprintf(stderr, "train_bench: a rank of the %d-worker run failed (code %d)\n", w, c);
        return 1;
      }
    }
    Row r;
    r.workers = w;
    std::ifstream(out, std::ios::binary).read(reinterpret_cast<char*>(&r.o), sizeof(r.o));
    r.compute_only = spec.batch_per_worker / (r.o.compute_seconds + r.o.update_seconds);
    rows.push_back(r);
    std::remove(out.c_str());
  }
  rmdir(dir);

  std::printf("\ntrain_bench: %s, batch %d per worker, %d steps (first 3 not timed), %s kernels, %d thread(s) per worker, wire %s, buckets %.1f MiB\n",
              spec.model.c_str(), spec.batch_per_worker, steps, kernels.c_str(), blas, spec.allreduce.dtype.c_str(),
              spec.allreduce.bucket_mb);
  std::printf("%8s %12s %12s %14s %10s %10s %12s %10s %10s\n", "workers", "global img/s",
              "img/s/worker", "compute img/s", "data ms", "compute ms", "exposed ms", "update ms",
              "scaling");
  const double base = rows.empty() ? 0 : rows[0].o.images_per_second / rows[0].workers;
  for (const Row& r : rows) {
    std::printf("%8d %12.1f %12.1f %14.1f %10.2f %10.2f %12.2f %10.2f %9.1f%%\n", r.workers,
                r.o.images_per_second, r.o.images_per_second / r.workers, r.compute_only,
                r.o.data_seconds * 1e3, r.o.compute_seconds * 1e3, r.o.comm_seconds * 1e3,
                r.o.update_seconds * 1e3, 100.0 * r.o.images_per_second / (r.workers * base));
  }
  std::printf("scaling = global img/s / (workers x the %d-worker run's img/s per worker)\n",
              rows.empty() ? 0 : rows[0].workers);
  return 0;
}
