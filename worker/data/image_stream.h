// The DataSource of record data sets (imagenet-folder, shards): records read
// from disk by index, decoded and augmented (image_augment.h) on a ThreadPool
// of `threads`, a batch at a time, into the BatchLoader's bounded prefetch
// queue; evaluation batches use the same pool (they take turns).
//
// A record that cannot be read or decoded (truncated, corrupt, not an image,
// vanished) never stops a run: it is counted once (bad_records(), which the
// worker reports in `dtrain status` and its metrics), logged once with its
// path or shard offset, and replaced by the record Hash(seed, tag, index, k)
// mod N for the first k = 1, 2, ... that decodes — the same replacement on
// every rank and every epoch, with the replacement's own label. Evaluation
// replaces the same way (the count says how many).
#pragma once

#include <memory>
#include <vector>

#include "worker/data/image_augment.h"
#include "worker/data/image_records.h"
#include "worker/data/pipeline.h"

namespace dtrain::data {

struct RecordSourceOptions {
  ImageAugmentOptions image;     // crop, size, colour, seed
  std::vector<float> mean, std;  // per channel, [0, 1] units
  int threads = 1;
  std::string description;       // e.g. "imagenet-folder /data/imagenet"
};

std::unique_ptr<DataSource> MakeRecordSource(std::shared_ptr<const ImageRecords> train,
                                             std::shared_ptr<const ImageRecords> test,
                                             const RecordSourceOptions& options);

}  // namespace dtrain::data
