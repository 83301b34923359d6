// Fused multi-tensor optimizer update (one launch, one block per chunk of the
// tensor table): reads the fp32 master weights, fp32 momentum and the
// gradients (fp32 or fp16; each multiplied by grad_scale, one fp32 multiply,
// e.g. 1/loss_scale), writes the masters and momentum in place and, if
// weights_half is not null, the fp16 copy of the new masters (round to
// nearest even) in the same pass. Elements outside every tensor are not
// touched.
//
// The formulas are EXACTLY those of kernels/cpu/optimizer_update.h (the
// reference): per tensor, step = lr and wd = 0 for no_decay tensors; else
//   SGD : step = lr,  wd = weight_decay
//   LARS: wd = weight_decay, step = float(double(lr) * LarsLocalLr(‖w‖, ‖g‖,
//         eta, wd, epsilon)) with the norms from BatchedTensorNorms
// then per element (fp32, each operation rounded, no fused multiply-add):
//   d = step·(g + wd·w);  v = m·v + d;  w = w − v  (Nesterov: w = w − (m·v + d))
// Given the same norms, grads and state, the result is bit-identical to
// cpu::LarsUpdate / cpu::SgdUpdate.
//
// skip_flag (device int, nullable): when *skip_flag != 0 the kernel changes
// nothing (e.g. the found_inf flag of UnscaleAndCheck), so a step with
// overflowed gradients is skipped without a host round trip.
//
// Per-step scalars from device memory (CUDA graph capture): p.lr_dev, when
// set, replaces p.lr, and the overloads taking grad_scale_dev replace
// grad_scale; the kernel reads them at run time. For the same values the
// result is bit-identical to the by-value form (one kernel). Device values
// are not validated: a non-finite (or negative) lr or grad_scale is used as
// is and propagates through the formulas above into the masters and momentum,
// exactly as the CPU reference would compute. (With skip_flag = found_inf of
// an UnscaleAndCheck/CheckFinite that used the same non-finite scale, the
// step is skipped instead.)
// Throws kInvalidArgument (null pointer, non-finite hyperparameter (p.lr only
// when p.lr_dev is null), grad_scale not finite > 0, null grad_scale_dev,
// LARS without norms), kInternal (launch error). Scalar checks run even for
// an empty table.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/tensor_chunks.h"

namespace dtrain::cuda {

struct MomentumUpdateParams {
  bool lars = true;  // false: SGD with momentum (norms, eta, epsilon unused)
  float lr = 0;
  const float* lr_dev = nullptr;  // device; when set, the kernel reads lr from it (p.lr unused)
  float momentum = 0.9f;
  float weight_decay = 0;
  float eta = 0.001f;
  float epsilon = 1e-9f;
  bool nesterov = false;
};

void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const float* grads,
                         float grad_scale, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream);
void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const __half* grads,
                         float grad_scale, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream);
void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const float* grads,
                         const float* grad_scale_dev, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream);
void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const __half* grads,
                         const float* grad_scale_dev, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream);

}  // namespace dtrain::cuda
