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
// Integer sums are exact and order-independent, so the SIMD kernels (AVX2
// when the CPU has it: madd on tap pairs horizontally, 32 bytes at a time in
// registers vertically; else SSE4.1 / the vectorised loops) regroup them and
// still give Pillow's bytes.
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

// Whether this CPU has SSE4.1 / AVX2 (evaluated at start-up, possibly before
// libgcc's own constructor, hence __builtin_cpu_init).
const bool kHaveSse41 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.1") != 0;
}();
const bool kHaveAvx2 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}();

// The AVX2 horizontal pass (RGB) reads a fixed window of K = ksize taps per
// output pixel (the taps past the pixel's count have weight 0) as tap pairs
// with _mm256_madd_epi16: each 22-bit weight is split exactly into
// hi = w >> 11 and lo = w & 2047 (both int16), and the sum is rebuilt as
// (Σ px·hi << 11) + Σ px·lo, the same int32 as Pillow's Σ px·w (no partial
// sum exceeds |255 · Σ|w||, which Pillow's own sum reaches too).
// Pair p (taps 2p, 2p+1, 6 bytes at 6p; 3 bytes when tap 2p+1 is past K) is
// shuffled out of the 16-byte load at 12·L, L the first that holds it.
constexpr int PairLoad(int k, int p) {
  const int end = 6 * p + (2 * p + 1 < k ? 6 : 3);
  return end <= 16 ? 0 : (end - 16 + 11) / 12;
}
// Bytes the kernel reads from the first tap's pixel on.
constexpr int WindowBytes(int k) { return 12 * PairLoad(k, (k + 1) / 2 - 1) + 16; }

// The AVX2 tables of one horizontal pass, in destination order (flipping is
// free): offsets[s] = byte offset of slot s's first tap in the region's row;
// weights: per slot pair (2g, 2g+1) and tap pair p, the hi then the lo
// vector, each 8 int32 = slot 2g's [w_t | w_t+1 << 16] × 3 channels and 0,
// then slot 2g+1's (so one 256-bit load serves two slots).
struct Avx2Taps {
  int ksize = 0;
  const int* offsets = nullptr;
  const int* weights = nullptr;
  int max_offset = 0;  // largest offsets[s]
};

size_t Avx2TapsInts(int out_w, int ksize) {
  const size_t pairs = static_cast<size_t>((ksize + 1) / 2), groups = static_cast<size_t>(out_w + 1) / 2;
  return static_cast<size_t>(out_w) + groups * pairs * 16;
}

void BuildAvx2Taps(const int* bounds, const int* k, int ksize, int out_w, bool flip, int x0, int* dst,
                   Avx2Taps* t) {
  const int pairs = (ksize + 1) / 2;
  int* offsets = dst;
  int* weights = dst + out_w;
  t->ksize = ksize;
  t->offsets = offsets;
  t->weights = weights;
  t->max_offset = 0;
  const int groups = (out_w + 1) / 2;
  std::fill(weights, weights + static_cast<size_t>(groups) * pairs * 16, 0);
  for (int s = 0; s < out_w; ++s) {
    const int xx = flip ? out_w - 1 - s : s;
    offsets[s] = (bounds[2 * xx] - x0) * 3;
    t->max_offset = std::max(t->max_offset, offsets[s]);
    const int* kx = k + static_cast<size_t>(xx) * ksize;
    for (int p = 0; p < pairs; ++p) {
      const int w0 = kx[2 * p], w1 = 2 * p + 1 < ksize ? kx[2 * p + 1] : 0;
      const int halves[2][2] = {{w0 >> 11, w1 >> 11}, {w0 & 2047, w1 & 2047}};
      for (int h = 0; h < 2; ++h) {
        const uint32_t pair = static_cast<uint16_t>(halves[h][0]) | static_cast<uint32_t>(halves[h][1]) << 16;
        int* v = weights + ((static_cast<size_t>(s / 2) * pairs + p) * 2 + h) * 8 + (s % 2) * 4;
        for (int ch = 0; ch < 3; ++ch) v[ch] = static_cast<int>(pair);
      }
    }
  }
}

template <int K>
struct Avx2Kernel {
  static constexpr int kPairs = (K + 1) / 2;
  static constexpr int kLoads = PairLoad(K, kPairs - 1) + 1;
  __m256i mask[kPairs];

