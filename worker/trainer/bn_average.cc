#include "worker/trainer/bn_average.h"

#include <vector>

namespace dtrain::trainer {

void AverageBnStatistics(engine::TrainEngine& engine, comm::Communicator& comm, const Deadline& deadline) {
  const int world = comm.world_size();
  if (world <= 1 || engine.arch().num_buffers == 0) return;
  std::vector<float> stats;
  engine.GetBnRunning(&stats);
  comm.AllReduce(stats.data(), stats.size(), comm::DType::kF32, comm::ReduceOp::kSum, deadline);
  const float w = static_cast<float>(world);
  for (float& v : stats) v /= w;
  engine.SetBnRunning(stats);
}

}  // namespace dtrain::trainer
