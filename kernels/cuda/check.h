// Error checks for the CUDA runtime: CUDA_CHECK(expr) evaluates expr (a
// cudaError_t) once and, unless it is cudaSuccess, throws
// dtrain::Error(kInternal, "CUDA error cudaErrorX (35): <description> in
// `expr` at file.cc:42"). CUDA_CHECK_LAUNCH() does the same for the last
// kernel launch (cudaGetLastError). The cuDNN, cuBLAS and NCCL variants live in
// cudnn_check.h, cublas_check.h and nccl_check.h (so this header pulls in no
// library but the CUDA runtime); they share ThrowLibraryError below.
// C++17-clean: included by .cu files.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "common/error.h"

namespace dtrain::cuda {

// Throws Error(kInternal) naming the library, status, expression and place.
[[noreturn]] inline void ThrowLibraryError(const char* library, const std::string& status, const char* expr,
                                           const char* file, int line) {
  std::string msg = library;
  msg += " error ";
  msg += status;
  msg += " in `";
  msg += expr;
  msg += "` at ";
  msg += file;
  msg += ":";
  msg += std::to_string(line);
  throw Error(ErrorCode::kInternal, msg);
}

[[noreturn]] inline void ThrowCudaError(cudaError_t err, const char* expr, const char* file, int line) {
  ThrowLibraryError("CUDA",
                    std::string(cudaGetErrorName(err)) + " (" + std::to_string(static_cast<int>(err)) +
                        "): " + cudaGetErrorString(err),
                    expr, file, line);
}

}  // namespace dtrain::cuda

#define CUDA_CHECK(expr)                                                       \
  do {                                                                         \
    const cudaError_t dtrain_cuda_err_ = (expr);                               \
    if (dtrain_cuda_err_ != cudaSuccess)                                       \
      ::dtrain::cuda::ThrowCudaError(dtrain_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: launch-configuration errors (and earlier sticky
// errors) surface here; faults inside the kernel surface at the next sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
