// Spatial batch norm on cuDNN: NHWC fp16 x/y/z, fp32 parameters and
// statistics, y = act(BN(x) [+ z]) with act none, relu or add_relu.
// Semantics of kernels/cpu/batch_norm.h (the CPU reference): momentum m means
// running = m*running + (1-m)*batch (cuDNN's exponentialAverageFactor is 1-m);
// running_var takes the unbiased batch variance; save_inv_std is
// 1/sqrt(var_B + eps) (biased var_B); Backward needs the same epsilon. Every
// output is overwritten, never accumulated.
// Training path, fixed per (shape, act) so ReserveBytes, ForwardTraining and
// Backward agree: c % 4 == 0 (and cuDNN's size queries accept it) -> the
// fused cudnnBatchNormalization{ForwardTraining,Backward}Ex in
// CUDNN_BATCHNORM_SPATIAL_PERSISTENT with bnOps BN / BN_ACTIVATION /
// BN_ADD_ACTIVATION (ReLU descriptor); else CUDNN_BATCHNORM_SPATIAL, bnOps BN,
// plus the kernels of bn_activation.h. Inference: ForwardInference (SPATIAL)
// plus bn_activation.h (cuDNN has no fused inference op).
// These legacy calls are CUDNN_DEPRECATED in cuDNN 9 (PyTorch still uses
// them): the warning is silenced locally (#pragma GCC diagnostic) here and in
// batch_norm_cudnn.cc.
// No output may be the same buffer as an input or another output (exact
// aliasing throws; partial overlap is the caller's bug): cuDNN does not
// document in-place batch norm, so unlike the CPU op dx must not alias dy.
// Not thread-safe: each call sets the handle's stream; the object owns one
// device workspace (grown on demand, which synchronises the stream): use one
// object per stream. Throws kInvalidArgument (CheckBnArgs; a null reserve
// where one is needed), kInternal (cuDNN / CUDA failure, naming the call,
// the shape and the path).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <cudnn.h>
#pragma GCC diagnostic pop

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/cpu/batch_norm.h"  // cpu::BatchNormShape {n, c, hw}

namespace dtrain::cuda {

enum class BnActivation { kNone, kRelu, kAddRelu };  // y = act(BN(x) [+ z])
const char* BnActivationName(BnActivation act);      // "none", "relu", "add_relu"

// The argument checks every CudnnBatchNorm call runs first, before touching
// cuDNN or the device (exposed for host tests). Throws kInvalidArgument naming
// the call, the shape and the bad argument when: a dimension is <= 0 or
// n*hw*c > INT32_MAX (cuDNN's legacy descriptors); training with n*hw < 2;
// epsilon is not finite or < CUDNN_BN_MIN_EPSILON; training momentum is not in
// [0, 1]; a pointer the call needs is null, or z / dz is given without
// kAddRelu; an output aliases an input or another output (see above).
enum class BnPass { kForwardTraining, kForwardInference, kBackward };
struct BnArgs {  // one call's arguments (null where the call has none)
  BnPass pass = BnPass::kForwardTraining;
  cpu::BatchNormShape shape;
  BnActivation act = BnActivation::kNone;
  double epsilon = 1e-5;
  double momentum = 0.9;  // training only
  const void* x = nullptr;
  const void* z = nullptr;
  const void* y = nullptr;  // Backward: required unless kNone
  const void* dy = nullptr;
  const void* dx = nullptr;
  const void* dz = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  const float* running_mean = nullptr;
  const float* running_var = nullptr;
  const float* save_mean = nullptr;
  const float* save_inv_std = nullptr;
  const float* dgamma = nullptr;
  const float* dbeta = nullptr;
};
void CheckBnArgs(const BnArgs& a);

class CudnnBatchNorm {
 public:
  explicit CudnnBatchNorm(cudnnHandle_t handle);  // not owned; must outlive this
  ~CudnnBatchNorm();
  CudnnBatchNorm(const CudnnBatchNorm&) = delete;
  CudnnBatchNorm& operator=(const CudnnBatchNorm&) = delete;

  // Bytes of the reserve space Forward must leave for Backward (per layer
  // call; the caller owns it; may be 0).
  size_t ReserveBytes(const cpu::BatchNormShape& s, BnActivation act);
  // How training of (s, act) runs: UsesPersistentPath is true on the fused
  // persistent cuDNN path, false on SPATIAL + own activation kernels;
  // PathDescription says which, with the workspace and reserve sizes and, on
  // the fallback, why (c % 4 != 0, or the status cuDNN's size queries gave).
  // For diagnostics and tests; both validate s like ReserveBytes.
  bool UsesPersistentPath(const cpu::BatchNormShape& s, BnActivation act);
  std::string PathDescription(const cpu::BatchNormShape& s, BnActivation act);

  // x, z (kAddRelu only, else null), y: device NHWC fp16 [n*hw*c]; gamma,
  // beta, running_mean, running_var, save_mean, save_inv_std: device fp32 [c];
  // reserve: device, ReserveBytes(s, act) bytes (null if 0).
  void ForwardTraining(const cpu::BatchNormShape& s, BnActivation act, const __half* x, const __half* z,
                       const float* gamma, const float* beta, double epsilon, double momentum,
                       float* running_mean, float* running_var, float* save_mean, float* save_inv_std,
                       void* reserve, __half* y, cudaStream_t stream);
  void ForwardInference(const cpu::BatchNormShape& s, BnActivation act, const __half* x, const __half* z,
                        const float* gamma, const float* beta, const float* running_mean,
                        const float* running_var, double epsilon, __half* y, cudaStream_t stream);
  // dy: gradient of y (after the activation); y: Forward's output (the
  // activation's mask; may be null for kNone); reserve: Forward's, untouched
  // since. Writes dx (fp16; must not alias dy), dz (kAddRelu: gradient of z,
  // else null), dgamma, dbeta (fp32).
  void Backward(const cpu::BatchNormShape& s, BnActivation act, const __half* x, const __half* y,
                const __half* dy, const float* gamma, const float* beta, const float* save_mean,
                const float* save_inv_std, double epsilon, void* reserve, __half* dx, __half* dz, float* dgamma,
                float* dbeta, cudaStream_t stream);

 private:
  struct Plan {  // how training of one (shape, act) runs, fixed once chosen
    int n, c, hw;
    BnActivation act;
    bool persistent;        // SPATIAL_PERSISTENT with act fused; else SPATIAL, bnOps BN
    int refused_status;     // fallback because cuDNN's size queries gave this status (0: c % 4)
    size_t forward_ws;      // cuDNN workspace bytes of ForwardTrainingEx
    size_t backward_ws;     // cuDNN workspace bytes of BackwardEx
    size_t backward_scratch;  // fallback kRelu: the masked dy, after backward_ws (aligned)
    size_t reserve;
  };
  Plan PlanFor(const cpu::BatchNormShape& s, BnActivation act);
  void SetDescriptors(const cpu::BatchNormShape& s, BnActivation act, bool persistent);
  void* Workspace(size_t bytes, cudaStream_t stream);

  cudnnHandle_t handle_ = nullptr;
  cudnnTensorDescriptor_t x_desc_ = nullptr;   // x, y, z, dx, dy, dz: NHWC fp16
  cudnnTensorDescriptor_t bn_desc_ = nullptr;  // 1xCx1x1 fp32, derived
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  cudnnActivationDescriptor_t relu_desc_ = nullptr;  // a CUDNN_DEPRECATED type in cuDNN 9
#pragma GCC diagnostic pop
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::vector<Plan> plans_;
};

}  // namespace dtrain::cuda
