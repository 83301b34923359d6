#include "kernels/cpu/input_norm.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace dtrain::cpu {
namespace {

template <typename X>
void Normalize(const InputNormShape& s, const X* x, float scale, const float* mean, const float* stddev,
               half_bits* y) {
  CheckInputNorm(s, scale, mean, stddev);
  const size_t hw = size_t(s.h) * s.w;
  for (int n = 0; n < s.n; ++n) {
    for (size_t p = 0; p < hw; ++p) {
      half_bits* out = y + (size_t(n) * hw + p) * s.out_c();
      for (int c = s.c; c < s.out_c(); ++c) out[c] = FloatToHalf(0.0f);
      for (int c = 0; c < s.c; ++c) {
        const size_t src = s.layout == PixelLayout::kNCHW ? (size_t(n) * s.c + c) * hw + p
                                                          : (size_t(n) * hw + p) * s.c + c;
        const float scaled = static_cast<float>(x[src]) * scale;
        const float centred = scaled - mean[c];
        out[c] = FloatToHalf(centred / stddev[c]);
      }
    }
  }
}

}  // namespace

void InputNormShape::Check() const {
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    Fail(ErrorCode::kInvalidArgument, "input_norm: shape must be positive, got n=" + std::to_string(n) +
                                          " c=" + std::to_string(c) + " h=" + std::to_string(h) +
                                          " w=" + std::to_string(w));
  if (c > kMaxInputChannels)
    Fail(ErrorCode::kInvalidArgument, "input_norm: at most " + std::to_string(kMaxInputChannels) +
                                          " channels, got c=" + std::to_string(c));
  if (c_pad != 0 && (c_pad < c || c_pad > 64))
    Fail(ErrorCode::kInvalidArgument, "input_norm: c_pad " + std::to_string(c_pad) + " must be 0 or in [c=" +
                                          std::to_string(c) + ", 64]");
}

void CheckInputNorm(const InputNormShape& s, float scale, const float* mean, const float* stddev) {
  s.Check();
  if (!std::isfinite(scale))
    Fail(ErrorCode::kInvalidArgument, "input_norm: scale must be finite, got " + std::to_string(scale));
  if (mean == nullptr || stddev == nullptr)
    Fail(ErrorCode::kInvalidArgument, "input_norm: mean and stddev must hold c values");
  for (int c = 0; c < s.c; ++c) {
    if (!std::isfinite(mean[c]))
      Fail(ErrorCode::kInvalidArgument, "input_norm: mean[" + std::to_string(c) + "] must be finite, got " +
                                            std::to_string(mean[c]));
    if (!(std::isfinite(stddev[c]) && stddev[c] > 0))
      Fail(ErrorCode::kInvalidArgument, "input_norm: stddev[" + std::to_string(c) +
                                            "] must be finite and > 0, got " + std::to_string(stddev[c]));
  }
}

void NormalizeToHalfNHWC(const InputNormShape& s, const uint8_t* x, float scale, const float* mean,
                         const float* stddev, half_bits* y) {
  Normalize(s, x, scale, mean, stddev, y);
}

void NormalizeToHalfNHWC(const InputNormShape& s, const float* x, float scale, const float* mean,
                         const float* stddev, half_bits* y) {
  Normalize(s, x, scale, mean, stddev, y);
}

}  // namespace dtrain::cpu
