// Input normalisation + fp16 NHWC cast (contract in input_norm.h).
#include "kernels/cuda/input_norm.h"

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

static_assert(detail::kElementwiseThreads >= cpu::kMaxInputChannels, "a thread per channel loads mean/stddev");

struct ChannelNorm {
  float mean[cpu::kMaxInputChannels];
  float stddev[cpu::kMaxInputChannels];
};

__device__ __forceinline__ float ToFloat(uint8_t v) { return static_cast<float>(v); }
__device__ __forceinline__ float ToFloat(float v) { return v; }

// One thread per OUTPUT element (NHWC order: coalesced writes).
template <typename X>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    NormalizeKernel(const X* __restrict__ x, __half* __restrict__ y, int64_t total, int channels, int out_c,
                    int64_t hw, bool nchw, float scale, const __grid_constant__ ChannelNorm norm) {
  __shared__ float s_mean[cpu::kMaxInputChannels], s_stddev[cpu::kMaxInputChannels];
  if (threadIdx.x < channels) {  // blockDim.x >= kMaxInputChannels >= channels
    s_mean[threadIdx.x] = norm.mean[threadIdx.x];
    s_stddev[threadIdx.x] = norm.stddev[threadIdx.x];
  }
  __syncthreads();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int c = static_cast<int>(i % out_c);
    const int64_t pixel = i / out_c;  // n·hw + p
    if (c >= channels) {  // padding channel
      y[i] = __float2half_rn(0.0f);
      continue;
    }
    const int64_t src = nchw ? ((pixel / hw) * channels + c) * hw + pixel % hw : pixel * channels + c;
    const float scaled = __fmul_rn(ToFloat(x[src]), scale);
    const float centred = __fsub_rn(scaled, s_mean[c]);
    y[i] = __float2half_rn(__fdiv_rn(centred, s_stddev[c]));
  }
}

template <typename X>
void Launch(const cpu::InputNormShape& s, const X* x, float scale, const float* mean, const float* stddev,
            __half* y, cudaStream_t stream) {
  cpu::CheckInputNorm(s, scale, mean, stddev);
  if (x == nullptr || y == nullptr)
    Fail(ErrorCode::kInvalidArgument, "NormalizeToHalfNHWC: x and y must not be null");
  ChannelNorm norm{};
  for (int c = 0; c < s.c; ++c) {
    norm.mean[c] = mean[c];
    norm.stddev[c] = stddev[c];
  }
  const int64_t total = static_cast<int64_t>(s.out_size());
  NormalizeKernel<X><<<detail::ElementwiseBlocks(total), detail::kElementwiseThreads, 0, stream>>>(
      x, y, total, s.c, s.out_c(), int64_t(s.h) * s.w, s.layout == cpu::PixelLayout::kNCHW, scale, norm);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void NormalizeToHalfNHWC(const cpu::InputNormShape& shape, const uint8_t* x, float scale, const float* mean,
                         const float* stddev, __half* y, cudaStream_t stream) {
  Launch(shape, x, scale, mean, stddev, y, stream);
}

void NormalizeToHalfNHWC(const cpu::InputNormShape& shape, const float* x, float scale, const float* mean,
                         const float* stddev, __half* y, cudaStream_t stream) {
  Launch(shape, x, scale, mean, stddev, y, stream);
}

}  // namespace dtrain::cuda
