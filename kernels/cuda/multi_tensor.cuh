// Device helpers shared by the multi-tensor kernels (device code only).
#pragma once

#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "kernels/cuda/tensor_chunks.h"

namespace dtrain::cuda::detail {

constexpr int kMultiTensorThreads = 256;

__device__ __forceinline__ float LoadFloat(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float LoadFloat(const __half* p, int64_t i) { return __half2float(p[i]); }

inline void CheckTable(const char* op, const TensorTableView& t) {
  if (t.num_tensors < 0 || t.num_chunks < t.num_tensors ||
      (t.num_tensors > 0 && (!t.tensors || !t.chunks || !t.partials || !t.counters)))
    Fail(ErrorCode::kInvalidArgument, std::string(op) + ": invalid tensor table view");
}

inline void CheckPointer(const char* op, const void* p, const char* name) {
  if (p == nullptr) Fail(ErrorCode::kInvalidArgument, std::string(op) + ": " + name + " is null");
}

inline void CheckGradScale(const char* op, float s) {
  if (!(std::isfinite(s) && s > 0))
    Fail(ErrorCode::kInvalidArgument,
         std::string(op) + ": grad_scale must be finite and > 0, got " + std::to_string(s));
}

}  // namespace dtrain::cuda::detail
