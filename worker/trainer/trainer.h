// RunTraining: the data-parallel training loop of one rank, on a TrainEngine
// (worker/engine/train_engine.h: CPU or CUDA)
// (DESIGN.md, "One training step"): data -> forward -> backward with bucketed
// gradient averaging overlapped (GradAllreducer) -> optimizer update ->
// progress. Every rank builds the same weights from the job seed (no
// broadcast), reads its own shard, and evaluates its share of the test set
// with the BN running statistics averaged over the ranks (bn_average.h: every
// rank holds the same model, and a checkpoint holds the model evaluated),
// re-estimated first with the current weights when the spec asks for precise
// BN (precise_bn.h); top-1, top-5 (more than 10 classes) and test loss;
// correct counts are summed over ranks so every rank reports the same
// accuracy, and `target_accuracy` stops all ranks at the same step. Knows
// nothing of gRPC: progress goes to a callback.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "worker/comm/communicator.h"
#include "worker/data/pipeline.h"
#include "worker/model/model.h"

namespace dtrain::trainer {

struct TrainProgress {
  int64_t step = 0;  // steps done
  int64_t total_steps = 0;
  int epoch = 0;
  double loss = 0;                       // this rank's mean loss of the last step
  double images_per_second = 0;          // global: world x this rank's rate
  double compute_images_per_second = 0;  // this rank, data and communication excluded
  double eval_accuracy = -1;             // last evaluation, -1 before the first
  double eval_top5_accuracy = -1;        // -1 before the first, or with 10 classes or fewer
  double eval_loss = -1;                 // mean test cross-entropy (no label smoothing), -1 before the first
  double learning_rate = 0;
  double data_seconds = 0, compute_seconds = 0, comm_seconds = 0, update_seconds = 0;
  double allreduce_bytes = 0;    // gradient bytes on the wire this step
  double allreduce_seconds = 0;  // time the communication spent on them
  double loss_scale = 1;         // fp16: the dynamic loss scale after this step
  int64_t bad_records = 0;       // record data sets: unreadable images replaced so far (this rank)
  std::string message;
};

struct TrainOutcome {
  int64_t steps = 0;
  int epochs = 0;
  double final_loss = 0;
  double eval_accuracy = -1;
  double eval_top5_accuracy = -1;
  double eval_loss = -1;
  double images_per_second = 0;  // global, mean after the first steps
  double seconds = 0;
  bool reached_target = false;
  uint64_t initial_checksum = 0;  // of the weights as built from the seed (same on every rank)
  uint64_t weight_checksum = 0;   // of the final weights
  int64_t resumed_from_step = 0;  // 0: started fresh
  int64_t skipped_steps = 0;      // fp16: updates skipped on an overflow
  int64_t bad_records = 0;        // record data sets: unreadable images replaced (this rank)
  // Mean seconds per step by phase (after warm-up).
  double data_seconds = 0, compute_seconds = 0, comm_seconds = 0, update_seconds = 0;
};

struct TrainEnv {
  // The engine (train_engine.h): "cpu" or "cuda" (resolved by the caller; the
  // CUDA engine fails when no usable device is there), and the CUDA device.
  std::string device = "cpu";
  int device_index = 0;
  int rank = 0;
  int world_size = 1;
  uint64_t seed = 0;
  int data_threads = 1;  // record data sets: threads decoding images (>= 1)
  // CPU engine: "auto" | "onednn" | "reference" (model.h's ResolveKernels)
  // and the threads of its compute (oneDNN's OpenMP threads; OpenBLAS's are
  // set by the process, e.g. worker/main.cc).
  std::string cpu_kernels = "auto";
  int compute_threads = 1;
  comm::Communicator* comm = nullptr;
  const std::atomic<bool>* abort = nullptr;
  std::function<void(const TrainProgress&)> on_progress;  // after every step
  // Called with (step, true) when this rank starts waiting in the gradient
  // allreduce of `step` (1-based) and (step, false) when it leaves it.
  std::function<void(int64_t step, bool waiting)> on_wait;
  // Rank 0 writes an MLPerf-format log here (MlperfLogger, mlperf_log.h);
  // empty: none. run_stop says "success" only when target_accuracy was
  // reached, "aborted" otherwise (an exception included).
  std::string mlperf_log_path;
  // Rank 0 writes TensorBoard scalars into this directory (TensorboardLog,
  // tensorboard_log.h) every spec.tensorboard.every_steps steps, at the last
  // step and at every evaluation; empty: none.
  std::string tensorboard_dir;
  // Checkpoints (checkpointing.h): this job's directory (spec.checkpoint.dir/
  // <job id>; empty: none), the checkpoint to resume from (empty: start
  // fresh), and rank 0's report once every rank has written one.
  std::string checkpoint_dir;
  std::string resume_dir;
  std::function<void(int64_t step, const std::string& dir)> on_checkpoint;
  // For tests and benches (may be null): every step's loss, the final weights.
  std::vector<double>* losses = nullptr;
  std::vector<float>* final_params = nullptr;
};

// The model a job trains on a data set (classes, input shape, BN settings,
// largest batch): the trainer's and any tool's that rebuilds it.
model::ModelOptions ModelOptionsFor(const JobSpec& spec, const data::DataInfo& info);

// precision "auto" -> fp16 on cuda, fp32 on cpu; fp32 on cuda throws
// kInvalidArgument saying what to set (fp16 on cpu is refused by the engine).
std::string ResolvePrecision(const std::string& precision, const std::string& device);

// Throws dtrain::Error: bad spec for this backend, data errors, communication
// errors (naming ranks and hosts), kAborted when env.abort is set, an MLPerf
// log path or TensorBoard directory that cannot be opened (kInvalidArgument,
// naming it).
TrainOutcome RunTraining(const JobSpec& spec, const TrainEnv& env);

}  // namespace dtrain::trainer
