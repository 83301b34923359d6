// Deterministic block reductions for the kernels in this directory (device
// code only). Every function must be called by ALL threads of the block
// (they contain __syncthreads), blockDim.x must be a multiple of 32 and at
// most 1024, and `scratch` is a __shared__ array of 32 elements that the call
// may overwrite. The reduction order is fixed (warp shuffles, then warps in
// index order), so results do not depend on timing; every thread gets the
// result.
#pragma once

#include <cuda_runtime.h>

namespace dtrain::cuda::detail {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_down_sync(kFullMask, v, o);
  return v;  // valid in lane 0
}

template <typename T>
__device__ __forceinline__ T BlockSum(T v, T* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  v = WarpSum(v);
  __syncthreads();  // a previous call may still be reading scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = scratch[0];
  for (int i = 1; i < warps; ++i) total += scratch[i];
  return total;
}

__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(kFullMask, v, o));
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = scratch[0];
  for (int i = 1; i < warps; ++i) m = fmaxf(m, scratch[i]);
  return m;
}

// Arg-max with the smallest index on ties (and over NaN-free values: a NaN
// never wins a comparison). Threads with no element pass index INT_MAX.
struct ArgMax {
  float value;
  int index;
};

__device__ __forceinline__ ArgMax Better(ArgMax a, ArgMax b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

__device__ __forceinline__ ArgMax BlockArgMax(ArgMax v, ArgMax* scratch) {
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    ArgMax other;
    other.value = __shfl_down_sync(kFullMask, v.value, o);
    other.index = __shfl_down_sync(kFullMask, v.index, o);
    v = Better(v, other);
  }
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  ArgMax best = scratch[0];
  for (int i = 1; i < warps; ++i) best = Better(best, scratch[i]);
  return best;
}

}  // namespace dtrain::cuda::detail
