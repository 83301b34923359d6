#include "worker/data/sampler.h"

#include <numeric>
#include <string>

#include "common/error.h"
#include "worker/data/random.h"

namespace dtrain::data {
namespace {
constexpr uint64_t kShuffleTag = 0x5348'5546'464c'4531ull;
}

int64_t StepsPerEpoch(int64_t n, int world, int batch) {
  if (n < 0 || world < 1 || batch < 1)
    Fail(ErrorCode::kInvalidArgument, "StepsPerEpoch: need n >= 0, world >= 1, batch >= 1; got n=" +
                                          std::to_string(n) + " world=" + std::to_string(world) +
                                          " batch=" + std::to_string(batch));
  return n / (int64_t{world} * batch);
}

std::vector<int64_t> EpochPermutation(uint64_t seed, int64_t epoch, int64_t n) {
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  Rng rng(Hash(seed, kShuffleTag, static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

Sampler::Sampler(int64_t n, int world, int rank, int batch, uint64_t seed)
    : n_(n), world_(world), rank_(rank), batch_(batch), seed_(seed) {
  if (n < 1 || world < 1 || rank < 0 || rank >= world || batch < 1)
    Fail(ErrorCode::kInvalidArgument, "Sampler: need n >= 1, world >= 1, 0 <= rank < world, batch >= 1; got n=" +
                                          std::to_string(n) + " world=" + std::to_string(world) +
                                          " rank=" + std::to_string(rank) + " batch=" + std::to_string(batch));
  steps_ = StepsPerEpoch(n, world, batch);
}

std::vector<int64_t> Sampler::EpochIndices(int64_t epoch) const {
  const std::vector<int64_t> perm = EpochPermutation(seed_, epoch, n_);
  const int64_t global = int64_t{world_} * batch_;
  std::vector<int64_t> out;
  out.reserve(steps_ * batch_);
  for (int64_t s = 0; s < steps_; ++s) {
    const int64_t begin = s * global + int64_t{rank_} * batch_;
    out.insert(out.end(), perm.begin() + begin, perm.begin() + begin + batch_);
  }
  return out;
}

std::vector<int64_t> Sampler::Batch(int64_t epoch, int64_t step) const {
  if (step < 0 || step >= steps_)
    Fail(ErrorCode::kInvalidArgument, "Sampler::Batch: step " + std::to_string(step) + " outside [0, " +
                                          std::to_string(steps_) + ")");
  const std::vector<int64_t> perm = EpochPermutation(seed_, epoch, n_);
  const int64_t begin = step * world_ * int64_t{batch_} + int64_t{rank_} * batch_;
  return std::vector<int64_t>(perm.begin() + begin, perm.begin() + begin + batch_);
}

std::vector<int64_t> EvalShare(int64_t n, int world, int rank) {
  if (n < 0 || world < 1 || rank < 0 || rank >= world)
    Fail(ErrorCode::kInvalidArgument, "EvalShare: need n >= 0 and 0 <= rank < world; got n=" + std::to_string(n) +
                                          " world=" + std::to_string(world) + " rank=" + std::to_string(rank));
  std::vector<int64_t> out;
  out.reserve(n / world + 1);
  for (int64_t i = rank; i < n; i += world) out.push_back(i);
  return out;
}

}  // namespace dtrain::data
