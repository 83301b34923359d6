// BatchLoader: this rank's training batches, in order (epoch, step), as float
// NCHW + int32 labels, prepared ahead by ONE background thread into a bounded
// queue (depth `prefetch_depth`). Batch (e, s) holds Sampler(N, W, r, B,
// seed).Batch(e, s) in that order, each image augmented with
// DrawCropFlip(augment, seed, e, index) — identical to computing it directly.
// The sequence runs on across epochs without end; the caller stops asking.
// Next() waits at most until its deadline (Error kDeadlineExceeded; kAborted
// if the deadline's abort flag is set); an error in the thread is rethrown by
// Next(). The destructor stops the thread promptly, even mid-epoch.
//
// EvalIterator: this rank's share of the test set (EvalShare: i % W == r),
// normalised only, in batches of at most `batch` (the last one may be
// shorter). The shares of all ranks cover every test image exactly once, so
// summing correct counts over ranks gives the exact test accuracy.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/deadline.h"
#include "common/job_spec.h"
#include "worker/data/batch.h"
#include "worker/data/dataset.h"
#include "worker/data/sampler.h"

namespace dtrain::data {

struct LoaderOptions {
  int world_size = 1;
  int rank = 0;
  int batch_per_rank = 128;
  uint64_t seed = 0;
  AugmentSpec augment;
  int prefetch_depth = 3;  // 1..16
  int64_t start_epoch = 0;  // where the sequence starts (resume)
  int64_t start_step = 0;
};

// Fills out->images or out->pixels, labels and the shape for the `count`
// data-set indices of one batch of `epoch` (the loader sets epoch, step, size
// and indices). Called on the loader's thread, one batch at a time.
using FillBatch = std::function<void(int64_t epoch, const int64_t* indices, int64_t count, Batch* out)>;

class BatchLoader final : public TrainStream {
 public:
  // Error(kInvalidArgument) on bad options or a data set smaller than one
  // global batch (world_size · batch_per_rank images).
  BatchLoader(std::shared_ptr<const Dataset> train, const LoaderOptions& options);
  // The same order and queue over any `n` records, filled by `fill`.
  BatchLoader(int64_t n, const LoaderOptions& options, FillBatch fill);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t steps_per_epoch() const override { return sampler_.steps_per_epoch(); }

  // The next batch in (epoch, step) order.
  Batch Next(const Deadline& deadline) override;

 private:
  void Start();
  void Run();

  std::shared_ptr<const Dataset> data_;
  FillBatch fill_;
  LoaderOptions options_;
  Sampler sampler_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool stop_ = false;
  std::exception_ptr error_;
  int64_t next_epoch_, next_step_;  // of the batch Next() returns next
  std::thread thread_;
};

class EvalIterator final : public EvalStream {
 public:
  EvalIterator(std::shared_ptr<const Dataset> test, int world_size, int rank, int batch);

  int64_t size() const override { return static_cast<int64_t>(share_.size()); }  // images in this share

  // Fills `out` with the next batch; false once the share is exhausted.
  bool Next(Batch* out) override;

 private:
  std::shared_ptr<const Dataset> data_;
  std::vector<int64_t> share_;
  int batch_;
  int64_t pos_ = 0, step_ = 0;
};

}  // namespace dtrain::data
