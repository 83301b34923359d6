#include "worker/optim/optimizer.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace dtrain::optim {

Optimizer::Optimizer(const OptimizerSpec& spec, std::vector<cpu::TensorSlice> tensors, int64_t num_params)
    : spec_(spec), lars_(spec.name == "lars"), tensors_(std::move(tensors)), num_params_(num_params) {
  if (spec.name != "sgd" && spec.name != "lars")
    Fail(ErrorCode::kInvalidArgument, "optimizer.name: '" + spec.name + "'; allowed: sgd, lars");
  if (!(spec.momentum >= 0 && spec.momentum < 1))
    Fail(ErrorCode::kInvalidArgument, "optimizer.momentum: " + std::to_string(spec.momentum) + "; allowed: [0, 1)");
  if (!(spec.weight_decay >= 0))
    Fail(ErrorCode::kInvalidArgument, "optimizer.weight_decay: must be >= 0");
  if (lars_ && (!(spec.lars_eta > 0) || !(spec.lars_epsilon >= 0)))
    Fail(ErrorCode::kInvalidArgument, "optimizer: lars_eta must be > 0 and lars_epsilon >= 0");
  std::vector<cpu::TensorSlice> sorted = tensors_;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  int64_t end = 0;
  for (const cpu::TensorSlice& t : sorted) {
    if (t.offset < end || t.size < 0 || t.offset + t.size > num_params)
      Fail(ErrorCode::kInvalidArgument, "Optimizer: tensor [" + std::to_string(t.offset) + ", " +
                                            std::to_string(t.offset + t.size) + ") overlaps another or lies outside [0, " +
                                            std::to_string(num_params) + ")");
    end = t.offset + t.size;
  }
  momentum_.assign(num_params, 0.0f);
  if (lars_) {
    weight_norms_.assign(tensors_.size(), 0.0f);
    grad_norms_.assign(tensors_.size(), 0.0f);
  }
}

void Optimizer::Step(std::span<float> params, std::span<const float> grads, double lr) {
  if (static_cast<int64_t>(params.size()) != num_params_ || static_cast<int64_t>(grads.size()) != num_params_)
    Fail(ErrorCode::kInvalidArgument, "Optimizer::Step: params/grads hold " + std::to_string(params.size()) + "/" +
                                          std::to_string(grads.size()) + " values, expected " +
                                          std::to_string(num_params_));
  if (lars_) {
    cpu::TensorNorms(params.data(), grads.data(), tensors_, weight_norms_.data(), grad_norms_.data());
    cpu::LarsHyper h{.lr = static_cast<float>(lr),
                     .momentum = static_cast<float>(spec_.momentum),
                     .weight_decay = static_cast<float>(spec_.weight_decay),
                     .eta = static_cast<float>(spec_.lars_eta),
                     .epsilon = static_cast<float>(spec_.lars_epsilon),
                     .nesterov = spec_.nesterov};
    cpu::LarsUpdate(params.data(), grads.data(), momentum_.data(), tensors_, weight_norms_.data(),
                    grad_norms_.data(), h);
  } else {
    cpu::SgdHyper h{.lr = static_cast<float>(lr),
                    .momentum = static_cast<float>(spec_.momentum),
                    .weight_decay = static_cast<float>(spec_.weight_decay),
                    .nesterov = spec_.nesterov};
    cpu::SgdUpdate(params.data(), grads.data(), momentum_.data(), tensors_, h);
  }
}

}  // namespace dtrain::optim
