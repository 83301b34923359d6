// Max and global-average pooling over NHWC fp16 (contract in pool.h).
// Every kernel is grid-stride over (pixel, channel group); a thread handles V
// consecutive channels (V = 8: 16-byte loads, V = 2: half2, V = 1), and V
// divides c, so the flat element offset of a thread's first channel is i·V.
#include "kernels/cuda/pool.h"

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/elementwise.cuh"

namespace dtrain::cuda {
namespace {

template <int V>
struct alignas(sizeof(__half) * V) HalfVec {
  __half v[V];
};
template <int V>
struct alignas(sizeof(int32_t) * V) IntVec {
  int32_t v[V];
};

struct MaxPoolGeom {
  int n, c, h, w, oh, ow, window, stride, pad;
};

__device__ __forceinline__ int64_t GridStride() { return int64_t(gridDim.x) * blockDim.x; }
__device__ __forceinline__ int64_t GlobalThread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }

// One thread per (output pixel, channel group): scan the clipped window in
// row-major order; strict '>' keeps the first maximum and never takes NaN.
template <int V>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    MaxPoolForwardKernel(MaxPoolGeom g, const __half* __restrict__ x, __half* __restrict__ y,
                         int32_t* __restrict__ argmax) {
  const int64_t groups = g.c / V;
  const int64_t total = int64_t(g.n) * g.oh * g.ow * groups;
  for (int64_t i = GlobalThread(); i < total; i += GridStride()) {
    const int cg = int(i % groups);
    int64_t r = i / groups;
    const int ox = int(r % g.ow);
    r /= g.ow;
    const int oy = int(r % g.oh);
    const int64_t b = r / g.oh;
    const int y0 = max(0, oy * g.stride - g.pad), y1 = min(g.h, oy * g.stride - g.pad + g.window);
    const int x0 = max(0, ox * g.stride - g.pad), x1 = min(g.w, ox * g.stride - g.pad + g.window);
    const __half* xb = x + b * g.h * g.w * int64_t(g.c) + int64_t(cg) * V;
    float best[V];
    int32_t at[V];
#pragma unroll
    for (int l = 0; l < V; ++l) {
      best[l] = -INFINITY;
      at[l] = y0 * g.w + x0;
    }
    for (int iy = y0; iy < y1; ++iy) {
      for (int ix = x0; ix < x1; ++ix) {
        const int32_t cell = iy * g.w + ix;
        const HalfVec<V> v = *reinterpret_cast<const HalfVec<V>*>(xb + int64_t(cell) * g.c);
#pragma unroll
        for (int l = 0; l < V; ++l) {
          const float f = __half2float(v.v[l]);
          if (f > best[l]) {
            best[l] = f;
            at[l] = cell;
          }
        }
      }
    }
    HalfVec<V> out;
    IntVec<V> idx;
#pragma unroll
    for (int l = 0; l < V; ++l) {
      out.v[l] = __float2half_rn(best[l]);  // exact: best is an fp16 value or -inf
      idx.v[l] = at[l];
    }
    *reinterpret_cast<HalfVec<V>*>(y + i * V) = out;
    *reinterpret_cast<IntVec<V>*>(argmax + i * V) = idx;
  }
}

// One thread per (input pixel, channel group): gather dy from the outputs
// whose (unclipped) window covers the pixel, in row-major output order (the
// CPU's scatter order), where argmax names this pixel.
template <int V>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    MaxPoolBackwardKernel(MaxPoolGeom g, const __half* __restrict__ dy, const int32_t* __restrict__ argmax,
                          __half* __restrict__ dx) {
  const int64_t groups = g.c / V;
  const int64_t total = int64_t(g.n) * g.h * g.w * groups;
  for (int64_t i = GlobalThread(); i < total; i += GridStride()) {
    const int cg = int(i % groups);
    int64_t r = i / groups;
    const int ix = int(r % g.w);
    r /= g.w;
    const int iy = int(r % g.h);
    const int64_t b = r / g.h;
    // Output oy covers iy iff oy·stride − pad <= iy < oy·stride − pad + window.
    const int ty = iy + g.pad - g.window + 1, tx = ix + g.pad - g.window + 1;
    const int oy0 = ty <= 0 ? 0 : (ty + g.stride - 1) / g.stride;
    const int ox0 = tx <= 0 ? 0 : (tx + g.stride - 1) / g.stride;
    const int oy1 = min(g.oh - 1, (iy + g.pad) / g.stride);
    const int ox1 = min(g.ow - 1, (ix + g.pad) / g.stride);
    const int32_t cell = iy * g.w + ix;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.0f;
    for (int oy = oy0; oy <= oy1; ++oy) {
      for (int ox = ox0; ox <= ox1; ++ox) {
        const int64_t off = ((b * g.oh + oy) * g.ow + ox) * int64_t(g.c) + int64_t(cg) * V;
        const IntVec<V> a = *reinterpret_cast<const IntVec<V>*>(argmax + off);
        const HalfVec<V> d = *reinterpret_cast<const HalfVec<V>*>(dy + off);
#pragma unroll
        for (int l = 0; l < V; ++l)
          if (a.v[l] == cell) acc[l] += __half2float(d.v[l]);
      }
    }
    HalfVec<V> out;
#pragma unroll
    for (int l = 0; l < V; ++l) out.v[l] = __float2half_rn(acc[l]);
    *reinterpret_cast<HalfVec<V>*>(dx + i * V) = out;
  }
}

// One thread per (image, channel group); adjacent threads read adjacent
// channels of the same pixel (coalesced), p ascending.
template <int V>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    AvgPoolForwardKernel(int n, int c, int hw, float inv_hw, const __half* __restrict__ x,
                         __half* __restrict__ y) {
  const int64_t groups = c / V;
  const int64_t total = int64_t(n) * groups;
  for (int64_t i = GlobalThread(); i < total; i += GridStride()) {
    const int cg = int(i % groups);
    const int64_t b = i / groups;
    const __half* xb = x + b * hw * int64_t(c) + int64_t(cg) * V;
    float acc[V];
#pragma unroll
    for (int l = 0; l < V; ++l) acc[l] = 0.0f;
    for (int p = 0; p < hw; ++p) {
      const HalfVec<V> v = *reinterpret_cast<const HalfVec<V>*>(xb + int64_t(p) * c);
#pragma unroll
      for (int l = 0; l < V; ++l) acc[l] += __half2float(v.v[l]);
    }
    HalfVec<V> out;
#pragma unroll
    for (int l = 0; l < V; ++l) out.v[l] = __float2half_rn(acc[l] * inv_hw);
    *reinterpret_cast<HalfVec<V>*>(y + i * V) = out;
  }
}

template <int V>
__global__ void __launch_bounds__(detail::kElementwiseThreads)
    AvgPoolBackwardKernel(int n, int c, int hw, float inv_hw, const __half* __restrict__ dy,
                          __half* __restrict__ dx) {
  const int64_t groups = c / V;
  const int64_t total = int64_t(n) * hw * groups;
  for (int64_t i = GlobalThread(); i < total; i += GridStride()) {
    const int cg = int(i % groups);
    const int64_t b = (i / groups) / hw;
    const HalfVec<V> g = *reinterpret_cast<const HalfVec<V>*>(dy + b * c + int64_t(cg) * V);
    HalfVec<V> out;
#pragma unroll
    for (int l = 0; l < V; ++l) out.v[l] = __float2half_rn(__half2float(g.v[l]) * inv_hw);
    *reinterpret_cast<HalfVec<V>*>(dx + i * V) = out;
  }
}

// ---------------------------------------------------------------- launchers

bool Aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The widest V in {8, 2, 1}, V <= max_v, dividing c, for which every fp16
// pointer is aligned to 2·V bytes and the int32 pointer (nullable) to 4·V.
int PickVector(int c, int max_v, std::initializer_list<const void*> halves, const void* ints) {
  for (int v : {8, 2}) {
    if (v > max_v || c % v != 0) continue;
    bool ok = ints == nullptr || Aligned(ints, sizeof(int32_t) * v);
    for (const void* p : halves) ok = ok && Aligned(p, sizeof(__half) * v);
    if (ok) return v;
  }
  return 1;
}

void CheckNotNull(const void* p, const char* what, const char* op, const std::string& shape) {
  if (p == nullptr) Fail(ErrorCode::kInvalidArgument, std::string(op) + ": " + what + " is null (" + shape + ")");
}

std::string Describe(const cpu::MaxPoolShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " h=" + std::to_string(s.h) +
         " w=" + std::to_string(s.w) + " window=" + std::to_string(s.window) +
         " stride=" + std::to_string(s.stride) + " pad=" + std::to_string(s.pad);
}

std::string Describe(const cpu::GlobalAvgPoolShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " hw=" + std::to_string(s.hw);
}

MaxPoolGeom CheckMaxPool(const cpu::MaxPoolShape& s, const char* op) {
  s.Check();  // kInvalidArgument naming the shape
  if (int64_t(s.h) * s.w > INT32_MAX)
    Fail(ErrorCode::kInvalidArgument, std::string(op) + ": h*w must fit in int32 (argmax), got " + Describe(s));
  return MaxPoolGeom{s.n, s.c, s.h, s.w, s.out_h(), s.out_w(), s.window, s.stride, s.pad};
}

template <int V>
void LaunchMaxPoolForward(const MaxPoolGeom& g, const __half* x, __half* y, int32_t* argmax,
                          cudaStream_t stream) {
  const int64_t total = int64_t(g.n) * g.oh * g.ow * (g.c / V);
  MaxPoolForwardKernel<V>
      <<<detail::ElementwiseBlocks(total), detail::kElementwiseThreads, 0, stream>>>(g, x, y, argmax);
}

template <int V>
void LaunchMaxPoolBackward(const MaxPoolGeom& g, const __half* dy, const int32_t* argmax, __half* dx,
                           cudaStream_t stream) {
  const int64_t total = int64_t(g.n) * g.h * g.w * (g.c / V);
  MaxPoolBackwardKernel<V>
      <<<detail::ElementwiseBlocks(total), detail::kElementwiseThreads, 0, stream>>>(g, dy, argmax, dx);
}

}  // namespace

