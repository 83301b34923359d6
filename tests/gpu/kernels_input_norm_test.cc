// GPU parity: NormalizeToHalfNHWC (uint8 and fp32 input, NCHW and NHWC)
// against cpu::NormalizeToHalfNHWC: bit-identical fp16 NHWC output, on shapes
// from 1x1x1x1 to a 32-image 224x224 ImageNet batch.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cpu/input_norm.h"
#include "kernels/cuda/input_norm.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

using cpu::InputNormShape;
using cpu::PixelLayout;

const float kMean[3] = {0.485f, 0.456f, 0.406f};
const float kStd[3] = {0.229f, 0.224f, 0.225f};

class CudaInputNorm : public CudaTest {
 protected:
  template <typename X>
  void Check(const InputNormShape& s, const std::vector<X>& x, float scale, const float* mean, const float* stddev) {
    SCOPED_TRACE("n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " h=" + std::to_string(s.h) +
                 " w=" + std::to_string(s.w) + " c_pad=" + std::to_string(s.c_pad) +
                 (s.layout == PixelLayout::kNCHW ? " NCHW" : " NHWC"));
    std::vector<uint16_t> want(s.out_size());
    cpu::NormalizeToHalfNHWC(s, x.data(), scale, mean, stddev, want.data());
    DeviceBuffer<X> d_x(x);
    DeviceBuffer<uint16_t> y(s.out_size());
    y.Poison();
    cuda::NormalizeToHalfNHWC(s, d_x.get(), scale, mean, stddev, AsHalf(y.get()), stream_);
    Sync();
    EXPECT_TRUE(BitEqual(y.Download(), want));
  }
};

TEST_F(CudaInputNorm, Uint8) {
  std::mt19937 gen(5);
  const InputNormShape shapes[] = {{1, 3, 1, 1}, {2, 3, 5, 7}, {3, 3, 17, 1}, {32, 3, 224, 224}};
  for (InputNormShape s : shapes) {
    std::vector<uint8_t> x(s.size());
    for (uint8_t& v : x) v = uint8_t(gen() & 0xff);
    for (PixelLayout layout : {PixelLayout::kNCHW, PixelLayout::kNHWC}) {
      s.layout = layout;
      Check(s, x, 1.0f / 255, kMean, kStd);
    }
  }
}

// The JPEG pipeline's input: uint8 NHWC padded to the CUDA engine's 8 stem channels.
TEST_F(CudaInputNorm, Uint8NhwcPaddedToEightChannels) {
  std::mt19937 gen(9);
  for (int c : {1, 3}) {
    InputNormShape s{.n = 4, .c = c, .h = 224, .w = 224, .layout = PixelLayout::kNHWC, .c_pad = 8};
    std::vector<uint8_t> x(s.size());
    for (uint8_t& v : x) v = uint8_t(gen() & 0xff);
    Check(s, x, 1.0f / 255, kMean, kStd);
  }
}

TEST_F(CudaInputNorm, Float) {
  std::mt19937 gen(6);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const float mean1 = 0.2860f, std1 = 0.3530f;  // Fashion-MNIST, one channel
  const InputNormShape shapes[] = {{1, 1, 1, 1}, {7, 1, 28, 28}, {2, 3, 5, 7}};
  for (InputNormShape s : shapes) {
    std::vector<float> x(s.size());
    for (float& v : x) v = u(gen);
    for (PixelLayout layout : {PixelLayout::kNCHW, PixelLayout::kNHWC}) {
      s.layout = layout;
      if (s.c == 1)
        Check(s, x, 1.0f, &mean1, &std1);
      else
        Check(s, x, 1.0f, kMean, kStd);
    }
  }
}

}  // namespace
}  // namespace dtrain::gpu_test
