// Optimizer update kernels and Optimizer, against a straightforward
// per-element double-precision implementation written here.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/error.h"
#include "kernels/cpu/optimizer_update.h"
#include "worker/optim/optimizer.h"

namespace dtrain::optim {
namespace {

using cpu::TensorSlice;

// Tensors with gaps between them (elements in no tensor must stay untouched).
const std::vector<TensorSlice> kTensors = {
    {.offset = 0, .size = 1000, .no_decay = false},  {.offset = 1003, .size = 7, .no_decay = true},
    {.offset = 1010, .size = 1, .no_decay = true},   {.offset = 1011, .size = 333, .no_decay = false},
    {.offset = 1400, .size = 64, .no_decay = false},
};
constexpr int64_t kParams = 1500;

std::vector<float> Random(uint32_t seed, float scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(kParams);
  for (float& x : v) x = dist(gen);
  return v;
}

// The reference: one step over all tensors, in double, element by element.
struct Reference {
  std::vector<double> w, v;
  void Step(const std::vector<float>& g, const OptimizerSpec& spec, double lr) {
    for (const TensorSlice& t : kTensors) {
      double wn = 0, gn = 0;
      for (int64_t i = t.offset; i < t.offset + t.size; ++i) {
        wn += w[i] * w[i];
        gn += double(g[i]) * g[i];
      }
      wn = std::sqrt(wn);
      gn = std::sqrt(gn);
      const double wd = t.no_decay ? 0.0 : spec.weight_decay;
      double trust = 1.0;
      if (spec.name == "lars" && !t.no_decay && wn > 0 && gn > 0)
        trust = spec.lars_eta * wn / (gn + wd * wn + spec.lars_epsilon);
      for (int64_t i = t.offset; i < t.offset + t.size; ++i) {
        const double d = lr * trust * (g[i] + wd * w[i]);
        v[i] = spec.momentum * v[i] + d;
        w[i] -= spec.nesterov ? spec.momentum * v[i] + d : v[i];
      }
    }
  }
};

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-6 * (1 + std::fabs(want[i]))) << what << " element " << i;
}

void RunAgainstReference(OptimizerSpec spec, const std::vector<double>& lrs) {
  std::vector<float> w = Random(1, 0.5f);
  Reference ref{std::vector<double>(w.begin(), w.end()), std::vector<double>(kParams, 0.0)};
  Optimizer opt(spec, kTensors, kParams);
  for (size_t s = 0; s < lrs.size(); ++s) {
    std::vector<float> g = Random(100 + s, 0.05f);
    opt.Step(w, g, lrs[s]);
    ref.Step(g, spec, lrs[s]);
    ExpectClose(w, ref.w, "weights");
    ExpectClose(std::vector<float>(opt.momentum().begin(), opt.momentum().end()), ref.v, "momentum");
  }
  // Elements outside every tensor are untouched.
  std::vector<float> w0 = Random(1, 0.5f);
  for (int64_t i : {1000, 1001, 1002, 1344, 1399, 1464, 1499}) EXPECT_EQ(w[i], w0[i]) << i;
}

TEST(OptimizerUpdateTest, SgdMatchesReference) {
  OptimizerSpec spec{.name = "sgd", .momentum = 0.9, .weight_decay = 1e-3, .nesterov = false};
  RunAgainstReference(spec, {0.1, 0.2, 0.05});
  spec.nesterov = true;
  RunAgainstReference(spec, {0.1, 0.2, 0.05});
}

TEST(OptimizerUpdateTest, LarsMatchesReference) {
  OptimizerSpec spec{.name = "lars", .momentum = 0.9, .weight_decay = 5e-3, .lars_eta = 0.001,
                     .lars_epsilon = 1e-9, .nesterov = false};
  RunAgainstReference(spec, {2.0, 13.0, 0.5});
  spec.nesterov = true;
  spec.momentum = 0.96;
  RunAgainstReference(spec, {2.0, 13.0, 0.5});
}

TEST(OptimizerUpdateTest, NormsOfAllTensorsInOneCall) {
  std::vector<float> w = Random(3, 1.0f), g = Random(4, 1e-3f);
  std::vector<float> wn(kTensors.size()), gn(kTensors.size());
  cpu::TensorNorms(w.data(), g.data(), kTensors, wn.data(), gn.data());
  for (size_t t = 0; t < kTensors.size(); ++t) {
    double ww = 0, gg = 0;
    for (int64_t i = kTensors[t].offset; i < kTensors[t].offset + kTensors[t].size; ++i) {
      ww += double(w[i]) * w[i];
      gg += double(g[i]) * g[i];
    }
    EXPECT_NEAR(wn[t], std::sqrt(ww), 1e-6 * std::sqrt(ww)) << t;
    EXPECT_NEAR(gn[t], std::sqrt(gg), 1e-6 * std::sqrt(gg)) << t;
  }
  // Double accumulation: 2^24 + 1 ones would stall a float sum at 2^24.
  std::vector<float> ones((1 << 24) + 4096, 1.0f);
  TensorSlice big{.offset = 0, .size = static_cast<int64_t>(ones.size()), .no_decay = false};
  float n1, n2;
  cpu::TensorNorms(ones.data(), ones.data(), std::span(&big, 1), &n1, &n2);
  EXPECT_NEAR(n1, std::sqrt(double(ones.size())), 1e-3);
}

