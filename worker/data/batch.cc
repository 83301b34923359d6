#include "worker/data/batch.h"

#include <string>

#include "common/error.h"

namespace dtrain::data {

const float* NormalizedNchw(const Batch& b, std::vector<float>* scratch) {
  const size_t plane = size_t(b.height) * b.width;
  const size_t want = size_t(b.size) * b.channels * plane;
  if (!b.images.empty()) {
    if (b.images.size() != want)
      Fail(ErrorCode::kInvalidArgument, "batch: " + std::to_string(b.images.size()) + " fp32 values for " +
                                            std::to_string(b.size) + " images of " + std::to_string(b.channels) + "x" +
                                            std::to_string(b.height) + "x" + std::to_string(b.width));
    return b.images.data();
  }
  if (b.pixels.size() != want || b.mean.size() != size_t(b.channels) || b.std.size() != size_t(b.channels))
    Fail(ErrorCode::kInvalidArgument, "batch: " + std::to_string(b.pixels.size()) + " pixels and " +
                                          std::to_string(b.mean.size()) + " channel means for " +
                                          std::to_string(b.size) + " images of " + std::to_string(b.channels) + "x" +
                                          std::to_string(b.height) + "x" + std::to_string(b.width));
  scratch->resize(want);
  const int c_n = b.channels;
  for (int c = 0; c < c_n; ++c) {
    const float scale = 1.0f / (255.0f * b.std[c]);
    const float shift = -b.mean[c] / b.std[c];
    for (int64_t n = 0; n < b.size; ++n) {
      const uint8_t* src = b.pixels.data() + size_t(n) * plane * c_n + c;
      float* dst = scratch->data() + (size_t(n) * c_n + c) * plane;
      for (size_t p = 0; p < plane; ++p) dst[p] = src[p * c_n] * scale + shift;
    }
  }
  return scratch->data();
}

}  // namespace dtrain::data
