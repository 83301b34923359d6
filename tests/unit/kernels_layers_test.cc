// Finite-difference gradient checks (double) and reference checks for every
// CPU kernel. Each check draws a random projection r and differentiates
// L = sum(r * y) with central differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <ostream>
#include <string>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/channel_affine.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/fully_connected.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual_add.h"
#include "kernels/cpu/softmax_cross_entropy.h"

namespace dtrain::cpu {
namespace {

using Vec = std::vector<double>;

Vec Random(size_t n, std::mt19937_64& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> u(lo, hi);
  Vec v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

double Dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Largest relative error between analytic grad g of loss() w.r.t. x and
// central differences, over up to `samples` coordinates (all if fewer).
double GradError(Vec& x, const Vec& g, const std::function<double()>& loss,
                 std::mt19937_64& rng, size_t samples = 40) {
  const double h = 1e-5;
  std::vector<size_t> idx(x.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(std::min(samples, idx.size()));
  double worst = 0;
  for (size_t i : idx) {
    const double keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double num = (lp - lm) / (2 * h);
    const double err = std::abs(num - g[i]) / std::max({std::abs(num), std::abs(g[i]), 1e-4});
    worst = std::max(worst, err);
  }
  return worst;
}

constexpr double kTol = 1e-6;

// Direct-loop convolution as the forward reference.
Vec NaiveConv(const Conv2dShape& s, const Vec& x, const Vec& w) {
  const int oh = s.out_h(), ow = s.out_w();
  Vec y(s.out_size(), 0.0);
  for (int n = 0; n < s.n; ++n)
    for (int k = 0; k < s.k; ++k)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double acc = 0;
          for (int c = 0; c < s.c; ++c)
            for (int i = 0; i < s.r; ++i)
              for (int j = 0; j < s.s; ++j) {
                const int iy = oy * s.stride - s.pad + i, ix = ox * s.stride - s.pad + j;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                acc += x[((size_t(n) * s.c + c) * s.h + iy) * s.w + ix] *
                       w[((size_t(k) * s.c + c) * s.r + i) * s.s + j];
              }
          y[((size_t(n) * s.k + k) * oh + oy) * ow + ox] = acc;
        }
  return y;
}

struct ConvCase {
  Conv2dShape s;
  const char* what;
};

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.what; }

std::string ConvCaseName(const ::testing::TestParamInfo<ConvCase>& info) {
  std::string name;
  for (const char* p = info.param.what; *p; ++p)
    name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
  return name;
}

class ConvGrad : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGrad, ForwardMatchesDirectLoopAndGradientsMatchFiniteDifferences) {
  const Conv2dShape s = GetParam().s;
  std::mt19937_64 rng(7);
  Vec x = Random(s.in_size(), rng), w = Random(s.weight_size(), rng);
  const Vec r = Random(s.out_size(), rng);
  Vec ws(Conv2dWorkspaceSize(s)), y(s.out_size());
  Conv2dForward(s, x.data(), w.data(), y.data(), ws.data());
  const Vec ref = NaiveConv(s, x, w);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-12) << GetParam().what << " at " << i;

  Vec dx(s.in_size()), dw(s.weight_size());
  Conv2dBackward(s, x.data(), w.data(), r.data(), dx.data(), false, dw.data(), ws.data());
  auto loss = [&] {
    Conv2dForward(s, x.data(), w.data(), y.data(), ws.data());
    return Dot(y, r);
  };
  EXPECT_LT(GradError(x, dx, loss, rng), kTol) << GetParam().what << " dx";
  EXPECT_LT(GradError(w, dw, loss, rng), kTol) << GetParam().what << " dw";

