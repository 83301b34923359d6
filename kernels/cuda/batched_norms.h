// Batched per-tensor L2 norms (the paper's "batched norm computation"): for
// every tensor t of the table, in ONE kernel launch,
//   weight_norms[t] = ‖params[t]‖₂,   grad_norms[t] = ‖grad_scale · grads[t]‖₂
// where grad_scale · g is one fp32 multiply per element (the same unscaled
// gradient the fused update uses; pass 1/loss_scale for scaled fp16 grads).
// One block per chunk; squares are accumulated in double; a tensor's chunk
// sums are combined, in chunk order, by whichever of its blocks finishes last
// (an integer counter per tensor; no floating-point atomics), so the result is
// deterministic. Reference: cpu::TensorNorms on the unscaled fp32 grads
// (kernels/cpu/optimizer_update.h); results agree to float rounding.
// params, grads: device, table.buffer_elems() elements; outputs: device,
// num_tensors floats each. Uses the table's workspace: one launch per table at
// a time. grad_scale is given by value, or (the overloads taking
// grad_scale_dev) read by the kernel from device memory at run time (CUDA
// graph capture); for the same value both give bit-identical norms (one
// kernel). A device grad_scale is not validated: it is used as is (a
// non-finite one gives non-finite or NaN grad norms).
// Throws kInvalidArgument (null pointer, grad_scale not finite > 0, null
// grad_scale_dev, checked even for an empty table), kInternal (launch error).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/tensor_chunks.h"

namespace dtrain::cuda {

void BatchedTensorNorms(const TensorTableView& table, const float* params, const float* grads,
                        float grad_scale, float* weight_norms, float* grad_norms, cudaStream_t stream);
void BatchedTensorNorms(const TensorTableView& table, const float* params, const __half* grads,
                        float grad_scale, float* weight_norms, float* grad_norms, cudaStream_t stream);
void BatchedTensorNorms(const TensorTableView& table, const float* params, const float* grads,
                        const float* grad_scale_dev, float* weight_norms, float* grad_norms, cudaStream_t stream);
void BatchedTensorNorms(const TensorTableView& table, const float* params, const __half* grads,
                        const float* grad_scale_dev, float* weight_norms, float* grad_norms, cudaStream_t stream);

}  // namespace dtrain::cuda
