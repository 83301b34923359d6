// Pooling over NHWC fp16 activations on the device (reference: kernels/cpu/pool.h,
// which is NCHW; the index arithmetic and the fp32 summation orders are the
// CPU's, so results are bit-identical to the CPU on the same fp16 inputs).
// MaxPoolForwardNHWC: x [n][h][w][c] -> y [n][oh][ow][c] with the window,
// stride and pad of cpu::MaxPoolShape; padded cells never win, NaN never
// wins, ties go to the first cell in row-major window order. argmax (int32,
// [n][oh][ow][c]) gets the winner's index iy·w + ix within the h·w plane.
// MaxPoolBackwardNHWC: dx (overwritten) = Σ dy over the outputs whose argmax
// is that cell, gathered per input cell over the windows covering it in
// row-major output order (no atomics, deterministic), fp32 accumulation.
// GlobalAvgPoolForwardNHWC: x [n][hw][c] -> y [n][c], y = (Σ_p x) · (1/hw) in
// fp32, p ascending. GlobalAvgPoolBackwardNHWC: dx[n][p][c] = dy[n][c] · (1/hw)
// (overwritten). Channels are processed 8 (16-byte loads) or 2 (half2) at a
// time when c and the pointers' alignment allow, one at a time otherwise.
// Throws kInvalidArgument (bad shape, as the CPU's Check(); null pointer; h·w
// over 2^31), kInternal (launch error). Asynchronous on `stream`.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/pool.h"

namespace dtrain::cuda {

void MaxPoolForwardNHWC(const cpu::MaxPoolShape& s, const __half* x, __half* y, int32_t* argmax,
                        cudaStream_t stream);

void MaxPoolBackwardNHWC(const cpu::MaxPoolShape& s, const __half* dy, const int32_t* argmax, __half* dx,
                         cudaStream_t stream);

void GlobalAvgPoolForwardNHWC(const cpu::GlobalAvgPoolShape& s, const __half* x, __half* y,
                              cudaStream_t stream);

void GlobalAvgPoolBackwardNHWC(const cpu::GlobalAvgPoolShape& s, const __half* dy, __half* dx,
                               cudaStream_t stream);

}  // namespace dtrain::cuda