  // accumulate_dx adds onto what is there.
  Vec acc(s.in_size(), 1.0);
  Conv2dBackward<double>(s, x.data(), w.data(), r.data(), acc.data(), true, nullptr, ws.data());
  for (size_t i = 0; i < acc.size(); ++i) ASSERT_NEAR(acc[i], dx[i] + 1.0, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvGrad,
    ::testing::Values(
        ConvCase{{3, 2, 6, 6, 4, 3, 3, 1, 1}, "3x3 s1 p1"},
        ConvCase{{2, 3, 7, 7, 4, 3, 3, 2, 1}, "3x3 s2 p1 odd input"},
        ConvCase{{2, 3, 11, 11, 2, 7, 7, 2, 3}, "7x7 s2 p3"},
        ConvCase{{3, 4, 6, 6, 5, 1, 1, 2, 0}, "1x1 s2"},
        ConvCase{{3, 4, 5, 5, 3, 1, 1, 1, 0}, "1x1 s1 chunked"},
        ConvCase{{2, 2, 64, 64, 3, 1, 1, 1, 0}, "1x1 s1 direct (no im2col)"},
        ConvCase{{2, 2, 66, 66, 2, 3, 3, 1, 1}, "3x3 one image per chunk"},
        ConvCase{{2, 3, 6, 8, 2, 3, 1, 1, 2}, "3x1 non-square, pad 2"},
        ConvCase{{40, 2, 9, 9, 3, 3, 3, 1, 1}, "chunks with a partial tail"}),
    ConvCaseName);

TEST(Conv2d, RejectsBadShapes) {
  Conv2dShape s{1, 1, 2, 2, 1, 5, 5, 1, 0};
  try {
    s.Check();
    FAIL() << "kernel larger than input accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_THROW((Conv2dShape{1, 1, 4, 4, 1, 3, 3, 0, 0}.Check()), Error);
}

TEST(BatchNorm, TrainingGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(11);
  const BatchNormShape s{3, 4, 5};
  const size_t count = size_t(s.n) * s.c * s.hw;
  Vec x = Random(count, rng, -2, 3), gamma = Random(s.c, rng, 0.5, 1.5),
      beta = Random(s.c, rng);
  const Vec r = Random(count, rng);
  Vec rm(s.c, 0.0), rv(s.c, 1.0), mean(s.c), istd(s.c), y(count);
  auto loss = [&] {
    BatchNormForwardTraining(s, x.data(), gamma.data(), beta.data(), 1e-5, 0.9,
                             rm.data(), rv.data(), mean.data(), istd.data(), y.data());
    return Dot(y, r);
  };
  loss();
  Vec dx(count), dg(s.c), db(s.c);
  BatchNormBackward(s, x.data(), r.data(), gamma.data(), mean.data(), istd.data(),
                    dx.data(), dg.data(), db.data());
  EXPECT_LT(GradError(x, dx, loss, rng, 60), kTol);
  EXPECT_LT(GradError(gamma, dg, loss, rng), kTol);
  EXPECT_LT(GradError(beta, db, loss, rng), kTol);
  // dx may alias dy.
  Vec inplace = r;
  BatchNormBackward(s, x.data(), inplace.data(), gamma.data(), mean.data(), istd.data(),
                    inplace.data(), dg.data(), db.data());
  for (size_t i = 0; i < count; ++i) ASSERT_NEAR(inplace[i], dx[i], 1e-12);
}

TEST(BatchNorm, FusedReluMatchesSeparateReluAndFiniteDifferences) {
  std::mt19937_64 rng(21);
  const BatchNormShape s{2, 3, 7};
  const size_t count = size_t(s.n) * s.c * s.hw;
  Vec x = Random(count, rng, -2, 2), gamma = Random(s.c, rng, 0.5, 1.5),
      beta = Random(s.c, rng, -0.3, 0.3);
  const Vec r = Random(count, rng);
  Vec rm(s.c, 0.0), rv(s.c, 1.0), mean(s.c), istd(s.c), y(count), plain(count);
  auto loss = [&] {
    BatchNormForwardTraining(s, x.data(), gamma.data(), beta.data(), 1e-5, 0.9, rm.data(),
                             rv.data(), mean.data(), istd.data(), y.data(), true);
    return Dot(y, r);
  };
  loss();
  BatchNormForwardTraining(s, x.data(), gamma.data(), beta.data(), 1e-5, 0.9, rm.data(),
                           rv.data(), mean.data(), istd.data(), plain.data());
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(y[i], std::max(plain[i], 0.0));
  Vec dx(count), dg(s.c), db(s.c);
  BatchNormBackward(s, x.data(), r.data(), gamma.data(), mean.data(), istd.data(), dx.data(),
                    dg.data(), db.data(), y.data());
  EXPECT_LT(GradError(x, dx, loss, rng, 42), kTol);
  EXPECT_LT(GradError(gamma, dg, loss, rng), kTol);
  EXPECT_LT(GradError(beta, db, loss, rng), kTol);
  BatchNormForwardInference(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), 1e-5,
                            y.data(), true);
  for (double v : y) ASSERT_GE(v, 0.0);
}

TEST(BatchNorm, RunningAverageAndInference) {
  std::mt19937_64 rng(12);
  const BatchNormShape s{4, 3, 6};
  const size_t count = size_t(s.n) * s.c * s.hw;
  const double m = 0.9, eps = 1e-5;
  Vec gamma = Random(s.c, rng, 0.5, 1.5), beta = Random(s.c, rng);
  Vec rm(s.c, 0.0), rv(s.c, 1.0), mean(s.c), istd(s.c), y(count);
  Vec expect_m(s.c, 0.0), expect_v(s.c, 1.0);
  for (int step = 0; step < 3; ++step) {
    const Vec x = Random(count, rng, -1 + step, 2 + 2 * step);
    BatchNormForwardTraining(s, x.data(), gamma.data(), beta.data(), eps, m, rm.data(),
                             rv.data(), mean.data(), istd.data(), y.data());
    for (int c = 0; c < s.c; ++c) {
      double sum = 0, sq = 0;
      const int cnt = s.n * s.hw;
      for (int n = 0; n < s.n; ++n)
        for (int i = 0; i < s.hw; ++i) sum += x[(n * s.c + c) * s.hw + i];
      const double mu = sum / cnt;
      for (int n = 0; n < s.n; ++n)
        for (int i = 0; i < s.hw; ++i) sq += std::pow(x[(n * s.c + c) * s.hw + i] - mu, 2);
      expect_m[c] = m * expect_m[c] + (1 - m) * mu;
      expect_v[c] = m * expect_v[c] + (1 - m) * sq / (cnt - 1);
      EXPECT_NEAR(mean[c], mu, 1e-12);
      EXPECT_NEAR(istd[c], 1 / std::sqrt(sq / cnt + eps), 1e-9);
      EXPECT_NEAR(rm[c], expect_m[c], 1e-12);
      EXPECT_NEAR(rv[c], expect_v[c], 1e-12);
    }
  }
  const Vec x = Random(count, rng);
  BatchNormForwardInference(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), eps,
                            y.data());
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int i = 0; i < s.hw; ++i) {
        const size_t k = (size_t(n) * s.c + c) * s.hw + i;
        EXPECT_NEAR(y[k], gamma[c] * (x[k] - rm[c]) / std::sqrt(rv[c] + eps) + beta[c], 1e-12);
      }
}

