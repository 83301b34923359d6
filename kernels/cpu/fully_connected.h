// Fully connected layer: y[n,out] = x[n,in] * w[out,in]^T + b[out]
// (weight stored [out, in], as PyTorch). Backward overwrites
// dw = dy^T x, db = sum_n dy, and dx = dy w (dx nullable).
#pragma once

namespace dtrain::cpu {

struct FullyConnectedShape {
  int n = 0, in = 0, out = 0;
  void Check() const;
};

template <typename T>
void FullyConnectedForward(const FullyConnectedShape& s, const T* x,
                           const T* w, const T* b, T* y);

template <typename T>
void FullyConnectedBackward(const FullyConnectedShape& s, const T* x,
                            const T* w, const T* dy, T* dx, T* dw, T* db);

}  // namespace dtrain::cpu
