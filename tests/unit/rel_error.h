// How far a float result is from a reference, for the parity tests: relative
// L2 error ||got - ref||_2 / ||ref||_2 and max |got - ref| / max |ref| (sums in
// double; a zero reference counts as 1e-300).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace dtrain::testing {

struct RelError {
  double rel_l2 = 0, max_abs_rel = 0;
};

inline RelError CompareRel(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0, worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += double(ref[i]) * ref[i];
    worst = std::max(worst, std::abs(d));
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  return {std::sqrt(num / std::max(den, 1e-300)), worst / std::max(scale, 1e-300)};
}

}  // namespace dtrain::testing
