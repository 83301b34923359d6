#include "worker/trainer/precise_bn.h"

#include <memory>

#include "worker/data/random.h"

namespace dtrain::trainer {

void RecalibrateBnStatistics(engine::TrainEngine& engine, data::DataSource& source, const PreciseBnOptions& o,
                             int64_t step, const Deadline& deadline) {
  constexpr uint64_t kStreamTag = 0x707265636973ull;  // "precis": apart from the training order's seeds
  data::LoaderOptions lo;
  lo.world_size = o.world_size;
  lo.rank = o.rank;
  lo.batch_per_rank = o.batch_per_rank;
  lo.seed = data::Hash(o.seed, kStreamTag, uint64_t(step));
  lo.augment = o.augment;
  lo.prefetch_depth = 2;
  std::unique_ptr<data::TrainStream> stream = source.Train(lo);
  for (int i = 1; i <= o.batches; ++i) engine.AccumulateBnStatistics(stream->Next(deadline), 1.0 / i);
}

}  // namespace dtrain::trainer
