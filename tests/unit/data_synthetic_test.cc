// Synthetic data: deterministic from the seed, well-formed, and learnable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"
#include "worker/data/dataset.h"

namespace dtrain::data {
namespace {

TEST(SyntheticTest, DeterministicFromSeed) {
  TrainTest a = MakeSynthetic(42, 3, 16, 10, 200, 50);
  TrainTest b = MakeSynthetic(42, 3, 16, 10, 200, 50);
  TrainTest c = MakeSynthetic(43, 3, 16, 10, 200, 50);
  EXPECT_EQ(a.train.images, b.train.images);
  EXPECT_EQ(a.train.labels, b.train.labels);
  EXPECT_EQ(a.test.images, b.test.images);
  EXPECT_EQ(a.train.mean, b.train.mean);
  EXPECT_NE(a.train.images, c.train.images);
  // The test split is drawn independently of the training split.
  EXPECT_FALSE(std::equal(a.test.images.begin(), a.test.images.end(), a.train.images.begin()));
}

TEST(SyntheticTest, WellFormed) {
  TrainTest d = MakeSynthetic(1, 3, 20, 7, 700, 70);
  EXPECT_EQ(d.train.size, 700);
  EXPECT_EQ(d.test.size, 70);
  EXPECT_EQ(d.train.images.size(), 700u * 3 * 20 * 20);
  EXPECT_EQ(d.train.classes, 7);
  std::vector<int> per_class(7, 0);
  for (int32_t l : d.train.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 7);
    ++per_class[l];
  }
  for (int k = 0; k < 7; ++k) EXPECT_GT(per_class[k], 50) << k;  // ~100 each
  ASSERT_EQ(d.train.mean.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_GT(d.train.mean[c], 0.2);
    EXPECT_LT(d.train.mean[c], 0.8);
    EXPECT_GT(d.train.std[c], 0.05);
  }
  EXPECT_THROW(MakeSynthetic(1, 0, 20, 7, 10, 10), Error);
  EXPECT_THROW(MakeSynthetic(1, 3, 20, 1, 10, 10), Error);
}

// Shift-invariant features (the magnitudes of the 2-D DFT of every channel)
// and a nearest-centroid classifier fitted on the training set must beat
// chance by far on the test set: the classes are separable.
std::vector<double> DftMagnitudes(const Dataset& set, int64_t i) {
  const int s = set.height;
  std::vector<double> f;
  for (int c = 0; c < set.channels; ++c)
    for (int u = 0; u < s; ++u)
      for (int v = 0; v < s; ++v) {
        double re = 0, im = 0;
        for (int y = 0; y < s; ++y)
          for (int x = 0; x < s; ++x) {
            double a = 2 * std::numbers::pi * (u * y + v * x) / s;
            double p = set.image(i)[(c * s + y) * s + x];
            re += p * std::cos(a);
            im -= p * std::sin(a);
          }
        f.push_back(std::hypot(re, im));
      }
  return f;
}

TEST(SyntheticTest, Learnable) {
  TrainTest d = MakeSynthetic(9, 3, 8, 10, 400, 200);
  std::vector<std::vector<double>> centroid(10);
  std::vector<int> count(10, 0);
  for (int64_t i = 0; i < d.train.size; ++i) {
    std::vector<double> f = DftMagnitudes(d.train, i);
    auto& c = centroid[d.train.labels[i]];
    if (c.empty()) c.assign(f.size(), 0.0);
    for (size_t k = 0; k < f.size(); ++k) c[k] += f[k];
    ++count[d.train.labels[i]];
  }
  for (int k = 0; k < 10; ++k) {
    ASSERT_GT(count[k], 0);
    for (double& v : centroid[k]) v /= count[k];
  }
  int correct = 0;
  for (int64_t i = 0; i < d.test.size; ++i) {
    std::vector<double> f = DftMagnitudes(d.test, i);
    int best = -1;
    double best_d = 0;
    for (int k = 0; k < 10; ++k) {
      double dist = 0;
      for (size_t j = 0; j < f.size(); ++j) dist += (f[j] - centroid[k][j]) * (f[j] - centroid[k][j]);
      if (best < 0 || dist < best_d) best = k, best_d = dist;
    }
    correct += best == d.test.labels[i];
  }
  EXPECT_GT(correct / double(d.test.size), 0.9) << correct << " of " << d.test.size;
}

}  // namespace
}  // namespace dtrain::data
