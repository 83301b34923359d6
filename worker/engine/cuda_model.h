// CudaResnet: forward and backward of a ResnetArch on one GPU, NHWC fp16
// activations, for the CUDA engine (cuda_engine.cc) and its parity test.
// Convolutions on cuDNN's graph API (kernels/cuda/conv_cudnn.h), batch norm
// with fused ReLU and add+ReLU on cuDNN (batch_norm_cudnn.h), max/avg pool
// (pool.h), FC on cuBLASLt (fc_cublaslt.h), label-smoothed softmax CE
// (softmax_xent.h). Everything is ENQUEUED on the caller's stream; nothing
// synchronises except the first use of a shape (plan building).
//
// Parameters live where DevicePlan (device_plan.h) puts them: conv and FC
// weights are read as fp16 copies (w16), BN gamma/beta and the FC bias as the
// fp32 masters; weight gradients are written as fp16 (g16, loss-scaled), BN
// and bias gradients as fp32 (g32, loss-scaled). Backward calls
// on_ready(tensor) right after enqueuing the last kernel that writes that
// tensor's gradient. Activations are allocated for max_batch images.
#pragma once

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "worker/engine/device_plan.h"
#include "worker/model/model.h"

namespace dtrain::engine {

struct CudaParams {
  const __half* w16 = nullptr;   // group 0 region, fp16
  const float* master = nullptr; // master weights (both regions)
  __half* g16 = nullptr;         // group 0 gradients
  float* g32 = nullptr;          // group 1 gradients
  float* bn_running = nullptr;   // resnet_arch.h buffer layout
};

// Per-family GPU time (profiling on): names and seconds since the last Take.
struct FamilyTimes {
  std::vector<std::string> names;
  std::vector<double> seconds;
};

class CudaResnet {
 public:
  CudaResnet(const model::ResnetArch& arch, const DevicePlan& plan, const model::ModelOptions& mo,
             int max_batch, cudnnHandle_t cudnn, cublasLtHandle_t lt);
  ~CudaResnet();
  CudaResnet(const CudaResnet&) = delete;
  CudaResnet& operator=(const CudaResnet&) = delete;

  // x: NHWC fp16 [n][H][W][plan.input_c_pad]; labels: device int32 [n].
  // training: batch statistics (running ones updated), dlogits kept for
  // Backward, scaled by *loss_scale (device memory: no host value is baked
  // into the step). Writes the mean loss (fp32) and the top-1 count (int32)
  // to mean_loss / correct (device).
  void Forward(const CudaParams& p, int n, const __half* x, const int32_t* labels, bool training,
               float label_smoothing, const float* loss_scale, float* mean_loss, int32_t* correct,
               cudaStream_t s);
  void Backward(const CudaParams& p, const std::function<void(int)>& on_ready, cudaStream_t s);

  int max_batch() const { return max_batch_; }
  void set_profiling(bool on);
  void set_autotune(bool on);
  // The BN running-average momentum, changeable between passes (precise BN).
  double bn_momentum() const;
  void set_bn_momentum(double m);
  // Device fp32 logits [n][classes] of the last Forward.
  const float* logits() const;
  FamilyTimes TakeProfile();  // synchronises the events of the profiled steps

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int max_batch_;
};

}  // namespace dtrain::engine