TEST(ChannelAffine, GradientsMatchFiniteDifferencesWithAndWithoutRelu) {
  for (const bool relu : {false, true}) {
    std::mt19937_64 rng(22);
    const BatchNormShape s{2, 3, 5};
    const size_t count = size_t(s.n) * s.c * s.hw;
    Vec x = Random(count, rng), gamma = Random(s.c, rng, 0.5, 1.5), beta = Random(s.c, rng, -0.2, 0.2);
    const Vec r = Random(count, rng);
    Vec y(count);
    auto loss = [&] {
      ChannelAffineForward(s, x.data(), gamma.data(), beta.data(), y.data(), relu);
      return Dot(y, r);
    };
    loss();
    for (int c = 0; c < s.c; ++c) {
      const double v = gamma[c] * x[c * s.hw] + beta[c];
      ASSERT_EQ(y[c * s.hw], relu ? std::max(v, 0.0) : v);
    }
    Vec dx(count), dg(s.c), db(s.c);
    ChannelAffineBackward(s, x.data(), r.data(), gamma.data(), dx.data(), dg.data(), db.data(),
                          relu ? y.data() : nullptr);
    EXPECT_LT(GradError(x, dx, loss, rng), kTol) << "relu " << relu;
    EXPECT_LT(GradError(gamma, dg, loss, rng), kTol) << "relu " << relu;
    EXPECT_LT(GradError(beta, db, loss, rng), kTol) << "relu " << relu;
  }
}

TEST(Relu, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(13);
  Vec x = Random(200, rng);
  for (auto& v : x) v += v > 0 ? 0.01 : -0.01;  // keep away from the kink
  const Vec r = Random(x.size(), rng);
  Vec y(x.size()), dx(x.size());
  auto loss = [&] {
    ReluForward(x.size(), x.data(), y.data());
    return Dot(y, r);
  };
  loss();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], std::max(x[i], 0.0));
  ReluBackward(x.size(), y.data(), r.data(), dx.data());
  EXPECT_LT(GradError(x, dx, loss, rng, 200), kTol);
}

