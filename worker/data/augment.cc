#include "worker/data/augment.h"

#include "worker/data/random.h"

namespace dtrain::data {
namespace {
constexpr uint64_t kAugmentTag = 0x4155'474d'454e'5431ull;
}

CropFlip DrawCropFlip(const AugmentSpec& spec, uint64_t seed, int64_t epoch, int64_t index) {
  Rng rng(Hash(seed, kAugmentTag, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)));
  CropFlip cf;
  const int p = spec.crop_padding > 0 ? spec.crop_padding : 0;
  cf.dy = static_cast<int>(rng.Below(2 * p + 1));
  cf.dx = static_cast<int>(rng.Below(2 * p + 1));
  cf.flip = spec.flip && (rng.Next() >> 63) != 0;
  return cf;
}

void AugmentImage(const Dataset& set, int64_t index, const AugmentSpec& spec, const CropFlip& cf, float* dst) {
  const int h = set.height, w = set.width;
  const int p = spec.crop_padding > 0 ? spec.crop_padding : 0;
  const uint8_t* src = set.image(index);
  for (int c = 0; c < set.channels; ++c) {
    const float scale = 1.0f / (255.0f * set.std[c]);
    const float shift = -set.mean[c] / set.std[c];
    const uint8_t* plane = src + int64_t{c} * h * w;
    float* out = dst + int64_t{c} * h * w;
    for (int y = 0; y < h; ++y) {
      const int sy = y + cf.dy - p;  // source row; outside [0, h) is padding
      for (int x = 0; x < w; ++x) {
        const int ox = cf.flip ? w - 1 - x : x;  // flip the cropped window
        const int sx = ox + cf.dx - p;
        const uint8_t v = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? plane[sy * w + sx] : 0;
        out[y * w + x] = v * scale + shift;
      }
    }
  }
}

void NormalizeImage(const Dataset& set, int64_t index, float* dst) {
  const int64_t plane = int64_t{set.height} * set.width;
  const uint8_t* src = set.image(index);
  for (int c = 0; c < set.channels; ++c) {
    const float scale = 1.0f / (255.0f * set.std[c]);
    const float shift = -set.mean[c] / set.std[c];
    for (int64_t k = 0; k < plane; ++k) dst[c * plane + k] = src[c * plane + k] * scale + shift;
  }
}

}  // namespace dtrain::data
