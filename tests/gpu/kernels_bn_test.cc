// GPU parity of the cuDNN NHWC fp16 batch norm (kernels/cuda/batch_norm_cudnn.h)
// and its activation kernels (bn_activation.h) against the CPU fp32 references
// (kernels/cpu/batch_norm.h, residual_add.h, relu.h) on the same fp16-rounded
// inputs (NCHW fp32 on the CPU, NHWC fp16 on the device). The host-side
// argument checks (CudnnBnArgs, BnActivationArgs) need no device.
//
// Tolerances (fp16 storage, fp32 arithmetic on both sides):
//   fp16 outputs y, dx: rtol 2e-3 (two roundings of 2^-11: the fallback path
//     rounds BN(x) before adding z) and atol 1e-3 * max|want| (a rounded
//     operand of a cancelling add or subtract);
//   dz: exact (a masked copy of dy);
//   fp32 statistics save_mean, save_inv_std, running_mean, running_var: rtol
//     5e-4, atol 5e-5 (fp32 sums of fp16 values; tight enough to tell the
//     biased from the unbiased running_var at m = n*hw <= 200, and momentum
//     from 1 - momentum, with momentum 0.3);
//   dgamma, dbeta (sums over m = n*hw values): rtol 2e-3, atol 1e-5 * m.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/layout.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual_add.h"
#include "kernels/cuda/batch_norm_cudnn.h"
#include "kernels/cuda/bn_activation.h"
#include "kernels/cuda/cudnn_check.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

using cpu::BatchNormShape;
using cuda::BnActivation;
using cuda::BnArgs;
using cuda::BnPass;
using cuda::CudnnBatchNorm;

constexpr double kHalfRtol = 2e-3, kHalfAtolScale = 1e-3;
constexpr double kStatRtol = 5e-4, kStatAtol = 5e-5;
constexpr double kSumRtol = 2e-3, kSumAtolPerValue = 1e-5;
constexpr double kEps = 1e-5, kMomentum = 0.3;

constexpr BnActivation kActs[] = {BnActivation::kNone, BnActivation::kRelu, BnActivation::kAddRelu};

// Small to large, so one CudnnBatchNorm's workspace grows along the way.
const BatchNormShape kShapes[] = {
    {3, 16, 8 * 8},     // c % 8 == 0
    {2, 24, 5 * 5},     // c % 4 == 0, c % 8 != 0
    {1, 12, 7 * 7},     // n = 1
    {2, 10, 6 * 6},     // c % 4 != 0: the SPATIAL fallback with own activation kernels
    {5, 3, 7},          // odd everything (fallback)
    {2, 64, 56 * 56},   // ResNet-50 layer1
    {4, 2048, 7 * 7},   // ResNet-50 layer4
};

std::string Name(const BatchNormShape& s, BnActivation act) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " hw=" + std::to_string(s.hw) +
         " act=" + cuda::BnActivationName(act);
}

float RoundHalf(float v) { return HalfToFloat(FloatToHalf(v)); }
size_t Count(const BatchNormShape& s) { return size_t(s.n) * s.c * s.hw; }

// NCHW float <-> NHWC fp16 (kernels/cpu/layout.h; hw as h, w = 1).
std::vector<uint16_t> ToNhwcHalf(const std::vector<float>& nchw, const BatchNormShape& s) {
  std::vector<uint16_t> half(nchw.size()), out(nchw.size());
  for (size_t i = 0; i < nchw.size(); ++i) half[i] = FloatToHalf(nchw[i]);
  cpu::NchwToNhwc(half.data(), s.n, s.c, s.hw, 1, s.c, out.data());
  return out;
}

std::vector<float> FromNhwcHalf(const std::vector<uint16_t>& nhwc, const BatchNormShape& s) {
  std::vector<uint16_t> nchw(nhwc.size());
  cpu::NhwcToNchw(nhwc.data(), s.n, s.c, s.hw, 1, s.c, nchw.data());
  std::vector<float> out(nchw.size());
  for (size_t i = 0; i < nchw.size(); ++i) out[i] = HalfToFloat(nchw[i]);
  return out;
}

