// Fused multi-tensor LARS / SGD + momentum + weight decay update (contract in
// lars_update.h). Every arithmetic operation uses an explicit round-to-nearest
// intrinsic so nvcc cannot contract it into an FMA: the CPU reference
// (kernels/cpu/optimizer_update.cc) rounds each operation separately.
#include "kernels/cuda/lars_update.h"

#include <cmath>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/multi_tensor.cuh"

namespace dtrain::cuda {
namespace {

using detail::kMultiTensorThreads;
using detail::LoadFloat;

// cpu::LarsLocalLr, operation for operation, in double.
__device__ __forceinline__ double LarsLocalLr(double wn, double gn, double eta, double wd, double eps) {
  if (!(wn > 0) || !(gn > 0)) return 1.0;
  const double denom = __dadd_rn(__dadd_rn(gn, __dmul_rn(wd, wn)), eps);
  return __ddiv_rn(__dmul_rn(eta, wn), denom);
}

// lr = p.lr_dev ? *p.lr_dev : p.lr; the gradient scale is grad_scale_dev ?
// *grad_scale_dev : grad_scale.
template <typename G>
__global__ void __launch_bounds__(kMultiTensorThreads)
    MomentumUpdateKernel(TensorTableView table, float* __restrict__ master, float* __restrict__ momentum,
                         const G* __restrict__ grads, float grad_scale, const float* __restrict__ grad_scale_dev,
                         const float* __restrict__ weight_norms, const float* __restrict__ grad_norms,
                         __half* __restrict__ weights_half, const int* __restrict__ skip_flag,
                         MomentumUpdateParams p) {
  if (skip_flag != nullptr && *skip_flag != 0) return;
  const TensorChunk chunk = table.chunks[blockIdx.x];
  const DeviceTensor tensor = table.tensors[chunk.tensor];
  const float lr = p.lr_dev != nullptr ? *p.lr_dev : p.lr;
  const float gs = grad_scale_dev != nullptr ? *grad_scale_dev : grad_scale;

  float step = lr, wd = 0.0f;
  if (!tensor.no_decay) {
    wd = p.weight_decay;
    if (p.lars) {
      const double r = LarsLocalLr(weight_norms[chunk.tensor], grad_norms[chunk.tensor], p.eta, wd, p.epsilon);
      step = __double2float_rn(__dmul_rn(double(lr), r));
    }
  }
  const float m = p.momentum;

  for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x) {
    const float g = __fmul_rn(LoadFloat(grads, i), gs);
    float w = master[i];
    float v = momentum[i];
    const float d = __fmul_rn(step, __fadd_rn(g, __fmul_rn(wd, w)));
    v = __fadd_rn(__fmul_rn(m, v), d);
    if (p.nesterov)
      w = __fsub_rn(w, __fadd_rn(__fmul_rn(m, v), d));
    else
      w = __fsub_rn(w, v);
    momentum[i] = v;
    master[i] = w;
    if (weights_half != nullptr) weights_half[i] = __float2half_rn(w);
  }
}

void CheckFiniteParam(const char* name, float v) {
  if (!std::isfinite(v))
    Fail(ErrorCode::kInvalidArgument,
         std::string("FusedMomentumUpdate: ") + name + " must be finite, got " + std::to_string(v));
}

// Every public overload; grad_scale_dev null: the scale is grad_scale.
template <typename G>
void Launch(const TensorTableView& table, float* master, float* momentum, const G* grads, float grad_scale,
            const float* grad_scale_dev, const float* weight_norms, const float* grad_norms, __half* weights_half,
            const int* skip_flag, const MomentumUpdateParams& p, cudaStream_t stream) {
  const char* op = "FusedMomentumUpdate";
  detail::CheckTable(op, table);
  if (grad_scale_dev == nullptr) detail::CheckGradScale(op, grad_scale);
  if (p.lr_dev == nullptr) CheckFiniteParam("lr", p.lr);
  CheckFiniteParam("momentum", p.momentum);
  CheckFiniteParam("weight_decay", p.weight_decay);
  if (p.lars) {
    CheckFiniteParam("eta", p.eta);
    CheckFiniteParam("epsilon", p.epsilon);
  }
  if (table.num_tensors == 0) return;
  detail::CheckPointer(op, master, "master");
  detail::CheckPointer(op, momentum, "momentum");
  detail::CheckPointer(op, grads, "grads");
  if (p.lars) {
    detail::CheckPointer(op, weight_norms, "weight_norms (LARS)");
    detail::CheckPointer(op, grad_norms, "grad_norms (LARS)");
  }
  MomentumUpdateKernel<G><<<table.num_chunks, kMultiTensorThreads, 0, stream>>>(
      table, master, momentum, grads, grad_scale, grad_scale_dev, weight_norms, grad_norms, weights_half, skip_flag,
      p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const float* grads,
                         float grad_scale, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream) {
  Launch(table, master, momentum, grads, grad_scale, nullptr, weight_norms, grad_norms, weights_half, skip_flag, p,
         stream);
}

void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const __half* grads,
                         float grad_scale, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream) {
  Launch(table, master, momentum, grads, grad_scale, nullptr, weight_norms, grad_norms, weights_half, skip_flag, p,
         stream);
}

void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const float* grads,
                         const float* grad_scale_dev, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream) {
  detail::CheckPointer("FusedMomentumUpdate", grad_scale_dev, "grad_scale_dev");
  Launch(table, master, momentum, grads, 0.0f, grad_scale_dev, weight_norms, grad_norms, weights_half, skip_flag, p,
         stream);
}

void FusedMomentumUpdate(const TensorTableView& table, float* master, float* momentum, const __half* grads,
                         const float* grad_scale_dev, const float* weight_norms, const float* grad_norms,
                         __half* weights_half, const int* skip_flag, const MomentumUpdateParams& p,
                         cudaStream_t stream) {
  detail::CheckPointer("FusedMomentumUpdate", grad_scale_dev, "grad_scale_dev");
  Launch(table, master, momentum, grads, 0.0f, grad_scale_dev, weight_norms, grad_norms, weights_half, skip_flag, p,
         stream);
}

}  // namespace dtrain::cuda
