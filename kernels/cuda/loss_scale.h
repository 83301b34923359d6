// Gradient unscaling with overflow detection on the device (dynamic loss
// scaling; the host-side DynamicLossScaler is kernels/cpu/loss_scale.h):
//   out[i] = float(in[i]) · inv_scale      (one fp32 multiply, round to nearest)
// and *found_inf = 1 if any out[i] is inf or NaN. found_inf (device int32) is
// only ever SET: zero it (cudaMemsetAsync) once per step before the first
// launch, so several buffers can share it. out may alias in (float input).
// Reference: cpu::UnscaleAndCheck (bit-identical outputs).
// inv_scale is given by value, or (the overloads taking inv_scale_dev, e.g.
// &DeviceLossScale::inv_scale) read by the kernel from device memory at run
// time, so a captured CUDA graph sees each step's scale; for the same value
// both give bit-identical outputs and the same flag (one kernel). A device
// inv_scale is not validated: it is used as is (a non-finite one makes every
// out[i] non-finite and so sets the flag).
// CheckFinite: the same kernel without the output: sets *found_inf exactly
// when UnscaleAndCheck with the same arguments would, writes nothing else.
// Throws kInvalidArgument (n < 0, null pointer, inv_scale not finite > 0,
// null inv_scale_dev, checked even for n == 0), kInternal (launch error).
// n == 0 launches nothing.
//
// DeviceLossScale: the dynamic loss scaler's state in device memory (one per
// engine), so a step needs no host round trip. UnscaleAndCheck sets
// &state->found_inf; LossScaleUpdate (one single-thread kernel) then applies
// exactly cpu::DynamicLossScaler::Update(found_inf != 0) to it (same fp32
// arithmetic and clamping: scale, good_steps, skipped_steps bit-identical),
// sets skipped (1: skip this step's weight update), inv_scale = 1/scale
// (IEEE division) and clears found_inf for the next step. Throws
// kInvalidArgument (null state; bad options, naming the field, as
// LossScalerOptions::Check), kInternal (launch error).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/loss_scale.h"

namespace dtrain::cuda {

void UnscaleAndCheck(const float* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream);
void UnscaleAndCheck(const __half* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream);
void UnscaleAndCheck(const float* in, float* out, int64_t n, const float* inv_scale_dev, int32_t* found_inf,
                     cudaStream_t stream);
void UnscaleAndCheck(const __half* in, float* out, int64_t n, const float* inv_scale_dev, int32_t* found_inf,
                     cudaStream_t stream);
// Sets *found_inf if any float(in[i]) · *inv_scale_dev is inf or NaN.
void CheckFinite(const float* in, int64_t n, const float* inv_scale_dev, int32_t* found_inf, cudaStream_t stream);
void CheckFinite(const __half* in, int64_t n, const float* inv_scale_dev, int32_t* found_inf, cudaStream_t stream);

struct DeviceLossScale {
  float scale;            // current loss scale
  float inv_scale;        // 1/scale
  int32_t found_inf;      // set by UnscaleAndCheck this step; cleared by LossScaleUpdate
  int32_t skipped;        // 1 if the last update skipped the step
  int64_t good_steps;     // as cpu::DynamicLossScaler::good_steps()
  int64_t skipped_steps;  // as cpu::DynamicLossScaler::skipped_steps()
};
static_assert(sizeof(DeviceLossScale) == 32 && offsetof(DeviceLossScale, found_inf) == 8 &&
                  offsetof(DeviceLossScale, good_steps) == 16,
              "DeviceLossScale: fixed layout (device code takes pointers to its fields)");

// Host initialiser: scale = o.init_scale, inv_scale = 1/scale, the rest 0.
// Throws kInvalidArgument on bad options (o.Check()).
DeviceLossScale MakeDeviceLossScale(const cpu::LossScalerOptions& o);

// One single-thread launch updating *state (device memory) as described above.
void LossScaleUpdate(DeviceLossScale* state, const cpu::LossScalerOptions& o, cudaStream_t stream);

}  // namespace dtrain::cuda