double MaxAbs(const std::vector<float>& v) {
  double m = 0;
  for (float f : v) m = std::max(m, double(std::abs(f)));
  return m;
}

// One case's host data, NCHW; x, z, dy fp16-representable. Channels get their
// own mean and spread, so a statistic taken over the wrong axis shows.
struct Inputs {
  std::vector<float> x, z, dy, gamma, beta, running_mean, running_var;
};

Inputs MakeInputs(const BatchNormShape& s, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Inputs in;
  const size_t count = Count(s);
  in.x.resize(count);
  for (int c = 0; c < s.c; ++c) {
    const float mu = u(gen), sigma = 1.25f + 0.75f * u(gen);  // sigma in [0.5, 2]
    for (int n = 0; n < s.n; ++n)
      for (int p = 0; p < s.hw; ++p) in.x[(size_t(n) * s.c + c) * s.hw + p] = RoundHalf(mu + sigma * normal(gen));
  }
  in.z.resize(count);
  for (float& v : in.z) v = RoundHalf(normal(gen));
  in.dy.resize(count);
  for (float& v : in.dy) v = RoundHalf(u(gen));
  for (int c = 0; c < s.c; ++c) {
    in.gamma.push_back(1.0f + 0.5f * u(gen));
    in.beta.push_back(0.5f * u(gen));
    in.running_mean.push_back(0.2f * u(gen));
    in.running_var.push_back(1.0f + 0.5f * u(gen));
  }
  return in;
}

// Runs one case; an exception (a cuDNN refusal names the call, shape and
// path) fails that case and lets the others run.
void RunCase(const std::function<void()>& f, const BatchNormShape& s, BnActivation act) {
  try {
    f();
  } catch (const std::exception& e) {
    ADD_FAILURE() << Name(s, act) << ": " << e.what();
  }
}

