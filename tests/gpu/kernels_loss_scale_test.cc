// GPU parity: UnscaleAndCheck (fp32, in place, fp16) against
// cpu::UnscaleAndCheck: bit-identical outputs and the same inf/NaN verdict,
// for sizes 1, 7, 1000 and 2^20 + 3 with bad values at the edges.
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "common/half.h"
#include "kernels/cpu/loss_scale.h"
#include "kernels/cuda/loss_scale.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

const size_t kSizes[] = {1, 7, 1000, (size_t{1} << 20) + 3};
constexpr float kInvScale = 1.0f / 4096;

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1000.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

class CudaLossScale : public CudaTest {
 protected:
  // Runs the kernel on `in` (float, in place if asked, or fp16 bits) and
  // compares with the CPU reference.
  template <typename H>
  void Check(const std::vector<H>& in, bool in_place) {
    const size_t n = in.size();
    std::vector<float> want(n);
    const bool want_found = cpu::UnscaleAndCheck(in.data(), want.data(), n, kInvScale);
    DeviceBuffer<H> d_in(in);
    DeviceBuffer<float> out(n);
    DeviceBuffer<int32_t> found(std::vector<int32_t>{0});
    out.Poison();
    if constexpr (std::is_same_v<H, float>) {
      float* dst = in_place ? d_in.get() : out.get();
      cuda::UnscaleAndCheck(d_in.get(), dst, int64_t(n), kInvScale, found.get(), stream_);
      Sync();
      EXPECT_TRUE(BitEqual(in_place ? d_in.Download() : out.Download(), want));
    } else {
      cuda::UnscaleAndCheck(AsHalf(d_in.get()), out.get(), int64_t(n), kInvScale, found.get(), stream_);
      Sync();
      EXPECT_TRUE(BitEqual(out.Download(), want));
    }
    EXPECT_EQ(found.Download()[0], want_found ? 1 : 0);
  }
};

TEST_F(CudaLossScale, Float) {
  const float bad[] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                       std::numeric_limits<float>::quiet_NaN()};
  uint32_t seed = 1;
  for (size_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    for (bool in_place : {false, true}) {
      std::vector<float> in = RandomFloats(n, seed++);
      Check(in, in_place);  // clean: found stays 0
      for (size_t pos : {size_t{0}, n / 2, n - 1}) {
        for (float b : bad) {
          std::vector<float> dirty = in;
          dirty[pos] = b;
          Check(dirty, in_place);
        }
      }
    }
  }
}

TEST_F(CudaLossScale, Half) {
  uint32_t seed = 100;
  for (size_t n : kSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    std::vector<float> f = RandomFloats(n, seed++);
    std::vector<uint16_t> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = FloatToHalf(f[i]);
    in[0] = FloatToHalf(65504.0f);  // largest finite: not an overflow
    if (n > 1) in[1] = 0x0001;      // smallest subnormal
    Check(in, false);
    for (size_t pos : {size_t{0}, n / 2, n - 1}) {
      for (uint16_t b : {uint16_t{0x7c00}, uint16_t{0xfc00}, uint16_t{0x7e00}}) {  // +inf, -inf, NaN
        std::vector<uint16_t> dirty = in;
        dirty[pos] = b;
        Check(dirty, false);
      }
    }
  }
}

TEST_F(CudaLossScale, FlagIsOnlyEverSet) {
  // Two buffers share one flag: a clean buffer after a dirty one keeps it set.
  DeviceBuffer<float> dirty(std::vector<float>{1, std::numeric_limits<float>::infinity()});
  DeviceBuffer<float> clean(std::vector<float>{1, 2}), out(2);
  DeviceBuffer<int32_t> found(std::vector<int32_t>{0});
  cuda::UnscaleAndCheck(dirty.get(), out.get(), 2, 1.0f, found.get(), stream_);
  cuda::UnscaleAndCheck(clean.get(), out.get(), 2, 1.0f, found.get(), stream_);
  Sync();
  EXPECT_EQ(found.Download()[0], 1);
}

}  // namespace
}  // namespace dtrain::gpu_test
