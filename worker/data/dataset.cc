#include "worker/data/dataset.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace dtrain::data {

void ComputeNormalization(Dataset& set) {
  const int64_t plane = int64_t{set.height} * set.width;
  set.mean.assign(set.channels, 0.0f);
  set.std.assign(set.channels, 1.0f);
  for (int c = 0; c < set.channels; ++c) {
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < set.size; ++i) {
      const uint8_t* p = set.image(i) + c * plane;
      uint64_t s = 0, sq = 0;
      for (int64_t k = 0; k < plane; ++k) {
        s += p[k];
        sq += uint64_t{p[k]} * p[k];
      }
      sum += static_cast<double>(s);
      sum_sq += static_cast<double>(sq);
    }
    const double n = static_cast<double>(set.size * plane);
    if (n == 0) continue;
    const double mean = sum / n / 255.0;
    const double var = std::max(0.0, sum_sq / n / (255.0 * 255.0) - mean * mean);
    set.mean[c] = static_cast<float>(mean);
    set.std[c] = static_cast<float>(std::max(std::sqrt(var), 1e-3));
  }
}

TrainTest LoadDataset(const DatasetSpec& spec, uint64_t seed) {
  if (spec.name == "fashion-mnist") return LoadFashionMnist(spec.path, spec.train_limit, spec.test_limit);
  if (spec.name == "synthetic")
    return MakeSynthetic(seed, spec.channels, spec.image_size, spec.classes, spec.train_size, spec.test_size);
  if (IsRecordDataset(spec.name))
    Fail(ErrorCode::kInvalidArgument, "dataset.name: '" + spec.name +
                                          "' is a record data set, streamed by OpenDataSource (pipeline.h), "
                                          "never loaded into memory; in memory: fashion-mnist, synthetic");
  Fail(ErrorCode::kInvalidArgument, "dataset.name: unknown data set '" + spec.name +
                                        "'; allowed: fashion-mnist, synthetic, imagenet-folder, shards");
}

}  // namespace dtrain::data
