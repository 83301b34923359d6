// Packs fp32 NCHW images (already normalised on the host) into the CUDA
// engine's input: fp16 NHWC with the channels padded to c_pad (zeros), so
// each pixel starts on a 16-byte boundary for cuDNN's NHWC kernels:
//   y[n][h][w][ch] = fp16_rn(x[n][ch][h][w]) for ch < c, 0 for c <= ch < c_pad.
// Reference: cpu::NchwToNhwc (kernels/cpu/layout.h) then dtrain::FloatToHalf:
// bit-identical. x, y: device; shape positive and c_pad >= c, else
// kInvalidArgument; launch errors kInternal. n == 0 launches nothing.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dtrain::cuda {

void PackNchwToHalfNhwc(const float* x, int n, int c, int h, int w, int c_pad, __half* y, cudaStream_t stream);

}  // namespace dtrain::cuda
