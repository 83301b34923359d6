// NCCL_CHECK(expr): expr is an ncclResult_t; anything but ncclSuccess throws
// dtrain::Error(kInternal) with the result code, ncclGetErrorString, NCCL's
// last error message (ncclGetLastError, when it has one), the expression,
// file and line. ncclInProgress (non-blocking communicators) is an error
// here too: callers that use non-blocking mode test for it themselves.
// Needs libnccl.
#pragma once

#include <nccl.h>

#include <string>

#include "kernels/cuda/check.h"

namespace dtrain::cuda {

inline std::string NcclStatus(ncclResult_t r) {
  std::string s = std::to_string(static_cast<int>(r)) + ": " + ncclGetErrorString(r);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && last[0] != '\0') s += " (" + std::string(last) + ")";
  return s;
}

}  // namespace dtrain::cuda

#define NCCL_CHECK(expr)                                                                  \
  do {                                                                                    \
    const ncclResult_t dtrain_nccl_res_ = (expr);                                         \
    if (dtrain_nccl_res_ != ncclSuccess)                                                  \
      ::dtrain::cuda::ThrowLibraryError("NCCL", ::dtrain::cuda::NcclStatus(dtrain_nccl_res_), \
                                        #expr, __FILE__, __LINE__);                       \
  } while (0)