class CudnnBn : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    CUDNN_CHECK(cudnnCreate(&handle_));
  }
  void TearDown() override {
    if (handle_ != nullptr) cudnnDestroy(handle_);
    CudaTest::TearDown();
  }

  // Forward training then backward of one case against the CPU reference.
  void CheckTraining(CudnnBatchNorm& bn, const BatchNormShape& s, BnActivation act, uint32_t seed) {
    SCOPED_TRACE(Name(s, act) + " [" + bn.PathDescription(s, act) + "]");
    const bool add = act == BnActivation::kAddRelu;
    const size_t count = Count(s);
    const Inputs in = MakeInputs(s, seed);

    std::vector<float> rm = in.running_mean, rv = in.running_var, sm(s.c), sis(s.c), y_want(count);
    cpu::BatchNormForwardTraining(s, in.x.data(), in.gamma.data(), in.beta.data(), kEps, kMomentum, rm.data(),
                                  rv.data(), sm.data(), sis.data(), y_want.data(), act == BnActivation::kRelu);
    if (add) cpu::ResidualAddRelu(count, y_want.data(), in.z.data(), y_want.data());

    DeviceBuffer<uint16_t> x(ToNhwcHalf(in.x, s)), y(count);
    DeviceBuffer<uint16_t> z(add ? ToNhwcHalf(in.z, s) : std::vector<uint16_t>{});
    DeviceBuffer<float> gamma(in.gamma), beta(in.beta), d_rm(in.running_mean), d_rv(in.running_var), d_sm(s.c),
        d_sis(s.c);
    DeviceBuffer<uint8_t> reserve(bn.ReserveBytes(s, act));
    y.Poison();
    d_sm.Poison();
    d_sis.Poison();
    bn.ForwardTraining(s, act, AsHalf(x.get()), add ? AsHalf(z.get()) : nullptr, gamma.get(), beta.get(), kEps,
                       kMomentum, d_rm.get(), d_rv.get(), d_sm.get(), d_sis.get(), reserve.get(), AsHalf(y.get()),
                       stream_);
    Sync();
    const std::vector<float> y_got = FromNhwcHalf(y.Download(), s);
    EXPECT_TRUE(AllClose(y_got, y_want, kHalfRtol, kHalfAtolScale * MaxAbs(y_want))) << "y";
    EXPECT_TRUE(AllClose(d_sm.Download(), sm, kStatRtol, kStatAtol)) << "save_mean";
    EXPECT_TRUE(AllClose(d_sis.Download(), sis, kStatRtol, kStatAtol)) << "save_inv_std";
    EXPECT_TRUE(AllClose(d_rm.Download(), rm, kStatRtol, kStatAtol)) << "running_mean";
    EXPECT_TRUE(AllClose(d_rv.Download(), rv, kStatRtol, kStatAtol)) << "running_var";

    // The gradient reaching BN is dy masked by the device's own y > 0 (the
    // mask Backward is given), so a value near 0 cannot flip the comparison.
    std::vector<float> g = in.dy, dx_want(count), dg_want(s.c), db_want(s.c);
    if (act == BnActivation::kRelu) {
      cpu::BatchNormBackward(s, in.x.data(), in.dy.data(), in.gamma.data(), sm.data(), sis.data(), dx_want.data(),
                             dg_want.data(), db_want.data(), y_got.data());
    } else {
      if (add)  // chain rule by hand: dz = dy * mask, dBN = dy * mask
        for (size_t i = 0; i < count; ++i) g[i] = y_got[i] > 0 ? in.dy[i] : 0.0f;
      cpu::BatchNormBackward(s, in.x.data(), g.data(), in.gamma.data(), sm.data(), sis.data(), dx_want.data(),
                             dg_want.data(), db_want.data());
    }

    DeviceBuffer<uint16_t> dy(ToNhwcHalf(in.dy, s)), dx(count), dz(add ? count : 0);
    DeviceBuffer<float> dgamma(s.c), dbeta(s.c);
    dx.Poison();
    dz.Poison();
    dgamma.Poison();
    dbeta.Poison();
    bn.Backward(s, act, AsHalf(x.get()), AsHalf(y.get()), AsHalf(dy.get()), gamma.get(), beta.get(), d_sm.get(),
                d_sis.get(), kEps, reserve.get(), AsHalf(dx.get()), add ? AsHalf(dz.get()) : nullptr, dgamma.get(),
                dbeta.get(), stream_);
    Sync();
    EXPECT_TRUE(AllClose(FromNhwcHalf(dx.Download(), s), dx_want, kHalfRtol, kHalfAtolScale * MaxAbs(dx_want)))
        << "dx";
    if (add) {
      EXPECT_TRUE(AllClose(FromNhwcHalf(dz.Download(), s), g, 0.0, 1e-9)) << "dz";
    }
    const double m = double(s.n) * s.hw;
    EXPECT_TRUE(AllClose(dgamma.Download(), dg_want, kSumRtol, kSumAtolPerValue * m)) << "dgamma";
    EXPECT_TRUE(AllClose(dbeta.Download(), db_want, kSumRtol, kSumAtolPerValue * m)) << "dbeta";
  }

  void CheckInference(CudnnBatchNorm& bn, const BatchNormShape& s, BnActivation act, uint32_t seed) {
    SCOPED_TRACE(Name(s, act) + " inference");
    const bool add = act == BnActivation::kAddRelu;
    const size_t count = Count(s);
    const Inputs in = MakeInputs(s, seed);
    std::vector<float> y_want(count);
    cpu::BatchNormForwardInference(s, in.x.data(), in.gamma.data(), in.beta.data(), in.running_mean.data(),
                                   in.running_var.data(), kEps, y_want.data(), act == BnActivation::kRelu);
    if (add) cpu::ResidualAddRelu(count, y_want.data(), in.z.data(), y_want.data());

    DeviceBuffer<uint16_t> x(ToNhwcHalf(in.x, s)), y(count);
    DeviceBuffer<uint16_t> z(add ? ToNhwcHalf(in.z, s) : std::vector<uint16_t>{});
    DeviceBuffer<float> gamma(in.gamma), beta(in.beta), rm(in.running_mean), rv(in.running_var);
    y.Poison();
    bn.ForwardInference(s, act, AsHalf(x.get()), add ? AsHalf(z.get()) : nullptr, gamma.get(), beta.get(), rm.get(),
                        rv.get(), kEps, AsHalf(y.get()), stream_);
    Sync();
    EXPECT_TRUE(AllClose(FromNhwcHalf(y.Download(), s), y_want, kHalfRtol, kHalfAtolScale * MaxAbs(y_want))) << "y";
  }

  cudnnHandle_t handle_ = nullptr;
};

