// Label-smoothed softmax cross-entropy forward + backward (contract in
// softmax_xent.h).
#include "kernels/cuda/softmax_xent.h"

#include <climits>
#include <cmath>
#include <string>

#include "common/error.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/check.h"

namespace dtrain::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ void Store(float* p, float v) { *p = v; }
__device__ __forceinline__ void Store(__half* p, float v) { *p = __float2half_rn(v); }

// One block per row (n rows). off = eps/C, on = 1 − eps + off; the scale is
// loss_scale_dev ? *loss_scale_dev : loss_scale, grad_coef = scale/n (double
// division, rounded once to float: what the host computed before).
template <typename TIn, typename TOut>
__global__ void __launch_bounds__(kThreads)
    SoftmaxXentKernel(int n, int classes, const TIn* __restrict__ logits, const int32_t* __restrict__ labels,
                      float off, float on, float loss_scale, const float* __restrict__ loss_scale_dev,
                      float* __restrict__ loss, TOut* __restrict__ dlogits, int32_t* __restrict__ hits) {
  __shared__ float fscratch[32];
  __shared__ detail::ArgMax ascratch[32];
  const int64_t row = blockIdx.x;
  const TIn* z = logits + row * classes;
  const int label = labels[row];
  const bool valid = label >= 0 && label < classes;

  // max and arg-max (first on ties)
  detail::ArgMax best{-INFINITY, INT_MAX};
  for (int k = threadIdx.x; k < classes; k += blockDim.x) best = detail::Better(best, {ToFloat(z[k]), k});
  best = detail::BlockArgMax(best, ascratch);
  const float mx = best.value;

  // Σ exp(z − mx) and Σ (z − mx)
  float sum = 0, zsum = 0;
  for (int k = threadIdx.x; k < classes; k += blockDim.x) {
    const float s = ToFloat(z[k]) - mx;
    sum += expf(s);
    zsum += s;
  }
  sum = detail::BlockSum(sum, fscratch);
  zsum = detail::BlockSum(zsum, fscratch);
  const float log_sum = logf(sum);

  if (threadIdx.x == 0) {
    float l = NAN;
    if (valid) {
      const float zl = ToFloat(z[label]) - mx;
      l = -(off * (zsum - float(classes) * log_sum) + (on - off) * (zl - log_sum));
    }
    loss[row] = l;
    if (hits != nullptr) hits[row] = valid && best.index == label ? 1 : 0;
  }
  if (dlogits == nullptr) return;
  const float scale = loss_scale_dev != nullptr ? *loss_scale_dev : loss_scale;
  const float grad_coef = __double2float_rn(__ddiv_rn(double(scale), double(n)));
  const float inv_sum = 1.0f / sum;
  TOut* d = dlogits + row * classes;
  for (int k = threadIdx.x; k < classes; k += blockDim.x) {
    const float p = expf(ToFloat(z[k]) - mx) * inv_sum;
    const float t = k == label ? on : off;
    Store(d + k, valid ? (p - t) * grad_coef : NAN);
  }
}

__global__ void __launch_bounds__(kThreads)
    MeanKernel(int n, const float* __restrict__ loss, const int32_t* __restrict__ hits, float* __restrict__ mean_loss,
               int32_t* __restrict__ correct) {
  __shared__ double dscratch[32];
  __shared__ long long iscratch[32];
  double s = 0;
  long long c = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    if (mean_loss != nullptr) s += loss[i];
    if (correct != nullptr) c += hits[i];
  }
  s = detail::BlockSum(s, dscratch);
  c = detail::BlockSum(c, iscratch);
  if (threadIdx.x == 0) {
    if (mean_loss != nullptr) *mean_loss = static_cast<float>(s / n);
    if (correct != nullptr) *correct = static_cast<int32_t>(c);
  }
}

void CheckNotNull(const void* p, const char* name) {
  if (p == nullptr) Fail(ErrorCode::kInvalidArgument, std::string("softmax_xent: ") + name + " is null");
}

