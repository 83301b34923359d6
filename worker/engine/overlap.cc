#include "worker/engine/overlap.h"

#include <string>

#include "common/error.h"

namespace dtrain::engine {

OverlapScheduler::OverlapScheduler(BucketPlan plan, BucketLauncher& launcher)
    : plan_(std::move(plan)), tracker_(plan_), launcher_(launcher) {}

void OverlapScheduler::BeginStep() { tracker_.BeginStep(); }

void OverlapScheduler::OnTensorReady(int t) {
  const int b = tracker_.OnTensorReady(t);
  if (b >= 0) launcher_.Launch(b);
}

double OverlapScheduler::EndStep() {
  if (tracker_.completed() != int(plan_.buckets.size())) {
    Fail(ErrorCode::kInternal, "gradient overlap: only " + std::to_string(tracker_.completed()) + " of " +
                                   std::to_string(plan_.buckets.size()) +
                                   " buckets were complete at the end of backward");
  }
  return launcher_.WaitAll();
}

}  // namespace dtrain::engine
