// Gradient unscaling with overflow detection on the device (dynamic loss
// scaling; the host-side DynamicLossScaler is kernels/cpu/loss_scale.h):
//   out[i] = float(in[i]) · inv_scale      (one fp32 multiply, round to nearest)
// and *found_inf = 1 if any out[i] is inf or NaN. found_inf (device int32) is
// only ever SET: zero it (cudaMemsetAsync) once per step before the first
// launch, so several buffers can share it. out may alias in (float input).
// Reference: cpu::UnscaleAndCheck (bit-identical outputs).
// Throws kInvalidArgument (n < 0, null pointer, inv_scale not finite > 0),
// kInternal (launch error). n == 0 launches nothing.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dtrain::cuda {

void UnscaleAndCheck(const float* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream);
void UnscaleAndCheck(const __half* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream);

}  // namespace dtrain::cuda