  __attribute__((target("avx2"))) Avx2Kernel() {
    for (int p = 0; p < kPairs; ++p) {
      alignas(16) uint8_t m[16];
      const int o = 6 * p - 12 * PairLoad(K, p);
      const bool second = 2 * p + 1 < K;
      for (int ch = 0; ch < 4; ++ch) {
        m[4 * ch] = ch < 3 ? static_cast<uint8_t>(o + ch) : 0x80;
        m[4 * ch + 2] = ch < 3 && second ? static_cast<uint8_t>(o + 3 + ch) : 0x80;
        m[4 * ch + 1] = m[4 * ch + 3] = 0x80;
      }
      mask[p] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(m)));
    }
  }

  // Slot a's R, G, B, 0 >> 22 in lane 0, slot b's in lane 1 (w: their group's weights).
  __attribute__((target("avx2"), always_inline)) inline __m256i Sums(const uint8_t* a, const uint8_t* b,
                                                                     const __m256i* w) const {
    __m256i v[kLoads];
    for (int l = 0; l < kLoads; ++l)
      v[l] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b + 12 * l),
                                 reinterpret_cast<const __m128i*>(a + 12 * l));
    __m256i hi = _mm256_setzero_si256(), lo = _mm256_setzero_si256();
    for (int p = 0; p < kPairs; ++p) {
      const __m256i px = _mm256_shuffle_epi8(v[PairLoad(K, p)], mask[p]);
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(px, _mm256_loadu_si256(w + 2 * p)));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(px, _mm256_loadu_si256(w + 2 * p + 1)));
    }
    const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
    const __m256i ss = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi, 11), lo), half);
    return _mm256_srai_epi32(ss, kPrecisionBits);
  }
};

// Stores run 4 or 1 byte past the slots they write: onto slots written next,
// or past the row (the next row's bytes, or the buffer's 4 bytes of slack).
template <int K>
__attribute__((target("avx2"))) void HorizontalRowRgbAvx2(const uint8_t* line, const Avx2Taps& t, int out_w,
                                                           uint8_t* dst_row) {
  const Avx2Kernel<K> kernel;
  const int* offsets = t.offsets;
  const __m256i* w = reinterpret_cast<const __m256i*>(t.weights);
  constexpr int kGroup = 2 * Avx2Kernel<K>::kPairs;  // __m256i per two slots
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5);
  const __m128i rgb = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  int s = 0;
  for (; s + 4 <= out_w; s += 4, w += 2 * kGroup) {
    const __m256i ab = kernel.Sums(line + offsets[s], line + offsets[s + 1], w);
    const __m256i cd = kernel.Sums(line + offsets[s + 2], line + offsets[s + 3], w + kGroup);
    // Saturating packs clip to [0, 255]: lane 0 holds a, c, lane 1 b, d.
    const __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(ab, cd), ab);
    const __m128i abcd = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(packed, order));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst_row + 3 * static_cast<size_t>(s)), _mm_shuffle_epi8(abcd, rgb));
  }
  for (; s < out_w; s += 2, w += kGroup) {  // 1 to 3 slots left
    const bool two = s + 1 < out_w;
    const __m256i ab = kernel.Sums(line + offsets[s], line + offsets[two ? s + 1 : s], w);
    const __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(ab, ab), ab);
    const uint32_t rgb0 = static_cast<uint32_t>(_mm256_cvtsi256_si32(packed));
    std::memcpy(dst_row + 3 * static_cast<size_t>(s), &rgb0, 4);
    if (two) {
      const uint32_t rgb1 = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(packed, 1)));
      std::memcpy(dst_row + 3 * static_cast<size_t>(s) + 3, &rgb1, 4);
    }
  }
}

