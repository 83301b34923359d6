// ResNet builder: parameter tables, seeded init, callback order, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "common/error.h"
#include "worker/model/model.h"

namespace dtrain::model {
namespace {

TEST(ResNet, ResNet50HasThePublishedParameterCount) {
  ModelOptions opt;  // 3 x 224 x 224, 1000 classes
  auto m = BuildModel<float>("resnet50", opt, 1);
  EXPECT_EQ(m->num_params(), 25557032u);
  EXPECT_EQ(m->tensors().size(), 161u);
  EXPECT_EQ(m->reserved_batch(), 0);  // nothing reserved at 224 unless asked
  EXPECT_EQ(m->tensors().front().name, "conv1.weight");
  EXPECT_EQ(m->tensors().back().name, "fc.bias");
}

TEST(ResNet, ResNet18HasThePublishedParameterCount) {
  auto m = BuildModel<float>("resnet18", ModelOptions{}, 1);
  EXPECT_EQ(m->num_params(), 11689512u);
  EXPECT_EQ(m->tensors().size(), 62u);
}

TEST(ResNet, ParameterTableIsContiguousAndFlagsNoDecay) {
  // resnet101/152 share resnet50's code path; left out to keep the test fast.
  for (const char* name : {"resnet18", "resnet34", "resnet50", "resnet20", "resnet32", "resnet56"}) {
    ModelOptions opt;
    opt.in_channels = 1;
    opt.num_classes = 10;
    opt.image_size = 32;
    auto m = BuildModel<float>(name, opt, 3);
    size_t next = 0;
    std::set<std::string> names;
    for (const ParamTensor& t : m->tensors()) {
      EXPECT_EQ(t.offset, next) << name << " " << t.name;
      size_t size = 1;
      for (int d : t.shape) size *= size_t(d);
      EXPECT_EQ(size, t.size) << t.name;
      EXPECT_EQ(t.no_decay, t.shape.size() == 1) << t.name;  // BN gamma/beta, fc.bias
      EXPECT_TRUE(names.insert(t.name).second) << "duplicate " << t.name;
      next += t.size;
    }
    EXPECT_EQ(next, m->num_params()) << name;
    // Two buffers (running mean, var) per BN, i.e. per gamma tensor.
    size_t bn = 0;
    for (const ParamTensor& t : m->tensors()) bn += t.shape.size() == 1 && t.name != "fc.bias";
    EXPECT_EQ(m->buffer_tensors().size(), bn) << name;
  }
}

TEST(ResNet, SameSeedSameWeightsDifferentSeedDifferentWeights) {
  ModelOptions opt;
  opt.in_channels = 1;
  opt.num_classes = 10;
  opt.image_size = 28;
  auto a = BuildModel<float>("resnet20", opt, 42);
  auto b = BuildModel<float>("resnet20", opt, 42);
  auto c = BuildModel<float>("resnet20", opt, 43);
  EXPECT_EQ(a->Checksum(), b->Checksum());
  EXPECT_NE(a->Checksum(), c->Checksum());
  ASSERT_EQ(a->num_params(), b->num_params());
  EXPECT_EQ(0, std::memcmp(a->params(), b->params(), a->num_params() * sizeof(float)));
  b->params()[5] += 1.0f;
  EXPECT_NE(a->Checksum(), b->Checksum());
}

TEST(ResNet, InitialisationFollowsTheDocumentedScheme) {
  ModelOptions opt;
  opt.in_channels = 3;
  opt.num_classes = 10;
  opt.image_size = 32;
  opt.zero_init_residual = true;
  auto m = BuildModel<double>("resnet56", opt, 9);
  for (const ParamTensor& t : m->tensors()) {
    const double* p = m->params() + t.offset;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < t.size; ++i) sum += p[i], sq += p[i] * p[i];
    if (t.shape.size() == 4) {  // kaiming normal, fan_out
      const double expect_var = 2.0 / (double(t.shape[0]) * t.shape[2] * t.shape[3]);
      const double var = sq / t.size - (sum / t.size) * (sum / t.size);
      if (t.size >= 2000) {
        EXPECT_NEAR(var / expect_var, 1.0, 0.1) << t.name;
      }
    } else if (t.name.find("bn") != std::string::npos || t.name.find("downsample.1") != std::string::npos) {
      const bool gamma = t.name.ends_with(".weight");
      const bool last_bn = t.name.find("layer") == 0 && t.name.find(".bn2.") != std::string::npos;
      const double expect = gamma && !last_bn ? 1.0 : 0.0;
      for (size_t i = 0; i < t.size; ++i) ASSERT_EQ(p[i], expect) << t.name;
    } else {  // fc: uniform(+-1/sqrt(64))
      for (size_t i = 0; i < t.size; ++i) ASSERT_LE(std::abs(p[i]), 1.0 / 8) << t.name;
    }
  }
}

TEST(ResNet, UnknownNameListsTheAllowedOnes) {
  try {
    BuildModel<float>("resnet51", ModelOptions{}, 1);
    FAIL() << "resnet51 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("resnet20"), std::string::npos) << e.what();
  }
  ModelOptions tiny;
  tiny.image_size = 0;
  EXPECT_THROW(BuildModel<float>("resnet20", tiny, 1), Error);
}

TEST(ResNet, BackwardCallbackFiresOncePerTensorInReverseOrder) {
  for (const char* name : {"resnet20", "resnet18", "resnet50"}) {
    ModelOptions opt;
    opt.in_channels = 2;
    opt.num_classes = 5;
    opt.image_size = 16;
    auto m = BuildModel<float>(name, opt, 5);
    const int n = 3;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(size_t(n) * 2 * 16 * 16);
    for (auto& v : x) v = nd(rng);
    std::vector<int32_t> y = {0, 4, 2};
    m->Forward(x.data(), y.data(), n, true, 0.1);
    std::vector<int> order;
    m->Backward([&](int t) { order.push_back(t); });
    ASSERT_EQ(order.size(), m->tensors().size()) << name;
    for (size_t i = 0; i < order.size(); ++i)
      EXPECT_EQ(order[i], int(order.size() - 1 - i)) << name << " position " << i;
    EXPECT_THROW(m->Backward(), Error);  // a second backward needs a new forward
  }
}

TEST(ResNet, PredictUsesRunningStatisticsAndMatchesInferenceForward) {
  ModelOptions opt;
  opt.in_channels = 1;
  opt.num_classes = 4;
  opt.image_size = 8;
  opt.max_batch = 8;
  auto m = BuildModel<float>("resnet20", opt, 2);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(8 * 64);
  for (auto& v : x) v = nd(rng);
  std::vector<int32_t> y = {0, 1, 2, 3, 0, 1, 2, 3};
  const uint64_t before = m->Checksum();
  const int64_t correct = m->Predict(x.data(), y.data(), 8);
  EXPECT_EQ(m->Checksum(), before);  // inference leaves running stats alone
  std::vector<float> logits(m->logits(), m->logits() + 32);
  int64_t expect = 0;
  for (int i = 0; i < 8; ++i) {
    int best = 0;
    for (int k = 1; k < 4; ++k)
      if (logits[i * 4 + k] > logits[i * 4 + best]) best = k;
    expect += best == y[i];
  }
  EXPECT_EQ(correct, expect);
  m->Forward(x.data(), y.data(), 8, true, 0.0);
  EXPECT_NE(m->Checksum(), before);  // training forward moves running stats
}

TEST(ResNet, SgdStepsReduceTheLossOnAFixedBatch) {
  ModelOptions opt;
  opt.in_channels = 1;
  opt.num_classes = 4;
  opt.image_size = 8;
  auto m = BuildModel<float>("resnet20", opt, 4);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const int n = 16;
  std::vector<float> x(size_t(n) * 64);
  for (auto& v : x) v = nd(rng);
  std::vector<int32_t> y(n);
  for (int i = 0; i < n; ++i) y[i] = i % 4;
  const double first = m->Forward(x.data(), y.data(), n, true, 0.1).loss;
  double last = first;
  for (int step = 0; step < 30; ++step) {
    m->Backward();
    for (size_t i = 0; i < m->num_params(); ++i) m->params()[i] -= 0.05f * m->grads()[i];
    last = m->Forward(x.data(), y.data(), n, true, 0.1).loss;
  }
  EXPECT_LT(last, 0.5 * first);
}

}  // namespace
}  // namespace dtrain::model
