// CUBLAS_CHECK(expr): expr is a cublasStatus_t; anything but
// CUBLAS_STATUS_SUCCESS throws dtrain::Error(kInternal) with the status name
// (cublasGetStatusName), the expression, file and line. Needs libcublas.
#pragma once

#include <cublas_v2.h>

#include <string>

#include "kernels/cuda/check.h"

#define CUBLAS_CHECK(expr)                                                                       \
  do {                                                                                           \
    const cublasStatus_t dtrain_cublas_st_ = (expr);                                             \
    if (dtrain_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                              \
      ::dtrain::cuda::ThrowLibraryError(                                                         \
          "cuBLAS",                                                                              \
          std::string(cublasGetStatusName(dtrain_cublas_st_)) + " (" +                           \
              std::to_string(static_cast<int>(dtrain_cublas_st_)) +                              \
              "): " + cublasGetStatusString(dtrain_cublas_st_),                                  \
          #expr, __FILE__, __LINE__);                                                            \
  } while (0)
