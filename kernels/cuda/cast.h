// Element casts and layout transforms on the device, for the GPU engine and
// for comparing its NHWC fp16 tensors with the CPU engine's NCHW fp32 ones.
//   CastFloatToHalf: round to nearest even (bit-identical to
//     dtrain::FloatToHalf for every non-NaN input; NaN stays NaN);
//   CastHalfToFloat: exact;
//   NchwToNhwc / NhwcToNchw: out is a permuted copy (must not alias in), for
//     T = float or __half.
// All take device buffers and a stream; n or a zero-sized shape launches
// nothing. Throws kInvalidArgument (negative size, null pointer), kInternal
// (launch error).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dtrain::cuda {

void CastFloatToHalf(const float* in, __half* out, int64_t n, cudaStream_t stream);
void CastHalfToFloat(const __half* in, float* out, int64_t n, cudaStream_t stream);

template <typename T>
void NchwToNhwc(const T* in, T* out, int n, int c, int h, int w, cudaStream_t stream);
template <typename T>
void NhwcToNchw(const T* in, T* out, int n, int c, int h, int w, cudaStream_t stream);

}  // namespace dtrain::cuda
