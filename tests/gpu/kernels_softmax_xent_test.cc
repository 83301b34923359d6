// GPU parity: SoftmaxCrossEntropy (+ MeanLossAndCorrect) against
// cpu::SoftmaxCrossEntropyForward/Backward/Top1Correct in double, for fp32
// and fp16 logits and dlogits, with and without label smoothing and a loss
// scale, on shapes from [1, 1] to ResNet-50's [256, 1000]. The overload
// reading the loss scale from device memory gives bit-identical loss, hits
// and dlogits on every case; its host-side checks (CudaSoftmaxXentArgs) need
// no device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/softmax_cross_entropy.h"
#include "kernels/cuda/softmax_xent.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::gpu_test {
namespace {

struct Case {
  int n, classes;
  float eps, loss_scale;
};

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, __half>;

// Host type of a device element: float, or fp16 bits.
template <typename T>
using Host = std::conditional_t<kIsHalf<T>, uint16_t, float>;

class CudaSoftmaxXent : public CudaTest {
 protected:
  template <typename TIn, typename TOut>
  void Check(const Case& c, uint32_t seed) {
    SCOPED_TRACE("n=" + std::to_string(c.n) + " classes=" + std::to_string(c.classes) +
                 " eps=" + std::to_string(c.eps) + " loss_scale=" + std::to_string(c.loss_scale) +
                 (kIsHalf<TIn> ? " fp16 in" : " fp32 in") + (kIsHalf<TOut> ? " fp16 out" : " fp32 out"));
    const size_t total = size_t(c.n) * c.classes;
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    std::vector<Host<TIn>> logits(total);
    std::vector<double> z(total);  // exactly what the device reads, in double
    for (size_t i = 0; i < total; ++i) {
      const float v = dist(gen);
      if constexpr (kIsHalf<TIn>) {
        logits[i] = FloatToHalf(v);
        z[i] = HalfToFloat(logits[i]);
      } else {
        logits[i] = v;
        z[i] = v;
      }
    }
    std::vector<int32_t> labels(c.n);
    for (int32_t& l : labels) l = int32_t(gen() % uint32_t(c.classes));
    if (c.classes >= 6 && c.n >= 2) {  // a tie for the max: the first index wins
      for (int k = 0; k < c.classes; ++k) logits[c.classes + k] = logits[0];  // all equal to row 0's first
      for (int k = 0; k < c.classes; ++k) z[c.classes + k] = z[0];
      labels[1] = 0;
    }

    DeviceBuffer<Host<TIn>> d_logits(logits);
    DeviceBuffer<int32_t> d_labels(labels), hits(c.n), correct(1);
    DeviceBuffer<float> loss(c.n), mean(1);
    DeviceBuffer<Host<TOut>> dlogits(total);
    loss.Poison();
    mean.Poison();
    hits.Poison();
    correct.Poison();
    dlogits.Poison();
    cuda::SoftmaxCrossEntropy<TIn, TOut>(c.n, c.classes, reinterpret_cast<const TIn*>(d_logits.get()),
                                         d_labels.get(), c.eps, c.loss_scale, loss.get(),
                                         reinterpret_cast<TOut*>(dlogits.get()), hits.get(), stream_);
    cuda::MeanLossAndCorrect(c.n, loss.get(), hits.get(), mean.get(), correct.get(), stream_);
    Sync();

    // Reference, in double, row by row.
    const cpu::SoftmaxCrossEntropyShape shape{.n = c.n, .classes = c.classes};
    std::vector<double> probs(total), dref(total), want_loss(c.n);
    std::vector<int32_t> want_hits(c.n);
    for (int i = 0; i < c.n; ++i) {
      const cpu::SoftmaxCrossEntropyShape row{.n = 1, .classes = c.classes};
      want_loss[i] = cpu::SoftmaxCrossEntropyForward<double>(row, &z[size_t(i) * c.classes], &labels[i], c.eps,
                                                             &probs[size_t(i) * c.classes], nullptr);
      want_hits[i] = int32_t(cpu::Top1Correct<double>(row, &z[size_t(i) * c.classes], &labels[i]));
    }
    const double want_mean =
        cpu::SoftmaxCrossEntropyForward<double>(shape, z.data(), labels.data(), c.eps, probs.data(), nullptr);
    cpu::SoftmaxCrossEntropyBackward<double>(shape, probs.data(), labels.data(), c.eps, dref.data());
    for (double& d : dref) d *= c.loss_scale;
    const double coef = double(c.loss_scale) / c.n;  // |dlogits| <= coef

    CheckDeviceScale<TIn, TOut>(c, d_logits, d_labels, loss, dlogits, hits);
    EXPECT_TRUE(AllClose(loss.Download(), want_loss, 1e-5, 1e-6));
    EXPECT_TRUE(AllClose(mean.Download(), std::vector<double>{want_mean}, 1e-5, 1e-6));
    EXPECT_EQ(hits.Download(), want_hits);
    int64_t want_correct = 0;
    for (int32_t h : want_hits) want_correct += h;
    EXPECT_EQ(correct.Download()[0], want_correct);
    // fp32 math: ~1e-6 of the gradient's scale (p − t cancels); fp16
    // output: half an ulp (2^-11) plus fp16's subnormal spacing (2^-24).
    if constexpr (kIsHalf<TOut>)
      EXPECT_TRUE(AllClose(HalfToFloatVec(dlogits.Download()), dref, 1e-3, 1e-5 * coef + 6e-8));
    else
      EXPECT_TRUE(AllClose(dlogits.Download(), dref, 1e-4, 1e-6 * coef));
  }

