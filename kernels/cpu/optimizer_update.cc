#include "kernels/cpu/optimizer_update.h"

#include <cmath>

namespace dtrain::cpu {
namespace {

// v = m·v + step·(g + wd·w); w -= v (or the Nesterov form), over one tensor.
void MomentumStep(float* w, const float* g, float* v, int64_t n, float step, float m, float wd, bool nesterov) {
  if (nesterov) {
    for (int64_t i = 0; i < n; ++i) {
      const float d = step * (g[i] + wd * w[i]);
      v[i] = m * v[i] + d;
      w[i] -= m * v[i] + d;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      v[i] = m * v[i] + step * (g[i] + wd * w[i]);
      w[i] -= v[i];
    }
  }
}

}  // namespace

void TensorNorms(const float* params, const float* grads, std::span<const TensorSlice> tensors,
                 float* weight_norms, float* grad_norms) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    const float* w = params + tensors[t].offset;
    const float* g = grads + tensors[t].offset;
    double ww = 0, gg = 0;
    for (int64_t i = 0; i < tensors[t].size; ++i) {
      ww += double{w[i]} * w[i];
      gg += double{g[i]} * g[i];
    }
    weight_norms[t] = static_cast<float>(std::sqrt(ww));
    grad_norms[t] = static_cast<float>(std::sqrt(gg));
  }
}

double LarsLocalLr(double weight_norm, double grad_norm, double eta, double weight_decay, double epsilon) {
  if (!(weight_norm > 0) || !(grad_norm > 0)) return 1.0;
  return eta * weight_norm / (grad_norm + weight_decay * weight_norm + epsilon);
}

void SgdUpdate(float* params, const float* grads, float* momentum, std::span<const TensorSlice> tensors,
               const SgdHyper& h) {
  for (const TensorSlice& t : tensors)
    MomentumStep(params + t.offset, grads + t.offset, momentum + t.offset, t.size, h.lr, h.momentum,
                 t.no_decay ? 0.0f : h.weight_decay, h.nesterov);
}

void LarsUpdate(float* params, const float* grads, float* momentum, std::span<const TensorSlice> tensors,
                const float* weight_norms, const float* grad_norms, const LarsHyper& h) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSlice& t = tensors[i];
    float step = h.lr, wd = 0.0f;
    if (!t.no_decay) {
      wd = h.weight_decay;
      step = static_cast<float>(h.lr * LarsLocalLr(weight_norms[i], grad_norms[i], h.eta, wd, h.epsilon));
    }
    MomentumStep(params + t.offset, grads + t.offset, momentum + t.offset, t.size, step, h.momentum, wd,
                 h.nesterov);
  }
}

}  // namespace dtrain::cpu