TEST(MaxPool, GradientMatchesFiniteDifferences) {
  for (const MaxPoolShape s : {MaxPoolShape{2, 3, 9, 9, 3, 2, 1}, MaxPoolShape{2, 2, 6, 6, 2, 2, 0}}) {
    std::mt19937_64 rng(14);
    Vec x = Random(s.in_size(), rng);
    const Vec r = Random(s.out_size(), rng);
    Vec y(s.out_size()), dx(s.in_size());
    std::vector<int32_t> arg(s.out_size());
    auto loss = [&] {
      MaxPoolForward(s, x.data(), y.data(), arg.data());
      return Dot(y, r);
    };
    loss();
    // Reference: maximum over the window.
    for (int p = 0; p < s.n * s.c; ++p)
      for (int oy = 0; oy < s.out_h(); ++oy)
        for (int ox = 0; ox < s.out_w(); ++ox) {
          double best = -1e300;
          for (int i = 0; i < s.window; ++i)
            for (int j = 0; j < s.window; ++j) {
              const int iy = oy * s.stride - s.pad + i, ix = ox * s.stride - s.pad + j;
              if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w)
                best = std::max(best, x[(size_t(p) * s.h + iy) * s.w + ix]);
            }
          ASSERT_EQ(y[(size_t(p) * s.out_h() + oy) * s.out_w() + ox], best);
        }
    MaxPoolBackward(s, r.data(), arg.data(), dx.data());
    EXPECT_LT(GradError(x, dx, loss, rng, 100), kTol);
  }
}

TEST(GlobalAvgPool, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(15);
  const GlobalAvgPoolShape s{3, 4, 10};
  Vec x = Random(size_t(s.n) * s.c * s.hw, rng);
  const Vec r = Random(size_t(s.n) * s.c, rng);
  Vec y(r.size()), dx(x.size());
  auto loss = [&] {
    GlobalAvgPoolForward(s, x.data(), y.data());
    return Dot(y, r);
  };
  loss();
  double sum = 0;
  for (int i = 0; i < s.hw; ++i) sum += x[i];
  EXPECT_NEAR(y[0], sum / s.hw, 1e-14);
  GlobalAvgPoolBackward(s, r.data(), dx.data());
  EXPECT_LT(GradError(x, dx, loss, rng), kTol);
}

