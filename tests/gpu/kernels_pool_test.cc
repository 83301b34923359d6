// GPU parity: NHWC fp16 pooling (kernels/cuda/pool.h) against the NCHW float
// CPU reference (kernels/cpu/pool.h) on the same fp16 values. The GPU keeps
// the CPU's window order and fp32 summation order, so every output is
// bit-identical to the CPU's float result rounded to fp16, and argmax is
// equal. Shapes: the ResNet-50 stem pool and head avg pool, odd c (1-wide
// path), c = 2 mod 8 (half2 path), misaligned pointers, ties, padding edges
// with all-negative inputs, -inf and NaN cells. Host-side argument checks
// (CudaPoolArgs) need no device.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/layout.h"
#include "kernels/cpu/pool.h"
#include "kernels/cuda/pool.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

using cpu::GlobalAvgPoolShape;
using cpu::MaxPoolShape;

enum class Fill { kNormal, kTies, kNegative, kSpecial };

// fp16 bits: kNormal N(0, 2); kTies integers in [-3, 3]; kNegative in
// [-9, -1] (padding must not win even though 0 would beat every cell);
// kSpecial: normal with ~5% -inf and ~5% NaN.
std::vector<uint16_t> RandomHalf(size_t n, uint32_t seed, Fill fill) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<int> ints(-3, 3), neg(-9, -1), pct(0, 99);
  std::vector<uint16_t> v(n);
  for (uint16_t& h : v) {
    switch (fill) {
      case Fill::kNormal: h = FloatToHalf(normal(gen)); break;
      case Fill::kTies: h = FloatToHalf(float(ints(gen))); break;
      case Fill::kNegative: h = FloatToHalf(float(neg(gen)) + 0.25f * float(ints(gen))); break;
      case Fill::kSpecial: {
        const int p = pct(gen);
        h = p < 5 ? uint16_t{0xfc00} : p < 10 ? uint16_t{0x7e00} : FloatToHalf(normal(gen));
        break;
      }
    }
  }
  return v;
}

// NHWC fp16 (planes of hw cells) <-> NCHW float (kernels/cpu/layout.h; hw as h, w = 1).
std::vector<float> NhwcToNchw(const std::vector<uint16_t>& x, int n, int c, int hw) {
  std::vector<uint16_t> nchw(x.size());
  cpu::NhwcToNchw(x.data(), n, c, hw, 1, c, nchw.data());
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = HalfToFloat(nchw[i]);
  return out;
}

std::vector<uint16_t> ToHalfNhwc(const std::vector<float>& x, int n, int c, int hw) {
  std::vector<uint16_t> half(x.size()), out(x.size());
  for (size_t i = 0; i < x.size(); ++i) half[i] = FloatToHalf(x[i]);
  cpu::NchwToNhwc(half.data(), n, c, hw, 1, c, out.data());
  return out;
}

std::string Describe(const MaxPoolShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " h=" + std::to_string(s.h) +
         " w=" + std::to_string(s.w) + " window=" + std::to_string(s.window) + " stride=" +
         std::to_string(s.stride) + " pad=" + std::to_string(s.pad);
}

MaxPoolShape Pool(int n, int c, int h, int w, int window, int stride, int pad) {
  MaxPoolShape s;
  s.n = n, s.c = c, s.h = h, s.w = w, s.window = window, s.stride = stride, s.pad = pad;
  return s;
}

