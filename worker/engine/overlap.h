// OverlapScheduler: the CUDA engine's allreduce overlap without a
// communication thread. Backward is ENQUEUED on the compute stream by the
// host; right after the kernel that writes a tensor's last gradient is
// enqueued, the engine calls OnTensorReady(t). When that completes a bucket
// (bucket_plan.h), the launcher is told at once, in bucket order as backward
// completes them: it records an event on the compute stream and enqueues the
// bucket's fp16 average on the communication stream behind that event
// (NcclCommunicator::EnqueueAllReduce), so the reduction runs while the GPU
// computes the earlier layers. EndStep() checks every bucket was launched and
// returns the launcher's wait (the exposed communication).
#pragma once

#include "worker/engine/bucket_plan.h"

namespace dtrain::engine {

class BucketLauncher {
 public:
  virtual ~BucketLauncher() = default;
  // Record "bucket b is written" on the compute stream and enqueue its
  // average behind it; returns without waiting for the reduction.
  virtual void Launch(int bucket) = 0;
  // Waits (bounded) for every launched reduction; returns the seconds waited.
  virtual double WaitAll() = 0;
};

class OverlapScheduler {
 public:
  OverlapScheduler(BucketPlan plan, BucketLauncher& launcher);
  void BeginStep();
  void OnTensorReady(int t);
  // Throws kInternal naming the first bucket never launched; else WaitAll().
  double EndStep();
  const BucketPlan& plan() const { return plan_; }

 private:
  BucketPlan plan_;
  BucketTracker tracker_;
  BucketLauncher& launcher_;
};

}  // namespace dtrain::engine
