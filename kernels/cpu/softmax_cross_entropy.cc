#include "kernels/cpu/softmax_cross_entropy.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace dtrain::cpu {
namespace {

void CheckArgs(const SoftmaxCrossEntropyShape& s, const int32_t* labels,
               double eps) {
  s.Check();
  if (!(eps >= 0 && eps < 1))
    Fail(ErrorCode::kInvalidArgument,
         "softmax_cross_entropy: label_smoothing must be in [0, 1), got " +
             std::to_string(eps));
  for (int i = 0; i < s.n; ++i)
    if (labels[i] < 0 || labels[i] >= s.classes)
      Fail(ErrorCode::kInvalidArgument,
           "softmax_cross_entropy: label " + std::to_string(labels[i]) +
               " of row " + std::to_string(i) + " outside [0, " +
               std::to_string(s.classes) + ")");
}

}  // namespace

void SoftmaxCrossEntropyShape::Check() const {
  if (n <= 0 || classes <= 0)
    Fail(ErrorCode::kInvalidArgument,
         "softmax_cross_entropy: shape must be positive, got n=" +
             std::to_string(n) + " classes=" + std::to_string(classes));
}

template <typename T>
int64_t Top1Correct(const SoftmaxCrossEntropyShape& s, const T* logits,
                    const int32_t* labels) {
  int64_t correct = 0;
  for (int i = 0; i < s.n; ++i) {
    const T* z = logits + long(i) * s.classes;
    int best = 0;
    for (int k = 1; k < s.classes; ++k)
      if (z[k] > z[best]) best = k;
    correct += best == labels[i];
  }
  return correct;
}

template <typename T>
int64_t TopKCorrect(const SoftmaxCrossEntropyShape& s, const T* logits,
                    const int32_t* labels, int k) {
  int64_t correct = 0;
  for (int i = 0; i < s.n; ++i) {
    const T* z = logits + long(i) * s.classes;
    const int y = labels[i];
    int above = 0;  // classes ranked before the label
    for (int j = 0; j < s.classes && above < k; ++j)
      above += z[j] > z[y] || (z[j] == z[y] && j < y);
    correct += above < k;
  }
  return correct;
}

template <typename T>
double SoftmaxCrossEntropyForward(const SoftmaxCrossEntropyShape& s,
                                  const T* logits, const int32_t* labels,
                                  double eps, T* probs, int64_t* correct) {
  CheckArgs(s, labels, eps);
  const double off = eps / s.classes, on = 1 - eps + off;
  double total = 0;
  for (int i = 0; i < s.n; ++i) {
    const T* z = logits + long(i) * s.classes;
    T* p = probs + long(i) * s.classes;
    double mx = z[0];
    for (int k = 1; k < s.classes; ++k) mx = std::max(mx, double(z[k]));
    double sum = 0, zsum = 0;
    for (int k = 0; k < s.classes; ++k) {
      const double e = std::exp(double(z[k]) - mx);
      p[k] = T(e);
      sum += e;
      zsum += double(z[k]) - mx;
    }
    const double log_sum = std::log(sum);
    for (int k = 0; k < s.classes; ++k) p[k] = T(p[k] / sum);
    // -sum_k t_k (z_k - mx - log_sum) with t = off everywhere + (on-off) at label
    const double zl = double(z[labels[i]]) - mx;
    total += -(off * (zsum - s.classes * log_sum) + (on - off) * (zl - log_sum));
  }
  if (correct) *correct = Top1Correct(s, logits, labels);
  return total / s.n;
}

template <typename T>
void SoftmaxCrossEntropyBackward(const SoftmaxCrossEntropyShape& s,
                                 const T* probs, const int32_t* labels,
                                 double eps, T* dlogits) {
  CheckArgs(s, labels, eps);
  const double off = eps / s.classes, on = 1 - eps + off;
  const T scale = T(1.0 / s.n);
  for (int i = 0; i < s.n; ++i) {
    const T* p = probs + long(i) * s.classes;
    T* d = dlogits + long(i) * s.classes;
    for (int k = 0; k < s.classes; ++k) d[k] = (p[k] - T(off)) * scale;
    d[labels[i]] -= T((on - off)) * scale;
  }
}

#define DTRAIN_SCE(T)                                                      \
  template double SoftmaxCrossEntropyForward<T>(                          \
      const SoftmaxCrossEntropyShape&, const T*, const int32_t*, double,   \
      T*, int64_t*);                                                       \
  template void SoftmaxCrossEntropyBackward<T>(                            \
      const SoftmaxCrossEntropyShape&, const T*, const int32_t*, double, T*); \
  template int64_t Top1Correct<T>(const SoftmaxCrossEntropyShape&, const T*, \
                                  const int32_t*);                          \
  template int64_t TopKCorrect<T>(const SoftmaxCrossEntropyShape&, const T*, \
                                  const int32_t*, int);
DTRAIN_SCE(float)
DTRAIN_SCE(double)
#undef DTRAIN_SCE

}  // namespace dtrain::cpu
