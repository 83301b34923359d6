// Pillow 9.4's BILINEAR resampling (src/libImaging/Resample.c), reproduced
// operation for operation so that the uint8 results are the same:
//  * precompute_coeffs: scale = (in1 - in0) / out, support = max(scale, 1),
//    center = in0 + (i + 0.5)·scale, first tap (int)(center - support + 0.5)
//    clamped to 0, last tap (int)(center + support + 0.5) clamped to the size,
//    weights triangle((x - center + 0.5) / max(scale, 1)) divided by their sum;
//  * normalize_coeffs_8bpc: weights to int32 with 22 fraction bits, rounded
//    half away from zero;
//  * ImagingResampleInner: the horizontal pass first (rows the vertical pass
//    needs only), rounded to uint8, then the vertical pass; each sum starts at
//    1 << 21 and is clipped to [0, 255] after >> 22.
// Integer sums are order-independent, so the vertical pass accumulates row by
// row (vectorisable) and still gives Pillow's bytes.
// One difference: the box stays in double precision, where Pillow parses it
// as float32. Integer boxes (RandomResizedCrop) give the same bytes either
// way. EvalBox's fractional boxes then give exactly torchvision's Resize +
// CenterCrop (0 of 24 M values differ on 49 image sizes), where a float32 box
// differs by up to 2 in 0.08 % of the values; PIL resize(box) itself with a
// fractional box is matched within ±1 (in about a quarter of random
// fractional boxes some dozens of values differ by 1).
// This file is compiled with -O3 -ffp-contract=off (CMakeLists.txt): the
// integer passes vectorise; a fused multiply-add would change the weights'
// last bits.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "worker/data/image_decode_internal.h"

