// Deadline: every wait in dtrain has one. A point on the steady clock, plus an
// optional abort flag that lets another thread cut the wait short (a job
// cancelled by the coordinator, a peer declared dead).
#pragma once

#include <atomic>
#include <chrono>

namespace dtrain {

using Clock = std::chrono::steady_clock;

class Deadline {
 public:
  static Deadline After(std::chrono::milliseconds d,
                        const std::atomic<bool>* abort = nullptr) {
    return Deadline(Clock::now() + d, abort);
  }
  static Deadline AfterSeconds(double s, const std::atomic<bool>* abort = nullptr) {
    return Deadline(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(s)),
                    abort);
  }
  Deadline(Clock::time_point at, const std::atomic<bool>* abort = nullptr)
      : at_(at), abort_(abort) {}

  bool Expired() const { return Clock::now() >= at_; }
  bool Aborted() const { return abort_ && abort_->load(std::memory_order_relaxed); }
  Clock::time_point at() const { return at_; }
  double SecondsLeft() const {
    return std::chrono::duration<double>(at_ - Clock::now()).count();
  }
  const std::atomic<bool>* abort_flag() const { return abort_; }

 private:
  Clock::time_point at_;
  const std::atomic<bool>* abort_;
};

}  // namespace dtrain
