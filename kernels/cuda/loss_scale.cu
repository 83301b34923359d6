// Gradient unscaling + inf/NaN detection, and the device-resident dynamic
// loss-scale update (contracts in loss_scale.h).
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

// The scale is inv_scale_dev ? *inv_scale_dev : inv_scale; out null: check
// only (CheckFinite). No __restrict__: out may alias in, and inv_scale_dev and
// found_inf may be fields of one DeviceLossScale.
template <typename T>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    UnscaleKernel(const T* in, float* out, int64_t n, float inv_scale, const float* inv_scale_dev,
                  int32_t* found_inf) {
  const float s = inv_scale_dev != nullptr ? *inv_scale_dev : inv_scale;
  bool bad = false;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = __fmul_rn(ToFloat(in[i]), s);
    if (out != nullptr) out[i] = v;
    bad |= !isfinite(v);
  }
  // Every writer stores the same value: no atomics needed.
  if (__syncthreads_or(bad) && threadIdx.x == 0) *found_inf = 1;
}

// cpu::DynamicLossScaler::Update, statement for statement: std::max(a, b) is
// (a < b ? b : a) and std::min(a, b) is (b < a ? b : a); products are one
// fp32 multiply rounded to nearest (no contraction: nothing is added).
__global__ void LossScaleUpdateKernel(DeviceLossScale* state, float growth_factor, float backoff_factor,
                                      int64_t growth_interval, float min_scale, float max_scale) {
  DeviceLossScale s = *state;
  if (s.found_inf != 0) {
    const float backed = __fmul_rn(s.scale, backoff_factor);
    s.scale = backed < min_scale ? min_scale : backed;
    s.good_steps = 0;
    ++s.skipped_steps;
    s.skipped = 1;
  } else {
    s.skipped = 0;
    if (++s.good_steps >= growth_interval) {
      const float grown = __fmul_rn(s.scale, growth_factor);
      s.scale = max_scale < grown ? max_scale : grown;
      s.good_steps = 0;
    }
  }
  s.inv_scale = __fdiv_rn(1.0f, s.scale);  // as cpu::DynamicLossScaler::inv_scale()
  s.found_inf = 0;
  *state = s;
}

// Every public overload. op names the caller; check_only: CheckFinite (out
// unused); inv_scale_dev null: the scale is inv_scale (validated here).
template <typename T>
void Launch(const char* op, bool check_only, const T* in, float* out, int64_t n, float inv_scale,
            const float* inv_scale_dev, int32_t* found_inf, cudaStream_t stream) {
  const std::string name(op);
  if (n < 0) Fail(ErrorCode::kInvalidArgument, name + ": n must be >= 0, got " + std::to_string(n));
  if (inv_scale_dev == nullptr && !(std::isfinite(inv_scale) && inv_scale > 0))
    Fail(ErrorCode::kInvalidArgument, name + ": inv_scale must be finite and > 0, got " + std::to_string(inv_scale));
  if (n == 0) return;
  if (check_only) {
    if (in == nullptr || found_inf == nullptr)
      Fail(ErrorCode::kInvalidArgument, name + ": in and found_inf must not be null (n=" + std::to_string(n) + ")");
    out = nullptr;
  } else if (in == nullptr || out == nullptr || found_inf == nullptr) {
    Fail(ErrorCode::kInvalidArgument,
         name + ": in, out and found_inf must not be null (n=" + std::to_string(n) + ")");
  }
  UnscaleKernel<T><<<detail::ElementwiseBlocks(n), detail::kElementwiseThreads, 0, stream>>>(
      in, out, n, inv_scale, inv_scale_dev, found_inf);
  CUDA_CHECK_LAUNCH();
}

// The device-scale overloads: a null inv_scale_dev is an error (not "use a
// value"), checked before n == 0 returns.
template <typename T>
void LaunchDev(const char* op, bool check_only, const T* in, float* out, int64_t n, const float* inv_scale_dev,
               int32_t* found_inf, cudaStream_t stream) {
  if (inv_scale_dev == nullptr) Fail(ErrorCode::kInvalidArgument, std::string(op) + ": inv_scale_dev is null");
  Launch(op, check_only, in, out, n, 0.0f, inv_scale_dev, found_inf, stream);
}

}  // namespace

void UnscaleAndCheck(const float* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream) {
  Launch("UnscaleAndCheck", false, in, out, n, inv_scale, nullptr, found_inf, stream);
}

void UnscaleAndCheck(const __half* in, float* out, int64_t n, float inv_scale, int32_t* found_inf,
                     cudaStream_t stream) {
  Launch("UnscaleAndCheck", false, in, out, n, inv_scale, nullptr, found_inf, stream);
}

void UnscaleAndCheck(const float* in, float* out, int64_t n, const float* inv_scale_dev, int32_t* found_inf,
                     cudaStream_t stream) {
  LaunchDev("UnscaleAndCheck", false, in, out, n, inv_scale_dev, found_inf, stream);
}

void UnscaleAndCheck(const __half* in, float* out, int64_t n, const float* inv_scale_dev, int32_t* found_inf,
                     cudaStream_t stream) {
  LaunchDev("UnscaleAndCheck", false, in, out, n, inv_scale_dev, found_inf, stream);
}

void CheckFinite(const float* in, int64_t n, const float* inv_scale_dev, int32_t* found_inf, cudaStream_t stream) {
  LaunchDev("CheckFinite", true, in, static_cast<float*>(nullptr), n, inv_scale_dev, found_inf, stream);
}

void CheckFinite(const __half* in, int64_t n, const float* inv_scale_dev, int32_t* found_inf, cudaStream_t stream) {
  LaunchDev("CheckFinite", true, in, static_cast<float*>(nullptr), n, inv_scale_dev, found_inf, stream);
}

DeviceLossScale MakeDeviceLossScale(const cpu::LossScalerOptions& o) {
  o.Check();
  DeviceLossScale s{};
  s.scale = o.init_scale;
  s.inv_scale = 1.0f / o.init_scale;
  s.found_inf = 0;
  s.skipped = 0;
  s.good_steps = 0;
  s.skipped_steps = 0;
  return s;
}

void LossScaleUpdate(DeviceLossScale* state, const cpu::LossScalerOptions& o, cudaStream_t stream) {
  if (state == nullptr) Fail(ErrorCode::kInvalidArgument, "LossScaleUpdate: state is null");
  o.Check();
  LossScaleUpdateKernel<<<1, 1, 0, stream>>>(state, o.growth_factor, o.backoff_factor, o.growth_interval,
                                             o.min_scale, o.max_scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace dtrain::cuda
