// For the parity tests and benches: how far a float result is from a
// reference (relative L2 error ||got - ref||_2 / ||ref||_2 and max |got - ref|
// / max |ref|, sums in double, a zero reference counting as 1e-300), and
// uniform random inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace dtrain::testing {

struct RelError {
  double rel_l2 = 0, max_abs_rel = 0;
};

inline RelError CompareRel(const float* got, const float* ref, size_t n) {
  double num = 0, den = 0, worst = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += double(ref[i]) * ref[i];
    worst = std::max(worst, std::abs(d));
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  return {std::sqrt(num / std::max(den, 1e-300)), worst / std::max(scale, 1e-300)};
}

inline RelError CompareRel(const std::vector<float>& got, const std::vector<float>& ref) {
  return CompareRel(got.data(), ref.data(), std::min(got.size(), ref.size()));
}

// n values uniform in [lo, hi).
template <typename Rng>
std::vector<float> RandomUniform(size_t n, Rng& rng, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace dtrain::testing
