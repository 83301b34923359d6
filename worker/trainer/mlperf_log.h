// MlperfLogger: MLPerf-format compliance logging of one training run, written
// by rank 0 (RunTraining, TrainEnv::mlperf_log_path).
//
// Every line is what the mlperf-logging library's mllog module prints:
//   :::MLLOG {"namespace": "", "time_ms": <unix ms>, "event_type": "POINT_IN_TIME",
//             "key": "...", "value": ..., "metadata": {"file": "...", "lineno": N, ...}}
// (one line; fields in that order; ", " and ": " separators as Python's
// json.dumps; non-ASCII escaped). As mllog does, "value" is written as a float
// whenever Python's float() accepts it: integers and booleans become floats
// (256 -> 256.0, false -> 0.0); metadata values keep their type. "file" and
// "lineno" name the CALLER's source line (std::source_location), the file
// relative to the source tree.
//
// The file is truncated at construction and flushed after every line, so a
// crash loses nothing already logged. A path that cannot be opened throws
// Error(kInvalidArgument) naming it; a failed write throws Error(kInternal).
//
// The run methods emit the sequence of the MLPerf training rules (4.0.0,
// ResNet, closed division), and keep all MLPerf knowledge here:
//   InitStart    submission_benchmark/org/division/status/platform, cache_clear, init_start
//   RunStart     the hyperparameters (global_batch_size, opt_name, the lars_opt_* or
//                sgd_opt_* keys, opt_learning_rate_decay_schedule, label_smoothing,
//                model_bn_span, gradient_accumulation_steps, train_samples,
//                eval_samples, seed), init_stop, run_start. The seed's metadata
//                "exact" holds it in decimal: the float value loses bits above 2^53.
//   StepStart    block_start (first_epoch_num, epoch_count) when no block is open,
//                epoch_start (epoch_num) at the first step of an epoch
//   StepEnd      epoch_stop after the last step of an epoch (or of the run),
//                block_stop after the block's last epoch (or the run's last step)
//   EvalStart    eval_start        EvalStop  eval_stop, eval_accuracy (epoch_num), and beside
//                it (not MLPerf keys; the RCP checker ignores them) eval_loss and, with
//                more than 10 classes, eval_top5_accuracy
//   RunStop      closes an open epoch and block, then run_stop (status
//                "success" or "aborted"); later calls do nothing.
// Epochs are numbered from 1 (epoch_num of epoch_start/epoch_stop, and
// first_epoch_num); the epoch_num of an evaluation is the number of epochs
// trained when it ran (a fraction between epoch boundaries), which is what
// MLPerf's RCP checker reads as epochs to converge. A block is the run of
// whole epochs up to the epoch holding the next evaluation. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <source_location>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/job_spec.h"

namespace dtrain::trainer {

using MlperfValue = std::variant<std::nullptr_t, bool, int64_t, double, std::string>;
using MlperfMetadata = std::vector<std::pair<std::string, MlperfValue>>;

// What the hyperparameter keys need beyond the spec; known once the data set
// is loaded.
struct MlperfRunFacts {
  int world_size = 1;
  uint64_t seed = 0;
  int64_t train_samples = 0;     // images in the training set
  int64_t eval_samples = 0;      // images in one evaluation
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 1;       // planned (max_steps included)
  int64_t eval_every_steps = 1;  // an evaluation after every this many steps, and after the last
};

class MlperfLogger {
 public:
  using Loc = std::source_location;

  explicit MlperfLogger(const std::string& path);
  ~MlperfLogger();
  MlperfLogger(const MlperfLogger&) = delete;
  MlperfLogger& operator=(const MlperfLogger&) = delete;

  const std::string& path() const { return path_; }

  // The run, in order (see the file comment).
  void InitStart(int world_size, Loc loc = Loc::current());
  void RunStart(const JobSpec& spec, const MlperfRunFacts& facts, Loc loc = Loc::current());
  void StepStart(int64_t step, Loc loc = Loc::current());  // step counted from 0
  void StepEnd(int64_t step, Loc loc = Loc::current());
  void EvalStart(int64_t steps_done, Loc loc = Loc::current());
  // loss / top5 < 0: not logged.
  void EvalStop(int64_t steps_done, double accuracy, double loss = -1, double top5 = -1,
                Loc loc = Loc::current());
  void RunStop(bool success, Loc loc = Loc::current());

  // One line each: POINT_IN_TIME, INTERVAL_START, INTERVAL_END.
  void Event(const std::string& key, const MlperfValue& value, const MlperfMetadata& metadata = {},
             Loc loc = Loc::current());
  void Start(const std::string& key, const MlperfValue& value = nullptr,
             const MlperfMetadata& metadata = {}, Loc loc = Loc::current());
  void End(const std::string& key, const MlperfValue& value = nullptr,
           const MlperfMetadata& metadata = {}, Loc loc = Loc::current());

 private:
  void Write(const char* event_type, const std::string& key, const MlperfValue& value,
             const MlperfMetadata& metadata, const Loc& loc);
  MlperfValue EpochsDone(int64_t steps_done) const;  // metadata epoch_num of an evaluation

  std::string path_;
  std::FILE* file_ = nullptr;
  MlperfRunFacts facts_;
  bool run_started_ = false, run_stopped_ = false;
  int64_t epoch_open_ = -1;        // 0-based epoch whose epoch_start is open, -1: none
  int64_t block_first_ = -1;       // 0-based first epoch of the open block, -1: none
  int64_t block_last_ = -1;        // 0-based last epoch of the open block
};

}  // namespace dtrain::trainer
