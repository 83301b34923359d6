#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "common/error.h"

namespace dtrain::cpu {

void MaxPoolShape::Check() const {
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || window <= 0 || stride <= 0 ||
      pad < 0 || pad * 2 > window || h + 2 * pad < window || w + 2 * pad < window)
    Fail(ErrorCode::kInvalidArgument,
         "max_pool: bad shape n=" + std::to_string(n) + " c=" + std::to_string(c) +
             " h=" + std::to_string(h) + " w=" + std::to_string(w) +
             " window=" + std::to_string(window) + " stride=" +
             std::to_string(stride) + " pad=" + std::to_string(pad) +
             " (need positive sizes, 0 <= pad <= window/2, window <= padded input)");
}

template <typename T>
void MaxPoolForward(const MaxPoolShape& s, const T* x, T* y, int32_t* argmax) {
  s.Check();
  const int oh = s.out_h(), ow = s.out_w();
  const long hw = long(s.h) * s.w, ohw = long(oh) * ow;
  for (long plane = 0; plane < long(s.n) * s.c; ++plane) {
    const T* xp = x + plane * hw;
    T* yp = y + plane * ohw;
    int32_t* ap = argmax + plane * ohw;
    for (int oy = 0; oy < oh; ++oy) {
      const int y0 = std::max(0, oy * s.stride - s.pad);
      const int y1 = std::min(s.h, oy * s.stride - s.pad + s.window);
      for (int ox = 0; ox < ow; ++ox) {
        const int x0 = std::max(0, ox * s.stride - s.pad);
        const int x1 = std::min(s.w, ox * s.stride - s.pad + s.window);
        T best = -std::numeric_limits<T>::infinity();
        int32_t at = y0 * s.w + x0;
        for (int iy = y0; iy < y1; ++iy)
          for (int ix = x0; ix < x1; ++ix)
            if (xp[iy * s.w + ix] > best) {
              best = xp[iy * s.w + ix];
              at = iy * s.w + ix;
            }
        yp[oy * ow + ox] = best;
        ap[oy * ow + ox] = at;
      }
    }
  }
}

template <typename T>
void MaxPoolBackward(const MaxPoolShape& s, const T* dy, const int32_t* argmax,
                     T* dx) {
  s.Check();
  const long hw = long(s.h) * s.w, ohw = long(s.out_h()) * s.out_w();
  std::memset(dx, 0, sizeof(T) * s.in_size());
  for (long plane = 0; plane < long(s.n) * s.c; ++plane) {
    T* dp = dx + plane * hw;
    const T* gp = dy + plane * ohw;
    const int32_t* ap = argmax + plane * ohw;
    for (long i = 0; i < ohw; ++i) dp[ap[i]] += gp[i];
  }
}

void GlobalAvgPoolShape::Check() const {
  if (n <= 0 || c <= 0 || hw <= 0)
    Fail(ErrorCode::kInvalidArgument,
         "global_avg_pool: shape must be positive, got n=" + std::to_string(n) +
             " c=" + std::to_string(c) + " hw=" + std::to_string(hw));
}

template <typename T>
void GlobalAvgPoolForward(const GlobalAvgPoolShape& s, const T* x, T* y) {
  s.Check();
  const T scale = T(1) / T(s.hw);
  for (long plane = 0; plane < long(s.n) * s.c; ++plane) {
    const T* xp = x + plane * s.hw;
    T sum = 0;
    for (int i = 0; i < s.hw; ++i) sum += xp[i];
    y[plane] = sum * scale;
  }
}

template <typename T>
void GlobalAvgPoolBackward(const GlobalAvgPoolShape& s, const T* dy, T* dx) {
  s.Check();
  const T scale = T(1) / T(s.hw);
  for (long plane = 0; plane < long(s.n) * s.c; ++plane) {
    const T g = dy[plane] * scale;
    T* dp = dx + plane * s.hw;
    for (int i = 0; i < s.hw; ++i) dp[i] = g;
  }
}

#define DTRAIN_POOL(T)                                                          \
  template void MaxPoolForward<T>(const MaxPoolShape&, const T*, T*, int32_t*); \
  template void MaxPoolBackward<T>(const MaxPoolShape&, const T*,               \
                                   const int32_t*, T*);                         \
  template void GlobalAvgPoolForward<T>(const GlobalAvgPoolShape&, const T*, T*); \
  template void GlobalAvgPoolBackward<T>(const GlobalAvgPoolShape&, const T*, T*);
DTRAIN_POOL(float)
DTRAIN_POOL(double)
#undef DTRAIN_POOL

}  // namespace dtrain::cpu
