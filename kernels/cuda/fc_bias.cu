// FC bias broadcast and bias-gradient column sum (contract in fc_bias.h).
#include "kernels/cuda/fc_bias.h"

#include <cstdint>
#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

constexpr int kColumnSumThreads = 128;
constexpr int kColumnSumUnroll = 8;

__global__ void __launch_bounds__(detail::kElementwiseThreads)
    BroadcastBiasRowsKernel(int rows, int cols, const float* __restrict__ bias, float* __restrict__ y) {
  const int64_t total = int64_t(rows) * cols;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) y[i] = bias[i % cols];
}

// Adjacent threads read adjacent columns (coalesced). The loads of a batch of
// rows are issued before the adds; the adds stay in row order.
__global__ void __launch_bounds__(kColumnSumThreads)
    ColumnSumKernel(int rows, int cols, const __half* __restrict__ x, float* __restrict__ sum) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  const __half* col = x + j;
  float acc = 0.0f;
  int i = 0;
  for (; i + kColumnSumUnroll <= rows; i += kColumnSumUnroll) {
    float v[kColumnSumUnroll];
#pragma unroll
    for (int u = 0; u < kColumnSumUnroll; ++u) v[u] = __half2float(col[int64_t(i + u) * cols]);
#pragma unroll
    for (int u = 0; u < kColumnSumUnroll; ++u) acc += v[u];
  }
  for (; i < rows; ++i) acc += __half2float(col[int64_t(i) * cols]);
  sum[j] = acc;
}

void CheckArgs(const char* op, int rows, int cols, const void* in, const void* out) {
  if (rows <= 0 || cols <= 0)
    Fail(ErrorCode::kInvalidArgument, std::string(op) + ": rows and cols must be positive, got rows=" +
                                          std::to_string(rows) + " cols=" + std::to_string(cols));
  if (in == nullptr || out == nullptr)
    Fail(ErrorCode::kInvalidArgument, std::string(op) + ": null pointer (rows=" + std::to_string(rows) +
                                          " cols=" + std::to_string(cols) + ")");
}

}  // namespace

void BroadcastBiasRows(int rows, int cols, const float* bias, float* y, cudaStream_t stream) {
  CheckArgs("BroadcastBiasRows", rows, cols, bias, y);
  const int64_t total = int64_t(rows) * cols;
  BroadcastBiasRowsKernel<<<detail::ElementwiseBlocks(total), detail::kElementwiseThreads, 0, stream>>>(rows, cols,
                                                                                                      bias, y);
  CUDA_CHECK_LAUNCH();
}

void ColumnSum(int rows, int cols, const __half* x, float* sum, cudaStream_t stream) {
  CheckArgs("ColumnSum", rows, cols, x, sum);
  const unsigned blocks = unsigned((int64_t(cols) + kColumnSumThreads - 1) / kColumnSumThreads);
  ColumnSumKernel<<<blocks, kColumnSumThreads, 0, stream>>>(rows, cols, x, sum);
  CUDA_CHECK_LAUNCH();
}

}  // namespace dtrain::cuda