void MaxPoolForwardNHWC(const cpu::MaxPoolShape& s, const __half* x, __half* y, int32_t* argmax,
                        cudaStream_t stream) {
  static constexpr const char* kOp = "MaxPoolForwardNHWC";
  const MaxPoolGeom g = CheckMaxPool(s, kOp);
  CheckNotNull(x, "x", kOp, Describe(s));
  CheckNotNull(y, "y", kOp, Describe(s));
  CheckNotNull(argmax, "argmax", kOp, Describe(s));
  switch (PickVector(s.c, 8, {x, y}, argmax)) {
    case 8: LaunchMaxPoolForward<8>(g, x, y, argmax, stream); break;
    case 2: LaunchMaxPoolForward<2>(g, x, y, argmax, stream); break;
    default: LaunchMaxPoolForward<1>(g, x, y, argmax, stream); break;
  }
  CUDA_CHECK_LAUNCH();
}

void MaxPoolBackwardNHWC(const cpu::MaxPoolShape& s, const __half* dy, const int32_t* argmax, __half* dx,
                         cudaStream_t stream) {
  static constexpr const char* kOp = "MaxPoolBackwardNHWC";
  const MaxPoolGeom g = CheckMaxPool(s, kOp);
  CheckNotNull(dy, "dy", kOp, Describe(s));
  CheckNotNull(argmax, "argmax", kOp, Describe(s));
  CheckNotNull(dx, "dx", kOp, Describe(s));
  switch (PickVector(s.c, 8, {dy, dx}, argmax)) {
    case 8: LaunchMaxPoolBackward<8>(g, dy, argmax, dx, stream); break;
    case 2: LaunchMaxPoolBackward<2>(g, dy, argmax, dx, stream); break;
    default: LaunchMaxPoolBackward<1>(g, dy, argmax, dx, stream); break;
  }
  CUDA_CHECK_LAUNCH();
}

