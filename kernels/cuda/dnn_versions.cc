// Library version queries and floors (contract in dnn_versions.h).
#include "kernels/cuda/dnn_versions.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>
#include <vector>

#include "common/error.h"

namespace dtrain::cuda {
namespace {

std::string CudaVersionString(long v) {
  if (v <= 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

long CudnnMajor(size_t v) { return v >= 10000 ? long(v / 10000) : long(v / 1000); }

std::string CudnnVersionString(size_t v) {
  if (v == 0) return "unknown";
  if (v >= 10000) return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  return std::to_string(v / 1000) + "." + std::to_string(v / 100 % 10) + "." + std::to_string(v % 100);  // cuDNN <= 8
}

std::string CublasVersionString(long v) {
  if (v <= 0) return "unknown";
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

}  // namespace

DnnVersions QueryDnnVersions() {
  DnnVersions v;
  // Neither call needs a device; with no driver installed cudaDriverGetVersion
  // reports 0. A failing call leaves its field at 0.
  int x = 0;
  if (cudaRuntimeGetVersion(&x) == cudaSuccess) v.cudart_runtime = x;
  x = 0;
  if (cudaDriverGetVersion(&x) == cudaSuccess) v.cuda_driver = x;
  v.cudnn = cudnnGetVersion();
  v.cudnn_compiled = CUDNN_VERSION;
  v.cudnn_cudart = cudnnGetCudartVersion();
  v.cublaslt = int(cublasLtGetVersion());
  return v;
}

void CheckDnnVersions(const DnnVersions& v) {
  std::vector<std::string> problems;
  // CUDA driver vs runtime.
  const long runtime_major = v.cudart_runtime / 1000, driver_major = v.cuda_driver / 1000;
  if (v.cuda_driver <= 0) {
    problems.push_back("no CUDA driver found (cudaDriverGetVersion reported " + std::to_string(v.cuda_driver) +
                       "); the CUDA " + CudaVersionString(v.cudart_runtime) +
                       " runtime needs an NVIDIA driver for CUDA " + std::to_string(runtime_major) +
                       ".x (r580 or newer for CUDA 13): install it, or run the worker with --device cpu");
  } else if (driver_major < runtime_major) {
    problems.push_back("the NVIDIA driver supports CUDA " + CudaVersionString(v.cuda_driver) + " but the CUDA runtime is " +
                       CudaVersionString(v.cudart_runtime) + " (cudaErrorInsufficientDriver): the driver must support CUDA " +
                       std::to_string(runtime_major) + ".x (r580 or newer for CUDA 13); upgrade the driver");
  }
  // cuDNN.
  const long cudnn_major = CudnnMajor(v.cudnn), compiled_major = CudnnMajor(v.cudnn_compiled);
  const std::string cudnn_fix =
      "install the cuDNN 9 build for CUDA " + std::to_string(runtime_major > 0 ? runtime_major : 13) +
      " (>= " + CudnnVersionString(kCudnnVersionFloor) +
      ", e.g. the Debian/Ubuntu package cudnn9-cuda-13 or pip nvidia-cudnn-cu13) and put its lib directory first on "
      "LD_LIBRARY_PATH";
  if (cudnn_major != compiled_major || cudnn_major != 9) {
    problems.push_back("cuDNN " + CudnnVersionString(v.cudnn) + " found but dtrain was compiled against cuDNN " +
                       CudnnVersionString(v.cudnn_compiled) + " and needs cuDNN major 9: " + cudnn_fix);
  } else if (v.cudnn < kCudnnVersionFloor) {
    problems.push_back("cuDNN " + CudnnVersionString(v.cudnn) + " found, dtrain needs cuDNN >= " +
                       CudnnVersionString(kCudnnVersionFloor) + ": " + cudnn_fix);
  } else if (v.cudnn_cudart > 0 && v.cudart_runtime > 0 && long(v.cudnn_cudart / 1000) != runtime_major) {
    problems.push_back("cuDNN " + CudnnVersionString(v.cudnn) + " was built for CUDA " +
                       CudaVersionString(long(v.cudnn_cudart)) + " but the CUDA runtime is " +
                       CudaVersionString(v.cudart_runtime) + ": " + cudnn_fix);
  }
  // cuBLASLt.
  if (v.cublaslt / 10000 != CUBLAS_VER_MAJOR) {
    problems.push_back("cuBLASLt " + CublasVersionString(v.cublaslt) + " found, dtrain needs cuBLASLt major " +
                       std::to_string(CUBLAS_VER_MAJOR) + " (compiled against " + CublasVersionString(CUBLAS_VERSION) +
                       "): install the CUDA " + std::to_string(CUBLAS_VER_MAJOR) +
                       " cuBLAS (libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR) +
                       ", e.g. pip nvidia-cublas) and put it first on LD_LIBRARY_PATH");
  }
  if (problems.empty()) return;
  std::string msg = "GPU libraries unusable (" + DescribeDnnVersions(v) + "): ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
  Fail(ErrorCode::kUnavailable, msg);
}

std::string DescribeDnnVersions(const DnnVersions& v) {
  std::string s = "CUDA runtime " + CudaVersionString(v.cudart_runtime) + ", driver for CUDA " +
                  CudaVersionString(v.cuda_driver) + ", cuDNN " + CudnnVersionString(v.cudnn) + " (compiled " +
                  CudnnVersionString(v.cudnn_compiled);
  if (v.cudnn_cudart > 0) s += ", built for CUDA " + CudaVersionString(long(v.cudnn_cudart));
  s += "), cuBLASLt " + CublasVersionString(v.cublaslt);
  return s;
}

}  // namespace dtrain::cuda
