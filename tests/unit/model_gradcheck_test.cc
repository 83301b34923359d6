// Whole-network finite-difference gradient checks in double precision: every
// parameter tensor of a tiny resnet20 (and a sample of tensors of the
// ImageNet-style resnet18 / resnet50) on a sample of coordinates.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>
#include <random>
#include <vector>

#include "worker/model/model.h"

namespace dtrain::model {
namespace {

struct Case {
  const char* name;
  int image_size, batch;
  size_t tensor_stride;  // check every k-th tensor
  int coords;            // per checked tensor
  double h;              // FD step: small for big nets (fewer ReLU/max-pool
                         // switches inside the stencil), larger for tiny ones
  bool batch_norm = true;  // false: BN layers are per-channel affines
  // Largest relative error allowed. With h = 1e-7 the stencil's roundoff
  // floor is ~1e-14 of the loss / 2h: ~1e-5 relative on ResNet-50's small
  // gradients (it moves with OpenBLAS's CPU kernel and thread count). A wrong
  // backward shows as >= 1e-2.
  double tolerance = 1e-5;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name << " " << c.image_size << "x" << c.image_size << " batch " << c.batch
      << (c.batch_norm ? "" : " no-BN");
}

class WholeNetGrad : public ::testing::TestWithParam<Case> {};

TEST_P(WholeNetGrad, EveryCheckedTensorMatchesFiniteDifferences) {
  const Case c = GetParam();
  ModelOptions opt;
  opt.in_channels = 3;
  opt.num_classes = 5;
  opt.image_size = c.image_size;
  opt.batch_norm = c.batch_norm;
  auto m = BuildModel<double>(c.name, opt, 123);
  std::mt19937_64 rng(99);
  std::normal_distribution<double> nd;
  // Nudge every parameter off its init so BN betas, biases etc. are generic.
  for (size_t i = 0; i < m->num_params(); ++i) m->params()[i] += 0.05 * nd(rng);
  std::vector<double> x(size_t(c.batch) * 3 * c.image_size * c.image_size);
  for (auto& v : x) v = nd(rng);
  std::vector<int32_t> y(c.batch);
  for (int i = 0; i < c.batch; ++i) y[i] = int32_t(rng() % 5);
  const double eps = 0.1;

  m->Forward(x.data(), y.data(), c.batch, true, eps);
  m->Backward();
  const std::vector<double> grad(m->grads(), m->grads() + m->num_params());

  const double h = c.h;
  size_t checked = 0;
  double worst = 0;
  std::string worst_name;
  for (size_t t = 0; t < m->tensors().size(); t += c.tensor_stride) {
    const ParamTensor& pt = m->tensors()[t];
    for (int k = 0; k < c.coords; ++k) {
      const size_t i = pt.offset + rng() % pt.size;
      double* p = m->params() + i;
      const double keep = *p;
      *p = keep + h;
      const double lp = m->Forward(x.data(), y.data(), c.batch, true, eps).loss;
      *p = keep - h;
      const double lm = m->Forward(x.data(), y.data(), c.batch, true, eps).loss;
      *p = keep;
      const double num = (lp - lm) / (2 * h);
      const double err = std::abs(num - grad[i]) / std::max({std::abs(num), std::abs(grad[i]), 1e-3});
      if (err > worst) worst = err, worst_name = pt.name;
      if (getenv("GRADCHECK_VERBOSE")) printf("%-34s num %+.6e ana %+.6e err %.1e\n", pt.name.c_str(), num, grad[i], err);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
  EXPECT_LT(worst, c.tolerance) << c.name << ": worst tensor " << worst_name;
}

INSTANTIATE_TEST_SUITE_P(Models, WholeNetGrad,
                         ::testing::Values(Case{"resnet20", 8, 4, 1, 3, 1e-5},
                                           Case{"resnet18", 64, 2, 6, 1, 1e-7},
                                           Case{"resnet50", 64, 2, 12, 1, 1e-7, true, 1e-4},
                                           Case{"resnet20", 8, 4, 1, 3, 1e-5, false}),
                         [](const auto& info) {
                           return std::string(info.param.name) +
                                  (info.param.batch_norm ? "" : "_no_bn");
                         });

// Without batch statistics the mean-loss gradient of a batch is the mean of
// the gradients of its halves: what data-parallel ranks rely on.
TEST(NoBatchNorm, GradientOfABatchIsTheMeanOverItsHalves) {
  ModelOptions opt;
  opt.in_channels = 1;
  opt.num_classes = 3;
  opt.image_size = 8;
  opt.batch_norm = false;
  auto m = BuildModel<double>("resnet20", opt, 7);
  std::mt19937_64 rng(8);
  std::normal_distribution<double> nd;
  std::vector<double> x(6 * 64);
  for (auto& v : x) v = nd(rng);
  std::vector<int32_t> y = {0, 1, 2, 2, 1, 0};
  m->Forward(x.data(), y.data(), 6, true, 0.1);
  m->Backward();
  const std::vector<double> whole(m->grads(), m->grads() + m->num_params());
  m->Forward(x.data(), y.data(), 3, true, 0.1);
  m->Backward();
  const std::vector<double> first(m->grads(), m->grads() + m->num_params());
  m->Forward(x.data() + 3 * 64, y.data() + 3, 3, true, 0.1);
  m->Backward();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    worst = std::max(worst, std::abs(whole[i] - 0.5 * (first[i] + m->grads()[i])));
    scale = std::max(scale, std::abs(whole[i]));
  }
  EXPECT_GT(scale, 0.0);
  EXPECT_LT(worst, 1e-12 * std::max(1.0, scale));
}

}  // namespace
}  // namespace dtrain::model