void GlobalAvgPoolForwardNHWC(const cpu::GlobalAvgPoolShape& s, const __half* x, __half* y,
                              cudaStream_t stream) {
  static constexpr const char* kOp = "GlobalAvgPoolForwardNHWC";
  s.Check();
  CheckNotNull(x, "x", kOp, Describe(s));
  CheckNotNull(y, "y", kOp, Describe(s));
  const float inv_hw = 1.0f / float(s.hw);  // as the CPU reference: T(1) / T(hw)
  // One thread per (image, channel pair) at most: many threads in flight for
  // the long hw loop (ResNet-50: n·c/2 = 262144 threads, 49 loads each).
  const int v = PickVector(s.c, 2, {x, y}, nullptr);
  const int64_t total = int64_t(s.n) * (s.c / v);
  const unsigned blocks = detail::ElementwiseBlocks(total);
  if (v == 2)
    AvgPoolForwardKernel<2><<<blocks, detail::kElementwiseThreads, 0, stream>>>(s.n, s.c, s.hw, inv_hw, x, y);
  else
    AvgPoolForwardKernel<1><<<blocks, detail::kElementwiseThreads, 0, stream>>>(s.n, s.c, s.hw, inv_hw, x, y);
  CUDA_CHECK_LAUNCH();
}

void GlobalAvgPoolBackwardNHWC(const cpu::GlobalAvgPoolShape& s, const __half* dy, __half* dx,
                               cudaStream_t stream) {
  static constexpr const char* kOp = "GlobalAvgPoolBackwardNHWC";
  s.Check();
  CheckNotNull(dy, "dy", kOp, Describe(s));
  CheckNotNull(dx, "dx", kOp, Describe(s));
  const float inv_hw = 1.0f / float(s.hw);
  const int v = PickVector(s.c, 8, {dy, dx}, nullptr);
  const int64_t total = int64_t(s.n) * s.hw * (s.c / v);
  const unsigned blocks = detail::ElementwiseBlocks(total);
  switch (v) {
    case 8:
      AvgPoolBackwardKernel<8><<<blocks, detail::kElementwiseThreads, 0, stream>>>(s.n, s.c, s.hw, inv_hw, dy, dx);
      break;
    case 2:
      AvgPoolBackwardKernel<2><<<blocks, detail::kElementwiseThreads, 0, stream>>>(s.n, s.c, s.hw, inv_hw, dy, dx);
      break;
    default:
      AvgPoolBackwardKernel<1><<<blocks, detail::kElementwiseThreads, 0, stream>>>(s.n, s.c, s.hw, inv_hw, dy, dx);
      break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace dtrain::cuda
