// Precise BN (spec bn_recalibration_batches): during training the BN running
// statistics are an exponential average over batches seen with OLDER weights;
// while the learning rate is high they lag the weights and an evaluation with
// them understates the model. Before an evaluation each rank re-estimates
// them with the current weights as the plain mean over N fresh training
// batches (engine AccumulateBnStatistics with factor 1/i: means of batch
// means, means of unbiased batch variances, as fvcore's precise BN); the
// caller then averages them over the ranks (bn_average.h).
// The batches come from their own stream of the training set, seeded by
// (job seed, step): the training order is untouched, every rank draws its
// own shard, and a resumed run re-estimates exactly as the first one did.
#pragma once

#include <cstdint>

#include "common/deadline.h"
#include "common/job_spec.h"
#include "worker/data/pipeline.h"
#include "worker/engine/train_engine.h"

namespace dtrain::trainer {

struct PreciseBnOptions {
  int batches = 0;  // N >= 1 (the caller skips the call without precise BN)
  int world_size = 1;
  int rank = 0;
  int batch_per_rank = 128;
  uint64_t seed = 0;  // the job's
  AugmentSpec augment;
};

// Replaces this rank's BN running statistics by the mean over N training
// batches drawn for `step`. Each batch waits at most until `deadline`.
void RecalibrateBnStatistics(engine::TrainEngine& engine, data::DataSource& source, const PreciseBnOptions& options,
                             int64_t step, const Deadline& deadline);

}  // namespace dtrain::trainer
