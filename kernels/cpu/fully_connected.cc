#include "kernels/cpu/fully_connected.h"

#include <string>

#include "common/error.h"
#include "kernels/cpu/gemm.h"

namespace dtrain::cpu {

void FullyConnectedShape::Check() const {
  if (n <= 0 || in <= 0 || out <= 0)
    Fail(ErrorCode::kInvalidArgument,
         "fully_connected: shape must be positive, got n=" + std::to_string(n) +
             " in=" + std::to_string(in) + " out=" + std::to_string(out));
}

template <typename T>
void FullyConnectedForward(const FullyConnectedShape& s, const T* x,
                           const T* w, const T* b, T* y) {
  s.Check();
  for (int i = 0; i < s.n; ++i)
    for (int o = 0; o < s.out; ++o) y[long(i) * s.out + o] = b[o];
  Gemm(false, true, s.n, s.out, s.in, T(1), x, s.in, w, s.in, T(1), y, s.out);
}

template <typename T>
void FullyConnectedBackward(const FullyConnectedShape& s, const T* x,
                            const T* w, const T* dy, T* dx, T* dw, T* db) {
  s.Check();
  Gemm(true, false, s.out, s.in, s.n, T(1), dy, s.out, x, s.in, T(0), dw, s.in);
  for (int o = 0; o < s.out; ++o) db[o] = 0;
  for (int i = 0; i < s.n; ++i)
    for (int o = 0; o < s.out; ++o) db[o] += dy[long(i) * s.out + o];
  if (dx)
    Gemm(false, false, s.n, s.in, s.out, T(1), dy, s.out, w, s.in, T(0), dx, s.in);
}

template void FullyConnectedForward<float>(const FullyConnectedShape&, const float*, const float*, const float*, float*);
template void FullyConnectedForward<double>(const FullyConnectedShape&, const double*, const double*, const double*, double*);
template void FullyConnectedBackward<float>(const FullyConnectedShape&, const float*, const float*, const float*, float*, float*, float*);
template void FullyConnectedBackward<double>(const FullyConnectedShape&, const double*, const double*, const double*, double*, double*, double*);

}  // namespace dtrain::cpu
