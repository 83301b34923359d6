#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/im2col.h"

namespace dtrain::cpu {
namespace {

// Columns a chunk's gemm should see: enough to run BLAS near peak, few enough
// that the im2col buffer stays in the 2nd/3rd level cache.
constexpr long kConvChunkCols = 1024;

int ChunkImages(const Conv2dShape& s, long target_cols) {
  const long p = long(s.out_h()) * s.out_w();
  return int(std::clamp<long>(target_cols / p, 1, s.n));
}

// Workspace of a chunked pass of g images: im2col + gathered dy/y.
size_t ChunkWorkspace(const Conv2dShape& s, int g) {
  const size_t cols = size_t(g) * s.out_h() * s.out_w();
  return size_t(s.c) * s.r * s.s * cols + (g > 1 ? size_t(s.k) * cols : 0);
}

// dy of images [n0, n0 + gi) as a [k, gi*p] matrix: in place when the chunk
// is one image, else gathered into buf (row stride g*p). Sets *ld.
template <typename T>
const T* DyChunk(const Conv2dShape& s, const T* dy, int n0, int gi, int g,
                 T* buf, long* ld) {
  const long p = long(s.out_h()) * s.out_w(), kp = s.k * p;
  if (g == 1) {
    *ld = p;
    return dy + n0 * kp;
  }
  *ld = g * p;
  for (int i = 0; i < gi; ++i)
    for (int k = 0; k < s.k; ++k)
      std::memcpy(buf + k * *ld + i * p, dy + (n0 + i) * kp + k * p, sizeof(T) * p);
  return buf;
}

bool Direct(const Conv2dShape& s, int chunk) {
  return chunk == 1 && s.r == 1 && s.s == 1 && s.stride == 1 && s.pad == 0;
}

}  // namespace

void Conv2dShape::Check() const {
  auto bad = [](const std::string& what) {
    Fail(ErrorCode::kInvalidArgument, "conv2d: " + what);
  };
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    bad("input shape must be positive, got n=" + std::to_string(n) + " c=" +
        std::to_string(c) + " h=" + std::to_string(h) + " w=" + std::to_string(w));
  if (k <= 0 || r <= 0 || s <= 0)
    bad("filter shape must be positive, got k=" + std::to_string(k) + " r=" +
        std::to_string(r) + " s=" + std::to_string(s));
  if (stride <= 0) bad("stride must be >= 1, got " + std::to_string(stride));
  if (pad < 0) bad("pad must be >= 0, got " + std::to_string(pad));
  if (h + 2 * pad < r || w + 2 * pad < s)
    bad("kernel " + std::to_string(r) + "x" + std::to_string(s) +
        " larger than padded input " + std::to_string(h + 2 * pad) + "x" +
        std::to_string(w + 2 * pad));
}

int Conv2dChunkImages(const Conv2dShape& s) {
  return ChunkImages(s, kConvChunkCols);
}

size_t Conv2dWorkspaceSize(const Conv2dShape& s) {
  s.Check();
  const int g = Conv2dChunkImages(s);
  if (Direct(s, g)) return 0;
  return ChunkWorkspace(s, g);
}

template <typename T>
void Conv2dForward(const Conv2dShape& s, const T* x, const T* w, T* y,
                   T* workspace) {
  s.Check();
  const int g = Conv2dChunkImages(s);
  const long p = long(s.out_h()) * s.out_w();
  const long chw = long(s.c) * s.h * s.w, kp = s.k * p;
  const int crs = s.c * s.r * s.s;
  if (Direct(s, g)) {  // y_n[k,p] = w[k,c] x_n[c,p]
    for (int n = 0; n < s.n; ++n)
      Gemm(false, false, s.k, int(p), s.c, T(1), w, s.c, x + n * chw, int(p),
           T(0), y + n * kp, int(p));
    return;
  }
  T* col = workspace;
  T* out = workspace + long(crs) * g * p;  // [k, g*p] when g > 1
  for (int n0 = 0; n0 < s.n; n0 += g) {
    const int gi = std::min(g, s.n - n0);
    const long cols = gi * p, ld = g * p;
    Im2Col(s, gi, x + n0 * chw, col, ld);
    if (g == 1) {  // straight into y
      Gemm(false, false, s.k, int(cols), crs, T(1), w, crs, col, int(ld), T(0),
           y + n0 * kp, int(p));
      continue;
    }
    Gemm(false, false, s.k, int(cols), crs, T(1), w, crs, col, int(ld), T(0),
         out, int(ld));
    for (int i = 0; i < gi; ++i)
      for (int k = 0; k < s.k; ++k)
        std::memcpy(y + (n0 + i) * kp + k * p, out + k * ld + i * p, sizeof(T) * p);
  }
}

template <typename T>
void Conv2dBackward(const Conv2dShape& s, const T* x, const T* w, const T* dy,
                    T* dx, bool accumulate_dx, T* dw, T* workspace) {
  s.Check();
  const int g = Conv2dChunkImages(s);
  const long p = long(s.out_h()) * s.out_w();
  const long chw = long(s.c) * s.h * s.w, kp = s.k * p;
  const int crs = s.c * s.r * s.s;
  if (Direct(s, g)) {
    for (int n = 0; n < s.n; ++n) {
      const T* dyn = dy + n * kp;
      if (dw)  // dw[k,c] (+)= dy_n[k,p] x_n[c,p]^T
        Gemm(false, true, s.k, s.c, int(p), T(1), dyn, int(p), x + n * chw,
             int(p), n == 0 ? T(0) : T(1), dw, s.c);
      if (dx)  // dx_n[c,p] (+)= w[k,c]^T dy_n[k,p]
        Gemm(true, false, s.c, int(p), s.k, T(1), w, s.c, dyn, int(p),
             accumulate_dx ? T(1) : T(0), dx + n * chw, int(p));
    }
    return;
  }
  T* col = workspace;
  if (dw) {  // dw[k,crs] (+)= dy[k,cols] col[crs,cols]^T
    T* buf = workspace + long(crs) * g * p;
    for (int n0 = 0; n0 < s.n; n0 += g) {
      const int gi = std::min(g, s.n - n0);
      long ld;
      const T* d = DyChunk(s, dy, n0, gi, g, buf, &ld);
      Im2Col(s, gi, x + n0 * chw, col, ld);
      Gemm(false, true, s.k, crs, int(gi * p), T(1), d, int(ld), col, int(ld),
           n0 == 0 ? T(0) : T(1), dw, crs);
    }
  }
  if (dx) {  // dcol[crs,cols] = w[k,crs]^T dy[k,cols]; dx += col2im(dcol)
    if (!accumulate_dx) std::memset(dx, 0, sizeof(T) * s.in_size());
    T* buf = workspace + long(crs) * g * p;
    for (int n0 = 0; n0 < s.n; n0 += g) {
      const int gi = std::min(g, s.n - n0);
      long ld;
      const T* d = DyChunk(s, dy, n0, gi, g, buf, &ld);
      Gemm(true, false, crs, int(gi * p), s.k, T(1), w, crs, d, int(ld), T(0),
           col, int(ld));
      Col2Im(s, gi, col, ld, dx + n0 * chw);
    }
  }
}

template void Conv2dForward<float>(const Conv2dShape&, const float*, const float*, float*, float*);
template void Conv2dForward<double>(const Conv2dShape&, const double*, const double*, double*, double*);
template void Conv2dBackward<float>(const Conv2dShape&, const float*, const float*, const float*, float*, bool, float*, float*);
template void Conv2dBackward<double>(const Conv2dShape&, const double*, const double*, const double*, double*, bool, double*, double*);

}  // namespace dtrain::cpu
