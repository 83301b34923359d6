// Sampler: which training images rank r uses at (epoch, step).
//
// Every epoch has ONE global permutation of [0, N), a pure function of
// (seed, epoch). Global batch s is perm[s·W·B, (s+1)·W·B) (W ranks, B images
// per rank); rank r takes the r-th B-slice of it, perm[s·W·B + r·B, ... + B).
// Hence:
//  * ranks are disjoint within an epoch, and all agree without talking;
//  * every rank has steps_per_epoch = floor(N / (W·B)) steps (the remainder
//    of the permutation is dropped, a different remainder every epoch);
//  * data-parallel equivalence: the union over ranks of the step-s batches
//    equals, as a set, the step-s batch of a single rank with batch W·B
//    (same seed, same epoch) — the global batch does not depend on W.
// Works for any world size 1..2048 (and beyond); N, W, B must be positive.
#pragma once

#include <cstdint>
#include <vector>

namespace dtrain::data {

// floor(n / (world · batch)); 0 when the data set is smaller than one global batch.
int64_t StepsPerEpoch(int64_t n, int world, int batch);

// The global permutation of [0, n) for (seed, epoch): a Fisher–Yates shuffle
// driven by a counter-based generator (bit-exact on every platform).
std::vector<int64_t> EpochPermutation(uint64_t seed, int64_t epoch, int64_t n);

class Sampler {
 public:
  // Throws Error(kInvalidArgument) unless n > 0, 1 <= world, 0 <= rank < world, batch > 0.
  Sampler(int64_t n, int world, int rank, int batch, uint64_t seed);

  int64_t steps_per_epoch() const { return steps_; }
  int batch() const { return batch_; }

  // This rank's indices for the whole epoch, steps_per_epoch()·batch() of
  // them; step s is [s·batch, (s+1)·batch). O(N) — call once per epoch.
  std::vector<int64_t> EpochIndices(int64_t epoch) const;

  // This rank's batch at (epoch, step); step < steps_per_epoch(). O(N).
  std::vector<int64_t> Batch(int64_t epoch, int64_t step) const;

 private:
  int64_t n_;
  int world_, rank_, batch_;
  uint64_t seed_;
  int64_t steps_;
};

// The evaluation share of `rank`: test indices i with i % world == rank, in
// increasing order. Over all ranks, every index in [0, n) appears exactly once
// (shares differ in size by at most one; nothing is dropped).
std::vector<int64_t> EvalShare(int64_t n, int world, int rank);

}  // namespace dtrain::data
