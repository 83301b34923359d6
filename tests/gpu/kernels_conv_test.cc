// GPU parity of the cuDNN graph-API convolutions (kernels/cuda/conv_cudnn.h)
// against cpu::Conv2dForward / cpu::Conv2dBackward (fp32) on the same
// fp16-rounded inputs: NHWC / KRSC fp16 on the device, NCHW / KCRS fp32 on
// the host. Tolerance rule: every element within kRelTol · max|reference| of
// the reference (the result is stored as fp16, 2^-11 relative; both sides
// accumulate in fp32, in different orders). Shapes: a small 3x3, a 1x1
// stride-2 projection, the 7x7 stride-2 stem with c = 3 (the real input) and
// with c = 8 (the input zero-padded to 8 channels, the fallback should cuDNN
// refuse c = 3), odd channel counts with n = 1, and real ResNet-50 layers at
// n = 2. Plus host-only tests (no device): argument checks and the library
// version floors (kernels/cuda/dnn_versions.h).
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/layout.h"
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/cuda/cudnn_check.h"
#include "kernels/cuda/dnn_versions.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

using cuda::CudnnConvolutions;
using Op = CudnnConvolutions::Op;

constexpr double kRelTol = 1e-2;

// Random fp16 values in [-1, 1): their bits, and the same values as floats.
struct HalfData {
  std::vector<uint16_t> bits;
  std::vector<float> f;
};

HalfData RandomHalf(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  HalfData d;
  d.bits.resize(n);
  d.f.resize(n);
  for (size_t i = 0; i < n; ++i) {
    d.bits[i] = FloatToHalf(dist(gen));
    d.f[i] = HalfToFloat(d.bits[i]);
  }
  return d;
}

// [a][b][c][d] (NHWC, KRSC) -> [a][d][b][c] (NCHW, KCRS): kernels/cpu/layout.h.
std::vector<float> LastToFirst(const std::vector<float>& v, int a, int b, int c, int d) {
  std::vector<float> out(v.size());
  cpu::NhwcToNchw(v.data(), a, d, b, c, d, out.data());
  return out;
}

// Device result (channels-last fp16, dims a, b, c, d) against the NCHW/KCRS
// reference, within kRelTol · max|want|; names the worst element (NCHW index).
::testing::AssertionResult CloseToReference(const std::vector<uint16_t>& got_last, int a, int b, int c, int d,
                                            const std::vector<float>& want) {
  const std::vector<float> got = LastToFirst(HalfToFloatVec(got_last), a, b, c, d);
  double max_abs = 0;
  for (float v : want) max_abs = std::max(max_abs, double(std::abs(v)));
  return AllClose(got, want, 0.0, kRelTol * max_abs + 1e-6);
}

