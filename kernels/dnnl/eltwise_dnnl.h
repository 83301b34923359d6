// The residual join on oneDNN (fp32), in the activations' layout:
//   AddRelu:      y = max(a + b, 0)   (binary add with a ReLU post-op; y may
//                 alias a; b may have another layout of the same dims)
//   ReluBackward: dx = dy where y > 0, else 0   (y: the ReLU's output; dx
//                 may alias dy)
// the same arithmetic as kernels/cpu/residual_add.h and relu.h. Primitives
// are created once per layout pair and cached.
#pragma once

#include <cstddef>
#include <memory>

#include "kernels/dnnl/runtime.h"

namespace dtrain::onednn {

class EltwiseDnnl {
 public:
  explicit EltwiseDnnl(int threads = 1);
  ~EltwiseDnnl();
  EltwiseDnnl(const EltwiseDnnl&) = delete;
  EltwiseDnnl& operator=(const EltwiseDnnl&) = delete;

  void AddRelu(const Desc& ad, const float* a, const Desc& bd, const float* b, float* y);
  void ReluBackward(const Desc& d, const float* y, const float* dy, float* dx);

  size_t primitives_created() const;

 private:
  struct Impl;
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::onednn
