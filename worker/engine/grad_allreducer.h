// GradAllreducer: bucketed gradient averaging overlapped with backward.
//
// Gradient tensors (contiguous in one flat fp32 buffer, in forward order) are
// grouped into buckets of at least `bucket_mb` MiB by PlanBuckets
// (bucket_plan.h, one group), so the first bucket holds the last layers,
// whose gradients backward produces first. Backward reports each tensor as ready (OnTensorReady); when a bucket's last
// tensor arrives it goes to the communication thread, which averages it over
// all ranks (fp16 on the wire when asked: converted, reduced with fp32
// accumulation, converted back) while backward continues. WaitAll() blocks
// until every bucket of the step is reduced and returns the exposed wait.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "worker/comm/communicator.h"
#include "worker/engine/bucket_plan.h"

namespace dtrain::engine {

struct GradTensor {
  size_t offset = 0;  // elements into the flat gradient buffer
  size_t size = 0;
};

class GradAllreducer {
 public:
  GradAllreducer(comm::Communicator& comm, std::vector<GradTensor> tensors, float* grads,
                 double bucket_mb, comm::DType wire_dtype, double timeout_seconds,
                 const std::atomic<bool>* abort);
  ~GradAllreducer();
  GradAllreducer(const GradAllreducer&) = delete;
  GradAllreducer& operator=(const GradAllreducer&) = delete;

  void BeginStep();
  void OnTensorReady(int tensor_index);  // from the backward thread
  // Waits for every bucket of this step; rethrows a communication error.
  // Returns the seconds spent waiting (exposed communication).
  double WaitAll();

  size_t num_buckets() const { return plan_.buckets.size(); }
  // Tensor index range [first, last] of bucket b (b = 0 holds the last layers).
  std::pair<int, int> bucket_tensors(size_t b) const {
    return {plan_.buckets[b].tensors.back(), plan_.buckets[b].tensors.front()};
  }
  double comm_seconds() const { return comm_seconds_; }  // reduce time of the last step

 private:
  void Loop();
  void Reduce(const Bucket& b);

  comm::Communicator& comm_;
  std::vector<GradTensor> tensors_;
  float* grads_;
  comm::DType dtype_;
  double timeout_;
  const std::atomic<bool>* abort_;
  BucketPlan plan_;
  BucketTracker tracker_;
  std::vector<uint16_t> half_;  // fp16 staging

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;
  int done_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  double comm_seconds_ = 0;
  std::thread thread_;
};

}  // namespace dtrain::engine
