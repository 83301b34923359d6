// Sampler: disjoint shards, coverage, reshuffling, equal step counts and the
// data-parallel equivalence property the trainer relies on.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "worker/data/sampler.h"

namespace dtrain::data {
namespace {

TEST(SamplerTest, PermutationIsAPermutationAndReshuffles) {
  const int64_t n = 1000;
  std::vector<int64_t> p0 = EpochPermutation(42, 0, n), p1 = EpochPermutation(42, 1, n);
  std::vector<int64_t> sorted = p0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p0, EpochPermutation(42, 0, n));  // a pure function of (seed, epoch)
  EXPECT_NE(p0, p1);
  EXPECT_NE(p0, EpochPermutation(43, 0, n));
}

TEST(SamplerTest, PermutationIsRoughlyUniform) {
  // Over 3000 epochs, each of 10 values lands in position 0 about 300 times.
  std::vector<int> first(10, 0);
  for (int e = 0; e < 3000; ++e) ++first[EpochPermutation(7, e, 10)[0]];
  for (int v = 0; v < 10; ++v) {
    EXPECT_GT(first[v], 200) << v;
    EXPECT_LT(first[v], 400) << v;
  }
}

TEST(SamplerTest, ShardsAreDisjointCoveringAndEqualSized) {
  const int64_t n = 1003;
  const int batch = 7;
  for (int world : {1, 2, 3, 4}) {
    const int64_t steps = StepsPerEpoch(n, world, batch);
    EXPECT_LE(steps * world * batch, n);
    EXPECT_GT((steps + 1) * world * batch, n);
    for (int64_t epoch : {0, 1}) {
      std::set<int64_t> seen;
      for (int rank = 0; rank < world; ++rank) {
        Sampler s(n, world, rank, batch, 5);
        EXPECT_EQ(s.steps_per_epoch(), steps);
        std::vector<int64_t> idx = s.EpochIndices(epoch);
        ASSERT_EQ(static_cast<int64_t>(idx.size()), steps * batch);
        for (int64_t step = 0; step < steps; ++step) {
          std::vector<int64_t> b = s.Batch(epoch, step);
          EXPECT_TRUE(std::equal(b.begin(), b.end(), idx.begin() + step * batch));
        }
        for (int64_t i : idx) {
          ASSERT_GE(i, 0);
          ASSERT_LT(i, n);
          EXPECT_TRUE(seen.insert(i).second) << "index " << i << " used twice, world " << world;
        }
      }
      // Everything but the dropped remainder, which is the permutation's tail.
      EXPECT_EQ(static_cast<int64_t>(seen.size()), steps * world * batch);
      std::vector<int64_t> perm = EpochPermutation(5, epoch, n);
      for (int64_t k = steps * world * batch; k < n; ++k) EXPECT_EQ(seen.count(perm[k]), 0u);
    }
    // Reshuffled between epochs.
    Sampler s(n, world, 0, batch, 5);
    EXPECT_NE(s.EpochIndices(0), s.EpochIndices(1));
  }
}

TEST(SamplerTest, UnionOfRankBatchesEqualsSingleRankBatch) {
  const int64_t n = 997;
  const int batch = 5;
  for (int world : {2, 3, 4, 16}) {
    Sampler single(n, 1, 0, world * batch, 11);
    ASSERT_EQ(single.steps_per_epoch(), StepsPerEpoch(n, world, batch));
    for (int64_t epoch : {0, 3}) {
      std::vector<Sampler> ranks;
      for (int r = 0; r < world; ++r) ranks.emplace_back(n, world, r, batch, 11);
      for (int64_t step = 0; step < single.steps_per_epoch(); ++step) {
        std::multiset<int64_t> all;
        for (const Sampler& s : ranks)
          for (int64_t i : s.Batch(epoch, step)) all.insert(i);
        std::vector<int64_t> one = single.Batch(epoch, step);
        EXPECT_EQ(all, std::multiset<int64_t>(one.begin(), one.end())) << "world " << world << " step " << step;
      }
    }
  }
}

TEST(SamplerTest, LargeWorld) {
  const int world = 2048;
  const int64_t n = int64_t{world} * 3 + 100;
  std::set<int64_t> seen;
  for (int r = 0; r < world; ++r) {
    Sampler s(n, world, r, 1, 3);
    ASSERT_EQ(s.steps_per_epoch(), 3);
    for (int64_t i : s.EpochIndices(2)) ASSERT_TRUE(seen.insert(i).second);
  }
  EXPECT_EQ(seen.size(), 3u * world);
}

TEST(SamplerTest, EvalSharesCoverEveryImageOnce) {
  for (int world : {1, 2, 3, 4, 2048}) {
    const int64_t n = 10000;
    std::vector<int> count(n, 0);
    size_t smallest = n, largest = 0;
    for (int r = 0; r < world; ++r) {
      std::vector<int64_t> share = EvalShare(n, world, r);
      smallest = std::min(smallest, share.size());
      largest = std::max(largest, share.size());
      for (int64_t i : share) ++count[i];
    }
    EXPECT_TRUE(std::all_of(count.begin(), count.end(), [](int c) { return c == 1; })) << "world " << world;
    EXPECT_LE(largest - smallest, 1u);
  }
}

TEST(SamplerTest, BadArgumentsAreRejected) {
  EXPECT_THROW(Sampler(0, 1, 0, 1, 0), Error);
  EXPECT_THROW(Sampler(10, 2, 2, 1, 0), Error);
  EXPECT_THROW(Sampler(10, 0, 0, 1, 0), Error);
  EXPECT_THROW(Sampler(10, 1, 0, 0, 0), Error);
  EXPECT_THROW(Sampler(100, 2, 0, 5, 0).Batch(0, 10), Error);
  EXPECT_EQ(StepsPerEpoch(5, 2, 4), 0);
}

}  // namespace
}  // namespace dtrain::data