// Forward, BackwardData (overwrite, then accumulate onto random dx) and
// BackwardFilter of one shape against the CPU reference.
void CheckShape(CudnnConvolutions& convs, const cpu::Conv2dShape& s, uint32_t seed, cudaStream_t stream) {
  SCOPED_TRACE(CudnnConvolutions::ShapeString(s));
  const int oh = s.out_h(), ow = s.out_w();
  const HalfData x = RandomHalf(s.in_size(), seed), w = RandomHalf(s.weight_size(), seed + 1),
                 dy = RandomHalf(s.out_size(), seed + 2), dx0 = RandomHalf(s.in_size(), seed + 3);
  const std::vector<float> x_ref = LastToFirst(x.f, s.n, s.h, s.w, s.c), w_ref = LastToFirst(w.f, s.k, s.r, s.s, s.c),
                           dy_ref = LastToFirst(dy.f, s.n, oh, ow, s.k), dx0_ref = LastToFirst(dx0.f, s.n, s.h, s.w, s.c);
  std::vector<float> ws(cpu::Conv2dWorkspaceSize(s)), y_want(s.out_size()), dx_want(s.in_size()),
      dw_want(s.weight_size());
  cpu::Conv2dForward<float>(s, x_ref.data(), w_ref.data(), y_want.data(), ws.data());
  cpu::Conv2dBackward<float>(s, x_ref.data(), w_ref.data(), dy_ref.data(), dx_want.data(), false, dw_want.data(),
                             ws.data());
  std::vector<float> dx_acc_want(s.in_size());
  for (size_t i = 0; i < dx_acc_want.size(); ++i) dx_acc_want[i] = dx0_ref[i] + dx_want[i];

  DeviceBuffer<uint16_t> d_x(x.bits), d_w(w.bits), d_dy(dy.bits), d_y(s.out_size()), d_dx(s.in_size()),
      d_dw(s.weight_size());
  d_y.Poison();
  convs.Forward(s, AsHalf(d_x.get()), AsHalf(d_w.get()), AsHalf(d_y.get()), stream);
  EXPECT_TRUE(CloseToReference(d_y.Download(), s.n, oh, ow, s.k, y_want)) << "Forward";

  d_dx.Poison();
  convs.BackwardData(s, AsHalf(d_dy.get()), AsHalf(d_w.get()), AsHalf(d_dx.get()), false, stream);
  EXPECT_TRUE(CloseToReference(d_dx.Download(), s.n, s.h, s.w, s.c, dx_want)) << "BackwardData";

  d_dx.Upload(dx0.bits);
  convs.BackwardData(s, AsHalf(d_dy.get()), AsHalf(d_w.get()), AsHalf(d_dx.get()), true, stream);
  EXPECT_TRUE(CloseToReference(d_dx.Download(), s.n, s.h, s.w, s.c, dx_acc_want)) << "BackwardData accumulate";

  d_dw.Poison();
  convs.BackwardFilter(s, AsHalf(d_x.get()), AsHalf(d_dy.get()), AsHalf(d_dw.get()), stream);
  EXPECT_TRUE(CloseToReference(d_dw.Download(), s.k, s.r, s.s, s.c, dw_want)) << "BackwardFilter";
}

cpu::Conv2dShape Shape(int n, int c, int h, int w, int k, int r, int stride, int pad) {
  return {.n = n, .c = c, .h = h, .w = w, .k = k, .r = r, .s = r, .stride = stride, .pad = pad};
}

class CudnnConv : public CudaTest {
 protected:
  void SetUp() override {
    CudaTest::SetUp();
    if (IsSkipped()) return;
    const cuda::DnnVersions v = cuda::QueryDnnVersions();
    std::cout << "[ versions ] " << cuda::DescribeDnnVersions(v) << "\n";
    cuda::CheckDnnVersions(v);  // a wrong cuDNN fails here, saying which and what to do
    CUDNN_CHECK(cudnnCreate(&handle_));
  }
  void TearDown() override {
    convs_.reset();
    if (handle_ != nullptr) cudnnDestroy(handle_);
    CudaTest::TearDown();
  }
  CudnnConvolutions& Convs(size_t workspace_limit = size_t(256) << 20) {
    if (!convs_) convs_ = std::make_unique<CudnnConvolutions>(handle_, workspace_limit);
    return *convs_;
  }
  void Check(const cpu::Conv2dShape& s, uint32_t seed) { CheckShape(Convs(), s, seed, stream_); }
  void PrintPlans() { std::cout << "[ plans    ]\n" << Convs().DescribePlans(); }

  cudnnHandle_t handle_ = nullptr;
  std::unique_ptr<CudnnConvolutions> convs_;
};

TEST_F(CudnnConv, Small3x3Stride1Pad1) { Check(Shape(2, 16, 8, 8, 16, 3, 1, 1), 11); }

TEST_F(CudnnConv, Projection1x1Stride2) { Check(Shape(2, 32, 14, 14, 64, 1, 2, 0), 21); }

TEST_F(CudnnConv, Stem7x7Stride2C3) { Check(Shape(2, 3, 32, 32, 16, 7, 2, 3), 31); }