namespace dtrain::data::detail {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

inline uint8_t Clip8(int v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

inline double Triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// One axis of the resampling in Pillow's own coordinates: the image is
// [0, in_size), the box [in0, in1); `origin` is added to every tap index.
struct AxisGeometry {
  int origin = 0, in_size = 0;
  double in0 = 0, in1 = 0, scale = 0, support = 0;
  int out = 0;
};

AxisGeometry Geometry(double b0, double b1, int image_size, bool crop_first, int out) {
  AxisGeometry g;
  if (crop_first) {  // Pillow on img.crop(box): its own image is the box's pixels
    g.origin = static_cast<int>(std::floor(b0));
    g.in_size = static_cast<int>(std::ceil(b1)) - g.origin;
    g.in0 = b0 - g.origin;
    g.in1 = b1 - g.origin;
  } else {
    g.in_size = image_size;
    g.in0 = b0;
    g.in1 = b1;
  }
  g.out = out;
  g.scale = (g.in1 - g.in0) / out;
  g.support = 1.0 * std::max(g.scale, 1.0);  // BILINEAR support 1, widened when shrinking
  return g;
}

struct Taps {
  double center;
  int first, count;
};

inline Taps TapsFor(const AxisGeometry& g, int i) {
  Taps t;
  t.center = g.in0 + (i + 0.5) * g.scale;
  int xmin = static_cast<int>(t.center - g.support + 0.5);
  if (xmin < 0) xmin = 0;
  int xmax = static_cast<int>(t.center + g.support + 0.5);
  if (xmax > g.in_size) xmax = g.in_size;
  t.first = xmin;
  t.count = xmax - xmin;
  return t;
}

// Coefficients of one axis: bounds[2i] = first tap (absolute), bounds[2i+1] =
// tap count, k[i·ksize ...] the fixed-point weights. Returns ksize.
int ComputeAxis(const AxisGeometry& g, std::vector<double>* pre, std::vector<int>* bounds, size_t bounds_at,
                size_t k_at) {
  const int ksize = static_cast<int>(std::ceil(g.support)) * 2 + 1;
  pre->assign(static_cast<size_t>(ksize), 0.0);
  const double inv_filterscale = 1.0 / std::max(g.scale, 1.0);
  int* b = bounds->data() + bounds_at;
  int* k = bounds->data() + k_at;
  for (int i = 0; i < g.out; ++i) {
    const Taps t = TapsFor(g, i);
    double* w = pre->data();
    double ww = 0.0;
    for (int x = 0; x < t.count; ++x) {
      w[x] = Triangle((x + t.first - t.center + 0.5) * inv_filterscale);
      ww += w[x];
    }
    if (ww != 0.0)
      for (int x = 0; x < t.count; ++x) w[x] /= ww;
    int* ki = k + static_cast<size_t>(i) * ksize;
    for (int x = 0; x < ksize; ++x) {
      const double v = x < t.count ? w[x] : 0.0;
      ki[x] = v < 0 ? static_cast<int>(-0.5 + v * (1 << kPrecisionBits))
                    : static_cast<int>(0.5 + v * (1 << kPrecisionBits));
    }
    b[2 * i] = t.first + g.origin;
    b[2 * i + 1] = t.count;
  }
  return ksize;
}

// One RGB row of the horizontal pass with SSE4.1: each tap loads 4 bytes (the
// pixel and the next pixel's red, whose lane is discarded) into 4 int32
// lanes, so the caller guarantees one readable byte after the row's last tap.
__attribute__((target("sse4.1"))) void HorizontalRowRgbSse41(const uint8_t* line, int x0, const int* bounds,
                                                             const int* k, int ksize, int out_w, bool flip,
                                                             uint8_t* dst_row) {
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  for (int xx = 0; xx < out_w; ++xx) {
    const uint8_t* in = line + static_cast<size_t>(bounds[2 * xx] - x0) * 3;
    const int n = bounds[2 * xx + 1];
    const int* kx = k + static_cast<size_t>(xx) * ksize;
    __m128i ss = half;
    for (int x = 0; x < n; ++x) {
      int32_t four;
      std::memcpy(&four, in + 3 * x, 4);
      const __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
      ss = _mm_add_epi32(ss, _mm_mullo_epi32(px, _mm_set1_epi32(kx[x])));
    }
    // >> 22, then clip to [0, 255] by saturating packs (as Clip8).
    ss = _mm_srai_epi32(ss, kPrecisionBits);
    const __m128i packed = _mm_packus_epi16(_mm_packs_epi32(ss, ss), _mm_setzero_si128());
    const uint32_t rgbx = static_cast<uint32_t>(_mm_cvtsi128_si32(packed));
    uint8_t* dst = dst_row + static_cast<size_t>(flip ? out_w - 1 - xx : xx) * 3;
    dst[0] = static_cast<uint8_t>(rgbx);
    dst[1] = static_cast<uint8_t>(rgbx >> 8);
    dst[2] = static_cast<uint8_t>(rgbx >> 16);
  }
}

// Whether this CPU has SSE4.1 (evaluated at start-up, possibly before
// libgcc's own constructor, hence __builtin_cpu_init). An AVX2 kernel doing
// two taps per step measured no faster (AMD EPYC), so there is none.
const bool kHaveSse41 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.1") != 0;
}();

template <int C>
void HorizontalRow(const uint8_t* line, int x0, int c, const int* bounds, const int* k, int ksize, int out_w, bool flip,
                   uint8_t* dst_row) {
  const int cc = C > 0 ? C : c;
  for (int xx = 0; xx < out_w; ++xx) {
    const uint8_t* in = line + static_cast<size_t>(bounds[2 * xx] - x0) * cc;
    const int n = bounds[2 * xx + 1];
    const int* kx = k + static_cast<size_t>(xx) * ksize;
    uint8_t* dst = dst_row + static_cast<size_t>(flip ? out_w - 1 - xx : xx) * cc;
    for (int ch = 0; ch < cc; ++ch) {
      int ss = 1 << (kPrecisionBits - 1);
      for (int x = 0; x < n; ++x) ss += in[x * cc + ch] * kx[x];
      dst[ch] = Clip8(ss);
    }
  }
}

void HorizontalPass(const PixelRegion& src, int row_first, int row_last, const int* bounds, const int* k, int ksize,
                    int out_w, bool flip, uint8_t* tmp) {
  const int c = src.c;
  for (int y = row_first; y < row_last; ++y) {
    const uint8_t* line = src.pixels + static_cast<size_t>(y - src.y0) * src.stride;
    uint8_t* dst_row = tmp + static_cast<size_t>(y - row_first) * out_w * c;
    // The 4-byte loads may touch one byte past the row: the next row's, or
    // the buffer's slack after the last row.
    const bool can_overread = y - src.y0 + 1 < src.h || src.slack > 0;
    if (c == 3 && can_overread && kHaveSse41)
      HorizontalRowRgbSse41(line, src.x0, bounds, k, ksize, out_w, flip, dst_row);
    else if (c == 1)
      HorizontalRow<1>(line, src.x0, c, bounds, k, ksize, out_w, flip, dst_row);
    else if (c == 3)
      HorizontalRow<3>(line, src.x0, c, bounds, k, ksize, out_w, flip, dst_row);
    else
      HorizontalRow<0>(line, src.x0, c, bounds, k, ksize, out_w, flip, dst_row);
  }
}

// The vertical pass's inner loops, kept free of aliasing so that they
// vectorise (this file is compiled with -O3; AVX2 clone chosen at run time).
__attribute__((target_clones("avx2", "default"))) void AccumulateRow(const uint8_t* __restrict row, int w, int n,
                                                                     int* __restrict acc) {
  for (int i = 0; i < n; ++i) acc[i] += row[i] * w;
}

__attribute__((target_clones("avx2", "default"))) void StoreRow(const int* __restrict acc, int n,
                                                                uint8_t* __restrict dst) {
  for (int i = 0; i < n; ++i) {
    const int v = acc[i] >> kPrecisionBits;
    dst[i] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
  }
}

void VerticalPass(const uint8_t* tmp, int row_width, const int* bounds, const int* k, int ksize, int out_h,
                  int row_first, int* acc, uint8_t* out) {
  for (int yy = 0; yy < out_h; ++yy) {
    const int first = bounds[2 * yy] - row_first, n = bounds[2 * yy + 1];
    const int* ky = k + static_cast<size_t>(yy) * ksize;
    std::fill(acc, acc + row_width, 1 << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) AccumulateRow(tmp + static_cast<size_t>(first + y) * row_width, ky[y], row_width, acc);
    StoreRow(acc, row_width, out + static_cast<size_t>(yy) * row_width);
  }
}

}  // namespace

