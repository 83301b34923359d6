#include "worker/engine/bucket_plan.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace dtrain::engine {

BucketPlan PlanBuckets(const std::vector<BucketTensor>& tensors, double bucket_mb,
                       const std::vector<size_t>& elem_bytes) {
  if (tensors.empty()) Fail(ErrorCode::kInvalidArgument, "bucket plan: no gradient tensors");
  if (!(bucket_mb > 0)) {
    Fail(ErrorCode::kInvalidArgument, "bucket plan: allreduce.bucket_mb must be > 0, got " + std::to_string(bucket_mb));
  }
  const int groups = int(elem_bytes.size());
  std::vector<long long> last_end(groups, -1);  // end of the previous member, per group
  for (size_t i = 0; i < tensors.size(); ++i) {
    const BucketTensor& t = tensors[i];
    if (t.group < 0 || t.group >= groups || elem_bytes[t.group] == 0) {
      Fail(ErrorCode::kInvalidArgument, "bucket plan: tensor " + std::to_string(i) + " is in group " +
                                            std::to_string(t.group) + "; groups are 0.." + std::to_string(groups - 1));
    }
    if (static_cast<long long>(t.offset) < last_end[t.group]) {
      Fail(ErrorCode::kInvalidArgument, "bucket plan: tensor " + std::to_string(i) + " (offset " +
                                            std::to_string(t.offset) + ") overlaps or precedes the tensor before it in group " +
                                            std::to_string(t.group));
    }
    last_end[t.group] = static_cast<long long>(t.offset + t.size);
  }
  struct Open {
    Bucket b;
    size_t count = 0;  // member elements (without gaps)
  };
  std::vector<Open> open(groups);
  std::vector<Bucket> closed;
  auto close = [&](int g) {
    Bucket& b = open[g].b;
    const BucketTensor& lo = tensors[b.tensors.back()];
    const BucketTensor& hi = tensors[b.tensors.front()];
    b.offset = lo.offset;
    b.count = hi.offset + hi.size - lo.offset;
    closed.push_back(std::move(b));
    open[g] = Open{};
  };
  for (int i = int(tensors.size()) - 1; i >= 0; --i) {
    const int g = tensors[i].group;
    const size_t limit = std::max<size_t>(1, static_cast<size_t>(bucket_mb * 1048576.0 / double(elem_bytes[g])));
    open[g].b.group = g;
    open[g].b.tensors.push_back(i);
    open[g].count += tensors[i].size;
    if (open[g].count >= limit) close(g);
  }
  for (int g = 0; g < groups; ++g)
    if (!open[g].b.tensors.empty()) close(g);
  // Completion order: a bucket is complete when its lowest tensor is ready.
  std::stable_sort(closed.begin(), closed.end(),
                   [](const Bucket& a, const Bucket& b) { return a.tensors.back() > b.tensors.back(); });
  BucketPlan plan;
  plan.buckets = std::move(closed);
  plan.bucket_of.assign(tensors.size(), -1);
  for (size_t b = 0; b < plan.buckets.size(); ++b)
    for (int t : plan.buckets[b].tensors) plan.bucket_of[t] = int(b);
  return plan;
}

BucketTracker::BucketTracker(const BucketPlan& plan) : plan_(plan) { BeginStep(); }

void BucketTracker::BeginStep() {
  pending_.resize(plan_.buckets.size());
  for (size_t b = 0; b < plan_.buckets.size(); ++b) pending_[b] = int(plan_.buckets[b].tensors.size());
  seen_.assign(plan_.bucket_of.size(), 0);
  completed_ = 0;
}

int BucketTracker::OnTensorReady(int t) {
  if (t < 0 || t >= int(seen_.size())) {
    Fail(ErrorCode::kInternal, "gradient of tensor " + std::to_string(t) + " reported; the model has " +
                                   std::to_string(seen_.size()));
  }
  if (seen_[t]) Fail(ErrorCode::kInternal, "gradient of tensor " + std::to_string(t) + " reported twice in one step");
  seen_[t] = 1;
  const int b = plan_.bucket_of[t];
  if (--pending_[b] > 0) return -1;
  ++completed_;
  return b;
}

}  // namespace dtrain::engine
