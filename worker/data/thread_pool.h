// ThreadPool: `threads` long-lived threads running one parallel loop at a
// time. ParallelFor(n, fn) calls fn(i) once for every i in [0, n) — the caller's
// thread takes part — and returns when all calls have returned; the first
// exception thrown by fn is rethrown to the caller (the remaining items still
// run). Items are handed out one by one from an atomic counter, so uneven
// costs (large and small JPEGs) balance by themselves. One loop at a time:
// callers on several threads (the training loader, an evaluation) take
// turns; fn must not call ParallelFor on the same pool.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dtrain::data {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads >= 1 (the caller counts as one)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void Work();
  void Drain();  // runs items of the current loop until none is left

  std::mutex call_mu_;  // held by the caller whose loop runs
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, next_ = 0, finished_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace dtrain::data
