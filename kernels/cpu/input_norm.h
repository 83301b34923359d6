// Input normalisation and cast (CPU reference of kernels/cuda/input_norm.h):
// images x[n, c, h, w] (layout kNCHW) or x[n, h, w, c] (kNHWC), uint8 pixels or
// fp32, become fp16 NHWC activations with out_c() channels (c_pad, or c when 0)
//   y[n, h, w, c] = fp16( (float(x) * scale - mean[c]) / stddev[c] ),  c < C
//   y[n, h, w, c] = 0                                                 C <= c < c_pad
// evaluated in fp32 in exactly that order (multiply, subtract, divide; no
// fused multiply-add), rounded to nearest even. scale is 1/255 for 0..255
// pixels, 1 for inputs already in [0, 1]. mean and stddev hold c values.
// A bad shape (non-positive, c > kMaxInputChannels), a non-finite mean or
// scale, or stddev <= 0 throws kInvalidArgument.
// This header is also compiled by nvcc (C++17): keep it free of C++20.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/half.h"

namespace dtrain::cpu {

constexpr int kMaxInputChannels = 16;

enum class PixelLayout { kNCHW, kNHWC };

struct InputNormShape {
  int n = 0, c = 0, h = 0, w = 0;
  PixelLayout layout = PixelLayout::kNHWC;  // of the input; the output is NHWC
  int c_pad = 0;  // output channels (0: c); must be 0 or >= c
  int out_c() const { return c_pad > 0 ? c_pad : c; }
  size_t size() const { return size_t(n) * c * h * w; }          // input elements
  size_t out_size() const { return size_t(n) * out_c() * h * w; }  // output elements
  void Check() const;
};

// Checks shape, scale, mean[0..c) and stddev[0..c) (host arrays).
void CheckInputNorm(const InputNormShape& s, float scale, const float* mean, const float* stddev);

void NormalizeToHalfNHWC(const InputNormShape& s, const uint8_t* x, float scale, const float* mean,
                         const float* stddev, half_bits* y);
void NormalizeToHalfNHWC(const InputNormShape& s, const float* x, float scale, const float* mean,
                         const float* stddev, half_bits* y);

}  // namespace dtrain::cpu