TEST_F(CudnnConv, Stem7x7Stride2C8ZeroPaddedInput) { Check(Shape(2, 8, 32, 32, 16, 7, 2, 3), 41); }

TEST_F(CudnnConv, OddChannelsBatchOne) {
  Check(Shape(1, 4, 9, 7, 12, 3, 2, 1), 51);   // c, k not multiples of 8; h != w
  Check(Shape(1, 12, 5, 5, 20, 1, 1, 0), 52);  // 1x1
  Check(Shape(1, 3, 6, 6, 5, 3, 1, 1), 53);    // odd c and k
  PrintPlans();
}

TEST_F(CudnnConv, ResNet50StemC3) {
  Check(Shape(2, 3, 224, 224, 64, 7, 2, 3), 61);
  PrintPlans();
}

TEST_F(CudnnConv, ResNet50StemC8) { Check(Shape(2, 8, 224, 224, 64, 7, 2, 3), 62); }

TEST_F(CudnnConv, ResNet50Layers) {
  Check(Shape(2, 64, 56, 56, 64, 3, 1, 1), 71);     // layer1 3x3
  Check(Shape(2, 64, 56, 56, 256, 1, 1, 0), 72);    // layer1 1x1 expand
  Check(Shape(2, 256, 56, 56, 512, 1, 2, 0), 73);   // layer2 downsample projection
  Check(Shape(2, 256, 28, 28, 256, 3, 2, 1), 74);   // layer3 first 3x3, stride 2 (v1.5)
  Check(Shape(2, 2048, 7, 7, 512, 1, 1, 0), 75);    // layer4 1x1 reduce
  Check(Shape(2, 512, 7, 7, 512, 3, 1, 1), 76);     // layer4 3x3
  PrintPlans();
}

TEST_F(CudnnConv, AutotuneOff) {
  Convs().set_autotune(false);
  Check(Shape(2, 16, 8, 8, 16, 3, 1, 1), 81);
  Check(Shape(2, 256, 28, 28, 256, 3, 2, 1), 82);
  PrintPlans();
}

// With no workspace allowed either a zero-workspace engine runs (and none is
// allocated) or the error explains that the others needed too much.
TEST_F(CudnnConv, ZeroWorkspaceLimit) {
  CudnnConvolutions& convs = Convs(0);
  try {
    CheckShape(convs, Shape(2, 16, 8, 8, 16, 3, 1, 1), 91, stream_);
    EXPECT_EQ(convs.workspace_bytes(), 0u);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("over the limit"), std::string::npos) << e.what();
  }
  PrintPlans();
}

TEST_F(CudnnConv, PlanCacheReusesPlans) {
  CudnnConvolutions& convs = Convs();
  const cpu::Conv2dShape s = Shape(2, 16, 8, 8, 16, 3, 1, 1);
  DeviceBuffer<uint16_t> x(RandomHalf(s.in_size(), 1).bits), w(RandomHalf(s.weight_size(), 2).bits),
      y(s.out_size()), dx(s.in_size());
  auto forward = [&](const cpu::Conv2dShape& shape) {
    convs.Forward(shape, AsHalf(x.get()), AsHalf(w.get()), AsHalf(y.get()), stream_);
  };
  forward(s);
  EXPECT_EQ(convs.num_plans(), 1u);
  const size_t workspace = convs.workspace_bytes();
  forward(s);
  EXPECT_EQ(convs.num_plans(), 1u);
  EXPECT_EQ(convs.workspace_bytes(), workspace);
  convs.BackwardData(s, AsHalf(y.get()), AsHalf(w.get()), AsHalf(dx.get()), false, stream_);
  EXPECT_EQ(convs.num_plans(), 2u);
  convs.BackwardData(s, AsHalf(y.get()), AsHalf(w.get()), AsHalf(dx.get()), true, stream_);
  EXPECT_EQ(convs.num_plans(), 3u);  // accumulate is part of the key
  convs.BackwardFilter(s, AsHalf(x.get()), AsHalf(y.get()), AsHalf(w.get()), stream_);
  EXPECT_EQ(convs.num_plans(), 4u);
  cpu::Conv2dShape one = s;
  one.n = 1;
  forward(one);
  EXPECT_EQ(convs.num_plans(), 5u);  // n is part of the key
  forward(s);
  forward(one);
  EXPECT_EQ(convs.num_plans(), 5u);
  Sync();
  const std::string plans = convs.DescribePlans();
  EXPECT_EQ(std::count(plans.begin(), plans.end(), '\n'), 5) << plans;
  PrintPlans();
}

