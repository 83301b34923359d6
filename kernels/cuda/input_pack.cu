// fp32 NCHW -> fp16 NHWC with padded channels (contract in input_pack.h).
#include "kernels/cuda/input_pack.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

// One thread per OUTPUT element (coalesced writes; reads stride by hw).
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    PackKernel(const float* __restrict__ x, __half* __restrict__ y, int64_t total, int c, int c_pad, int64_t hw) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int ch = static_cast<int>(i % c_pad);
    const int64_t pixel = i / c_pad;  // n·hw + p
    const int64_t n = pixel / hw, p = pixel % hw;
    y[i] = ch < c ? __float2half_rn(x[(n * c + ch) * hw + p]) : __float2half_rn(0.0f);
  }
}

}  // namespace

void PackNchwToHalfNhwc(const float* x, int n, int c, int h, int w, int c_pad, __half* y, cudaStream_t stream) {
  if (n < 0 || c <= 0 || h <= 0 || w <= 0 || c_pad < c) {
    Fail(ErrorCode::kInvalidArgument, "PackNchwToHalfNhwc: shape [" + std::to_string(n) + ", " + std::to_string(c) +
                                          ", " + std::to_string(h) + ", " + std::to_string(w) + "], c_pad " +
                                          std::to_string(c_pad) + ": n >= 0, other dims > 0, c_pad >= c");
  }
  if (n == 0) return;
  if (x == nullptr || y == nullptr) Fail(ErrorCode::kInvalidArgument, "PackNchwToHalfNhwc: null pointer");
  const int64_t hw = int64_t(h) * w;
  const int64_t total = int64_t(n) * hw * c_pad;
  PackKernel<<<detail::ElementwiseBlocks(total), detail::kElementwiseThreads, 0, stream>>>(x, y, total, c, c_pad, hw);
  CUDA_CHECK_LAUNCH();
}

}  // namespace dtrain::cuda
