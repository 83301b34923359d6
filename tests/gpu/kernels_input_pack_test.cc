// GPU parity: PackNchwToHalfNhwc (the CUDA engine's input: fp32 NCHW ->
// fp16 NHWC with zero-padded channels) against cpu::NchwToNhwc followed by
// dtrain::FloatToHalf: bit-identical, Fashion-MNIST (c=1 -> 8) and ImageNet
// (c=3 -> 8) shapes, and an unpadded c=8 input.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/layout.h"
#include "kernels/cuda/input_pack.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

class CudaInputPack : public CudaTest {
 protected:
  void Check(int n, int c, int h, int w, int c_pad) {
    SCOPED_TRACE("n=" + std::to_string(n) + " c=" + std::to_string(c) + " h=" + std::to_string(h) +
                 " w=" + std::to_string(w) + " c_pad=" + std::to_string(c_pad));
    std::mt19937 gen(11);
    std::normal_distribution<float> d(0.0f, 2.0f);
    std::vector<float> x(size_t(n) * c * h * w);
    for (float& v : x) v = d(gen);
    std::vector<float> nhwc(size_t(n) * h * w * c_pad);
    cpu::NchwToNhwc(x.data(), n, c, h, w, c_pad, nhwc.data());
    std::vector<uint16_t> want(nhwc.size());
    for (size_t i = 0; i < nhwc.size(); ++i) want[i] = FloatToHalf(nhwc[i]);
    DeviceBuffer<float> d_x(x);
    DeviceBuffer<uint16_t> y(want.size());
    y.Poison();
    cuda::PackNchwToHalfNhwc(d_x.get(), n, c, h, w, c_pad, AsHalf(y.get()), stream_);
    Sync();
    EXPECT_TRUE(BitEqual(y.Download(), want));
  }
};

TEST_F(CudaInputPack, FashionMnistImageNetAndUnpadded) {
  Check(3, 1, 28, 28, 8);
  Check(4, 3, 224, 224, 8);
  Check(2, 8, 5, 7, 8);
  Check(1, 1, 1, 1, 1);
}

TEST(CudaInputPackArgs, BadShapesAreRefusedBeforeAnyLaunch) {
  EXPECT_THROW(cuda::PackNchwToHalfNhwc(nullptr, 1, 3, 4, 4, 2, nullptr, nullptr), Error);  // c_pad < c
  EXPECT_THROW(cuda::PackNchwToHalfNhwc(nullptr, 1, 0, 4, 4, 8, nullptr, nullptr), Error);
  EXPECT_THROW(cuda::PackNchwToHalfNhwc(nullptr, 1, 3, 4, 4, 8, nullptr, nullptr), Error);  // null pointers
  cuda::PackNchwToHalfNhwc(nullptr, 0, 3, 4, 4, 8, nullptr, nullptr);                     // n == 0: nothing
}

}  // namespace
}  // namespace dtrain::gpu_test
