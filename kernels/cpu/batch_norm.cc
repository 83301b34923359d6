// Elementwise loops here must vectorise: the build's -O2 does not vectorise
// loops that need an epilogue, so dtrain_kernels_cpu builds with -O3, and loops that may
// run in place (output == input, index for index) carry `ivdep`.
#include "kernels/cpu/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace dtrain::cpu {
namespace {

constexpr int kLanes = 16;  // independent partial sums: vectorises without -ffast-math

// sum(a) and sum(a * a) with a = x - shift, over len values.
template <typename T>
void SumAndSquares(const T* x, long len, T shift, double* sum, double* sumsq) {
  T s[kLanes] = {}, q[kLanes] = {};
  long i = 0;
  for (; i + kLanes <= len; i += kLanes)
    #pragma GCC ivdep
    for (int l = 0; l < kLanes; ++l) {
      const T a = x[i + l] - shift;
      s[l] += a;
      q[l] += a * a;
    }
  double ts = 0, tq = 0;
  for (; i < len; ++i) {
    const T a = x[i] - shift;
    ts += a;
    tq += a * a;
  }
  for (int l = 0; l < kLanes; ++l) ts += s[l], tq += q[l];
  *sum += ts;
  *sumsq += tq;
}

// y = a * x + b, optionally followed by ReLU.
template <typename T>
void Affine(const T* x, long len, T a, T b, bool relu, T* y) {
  if (relu) {
    #pragma GCC ivdep
    for (long i = 0; i < len; ++i) y[i] = std::max(a * x[i] + b, T(0));
  } else {
    #pragma GCC ivdep
    for (long i = 0; i < len; ++i) y[i] = a * x[i] + b;
  }
}

// out = dy where the fused ReLU's output m > 0, else 0 (out may alias dy).
template <typename T>
void Mask(const T* dy, const T* m, long len, T* out) {
#pragma GCC ivdep
  for (long i = 0; i < len; ++i) {
    const T g = dy[i];
    out[i] = m[i] > T(0) ? g : T(0);
  }
}

// sum(dy) and sum(dy * (x - mean)) over len values.
template <typename T>
void GradSums(const T* x, const T* dy, long len, T mean, double* sdy, double* sdyx) {
  T a[kLanes] = {}, b[kLanes] = {};
  long i = 0;
  for (; i + kLanes <= len; i += kLanes)
#pragma GCC ivdep
    for (int l = 0; l < kLanes; ++l) {
      a[l] += dy[i + l];
      b[l] += dy[i + l] * (x[i + l] - mean);
    }
  double ta = 0, tb = 0;
  for (; i < len; ++i) {
    ta += dy[i];
    tb += dy[i] * (x[i] - mean);
  }
  for (int l = 0; l < kLanes; ++l) ta += a[l], tb += b[l];
  *sdy += ta;
  *sdyx += tb;
}

}  // namespace

void BatchNormShape::Check() const {
  if (n <= 0 || c <= 0 || hw <= 0)
    Fail(ErrorCode::kInvalidArgument,
         "batch_norm: shape must be positive, got n=" + std::to_string(n) +
             " c=" + std::to_string(c) + " hw=" + std::to_string(hw));
}

template <typename T>
void BatchNormForwardTraining(const BatchNormShape& s, const T* x,
                              const T* gamma, const T* beta, double epsilon,
                              double momentum, T* running_mean,
                              T* running_var, T* save_mean, T* save_inv_std,
                              T* y, bool relu) {
  s.Check();
  if (s.n * long(s.hw) < 2)
    Fail(ErrorCode::kInvalidArgument,
         "batch_norm: training needs more than one value per channel");
  const long hw = s.hw, chw = long(s.c) * hw;
  const double m = double(s.n) * hw;
  for (int c = 0; c < s.c; ++c) {
    // Shifted sums (shift = first value) keep the one-pass variance accurate.
    const double shift = x[c * hw];
    double sum = 0, sumsq = 0;
    for (int n = 0; n < s.n; ++n)
      SumAndSquares(x + n * chw + c * hw, hw, T(shift), &sum, &sumsq);
    const double dmean = sum / m;
    const double var = std::max(0.0, sumsq / m - dmean * dmean);
    const double mean = shift + dmean;
    const double inv_std = 1.0 / std::sqrt(var + epsilon);
    save_mean[c] = T(mean);
    save_inv_std[c] = T(inv_std);
    running_mean[c] = T(momentum * running_mean[c] + (1 - momentum) * mean);
    running_var[c] =
        T(momentum * running_var[c] + (1 - momentum) * var * m / (m - 1));
    const T a = T(gamma[c] * inv_std), b = T(beta[c] - gamma[c] * inv_std * mean);
    for (int n = 0; n < s.n; ++n)
      Affine(x + n * chw + c * hw, hw, a, b, relu, y + n * chw + c * hw);
  }
}