IntRect FilterFootprint(const BoxF& box, int image_w, int image_h, int out_w, int out_h) {
  const AxisGeometry gx = Geometry(box.x0, box.x1, image_w, box.crop_first, out_w);
  const AxisGeometry gy = Geometry(box.y0, box.y1, image_h, box.crop_first, out_h);
  const Taps x_first = TapsFor(gx, 0), x_last = TapsFor(gx, out_w - 1);
  const Taps y_first = TapsFor(gy, 0), y_last = TapsFor(gy, out_h - 1);
  return IntRect{x_first.first + gx.origin, y_first.first + gy.origin, x_last.first + x_last.count + gx.origin,
                 y_last.first + y_last.count + gy.origin};
}

void ResampleRegion(const PixelRegion& src, const BoxF& box, int out_w, int out_h, bool flip, uint8_t* out,
                    DecodeScratch* scratch) {
  const AxisGeometry gx = Geometry(box.x0, box.x1, src.image_w, box.crop_first, out_w);
  const AxisGeometry gy = Geometry(box.y0, box.y1, src.image_h, box.crop_first, out_h);
  const int ksize_x = static_cast<int>(std::ceil(gx.support)) * 2 + 1;
  const int ksize_y = static_cast<int>(std::ceil(gy.support)) * 2 + 1;
  const int c = src.c;
  // scratch->bounds holds: x bounds, x weights, y bounds, y weights, the
  // vertical pass's accumulators.
  const size_t xb = 0, xk = xb + 2 * static_cast<size_t>(out_w);
  const size_t yb = xk + static_cast<size_t>(out_w) * ksize_x, yk = yb + 2 * static_cast<size_t>(out_h);
  const size_t acc_at = yk + static_cast<size_t>(out_h) * ksize_y;
  scratch->bounds.resize(acc_at + static_cast<size_t>(out_w) * c);
  ComputeAxis(gx, &scratch->coeffs, &scratch->bounds, xb, xk);
  ComputeAxis(gy, &scratch->coeffs, &scratch->bounds, yb, yk);
  const int* b = scratch->bounds.data();  // not resized below

  const int row_first = b[yb];
  const int row_last = b[yb + 2 * (out_h - 1)] + b[yb + 2 * (out_h - 1) + 1];
  scratch->rows.resize(static_cast<size_t>(row_last - row_first) * out_w * c);
  uint8_t* tmp = scratch->rows.data();
  HorizontalPass(src, row_first, row_last, b + xb, b + xk, ksize_x, out_w, flip, tmp);
  static_assert(sizeof(int) == 4, "Pillow's fixed-point sums are 32-bit");
  VerticalPass(tmp, out_w * c, b + yb, b + yk, ksize_y, out_h, row_first, scratch->bounds.data() + acc_at, out);
}

}  // namespace dtrain::data::detail