class CudaPool : public CudaTest {
 protected:
  // Forward and backward of one max-pool shape. offset (elements) shifts
  // every device pointer off its 256-byte alignment to force narrower paths.
  void CheckMaxPool(const MaxPoolShape& s, Fill fill, uint32_t seed, size_t offset = 0) {
    SCOPED_TRACE(Describe(s) + " offset=" + std::to_string(offset));
    const int oh = s.out_h(), ow = s.out_w(), hw = s.h * s.w, ohw = oh * ow;
    const std::vector<uint16_t> x = RandomHalf(s.in_size(), seed, fill);
    const std::vector<uint16_t> dy = RandomHalf(s.out_size(), seed + 1, Fill::kNormal);

    // CPU reference, NCHW float.
    const std::vector<float> x_nchw = NhwcToNchw(x, s.n, s.c, hw), dy_nchw = NhwcToNchw(dy, s.n, s.c, ohw);
    std::vector<float> y_nchw(s.out_size()), dx_nchw(s.in_size());
    std::vector<int32_t> am_nchw(s.out_size());
    cpu::MaxPoolForward(s, x_nchw.data(), y_nchw.data(), am_nchw.data());
    cpu::MaxPoolBackward(s, dy_nchw.data(), am_nchw.data(), dx_nchw.data());
    const std::vector<uint16_t> want_y = ToHalfNhwc(y_nchw, s.n, s.c, ohw);
    const std::vector<uint16_t> want_dx = ToHalfNhwc(dx_nchw, s.n, s.c, hw);
    std::vector<int32_t> want_am(s.out_size());
    for (int b = 0; b < s.n; ++b)
      for (int p = 0; p < ohw; ++p)
        for (int ch = 0; ch < s.c; ++ch)
          want_am[(size_t(b) * ohw + p) * s.c + ch] = am_nchw[(size_t(b) * s.c + ch) * ohw + p];

    // Device, with pointers at `offset` elements into poisoned buffers.
    DeviceBuffer<uint16_t> d_x(x.size() + offset), d_y(want_y.size() + offset), d_dy(dy.size() + offset),
        d_dx(x.size() + offset);
    DeviceBuffer<int32_t> d_am(want_am.size() + offset);
    for (auto* b : {&d_x, &d_y, &d_dy, &d_dx}) b->Poison();
    d_am.Poison();
    CUDA_CHECK(cudaMemcpy(d_x.get() + offset, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_dy.get() + offset, dy.data(), dy.size() * 2, cudaMemcpyHostToDevice));
    cuda::MaxPoolForwardNHWC(s, AsHalf(d_x.get() + offset), AsHalf(d_y.get() + offset), d_am.get() + offset,
                             stream_);
    cuda::MaxPoolBackwardNHWC(s, AsHalf(d_dy.get() + offset), d_am.get() + offset, AsHalf(d_dx.get() + offset),
                              stream_);
    Sync();
    const auto got_y = Slice(d_y.Download(), offset), got_dx = Slice(d_dx.Download(), offset);
    const auto got_am = Slice(d_am.Download(), offset);
    EXPECT_TRUE(BitEqual(got_y, want_y)) << "max pool forward y";
    EXPECT_TRUE(BitEqual(got_am, want_am)) << "max pool forward argmax";
    EXPECT_TRUE(BitEqual(got_dx, want_dx)) << "max pool backward dx";
  }

  void CheckAvgPool(const GlobalAvgPoolShape& s, uint32_t seed, size_t offset = 0) {
    SCOPED_TRACE("n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " hw=" + std::to_string(s.hw) +
                 " offset=" + std::to_string(offset));
    const size_t in_size = size_t(s.n) * s.c * s.hw, out_size = size_t(s.n) * s.c;
    const std::vector<uint16_t> x = RandomHalf(in_size, seed, Fill::kNormal);
    const std::vector<uint16_t> dy = RandomHalf(out_size, seed + 1, Fill::kNormal);
    const std::vector<float> x_nchw = NhwcToNchw(x, s.n, s.c, s.hw), dy_f = HalfToFloatVec(dy);
    std::vector<float> y(out_size), dx_nchw(in_size);
    cpu::GlobalAvgPoolForward(s, x_nchw.data(), y.data());
    cpu::GlobalAvgPoolBackward(s, dy_f.data(), dx_nchw.data());
    std::vector<uint16_t> want_y(out_size);
    for (size_t i = 0; i < out_size; ++i) want_y[i] = FloatToHalf(y[i]);  // [n][c] in both layouts
    const std::vector<uint16_t> want_dx = ToHalfNhwc(dx_nchw, s.n, s.c, s.hw);

    DeviceBuffer<uint16_t> d_x(in_size + offset), d_y(out_size + offset), d_dy(out_size + offset),
        d_dx(in_size + offset);
    for (auto* b : {&d_x, &d_y, &d_dy, &d_dx}) b->Poison();
    CUDA_CHECK(cudaMemcpy(d_x.get() + offset, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_dy.get() + offset, dy.data(), dy.size() * 2, cudaMemcpyHostToDevice));
    cuda::GlobalAvgPoolForwardNHWC(s, AsHalf(d_x.get() + offset), AsHalf(d_y.get() + offset), stream_);
    cuda::GlobalAvgPoolBackwardNHWC(s, AsHalf(d_dy.get() + offset), AsHalf(d_dx.get() + offset), stream_);
    Sync();
    EXPECT_TRUE(BitEqual(Slice(d_y.Download(), offset), want_y)) << "global avg pool forward y";
    EXPECT_TRUE(BitEqual(Slice(d_dx.Download(), offset), want_dx)) << "global avg pool backward dx";
  }

