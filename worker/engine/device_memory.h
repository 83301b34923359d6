// RAII device and pinned host memory for the CUDA engine (cudaMalloc /
// cudaMallocHost, freed on destruction; movable, not copyable). Device
// memory starts zeroed (padding in the engine's flat buffers must be 0);
// cudaMalloc aligns to 256 bytes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda/check.h"

namespace dtrain::engine {

class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    CUDA_CHECK(cudaMalloc(&p_, bytes_));
    CUDA_CHECK(cudaMemset(p_, 0, bytes_));
  }
  ~DeviceMemory() {
    if (p_) cudaFree(p_);
  }
  DeviceMemory(DeviceMemory&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class PinnedMemory {
 public:
  PinnedMemory() = default;
  explicit PinnedMemory(size_t bytes) {
    if (bytes > 0) CUDA_CHECK(cudaMallocHost(&p_, bytes));
  }
  ~PinnedMemory() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedMemory(PinnedMemory&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  PinnedMemory& operator=(PinnedMemory&& o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

}  // namespace dtrain::engine