template <typename T>
void BatchNormForwardInference(const BatchNormShape& s, const T* x,
                               const T* gamma, const T* beta,
                               const T* running_mean, const T* running_var,
                               double epsilon, T* y, bool relu) {
  s.Check();
  const long hw = s.hw, chw = long(s.c) * hw;
  for (int c = 0; c < s.c; ++c) {
    const double inv_std = 1.0 / std::sqrt(double(running_var[c]) + epsilon);
    const T a = T(gamma[c] * inv_std);
    const T b = T(beta[c] - gamma[c] * inv_std * running_mean[c]);
    for (int n = 0; n < s.n; ++n)
      Affine(x + n * chw + c * hw, hw, a, b, relu, y + n * chw + c * hw);
  }
}

template <typename T>
void BatchNormBackward(const BatchNormShape& s, const T* x, const T* dy,
                       const T* gamma, const T* save_mean,
                       const T* save_inv_std, T* dx, T* dgamma, T* dbeta,
                       const T* relu_y) {
  s.Check();
  const long hw = s.hw, chw = long(s.c) * hw;
  const double m = double(s.n) * hw;
  for (int c = 0; c < s.c; ++c) {
    const T mean = save_mean[c];
    double sdy = 0, sdyx = 0;  // sum dy, sum dy * (x - mean)
    // With a fused ReLU, mask dy into dx plane by plane (still in cache for
    // the sums), then work from dx.
    const T* g = relu_y ? dx : dy;
    for (int n = 0; n < s.n; ++n) {
      const long o = n * chw + c * hw;
      if (relu_y) Mask(dy + o, relu_y + o, hw, dx + o);
      GradSums(x + o, g + o, hw, mean, &sdy, &sdyx);
    }
    const double inv_std = save_inv_std[c];
    const double dg = sdyx * inv_std;  // sum dy * xhat
    dgamma[c] = T(dg);
    dbeta[c] = T(sdy);
    // dx = gamma*inv_std * (dy - sdy/m - xhat * dg/m)
    const double k = gamma[c] * inv_std;
    const T k1 = T(k), k2 = T(-k * inv_std * inv_std * sdyx / m),
            k3 = T(-k * sdy / m);
    for (int n = 0; n < s.n; ++n) {
      const long o = n * chw + c * hw;
      const T* xp = x + o;
      const T* dp = g + o;
      T* op = dx + o;
#pragma GCC ivdep
      for (long i = 0; i < hw; ++i) op[i] = k1 * dp[i] + k2 * (xp[i] - mean) + k3;
    }
  }
}

#define DTRAIN_BN(T)                                                          \
  template void BatchNormForwardTraining<T>(const BatchNormShape&, const T*,  \
      const T*, const T*, double, double, T*, T*, T*, T*, T*, bool);          \
  template void BatchNormForwardInference<T>(const BatchNormShape&, const T*, \
      const T*, const T*, const T*, const T*, double, T*, bool);              \
  template void BatchNormBackward<T>(const BatchNormShape&, const T*,         \
      const T*, const T*, const T*, const T*, T*, T*, T*, const T*);
DTRAIN_BN(float)
DTRAIN_BN(double)
#undef DTRAIN_BN

}  // namespace dtrain::cpu
