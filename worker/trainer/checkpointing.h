// Training checkpoints: what a rank writes every checkpoint.every_steps (or
// every_epochs), and how a restarted job takes it up again.
//
// One directory per checkpoint, JOB_DIR/step-N/:
//   model.ckpt   rank 0: fp32 weights, LARS/SGD momentum, BN running stats
//                (canonical layout: NCHW/KCRS, resnet_arch.h order), loss scale, and the position (step, epoch, steps per epoch,
//                world size, batch, seed, model, parameter count)
//   rank-R.ckpt  every rank: its own BN running stats (they are per rank) and
//                its data position; the sampler and augmentation draw from
//                (seed, epoch, index) only, so (epoch, step) IS the RNG state.
// Each file is atomic and checksummed (worker/checkpoint/checkpoint_file.h).
// The writer meets every rank at a barrier afterwards, so rank 0 reports a
// checkpoint only once all of it is on disk; it then removes all but the
// newest `keep` checkpoint directories.
//
// Loading refuses (Error kInvalidArgument, naming the file and the mismatch)
// a checkpoint of another model, parameter count, seed or batch, and one of
// another world size unless the job is elastic; damaged files fail with
// kDataLoss naming file and offset. Nothing is loaded silently.
#pragma once

#include <cstdint>
#include <string>

#include "common/job_spec.h"
#include "worker/engine/train_engine.h"

namespace dtrain::trainer {

struct RunPosition {
  int world_size = 1;
  int rank = 0;
  uint64_t seed = 0;
  int64_t train_images = 0;     // size of the training set
  int64_t steps_per_epoch = 1;  // at this world size
};

// The directory of the checkpoint of `step` inside a job's checkpoint dir.
std::string CheckpointStepDir(const std::string& job_dir, int64_t step);

// Whether a checkpoint is due after `step` steps (1-based count of steps done).
bool CheckpointDue(const CheckpointSpec& spec, int64_t steps_done, int64_t steps_per_epoch);

// Writes this rank's part of the checkpoint of `steps_done` into `dir`.
// The engine's state is exported in its canonical layout (train_engine.h), so
// a checkpoint of one engine loads into another.
void WriteCheckpoint(const std::string& dir, const JobSpec& spec, const RunPosition& pos,
                     int64_t steps_done, engine::TrainEngine& engine);

// After checkpoint `written_step` was reported: keeps the newest `keep`
// checkpoints of steps <= written_step plus `protect_dir` (the one reported
// before, which the coordinator may still hold if the last report got lost),
// and removes every other step directory, those numbered above written_step
// (left by an abandoned attempt) included.
void PruneCheckpoints(const std::string& job_dir, int keep, int64_t written_step,
                      const std::string& protect_dir);

// A job's `init_from`: the weights and BN statistics of the safetensors file
// (checkpoint/weights_file.h; tensors under init_from_skip keep the engine's
// seeded values) replace the engine's; momentum starts at zero. Errors name
// the file and the tensor (missing, extra, another shape or dtype).
void LoadInitialWeights(const JobSpec& spec, engine::TrainEngine& engine);

// Loads the checkpoint in `dir` into the engine and returns the
// global step to continue from at THIS world size (the same step when the
// world size is unchanged; for an elastic rescale, the first step of the new
// sharding that does not repeat images of the checkpoint's epoch).
int64_t LoadCheckpoint(const std::string& dir, const JobSpec& spec, const RunPosition& pos,
                       engine::TrainEngine& engine);

}  // namespace dtrain::trainer
