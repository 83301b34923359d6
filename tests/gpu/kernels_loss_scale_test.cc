// GPU parity: UnscaleAndCheck (fp32, in place, fp16) against
// cpu::UnscaleAndCheck: bit-identical outputs and the same inf/NaN verdict,
// for sizes 1, 7, 1000 and 2^20 + 3 with bad values at the edges.
// LossScaleUpdate against cpu::DynamicLossScaler::Update step by step over
// found_inf patterns spanning several growth intervals, hitting both clamps:
// scale and inv_scale bit-identical, the same skip verdict and counters.
// The overloads reading inv_scale from device memory, and CheckFinite, on
// every case: bit-identical outputs and exactly the same flag.
// Host-side checks of the device loss scale (CudaLossScaleArgs) need no device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <random>
#include <type_traits>
#include <vector>

#include "common/error.h"
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
  // compares with the CPU reference; then the inv_scale_dev overload and
  // CheckFinite on the same input: the same output bits and the same flag.
  template <typename H>
  void Check(const std::vector<H>& in, bool in_place) {
    const size_t n = in.size();
    std::vector<float> want(n);
    const bool want_found = cpu::UnscaleAndCheck(in.data(), want.data(), n, kInvScale);
    DeviceBuffer<H> d_in(in);
    DeviceBuffer<float> out(n), inv_scale(std::vector<float>{kInvScale});
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

    SCOPED_TRACE("inv_scale_dev overloads");
    const float* scale_dev = inv_scale.get();
    d_in.Upload(in);  // in place above overwrote it
    out.Poison();
    found.Upload({0});
    if constexpr (std::is_same_v<H, float>) {
      float* dst = in_place ? d_in.get() : out.get();
      cuda::UnscaleAndCheck(d_in.get(), dst, int64_t(n), scale_dev, found.get(), stream_);
      Sync();
      EXPECT_TRUE(BitEqual(in_place ? d_in.Download() : out.Download(), want));
      d_in.Upload(in);
    } else {
      cuda::UnscaleAndCheck(AsHalf(d_in.get()), out.get(), int64_t(n), scale_dev, found.get(), stream_);
      Sync();
      EXPECT_TRUE(BitEqual(out.Download(), want));
    }
    EXPECT_EQ(found.Download()[0], want_found ? 1 : 0);

    // CheckFinite: the flag only; the input is left as it was.
    found.Upload({0});
    if constexpr (std::is_same_v<H, float>)
      cuda::CheckFinite(d_in.get(), int64_t(n), scale_dev, found.get(), stream_);
    else
      cuda::CheckFinite(AsHalf(d_in.get()), int64_t(n), scale_dev, found.get(), stream_);
    Sync();
    EXPECT_EQ(found.Download()[0], want_found ? 1 : 0) << "CheckFinite";
    EXPECT_TRUE(BitEqual(d_in.Download(), in)) << "CheckFinite changed its input";
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

TEST_F(CudaLossScale, CheckFiniteFlagIsOnlyEverSet) {
  DeviceBuffer<uint16_t> dirty(std::vector<uint16_t>{FloatToHalf(1.0f), uint16_t{0x7e00}});  // NaN
  DeviceBuffer<uint16_t> clean(std::vector<uint16_t>{FloatToHalf(1.0f), FloatToHalf(2.0f)});
  DeviceBuffer<float> one(std::vector<float>{1.0f});
  DeviceBuffer<int32_t> found(std::vector<int32_t>{0});
  cuda::CheckFinite(AsHalf(clean.get()), 2, one.get(), found.get(), stream_);
  Sync();
  EXPECT_EQ(found.Download()[0], 0);
  cuda::CheckFinite(AsHalf(dirty.get()), 2, one.get(), found.get(), stream_);
  cuda::CheckFinite(AsHalf(clean.get()), 2, one.get(), found.get(), stream_);
  Sync();
  EXPECT_EQ(found.Download()[0], 1);
}

TEST_F(CudaLossScale, DeviceScaleOverflowAndNonFiniteScale) {
  // A product that overflows only through the scale (65504 · 2^120 > fp32
  // max) is flagged; a device scale that is itself inf or NaN (not
  // validated) makes the products non-finite, so it is flagged too.
  DeviceBuffer<uint16_t> in(std::vector<uint16_t>{FloatToHalf(65504.0f), FloatToHalf(-3.0f), uint16_t{0}});
  DeviceBuffer<float> scale(1), out(3);
  DeviceBuffer<int32_t> found(1);
  struct Case {
    float scale;
    int32_t want;
  };
  const Case cases[] = {{1.0f, 0},
                        {std::ldexp(1.0f, 120), 1},
                        {std::numeric_limits<float>::infinity(), 1},
                        {std::numeric_limits<float>::quiet_NaN(), 1}};
  for (const Case& c : cases) {
    SCOPED_TRACE("inv_scale " + std::to_string(c.scale));
    scale.Upload({c.scale});
    found.Upload({0});
    cuda::UnscaleAndCheck(AsHalf(in.get()), out.get(), 3, scale.get(), found.get(), stream_);
    Sync();
    EXPECT_EQ(found.Download()[0], c.want) << "UnscaleAndCheck";
    found.Upload({0});
    cuda::CheckFinite(AsHalf(in.get()), 3, scale.get(), found.get(), stream_);
    Sync();
    EXPECT_EQ(found.Download()[0], c.want) << "CheckFinite";
  }
}

// found_inf per step: runs of good steps longer than the growth interval
// (growth up to the max clamp), runs of overflows (backoff down to the min
// clamp), single overflows interrupting a run, and alternation.
std::vector<int32_t> InfPattern() {
  std::vector<int32_t> p;
  auto good = [&](int n) { p.insert(p.end(), n, 0); };
  auto bad = [&](int n) { p.insert(p.end(), n, 1); };
  good(40);
  bad(1);
  good(2);
  bad(1);
  good(7);
  bad(25);
  good(3);
  for (int i = 0; i < 10; ++i) p.push_back(i % 2);
  good(11);
  bad(2);
  good(30);
  return p;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

class CudaDeviceLossScale : public CudaTest {
 protected:
  void RunSequence(const cpu::LossScalerOptions& o, const std::vector<int32_t>& pattern) {
    cpu::DynamicLossScaler ref(o);
    DeviceBuffer<cuda::DeviceLossScale> state(std::vector<cuda::DeviceLossScale>{cuda::MakeDeviceLossScale(o)});
    bool saw_max = false, saw_min = false;
    for (size_t step = 0; step < pattern.size(); ++step) {
      SCOPED_TRACE("step " + std::to_string(step) + " found_inf=" + std::to_string(pattern[step]));
      CUDA_CHECK(cudaMemcpy(&state.get()->found_inf, &pattern[step], sizeof(int32_t), cudaMemcpyHostToDevice));
      cuda::LossScaleUpdate(state.get(), o, stream_);
      Sync();
      const bool want_skip = ref.Update(pattern[step] != 0);
      const cuda::DeviceLossScale got = state.Download()[0];
      ASSERT_EQ(Bits(got.scale), Bits(ref.scale())) << "scale got " << got.scale << " want " << ref.scale();
      ASSERT_EQ(Bits(got.inv_scale), Bits(ref.inv_scale()))
          << "inv_scale got " << got.inv_scale << " want " << ref.inv_scale();
      ASSERT_EQ(got.skipped, want_skip ? 1 : 0);
      ASSERT_EQ(got.good_steps, ref.good_steps());
      ASSERT_EQ(got.skipped_steps, ref.skipped_steps());
      ASSERT_EQ(got.found_inf, 0) << "found_inf must be cleared";
      saw_max |= ref.scale() == o.max_scale;
      saw_min |= ref.scale() == o.min_scale;
    }
    EXPECT_TRUE(saw_max) << "pattern never reached max_scale: test too weak";
    EXPECT_TRUE(saw_min) << "pattern never reached min_scale: test too weak";
  }
};

TEST_F(CudaDeviceLossScale, MatchesCpuPowersOfTwo) {
  cpu::LossScalerOptions o;
  o.init_scale = 65536.0f;
  o.growth_interval = 3;
  o.max_scale = 1048576.0f;  // 2^20: reached after 4 growths
  o.min_scale = 1.0f;        // 2^16 -> 1 in 16 backoffs
  RunSequence(o, InfPattern());
}

TEST_F(CudaDeviceLossScale, MatchesCpuOddFactors) {
  // Factors whose products round: the fp32 arithmetic must match bit for bit.
  cpu::LossScalerOptions o;
  o.init_scale = 1000.0f;
  o.growth_factor = 3.1f;
  o.backoff_factor = 0.3f;
  o.growth_interval = 4;
  o.min_scale = 0.7f;
  o.max_scale = 50000.0f;
  RunSequence(o, InfPattern());
  o.growth_interval = 1;  // grows on every good step
  RunSequence(o, InfPattern());
}

TEST_F(CudaDeviceLossScale, FoundInfFromUnscaleAndCheck) {
  // The engine's step: UnscaleAndCheck sets the state's flag, the update skips.
  const cpu::LossScalerOptions o;
  DeviceBuffer<cuda::DeviceLossScale> state(std::vector<cuda::DeviceLossScale>{cuda::MakeDeviceLossScale(o)});
  DeviceBuffer<float> grads(std::vector<float>{1, std::numeric_limits<float>::infinity(), 3}), out(3);
  cuda::UnscaleAndCheck(grads.get(), out.get(), 3, 1.0f / o.init_scale, &state.get()->found_inf, stream_);
  cuda::LossScaleUpdate(state.get(), o, stream_);
  Sync();
  cuda::DeviceLossScale got = state.Download()[0];
  EXPECT_EQ(got.skipped, 1);
  EXPECT_EQ(got.scale, o.init_scale * o.backoff_factor);
  EXPECT_EQ(got.skipped_steps, 1);
  EXPECT_EQ(got.found_inf, 0);
  // A clean step afterwards is not skipped.
  DeviceBuffer<float> clean(std::vector<float>{1, 2, 3});
  cuda::UnscaleAndCheck(clean.get(), out.get(), 3, got.inv_scale, &state.get()->found_inf, stream_);
  cuda::LossScaleUpdate(state.get(), o, stream_);
  Sync();
  got = state.Download()[0];
  EXPECT_EQ(got.skipped, 0);
  EXPECT_EQ(got.good_steps, 1);
}

TEST_F(CudaDeviceLossScale, StepWithoutHostValues) {
  // The graph-capturable step: the scale is read from the state itself
  // (inv_scale_dev = &state->inv_scale, found_inf = &state->found_inf, fields
  // of one struct), CheckFinite for the fp16 buffer, UnscaleAndCheck for the
  // fp32 one; compared with the host scaler step by step.
  cpu::LossScalerOptions o;
  o.init_scale = 1024.0f;
  o.growth_interval = 2;
  cpu::DynamicLossScaler ref(o);
  DeviceBuffer<cuda::DeviceLossScale> state(std::vector<cuda::DeviceLossScale>{cuda::MakeDeviceLossScale(o)});
  const std::vector<uint16_t> h_clean = {FloatToHalf(1.0f), FloatToHalf(-7.5f)};
  const std::vector<uint16_t> h_dirty = {FloatToHalf(1.0f), uint16_t{0x7c00}};
  const std::vector<float> f_in = {0.5f, 4096.0f, -3.0f};
  DeviceBuffer<uint16_t> g16(2);
  DeviceBuffer<float> g32(3), out(3);
  const int32_t pattern[] = {0, 0, 1, 0, 1, 1, 0, 0, 0};
  for (size_t step = 0; step < std::size(pattern); ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const float inv = ref.inv_scale();
    g16.Upload(pattern[step] ? h_dirty : h_clean);
    g32.Upload(f_in);
    out.Poison();
    cuda::CheckFinite(AsHalf(g16.get()), 2, &state.get()->inv_scale, &state.get()->found_inf, stream_);
    cuda::UnscaleAndCheck(g32.get(), out.get(), 3, &state.get()->inv_scale, &state.get()->found_inf, stream_);
    cuda::LossScaleUpdate(state.get(), o, stream_);
    Sync();
    std::vector<float> want(3);
    EXPECT_FALSE(cpu::UnscaleAndCheck(f_in.data(), want.data(), 3, inv));
    EXPECT_TRUE(BitEqual(out.Download(), want));
    const bool want_skip = ref.Update(pattern[step] != 0);
    const cuda::DeviceLossScale got = state.Download()[0];
    ASSERT_EQ(got.skipped, want_skip ? 1 : 0);
    ASSERT_EQ(Bits(got.scale), Bits(ref.scale()));
    ASSERT_EQ(Bits(got.inv_scale), Bits(ref.inv_scale()));
  }
}

TEST(CudaLossScaleArgs, DeviceLossScaleHostChecks) {
  cpu::LossScalerOptions o;
  o.init_scale = 1024.0f;
  const cuda::DeviceLossScale s = cuda::MakeDeviceLossScale(o);
  EXPECT_EQ(s.scale, 1024.0f);
  EXPECT_EQ(Bits(s.inv_scale), Bits(cpu::DynamicLossScaler(o).inv_scale()));
  EXPECT_EQ(s.found_inf, 0);
  EXPECT_EQ(s.skipped, 0);
  EXPECT_EQ(s.good_steps, 0);
  EXPECT_EQ(s.skipped_steps, 0);

  cpu::LossScalerOptions bad = o;
  bad.growth_interval = 0;
  ExpectInvalid([&] { cuda::MakeDeviceLossScale(bad); }, "growth_interval");
  cuda::DeviceLossScale* never_touched = reinterpret_cast<cuda::DeviceLossScale*>(uintptr_t{256});
  ExpectInvalid([&] { cuda::LossScaleUpdate(never_touched, bad, nullptr); }, "growth_interval");
  bad = o;
  bad.backoff_factor = 1.0f;
  ExpectInvalid([&] { cuda::LossScaleUpdate(never_touched, bad, nullptr); }, "backoff_factor");
  ExpectInvalid([&] { cuda::LossScaleUpdate(nullptr, o, nullptr); }, "state is null");
}

TEST(CudaLossScaleArgs, DeviceScaleOverloadsHostChecks) {
  // Thrown before any CUDA call: no device needed. A null inv_scale_dev is
  // rejected even when n == 0; with a scale pointer, n == 0 launches nothing
  // (the host address below is never dereferenced).
  float f = 0;
  int32_t flag = 0;
  __half h;
  const float* no_scale = nullptr;
  for (int64_t n : {int64_t{0}, int64_t{5}}) {
    ExpectInvalid([&] { cuda::UnscaleAndCheck(&f, &f, n, no_scale, &flag, nullptr); }, "inv_scale_dev");
    ExpectInvalid([&] { cuda::UnscaleAndCheck(&h, &f, n, no_scale, &flag, nullptr); }, "inv_scale_dev");
    ExpectInvalid([&] { cuda::CheckFinite(&h, n, no_scale, &flag, nullptr); }, "inv_scale_dev");
    ExpectInvalid([&] { cuda::CheckFinite(&f, n, no_scale, &flag, nullptr); }, "inv_scale_dev");
  }
  ExpectInvalid([&] { cuda::UnscaleAndCheck(&f, &f, -1, &f, &flag, nullptr); }, "n must be");
  ExpectInvalid([&] { cuda::CheckFinite(&h, -1, &f, &flag, nullptr); }, "n must be");
  ExpectInvalid([&] { cuda::UnscaleAndCheck(&h, nullptr, 5, &f, &flag, nullptr); }, "null");
  ExpectInvalid([&] { cuda::UnscaleAndCheck(&f, &f, 5, &f, nullptr, nullptr); }, "null");
  ExpectInvalid([&] { cuda::CheckFinite(static_cast<const __half*>(nullptr), 5, &f, &flag, nullptr); }, "null");
  ExpectInvalid([&] { cuda::CheckFinite(&h, 5, &f, nullptr, nullptr); }, "found_inf");
  cuda::UnscaleAndCheck(static_cast<const __half*>(nullptr), nullptr, 0, &f, nullptr, nullptr);
  cuda::CheckFinite(static_cast<const __half*>(nullptr), 0, &f, nullptr, nullptr);
  cuda::CheckFinite(static_cast<const float*>(nullptr), 0, &f, nullptr, nullptr);
}

}  // namespace
}  // namespace dtrain::gpu_test