  template <typename T>
  static std::vector<T> Slice(const std::vector<T>& v, size_t offset) {
    return std::vector<T>(v.begin() + offset, v.end());
  }
};

TEST_F(CudaPool, MaxPoolResNet50Stem) {
  CheckMaxPool(Pool(2, 64, 112, 112, 3, 2, 1), Fill::kNormal, 1);
  CheckMaxPool(Pool(2, 64, 112, 112, 3, 2, 1), Fill::kTies, 2);
}

TEST_F(CudaPool, MaxPoolOddChannels) {
  CheckMaxPool(Pool(1, 3, 7, 6, 3, 2, 1), Fill::kTies, 10);
  CheckMaxPool(Pool(3, 5, 9, 9, 3, 2, 1), Fill::kNormal, 11);
  CheckMaxPool(Pool(2, 5, 8, 5, 3, 2, 1), Fill::kTies, 12);
  CheckMaxPool(Pool(1, 1, 1, 1, 1, 1, 0), Fill::kNormal, 13);
}

TEST_F(CudaPool, MaxPoolWindowsAndVectorPaths) {
  uint32_t seed = 20;
  for (Fill fill : {Fill::kNormal, Fill::kTies}) {
    CheckMaxPool(Pool(2, 2, 5, 5, 2, 2, 0), fill, seed++);     // half2
    CheckMaxPool(Pool(1, 12, 8, 7, 3, 1, 1), fill, seed++);    // half2 (12 % 8 != 0), overlapping windows
    CheckMaxPool(Pool(2, 16, 11, 10, 5, 3, 2), fill, seed++);  // 16-byte, wide padding
    CheckMaxPool(Pool(1, 8, 4, 4, 4, 1, 2), fill, seed++);     // pad = window/2: windows mostly padding
    CheckMaxPool(Pool(1, 24, 3, 9, 3, 3, 0), fill, seed++);    // stride = window, remainder dropped
  }
}

TEST_F(CudaPool, MaxPoolPaddingNeverWins) {
  CheckMaxPool(Pool(2, 8, 6, 7, 3, 2, 1), Fill::kNegative, 40);
  CheckMaxPool(Pool(1, 3, 5, 5, 3, 1, 1), Fill::kNegative, 41);
  CheckMaxPool(Pool(1, 2, 4, 4, 2, 1, 1), Fill::kNegative, 42);
}

TEST_F(CudaPool, MaxPoolInfAndNaN) {
  CheckMaxPool(Pool(2, 8, 9, 9, 3, 2, 1), Fill::kSpecial, 50);
  CheckMaxPool(Pool(1, 3, 9, 9, 3, 2, 1), Fill::kSpecial, 51);
}

TEST_F(CudaPool, MaxPoolMisalignedPointers) {
  // c = 16 would take 16-byte loads; one element off forces 1-wide loads,
  // two off (4-byte aligned halves, 8-byte aligned argmax) forces half2.
  CheckMaxPool(Pool(2, 16, 9, 9, 3, 2, 1), Fill::kTies, 60, 1);
  CheckMaxPool(Pool(2, 16, 9, 9, 3, 2, 1), Fill::kTies, 61, 2);
}

TEST_F(CudaPool, GlobalAvgPool) {
  GlobalAvgPoolShape s;
  uint32_t seed = 70;
  for (const auto& [n, c, hw] : std::vector<std::tuple<int, int, int>>{
           {4, 2048, 49}, {256, 2048, 49}, {1, 3, 5}, {2, 5, 1}, {3, 6, 9}, {2, 16, 49}, {1, 64, 64}}) {
    s.n = n, s.c = c, s.hw = hw;
    CheckAvgPool(s, seed++);
  }
  s.n = 2, s.c = 16, s.hw = 49;
  CheckAvgPool(s, seed++, 1);
  CheckAvgPool(s, seed++, 2);
}

