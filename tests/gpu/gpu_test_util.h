// Helpers of the GPU parity tests: a fixture that skips, with the CUDA error
// as the visible reason, when no device is usable; RAII device buffers that
// can be poisoned (0xFF bytes: NaN in fp32 and fp16); comparisons that name
// the worst element.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/cuda/check.h"

namespace dtrain::gpu_test {

// Empty when a CUDA device is usable, else why not.
inline std::string NoDeviceReason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it
    return std::string(cudaGetErrorName(err)) + " (" + std::to_string(int(err)) + "): " + cudaGetErrorString(err);
  }
  if (count == 0) return "cudaGetDeviceCount found 0 devices";
  return "";
}

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = NoDeviceReason();
    if (!why.empty()) GTEST_SKIP() << "no CUDA device: " << why;
    CUDA_CHECK(cudaStreamCreate(&stream_));  // blocking: cudaMemcpy orders with it
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  void Sync() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  cudaStream_t stream_ = nullptr;
};

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n_ == 0) return;
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, n_ * sizeof(T)));
    p_ = static_cast<T*>(p);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { Upload(host); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  size_t size() const { return n_; }
  void Upload(const std::vector<T>& host) {
    EXPECT_EQ(host.size(), n_);
    if (n_) CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    if (n_) CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  void Poison() {
    if (n_) CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T)));
  }

 private:
  size_t n_ = 0;
  T* p_ = nullptr;
};

// fp16 lives on the host as IEEE bits (common/half.h).
inline __half* AsHalf(uint16_t* p) { return reinterpret_cast<__half*>(p); }
inline const __half* AsHalf(const uint16_t* p) { return reinterpret_cast<const __half*>(p); }

inline std::vector<float> HalfToFloatVec(const std::vector<uint16_t>& h) {
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = HalfToFloat(h[i]);
  return f;
}

// Every got[i] within atol + rtol·|want[i]| of want[i], none NaN unless want
// is NaN there. On failure: how many differ, and the worst one.
template <typename G, typename W>
::testing::AssertionResult AllClose(const std::vector<G>& got, const std::vector<W>& want, double rtol, double atol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), w = double(want[i]);
    double ratio;
    if (std::isnan(w))
      ratio = std::isnan(g) ? 0 : INFINITY;
    else if (std::isinf(w))
      ratio = g == w ? 0 : INFINITY;
    else if (!std::isfinite(g))
      ratio = INFINITY;
    else
      ratio = std::abs(g - w) / (atol + rtol * std::abs(w));
    if (ratio > 1) ++bad;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(9);
  os << bad << " of " << got.size() << " elements outside rtol " << rtol << " atol " << atol << "; worst ["
     << worst << "] got " << double(got[worst]) << " want " << double(want[worst]);
  return ::testing::AssertionFailure() << os.str();
}

// Bitwise equality (fp32 or fp16 bits), naming the first difference.
template <typename T>
::testing::AssertionResult BitEqual(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0 && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(9);
  os << bad << " of " << got.size() << " elements differ bitwise; first [" << first << "] got " << +got[first]
     << " want " << +want[first];
  return ::testing::AssertionFailure() << os.str();
}

// Host-side argument checks: f must throw Error(kInvalidArgument) whose
// message contains `needle`.
inline void ExpectInvalid(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "'" << needle << "' not in: " << e.what();
  }
}

}  // namespace dtrain::gpu_test
