// Softmax cross-entropy with label smoothing eps over logits[n, classes]:
// target t = (1 - eps) * onehot(label) + eps / classes,
// loss = mean_n( -sum_k t_k log softmax(logits)_k ).
// Forward returns the mean loss, writes the softmax to probs[n, classes] (for
// backward) and, if correct != null, the number of rows whose arg-max logit
// (first on ties) equals the label. Backward: dlogits = (probs - t) / n.
// Labels outside [0, classes) and eps outside [0, 1) throw kInvalidArgument.
#pragma once

#include <cstdint>

namespace dtrain::cpu {

struct SoftmaxCrossEntropyShape {
  int n = 0, classes = 0;
  void Check() const;
};

template <typename T>
double SoftmaxCrossEntropyForward(const SoftmaxCrossEntropyShape& s,
                                  const T* logits, const int32_t* labels,
                                  double label_smoothing, T* probs,
                                  int64_t* correct);

template <typename T>
void SoftmaxCrossEntropyBackward(const SoftmaxCrossEntropyShape& s,
                                 const T* probs, const int32_t* labels,
                                 double label_smoothing, T* dlogits);

// Number of rows whose arg-max (first on ties) equals the label.
template <typename T>
int64_t Top1Correct(const SoftmaxCrossEntropyShape& s, const T* logits,
                    const int32_t* labels);

// Number of rows whose label is among the k highest logits, ranked as
// Top1Correct does (higher first, lower index first on ties): equal to
// Top1Correct for k = 1. Labels are not range-checked (the forward does it).
template <typename T>
int64_t TopKCorrect(const SoftmaxCrossEntropyShape& s, const T* logits,
                    const int32_t* labels, int k);

}  // namespace dtrain::cpu
