// Dynamic loss scaling for mixed-precision training (host side; the CPU
// reference of kernels/cuda/loss_scale.h, and the scaler both engines use).
//
// UnscaleAndCheck: out[i] = float(in[i]) * inv_scale (one fp32 multiply, round
// to nearest even); returns true if any out[i] is inf or NaN. out may alias in
// (float input). fp16 input is IEEE half bits (common/half.h).
//
// DynamicLossScaler (PyTorch GradScaler / Apex semantics): the loss is
// multiplied by scale() before backward; after backward the gradients are
// unscaled with inv_scale() and checked. Update(found_inf) then:
//   found_inf: scale = max(scale * backoff_factor, min_scale), the run of good
//              steps restarts; returns true: SKIP this step's update.
//   otherwise: after growth_interval consecutive good steps,
//              scale = min(scale * growth_factor, max_scale); returns false.
// Defaults: init 2^16, growth 2, backoff 0.5, interval 2000, min 1, max 2^24.
// Bad options throw kInvalidArgument naming the field.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/half.h"

namespace dtrain::cpu {

bool UnscaleAndCheck(const float* in, float* out, size_t n, float inv_scale);
bool UnscaleAndCheck(const half_bits* in, float* out, size_t n, float inv_scale);

struct LossScalerOptions {
  float init_scale = 65536.0f;
  float growth_factor = 2.0f;
  float backoff_factor = 0.5f;
  int64_t growth_interval = 2000;
  float min_scale = 1.0f;
  float max_scale = 16777216.0f;  // 2^24
  void Check() const;
};

class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(const LossScalerOptions& options = {});

  float scale() const { return scale_; }
  float inv_scale() const { return 1.0f / scale_; }
  // Returns true when the step must be skipped (found_inf).
  bool Update(bool found_inf);

  int64_t good_steps() const { return good_steps_; }       // since the last change
  int64_t skipped_steps() const { return skipped_steps_; }  // in total
  const LossScalerOptions& options() const { return opt_; }

 private:
  LossScalerOptions opt_;
  float scale_;
  int64_t good_steps_ = 0;
  int64_t skipped_steps_ = 0;
};

}  // namespace dtrain::cpu
