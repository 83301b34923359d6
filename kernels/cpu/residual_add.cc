// Elementwise loops here must vectorise: the build's -O2 does not vectorise
// loops that need an epilogue, so dtrain_kernels_cpu builds with -O3, and loops that may
// run in place (output == input, index for index) carry `ivdep`.
#include "kernels/cpu/residual_add.h"

#include <algorithm>

namespace dtrain::cpu {

template <typename T>
void ResidualAdd(size_t count, const T* a, const T* b, T* y) {
  #pragma GCC ivdep
  for (size_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void ResidualAddRelu(size_t count, const T* a, const T* b, T* y) {
  #pragma GCC ivdep
  for (size_t i = 0; i < count; ++i) {
    y[i] = std::max(a[i] + b[i], T(0));
  }
}

template <typename T>
void ResidualAddBackward(size_t count, const T* dy, T* da, T* db) {
  if (da)
    #pragma GCC ivdep
    for (size_t i = 0; i < count; ++i) da[i] += dy[i];
  if (db)
    #pragma GCC ivdep
    for (size_t i = 0; i < count; ++i) db[i] += dy[i];
}

template void ResidualAdd<float>(size_t, const float*, const float*, float*);
template void ResidualAdd<double>(size_t, const double*, const double*, double*);
template void ResidualAddRelu<float>(size_t, const float*, const float*, float*);
template void ResidualAddRelu<double>(size_t, const double*, const double*, double*);
template void ResidualAddBackward<float>(size_t, const float*, float*, float*);
template void ResidualAddBackward<double>(size_t, const double*, double*, double*);

}  // namespace dtrain::cpu
