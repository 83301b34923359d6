// Optimizer: SGD-momentum or LARS (OptimizerSpec.name "sgd" | "lars") over
// one flat fp32 parameter buffer, using the kernels of
// kernels/cpu/optimizer_update.h (their header defines the exact update and
// the momentum formulation). Owns the momentum buffer (zero at start).
// Tensors marked no_decay (BN, biases) get neither weight decay nor the LARS
// trust ratio. The learning rate comes from the caller (LrSchedule) per step.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/job_spec.h"
#include "kernels/cpu/optimizer_update.h"

namespace dtrain::optim {

class Optimizer {
 public:
  // Error(kInvalidArgument): unknown name, momentum outside [0, 1), negative
  // weight decay, non-positive LARS eta, or tensors that overlap or fall
  // outside [0, num_params).
  Optimizer(const OptimizerSpec& spec, std::vector<cpu::TensorSlice> tensors, int64_t num_params);

  // One update of `params` from `grads` (both num_params long) at rate lr.
  void Step(std::span<float> params, std::span<const float> grads, double lr);

  std::span<float> momentum() { return momentum_; }  // for checkpoints
  std::span<const float> momentum() const { return momentum_; }
  // Per-tensor norms measured by the last LARS Step (empty for SGD).
  std::span<const float> weight_norms() const { return weight_norms_; }
  std::span<const float> grad_norms() const { return grad_norms_; }
  const std::vector<cpu::TensorSlice>& tensors() const { return tensors_; }
  const OptimizerSpec& spec() const { return spec_; }

 private:
  OptimizerSpec spec_;
  bool lars_;
  std::vector<cpu::TensorSlice> tensors_;
  int64_t num_params_;
  std::vector<float> momentum_, weight_norms_, grad_norms_;
};

}  // namespace dtrain::optim
