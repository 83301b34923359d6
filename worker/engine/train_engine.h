// TrainEngine: what the training loop (worker/trainer) needs of a device.
// The loop owns data order, schedule, checkpoints, evaluation and progress;
// an engine owns the model's weights, optimizer state and gradient averaging
// on its device and runs one step at a time:
//   Step(batch, lr): forward, backward with the gradients averaged over all
//     ranks in buckets overlapped with backward (bucket_plan.h), then the
//     optimizer update (skipped on an fp16 overflow, with the loss scale
//     lowered); returns the rank's loss, top-1 count and the step split.
//   Predict(batch): inference with the running BN statistics; top-1 and
//     top-5 counts and the summed cross-entropy (no label smoothing).
//   AccumulateBnStatistics(batch, factor): a training-mode forward alone that
//     moves the BN running statistics by `factor` (precise BN).
//   ExportState / ImportState: the state in the CANONICAL layout, identical
//     for every engine: fp32, tensors in resnet_arch.h's order and shapes
//     (conv weights KCRS as PyTorch), momentum in the same layout, BN running
//     statistics as resnet_arch.h's buffers, plus the loss scale. A
//     checkpoint written from one engine loads into another.
//   Checksum(): FNV-1a 64 over the canonical parameters, combined with the
//     buffers' (equal to model::Model::Checksum for the CPU engine).
// Engines: CPU (cpu_engine.h; fp32 on oneDNN in its blocked layouts, or on the
// reference kernels, NCHW im2col + OpenBLAS) and CUDA (cuda_engine.h;
// NHWC fp16 on cuDNN, fp32 masters; built when nvcc and cuDNN are found).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "worker/comm/communicator.h"
#include "worker/data/batch.h"
#include "worker/model/model.h"

namespace dtrain::engine {

struct EngineOptions {
  std::string model_name;
  model::ModelOptions model;   // classes, image size, BN settings, max_batch
  uint64_t seed = 0;           // weights come from the seed alone
  OptimizerSpec optimizer;
  double label_smoothing = 0;
  std::string precision = "fp32";  // resolved: fp32 (CPU) | fp16 (CUDA)
  // Gradient averaging.
  comm::Communicator* comm = nullptr;
  comm::DType wire = comm::DType::kF16;
  double bucket_mb = 4;
  double timeout_seconds = 60;
  const std::atomic<bool>* abort = nullptr;
  int device = 0;              // CUDA device index
  std::string cpu_kernels = "auto";  // CPU: auto | onednn | reference (model.h)
  int threads = 1;             // CPU: oneDNN's threads per call
  // Called with true when the step starts waiting for the gradient averaging
  // (the stall inspector's "arrived at the allreduce") and false after.
  std::function<void(bool waiting)> on_wait;
  bool profiling = false;      // per-layer (CPU) or per-family (CUDA) times
  bool autotune = true;        // CUDA: time cuDNN's candidate plans once per shape
};

struct StepStats {
  double loss = 0;
  int64_t correct = 0;
  double compute_seconds = 0;    // forward + backward
  double comm_seconds = 0;       // exposed wait for the gradient averaging
  double update_seconds = 0;
  double allreduce_seconds = 0;  // time the communication spent (overlapped or not)
  bool skipped = false;          // overflow: no update this step
  double loss_scale = 1;         // after this step
};

struct EvalStats {
  int64_t correct = 0;       // top-1
  int64_t correct_top5 = 0;  // label among the 5 highest logits (all rows when classes <= 5)
  double loss_sum = 0;       // cross-entropy summed over the batch's images
};

struct EngineState {
  std::vector<float> params, momentum, bn_running;
  double loss_scale = 1;
};

class TrainEngine {
 public:
  virtual ~TrainEngine() = default;
  virtual const char* kind() const = 0;     // "cpu" | "cuda"
  virtual std::string describe() const = 0; // for the log: device, precision
  virtual const model::ResnetArch& arch() const = 0;
  virtual size_t num_buckets() const = 0;
  virtual StepStats Step(const data::Batch& batch, double lr) = 0;
  virtual EvalStats Predict(const data::Batch& batch) = 0;
  // A forward pass with batch statistics (no backward, no update) whose only
  // effect is running = (1 - factor) * running + factor * batch statistic in
  // every BN (variance unbiased, as in training). Factor 1/i on the i-th of N
  // batches leaves the plain mean over the N batches ("precise BN").
  virtual void AccumulateBnStatistics(const data::Batch& batch, double factor) = 0;
  virtual void ExportState(EngineState* state) = 0;
  // Throws kInvalidArgument naming the part whose size does not match.
  virtual void ImportState(const EngineState& state) = 0;
  // For parity tests: forward + backward of `batch` on this rank alone (no
  // averaging, no update; BN running statistics move as in training).
  // Returns the mean loss; `grads` gets the unscaled gradients, canonical.
  virtual double ComputeGradients(const data::Batch& batch, std::vector<float>* grads) = 0;
  // The BN running statistics alone (arch().buffers order, fp32), e.g. to
  // average them over ranks before an evaluation or a checkpoint.
  virtual void GetBnRunning(std::vector<float>* out) = 0;
  virtual void SetBnRunning(const std::vector<float>& values) = 0;  // kInvalidArgument on a size mismatch
  // Per-layer or per-family seconds since the last call (profiling on).
  virtual std::vector<model::LayerTime> TakeProfile() { return {}; }

  uint64_t Checksum();        // parameters and buffers
  uint64_t ParamsChecksum();  // parameters only
};

// Checks an imported state's sizes against the architecture.
void CheckStateSizes(const EngineState& s, const model::ResnetArch& arch, size_t momentum_size);
void CheckBnSize(const std::vector<float>& bn_running, const model::ResnetArch& arch);
// AccumulateBnStatistics's factor must be in (0, 1]; throws kInvalidArgument.
void CheckBnFactor(double factor);

// Whether this build has the CUDA engine, and why not.
bool HaveCudaEngine(std::string* why);

// "cpu" or "cuda" (the caller resolved "auto"). The CUDA engine throws
// kUnavailable when no usable device, cuDNN or NCCL is found, naming what.
std::unique_ptr<TrainEngine> MakeEngine(const std::string& device, const EngineOptions& options);

}  // namespace dtrain::engine
