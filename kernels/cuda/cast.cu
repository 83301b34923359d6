// fp32 <-> fp16 casts and NCHW <-> NHWC transforms (contract in cast.h).
#include "kernels/cuda/cast.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

using detail::ElementwiseBlocks;
using detail::kElementwiseThreads;

__global__ void __launch_bounds__(kElementwiseThreads)
    FloatToHalfKernel(const float* __restrict__ in, __half* __restrict__ out, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __float2half_rn(in[i]);
}

__global__ void __launch_bounds__(kElementwiseThreads)
    HalfToFloatKernel(const __half* __restrict__ in, float* __restrict__ out, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = __half2float(in[i]);
}

// One thread per output element. to_nhwc: out is NHWC, in is NCHW; else the
// reverse. hw = h·w.
template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads)
    TransposeKernel(const T* __restrict__ in, T* __restrict__ out, int64_t total, int c, int64_t hw, bool to_nhwc) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    if (to_nhwc) {  // i = (n·hw + p)·c + ch
      const int64_t ch = i % c, pixel = i / c;
      out[i] = in[((pixel / hw) * c + ch) * hw + pixel % hw];
    } else {  // i = (n·c + ch)·hw + p
      const int64_t p = i % hw, nc = i / hw;
      out[i] = in[((nc / c) * hw + p) * c + nc % c];
    }
  }
}

void CheckBuffers(const char* op, int64_t n, const void* in, const void* out) {
  if (n < 0) Fail(ErrorCode::kInvalidArgument, std::string(op) + ": size must be >= 0, got " + std::to_string(n));
  if (n > 0 && (in == nullptr || out == nullptr))
    Fail(ErrorCode::kInvalidArgument, std::string(op) + ": in and out must not be null");
}

template <typename T>
void Transpose(const char* op, const T* in, T* out, int n, int c, int h, int w, bool to_nhwc, cudaStream_t stream) {
  if (n < 0 || c < 0 || h < 0 || w < 0)
    Fail(ErrorCode::kInvalidArgument, std::string(op) + ": shape must be >= 0, got n=" + std::to_string(n) +
                                          " c=" + std::to_string(c) + " h=" + std::to_string(h) +
                                          " w=" + std::to_string(w));
  const int64_t total = int64_t(n) * c * h * w;
  CheckBuffers(op, total, in, out);
  if (total == 0) return;
  if (in == out) Fail(ErrorCode::kInvalidArgument, std::string(op) + ": in and out must not alias");
  TransposeKernel<T><<<ElementwiseBlocks(total), kElementwiseThreads, 0, stream>>>(in, out, total, c,
                                                                                  int64_t(h) * w, to_nhwc);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void CastFloatToHalf(const float* in, __half* out, int64_t n, cudaStream_t stream) {
  CheckBuffers("CastFloatToHalf", n, in, out);
  if (n == 0) return;
  FloatToHalfKernel<<<ElementwiseBlocks(n), kElementwiseThreads, 0, stream>>>(in, out, n);
  CUDA_CHECK_LAUNCH();
}

void CastHalfToFloat(const __half* in, float* out, int64_t n, cudaStream_t stream) {
  CheckBuffers("CastHalfToFloat", n, in, out);
  if (n == 0) return;
  HalfToFloatKernel<<<ElementwiseBlocks(n), kElementwiseThreads, 0, stream>>>(in, out, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void NchwToNhwc(const T* in, T* out, int n, int c, int h, int w, cudaStream_t stream) {
  Transpose("NchwToNhwc", in, out, n, c, h, w, true, stream);
}

template <typename T>
void NhwcToNchw(const T* in, T* out, int n, int c, int h, int w, cudaStream_t stream) {
  Transpose("NhwcToNchw", in, out, n, c, h, w, false, stream);
}

template void NchwToNhwc<float>(const float*, float*, int, int, int, int, cudaStream_t);
template void NchwToNhwc<__half>(const __half*, __half*, int, int, int, int, cudaStream_t);
template void NhwcToNchw<float>(const float*, float*, int, int, int, int, cudaStream_t);
template void NhwcToNchw<__half>(const __half*, __half*, int, int, int, int, cudaStream_t);

}  // namespace dtrain::cuda
