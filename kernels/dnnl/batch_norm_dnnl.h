// Batch normalization on oneDNN (fp32), in whatever layout the activations
// have (d: the [n, c, h, w] tensor's desc, e.g. a convolution's blocked dst):
// the same arithmetic as kernels/cpu/batch_norm.h, with the statistics kept
// as (mean, biased variance) instead of (mean, 1/std).
//
//   ForwardTraining: batch statistics -> mean[c], var[c] (biased); y =
//     gamma * (x - mean) / sqrt(var + eps) + beta, then ReLU when relu (its
//     mask goes to ws, WorkspaceBytes(d, relu) bytes, for Backward). The
//     running statistics are the caller's (it has mean and var).
//   ForwardInference: the same with given mean/var (the running ones).
//   Backward: dx, dgamma, dbeta from dy (dL/d of the ReLU's output when relu,
//     masked by ws; oneDNN wants beta here too). dx may alias dy; y may
//     alias x.
// Primitives are created once per (desc, relu) and cached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/dnnl/runtime.h"

namespace dtrain::onednn {

class BatchNormDnnl {
 public:
  explicit BatchNormDnnl(int threads = 1);
  ~BatchNormDnnl();
  BatchNormDnnl(const BatchNormDnnl&) = delete;
  BatchNormDnnl& operator=(const BatchNormDnnl&) = delete;

  size_t WorkspaceBytes(const Desc& d, float eps, bool relu);
  void ForwardTraining(const Desc& d, float eps, bool relu, const float* x, const float* gamma,
                       const float* beta, float* y, float* mean, float* var, uint8_t* ws);
  void ForwardInference(const Desc& d, float eps, bool relu, const float* x, const float* gamma,
                        const float* beta, const float* mean, const float* var, float* y);
  void Backward(const Desc& d, float eps, bool relu, const float* x, const float* dy,
                const float* gamma, const float* beta, const float* mean, const float* var, const uint8_t* ws,
                float* dx, float* dgamma, float* dbeta);

  std::string ImplInfo(const Desc& d, float eps, bool relu);
  size_t primitives_created() const;

 private:
  struct Impl;
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::onednn
