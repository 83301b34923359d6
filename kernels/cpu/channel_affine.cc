// Loops must vectorise and may run in place: see the note in relu.cc.
#include "kernels/cpu/channel_affine.h"

#include <algorithm>

namespace dtrain::cpu {

template <typename T>
void ChannelAffineForward(const BatchNormShape& s, const T* x, const T* gamma,
                          const T* beta, T* y, bool relu) {
  s.Check();
  const long hw = s.hw, chw = long(s.c) * hw;
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c) {
      const T a = gamma[c], b = beta[c];
      const T* xp = x + n * chw + c * hw;
      T* yp = y + n * chw + c * hw;
      if (relu) {
#pragma GCC ivdep
        for (long i = 0; i < hw; ++i) yp[i] = std::max(a * xp[i] + b, T(0));
      } else {
#pragma GCC ivdep
        for (long i = 0; i < hw; ++i) yp[i] = a * xp[i] + b;
      }
    }
}

template <typename T>
void ChannelAffineBackward(const BatchNormShape& s, const T* x, const T* dy,
                           const T* gamma, T* dx, T* dgamma, T* dbeta,
                           const T* relu_y) {
  s.Check();
  const long hw = s.hw, chw = long(s.c) * hw;
  for (int c = 0; c < s.c; ++c) dgamma[c] = dbeta[c] = T(0);
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c) {
      const long o = n * chw + c * hw;
      const T a = gamma[c];
      T sg = 0, sgx = 0;
      for (long i = 0; i < hw; ++i) {
        const T d = dy[o + i];
        const T g = relu_y && !(relu_y[o + i] > T(0)) ? T(0) : d;
        sg += g;
        sgx += g * x[o + i];
        dx[o + i] = a * g;
      }
      dbeta[c] += sg;
      dgamma[c] += sgx;
    }
}

template void ChannelAffineForward<float>(const BatchNormShape&, const float*, const float*, const float*, float*, bool);
template void ChannelAffineForward<double>(const BatchNormShape&, const double*, const double*, const double*, double*, bool);
template void ChannelAffineBackward<float>(const BatchNormShape&, const float*, const float*, const float*, float*, float*, float*, const float*);
template void ChannelAffineBackward<double>(const BatchNormShape&, const double*, const double*, const double*, double*, double*, double*, const double*);

}  // namespace dtrain::cpu
