// MakeSynthetic (declared in dataset.h): class-dependent cosine gratings + noise.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"
#include "worker/data/dataset.h"
#include "worker/data/random.h"

namespace dtrain::data {
namespace {

constexpr uint64_t kClassTag = 0x5359'4e43'4c41'5353ull;  // per-class parameters
constexpr uint64_t kImageTag = 0x5359'4e49'4d41'4745ull;  // per-image draws
constexpr double kNoise = 40.0;                            // ± uniform noise, in pixel units

struct ClassPattern {
  std::vector<float> cos_table, sin_table;  // cos/sin of 2π(fx·x + fy·y)/S, S×S
  std::vector<float> amplitude;             // per channel
  float brightness;
};

std::vector<ClassPattern> MakePatterns(uint64_t seed, int channels, int size, int classes) {
  // Frequency pairs (fx, fy) in {0..3}², not both 0: 15 distinct gratings.
  std::vector<std::pair<int, int>> pairs;
  for (int f = 1; f <= 6; ++f)
    for (int fx = 0; fx <= 3; ++fx)
      if (f - fx >= 0 && f - fx <= 3) pairs.push_back({fx, f - fx});
  std::vector<ClassPattern> out(classes);
  for (int k = 0; k < classes; ++k) {
    Rng rng(Hash(seed, kClassTag, static_cast<uint64_t>(k)));
    auto [fx, fy] = pairs[k % pairs.size()];
    ClassPattern& p = out[k];
    p.cos_table.resize(size * size);
    p.sin_table.resize(size * size);
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        double a = 2 * std::numbers::pi * (fx * x + fy * y) / size;
        p.cos_table[y * size + x] = static_cast<float>(std::cos(a));
        p.sin_table[y * size + x] = static_cast<float>(std::sin(a));
      }
    for (int c = 0; c < channels; ++c) p.amplitude.push_back(static_cast<float>(40 + 50 * rng.Uniform()));
    p.brightness = static_cast<float>(98 + 60 * rng.Uniform());
  }
  return out;
}

Dataset MakeSplit(uint64_t seed, uint64_t split, const std::vector<ClassPattern>& patterns, int channels,
                  int size, int64_t count) {
  Dataset set;
  set.size = count;
  set.channels = channels;
  set.height = set.width = size;
  set.classes = static_cast<int>(patterns.size());
  set.images.resize(count * set.image_bytes());
  set.labels.resize(count);
  const int plane = size * size;
  for (int64_t i = 0; i < count; ++i) {
    Rng rng(Hash(seed, kImageTag, split, static_cast<uint64_t>(i)));
    const int label = static_cast<int>(rng.Below(patterns.size()));
    const double phase = 2 * std::numbers::pi * rng.Uniform();
    const float cp = static_cast<float>(std::cos(phase)), sp = static_cast<float>(std::sin(phase));
    const ClassPattern& p = patterns[label];
    set.labels[i] = label;
    uint8_t* dst = set.images.data() + i * set.image_bytes();
    for (int c = 0; c < channels; ++c)
      for (int k = 0; k < plane; ++k) {
        // cos(a + φ) = cos a cos φ - sin a sin φ
        double v = p.brightness + p.amplitude[c] * (p.cos_table[k] * cp - p.sin_table[k] * sp) +
                   kNoise * (2 * rng.Uniform() - 1);
        dst[c * plane + k] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
  }
  return set;
}

}  // namespace

TrainTest MakeSynthetic(uint64_t seed, int channels, int image_size, int classes, int64_t train_size,
                        int64_t test_size) {
  if (channels < 1 || channels > 4 || image_size < 4 || image_size > 512 || classes < 2 || classes > 1000 ||
      train_size < 1 || test_size < 1)
    Fail(ErrorCode::kInvalidArgument,
         "synthetic data set: need 1 <= channels <= 4, 4 <= image_size <= 512, 2 <= classes <= 1000, "
         "train_size >= 1, test_size >= 1; got channels=" + std::to_string(channels) +
             " image_size=" + std::to_string(image_size) + " classes=" + std::to_string(classes) +
             " train_size=" + std::to_string(train_size) + " test_size=" + std::to_string(test_size));
  const auto patterns = MakePatterns(seed, channels, image_size, classes);
  TrainTest out;
  out.train = MakeSplit(seed, 0, patterns, channels, image_size, train_size);
  out.test = MakeSplit(seed, 1, patterns, channels, image_size, test_size);
  ComputeNormalization(out.train);
  out.test.mean = out.train.mean;
  out.test.std = out.train.std;
  return out;
}

}  // namespace dtrain::data