TEST_F(CudnnBn, TrainingMatchesCpu) {
  CudnnBatchNorm bn(handle_);
  uint32_t seed = 100;
  for (const BatchNormShape& s : kShapes)
    for (BnActivation act : kActs) {
      RunCase([&] { CheckTraining(bn, s, act, seed); }, s, act);
      ++seed;
    }
}

TEST_F(CudnnBn, InferenceMatchesCpu) {
  CudnnBatchNorm bn(handle_);
  uint32_t seed = 200;
  for (const BatchNormShape& s : kShapes)
    for (BnActivation act : kActs) {
      RunCase([&] { CheckInference(bn, s, act, seed); }, s, act);
      ++seed;
    }
}

// The fused persistent path is the point for the ResNet shapes: say which
// path each case takes, and expect the fused one wherever c % 4 == 0.
TEST_F(CudnnBn, PersistentPathWhereCIsMultipleOf4) {
  CudnnBatchNorm bn(handle_);
  for (const BatchNormShape& s : kShapes)
    for (BnActivation act : kActs) {
      const std::string path = bn.PathDescription(s, act);
      std::cout << "[ path     ] " << Name(s, act) << ": " << path << "\n";
      EXPECT_EQ(bn.UsesPersistentPath(s, act), s.c % 4 == 0) << Name(s, act) << ": " << path;
    }
}

// Two steps chain the running averages (and reuse one reserve buffer).
TEST_F(CudnnBn, RunningStatsAccumulateOverSteps) {
  const BatchNormShape s{3, 16, 8 * 8};
  for (BnActivation act : {BnActivation::kRelu, BnActivation::kNone}) {
    SCOPED_TRACE(Name(s, act));
    CudnnBatchNorm bn(handle_);
    const Inputs first = MakeInputs(s, 300), second = MakeInputs(s, 301);
    std::vector<float> rm = first.running_mean, rv = first.running_var, sm(s.c), sis(s.c), y(Count(s));
    DeviceBuffer<float> gamma(first.gamma), beta(first.beta), d_rm(rm), d_rv(rv), d_sm(s.c), d_sis(s.c);
    DeviceBuffer<uint16_t> d_y(Count(s));
    DeviceBuffer<uint8_t> reserve(bn.ReserveBytes(s, act));
    for (const Inputs* in : {&first, &second}) {
      cpu::BatchNormForwardTraining(s, in->x.data(), first.gamma.data(), first.beta.data(), kEps, kMomentum,
                                    rm.data(), rv.data(), sm.data(), sis.data(), y.data(),
                                    act == BnActivation::kRelu);
      DeviceBuffer<uint16_t> x(ToNhwcHalf(in->x, s));
      bn.ForwardTraining(s, act, AsHalf(x.get()), nullptr, gamma.get(), beta.get(), kEps, kMomentum, d_rm.get(),
                         d_rv.get(), d_sm.get(), d_sis.get(), reserve.get(), AsHalf(d_y.get()), stream_);
      Sync();
    }
    EXPECT_TRUE(AllClose(d_rm.Download(), rm, kStatRtol, kStatAtol)) << "running_mean";
    EXPECT_TRUE(AllClose(d_rv.Download(), rv, kStatRtol, kStatAtol)) << "running_var";
  }
}

