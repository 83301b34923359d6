// GPU parity: the cuBLASLt FC layer (kernels/cuda/fc_cublaslt.h) against
// cpu::FullyConnectedForward/Backward in double on the same fp16 values, for
// n in {1, 3, 256} × c in {512, 2048} × k in {10, 1000} and odd shapes;
// tolerances: fp32 outputs rtol 1e-3 (y) and 1e-4 (dbias), fp16 outputs (dx, dW) rtol
// 3e-3 (fp16 rounding is 4.9e-4), atol a small fraction of the largest |want|.
// Also: the bias kernels (fc_bias.h) bit-exact against the CPU loops,
// repeated calls bit-identical (plan cache, deterministic), misaligned
// pointers, and host-side argument checks (CudaFcArgs, no device needed).
#include <cublasLt.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/fully_connected.h"
#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/fc_bias.h"
#include "kernels/cuda/fc_cublaslt.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

std::vector<uint16_t> RandomHalf(size_t n, uint32_t seed, float stddev) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<uint16_t> v(n);
  for (uint16_t& h : v) h = FloatToHalf(dist(gen));
  return v;
}

std::vector<double> ToDouble(const std::vector<uint16_t>& h) {
  std::vector<double> d(h.size());
  for (size_t i = 0; i < h.size(); ++i) d[i] = HalfToFloat(h[i]);
  return d;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

class CudaFc : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    CUBLAS_CHECK(cublasLtCreate(&handle_));
  }
  void TearDown() override {
    if (handle_ != nullptr) cublasLtDestroy(handle_);
    CudaTest::TearDown();
  }

  // Forward and both backward products of one shape against the CPU in
  // double. offset (elements) moves every device pointer off its alignment.
  void Check(cuda::CublasLtFc& fc, int n, int c, int k, uint32_t seed, size_t offset = 0) {
    SCOPED_TRACE("n=" + std::to_string(n) + " c=" + std::to_string(c) + " k=" + std::to_string(k) +
                 " offset=" + std::to_string(offset));
    const std::vector<uint16_t> x = RandomHalf(size_t(n) * c, seed, 1.0f);
    const std::vector<uint16_t> w = RandomHalf(size_t(k) * c, seed + 1, 1.0f / std::sqrt(float(c)));
    const std::vector<uint16_t> dy = RandomHalf(size_t(n) * k, seed + 2, 0.5f);
    std::vector<float> bias(k);
    std::mt19937 gen(seed + 3);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (float& b : bias) b = dist(gen);

    const cpu::FullyConnectedShape s{n, c, k};
    const std::vector<double> xd = ToDouble(x), wd = ToDouble(w), dyd = ToDouble(dy);
    const std::vector<double> bd(bias.begin(), bias.end());
    std::vector<double> want_y(size_t(n) * k), want_dx(size_t(n) * c), want_dw(size_t(k) * c), want_db(k);
    cpu::FullyConnectedForward(s, xd.data(), wd.data(), bd.data(), want_y.data());
    cpu::FullyConnectedBackward(s, xd.data(), wd.data(), dyd.data(), want_dx.data(), want_dw.data(),
                                want_db.data());

    DeviceBuffer<uint16_t> d_x(x.size() + offset), d_w(w.size() + offset), d_dy(dy.size() + offset),
        d_dx(want_dx.size() + offset), d_dw(want_dw.size() + offset);
    DeviceBuffer<float> d_b(bias.size() + offset), d_y(want_y.size() + offset), d_db(want_db.size() + offset);
    for (auto* b : {&d_x, &d_w, &d_dy, &d_dx, &d_dw}) b->Poison();
    for (auto* b : {&d_b, &d_y, &d_db}) b->Poison();
    CUDA_CHECK(cudaMemcpy(d_x.get() + offset, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_w.get() + offset, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_dy.get() + offset, dy.data(), dy.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_b.get() + offset, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));

    fc.Forward(n, c, k, AsHalf(d_x.get() + offset), AsHalf(d_w.get() + offset), d_b.get() + offset,
               d_y.get() + offset, stream_);
    std::printf("FC n=%d c=%d k=%d offset=%zu: forward bias %s\n", n, c, k, offset,
                fc.last_forward_used_bias_epilogue() ? "in the cuBLASLt epilogue" : "pre-filled (fallback)");
    fc.BackwardData(n, c, k, AsHalf(d_dy.get() + offset), AsHalf(d_w.get() + offset), AsHalf(d_dx.get() + offset),
                    stream_);
    fc.BackwardWeights(n, c, k, AsHalf(d_x.get() + offset), AsHalf(d_dy.get() + offset),
                       AsHalf(d_dw.get() + offset), d_db.get() + offset, stream_);
    Sync();
    const std::vector<float> got_y = Slice(d_y.Download(), offset), got_db = Slice(d_db.Download(), offset);
    const std::vector<float> got_dx = HalfToFloatVec(Slice(d_dx.Download(), offset));
    const std::vector<float> got_dw = HalfToFloatVec(Slice(d_dw.Download(), offset));
    EXPECT_TRUE(AllClose(got_y, want_y, 1e-3, 1e-3 * MaxAbs(want_y))) << "forward y";
    EXPECT_TRUE(AllClose(got_dx, want_dx, 3e-3, 2e-3 * MaxAbs(want_dx))) << "backward dx";
    EXPECT_TRUE(AllClose(got_dw, want_dw, 3e-3, 2e-3 * MaxAbs(want_dw))) << "backward dW";
    EXPECT_TRUE(AllClose(got_db, want_db, 1e-4, 1e-4 * MaxAbs(want_db))) << "backward dbias";
  }

  template <typename T>
  static std::vector<T> Slice(const std::vector<T>& v, size_t offset) {
    return std::vector<T>(v.begin() + offset, v.end());
  }

  cublasLtHandle_t handle_ = nullptr;
};

