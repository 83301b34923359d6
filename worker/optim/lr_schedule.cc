#include "worker/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "common/error.h"

namespace dtrain::optim {

LrSchedule::LrSchedule(const ScheduleSpec& spec) : spec_(spec) {
  if (spec.decay == "poly") decay_ = Decay::kPoly;
  else if (spec.decay == "cosine") decay_ = Decay::kCosine;
  else if (spec.decay == "step") decay_ = Decay::kStep;
  else if (spec.decay == "none") decay_ = Decay::kNone;
  else Fail(ErrorCode::kInvalidArgument, "schedule.decay: '" + spec.decay + "'; allowed: poly, cosine, step, none");
  if (!(spec.base_lr >= 0) || !(spec.warmup_epochs >= 0) || !(spec.end_lr >= 0))
    Fail(ErrorCode::kInvalidArgument, "schedule: base_lr, end_lr and warmup_epochs must be >= 0");
}

double LrSchedule::lr(int64_t step, int64_t steps_per_epoch, int64_t total_steps) const {
  if (steps_per_epoch < 1 || total_steps < 1)
    Fail(ErrorCode::kInvalidArgument, "LrSchedule::lr: need steps_per_epoch >= 1 and total_steps >= 1, got " +
                                          std::to_string(steps_per_epoch) + " and " + std::to_string(total_steps));
  step = std::clamp<int64_t>(step, 0, total_steps - 1);
  const double base = spec_.base_lr, end = spec_.end_lr;
  const auto warmup = static_cast<int64_t>(std::llround(spec_.warmup_epochs * static_cast<double>(steps_per_epoch)));
  if (step < warmup) return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double t = std::clamp(static_cast<double>(step - warmup + 1) / static_cast<double>(total_steps - warmup), 0.0, 1.0);
  switch (decay_) {
    case Decay::kPoly:
      return end + (base - end) * std::pow(1.0 - t, spec_.poly_power);
    case Decay::kCosine:
      return end + (base - end) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
    case Decay::kStep: {
      double lr = base;
      for (double e : spec_.step_epochs)
        if (step >= std::llround(e * static_cast<double>(steps_per_epoch))) lr *= spec_.step_gamma;
      return lr;
    }
    case Decay::kNone:
      return base;
  }
  return base;
}

}  // namespace dtrain::optim
