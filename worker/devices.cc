#include "worker/devices.h"

#include <unistd.h>

#include <fstream>
#include <thread>

#include "common/error.h"

#ifdef DTRAIN_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dtrain::worker {
namespace {

DeviceInfo CpuDevice() {
  DeviceInfo d;
  d.kind = "cpu";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      d.name = line.substr(line.find(':') + 2);
      break;
    }
  }
  if (d.name.empty()) d.name = "cpu";
  d.name += " (" + std::to_string(std::thread::hardware_concurrency()) + " cores)";
  d.memory_bytes = int64_t(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  return d;
}

}  // namespace

int CudaDeviceCount(std::string* why) {
#ifdef DTRAIN_HAVE_CUDA
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = std::string("CUDA runtime: ") + cudaGetErrorString(err);
    return 0;
  }
  if (n == 0 && why) *why = "CUDA runtime reports no devices";
  return n;
#else
  if (why) *why = "this build has no CUDA (nvcc was not found at build time)";
  return 0;
#endif
}

std::vector<DeviceInfo> DetectDevices(const std::string& requested, int local_rank) {
  if (requested == "cpu") return {CpuDevice()};
  std::string why;
  const int n = CudaDeviceCount(&why);
  if (n == 0) {
    if (requested == "cuda") Fail(ErrorCode::kUnavailable, "--device cuda: no usable GPU: " + why);
    return {CpuDevice()};
  }
#ifdef DTRAIN_HAVE_CUDA
  DeviceInfo d;
  d.kind = "cuda";
  d.index = local_rank % n;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, d.index) == cudaSuccess) {
    d.name = prop.name;
    d.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  }
  return {d};
#else
  return {CpuDevice()};
#endif
}

}  // namespace dtrain::worker