  // The loss_scale_dev overload on the same inputs: bit-identical to the
  // by-value results already in loss, dlogits and hits; forward only too.
  template <typename TIn, typename TOut>
  void CheckDeviceScale(const Case& c, const DeviceBuffer<Host<TIn>>& d_logits, const DeviceBuffer<int32_t>& d_labels,
                        const DeviceBuffer<float>& loss, const DeviceBuffer<Host<TOut>>& dlogits,
                        const DeviceBuffer<int32_t>& hits) {
    SCOPED_TRACE("loss_scale_dev overload");
    const size_t total = size_t(c.n) * c.classes;
    DeviceBuffer<float> scale(std::vector<float>{c.loss_scale}), loss2(c.n);
    DeviceBuffer<int32_t> hits2(c.n);
    DeviceBuffer<Host<TOut>> dlogits2(total);
    loss2.Poison();
    hits2.Poison();
    dlogits2.Poison();
    cuda::SoftmaxCrossEntropy<TIn, TOut>(c.n, c.classes, reinterpret_cast<const TIn*>(d_logits.get()),
                                         d_labels.get(), c.eps, static_cast<const float*>(scale.get()), loss2.get(),
                                         reinterpret_cast<TOut*>(dlogits2.get()), hits2.get(), stream_);
    Sync();
    const std::vector<float> want_loss = loss.Download();
    EXPECT_TRUE(BitEqual(loss2.Download(), want_loss));
    EXPECT_EQ(hits2.Download(), hits.Download());
    EXPECT_TRUE(BitEqual(dlogits2.Download(), dlogits.Download()));
    // Forward only (dlogits null): the same loss, nothing else written.
    loss2.Poison();
    dlogits2.Poison();
    cuda::SoftmaxCrossEntropy<TIn, TOut>(c.n, c.classes, reinterpret_cast<const TIn*>(d_logits.get()),
                                         d_labels.get(), c.eps, static_cast<const float*>(scale.get()), loss2.get(),
                                         static_cast<TOut*>(nullptr), nullptr, stream_);
    Sync();
    EXPECT_TRUE(BitEqual(loss2.Download(), want_loss));
    EXPECT_TRUE(BitEqual(dlogits2.Download(), std::vector<Host<TOut>>(total, AllOnes<Host<TOut>>())));
  }

  template <typename T>
  static T AllOnes() {  // the poison pattern (0xFF bytes) as a host value
    T v;
    std::memset(&v, 0xFF, sizeof(T));
    return v;
  }

