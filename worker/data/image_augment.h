// One record → one model input: decode + augment (training) or decode +
// resize/centre-crop (evaluation) into image_size × image_size × C uint8 HWC.
// Every decision is a pure function of (seed, epoch, index), so all ranks and
// all data threads agree.
//
//  * crop "random-resized" (ImageNet): the box is torchvision's
//    RandomResizedCrop draw (crop_box.h) from Rng(Hash(seed, tag, epoch,
//    index)), flip with probability 1/2 from the same generator; the box is
//    decoded (DCT-scaled if augment.dct_scaling) and resampled bilinearly
//    (antialiased) to image_size. Evaluation: Resize(eval_resize) +
//    CenterCrop(image_size) as one box (EvalBox).
//  * crop "pad" (CIFAR / Fashion-MNIST style): the image (resampled to
//    image_size first if it has another size) gets the in-memory sets' exact
//    augmentation: DrawCropFlip(augment, seed, epoch, index) on the image
//    zero-padded by crop_padding. Evaluation: the image as it is.
// Errors: Error(kDataLoss) from the decoder for a bad record.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/job_spec.h"
#include "worker/data/crop_box.h"
#include "worker/data/image_decode.h"

namespace dtrain::data {

struct ImageAugmentOptions {
  AugmentSpec augment;
  int image_size = 224;
  ColorMode color = ColorMode::kRgb;
  uint64_t seed = 0;
  int channels() const { return color == ColorMode::kGrey ? 1 : 3; }
};

struct ResizedCrop {
  IntBox box;
  bool flip = false;
};

// The random-resized-crop decision for a width × height image.
ResizedCrop DrawResizedCrop(const ImageAugmentOptions& o, int width, int height, int64_t epoch, int64_t index);

void AugmentTrainImage(const uint8_t* bytes, size_t size, const ImageAugmentOptions& o, int64_t epoch,
                       int64_t index, uint8_t* out, DecodeScratch* scratch);
void TransformEvalImage(const uint8_t* bytes, size_t size, const ImageAugmentOptions& o, uint8_t* out,
                        DecodeScratch* scratch);

}  // namespace dtrain::data
