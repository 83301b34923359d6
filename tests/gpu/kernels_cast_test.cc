// GPU parity: fp32 <-> fp16 casts against common/half.h (bit-identical; NaN
// stays NaN) and NCHW <-> NHWC transforms against host index loops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/cuda/cast.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

class CudaCast : public CudaTest {};

TEST_F(CudaCast, FloatToHalfRoundsToNearestEven) {
  std::mt19937 gen(3);
  std::vector<float> in;
  // Every exponent of interest (subnormal halves, overflow) with random mantissas ...
  for (int e = -30; e <= 17; ++e)
    for (int k = 0; k < 2000; ++k) {
      const float m = 1.0f + float(gen() & 0x7fffff) / float(1 << 23);
      in.push_back(std::ldexp(m, e) * ((gen() & 1) ? -1.0f : 1.0f));
    }
  // ... exact halfway cases, the largest half and its neighbours, zeros, inf.
  for (uint32_t h = 0; h < 0x7c00; h += 37) {
    const float a = HalfToFloat(uint16_t(h)), b = HalfToFloat(uint16_t(h + 1));
    in.push_back(0.5f * (a + b));
  }
  for (float v : {65504.0f, 65519.0f, 65520.0f, 0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min()})
    in.push_back(v);
  std::vector<uint16_t> want(in.size());
  for (size_t i = 0; i < in.size(); ++i) want[i] = FloatToHalf(in[i]);

  DeviceBuffer<float> d_in(in);
  DeviceBuffer<uint16_t> out(in.size());
  out.Poison();
  cuda::CastFloatToHalf(d_in.get(), AsHalf(out.get()), int64_t(in.size()), stream_);
  Sync();
  EXPECT_TRUE(BitEqual(out.Download(), want));

  DeviceBuffer<float> nan(std::vector<float>{std::numeric_limits<float>::quiet_NaN()});
  cuda::CastFloatToHalf(nan.get(), AsHalf(out.get()), 1, stream_);
  Sync();
  EXPECT_TRUE(std::isnan(HalfToFloat(out.Download()[0])));
}

TEST_F(CudaCast, HalfToFloatIsExactForEveryBitPattern) {
  std::vector<uint16_t> in(65536);
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint16_t(i);
  DeviceBuffer<uint16_t> d_in(in);
  DeviceBuffer<float> out(in.size());
  out.Poison();
  cuda::CastHalfToFloat(AsHalf(d_in.get()), out.get(), int64_t(in.size()), stream_);
  Sync();
  const std::vector<float> got = out.Download();
  size_t bad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = HalfToFloat(in[i]);
    const bool same = std::isnan(want) ? std::isnan(got[i]) : std::memcmp(&got[i], &want, 4) == 0;
    if (!same && bad++ < 5) ADD_FAILURE() << "half 0x" << std::hex << i << ": got " << got[i] << " want " << want;
  }
  EXPECT_EQ(bad, 0u);
}

template <typename H>
void CheckTranspose(cudaStream_t stream, int n, int c, int h, int w, uint32_t seed) {
  SCOPED_TRACE("shape " + std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" +
               std::to_string(w) + (sizeof(H) == 2 ? " fp16" : " fp32"));
  const size_t total = size_t(n) * c * h * w;
  std::mt19937 gen(seed);
  std::vector<H> nchw(total);
  for (H& v : nchw) v = H(gen() & 0x7bff);  // finite as fp16 bits, small integers as floats
  std::vector<H> nhwc(total);
  for (int in = 0; in < n; ++in)
    for (int ic = 0; ic < c; ++ic)
      for (int ih = 0; ih < h; ++ih)
        for (int iw = 0; iw < w; ++iw)
          nhwc[((size_t(in) * h + ih) * w + iw) * c + ic] = nchw[((size_t(in) * c + ic) * h + ih) * w + iw];
  using T = std::conditional_t<sizeof(H) == 2, __half, float>;
  DeviceBuffer<H> a(nchw), b(total), back(total);
  b.Poison();
  back.Poison();
  cuda::NchwToNhwc<T>(reinterpret_cast<const T*>(a.get()), reinterpret_cast<T*>(b.get()), n, c, h, w, stream);
  cuda::NhwcToNchw<T>(reinterpret_cast<const T*>(b.get()), reinterpret_cast<T*>(back.get()), n, c, h, w, stream);
  CUDA_CHECK(cudaStreamSynchronize(stream));
  EXPECT_TRUE(BitEqual(b.Download(), nhwc));
  EXPECT_TRUE(BitEqual(back.Download(), nchw));
}

TEST_F(CudaCast, LayoutTransforms) {
  const int shapes[][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {1, 7, 1, 1}, {3, 64, 7, 7}, {2, 256, 56, 56}};
  uint32_t seed = 9;
  for (const auto& s : shapes) {
    CheckTranspose<float>(stream_, s[0], s[1], s[2], s[3], seed++);
    CheckTranspose<uint16_t>(stream_, s[0], s[1], s[2], s[3], seed++);
  }
}

}  // namespace
}  // namespace dtrain::gpu_test
