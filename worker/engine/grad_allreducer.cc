#include "worker/engine/grad_allreducer.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "common/half.h"

namespace dtrain::engine {
namespace {

BucketPlan Plan(const std::vector<GradTensor>& tensors, double bucket_mb) {
  std::vector<BucketTensor> bt;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (i > 0 && tensors[i - 1].offset + tensors[i - 1].size != tensors[i].offset) {
      Fail(ErrorCode::kInvalidArgument, "GradAllreducer: gradient tensors are not contiguous");
    }
    bt.push_back({tensors[i].offset, tensors[i].size, 0});
  }
  return PlanBuckets(bt, bucket_mb, {sizeof(float)});
}

}  // namespace

GradAllreducer::GradAllreducer(comm::Communicator& comm, std::vector<GradTensor> tensors,
                               float* grads, double bucket_mb, comm::DType wire_dtype,
                               double timeout_seconds, const std::atomic<bool>* abort)
    : comm_(comm),
      tensors_(std::move(tensors)),
      grads_(grads),
      dtype_(wire_dtype),
      timeout_(timeout_seconds),
      abort_(abort),
      plan_(Plan(tensors_, bucket_mb)),
      tracker_(plan_) {
  size_t largest = 0;
  for (const Bucket& b : plan_.buckets) largest = std::max(largest, b.count);
  if (dtype_ == comm::DType::kF16) half_.resize(largest);
  thread_ = std::thread([this] { Loop(); });
}

GradAllreducer::~GradAllreducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void GradAllreducer::BeginStep() {
  std::lock_guard<std::mutex> lock(mu_);
  if (error_) std::rethrow_exception(error_);
  tracker_.BeginStep();
  done_ = 0;
  comm_seconds_ = 0;
}

void GradAllreducer::OnTensorReady(int t) {
  std::lock_guard<std::mutex> lock(mu_);
  const int b = tracker_.OnTensorReady(t);
  if (b >= 0) {
    queue_.push_back(b);
    cv_.notify_all();
  }
}

double GradAllreducer::WaitAll() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || done_ == static_cast<int>(plan_.buckets.size()); });
  if (error_) std::rethrow_exception(error_);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void GradAllreducer::Loop() {
  for (;;) {
    int b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      b = queue_.front();
      queue_.pop_front();
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::exception_ptr err;
    try {
      Reduce(plan_.buckets[b]);
    } catch (...) {
      err = std::current_exception();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(mu_);
    comm_seconds_ += dt;
    if (err && !error_) error_ = err;
    ++done_;
    cv_.notify_all();
  }
}

void GradAllreducer::Reduce(const Bucket& b) {
  const Deadline deadline = Deadline::AfterSeconds(timeout_, abort_);
  float* data = grads_ + b.offset;
  if (dtype_ == comm::DType::kF32) {
    comm_.AllReduce(data, b.count, comm::DType::kF32, comm::ReduceOp::kAvg, deadline);
    return;
  }
  FloatToHalfN(data, half_.data(), b.count);
  comm_.AllReduce(half_.data(), b.count, comm::DType::kF16, comm::ReduceOp::kAvg, deadline);
  HalfToFloatN(half_.data(), data, b.count);
}

}  // namespace dtrain::engine
