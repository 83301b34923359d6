#include "worker/trainer/grad_allreducer.h"

#include <chrono>

#include "common/error.h"
#include "common/half.h"

namespace dtrain::trainer {

GradAllreducer::GradAllreducer(comm::Communicator& comm, std::vector<GradTensor> tensors,
                               float* grads, double bucket_mb, comm::DType wire_dtype,
                               double timeout_seconds, const std::atomic<bool>* abort)
    : comm_(comm),
      tensors_(std::move(tensors)),
      grads_(grads),
      dtype_(wire_dtype),
      timeout_(timeout_seconds),
      abort_(abort) {
  if (tensors_.empty()) Fail(ErrorCode::kInvalidArgument, "GradAllreducer: no tensors");
  const size_t limit = static_cast<size_t>(bucket_mb * 1048576.0 / sizeof(float));
  bucket_of_.assign(tensors_.size(), -1);
  size_t largest = 0;
  for (int i = static_cast<int>(tensors_.size()) - 1; i >= 0;) {
    Bucket b;
    b.last = i;
    size_t count = 0;
    while (i >= 0 && (count == 0 || count < limit)) {
      if (i + 1 < static_cast<int>(tensors_.size()) && tensors_[i].offset + tensors_[i].size != tensors_[i + 1].offset) {
        Fail(ErrorCode::kInvalidArgument, "GradAllreducer: gradient tensors are not contiguous");
      }
      count += tensors_[i].size;
      bucket_of_[i] = static_cast<int>(buckets_.size());
      --i;
    }
    b.first = i + 1;
    b.offset = tensors_[b.first].offset;
    b.count = count;
    largest = std::max(largest, count);
    buckets_.push_back(b);
  }
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
  for (Bucket& b : buckets_) b.pending = b.last - b.first + 1;
  done_ = 0;
  comm_seconds_ = 0;
}

void GradAllreducer::OnTensorReady(int t) {
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& b = buckets_[bucket_of_[t]];
  if (--b.pending == 0) {
    queue_.push_back(bucket_of_[t]);
    cv_.notify_all();
  }
}

double GradAllreducer::WaitAll() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return error_ || done_ == static_cast<int>(buckets_.size()); });
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
      Reduce(buckets_[b]);
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

}  // namespace dtrain::trainer
