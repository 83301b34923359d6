// DataSource: what the training loop needs from a data set, whatever it is.
//
//  * In-memory sets (fashion-mnist IDX files, synthetic): loaded whole, batches
//    of normalised fp32 NCHW (BatchLoader / EvalIterator, loader.h).
//  * Image records (imagenet-folder, shards): JPEG/PNG records streamed from
//    disk and decoded + augmented on a pool of `threads` data threads into
//    uint8 NHWC batches (image_stream.h); normalisation is the engine's.
//
// Both follow the same order: the training batch (epoch, step) of rank r is
// Sampler(N, W, r, B, seed).Batch(epoch, step), every image's augmentation a
// pure function of (seed, epoch, index); evaluation shares are EvalShare
// (every test image exactly once over all ranks). So checkpoints resume with
// the same data order, on either kind of source.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/deadline.h"
#include "common/job_spec.h"
#include "worker/data/batch.h"
#include "worker/data/loader.h"

namespace dtrain::data {

struct DataInfo {
  int channels = 0, image_size = 0, classes = 0;  // of the batches
  int64_t train_size = 0, test_size = 0;
  std::string description;  // for the start-of-run log line
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual const DataInfo& info() const = 0;
  // options.augment and options.seed come from the job; prefetch_depth, start
  // position, world and rank from the trainer.
  virtual std::unique_ptr<TrainStream> Train(const LoaderOptions& options) = 0;
  virtual std::unique_ptr<EvalStream> Eval(int world_size, int rank, int batch) = 0;
  // Records that could not be read or decoded so far (each replaced, see
  // image_stream.h); 0 for in-memory sets.
  virtual int64_t bad_records() const { return 0; }
};

// Opens spec.name: fashion-mnist | synthetic (in memory) | imagenet-folder
// (spec.path/train, spec.path/val) | shards (spec.path/train-*.dtshard,
// val-*). `threads` (>= 1) decode images (record sources only). Errors name
// the data set, the path and what is allowed.
std::unique_ptr<DataSource> OpenDataSource(const DatasetSpec& spec, const AugmentSpec& augment, uint64_t seed,
                                           int threads);

}  // namespace dtrain::data
