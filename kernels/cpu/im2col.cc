// Elementwise loops here must vectorise: the build's -O2 does not vectorise
// loops that need an epilogue, so dtrain_kernels_cpu builds with -O3, and loops that may
// run in place (output == input, index for index) carry `ivdep`.
#include "kernels/cpu/im2col.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/conv2d.h"

namespace dtrain::cpu {
namespace {

// Output columns [ox0, ox1) read inside the image for kernel column j.
inline void ValidRange(const Conv2dShape& s, int j, int ow, int* ox0,
                       int* ox1) {
  const int lo = s.pad - j;  // need ox*stride >= lo
  *ox0 = lo > 0 ? (lo + s.stride - 1) / s.stride : 0;
  const int hi = s.w - 1 + s.pad - j;  // need ox*stride <= hi
  *ox1 = hi < 0 ? 0 : std::min(ow, hi / s.stride + 1);
  *ox0 = std::min(*ox0, ow);
  if (*ox1 < *ox0) *ox1 = *ox0;
}

}  // namespace

template <typename T>
void Im2Col(const Conv2dShape& s, int images, const T* x, T* col, long ld) {
  const int oh = s.out_h(), ow = s.out_w();
  const long p = long(oh) * ow, hw = long(s.h) * s.w, chw = s.c * hw;
  for (int ci = 0; ci < s.c; ++ci) {
    for (int i = 0; i < s.r; ++i) {
      for (int j = 0; j < s.s; ++j) {
        T* row = col + (long(ci * s.r + i) * s.s + j) * ld;
        int ox0, ox1;
        ValidRange(s, j, ow, &ox0, &ox1);
        for (int g = 0; g < images; ++g) {
          const T* xc = x + g * chw + ci * hw;
          T* out = row + g * p;
          for (int oy = 0; oy < oh; ++oy, out += ow) {
            const int iy = oy * s.stride - s.pad + i;
            if (iy < 0 || iy >= s.h) {
              std::memset(out, 0, sizeof(T) * ow);
              continue;
            }
            const long base = long(iy) * s.w - s.pad + j;
            for (int ox = 0; ox < ox0; ++ox) out[ox] = 0;
            if (s.stride == 1) {
              std::memcpy(out + ox0, xc + base + ox0, sizeof(T) * (ox1 - ox0));
            } else {
              for (int ox = ox0; ox < ox1; ++ox) out[ox] = xc[base + long(ox) * s.stride];
            }
            for (int ox = ox1; ox < ow; ++ox) out[ox] = 0;
          }
        }
      }
    }
  }
}

template <typename T>
void Col2Im(const Conv2dShape& s, int images, const T* col, long ld, T* x) {
  const int oh = s.out_h(), ow = s.out_w();
  const long p = long(oh) * ow, hw = long(s.h) * s.w, chw = s.c * hw;
  for (int ci = 0; ci < s.c; ++ci) {
    for (int i = 0; i < s.r; ++i) {
      for (int j = 0; j < s.s; ++j) {
        const T* row = col + (long(ci * s.r + i) * s.s + j) * ld;
        int ox0, ox1;
        ValidRange(s, j, ow, &ox0, &ox1);
        for (int g = 0; g < images; ++g) {
          T* xc = x + g * chw + ci * hw;
          const T* in = row + g * p;
          for (int oy = 0; oy < oh; ++oy, in += ow) {
            const int iy = oy * s.stride - s.pad + i;
            if (iy < 0 || iy >= s.h) continue;
            T* dst = xc + long(iy) * s.w - s.pad + j;  // dst[ox*stride], ox in range
            if (s.stride == 1) {
              #pragma GCC ivdep
              for (int ox = ox0; ox < ox1; ++ox) dst[ox] += in[ox];
            } else {
              #pragma GCC ivdep
              for (int ox = ox0; ox < ox1; ++ox) dst[long(ox) * s.stride] += in[ox];
            }
          }
        }
      }
    }
  }
}

template void Im2Col<float>(const Conv2dShape&, int, const float*, float*, long);
template void Im2Col<double>(const Conv2dShape&, int, const double*, double*, long);
template void Col2Im<float>(const Conv2dShape&, int, const float*, long, float*);
template void Col2Im<double>(const Conv2dShape&, int, const double*, long, double*);

}  // namespace dtrain::cpu
