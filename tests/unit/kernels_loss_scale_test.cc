// kernels/cpu/loss_scale: UnscaleAndCheck (float and fp16 input) and the
// DynamicLossScaler state machine.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/loss_scale.h"

namespace dtrain::cpu {
namespace {

TEST(LossScale, UnscaleFloatMultipliesAndFindsNoInf) {
  std::mt19937 gen(1);
  std::normal_distribution<float> dist(0.0f, 1000.0f);
  for (size_t n : {size_t{1}, size_t{7}, size_t{1000}}) {
    std::vector<float> in(n), out(n, -1.0f);
    for (float& x : in) x = dist(gen);
    EXPECT_FALSE(UnscaleAndCheck(in.data(), out.data(), n, 1.0f / 1024));
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(out[i], in[i] * (1.0f / 1024)) << i;
  }
}

TEST(LossScale, UnscaleFloatInPlace) {
  std::vector<float> v = {1024.0f, -2048.0f, 3.0f};
  EXPECT_FALSE(UnscaleAndCheck(v.data(), v.data(), v.size(), 0.5f));
  EXPECT_EQ(v, (std::vector<float>{512.0f, -1024.0f, 1.5f}));
}

TEST(LossScale, UnscaleFindsInfAndNanAnywhere) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float bad : {inf, -inf, nan}) {
    for (size_t pos : {size_t{0}, size_t{3}, size_t{6}}) {
      std::vector<float> in(7, 1.0f), out(7);
      in[pos] = bad;
      EXPECT_TRUE(UnscaleAndCheck(in.data(), out.data(), in.size(), 0.25f)) << bad << " at " << pos;
      EXPECT_EQ(out[0 == pos ? 1 : 0], 0.25f);  // the others are still written
    }
  }
  // Overflow of the product itself counts too.
  std::vector<float> big = {std::numeric_limits<float>::max()}, out(1);
  EXPECT_TRUE(UnscaleAndCheck(big.data(), out.data(), 1, 4.0f));
}

TEST(LossScale, UnscaleHalf) {
  std::vector<half_bits> in = {FloatToHalf(65504.0f), FloatToHalf(-3.5f), FloatToHalf(6e-8f), 0};
  std::vector<float> out(in.size());
  EXPECT_FALSE(UnscaleAndCheck(in.data(), out.data(), in.size(), 1.0f / 65536));
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], HalfToFloat(in[i]) * (1.0f / 65536)) << i;
  in[2] = 0x7c00;  // +inf
  EXPECT_TRUE(UnscaleAndCheck(in.data(), out.data(), in.size(), 1.0f));
  in[2] = 0x7e00;  // NaN
  EXPECT_TRUE(UnscaleAndCheck(in.data(), out.data(), in.size(), 1.0f));
}

TEST(LossScale, UnscaleRejectsBadInvScale) {
  float x = 1, y = 0;
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::infinity(), std::nanf("")}) {
    try {
      UnscaleAndCheck(&x, &y, 1, bad);
      ADD_FAILURE() << "accepted inv_scale " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(DynamicLossScaler, GrowsAfterIntervalBacksOffOnInf) {
  LossScalerOptions opt;
  opt.init_scale = 1024;
  opt.growth_interval = 3;
  DynamicLossScaler s(opt);
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_EQ(s.inv_scale(), 1.0f / 1024);
  EXPECT_FALSE(s.Update(false));
  EXPECT_FALSE(s.Update(false));
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_FALSE(s.Update(false));
  EXPECT_EQ(s.scale(), 2048.0f);  // third good step in a row
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_FALSE(s.Update(false));
  EXPECT_TRUE(s.Update(true));  // skip, halve, restart the count
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_FALSE(s.Update(false));
  EXPECT_FALSE(s.Update(false));
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_FALSE(s.Update(false));
  EXPECT_EQ(s.scale(), 2048.0f);
}

TEST(DynamicLossScaler, DefaultsAndBounds) {
  DynamicLossScaler s;
  EXPECT_EQ(s.options().growth_interval, 2000);
  EXPECT_EQ(s.options().growth_factor, 2.0f);
  EXPECT_EQ(s.options().backoff_factor, 0.5f);
  EXPECT_EQ(s.options().min_scale, 1.0f);
  EXPECT_EQ(s.scale(), 65536.0f);
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(s.Update(true));
  EXPECT_EQ(s.scale(), 1.0f);  // never below min_scale
  EXPECT_EQ(s.skipped_steps(), 40);
  for (int i = 0; i < 2000 * 30; ++i) s.Update(false);
  EXPECT_EQ(s.scale(), 16777216.0f);  // never above max_scale
}

TEST(DynamicLossScaler, RejectsBadOptions) {
  auto expect_bad = [](LossScalerOptions o, const char* field) {
    try {
      DynamicLossScaler s(o);
      ADD_FAILURE() << "accepted bad " << field;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  LossScalerOptions o;
  o.growth_interval = 0;
  expect_bad(o, "growth_interval");
  o = {};
  o.backoff_factor = 1;
  expect_bad(o, "backoff_factor");
  o = {};
  o.growth_factor = 1;
  expect_bad(o, "growth_factor");
  o = {};
  o.min_scale = 0;
  expect_bad(o, "min_scale");
  o = {};
  o.init_scale = 0.5f;
  expect_bad(o, "init_scale");
}

}  // namespace
}  // namespace dtrain::cpu
