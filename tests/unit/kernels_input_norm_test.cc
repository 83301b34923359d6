// kernels/cpu/input_norm: NCHW/NHWC uint8 or fp32 images -> fp16 NHWC
// (x * scale - mean[c]) / stddev[c], against a per-element double evaluation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/input_norm.h"

namespace dtrain::cpu {
namespace {

const float kMean[3] = {0.485f, 0.456f, 0.406f};
const float kStd[3] = {0.229f, 0.224f, 0.225f};

TEST(InputNorm, Uint8BothLayoutsMatchDoubleWithinHalfUlp) {
  std::mt19937 gen(7);
  for (PixelLayout layout : {PixelLayout::kNCHW, PixelLayout::kNHWC}) {
    const InputNormShape s{.n = 2, .c = 3, .h = 5, .w = 7, .layout = layout};
    std::vector<uint8_t> x(s.size());
    for (auto& v : x) v = uint8_t(gen() & 0xff);
    std::vector<half_bits> y(s.size(), 0xffff);
    NormalizeToHalfNHWC(s, x.data(), 1.0f / 255, kMean, kStd, y.data());
    for (int n = 0; n < s.n; ++n)
      for (int h = 0; h < s.h; ++h)
        for (int w = 0; w < s.w; ++w)
          for (int c = 0; c < s.c; ++c) {
            const size_t src = layout == PixelLayout::kNCHW ? ((size_t(n) * s.c + c) * s.h + h) * s.w + w
                                                            : ((size_t(n) * s.h + h) * s.w + w) * s.c + c;
            const double want = (x[src] / 255.0 - kMean[c]) / kStd[c];
            const double got = HalfToFloat(y[((size_t(n) * s.h + h) * s.w + w) * s.c + c]);
            EXPECT_NEAR(got, want, 1e-3 * std::abs(want) + 1e-6) << n << "," << h << "," << w << "," << c;
          }
  }
}

TEST(InputNorm, FloatInputIsTheExactFp32Formula) {
  const InputNormShape s{.n = 1, .c = 1, .h = 1, .w = 7, .layout = PixelLayout::kNCHW};
  const std::vector<float> x = {0.0f, 0.25f, 0.5f, 1.0f, -3.0f, 100.0f, 1e-3f};
  const float mean = 0.2860f, stddev = 0.3530f;  // Fashion-MNIST
  std::vector<half_bits> y(s.size());
  NormalizeToHalfNHWC(s, x.data(), 1.0f, &mean, &stddev, y.data());
  for (size_t i = 0; i < x.size(); ++i) {
    const float scaled = x[i] * 1.0f;
    const float centred = scaled - mean;
    EXPECT_EQ(y[i], FloatToHalf(centred / stddev)) << i;
  }
}

TEST(InputNorm, PaddedChannelsAreZeroAndTheRestUnchanged) {
  std::mt19937 gen(3);
  InputNormShape s{.n = 2, .c = 3, .h = 4, .w = 5, .layout = PixelLayout::kNHWC};
  std::vector<uint8_t> x(s.size());
  for (auto& v : x) v = uint8_t(gen() & 0xff);
  std::vector<half_bits> plain(s.out_size());
  NormalizeToHalfNHWC(s, x.data(), 1.0f / 255, kMean, kStd, plain.data());
  s.c_pad = 8;
  std::vector<half_bits> padded(s.out_size(), 0xffff);
  NormalizeToHalfNHWC(s, x.data(), 1.0f / 255, kMean, kStd, padded.data());
  ASSERT_EQ(padded.size(), plain.size() / 3 * 8);
  for (size_t p = 0; p < plain.size() / 3; ++p)
    for (int c = 0; c < 8; ++c)
      EXPECT_EQ(padded[p * 8 + c], c < 3 ? plain[p * 3 + c] : FloatToHalf(0.0f)) << p << "," << c;
}

TEST(InputNorm, RejectsBadArguments) {
  uint8_t x = 0;
  half_bits y = 0;
  const float zero = 0, one = 1, inf = INFINITY;
  auto expect_bad = [&](InputNormShape s, float scale, const float* mean, const float* stddev, const char* what) {
    try {
      NormalizeToHalfNHWC(s, &x, scale, mean, stddev, &y);
      ADD_FAILURE() << "accepted " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << what;
    }
  };
  const InputNormShape ok{.n = 1, .c = 1, .h = 1, .w = 1};
  expect_bad({.n = 0, .c = 1, .h = 1, .w = 1}, 1, &zero, &one, "n=0");
  expect_bad({.n = 1, .c = kMaxInputChannels + 1, .h = 1, .w = 1}, 1, &zero, &one, "too many channels");
  expect_bad(ok, 1, &zero, &zero, "stddev=0");
  expect_bad(ok, 1, &inf, &one, "mean=inf");
  expect_bad(ok, inf, &zero, &one, "scale=inf");
  expect_bad(ok, 1, nullptr, &one, "no mean");
  expect_bad({.n = 1, .c = 3, .h = 1, .w = 1, .c_pad = 2}, 1, &zero, &one, "c_pad < c");
}

}  // namespace
}  // namespace dtrain::cpu
