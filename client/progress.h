// Live progress for `dtrain watch` and `submit --wait`: the one-line view of a
// job (with or without a bar), an ETA estimated from the steps this client has
// seen go by, and the throttle for plain (non-terminal) output.
// Pure: callers pass the time in, so everything here is unit-tested.
#pragma once

#include <cstdint>
#include <string>

namespace dtrain::cli {

// What the progress line shows; filled from a Job by render.h.
struct ProgressView {
  std::string state;              // "QUEUED", "RUNNING", ...
  int64_t step = 0;
  int64_t total_steps = 0;        // 0: unknown
  int epoch = 0;
  double loss = 0;
  double eval_accuracy = -1;      // < 0: not evaluated yet
  double images_per_second = 0;
  double eta_seconds = -1;        // < 0: unknown
  std::string message;            // free-form ("waiting for 4 workers")
};

// "[=========>          ]": `width` characters including the brackets.
// total <= 0 renders an empty bar; done is clamped to [0, total].
std::string RenderProgressBar(int64_t done, int64_t total, int width);

// One line, e.g.
//   RUNNING [=====>    ] 1200/4680 25.6% | epoch 3 | loss 0.4321 | acc 88.12% | 12.3k img/s | ETA 4m12s
// with_bar=false drops the bar (plain log lines). max_width > 0 cuts the line
// to that many characters (the terminal's width) so redrawing with '\r' works.
std::string RenderProgressLine(const ProgressView& v, bool with_bar, int max_width = 0);

// Estimates time left from the (time, step) pairs observed by this client, so
// it needs neither the global batch nor clocks that agree with the
// coordinator. The rate is taken over a sliding start point that is reset when
// the step goes backwards (a restarted job).
class EtaEstimator {
 public:
  void Observe(double now_seconds, int64_t step);
  // Seconds until `total` steps, or -1 until two distinct steps were seen.
  double SecondsLeft(int64_t total) const;

 private:
  bool have_first_ = false;
  double t0_ = 0, t_ = 0;
  int64_t s0_ = 0, s_ = 0;
};

// Plain output prints at most one line per `interval` seconds, but always on a
// state change (and the first time).
class LineThrottle {
 public:
  explicit LineThrottle(double interval_seconds = 1.0) : interval_(interval_seconds) {}
  bool Allow(double now_seconds, const std::string& state);

 private:
  double interval_;
  bool printed_ = false;
  double last_ = 0;
  std::string last_state_;
};

}  // namespace dtrain::cli
