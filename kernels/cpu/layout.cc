#include "kernels/cpu/layout.h"

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"

namespace dtrain::cpu {
namespace {

// A KCRS weight is an NCHW tensor with n = k, h = r, w = s.
void Check(const char* what, int n, int c, int h, int w, int c_pad) {
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || c_pad < c) {
    Fail(ErrorCode::kInvalidArgument, std::string(what) + ": shape [" + std::to_string(n) + ", " + std::to_string(c) +
                                          ", " + std::to_string(h) + ", " + std::to_string(w) + "] with c_pad " +
                                          std::to_string(c_pad) + ": dims must be > 0 and c_pad >= c");
  }
}

}  // namespace

template <typename T>
void NchwToNhwc(const T* in, int n, int c, int h, int w, int c_pad, T* out) {
  Check("NchwToNhwc", n, c, h, w, c_pad);
  const size_t hw = size_t(h) * w;
  for (int i = 0; i < n; ++i) {
    const T* src = in + size_t(i) * c * hw;
    T* dst = out + size_t(i) * hw * c_pad;
    for (size_t p = 0; p < hw; ++p) {
      for (int ch = 0; ch < c; ++ch) dst[p * c_pad + ch] = src[size_t(ch) * hw + p];
      for (int ch = c; ch < c_pad; ++ch) dst[p * c_pad + ch] = T(0);
    }
  }
}

template <typename T>
void NhwcToNchw(const T* in, int n, int c, int h, int w, int c_pad, T* out) {
  Check("NhwcToNchw", n, c, h, w, c_pad);
  const size_t hw = size_t(h) * w;
  for (int i = 0; i < n; ++i) {
    const T* src = in + size_t(i) * hw * c_pad;
    T* dst = out + size_t(i) * c * hw;
    for (int ch = 0; ch < c; ++ch)
      for (size_t p = 0; p < hw; ++p) dst[size_t(ch) * hw + p] = src[p * c_pad + ch];
  }
}

template <typename T>
void KcrsToKrsc(const T* in, int k, int c, int r, int s, int c_pad, T* out) {
  Check("KcrsToKrsc", k, c, r, s, c_pad);
  NchwToNhwc(in, k, c, r, s, c_pad, out);
}

template <typename T>
void KrscToKcrs(const T* in, int k, int c, int r, int s, int c_pad, T* out) {
  Check("KrscToKcrs", k, c, r, s, c_pad);
  NhwcToNchw(in, k, c, r, s, c_pad, out);
}

#define DTRAIN_LAYOUT(T)                                                  \
  template void KcrsToKrsc<T>(const T*, int, int, int, int, int, T*);     \
  template void KrscToKcrs<T>(const T*, int, int, int, int, int, T*);     \
  template void NchwToNhwc<T>(const T*, int, int, int, int, int, T*);     \
  template void NhwcToNchw<T>(const T*, int, int, int, int, int, T*);
DTRAIN_LAYOUT(float)
DTRAIN_LAYOUT(uint16_t)
#undef DTRAIN_LAYOUT

}  // namespace dtrain::cpu