TEST_F(CudnnBn, NullReserveIsRejectedWhenNeeded) {
  CudnnBatchNorm bn(handle_);
  const BatchNormShape s{2, 64, 56 * 56};
  const size_t bytes = bn.ReserveBytes(s, BnActivation::kRelu);
  std::cout << "[ reserve  ] " << Name(s, BnActivation::kRelu) << ": " << bytes << " bytes\n";
  if (bytes == 0) GTEST_SKIP() << "cuDNN needs no reserve space for this case";
  DeviceBuffer<uint16_t> x(Count(s)), y(Count(s));
  DeviceBuffer<float> p(6 * size_t(s.c));
  float* f = p.get();
  try {
    bn.ForwardTraining(s, BnActivation::kRelu, AsHalf(x.get()), nullptr, f, f + s.c, kEps, kMomentum, f + 2 * s.c,
                       f + 3 * s.c, f + 4 * s.c, f + 5 * s.c, nullptr, AsHalf(y.get()), stream_);
    ADD_FAILURE() << "no error for a null reserve";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("reserve"), std::string::npos) << e.what();
  }
}

class CudaBnActivation : public CudaTest {};

TEST_F(CudaBnActivation, AddReluAndMaskMatchCpu) {
  const size_t n = 100003;  // odd: no vector-width assumptions
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> y(n), z(n), dy(n);
  for (size_t i = 0; i < n; ++i) {
    y[i] = RoundHalf(normal(gen));
    z[i] = RoundHalf(normal(gen));
    dy[i] = RoundHalf(normal(gen));
  }
  y[5] = std::numeric_limits<float>::quiet_NaN();  // NaN propagates through the ReLU
  auto to_half = [](const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = FloatToHalf(v[i]);
    return h;
  };
  for (bool with_z : {false, true}) {
    SCOPED_TRACE(with_z ? "add+relu" : "relu");
    std::vector<float> want(n);
    if (with_z)
      cpu::ResidualAddRelu(n, y.data(), z.data(), want.data());
    else
      cpu::ReluForward(n, y.data(), want.data());
    for (float& v : want) v = RoundHalf(v);  // one rounding of the fp32 result
    DeviceBuffer<uint16_t> d_y(to_half(y)), d_z(to_half(z));
    cuda::AddReluInPlace(with_z ? AsHalf(d_z.get()) : nullptr, AsHalf(d_y.get()), int64_t(n), stream_);
    Sync();
    EXPECT_TRUE(AllClose(HalfToFloatVec(d_y.Download()), want, 0.0, 1e-9));
  }
  std::vector<float> relu_y(n), want(n);
  cpu::ReluForward(n, y.data(), relu_y.data());
  cpu::ReluBackward(n, relu_y.data(), dy.data(), want.data());
  DeviceBuffer<uint16_t> d_y(to_half(relu_y)), d_dy(to_half(dy)), d_g(n);
  d_g.Poison();
  cuda::ReluBackwardMask(AsHalf(d_y.get()), AsHalf(d_dy.get()), AsHalf(d_g.get()), int64_t(n), stream_);
  Sync();
  EXPECT_TRUE(AllClose(HalfToFloatVec(d_g.Download()), want, 0.0, 1e-9)) << "separate output";
  cuda::ReluBackwardMask(AsHalf(d_y.get()), AsHalf(d_dy.get()), AsHalf(d_dy.get()), int64_t(n), stream_);
  Sync();
  EXPECT_TRUE(AllClose(HalfToFloatVec(d_dy.Download()), want, 0.0, 1e-9)) << "in place on dy";
}

// ---- Host-side argument checks (no device) ----

// Distinct fake (host) addresses: CheckBnArgs never dereferences them.
struct FakeBuffers {
  float f[16] = {};
  const void* P(int i) const { return &f[i]; }
  const float* F(int i) const { return &f[i]; }
};