TEST_F(CudnnConv, PublicCallsRejectBadArguments) {
  CudnnConvolutions& convs = Convs();
  DeviceBuffer<uint16_t> buf(4096);
  __half* p = AsHalf(buf.get());
  cpu::Conv2dShape bad = Shape(2, 16, 8, 8, 0, 3, 1, 1);
  EXPECT_THROW(convs.Forward(bad, p, p, p, stream_), Error);
  const cpu::Conv2dShape s = Shape(1, 8, 4, 4, 8, 3, 1, 1);
  EXPECT_THROW(convs.BackwardData(s, p, nullptr, p, false, stream_), Error);
  EXPECT_THROW(convs.BackwardFilter(s, p + 1, p, p, stream_), Error);  // 2-byte offset: misaligned
  EXPECT_EQ(convs.num_plans(), 0u);
}

// ---- Host-only tests: no device needed. ----

void ExpectInvalid(Op op, const cpu::Conv2dShape& s, const void* a, const void* b, const void* out,
                   const std::string& needle) {
  try {
    CudnnConvolutions::CheckCall(op, s, a, b, out);
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    const std::string msg = e.what();
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_NE(msg.find(CudnnConvolutions::OpName(op)), std::string::npos) << msg;
    EXPECT_NE(msg.find("n=" + std::to_string(s.n) + " c=" + std::to_string(s.c)), std::string::npos) << msg;
  }
}

TEST(CudnnConvArgs, CheckCallRejectsBadShapesAndPointers) {
  alignas(16) static uint16_t storage[64];
  const void* p = storage;
  const cpu::Conv2dShape good = Shape(2, 16, 8, 8, 16, 3, 1, 1);
  for (Op op : {Op::kForward, Op::kBackwardData, Op::kBackwardFilter})
    EXPECT_NO_THROW(CudnnConvolutions::CheckCall(op, good, p, p, p));

  cpu::Conv2dShape s = good;
  s.k = 0;
  ExpectInvalid(Op::kForward, s, p, p, p, "k=0");
  s = good;
  s.pad = -1;
  ExpectInvalid(Op::kBackwardData, s, p, p, p, "pad must be >= 0");
  s = good;
  s.stride = 0;
  ExpectInvalid(Op::kBackwardFilter, s, p, p, p, "stride must be >= 1");
  s = good;
  s.r = s.s = 19;
  ExpectInvalid(Op::kForward, s, p, p, p, "larger than padded input");
  s = good;
  s.n = 0;
  ExpectInvalid(Op::kForward, s, p, p, p, "n=0");

  ExpectInvalid(Op::kForward, good, nullptr, p, p, "x is null");
  ExpectInvalid(Op::kForward, good, p, p, nullptr, "y is null");
  ExpectInvalid(Op::kBackwardData, good, nullptr, p, p, "dy is null");
  ExpectInvalid(Op::kBackwardData, good, p, nullptr, p, "w is null");
  ExpectInvalid(Op::kBackwardData, good, p, p, nullptr, "dx is null");
  ExpectInvalid(Op::kBackwardFilter, good, p, nullptr, p, "dy is null");
  ExpectInvalid(Op::kBackwardFilter, good, p, p, nullptr, "dw is null");
  const void* odd = storage + 1;  // 2-byte offset
  ExpectInvalid(Op::kForward, good, p, odd, p, "w (");
  ExpectInvalid(Op::kBackwardFilter, good, p, p, odd, "not 16-byte aligned");
  ExpectInvalid(Op::kBackwardData, good, static_cast<const char*>(p) + 8, p, p, "not 16-byte aligned");
}

