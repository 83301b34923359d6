// One model on every rank: each rank's BN running statistics are its own
// (they follow its own batches), so before an evaluation or a checkpoint the
// ranks replace theirs by the mean over all ranks — one fp32 sum allreduce of
// the statistics, then ÷ world size on every rank. The allreduce hands every
// rank the same sums, so afterwards the statistics are bit-identical
// everywhere: each rank evaluates the same model, and the checkpoint holds the
// model that was evaluated. (MLPerf's ResNet references do the same.) The
// running variances are averaged as variances. Training itself is unchanged:
// BN normalises training batches with their own statistics.
#pragma once

#include "common/deadline.h"
#include "worker/comm/communicator.h"
#include "worker/engine/train_engine.h"

namespace dtrain::trainer {

// No-op for one rank or a model without BN statistics.
void AverageBnStatistics(engine::TrainEngine& engine, comm::Communicator& comm, const Deadline& deadline);

}  // namespace dtrain::trainer
