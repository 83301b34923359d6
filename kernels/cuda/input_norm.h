// Input normalisation and cast on the device: uint8 or fp32 images, NCHW or
// NHWC (shape.layout), become fp16 NHWC activations
//   y[n, h, w, c] = fp16( (float(x) · scale − mean[c]) / stddev[c] )
// evaluated exactly as the CPU reference kernels/cpu/input_norm.h does (each
// fp32 operation rounded, no FMA), so outputs are bit-identical to it.
// x holds shape.size() elements and y shape.out_size() (channels padded with
// zeros to shape.c_pad when set), both device buffers; mean and stddev are HOST
// arrays of shape.c floats (passed to the kernel by value).
// Throws kInvalidArgument (as cpu::CheckInputNorm, or a null pointer),
// kInternal (launch error).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/input_norm.h"

namespace dtrain::cuda {

void NormalizeToHalfNHWC(const cpu::InputNormShape& shape, const uint8_t* x, float scale, const float* mean,
                         const float* stddev, __half* y, cudaStream_t stream);
void NormalizeToHalfNHWC(const cpu::InputNormShape& shape, const float* x, float scale, const float* mean,
                         const float* stddev, __half* y, cudaStream_t stream);

}  // namespace dtrain::cuda
