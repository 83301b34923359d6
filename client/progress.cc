#include "client/progress.h"

#include <algorithm>
#include <cmath>

#include "client/format.h"

namespace dtrain::cli {

std::string RenderProgressBar(int64_t done, int64_t total, int width) {
  const int inner = std::max(width - 2, 1);
  int filled = 0;
  if (total > 0) {
    done = std::clamp<int64_t>(done, 0, total);
    filled = static_cast<int>(static_cast<double>(done) / static_cast<double>(total) * inner);
  }
  std::string bar = "[";
  for (int i = 0; i < inner; ++i) {
    if (i < filled) {
      bar += '=';
    } else if (i == filled && total > 0 && done < total) {
      bar += '>';
    } else {
      bar += ' ';
    }
  }
  return bar + "]";
}

std::string RenderProgressLine(const ProgressView& v, bool with_bar, int max_width) {
  std::string line = v.state;
  const bool started = v.step > 0 || v.total_steps > 0;
  if (started) {
    if (with_bar && v.total_steps > 0) line += " " + RenderProgressBar(v.step, v.total_steps, 22);
    line += " step " + std::to_string(v.step);
    if (v.total_steps > 0) {
      line += "/" + std::to_string(v.total_steps) + " " +
              FormatFixed(100.0 * static_cast<double>(std::min(v.step, v.total_steps)) /
                              static_cast<double>(v.total_steps),
                          1) +
              "%";
    }
    line += " | epoch " + std::to_string(v.epoch);
    if (v.step > 0) line += " | loss " + FormatFixed(v.loss, 4);
    if (v.eval_accuracy >= 0) line += " | acc " + FormatPercent(v.eval_accuracy);
    if (v.images_per_second > 0) line += " | " + FormatRate(v.images_per_second) + " img/s";
    if (v.eta_seconds >= 0) line += " | ETA " + FormatDuration(v.eta_seconds);
  }
  if (!v.message.empty()) line += (started ? " | " : " ") + v.message;
  if (max_width > 0 && static_cast<int>(line.size()) > max_width) {
    line.resize(static_cast<size_t>(std::max(max_width, 1)));
  }
  return line;
}

void EtaEstimator::Observe(double now, int64_t step) {
  if (!have_first_ || step < s_) {
    have_first_ = true;
    t0_ = t_ = now;
    s0_ = s_ = step;
    return;
  }
  t_ = now;
  s_ = step;
}

double EtaEstimator::SecondsLeft(int64_t total) const {
  if (!have_first_ || s_ <= s0_ || t_ <= t0_ || total <= 0) return -1;
  const double rate = static_cast<double>(s_ - s0_) / (t_ - t0_);
  return static_cast<double>(std::max<int64_t>(total - s_, 0)) / rate;
}

bool LineThrottle::Allow(double now, const std::string& state) {
  if (printed_ && state == last_state_ && now - last_ < interval_) return false;
  printed_ = true;
  last_ = now;
  last_state_ = state;
  return true;
}

}  // namespace dtrain::cli