using Avx2RowFn = void (*)(const uint8_t*, const Avx2Taps&, int, uint8_t*);
Avx2RowFn Avx2RowFor(int ksize) {
  switch (ksize) {
    case 3: return HorizontalRowRgbAvx2<3>;
    case 5: return HorizontalRowRgbAvx2<5>;
    case 7: return HorizontalRowRgbAvx2<7>;
    case 9: return HorizontalRowRgbAvx2<9>;
    default: return nullptr;
  }
}

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
                    int out_w, bool flip, const Avx2Taps* avx2, uint8_t* tmp) {
  const int c = src.c;
  const Avx2RowFn avx2_row = avx2 != nullptr ? Avx2RowFor(avx2->ksize) : nullptr;
  // Readable bytes from the region's first pixel on.
  const size_t readable = static_cast<size_t>(src.h - 1) * src.stride + static_cast<size_t>(src.w) * c + src.slack;
  for (int y = row_first; y < row_last; ++y) {
    const size_t row_at = static_cast<size_t>(y - src.y0) * src.stride;
    const uint8_t* line = src.pixels + row_at;
    uint8_t* dst_row = tmp + static_cast<size_t>(y - row_first) * out_w * c;
    if (avx2_row != nullptr &&
        row_at + static_cast<size_t>(avx2->max_offset) + WindowBytes(avx2->ksize) <= readable) {
      avx2_row(line, *avx2, out_w, dst_row);
      continue;
    }
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

// 8 bytes at p as 8 int32.
__attribute__((target("avx2"), always_inline)) inline __m256i Widen8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// One output row of the vertical pass with AVX2, 32 bytes at a time summed in
// registers over the row's n source rows.
__attribute__((target("avx2"))) void VerticalRowAvx2(const uint8_t* rows, size_t row_width, int n, const int* ky,
                                                      uint8_t* dst) {
  const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  size_t i = 0;
  for (; i + 32 <= row_width; i += 32) {
    __m256i s0 = half, s1 = half, s2 = half, s3 = half;
    const uint8_t* r = rows + i;
    for (int y = 0; y < n; ++y, r += row_width) {
      const __m256i w = _mm256_set1_epi32(ky[y]);
      s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(Widen8(r), w));
      s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(Widen8(r + 8), w));
      s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(Widen8(r + 16), w));
      s3 = _mm256_add_epi32(s3, _mm256_mullo_epi32(Widen8(r + 24), w));
    }
    s0 = _mm256_srai_epi32(s0, kPrecisionBits);
    s1 = _mm256_srai_epi32(s1, kPrecisionBits);
    s2 = _mm256_srai_epi32(s2, kPrecisionBits);
    s3 = _mm256_srai_epi32(s3, kPrecisionBits);
    // Saturating packs clip to [0, 255]; they interleave 128-bit lanes, the
    // permutation puts the 4-byte groups back in order.
    const __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(s0, s1), _mm256_packs_epi32(s2, s3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permutevar8x32_epi32(packed, order));
  }
  for (; i < row_width; ++i) {
    int ss = 1 << (kPrecisionBits - 1);
    for (int y = 0; y < n; ++y) ss += rows[static_cast<size_t>(y) * row_width + i] * ky[y];
    dst[i] = Clip8(ss);
  }
}

void VerticalPass(const uint8_t* tmp, int row_width, const int* bounds, const int* k, int ksize, int out_h,
                  int row_first, int* acc, uint8_t* out) {
  for (int yy = 0; yy < out_h; ++yy) {
    const int first = bounds[2 * yy] - row_first, n = bounds[2 * yy + 1];
    const int* ky = k + static_cast<size_t>(yy) * ksize;
    const uint8_t* rows = tmp + static_cast<size_t>(first) * row_width;
    uint8_t* dst = out + static_cast<size_t>(yy) * row_width;
    if (kHaveAvx2) {
      VerticalRowAvx2(rows, static_cast<size_t>(row_width), n, ky, dst);
      continue;
    }
    std::fill(acc, acc + row_width, 1 << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) AccumulateRow(rows + static_cast<size_t>(y) * row_width, ky[y], row_width, acc);
    StoreRow(acc, row_width, dst);
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
  const bool use_avx2 = c == 3 && kHaveAvx2 && Avx2RowFor(ksize_x) != nullptr;
  const size_t avx2_at = acc_at + static_cast<size_t>(out_w) * c;
  scratch->bounds.resize(avx2_at + (use_avx2 ? Avx2TapsInts(out_w, ksize_x) : 0));
  ComputeAxis(gx, &scratch->coeffs, &scratch->bounds, xb, xk);
  ComputeAxis(gy, &scratch->coeffs, &scratch->bounds, yb, yk);
  const int* b = scratch->bounds.data();  // not resized below
  Avx2Taps avx2;
  if (use_avx2) BuildAvx2Taps(b + xb, b + xk, ksize_x, out_w, flip, src.x0, scratch->bounds.data() + avx2_at, &avx2);

  const int row_first = b[yb];
  const int row_last = b[yb + 2 * (out_h - 1)] + b[yb + 2 * (out_h - 1) + 1];
  // + 4: the AVX2 row kernel's last 4-byte store ends one byte past its row.
  scratch->rows.resize(static_cast<size_t>(row_last - row_first) * out_w * c + 4);
  uint8_t* tmp = scratch->rows.data();
  HorizontalPass(src, row_first, row_last, b + xb, b + xk, ksize_x, out_w, flip, use_avx2 ? &avx2 : nullptr, tmp);
  static_assert(sizeof(int) == 4, "Pillow's fixed-point sums are 32-bit");
  VerticalPass(tmp, out_w * c, b + yb, b + yk, ksize_y, out_h, row_first, scratch->bounds.data() + acc_at, out);
}

}  // namespace dtrain::data::detail
