// In-memory image data sets: uint8 images N×C×H×W, int32 labels in
// [0, classes), and the per-channel normalisation (x/255 - mean) / std that
// the augmenter applies (computed from the TRAINING images; the test set uses
// the same values).
//
// LoadDataset dispatches on DatasetSpec::name: "fashion-mnist" reads the four
// IDX files (.gz or plain) under spec.path; "synthetic" generates a learnable
// set from the job seed; "imagenet-folder" and "shards" are
// record data sets streamed by pipeline.h, and are refused here, as is any
// other name (Error(kInvalidArgument)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/job_spec.h"

namespace dtrain::data {

struct Dataset {
  int64_t size = 0;
  int channels = 0, height = 0, width = 0;
  int classes = 0;
  std::vector<uint8_t> images;  // size × channels × height × width
  std::vector<int32_t> labels;  // size
  std::vector<float> mean, std;  // per channel, in [0, 1] units

  int64_t image_bytes() const { return int64_t{channels} * height * width; }
  const uint8_t* image(int64_t i) const { return images.data() + i * image_bytes(); }
};

struct TrainTest {
  Dataset train, test;
};

// Fashion-MNIST from `dir` (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
// t10k-...). Limits keep only the first N images (0: all). Errors: kNotFound
// (no file), kDataLoss (corrupt file, image/label count mismatch, label >= 10).
TrainTest LoadFashionMnist(const std::string& dir, int64_t train_limit, int64_t test_limit);

// Deterministic from `seed`: each class is a 2-D cosine grating with its own
// frequency pair, per-channel amplitude and brightness, at a random phase per
// image, plus uniform noise. Shift-invariant by construction, so random crops
// keep it learnable; a small CNN fits it well above chance within an epoch.
TrainTest MakeSynthetic(uint64_t seed, int channels, int image_size, int classes,
                        int64_t train_size, int64_t test_size);

// Per-channel mean and std of `set.images` in [0, 1] units (std floored at 1e-3).
void ComputeNormalization(Dataset& set);

// Dispatch on spec.name (see above); `seed` is the job seed (synthetic only).
TrainTest LoadDataset(const DatasetSpec& spec, uint64_t seed);

}  // namespace dtrain::data
