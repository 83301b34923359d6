// The activations around batch norm where cuDNN has no fused op (inference,
// and training when the persistent fused path is unavailable; see
// batch_norm_cudnn.h), on NHWC fp16 tensors of n elements, in fp32 math:
//   AddReluInPlace:   y = max(y + z, 0), or y = max(y, 0) with z == nullptr,
//                     rounded to nearest; NaN propagates (as std::max(v, 0)).
//   ReluBackwardMask: g = dy where y > 0, else 0 (y: the activation's output).
//                     g may alias dy (index for index), not y.
// References: cpu::ResidualAddRelu, cpu::ReluForward / ReluBackward.
// Throws kInvalidArgument (n < 0, null pointer, bad aliasing), kInternal
// (launch error). n == 0 launches nothing. C++17-clean.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dtrain::cuda {

void AddReluInPlace(const __half* z, __half* y, int64_t n, cudaStream_t stream);
void ReluBackwardMask(const __half* y, const __half* dy, __half* g, int64_t n, cudaStream_t stream);

}  // namespace dtrain::cuda
