// Per-channel affine over NCHW: y = gamma[c] * x + beta[c], optionally
// followed by ReLU. It stands in for batch norm when a model is built without
// batch statistics (every sample then is independent of the others).
// Backward overwrites dx (may alias dy), dgamma = sum dy*x, dbeta = sum dy;
// with a fused ReLU pass its output as relu_y and dy is masked where
// relu_y <= 0. Shapes as BatchNormShape.
#pragma once

#include "kernels/cpu/batch_norm.h"

namespace dtrain::cpu {

template <typename T>
void ChannelAffineForward(const BatchNormShape& s, const T* x, const T* gamma,
                          const T* beta, T* y, bool relu = false);

template <typename T>
void ChannelAffineBackward(const BatchNormShape& s, const T* x, const T* dy,
                           const T* gamma, T* dx, T* dgamma, T* dbeta,
                           const T* relu_y = nullptr);

}  // namespace dtrain::cpu