TEST(FullyConnected, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(16);
  const FullyConnectedShape s{5, 7, 3};
  Vec x = Random(size_t(s.n) * s.in, rng), w = Random(size_t(s.out) * s.in, rng),
      b = Random(s.out, rng);
  const Vec r = Random(size_t(s.n) * s.out, rng);
  Vec y(r.size()), dx(x.size()), dw(w.size()), db(b.size());
  auto loss = [&] {
    FullyConnectedForward(s, x.data(), w.data(), b.data(), y.data());
    return Dot(y, r);
  };
  loss();
  double y00 = b[0];
  for (int i = 0; i < s.in; ++i) y00 += x[i] * w[i];
  EXPECT_NEAR(y[0], y00, 1e-12);
  FullyConnectedBackward(s, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  EXPECT_LT(GradError(x, dx, loss, rng), kTol);
  EXPECT_LT(GradError(w, dw, loss, rng), kTol);
  EXPECT_LT(GradError(b, db, loss, rng), kTol);
}

TEST(SoftmaxCrossEntropy, LossTop1AndGradientWithLabelSmoothing) {
  std::mt19937_64 rng(17);
  const SoftmaxCrossEntropyShape s{6, 5};
  const double eps = 0.1;
  Vec z = Random(size_t(s.n) * s.classes, rng, -3, 3);
  std::vector<int32_t> labels(s.n);
  for (int i = 0; i < s.n; ++i) labels[i] = int32_t(rng() % s.classes);
  labels[0] = 0;
  for (int k = 0; k < s.classes; ++k) z[k] = k == 0 ? 5.0 : -1.0;  // row 0 is right
  Vec p(z.size()), dz(z.size());
  int64_t correct = -1;
  auto loss = [&] {
    return SoftmaxCrossEntropyForward(s, z.data(), labels.data(), eps, p.data(), &correct);
  };
  const double l = loss();
  double expect = 0;
  int64_t expect_correct = 0;
  for (int i = 0; i < s.n; ++i) {
    double denom = 0;
    int best = 0;
    for (int k = 0; k < s.classes; ++k) {
      denom += std::exp(z[i * s.classes + k]);
      if (z[i * s.classes + k] > z[i * s.classes + best]) best = k;
    }
    for (int k = 0; k < s.classes; ++k) {
      const double t = (k == labels[i] ? 1 - eps : 0) + eps / s.classes;
      expect -= t * std::log(std::exp(z[i * s.classes + k]) / denom);
    }
    expect_correct += best == labels[i];
  }
  EXPECT_NEAR(l, expect / s.n, 1e-12);
  EXPECT_EQ(correct, expect_correct);
  EXPECT_GE(correct, 1);
  SoftmaxCrossEntropyBackward(s, p.data(), labels.data(), eps, dz.data());
  EXPECT_LT(GradError(z, dz, loss, rng, 30), kTol);

  labels[2] = s.classes;
  EXPECT_THROW(loss(), Error);
  labels[2] = 0;
  EXPECT_THROW(SoftmaxCrossEntropyForward(s, z.data(), labels.data(), 1.5, p.data(), nullptr), Error);
}

TEST(SoftmaxCrossEntropy, TopKCountsLabelsAmongTheKHighestWithTop1TieOrder) {
  // Rows of 6 classes; the label's rank by hand: row 0 rank 0, row 1 rank 2,
  // row 2 rank 5, row 3 ties with class 1 (lower index first: rank 1),
  // row 4 ties with class 4 (the label's index is lower: rank 0).
  const SoftmaxCrossEntropyShape s{5, 6};
  const Vec z = {9, 1, 2, 3, 4, 5,  1, 7, 3, 8, 0, 2,  6, 5, 4, 3, 2, 1,
                 0, 4, 1, 4, 2, 3,  1, 2, 7, 0, 7, 3};
  const std::vector<int32_t> y = {0, 2, 5, 3, 2};
  const int want[7] = {0, 2, 3, 4, 4, 4, 5};  // rows correct at k = 0..6 (ranks 0, 2, 5, 1, 0)
  for (int k = 1; k <= 6; ++k) EXPECT_EQ(TopKCorrect(s, z.data(), y.data(), k), want[k]) << "k=" << k;
  EXPECT_EQ(TopKCorrect(s, z.data(), y.data(), 1), Top1Correct(s, z.data(), y.data()));
}

TEST(ResidualAdd, ForwardAndGradients) {
  std::mt19937_64 rng(18);
  Vec a = Random(50, rng), b = Random(50, rng);
  for (auto& v : a) v += v > 0 ? 0.05 : -0.05;
  const Vec r = Random(50, rng);
  Vec y(50);
  ResidualAdd(a.size(), a.data(), b.data(), y.data());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(y[i], a[i] + b[i]);
  // y = relu(a + b): backward is ReluBackward then ResidualAddBackward.
  auto loss = [&] {
    ResidualAddRelu(a.size(), a.data(), b.data(), y.data());
    return Dot(y, r);
  };
  loss();
  Vec g(50), da(50, 0.0), db(50, 0.0);
  ReluBackward(y.size(), y.data(), r.data(), g.data());
  ResidualAddBackward(g.size(), g.data(), da.data(), db.data());
  EXPECT_LT(GradError(a, da, loss, rng, 50), kTol);
  EXPECT_LT(GradError(b, db, loss, rng, 50), kTol);
}

TEST(FloatKernels, ConvMatchesDoubleReference) {
  std::mt19937_64 rng(19);
  const Conv2dShape s{4, 3, 10, 10, 8, 3, 3, 2, 1};
  const Vec x = Random(s.in_size(), rng), w = Random(s.weight_size(), rng);
  const Vec ref = NaiveConv(s, x, w);
  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), yf(s.out_size()),
      ws(Conv2dWorkspaceSize(s));
  Conv2dForward(s, xf.data(), wf.data(), yf.data(), ws.data());
  for (size_t i = 0; i < yf.size(); ++i) ASSERT_NEAR(yf[i], ref[i], 1e-4);
}

}  // namespace
}  // namespace dtrain::cpu
