// BucketPlan: how gradient tensors are grouped into allreduce buckets, shared
// by the CPU engine's GradAllreducer and the CUDA engine's event-driven
// overlap (the paper's "adjusting the data size of communication").
//
// Tensors come in forward order; each belongs to a group (a separate flat
// gradient buffer with its own element size: the CUDA engine keeps conv/FC
// weight gradients in fp16 and BN/bias gradients in fp32) at an offset inside
// that group's buffer (offsets increase with the index inside a group; gaps
// are padding and are reduced with the bucket). Buckets never mix groups.
// Walking tensors from the last to the first, a group's open bucket closes as
// soon as it holds at least bucket_mb MiB, so the first buckets hold the last
// layers, whose gradients backward produces first. Buckets are numbered in
// the order backward completes them (by their lowest tensor index, highest
// first): bucket 0 is ready first.
//
// BucketTracker counts, per step, the tensors reported ready (backward
// reports each exactly once, in any order) and says which bucket a report
// completed.
#pragma once

#include <cstddef>
#include <vector>

namespace dtrain::engine {

struct BucketTensor {
  size_t offset = 0;  // elements into its group's flat buffer
  size_t size = 0;
  int group = 0;
};

struct Bucket {
  int group = 0;
  std::vector<int> tensors;  // member tensor indices, decreasing
  size_t offset = 0;         // first element in the group's buffer
  size_t count = 0;          // elements, from offset to the end of the last member
};

struct BucketPlan {
  std::vector<Bucket> buckets;  // in completion order
  std::vector<int> bucket_of;   // tensor -> bucket
};

// elem_bytes[g]: bytes per element of group g (its size sets the number of
// groups). Throws Error(kInvalidArgument) for no tensors, bucket_mb <= 0, a
// group out of range, overlapping or decreasing offsets inside a group.
BucketPlan PlanBuckets(const std::vector<BucketTensor>& tensors, double bucket_mb,
                       const std::vector<size_t>& elem_bytes);

class BucketTracker {
 public:
  explicit BucketTracker(const BucketPlan& plan);
  void BeginStep();
  // Returns the bucket whose last pending tensor t was, else -1. A tensor
  // reported twice in one step, or out of range, throws kInternal.
  int OnTensorReady(int t);
  int completed() const { return completed_; }

 private:
  const BucketPlan& plan_;
  std::vector<int> pending_;
  std::vector<char> seen_;
  int completed_ = 0;
};

}  // namespace dtrain::engine
