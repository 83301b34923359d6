// Label-smoothed softmax cross-entropy on the device, fp32 math, for logits
// [n, classes] (fp32 or fp16, row-major), int32 labels, smoothing eps:
//   t = (1 − eps)·onehot(label) + eps/classes
//   loss[i] = −Σ_k t_k · log softmax(logits[i])_k
//   dlogits[i, k] = loss_scale · (softmax_k − t_k) / n      (d mean-loss, scaled)
// SoftmaxCrossEntropy: one block per row; writes loss[n] (required), dlogits
// (fp32 or fp16; nullable: forward only) and hits[n] (nullable: 1 where the
// arg-max logit, first on ties, equals the label, else 0).
// MeanLossAndCorrect: one single-block launch; mean_loss[0] = mean of loss
// (nullable) and correct[0] = sum of hits (nullable; needs hits). Both are
// deterministic (fixed reduction order).
// A label outside [0, classes) (device data, not checked on the host) gives
// a NaN loss and NaN dlogits for that row. Reference:
// kernels/cpu/softmax_cross_entropy.h (forward mean, backward / n).
// loss_scale is given by value, or (the overload taking loss_scale_dev) read
// by the kernel from device memory at run time, so a captured CUDA graph
// sees each step's scale; for the same value both give bit-identical
// results (one kernel; grad_coef = float(double(loss_scale) / n) on the
// device in both cases). A device loss scale is not validated, it is used
// as is: a non-finite one makes dlogits inf/NaN (the backward pass then
// overflows and UnscaleAndCheck/CheckFinite flag it); a zero or negative one
// is not detected.
// Throws kInvalidArgument (shape not positive, eps not in [0, 1), loss_scale
// not finite > 0, null required pointer, null loss_scale_dev), kInternal
// (launch error).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dtrain::cuda {

// TIn, TOut: float or __half (all four combinations are instantiated).
template <typename TIn, typename TOut>
void SoftmaxCrossEntropy(int n, int classes, const TIn* logits, const int32_t* labels, float label_smoothing,
                         float loss_scale, float* loss, TOut* dlogits, int32_t* hits, cudaStream_t stream);
template <typename TIn, typename TOut>
void SoftmaxCrossEntropy(int n, int classes, const TIn* logits, const int32_t* labels, float label_smoothing,
                         const float* loss_scale_dev, float* loss, TOut* dlogits, int32_t* hits,
                         cudaStream_t stream);

void MeanLossAndCorrect(int n, const float* loss, const int32_t* hits, float* mean_loss, int32_t* correct,
                        cudaStream_t stream);

}  // namespace dtrain::cuda
