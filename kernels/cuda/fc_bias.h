// The FC layer's bias kernels on the device (kernels/cuda/fc_cublaslt.h uses
// them; reference: the bias parts of kernels/cpu/fully_connected.h):
//   BroadcastBiasRows: y[i][j] = bias[j], y fp32 row-major [rows][cols]
//     (pre-fills the logits when cuBLASLt's BIAS epilogue is unavailable; the
//     GEMM then accumulates onto them with beta = 1);
//   ColumnSum: sum[j] = Σ_i x[i][j] over fp16 row-major x [rows][cols], fp32,
//     i ascending, one thread per column: deterministic, and bit-identical to
//     the CPU's `db[o] += dy[i][o]` loop on the same fp16 values (sum is
//     overwritten).
// Throws kInvalidArgument (rows or cols not positive, null pointer),
// kInternal (launch error). Asynchronous on `stream`.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace dtrain::cuda {

void BroadcastBiasRows(int rows, int cols, const float* bias, float* y, cudaStream_t stream);

void ColumnSum(int rows, int cols, const __half* x, float* sum, cudaStream_t stream);

}  // namespace dtrain::cuda
