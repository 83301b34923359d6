// Optimizer update kernels (CPU reference for the GPU's fused multi-tensor
// update). All parameters live in ONE flat fp32 buffer; a tensor table says
// where each tensor is. Grads and momentum are flat buffers of the same layout.
//
// Momentum formulation (the same for SGD and LARS; MXNet/MLPerf LARS style,
// the learning rate inside the momentum buffer):
//   d = g + wd·w                          (wd = 0 for no_decay tensors)
//   v = m·v + lr·r·d                      (r: LARS local LR; 1 for SGD)
//   w = w - v                             (plain)
//   w = w - (m·v + lr·r·d)                (Nesterov, v already updated)
// LARS local LR (You et al.), for tensors WITHOUT no_decay:
//   r = η·‖w‖ / (‖g‖ + wd·‖w‖ + ε)   if ‖w‖ > 0 and ‖g‖ > 0,   else r = 1.
// no_decay tensors (BN γ/β, biases): r = 1 and wd = 0, i.e. plain SGD with
// momentum at the global LR. Arithmetic per element is fp32; norms and r are
// accumulated/computed in double.
#pragma once

#include <cstdint>
#include <span>

namespace dtrain::cpu {

struct TensorSlice {
  int64_t offset = 0;  // first element in the flat buffers
  int64_t size = 0;    // elements
  bool no_decay = false;
};

// weight_norms[i] = ‖params[tensor i]‖₂, grad_norms[i] = ‖grads[tensor i]‖₂
// for every tensor in one call (the paper's batched norm). Double accumulation.
void TensorNorms(const float* params, const float* grads, std::span<const TensorSlice> tensors,
                 float* weight_norms, float* grad_norms);

struct SgdHyper {
  float lr = 0;
  float momentum = 0.9f;
  float weight_decay = 0;
  bool nesterov = false;
};

struct LarsHyper {
  float lr = 0;
  float momentum = 0.9f;
  float weight_decay = 0;
  float eta = 0.001f;
  float epsilon = 1e-9f;
  bool nesterov = false;
};

// The LARS local learning rate r defined above (for a decayed tensor).
double LarsLocalLr(double weight_norm, double grad_norm, double eta, double weight_decay, double epsilon);

// SGD with momentum and weight decay over all tensors.
void SgdUpdate(float* params, const float* grads, float* momentum, std::span<const TensorSlice> tensors,
               const SgdHyper& h);

// LARS over all tensors; the norms come from TensorNorms on the same params/grads.
void LarsUpdate(float* params, const float* grads, float* momentum, std::span<const TensorSlice> tensors,
                const float* weight_norms, const float* grad_norms, const LarsHyper& h);

}  // namespace dtrain::cpu
