// The one kernel of gpu_probe (bench/gpu_probe.cc): proof that this build's
// device code loads and runs on the machine's GPU.
//   FillProbePattern: out[i] = ProbePattern(seed, i) for i in [0, n), on
//     stream; n == 0 launches nothing. Throws kInvalidArgument (n < 0, null
//     out with n > 0), kInternal (launch error, e.g. no kernel image for this
//     device's compute capability).
//   ProbeKernelBinaryVersion: the compute capability (major·10 + minor) of the
//     machine code the driver picked for that kernel on the current device;
//     throws kInternal when there is none (cudaErrorNoKernelImageForDevice).
// C++17-clean: included by the .cu file.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace dtrain::bench {

// Host and device agree on this formula: every element differs from its
// neighbours and from the 0xFF poison (for any seed with a zero low bit).
inline constexpr uint32_t kProbeMultiplier = 2654435761u;
#if defined(__CUDACC__)
__host__ __device__
#endif
inline uint32_t ProbePattern(uint32_t seed, uint32_t i) {
  return (seed ^ (i * kProbeMultiplier)) & ~1u;
}

void FillProbePattern(uint32_t* out, int64_t n, uint32_t seed, cudaStream_t stream);
int ProbeKernelBinaryVersion();

}  // namespace dtrain::bench