BnArgs Valid(BnPass pass, BnActivation act, const FakeBuffers& b) {
  BnArgs a;
  a.pass = pass;
  a.shape = {2, 8, 9};
  a.act = act;
  a.x = b.P(0);
  a.gamma = b.F(1), a.beta = b.F(2);
  const bool add = act == BnActivation::kAddRelu;
  switch (pass) {
    case BnPass::kForwardTraining:
      a.y = b.P(3), a.z = add ? b.P(4) : nullptr;
      a.running_mean = b.F(5), a.running_var = b.F(6), a.save_mean = b.F(7), a.save_inv_std = b.F(8);
      break;
    case BnPass::kForwardInference:
      a.y = b.P(3), a.z = add ? b.P(4) : nullptr;
      a.running_mean = b.F(5), a.running_var = b.F(6);
      break;
    case BnPass::kBackward:
      a.y = b.P(3), a.dy = b.P(9), a.dx = b.P(10), a.dz = add ? b.P(11) : nullptr;
      a.save_mean = b.F(7), a.save_inv_std = b.F(8), a.dgamma = b.F(12), a.dbeta = b.F(13);
      break;
  }
  return a;
}

TEST(CudnnBnArgs, AcceptsValidCalls) {
  const FakeBuffers b;
  for (BnPass pass : {BnPass::kForwardTraining, BnPass::kForwardInference, BnPass::kBackward})
    for (BnActivation act : kActs) EXPECT_NO_THROW(cuda::CheckBnArgs(Valid(pass, act, b)));
  BnArgs a = Valid(BnPass::kBackward, BnActivation::kNone, b);
  a.y = nullptr;  // the mask is not needed without an activation
  EXPECT_NO_THROW(cuda::CheckBnArgs(a));
  a = Valid(BnPass::kForwardInference, BnActivation::kNone, b);
  a.shape = {1, 3, 1};  // one value per channel is fine for inference
  EXPECT_NO_THROW(cuda::CheckBnArgs(a));
}

TEST(CudnnBnArgs, RejectsBadShapesAndScalars) {
  const FakeBuffers b;
  auto with = [&](BnPass pass, const std::function<void(BnArgs&)>& edit) {
    BnArgs a = Valid(pass, BnActivation::kRelu, b);
    edit(a);
    return [a] { cuda::CheckBnArgs(a); };
  };
  const BnPass T = BnPass::kForwardTraining;
  ExpectInvalid(with(T, [](BnArgs& a) { a.shape.n = 0; }), "must be positive");
  ExpectInvalid(with(BnPass::kBackward, [](BnArgs& a) { a.shape.c = -4; }), "c=-4");
  ExpectInvalid(with(T, [](BnArgs& a) { a.shape = {1 << 16, 1 << 16, 1}; }), "INT32_MAX");
  ExpectInvalid(with(T, [](BnArgs& a) { a.shape = {1, 8, 1}; }), "more than one value per channel");
  ExpectInvalid(with(T, [](BnArgs& a) { a.epsilon = -1e-5; }), "epsilon");
  ExpectInvalid(with(BnPass::kForwardInference, [](BnArgs& a) { a.epsilon = std::nan(""); }), "epsilon");
  ExpectInvalid(with(T, [](BnArgs& a) { a.momentum = 1.5; }), "momentum");
  ExpectInvalid(with(T, [](BnArgs& a) { a.momentum = std::nan(""); }), "momentum");
  ExpectInvalid(with(T, [](BnArgs& a) { a.act = static_cast<BnActivation>(7); }), "unknown activation");
  // The message names the call and the shape.
  ExpectInvalid(with(BnPass::kBackward, [](BnArgs& a) { a.epsilon = -1; }),
                "CudnnBatchNorm::Backward (n=2 c=8 hw=9, act=relu)");
}

