// ReLU and add+ReLU next to batch norm (contract in bn_activation.h).
#include "kernels/cuda/bn_activation.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

using detail::ElementwiseBlocks;
using detail::kElementwiseThreads;

// y = max(y [+ z], 0); `v < 0 ? 0 : v` keeps NaN, as std::max(v, 0) does.
template <bool kAdd>
__global__ void __launch_bounds__(kElementwiseThreads)
    AddReluKernel(const __half* __restrict__ z, __half* __restrict__ y, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float v = __half2float(y[i]);
    if (kAdd) v += __half2float(z[i]);
    y[i] = __float2half_rn(v < 0.0f ? 0.0f : v);
  }
}

// No __restrict__: g may alias dy.
__global__ void __launch_bounds__(kElementwiseThreads)
    ReluMaskKernel(const __half* y, const __half* dy, __half* g, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const __half d = dy[i];
    g[i] = __half2float(y[i]) > 0.0f ? d : __float2half_rn(0.0f);
  }
}

void CheckCount(const char* op, int64_t n) {
  if (n < 0) Fail(ErrorCode::kInvalidArgument, std::string(op) + ": n must be >= 0, got " + std::to_string(n));
}

}  // namespace

void AddReluInPlace(const __half* z, __half* y, int64_t n, cudaStream_t stream) {
  CheckCount("AddReluInPlace", n);
  if (n == 0) return;
  if (y == nullptr)
    Fail(ErrorCode::kInvalidArgument, "AddReluInPlace: y must not be null (n=" + std::to_string(n) + ")");
  if (z == y) Fail(ErrorCode::kInvalidArgument, "AddReluInPlace: z must not alias y");
  if (z != nullptr)
    AddReluKernel<true><<<ElementwiseBlocks(n), kElementwiseThreads, 0, stream>>>(z, y, n);
  else
    AddReluKernel<false><<<ElementwiseBlocks(n), kElementwiseThreads, 0, stream>>>(nullptr, y, n);
  CUDA_CHECK_LAUNCH();
}

void ReluBackwardMask(const __half* y, const __half* dy, __half* g, int64_t n, cudaStream_t stream) {
  CheckCount("ReluBackwardMask", n);
  if (n == 0) return;
  if (y == nullptr || dy == nullptr || g == nullptr)
    Fail(ErrorCode::kInvalidArgument,
         "ReluBackwardMask: y, dy and g must not be null (n=" + std::to_string(n) + ")");
  if (g == y) Fail(ErrorCode::kInvalidArgument, "ReluBackwardMask: g must not alias y");
  ReluMaskKernel<<<ElementwiseBlocks(n), kElementwiseThreads, 0, stream>>>(y, dy, g, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace dtrain::cuda
