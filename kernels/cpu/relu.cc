// Elementwise loops here must vectorise: the build's -O2 does not vectorise
// loops that need an epilogue, so dtrain_kernels_cpu builds with -O3, and loops that may
// run in place (output == input, index for index) carry `ivdep`.
#include "kernels/cpu/relu.h"

#include <algorithm>

namespace dtrain::cpu {

template <typename T>
void ReluForward(size_t count, const T* x, T* y) {
  #pragma GCC ivdep
  for (size_t i = 0; i < count; ++i) y[i] = std::max(x[i], T(0));
}

template <typename T>
void ReluBackward(size_t count, const T* y, const T* dy, T* dx) {
  #pragma GCC ivdep
  for (size_t i = 0; i < count; ++i) {
    const T g = dy[i];  // unconditional load: lets the loop vectorise
    dx[i] = y[i] > T(0) ? g : T(0);
  }
}

template void ReluForward<float>(size_t, const float*, float*);
template void ReluForward<double>(size_t, const double*, double*);
template void ReluBackward<float>(size_t, const float*, const float*, float*);
template void ReluBackward<double>(size_t, const double*, const double*, double*);

}  // namespace dtrain::cpu