TEST_F(CudaFc, MatchesCpu) {
  cuda::CublasLtFc fc(handle_);
  uint32_t seed = 1;
  for (int n : {1, 3, 256})
    for (int c : {512, 2048})
      for (int k : {10, 1000}) Check(fc, n, c, k, seed += 10);
}

TEST_F(CudaFc, OddShapes) {
  cuda::CublasLtFc fc(handle_);
  Check(fc, 5, 37, 7, 100);   // no dimension a multiple of 8
  Check(fc, 2, 64, 10, 110);  // the CIFAR ResNet-20 head
  Check(fc, 1, 8, 1, 120);
}

TEST_F(CudaFc, NoWorkspace) {
  cuda::CublasLtFc fc(handle_, 0);
  Check(fc, 256, 2048, 1000, 200);
}

TEST_F(CudaFc, MisalignedPointers) {
  cuda::CublasLtFc fc(handle_);
  Check(fc, 3, 512, 10, 300, 1);  // 2-byte aligned fp16, 4-byte aligned fp32
  Check(fc, 3, 512, 10, 310, 4);  // 8 / 16 bytes
}

TEST_F(CudaFc, RepeatedCallsBitIdentical) {
  // Interleaved shapes reuse their cached plans; results must not change.
  cuda::CublasLtFc fc(handle_);
  const int n = 256, c = 2048, k = 1000;
  DeviceBuffer<uint16_t> x(RandomHalf(size_t(n) * c, 400, 1.0f)), w(RandomHalf(size_t(k) * c, 401, 0.02f));
  DeviceBuffer<uint16_t> dy(RandomHalf(size_t(n) * k, 402, 0.5f)), dx(size_t(n) * c), dw(size_t(k) * c);
  DeviceBuffer<float> b(std::vector<float>(k, 0.5f)), y(size_t(n) * k), y_small(3 * 10), db(k);
  std::vector<float> y0, db0;
  std::vector<uint16_t> dx0, dw0;
  for (int rep = 0; rep < 3; ++rep) {
    fc.Forward(n, c, k, AsHalf(x.get()), AsHalf(w.get()), b.get(), y.get(), stream_);
    fc.Forward(3, 512, 10, AsHalf(x.get()), AsHalf(w.get()), b.get(), y_small.get(), stream_);  // other plan
    fc.BackwardData(n, c, k, AsHalf(dy.get()), AsHalf(w.get()), AsHalf(dx.get()), stream_);
    fc.BackwardWeights(n, c, k, AsHalf(x.get()), AsHalf(dy.get()), AsHalf(dw.get()), db.get(), stream_);
    Sync();
    const std::vector<float> y1 = y.Download(), db1 = db.Download();
    if (rep == 0) {
      y0 = y1, db0 = db1, dx0 = dx.Download(), dw0 = dw.Download();
      continue;
    }
    EXPECT_TRUE(BitEqual(y1, y0)) << "rep " << rep;
    EXPECT_TRUE(BitEqual(dx.Download(), dx0)) << "rep " << rep;
    EXPECT_TRUE(BitEqual(dw.Download(), dw0)) << "rep " << rep;
    EXPECT_TRUE(BitEqual(db1, db0)) << "rep " << rep;
  }
}

TEST_F(CudaFc, BiasKernelsMatchCpuLoops) {
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 1}, {3, 10}, {256, 1000}, {7, 2049}}) {
    SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
    const std::vector<uint16_t> x = RandomHalf(size_t(rows) * cols, uint32_t(rows * 7 + cols), 1.0f);
    std::vector<float> want_sum(cols, 0.0f), bias(cols), want_y(size_t(rows) * cols);
    for (int i = 0; i < rows; ++i)  // the CPU's loop order: db[o] += dy[i][o]
      for (int j = 0; j < cols; ++j) want_sum[j] += HalfToFloat(x[size_t(i) * cols + j]);
    for (int j = 0; j < cols; ++j) bias[j] = 0.25f * float(j) - 3.0f;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) want_y[size_t(i) * cols + j] = bias[j];
    DeviceBuffer<uint16_t> d_x(x);
    DeviceBuffer<float> d_sum(cols), d_bias(bias), d_y(want_y.size());
    d_sum.Poison();
    d_y.Poison();
    cuda::ColumnSum(rows, cols, AsHalf(d_x.get()), d_sum.get(), stream_);
    cuda::BroadcastBiasRows(rows, cols, d_bias.get(), d_y.get(), stream_);
    Sync();
    EXPECT_TRUE(BitEqual(d_sum.Download(), want_sum)) << "ColumnSum";
    EXPECT_TRUE(BitEqual(d_y.Download(), want_y)) << "BroadcastBiasRows";
  }
}

