// Augmentation and normalisation of one image into float CHW.
//
// Random crop: the image is zero-padded by `crop_padding` pixels on every side
// (raw value 0, i.e. black, before normalisation — as torchvision's
// RandomCrop(padding)) and an H×W window is taken at offset (dy, dx) in
// [0, 2p]². Flip: horizontal, probability 1/2. Both are drawn from
// Hash(seed, epoch, global sample index) only — never from thread timing or
// call order — so a sample's augmentation is the same on every rank and in
// every prefetch thread. Output: (x/255 - mean[c]) / std[c].
#pragma once

#include <cstdint>

#include "common/job_spec.h"
#include "worker/data/dataset.h"

namespace dtrain::data {

struct CropFlip {
  int dy = 0, dx = 0;  // window offset in the padded image, in [0, 2·padding]
  bool flip = false;
};

// The augmentation decision for `index` (the sample's index in the data set) at `epoch`.
CropFlip DrawCropFlip(const AugmentSpec& spec, uint64_t seed, int64_t epoch, int64_t index);

// Writes set.image(index), cropped/flipped by `cf` (padding spec.crop_padding)
// and normalised, to dst[0 .. C·H·W).
void AugmentImage(const Dataset& set, int64_t index, const AugmentSpec& spec, const CropFlip& cf, float* dst);

// Normalisation only (evaluation): dst[0 .. C·H·W).
void NormalizeImage(const Dataset& set, int64_t index, float* dst);

}  // namespace dtrain::data
