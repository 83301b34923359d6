// Batch: one rank's images and labels for one step, as the data sources
// (pipeline.h) hand them to an engine. Either of two pixel forms:
//  * images: fp32 N×C×H×W, already normalised (the in-memory data sets);
//  * pixels: uint8 N×H×W×C as decoded (the JPEG pipeline), with the
//    per-channel mean and std the ENGINE applies: (x/255 − mean[c]) / std[c]
//    (the CUDA engine on the device, the CPU engine with NormalizedNchw).
#pragma once

#include <cstdint>
#include <vector>

#include "common/deadline.h"

namespace dtrain::data {

struct Batch {
  int64_t epoch = 0, step = 0;
  int64_t size = 0;  // images in this batch
  int channels = 0, height = 0, width = 0;
  std::vector<float> images;     // size × channels × height × width (normalised), or empty
  std::vector<uint8_t> pixels;   // size × height × width × channels (raw), or empty
  std::vector<float> mean, std;  // per channel, in [0, 1] units (with pixels)
  std::vector<int32_t> labels;   // size
  std::vector<int64_t> indices;  // the data-set index of each image
};

// The batch as normalised fp32 NCHW: b.images itself, or `scratch` filled from
// b.pixels with v·(1/(255·std)) + (−mean/std) — the same float operations as
// the in-memory augmenter, so equal pixels give bit-equal inputs.
// Error(kInvalidArgument) if neither form has size·C·H·W values.
const float* NormalizedNchw(const Batch& b, std::vector<float>* scratch);

// What the training loop reads batches from (BatchLoader, loader.h).
class TrainStream {
 public:
  virtual ~TrainStream() = default;
  virtual int64_t steps_per_epoch() const = 0;
  // The next batch in (epoch, step) order; waits at most until the deadline
  // (kDeadlineExceeded; kAborted when its abort flag is set).
  virtual Batch Next(const Deadline& deadline) = 0;
};

class EvalStream {
 public:
  virtual ~EvalStream() = default;
  virtual int64_t size() const = 0;  // images in this rank's share
  virtual bool Next(Batch* out) = 0;  // false once the share is exhausted
};

}  // namespace dtrain::data