// Not a parity check: the ResNet-50 head's three products, timed.
TEST_F(CudaFc, ResNet50Timing) {
  cuda::CublasLtFc fc(handle_);
  const int n = 256, c = 2048, k = 1000;
  DeviceBuffer<uint16_t> x(size_t(n) * c), w(size_t(k) * c), dy(size_t(n) * k), dx(size_t(n) * c),
      dw(size_t(k) * c);
  DeviceBuffer<float> b(k), y(size_t(n) * k), db(k);
  for (auto* p : {&x, &w, &dy}) CUDA_CHECK(cudaMemset(p->get(), 0, p->size() * 2));
  CUDA_CHECK(cudaMemset(b.get(), 0, k * 4));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  auto time_ms = [&](const std::function<void()>& f) {
    f();  // plan + warm-up
    CUDA_CHECK(cudaEventRecord(start, stream_));
    for (int i = 0; i < 20; ++i) f();
    CUDA_CHECK(cudaEventRecord(stop, stream_));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / 20;
  };
  const double flop = 2.0 * n * c * k;
  const float f = time_ms([&] { fc.Forward(n, c, k, AsHalf(x.get()), AsHalf(w.get()), b.get(), y.get(), stream_); });
  const float bd =
      time_ms([&] { fc.BackwardData(n, c, k, AsHalf(dy.get()), AsHalf(w.get()), AsHalf(dx.get()), stream_); });
  const float bw = time_ms(
      [&] { fc.BackwardWeights(n, c, k, AsHalf(x.get()), AsHalf(dy.get()), AsHalf(dw.get()), db.get(), stream_); });
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  std::printf("FC n=256 c=2048 k=1000: forward %.4f ms (%.1f TFLOP/s, bias %s), backward data %.4f ms (%.1f), "
              "backward weights+bias %.4f ms (%.1f)\n",
              f, flop / f / 1e9, fc.last_forward_used_bias_epilogue() ? "epilogue" : "pre-filled", bd,
              flop / bd / 1e9, bw, flop / bw / 1e9);
}

TEST(CudaFcArgs, RejectBadArguments) {
  ExpectInvalid([] { cuda::CublasLtFc fc(nullptr); }, "handle is null");
  // A stand-in handle: with no workspace the constructor makes no call, and
  // every check below throws before cuBLASLt or the device is touched.
  cuda::CublasLtFc fc(reinterpret_cast<cublasLtHandle_t>(uintptr_t{4096}), 0);
  __half* h = reinterpret_cast<__half*>(uintptr_t{256});
  float* f = reinterpret_cast<float*>(uintptr_t{256});
  ExpectInvalid([&] { fc.Forward(0, 512, 10, h, h, f, f, nullptr); }, "Forward (n=0 c=512 k=10)");
  ExpectInvalid([&] { fc.Forward(2, -1, 10, h, h, f, f, nullptr); }, "must be positive");
  ExpectInvalid([&] { fc.Forward(2, 512, 10, nullptr, h, f, f, nullptr); }, "x is null");
  ExpectInvalid([&] { fc.Forward(2, 512, 10, h, nullptr, f, f, nullptr); }, "w is null");
  ExpectInvalid([&] { fc.Forward(2, 512, 10, h, h, nullptr, f, nullptr); }, "bias is null");
  ExpectInvalid([&] { fc.Forward(2, 512, 10, h, h, f, nullptr, nullptr); }, "y is null");
  ExpectInvalid([&] { fc.BackwardData(2, 512, 0, h, h, h, nullptr); }, "BackwardData (n=2 c=512 k=0)");
  ExpectInvalid([&] { fc.BackwardData(2, 512, 10, nullptr, h, h, nullptr); }, "dy is null");
  ExpectInvalid([&] { fc.BackwardData(2, 512, 10, h, h, nullptr, nullptr); }, "dx is null");
  ExpectInvalid([&] { fc.BackwardWeights(2, 0, 10, h, h, h, f, nullptr); }, "BackwardWeights (n=2 c=0 k=10)");
  ExpectInvalid([&] { fc.BackwardWeights(2, 512, 10, h, h, nullptr, f, nullptr); }, "dw is null");
  ExpectInvalid([&] { fc.BackwardWeights(2, 512, 10, h, h, h, nullptr, nullptr); }, "dbias is null");
  ExpectInvalid([&] { cuda::ColumnSum(0, 3, h, f, nullptr); }, "rows=0");
  ExpectInvalid([&] { cuda::ColumnSum(2, 3, nullptr, f, nullptr); }, "null");
  ExpectInvalid([&] { cuda::BroadcastBiasRows(2, 0, f, f, nullptr); }, "cols=0");
  ExpectInvalid([&] { cuda::BroadcastBiasRows(2, 3, f, nullptr, nullptr); }, "null");
}

}  // namespace
}  // namespace dtrain::gpu_test
