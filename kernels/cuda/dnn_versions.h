// The versions of the CUDA runtime, driver, cuDNN and cuBLASLt this process
// actually loaded, and the floors the GPU engine needs. QueryDnnVersions()
// only asks the libraries (no device, never throws: a failed query leaves 0).
// CheckDnnVersions() throws Error(kUnavailable) naming the library, the
// version found, the floor and what to do, when any floor is missed:
//   cuDNN:    major == 9 (== the compiled CUDNN_MAJOR) and >= 9.1.0; and, when
//             known, built for the same CUDA major as the loaded runtime
//             (a cuDNN for CUDA 12 next to CUDA 13 loads the wrong cuBLASLt);
//   driver:   present, and its CUDA major >= the runtime's major. A driver of
//             the same major but an older minor is accepted: CUDA 11+ minor
//             version compatibility (docs.nvidia.com/deploy/cuda-compatibility:
//             a 13.x toolkit runs on any driver >= r580, i.e. CUDA 13.0);
//   cuBLASLt: major == the compiled CUBLAS_VER_MAJOR (13).
// Encodings: CUDA versions are 1000*major + 10*minor (13000 = 13.0); cuDNN 9
// is 10000*major + 100*minor + patch (91900), cuDNN 8 was 1000*major +
// 100*minor + patch (8907); cuBLASLt is 10000*major + 100*minor + patch.
#pragma once

#include <cstddef>
#include <string>

namespace dtrain::cuda {

struct DnnVersions {
  int cudart_runtime = 0, cuda_driver = 0;  // cudaRuntimeGetVersion / cudaDriverGetVersion (0: no driver)
  size_t cudnn = 0, cudnn_compiled = 0;     // cudnnGetVersion() / CUDNN_VERSION
  int cublaslt = 0;                         // cublasLtGetVersion
  size_t cudnn_cudart = 0;                  // cudnnGetCudartVersion(): the CUDA cuDNN was built for (0: unknown)
};

inline constexpr size_t kCudnnVersionFloor = 90100;  // 9.1.0

DnnVersions QueryDnnVersions();  // never throws for missing devices
void CheckDnnVersions(const DnnVersions& v);
std::string DescribeDnnVersions(const DnnVersions& v);  // one line for logs

}  // namespace dtrain::cuda
