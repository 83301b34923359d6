// Batch normalisation over NCHW (spatial BN): statistics per channel c over
// the n*hw values of that channel.
//   training:  y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta, with the
//              batch mean and biased batch variance; the running averages are
//              updated as running = momentum * running + (1 - momentum) * batch
//              (running_var takes the unbiased batch variance, as PyTorch/cuDNN).
//              save_mean / save_inv_std (c values each) feed the backward pass.
//   inference: the same with running_mean / running_var.
//   backward:  dx, dgamma, dbeta from dy and the saved statistics (dx may
//              alias dy). All outputs are overwritten.
// Fused ReLU: with relu = true the forward writes max(y, 0); give the
// backward that output as relu_y and it takes dy as the gradient of the ReLU
// output (masking it where relu_y <= 0). Saves a pass each way.
#pragma once

namespace dtrain::cpu {

struct BatchNormShape {
  int n = 0, c = 0, hw = 0;  // batch, channels, spatial size h*w
  void Check() const;
};

template <typename T>
void BatchNormForwardTraining(const BatchNormShape& s, const T* x,
                              const T* gamma, const T* beta, double epsilon,
                              double momentum, T* running_mean,
                              T* running_var, T* save_mean, T* save_inv_std,
                              T* y, bool relu = false);

template <typename T>
void BatchNormForwardInference(const BatchNormShape& s, const T* x,
                               const T* gamma, const T* beta,
                               const T* running_mean, const T* running_var,
                               double epsilon, T* y, bool relu = false);

template <typename T>
void BatchNormBackward(const BatchNormShape& s, const T* x, const T* dy,
                       const T* gamma, const T* save_mean,
                       const T* save_inv_std, T* dx, T* dgamma, T* dbeta,
                       const T* relu_y = nullptr);

}  // namespace dtrain::cpu
