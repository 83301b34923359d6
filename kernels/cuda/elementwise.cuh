// Launch geometry of the grid-stride elementwise kernels in this directory
// (device code and launch helpers only).
#pragma once

#include <algorithm>
#include <cstdint>

namespace dtrain::cuda::detail {

constexpr int kElementwiseThreads = 256;
constexpr int64_t kMaxElementwiseBlocks = 65536;  // grid-stride beyond this

inline unsigned ElementwiseBlocks(int64_t n) {
  return static_cast<unsigned>(
      std::min<int64_t>((n + kElementwiseThreads - 1) / kElementwiseThreads, kMaxElementwiseBlocks));
}

}  // namespace dtrain::cuda::detail
