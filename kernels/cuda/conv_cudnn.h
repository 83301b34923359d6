// 2-D convolutions (no bias, groups 1, dilation 1, symmetric pad) through the
// cuDNN 9 backend graph API: tensor, convolution, operation, operation-graph,
// engine-heuristics, engine-config, execution-plan and variant-pack
// descriptors, cudnnBackendExecute. Layouts: x, dx NHWC fp16 [n][h][w][c];
// w, dw KRSC fp16 [k][r][s][c]; y, dy NHWC fp16 [n][oh][ow][k]; compute type
// fp32, CUDNN_CROSS_CORRELATION. Shapes as cpu::Conv2dShape (oh, ow floor).
// References: cpu::Conv2dForward / cpu::Conv2dBackward (NCHW, KCRS).
//
// Every pointer must be 16-byte aligned (the tensors declare 16-byte
// alignment). One execution plan per (operation, shape incl. n, accumulate),
// built on first use and cached. With autotune on (default) that first use
// times every usable engine config the heuristics propose (CUDNN_HEUR_MODE_A;
// CUDNN_HEUR_MODE_FALLBACK when A yields nothing usable; at most
// kMaxTunedConfigs), kTuneRuns runs each with cudaEvents after one warm-up,
// and keeps the fastest; off, the first usable one. Unusable: fails to
// finalize, needs more workspace than the limit, or fails to execute while
// timed; configs whose engine reports REDUCED_PRECISION_REDUCTION are used
// only when nothing else is usable. Timing writes only scratch memory or the
// output the call overwrites anyway (never an accumulating dx). The winner can
// differ between processes (timing noise), and with it the last bits of the
// results; engines may also be non-deterministic (no engine is excluded).
// The first use of a shape synchronizes the stream and must not happen
// during CUDA graph capture (throws kInvalidArgument); later calls only
// enqueue. The device workspace is owned here and grown (stream synchronized,
// reallocated) when a plan needs more; calls on different streams share it, so
// the caller must order them. cudnnSetStream(handle, stream) on every call.
// Not thread-safe. The handle must outlive this object; the destructor waits
// for the device (cudaDeviceSynchronize) before releasing plans and workspace.
// Errors: kInvalidArgument (bad shape, null or misaligned pointer: checked
// before any CUDA call), kInternal (cuDNN/CUDA failure, or no usable engine
// config, listing why each candidate was rejected); messages name the
// operation and the shape.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "kernels/cpu/conv2d.h"

namespace dtrain::cuda {

class CudnnConvolutions {
 public:
  enum class Op { kForward, kBackwardData, kBackwardFilter };
  static constexpr int kMaxTunedConfigs = 12;
  static constexpr int kTuneRuns = 3;

  CudnnConvolutions(cudnnHandle_t handle, size_t workspace_limit_bytes = size_t(256) << 20);
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  void set_autotune(bool on) { autotune_ = on; }

  // y = conv(x, w); y overwritten.
  void Forward(const cpu::Conv2dShape& s, const __half* x, const __half* w, __half* y, cudaStream_t stream);
  // dx = dgrad(dy, w); overwritten, or accumulated (dx += ...) when accumulate is true.
  void BackwardData(const cpu::Conv2dShape& s, const __half* dy, const __half* w, __half* dx, bool accumulate,
                    cudaStream_t stream);
  // dw = wgrad(x, dy) summed over the batch; overwritten.
  void BackwardFilter(const cpu::Conv2dShape& s, const __half* x, const __half* dy, __half* dw,
                      cudaStream_t stream);

  size_t num_plans() const { return plans_.size(); }
  size_t workspace_bytes() const { return workspace_bytes_; }
  // One line per cached plan: operation, shape, engine global index, its
  // workspace, the tuned time and how many configs were tried (for logs).
  std::string DescribePlans() const;

  // The host-side checks every call does first (no CUDA call): the shape
  // (cpu::Conv2dShape::Check), non-null and 16-byte-aligned pointers (a, b:
  // the two inputs, out: the output, in the operation's argument order).
  // Throws kInvalidArgument naming the operation, the shape and the problem.
  static void CheckCall(Op op, const cpu::Conv2dShape& s, const void* a, const void* b, const void* out);
  static const char* OpName(Op op);
  static std::string ShapeString(const cpu::Conv2dShape& s);

 private:
  struct Key {
    Op op;
    int n, c, h, w, k, r, s, stride, pad;
    bool accumulate;
    bool operator<(const Key& o) const {
      return std::tie(op, n, c, h, w, k, r, s, stride, pad, accumulate) <
             std::tie(o.op, o.n, o.c, o.h, o.w, o.k, o.r, o.s, o.stride, o.pad, o.accumulate);
    }
  };
  struct Plan;  // conv_cudnn.cc

  void Run(Op op, const cpu::Conv2dShape& s, bool accumulate, const void* a, const void* b, void* out,
           cudaStream_t stream);
  Plan& GetPlan(Op op, const cpu::Conv2dShape& s, bool accumulate, const void* a, const void* b, void* out,
                cudaStream_t stream);
  std::unique_ptr<Plan> BuildPlan(Op op, const cpu::Conv2dShape& s, bool accumulate, const void* a, const void* b,
                                  void* out, cudaStream_t stream);
  void GrowWorkspace(size_t bytes, cudaStream_t stream);

  cudnnHandle_t handle_;
  size_t workspace_limit_;
  bool autotune_ = true;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace dtrain::cuda