// Not a parity check: prints the time of the ResNet-50 shapes (n = 256) so
// the first device run shows whether they are near memory bandwidth.
TEST_F(CudaPool, ResNet50Timing) {
  const MaxPoolShape s = Pool(256, 64, 112, 112, 3, 2, 1);
  GlobalAvgPoolShape a;
  a.n = 256, a.c = 2048, a.hw = 49;
  DeviceBuffer<uint16_t> x(s.in_size()), y(s.out_size()), dx(s.in_size());
  DeviceBuffer<int32_t> am(s.out_size());
  CUDA_CHECK(cudaMemset(x.get(), 0, x.size() * 2));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  auto time_ms = [&](const std::function<void()>& f) {
    f();  // warm-up
    CUDA_CHECK(cudaEventRecord(start, stream_));
    for (int i = 0; i < 10; ++i) f();
    CUDA_CHECK(cudaEventRecord(stop, stream_));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / 10;
  };
  const float fwd = time_ms([&] { cuda::MaxPoolForwardNHWC(s, AsHalf(x.get()), AsHalf(y.get()), am.get(), stream_); });
  const float bwd =
      time_ms([&] { cuda::MaxPoolBackwardNHWC(s, AsHalf(y.get()), am.get(), AsHalf(dx.get()), stream_); });
  const float avg = time_ms([&] { cuda::GlobalAvgPoolForwardNHWC(a, AsHalf(x.get()), AsHalf(y.get()), stream_); });
  const float avg_bwd =
      time_ms([&] { cuda::GlobalAvgPoolBackwardNHWC(a, AsHalf(y.get()), AsHalf(dx.get()), stream_); });
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  const double in_mb = s.in_size() * 2 / 1e6, out_mb = s.out_size() * 6 / 1e6;  // y + argmax
  const double avg_mb = double(a.n) * a.c * a.hw * 2 / 1e6;
  std::printf("max pool fwd n=256 c=64 112x112: %.3f ms (%.0f GB/s)\n", fwd, (in_mb + out_mb) / fwd);
  std::printf("max pool bwd: %.3f ms (%.0f GB/s)\n", bwd, (in_mb + out_mb) / bwd);
  std::printf("global avg pool fwd n=256 c=2048 hw=49: %.3f ms (%.0f GB/s)\n", avg, avg_mb / avg);
  std::printf("global avg pool bwd: %.3f ms (%.0f GB/s)\n", avg_bwd, avg_mb / avg_bwd);
}

TEST(CudaPoolArgs, RejectBadArguments) {
  __half* h = reinterpret_cast<__half*>(uintptr_t{256});  // never dereferenced: checks come first
  int32_t* am = reinterpret_cast<int32_t*>(uintptr_t{256});
  const MaxPoolShape good = Pool(1, 8, 4, 4, 3, 2, 1);
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(Pool(1, 0, 4, 4, 3, 2, 1), h, h, am, nullptr); }, "max_pool");
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(Pool(1, 8, 4, 4, 3, 2, 2), h, h, am, nullptr); }, "pad=2");
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(Pool(1, 8, 1, 4, 5, 1, 1), h, h, am, nullptr); }, "window=5");
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(good, nullptr, h, am, nullptr); }, "x is null");
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(good, h, nullptr, am, nullptr); }, "y is null");
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(good, h, h, nullptr, nullptr); }, "argmax is null");
  ExpectInvalid([&] { cuda::MaxPoolBackwardNHWC(Pool(0, 8, 4, 4, 3, 2, 1), h, am, h, nullptr); }, "n=0");
  ExpectInvalid([&] { cuda::MaxPoolBackwardNHWC(good, nullptr, am, h, nullptr); }, "dy is null");
  ExpectInvalid([&] { cuda::MaxPoolBackwardNHWC(good, h, nullptr, h, nullptr); }, "argmax is null");
  ExpectInvalid([&] { cuda::MaxPoolBackwardNHWC(good, h, am, nullptr, nullptr); }, "dx is null");
  ExpectInvalid([&] { cuda::MaxPoolForwardNHWC(Pool(1, 1, 65536, 65536, 3, 2, 1), h, h, am, nullptr); },
                "h*w must fit");

  GlobalAvgPoolShape a;
  a.n = 2, a.c = 3, a.hw = 0;
  ExpectInvalid([&] { cuda::GlobalAvgPoolForwardNHWC(a, h, h, nullptr); }, "hw=0");
  ExpectInvalid([&] { cuda::GlobalAvgPoolBackwardNHWC(a, h, h, nullptr); }, "hw=0");
  a.hw = 49;
  ExpectInvalid([&] { cuda::GlobalAvgPoolForwardNHWC(a, nullptr, h, nullptr); }, "x is null");
  ExpectInvalid([&] { cuda::GlobalAvgPoolForwardNHWC(a, h, nullptr, nullptr); }, "y is null");
  ExpectInvalid([&] { cuda::GlobalAvgPoolBackwardNHWC(a, nullptr, h, nullptr); }, "dy is null");
  ExpectInvalid([&] { cuda::GlobalAvgPoolBackwardNHWC(a, h, nullptr, nullptr); }, "dx is null");
}

}  // namespace
}  // namespace dtrain::gpu_test
