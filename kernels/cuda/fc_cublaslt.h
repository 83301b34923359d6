// Fully connected layer y = x · Wᵀ + b on cuBLASLt: fp16 operands, fp32
// compute (CUBLAS_COMPUTE_32F, fp32 alpha/beta). x fp16 [n][c] and W fp16
// [k][c] are row-major (W as PyTorch stores it), b fp32 [k]. Reference:
// kernels/cpu/fully_connected.h (in = c, out = k).
// Row-major → column-major: a row-major [r][s] matrix is read by cuBLASLt as
// the column-major s×r matrix (its transpose, ld = s), so each product is
// computed transposed:
//   Forward          yᵀ (k×n)  = op_T(W: c×k) · (xᵀ: c×n)            "TN"
//   BackwardData     dxᵀ (c×n) = (Wᵀ: c×k)   · (dyᵀ: k×n)           "NN"
//   BackwardWeights  dWᵀ (c×k) = (xᵀ: c×n)   · op_T(dyᵀ: k×n)       "NT"
// Forward adds the bias with CUBLASLT_EPILOGUE_BIAS (bias length = rows of
// yᵀ = k; bias type = D type = fp32, the epilogue's default). If cuBLASLt
// offers no algorithm with that epilogue for a shape, Forward instead fills y
// with the bias (BroadcastBiasRows, fc_bias.h) and runs the GEMM with beta = 1;
// last_forward_used_bias_epilogue() says which path the last call took.
// dbias is a deterministic column sum of dy (ColumnSum, fc_bias.h), not the
// BGRADB epilogue (whose fp32-bias-with-fp16-D support is not guaranteed).
// Matmul descriptors, layouts and the heuristic's algorithm are cached per
// (op, n, c, k, alignment of each pointer up to 256 bytes): cuBLASLt is told
// each pointer's actual alignment, so it never picks an algorithm needing
// more (256-byte-aligned buffers get the fastest ones). Every call is
// asynchronous on `stream`. All calls on one object share its workspace: do
// not run them concurrently on different streams (not thread-safe either).
// Throws kInvalidArgument (n, c or k not positive; null pointer; null handle),
// kInternal (cuBLASLt or CUDA error, or no algorithm; the message names the
// op and shape).
#pragma once

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>

namespace dtrain::cuda {

class CublasLtFc {
 public:
  // handle: not owned, must outlive this object. workspace_bytes: device
  // memory owned by this object (allocated here; 0 allowed: fewer algorithms).
  explicit CublasLtFc(cublasLtHandle_t handle, size_t workspace_bytes = size_t(32) << 20);
  ~CublasLtFc();
  CublasLtFc(const CublasLtFc&) = delete;
  CublasLtFc& operator=(const CublasLtFc&) = delete;

  // logits y fp32 [n][k] = x·Wᵀ + b (overwritten).
  void Forward(int n, int c, int k, const __half* x, const __half* w, const float* bias, float* y,
               cudaStream_t stream);
  // dx fp16 [n][c] = dy · W (overwritten); dy fp16 [n][k].
  void BackwardData(int n, int c, int k, const __half* dy, const __half* w, __half* dx, cudaStream_t stream);
  // dW fp16 [k][c] = dyᵀ · x (overwritten); dbias fp32 [k] = Σ_n dy (overwritten).
  void BackwardWeights(int n, int c, int k, const __half* x, const __half* dy, __half* dw, float* dbias,
                       cudaStream_t stream);

  // Diagnostics: whether the last Forward added the bias in the epilogue.
  bool last_forward_used_bias_epilogue() const { return last_forward_used_bias_epilogue_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool last_forward_used_bias_epilogue_ = false;
};

}  // namespace dtrain::cuda
