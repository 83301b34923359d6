// Gradient unscaling + inf/NaN detection (contract in loss_scale.h).
#include "kernels/cuda/loss_scale.h"

#include <cmath>
#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }

template <typename T>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    UnscaleKernel(const T* in, float* out, int64_t n, float inv_scale, int32_t* found_inf) {
  bool bad = false;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = __fmul_rn(ToFloat(in[i]), inv_scale);
    out[i] = v;
    bad |= !isfinite(v);
  }
  // Every writer stores the same value: no atomics needed.
  if (__syncthreads_or(bad) && threadIdx.x == 0) *found_inf = 1;
}

template <typename T>
void Launch(const T* in, float* out, int64_t n, float inv_scale, int32_t* found_inf, cudaStream_t stream) {
  if (n < 0) Fail(ErrorCode::kInvalidArgument, "UnscaleAndCheck: n must be >= 0, got " + std::to_string(n));
  if (!(std::isfinite(inv_scale) && inv_scale > 0))
    Fail(ErrorCode::kInvalidArgument,
         "UnscaleAndCheck: inv_scale must be finite and > 0, got " + std::to_string(inv_scale));
  if (n == 0) return;
  if (in == nullptr || out == nullptr || found_inf == nullptr)
    Fail(ErrorCode::kInvalidArgument, "UnscaleAndCheck: in, out and found_inf must not be null");
  UnscaleKernel<T><<<detail::ElementwiseBlocks(n), detail::kElementwiseThreads, 0, stream>>>(in, out, n, inv_scale,
                                                                                            found_inf);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void UnscaleAndCheck(const float* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream) {
  Launch(in, out, n, inv_scale, found_inf, stream);
}

void UnscaleAndCheck(const __half* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream) {
  Launch(in, out, n, inv_scale, found_inf, stream);
}

}  // namespace dtrain::cuda
