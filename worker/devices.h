// The compute devices this worker offers: CUDA GPUs through the CUDA runtime
// when the build has CUDA and a device answers (any CUDA error means "no
// GPU"), else the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::worker {

struct DeviceInfo {
  std::string kind;  // "cpu" | "cuda"
  int index = 0;
  std::string name;
  int64_t memory_bytes = 0;
};

// Number of CUDA devices, or 0 with `why` saying why none is usable.
int CudaDeviceCount(std::string* why);

// `requested`: auto | cpu | cuda. With cuda and no GPU: Error naming why.
// With a GPU, the worker takes the one at `local_rank` (mod the count).
std::vector<DeviceInfo> DetectDevices(const std::string& requested, int local_rank);

}  // namespace dtrain::worker