  template <typename TIn, typename TOut>
  void CheckAll() {
    const Case cases[] = {{1, 1, 0.1f, 1.0f},     {1, 7, 0.0f, 1.0f},       {7, 10, 0.1f, 1.0f},
                          {33, 1001, 0.1f, 128.0f}, {256, 1000, 0.1f, 1024.0f}, {5, 4099, 0.0f, 1.0f},
                          {300, 3, 0.5f, 65536.0f}};
    uint32_t seed = 1;
    for (const Case& c : cases) Check<TIn, TOut>(c, seed++);
  }
};

TEST_F(CudaSoftmaxXent, Fp32InFp32Out) { CheckAll<float, float>(); }
TEST_F(CudaSoftmaxXent, Fp32InFp16Out) { CheckAll<float, __half>(); }
TEST_F(CudaSoftmaxXent, Fp16InFp32Out) { CheckAll<__half, float>(); }
TEST_F(CudaSoftmaxXent, Fp16InFp16Out) { CheckAll<__half, __half>(); }

TEST_F(CudaSoftmaxXent, BadLabelGivesNanRowForwardOnlyWritesNoGrad) {
  const int n = 3, classes = 5;
  DeviceBuffer<float> logits(std::vector<float>(n * classes, 0.5f)), loss(n);
  DeviceBuffer<int32_t> labels(std::vector<int32_t>{0, classes, 4});
  DeviceBuffer<float> dlogits(n * classes);
  loss.Poison();
  dlogits.Poison();
  cuda::SoftmaxCrossEntropy<float, float>(n, classes, logits.get(), labels.get(), 0.1f, 1.0f, loss.get(),
                                          dlogits.get(), nullptr, stream_);
  Sync();
  const std::vector<float> l = loss.Download(), d = dlogits.Download();
  EXPECT_NEAR(l[0], std::log(5.0), 1e-5);
  EXPECT_TRUE(std::isnan(l[1]));
  EXPECT_NEAR(l[2], std::log(5.0), 1e-5);
  for (int k = 0; k < classes; ++k) {
    EXPECT_FALSE(std::isnan(d[k]));
    EXPECT_TRUE(std::isnan(d[classes + k]));
  }
  // Forward only: dlogits null, nothing else written.
  dlogits.Poison();
  cuda::SoftmaxCrossEntropy<float, float>(n, classes, logits.get(), labels.get(), 0.1f, 1.0f, loss.get(),
                                          static_cast<float*>(nullptr), nullptr, stream_);
  Sync();
  for (float v : dlogits.Download()) EXPECT_TRUE(std::isnan(v));
}

TEST_F(CudaSoftmaxXent, DeviceScaleIsReadAtRunTime) {
  // One launch sequence, the scale changed in device memory in between (as a
  // replayed CUDA graph would see it): each result matches the by-value call.
  const int n = 4, classes = 9;
  std::vector<float> z(n * classes);
  for (size_t i = 0; i < z.size(); ++i) z[i] = 0.37f * float(i % 11) - 1.5f;
  DeviceBuffer<float> logits(z), loss(n), d_dev(n * classes), d_val(n * classes), scale(1);
  DeviceBuffer<int32_t> labels(std::vector<int32_t>{0, 8, 3, 5});
  for (float s : {1.0f, 3.0f, 65536.0f, 1.0f / 3}) {
    SCOPED_TRACE("loss_scale " + std::to_string(s));
    scale.Upload({s});
    d_dev.Poison();
    d_val.Poison();
    cuda::SoftmaxCrossEntropy<float, float>(n, classes, logits.get(), labels.get(), 0.1f,
                                            static_cast<const float*>(scale.get()), loss.get(), d_dev.get(), nullptr,
                                            stream_);
    cuda::SoftmaxCrossEntropy<float, float>(n, classes, logits.get(), labels.get(), 0.1f, s, loss.get(), d_val.get(),
                                            nullptr, stream_);
    Sync();
    EXPECT_TRUE(BitEqual(d_dev.Download(), d_val.Download()));
  }
}

TEST(CudaSoftmaxXentArgs, DeviceLossScaleHostChecks) {
  // Thrown before any CUDA call: no device needed.
  float f = 0;
  int32_t label = 0, hits = 0;
  const float* no_scale = nullptr;
  ExpectInvalid([&] { cuda::SoftmaxCrossEntropy<float, float>(1, 10, &f, &label, 0.1f, no_scale, &f, &f, &hits,
                                                              nullptr); },
                "loss_scale_dev");
  ExpectInvalid([&] { cuda::SoftmaxCrossEntropy<__half, __half>(1, 10, nullptr, &label, 0.1f, no_scale, &f,
                                                                nullptr, nullptr, nullptr); },
                "loss_scale_dev");
  ExpectInvalid([&] { cuda::SoftmaxCrossEntropy<float, __half>(0, 10, &f, &label, 0.1f, &f, &f, nullptr, nullptr,
                                                               nullptr); },
                "shape");
  ExpectInvalid([&] { cuda::SoftmaxCrossEntropy<__half, float>(1, 10, nullptr, &label, 1.0f, &f, &f, &f, &hits,
                                                               nullptr); },
                "label_smoothing");
  ExpectInvalid([&] { cuda::SoftmaxCrossEntropy<float, float>(1, 10, &f, &label, 0.1f, &f, nullptr, &f, &hits,
                                                              nullptr); },
                "loss");
  ExpectInvalid([&] { cuda::SoftmaxCrossEntropy<float, float>(1, 10, &f, nullptr, 0.1f, &f, &f, &f, &hits,
                                                              nullptr); },
                "labels");
}

}  // namespace
}  // namespace dtrain::gpu_test