TEST(CudnnBnArgs, RejectsMissingAndExtraPointers) {
  const FakeBuffers b;
  const BnPass T = BnPass::kForwardTraining, I = BnPass::kForwardInference, B = BnPass::kBackward;
  auto with = [&](BnPass pass, BnActivation act, const std::function<void(BnArgs&)>& edit) {
    BnArgs a = Valid(pass, act, b);
    edit(a);
    return [a] { cuda::CheckBnArgs(a); };
  };
  const BnActivation kN = BnActivation::kNone, kR = BnActivation::kRelu, kA = BnActivation::kAddRelu;
  ExpectInvalid(with(T, kN, [](BnArgs& a) { a.x = nullptr; }), "x must not be null");
  ExpectInvalid(with(T, kN, [](BnArgs& a) { a.save_inv_std = nullptr; }), "save_inv_std must not be null");
  ExpectInvalid(with(T, kA, [](BnArgs& a) { a.z = nullptr; }), "z must not be null");
  ExpectInvalid(with(T, kR, [&](BnArgs& a) { a.z = b.P(4); }), "z must be null unless act=add_relu");
  ExpectInvalid(with(I, kN, [](BnArgs& a) { a.running_var = nullptr; }), "running_var must not be null");
  ExpectInvalid(with(I, kA, [](BnArgs& a) { a.z = nullptr; }), "z must not be null");
  ExpectInvalid(with(B, kR, [](BnArgs& a) { a.y = nullptr; }), "y must not be null");
  ExpectInvalid(with(B, kA, [](BnArgs& a) { a.dz = nullptr; }), "dz must not be null");
  ExpectInvalid(with(B, kN, [&](BnArgs& a) { a.dz = b.P(11); }), "dz must be null unless act=add_relu");
  ExpectInvalid(with(B, kN, [](BnArgs& a) { a.dbeta = nullptr; }), "dbeta must not be null");
}

TEST(CudnnBnArgs, RejectsAliasing) {
  const FakeBuffers b;
  auto with = [&](BnPass pass, const std::function<void(BnArgs&)>& edit) {
    BnArgs a = Valid(pass, BnActivation::kAddRelu, b);
    edit(a);
    return [a] { cuda::CheckBnArgs(a); };
  };
  ExpectInvalid(with(BnPass::kForwardTraining, [](BnArgs& a) { a.y = a.x; }), "y must not alias x");
  ExpectInvalid(with(BnPass::kForwardInference, [](BnArgs& a) { a.y = a.z; }), "y must not alias z");
  ExpectInvalid(with(BnPass::kForwardTraining, [](BnArgs& a) { a.save_mean = a.running_mean; }),
                "running_mean must not alias save_mean");
  ExpectInvalid(with(BnPass::kBackward, [](BnArgs& a) { a.dx = a.dy; }), "dx must not alias dy");
  ExpectInvalid(with(BnPass::kBackward, [](BnArgs& a) { a.dz = a.dy; }), "dz must not alias dy");
  ExpectInvalid(with(BnPass::kBackward, [](BnArgs& a) { a.dz = a.dx; }), "dx must not alias dz");
  ExpectInvalid(with(BnPass::kBackward, [](BnArgs& a) { a.dbeta = a.dgamma; }), "dgamma must not alias dbeta");
}

TEST(CudnnBnArgs, NullHandleIsRejected) {
  ExpectInvalid([] { CudnnBatchNorm bn(nullptr); }, "handle");
}

TEST(BnActivationArgs, LaunchersRejectBadArguments) {
  __half* h = reinterpret_cast<__half*>(uintptr_t(256));  // never dereferenced: the checks throw first
  ExpectInvalid([&] { cuda::AddReluInPlace(nullptr, h, -1, nullptr); }, "n must be >= 0");
  ExpectInvalid([&] { cuda::AddReluInPlace(nullptr, nullptr, 10, nullptr); }, "y must not be null");
  ExpectInvalid([&] { cuda::AddReluInPlace(h, h, 10, nullptr); }, "z must not alias y");
  ExpectInvalid([&] { cuda::ReluBackwardMask(h, nullptr, h + 1, 10, nullptr); }, "must not be null");
  ExpectInvalid([&] { cuda::ReluBackwardMask(h, h + 1, h, 10, nullptr); }, "g must not alias y");
  EXPECT_NO_THROW(cuda::AddReluInPlace(nullptr, nullptr, 0, nullptr));  // n == 0 launches nothing
  EXPECT_NO_THROW(cuda::ReluBackwardMask(nullptr, nullptr, nullptr, 0, nullptr));
}

}  // namespace
}  // namespace dtrain::gpu_test
