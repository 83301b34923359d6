#include "kernels/cpu/loss_scale.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace dtrain::cpu {
namespace {

void CheckInvScale(float inv_scale) {
  if (!(std::isfinite(inv_scale) && inv_scale > 0))
    Fail(ErrorCode::kInvalidArgument,
         "UnscaleAndCheck: inv_scale must be finite and > 0, got " + std::to_string(inv_scale));
}

}  // namespace

bool UnscaleAndCheck(const float* in, float* out, size_t n, float inv_scale) {
  CheckInvScale(inv_scale);
  bool found = false;
  for (size_t i = 0; i < n; ++i) {
    const float v = in[i] * inv_scale;
    out[i] = v;
    found |= !std::isfinite(v);
  }
  return found;
}

bool UnscaleAndCheck(const half_bits* in, float* out, size_t n, float inv_scale) {
  CheckInvScale(inv_scale);
  bool found = false;
  for (size_t i = 0; i < n; ++i) {
    const float v = HalfToFloat(in[i]) * inv_scale;
    out[i] = v;
    found |= !std::isfinite(v);
  }
  return found;
}

void LossScalerOptions::Check() const {
  auto bad = [](const char* field, double value, const char* allowed) {
    Fail(ErrorCode::kInvalidArgument, std::string("loss scaler: ") + field + " must be " + allowed +
                                          ", got " + std::to_string(value));
  };
  if (!(std::isfinite(min_scale) && min_scale > 0)) bad("min_scale", min_scale, "finite and > 0");
  if (!(std::isfinite(max_scale) && max_scale >= min_scale)) bad("max_scale", max_scale, "finite and >= min_scale");
  if (!(init_scale >= min_scale && init_scale <= max_scale))
    bad("init_scale", init_scale, "in [min_scale, max_scale]");
  if (!(std::isfinite(growth_factor) && growth_factor > 1)) bad("growth_factor", growth_factor, "finite and > 1");
  if (!(backoff_factor > 0 && backoff_factor < 1)) bad("backoff_factor", backoff_factor, "in (0, 1)");
  if (growth_interval < 1) bad("growth_interval", double(growth_interval), ">= 1");
}

DynamicLossScaler::DynamicLossScaler(const LossScalerOptions& options) : opt_(options) {
  opt_.Check();
  scale_ = opt_.init_scale;
}

bool DynamicLossScaler::Update(bool found_inf) {
  if (found_inf) {
    scale_ = std::max(scale_ * opt_.backoff_factor, opt_.min_scale);
    good_steps_ = 0;
    ++skipped_steps_;
    return true;
  }
  if (++good_steps_ >= opt_.growth_interval) {
    scale_ = std::min(scale_ * opt_.growth_factor, opt_.max_scale);
    good_steps_ = 0;
  }
  return false;
}

}  // namespace dtrain::cpu