TEST(CudnnConvArgs, NullHandleRejected) {
  try {
    CudnnConvolutions convs(nullptr);
    ADD_FAILURE() << "no error for a null handle";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("handle"), std::string::npos) << e.what();
  }
}

TEST(DnnVersions, QueryNeedsNoDevice) {
  cuda::DnnVersions v;
  EXPECT_NO_THROW(v = cuda::QueryDnnVersions());
  EXPECT_EQ(v.cudnn_compiled, size_t(CUDNN_VERSION));
  EXPECT_GE(v.cudnn, size_t(90000));
  EXPECT_GT(v.cudart_runtime, 0);
  EXPECT_GT(v.cublaslt, 0);
  const std::string line = cuda::DescribeDnnVersions(v);
  std::cout << "[ versions ] " << line << "\n";
  EXPECT_NE(line.find("compiled " + std::to_string(CUDNN_MAJOR) + "." + std::to_string(CUDNN_MINOR) + "." +
                      std::to_string(CUDNN_PATCHLEVEL)),
            std::string::npos)
      << line;
}

void ExpectUnavailable(const cuda::DnnVersions& v, const std::vector<std::string>& needles) {
  try {
    cuda::CheckDnnVersions(v);
    ADD_FAILURE() << "accepted: " << cuda::DescribeDnnVersions(v);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
    for (const std::string& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "no '" << needle << "' in: " << e.what();
  }
}

TEST(DnnVersions, FloorsRejectAndAccept) {
  const cuda::DnnVersions good{.cudart_runtime = CUDART_VERSION,
                               .cuda_driver = CUDART_VERSION,
                               .cudnn = CUDNN_VERSION,
                               .cudnn_compiled = CUDNN_VERSION,
                               .cublaslt = CUBLAS_VERSION,
                               .cudnn_cudart = CUDART_VERSION};
  EXPECT_NO_THROW(cuda::CheckDnnVersions(good));

  cuda::DnnVersions v = good;
  v.cudnn = 8907;  // cuDNN 8.9.7 (8.x encoding)
  ExpectUnavailable(v, {"cuDNN 8.9.7", "major 9", "LD_LIBRARY_PATH"});
  v.cudnn = 90000;  // 9.0.0: below the floor
  ExpectUnavailable(v, {"cuDNN 9.0.0", ">= 9.1.0"});
  v.cudnn = 100000;  // a future major
  ExpectUnavailable(v, {"cuDNN 10.0.0"});
  v = good;
  v.cudnn_cudart = 12080;  // a cuDNN built for CUDA 12
  ExpectUnavailable(v, {"built for CUDA 12.8"});
  v = good;
  v.cuda_driver = 12080;
  ExpectUnavailable(v, {"driver supports CUDA 12.8", "upgrade the driver"});
  v.cuda_driver = 0;
  ExpectUnavailable(v, {"no CUDA driver"});
  v = good;
  v.cublaslt = 120900;
  ExpectUnavailable(v, {"cuBLASLt 12.9.0", "major 13"});
  v.cudnn = 8907;  // several problems: all named
  ExpectUnavailable(v, {"cuBLASLt 12.9.0", "cuDNN 8.9.7"});

  v = good;
  v.cudnn = cuda::kCudnnVersionFloor;
  EXPECT_NO_THROW(cuda::CheckDnnVersions(v));
  v = good;
  v.cudart_runtime = 13010, v.cuda_driver = 13000;  // minor version compatibility
  EXPECT_NO_THROW(cuda::CheckDnnVersions(v));
  v.cudnn_cudart = 0;  // unknown
  EXPECT_NO_THROW(cuda::CheckDnnVersions(v));
}

}  // namespace
}  // namespace dtrain::gpu_test
