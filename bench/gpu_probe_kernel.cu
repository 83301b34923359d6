// gpu_probe's pattern kernel and its launcher (contract in gpu_probe_kernel.h).
#include "bench/gpu_probe_kernel.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"

namespace dtrain::bench {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) FillPatternKernel(uint32_t* __restrict__ out, int64_t n, uint32_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = ProbePattern(seed, static_cast<uint32_t>(i));
}

}  // namespace

void FillProbePattern(uint32_t* out, int64_t n, uint32_t seed, cudaStream_t stream) {
  if (n < 0) Fail(ErrorCode::kInvalidArgument, "FillProbePattern: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return;
  if (out == nullptr) Fail(ErrorCode::kInvalidArgument, "FillProbePattern: out must not be null (n=" + std::to_string(n) + ")");
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > 4096) blocks = 4096;  // grid-stride loop covers the rest
  FillPatternKernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(out, n, seed);
  CUDA_CHECK_LAUNCH();
}

int ProbeKernelBinaryVersion() {
  cudaFuncAttributes attr{};
  CUDA_CHECK(cudaFuncGetAttributes(&attr, FillPatternKernel));
  return attr.binaryVersion;
}

}  // namespace dtrain::bench
