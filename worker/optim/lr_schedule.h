// LrSchedule: the learning rate at every step, from ScheduleSpec.
//
// W = round(warmup_epochs · steps_per_epoch) warmup steps, T = total_steps.
//   warmup, step < W:  lr = base_lr · (step + 1) / W     (base/W at step 0, base at W-1)
//   after, step >= W:  t = (step - W + 1) / (T - W), clamped to [0, 1]
//                      (t = 1 exactly at the last step T-1)
//     poly:    end + (base - end) · (1 - t)^poly_power
//     cosine:  end + (base - end) · (1 + cos(π t)) / 2
//     step:    base · step_gamma^k, k = #{e in step_epochs : step >= round(e · steps_per_epoch)}
//     none:    base
// Steps past T keep the value of the last step. Pure function, no state.
#pragma once

#include <cstdint>

#include "common/job_spec.h"

namespace dtrain::optim {

class LrSchedule {
 public:
  // Error(kInvalidArgument) for an unknown decay or a negative base_lr/warmup.
  explicit LrSchedule(const ScheduleSpec& spec);

  // Needs steps_per_epoch >= 1 and total_steps >= 1 (Error kInvalidArgument).
  double lr(int64_t step, int64_t steps_per_epoch, int64_t total_steps) const;

  const ScheduleSpec& spec() const { return spec_; }

 private:
  enum class Decay { kPoly, kCosine, kStep, kNone };
  ScheduleSpec spec_;
  Decay decay_;
};

}  // namespace dtrain::optim