void CheckShape(int n, int classes, float label_smoothing) {
  if (n <= 0 || classes <= 0)
    Fail(ErrorCode::kInvalidArgument, "softmax_xent: shape must be positive, got n=" + std::to_string(n) +
                                          " classes=" + std::to_string(classes));
  if (!(label_smoothing >= 0 && label_smoothing < 1))
    Fail(ErrorCode::kInvalidArgument,
         "softmax_xent: label_smoothing must be in [0, 1), got " + std::to_string(label_smoothing));
}

// Both public overloads: the scale is loss_scale (loss_scale_dev null) or
// *loss_scale_dev, read by the kernel.
template <typename TIn, typename TOut>
void Launch(int n, int classes, const TIn* logits, const int32_t* labels, float label_smoothing, float loss_scale,
            const float* loss_scale_dev, float* loss, TOut* dlogits, int32_t* hits, cudaStream_t stream) {
  CheckNotNull(logits, "logits");
  CheckNotNull(labels, "labels");
  CheckNotNull(loss, "loss");
  const double off = double(label_smoothing) / classes;
  const double on = 1.0 - label_smoothing + off;
  SoftmaxXentKernel<TIn, TOut><<<n, kThreads, 0, stream>>>(n, classes, logits, labels, static_cast<float>(off),
                                                           static_cast<float>(on), loss_scale, loss_scale_dev,
                                                           loss, dlogits, hits);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename TIn, typename TOut>
void SoftmaxCrossEntropy(int n, int classes, const TIn* logits, const int32_t* labels, float label_smoothing,
                         float loss_scale, float* loss, TOut* dlogits, int32_t* hits, cudaStream_t stream) {
  CheckShape(n, classes, label_smoothing);
  if (!(std::isfinite(loss_scale) && loss_scale > 0))
    Fail(ErrorCode::kInvalidArgument,
         "softmax_xent: loss_scale must be finite and > 0, got " + std::to_string(loss_scale));
  Launch(n, classes, logits, labels, label_smoothing, loss_scale, nullptr, loss, dlogits, hits, stream);
}

template <typename TIn, typename TOut>
void SoftmaxCrossEntropy(int n, int classes, const TIn* logits, const int32_t* labels, float label_smoothing,
                         const float* loss_scale_dev, float* loss, TOut* dlogits, int32_t* hits,
                         cudaStream_t stream) {
  CheckShape(n, classes, label_smoothing);
  CheckNotNull(loss_scale_dev, "loss_scale_dev");
  Launch(n, classes, logits, labels, label_smoothing, 0.0f, loss_scale_dev, loss, dlogits, hits, stream);
}

void MeanLossAndCorrect(int n, const float* loss, const int32_t* hits, float* mean_loss, int32_t* correct,
                        cudaStream_t stream) {
  if (n <= 0) Fail(ErrorCode::kInvalidArgument, "MeanLossAndCorrect: n must be positive, got " + std::to_string(n));
  if (mean_loss != nullptr) CheckNotNull(loss, "loss");
  if (correct != nullptr) CheckNotNull(hits, "hits");
  if (mean_loss == nullptr && correct == nullptr) return;
  MeanKernel<<<1, kThreads, 0, stream>>>(n, loss, hits, mean_loss, correct);
  CUDA_CHECK_LAUNCH();
}

#define DTRAIN_SOFTMAX_XENT(TIn, TOut)                                                                          \
  template void SoftmaxCrossEntropy<TIn, TOut>(int, int, const TIn*, const int32_t*, float, float, float*,         \
                                               TOut*, int32_t*, cudaStream_t);                                     \
  template void SoftmaxCrossEntropy<TIn, TOut>(int, int, const TIn*, const int32_t*, float, const float*, float*, \
                                               TOut*, int32_t*, cudaStream_t);
DTRAIN_SOFTMAX_XENT(float, float)
DTRAIN_SOFTMAX_XENT(float, __half)
DTRAIN_SOFTMAX_XENT(__half, float)
DTRAIN_SOFTMAX_XENT(__half, __half)
#undef DTRAIN_SOFTMAX_XENT

}  // namespace dtrain::cuda
