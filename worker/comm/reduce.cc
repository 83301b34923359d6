#include "worker/comm/reduce.h"

#include <immintrin.h>

#include <cstdint>

#include "common/half.h"

namespace dtrain::comm {
namespace {

__attribute__((target("avx2,f16c"))) void SumF32Avx(float* dst, const float* src, size_t n,
                                                    float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  size_t i = 0;
  if (scale == 1.0f) {
    for (; i + 16 <= n; i += 16) {
      __m256 a = _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i));
      __m256 b = _mm256_add_ps(_mm256_loadu_ps(dst + i + 8), _mm256_loadu_ps(src + i + 8));
      _mm256_storeu_ps(dst + i, a);
      _mm256_storeu_ps(dst + i + 8, b);
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      __m256 a = _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i));
      _mm256_storeu_ps(dst + i, _mm256_mul_ps(a, s));
    }
  }
  for (; i < n; ++i) dst[i] = (dst[i] + src[i]) * scale;
}

__attribute__((target("avx2,f16c"))) void SumF16Avx(uint16_t* dst, const uint16_t* src,
                                                    size_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(dst + i)));
    __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    __m256 r = _mm256_mul_ps(_mm256_add_ps(a, b), s);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) dst[i] = FloatToHalf((HalfToFloat(dst[i]) + HalfToFloat(src[i])) * scale);
}

void SumF32Plain(float* dst, const float* src, size_t n, float scale) {
  for (size_t i = 0; i < n; ++i) dst[i] = (dst[i] + src[i]) * scale;
}

void SumF16Plain(uint16_t* dst, const uint16_t* src, size_t n, float scale) {
  for (size_t i = 0; i < n; ++i) dst[i] = FloatToHalf((HalfToFloat(dst[i]) + HalfToFloat(src[i])) * scale);
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");

}  // namespace

void ReduceInto(void* dst, const void* src, size_t count, DType dtype, float scale) {
  if (dtype == DType::kF32) {
    auto* d = static_cast<float*>(dst);
    auto* s = static_cast<const float*>(src);
    kHaveAvx2 ? SumF32Avx(d, s, count, scale) : SumF32Plain(d, s, count, scale);
  } else {
    auto* d = static_cast<uint16_t*>(dst);
    auto* s = static_cast<const uint16_t*>(src);
    kHaveAvx2 ? SumF16Avx(d, s, count, scale) : SumF16Plain(d, s, count, scale);
  }
}

}  // namespace dtrain::comm
