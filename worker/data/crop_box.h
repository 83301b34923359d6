// Where to crop: torchvision's RandomResizedCrop.get_params and the
// evaluation transform (Resize(shorter side) + CenterCrop), as boxes in
// source pixels for DecodeCropResize.
//
// RandomResizedCropBox reproduces torchvision 0.14's definition exactly,
// draw for draw: up to 10 tries of
//     target_area = area · U(scale_min, scale_max)          (float32, as torch)
//     aspect      = exp(U(log ratio_min, log ratio_max))   (float32, as torch)
//     w = round(sqrt(target_area · aspect)), h = round(sqrt(target_area / aspect))
//     accept if 0 < w <= width and 0 < h <= height: top = randint(0, height-h+1),
//     left = randint(0, width-w+1)
// then the fallback centre crop (whole image clamped to the ratio range).
// `uniform` supplies U[0,1) draws in this order: per try the scale draw, the
// ratio draw; on acceptance the top draw, then the left draw (randint(0, n) =
// floor(u · n)). Python's round() (half to even) is used, as torchvision does.
#pragma once

#include <functional>

#include "worker/data/image_decode.h"

namespace dtrain::data {

struct IntBox {
  int top = 0, left = 0, height = 0, width = 0;
  bool operator==(const IntBox&) const = default;
};

struct RrcParams {
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
};

IntBox RandomResizedCropBox(int width, int height, const RrcParams& p, const std::function<double()>& uniform);

// The box DecodeCropResize needs to give torchvision's RandomResizedCrop
// (crop, then resize: BoxF::crop_first = true).
BoxF CropBoxF(const IntBox& box);

// torchvision Resize(resize) (shorter side to `resize`, the longer side
// int(resize · long / short)) followed by CenterCrop(crop), expressed as one
// box in source pixels (fractional); resize = 0: centre crop without resizing.
BoxF EvalBox(int width, int height, int resize, int crop);

}  // namespace dtrain::data