TEST(OptimizerUpdateTest, NoDecayTensorsGetPlainSgdMomentum) {
  // One LARS step from zero momentum on a no_decay tensor: w1 = w0 - lr·g
  // exactly (no weight decay, no trust ratio), whatever eta and wd are.
  std::vector<float> w = {1.0f, -2.0f, 3.0f}, g = {0.5f, 0.25f, -1.0f}, v(3, 0.0f);
  TensorSlice t{.offset = 0, .size = 3, .no_decay = true};
  float wn, gn;
  cpu::TensorNorms(w.data(), g.data(), std::span(&t, 1), &wn, &gn);
  cpu::LarsUpdate(w.data(), g.data(), v.data(), std::span(&t, 1), &wn, &gn,
                  {.lr = 0.5f, .momentum = 0.9f, .weight_decay = 0.1f, .eta = 0.001f, .epsilon = 0.0f});
  EXPECT_EQ(w, (std::vector<float>{0.75f, -2.125f, 3.5f}));
  // Second step: v = 0.9·v + lr·g with the same g.
  cpu::LarsUpdate(w.data(), g.data(), v.data(), std::span(&t, 1), &wn, &gn,
                  {.lr = 0.5f, .momentum = 0.9f, .weight_decay = 0.1f, .eta = 0.001f, .epsilon = 0.0f});
  EXPECT_NEAR(w[0], 0.75 - (0.9 * 0.25 + 0.25), 1e-6);
  // SGD skips weight decay on it as well.
  std::vector<float> w2 = {1.0f}, g2 = {0.0f}, v2 = {0.0f};
  TensorSlice t2{.offset = 0, .size = 1, .no_decay = true};
  cpu::SgdUpdate(w2.data(), g2.data(), v2.data(), std::span(&t2, 1), {.lr = 1.0f, .weight_decay = 0.5f});
  EXPECT_EQ(w2[0], 1.0f);
}

TEST(OptimizerUpdateTest, ZeroNormFallsBackToTrustOne) {
  EXPECT_EQ(cpu::LarsLocalLr(0.0, 3.0, 0.001, 1e-4, 1e-9), 1.0);
  EXPECT_EQ(cpu::LarsLocalLr(3.0, 0.0, 0.001, 1e-4, 1e-9), 1.0);
  EXPECT_NEAR(cpu::LarsLocalLr(3.0, 4.0, 0.001, 0.5, 0.0), 0.001 * 3.0 / (4.0 + 0.5 * 3.0), 1e-15);
  // A zero weight tensor (decayed): trust 1, so w1 = -lr·g.
  std::vector<float> w = {0.0f, 0.0f}, g = {0.5f, -0.25f}, v(2, 0.0f);
  TensorSlice t{.offset = 0, .size = 2, .no_decay = false};
  float wn, gn;
  cpu::TensorNorms(w.data(), g.data(), std::span(&t, 1), &wn, &gn);
  EXPECT_EQ(wn, 0.0f);
  cpu::LarsUpdate(w.data(), g.data(), v.data(), std::span(&t, 1), &wn, &gn,
                  {.lr = 2.0f, .momentum = 0.9f, .weight_decay = 0.1f, .eta = 0.001f, .epsilon = 0.0f});
  EXPECT_EQ(w, (std::vector<float>{-1.0f, 0.5f}));
  // A zero gradient: trust 1, so only weight decay at the global LR: w1 = w0 - lr·wd·w0.
  std::vector<float> w3 = {4.0f}, g3 = {0.0f}, v3 = {0.0f};
  TensorSlice t3{.offset = 0, .size = 1, .no_decay = false};
  cpu::TensorNorms(w3.data(), g3.data(), std::span(&t3, 1), &wn, &gn);
  cpu::LarsUpdate(w3.data(), g3.data(), v3.data(), std::span(&t3, 1), &wn, &gn,
                  {.lr = 2.0f, .momentum = 0.9f, .weight_decay = 0.125f, .eta = 0.001f, .epsilon = 0.0f});
  EXPECT_EQ(w3[0], 3.0f);
}

TEST(OptimizerTest, RejectsBadSpecAndBuffers) {
  OptimizerSpec spec;
  spec.name = "adam";
  EXPECT_THROW(Optimizer(spec, kTensors, kParams), Error);
  spec.name = "lars";
  EXPECT_THROW(Optimizer(spec, {{.offset = 0, .size = 10}, {.offset = 5, .size = 10}}, 100), Error);  // overlap
  EXPECT_THROW(Optimizer(spec, {{.offset = 95, .size = 10}}, 100), Error);                           // outside
  Optimizer opt(spec, kTensors, kParams);
  std::vector<float> w(kParams), g(kParams - 1);
  EXPECT_THROW(opt.Step(w, g, 0.1), Error);
}

}  // namespace
}  // namespace dtrain::optim
