#include "worker/data/loader.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "worker/data/augment.h"

namespace dtrain::data {
namespace {

Batch EmptyBatch(const Dataset& set, int64_t epoch, int64_t step, int64_t size) {
  Batch b;
  b.epoch = epoch;
  b.step = step;
  b.size = size;
  b.channels = set.channels;
  b.height = set.height;
  b.width = set.width;
  b.images.resize(size * set.image_bytes());
  b.labels.resize(size);
  b.indices.resize(size);
  return b;
}

}  // namespace

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> train, const LoaderOptions& options)
    : data_(std::move(train)),
      options_(options),
      sampler_(data_ ? data_->size : 0, options.world_size, options.rank, options.batch_per_rank, options.seed),
      next_epoch_(options.start_epoch),
      next_step_(options.start_step) {
  const Dataset* set = data_.get();
  const AugmentSpec augment = options.augment;
  const uint64_t seed = options.seed;
  fill_ = [set, augment, seed](int64_t epoch, const int64_t* indices, int64_t count, Batch* b) {
    const int64_t image = set->image_bytes();
    b->channels = set->channels;
    b->height = set->height;
    b->width = set->width;
    b->images.resize(count * image);
    b->labels.resize(count);
    for (int64_t i = 0; i < count; ++i) {
      b->labels[i] = set->labels[indices[i]];
      AugmentImage(*set, indices[i], augment, DrawCropFlip(augment, seed, epoch, indices[i]),
                   b->images.data() + i * image);
    }
  };
  Start();
}

BatchLoader::BatchLoader(int64_t n, const LoaderOptions& options, FillBatch fill)
    : fill_(std::move(fill)),
      options_(options),
      sampler_(n, options.world_size, options.rank, options.batch_per_rank, options.seed),
      next_epoch_(options.start_epoch),
      next_step_(options.start_step) {
  Start();
}

void BatchLoader::Start() {
  const LoaderOptions& options = options_;
  if (options.prefetch_depth < 1 || options.prefetch_depth > 16)
    Fail(ErrorCode::kInvalidArgument,
         "BatchLoader: prefetch_depth " + std::to_string(options.prefetch_depth) + " outside [1, 16]");
  if (sampler_.steps_per_epoch() == 0)
    Fail(ErrorCode::kInvalidArgument, "BatchLoader: the training set has fewer images than one global batch (" +
                                          std::to_string(options.world_size) + " workers × " +
                                          std::to_string(options.batch_per_rank) + ")");
  if (options.start_epoch < 0 || options.start_step < 0 || options.start_step >= sampler_.steps_per_epoch())
    Fail(ErrorCode::kInvalidArgument, "BatchLoader: start (epoch " + std::to_string(options.start_epoch) + ", step " +
                                          std::to_string(options.start_step) + ") outside the schedule");
  thread_ = std::thread([this] { Run(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchLoader::Run() {
  try {
    const int64_t batch = options_.batch_per_rank;
    int64_t epoch = options_.start_epoch, step = options_.start_step;
    std::vector<int64_t> indices = sampler_.EpochIndices(epoch);
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      Batch b;
      b.epoch = epoch;
      b.step = step;
      b.size = batch;
      b.indices.assign(indices.begin() + step * batch, indices.begin() + (step + 1) * batch);
      fill_(epoch, b.indices.data(), batch, &b);
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || static_cast<int>(queue_.size()) < options_.prefetch_depth; });
        if (stop_) return;
        queue_.push_back(std::move(b));
      }
      cv_.notify_all();
      if (++step == sampler_.steps_per_epoch()) {
        step = 0;
        indices = sampler_.EpochIndices(++epoch);
      }
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

Batch BatchLoader::Next(const Deadline& deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  while (queue_.empty()) {
    if (error_) std::rethrow_exception(error_);
    if (deadline.Aborted())
      Fail(ErrorCode::kAborted, "BatchLoader::Next: aborted while waiting for epoch " + std::to_string(next_epoch_) +
                                    " step " + std::to_string(next_step_));
    if (deadline.Expired())
      Fail(ErrorCode::kDeadlineExceeded, "BatchLoader::Next: batch for epoch " + std::to_string(next_epoch_) +
                                             " step " + std::to_string(next_step_) + " not ready by the deadline");
    // With an abort flag, wake at least every 50 ms to look at it.
    Clock::time_point until = deadline.at();
    if (deadline.abort_flag()) until = std::min(until, Clock::now() + std::chrono::milliseconds(50));
    cv_.wait_until(lock, until);
  }
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  if (++next_step_ == sampler_.steps_per_epoch()) {
    next_step_ = 0;
    ++next_epoch_;
  }
  lock.unlock();
  cv_.notify_all();
  return b;
}

EvalIterator::EvalIterator(std::shared_ptr<const Dataset> test, int world_size, int rank, int batch)
    : data_(std::move(test)), batch_(batch) {
  if (!data_ || batch < 1)
    Fail(ErrorCode::kInvalidArgument,
         "EvalIterator: need a test set and batch >= 1, got batch " + std::to_string(batch));
  share_ = EvalShare(data_->size, world_size, rank);
}

bool EvalIterator::Next(Batch* out) {
  if (pos_ >= size()) return false;
  const Dataset& set = *data_;
  const int64_t n = std::min<int64_t>(batch_, size() - pos_);
  *out = EmptyBatch(set, 0, step_++, n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t index = share_[pos_ + i];
    out->indices[i] = index;
    out->labels[i] = set.labels[index];
    NormalizeImage(set, index, out->images.data() + i * set.image_bytes());
  }
  pos_ += n;
  return true;
}

}  // namespace dtrain::data
