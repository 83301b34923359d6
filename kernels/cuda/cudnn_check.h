// CUDNN_CHECK(expr): expr is a cudnnStatus_t; anything but
// CUDNN_STATUS_SUCCESS throws dtrain::Error(kInternal) with the status name
// (cudnnGetErrorString), the expression, file and line. Needs libcudnn.
#pragma once

#include <cudnn.h>

#include <string>

#include "kernels/cuda/check.h"

#define CUDNN_CHECK(expr)                                                                        \
  do {                                                                                           \
    const cudnnStatus_t dtrain_cudnn_st_ = (expr);                                               \
    if (dtrain_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                                \
      ::dtrain::cuda::ThrowLibraryError(                                                         \
          "cuDNN",                                                                               \
          std::string(cudnnGetErrorString(dtrain_cudnn_st_)) + " (" +                            \
              std::to_string(static_cast<int>(dtrain_cudnn_st_)) + ")",                          \
          #expr, __FILE__, __LINE__);                                                            \
  } while (0)
