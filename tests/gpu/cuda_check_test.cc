// CUDA_CHECK / CUDNN_CHECK / CUBLAS_CHECK / NCCL_CHECK: a failing status
// throws Error(kInternal) naming the library, the status, the expression and
// file:line; success does nothing and evaluates the expression once. Needs
// the libraries, not a device.
#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/cudnn_check.h"
#include "kernels/cuda/nccl_check.h"

namespace dtrain::cuda {
namespace {

template <typename F>
std::string ThrownMessage(F f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
    return e.what();
  }
  ADD_FAILURE() << "nothing thrown";
  return "";
}

void ExpectHas(const std::string& msg, const std::string& needle) {
  EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' not in: " << msg;
}

TEST(CudaCheck, CudaErrorNamesStatusExpressionAndPlace) {
  const std::string msg = ThrownMessage([] { CUDA_CHECK(cudaErrorInvalidValue); });
  ExpectHas(msg, "CUDA error cudaErrorInvalidValue (1)");
  ExpectHas(msg, "`cudaErrorInvalidValue`");
  ExpectHas(msg, "cuda_check_test.cc:");
  // A real failing call (invalid device here, or no driver on a GPU-less host).
  ExpectHas(ThrownMessage([] { CUDA_CHECK(cudaSetDevice(1 << 20)); }), "cudaSetDevice(1 << 20)");
  int calls = 0;
  CUDA_CHECK((++calls, cudaSuccess));
  EXPECT_EQ(calls, 1);
}

TEST(CudaCheck, LibraryMacros) {
  std::string msg = ThrownMessage([] { CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  ExpectHas(msg, "cuDNN error");
  ExpectHas(msg, "BAD_PARAM");
  ExpectHas(msg, "cuda_check_test.cc:");
  msg = ThrownMessage([] { CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED); });
  ExpectHas(msg, "cuBLAS error CUBLAS_STATUS_NOT_INITIALIZED");
  msg = ThrownMessage([] { NCCL_CHECK(ncclInvalidArgument); });
  ExpectHas(msg, "NCCL error 4: ");
  ExpectHas(msg, "`ncclInvalidArgument`");
  CUDNN_CHECK(CUDNN_STATUS_SUCCESS);
  CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS);
  NCCL_CHECK(ncclSuccess);
}

}  // namespace
}  // namespace dtrain::cuda
