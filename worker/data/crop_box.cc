// torchvision 0.14's RandomResizedCrop.get_params and Resize + CenterCrop,
// reproduced draw for draw and rounding for rounding (see crop_box.h):
//  * torch.empty(1).uniform_(a, b) on the CPU is fmaf(u, b - a, a) in float32
//    with u a 24-bit draw (torch 1.13, x86-64 with FMA; checked against the
//    real call for 20000 seeds by tests/unit/data/gen_crop_cases.py);
//  * torch.log / torch.exp of a float32 tensor: here logf / expf, which differ
//    from torch 1.13's by 1 ulp for ~1 % / ~9 % of inputs; that moves a box
//    only when w or h lands within ~1e-5 of .5 (0 of 2,000 random cases differ
//    in tests/integration/test_image_reference.py);
//  * .item() widens to double; sqrt, division and Python's round() (half to
//    even: nearbyint in the default rounding mode) are in double.
// Compiled with -ffp-contract=off (CMakeLists.txt) so that only the fmaf
// written here is fused.
#include "worker/data/crop_box.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace dtrain::data {
namespace {

// torch's float32 uniform_(a, b) from a U[0,1) draw: torch draws 24 bits.
float TorchUniform(double u, float a, float b) {
  const float u24 = static_cast<float>(std::floor(u * 16777216.0) / 16777216.0);
  return std::fmaf(u24, b - a, a);
}

// torch.randint(0, n) as crop_box.h defines it: floor(u·n).
int RandInt(double u, int n) {
  const int v = static_cast<int>(std::floor(u * n));
  return std::clamp(v, 0, n - 1);
}

int PyRound(double v) { return static_cast<int>(std::nearbyint(v)); }

}  // namespace

IntBox RandomResizedCropBox(int width, int height, const RrcParams& p, const std::function<double()>& uniform) {
  if (width <= 0 || height <= 0)
    Fail(ErrorCode::kInvalidArgument,
         "RandomResizedCropBox: image " + std::to_string(width) + "x" + std::to_string(height) + " is empty");
  const double area = static_cast<double>(height) * width;
  const float log_r0 = std::log(static_cast<float>(p.ratio_min));
  const float log_r1 = std::log(static_cast<float>(p.ratio_max));
  const float s0 = static_cast<float>(p.scale_min), s1 = static_cast<float>(p.scale_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * static_cast<double>(TorchUniform(uniform(), s0, s1));
    const double aspect = static_cast<double>(std::exp(TorchUniform(uniform(), log_r0, log_r1)));
    const int w = PyRound(std::sqrt(target_area * aspect));
    const int h = PyRound(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      IntBox box;
      box.top = RandInt(uniform(), height - h + 1);
      box.left = RandInt(uniform(), width - w + 1);
      box.height = h;
      box.width = w;
      return box;
    }
  }
  // Fallback: the whole image, clamped to the ratio range, centred.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  const double rmin = std::min(p.ratio_min, p.ratio_max), rmax = std::max(p.ratio_min, p.ratio_max);
  int w = width, h = height;
  if (in_ratio < rmin) {
    h = PyRound(w / rmin);
  } else if (in_ratio > rmax) {
    w = PyRound(h * rmax);
  }
  IntBox box;
  box.top = (height - h) / 2;  // non-negative: Python's // is C++'s / here
  box.left = (width - w) / 2;
  box.height = h;
  box.width = w;
  return box;
}

BoxF CropBoxF(const IntBox& b) {
  BoxF box{double(b.left), double(b.top), double(b.left + b.width), double(b.top + b.height)};
  box.crop_first = true;
  return box;
}

BoxF EvalBox(int width, int height, int resize, int crop) {
  if (width <= 0 || height <= 0 || crop <= 0 || resize < 0)
    Fail(ErrorCode::kInvalidArgument, "EvalBox: image " + std::to_string(width) + "x" + std::to_string(height) +
                                          ", resize " + std::to_string(resize) + ", crop " + std::to_string(crop) +
                                          ": need a non-empty image, crop > 0 and resize >= 0");
  int new_w = width, new_h = height;
  if (resize > 0) {
    // torchvision _compute_resized_output_size: the longer side int(resize · long / short).
    if (width <= height) {
      new_w = resize;
      new_h = static_cast<int>(static_cast<double>(resize) * height / width);
    } else {
      new_h = resize;
      new_w = static_cast<int>(static_cast<double>(resize) * width / height);
    }
  }
  if (crop > new_w || crop > new_h)
    Fail(ErrorCode::kInvalidArgument, "EvalBox: centre crop " + std::to_string(crop) + " is larger than the " +
                                          std::to_string(new_w) + "x" + std::to_string(new_h) + " resized image of a " +
                                          std::to_string(width) + "x" + std::to_string(height) +
                                          " image (torchvision would pad; use resize >= crop)");
  const int top = PyRound((new_h - crop) / 2.0), left = PyRound((new_w - crop) / 2.0);
  // Pillow's resize to new_w × new_h samples source x at (j + 0.5)·width/new_w;
  // the crop keeps j in [left, left + crop): the same as resizing this box.
  // Edges of the resized image map to the image's edges exactly (the products
  // can land an ulp outside).
  auto map = [](int v, int resized, int size) {
    return v == resized ? static_cast<double>(size) : std::min<double>(size, v * (static_cast<double>(size) / resized));
  };
  return BoxF{map(left, new_w, width), map(top, new_h, height), map(left + crop, new_w, width),
              map(top + crop, new_h, height)};
}

}  // namespace dtrain::data
