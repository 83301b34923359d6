// GPU parity: BatchedTensorNorms and FusedMomentumUpdate (LARS and SGD, plain
// and Nesterov, fp32 and fp16 gradients) against cpu::TensorNorms,
// cpu::LarsUpdate and cpu::SgdUpdate, on an odd tensor table (sizes 0, 1, 7,
// chunk edges, 2^20 + 3, gaps between tensors) and on ResNet-50's 161 tensors.
// The overloads reading grad_scale (and MomentumUpdateParams::lr_dev) from
// device memory are bit-identical to the by-value ones; their host-side checks
// (CudaNormsLarsArgs) need no device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/optimizer_update.h"
#include "kernels/cuda/batched_norms.h"
#include "kernels/cuda/lars_update.h"
#include "kernels/cuda/tensor_table.h"
#include "tests/gpu/gpu_test_util.h"
#include "worker/model/model.h"

namespace dtrain::gpu_test {
namespace {

using cpu::TensorSlice;
using cuda::TensorTable;

constexpr float kLossScale = 1024.0f;

struct Problem {
  std::vector<TensorSlice> tensors;
  std::vector<float> params;  // flat buffer, with gaps and a tail outside every tensor
};

Problem OddProblem() {
  const int64_t sizes[] = {1, 7, 0, 16384, 16385, 333, (int64_t{1} << 20) + 3, 5 * 16384 + 1, 2, 1};
  Problem p;
  int64_t offset = 3;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    p.tensors.push_back({.offset = offset, .size = sizes[i], .no_decay = i % 3 == 1});
    offset += sizes[i] + 5;
  }
  std::mt19937 gen(11);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  p.params.resize(offset + 4);
  for (float& x : p.params) x = dist(gen);
  // A zero tensor (‖w‖ = 0: LARS falls back to r = 1).
  for (int64_t i = 0; i < p.tensors[8].size; ++i) p.params[p.tensors[8].offset + i] = 0;
  return p;
}

// ResNet-50's real table and initial weights (BN gammas of 0 included).
const Problem& ResNet50Problem() {
  static const Problem p = [] {
    auto m = model::BuildModel<float>("resnet50", model::ModelOptions{}, 1);
    Problem r;
    for (const model::ParamTensor& t : m->tensors())
      r.tensors.push_back({.offset = int64_t(t.offset), .size = int64_t(t.size), .no_decay = t.no_decay});
    r.params.assign(m->params(), m->params() + m->num_params());
    return r;
  }();
  return p;
}

// Gradients as the kernels get them (fp32, or fp16 scaled by kLossScale) and
// as the CPU reference gets them (unscaled fp32: HalfToFloat(h) · grad_scale).
struct Grads {
  bool half = false;
  float grad_scale = 1.0f;
  std::vector<float> f32;
  std::vector<uint16_t> f16;
  std::vector<float> unscaled;
};

Grads MakeGrads(size_t n, uint32_t seed, bool half, const TensorSlice* zero_tensor = nullptr) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1e-3f);
  Grads g;
  g.half = half;
  g.unscaled.resize(n);
  for (float& x : g.unscaled) x = dist(gen);
  if (zero_tensor)
    for (int64_t i = 0; i < zero_tensor->size; ++i) g.unscaled[zero_tensor->offset + i] = 0;
  if (!half) {
    g.f32 = g.unscaled;
    return g;
  }
  g.grad_scale = 1.0f / kLossScale;
  g.f16.resize(n);
  for (size_t i = 0; i < n; ++i) {
    g.f16[i] = FloatToHalf(g.unscaled[i] * kLossScale);
    g.unscaled[i] = HalfToFloat(g.f16[i]) * g.grad_scale;
  }
  return g;
}

// Device copy of the gradients, whichever precision.
struct DeviceGrads {
  explicit DeviceGrads(const Grads& g) : f32(g.f32), f16(g.f16), half(g.half) {}
  DeviceBuffer<float> f32;
  DeviceBuffer<uint16_t> f16;
  bool half;
};

void Norms(const TensorTable& table, const float* params, const DeviceGrads& g, float grad_scale, float* wn,
           float* gn, cudaStream_t stream) {
  if (g.half)
    cuda::BatchedTensorNorms(table.view(), params, AsHalf(g.f16.get()), grad_scale, wn, gn, stream);
  else
    cuda::BatchedTensorNorms(table.view(), params, g.f32.get(), grad_scale, wn, gn, stream);
}

// The same with the scale read from device memory (grad_scale_dev).
void DevNorms(const TensorTable& table, const float* params, const DeviceGrads& g, const float* grad_scale_dev,
              float* wn, float* gn, cudaStream_t stream) {
  if (g.half)
    cuda::BatchedTensorNorms(table.view(), params, AsHalf(g.f16.get()), grad_scale_dev, wn, gn, stream);
  else
    cuda::BatchedTensorNorms(table.view(), params, g.f32.get(), grad_scale_dev, wn, gn, stream);
}

class CudaBatchedNorms : public CudaTest {
 protected:
  void Check(const Problem& p, const Grads& g, int64_t chunk_elems) {
    SCOPED_TRACE("chunk_elems " + std::to_string(chunk_elems) + (g.half ? " fp16 grads" : " fp32 grads"));
    TensorTable table(p.tensors, chunk_elems);
    ASSERT_LE(table.buffer_elems(), int64_t(p.params.size()));
    DeviceBuffer<float> params(p.params);
    DeviceGrads grads(g);
    const size_t nt = p.tensors.size();
    DeviceBuffer<float> wn(nt), gn(nt);
    std::vector<float> first_w, first_g;
    for (int run = 0; run < 2; ++run) {
      wn.Poison();
      gn.Poison();
      Norms(table, params.get(), grads, g.grad_scale, wn.get(), gn.get(), stream_);
      Sync();
      if (run == 0) {
        first_w = wn.Download();
        first_g = gn.Download();
      } else {  // deterministic, and the counters were reset
        EXPECT_TRUE(BitEqual(wn.Download(), first_w));
        EXPECT_TRUE(BitEqual(gn.Download(), first_g));
      }
    }
    {  // grad_scale from device memory: bit-identical
      DeviceBuffer<float> scale(std::vector<float>{g.grad_scale});
      wn.Poison();
      gn.Poison();
      DevNorms(table, params.get(), grads, scale.get(), wn.get(), gn.get(), stream_);
      Sync();
      EXPECT_TRUE(BitEqual(wn.Download(), first_w)) << "grad_scale_dev overload";
      EXPECT_TRUE(BitEqual(gn.Download(), first_g)) << "grad_scale_dev overload";
    }
    std::vector<float> want_w(nt), want_g(nt);
    cpu::TensorNorms(p.params.data(), g.unscaled.data(), p.tensors, want_w.data(), want_g.data());
    EXPECT_TRUE(AllClose(first_w, want_w, 1e-6, 1e-30));
    EXPECT_TRUE(AllClose(first_g, want_g, 1e-6, 1e-30));
  }
};

TEST_F(CudaBatchedNorms, OddTable) {
  const Problem p = OddProblem();
  for (bool half : {false, true}) {
    const Grads g = MakeGrads(p.params.size(), 21, half, &p.tensors[5]);
    for (int64_t chunk : {cuda::kDefaultChunkElems, int64_t{100}, int64_t{1}})
      if (chunk != 1 || !half) Check(p, g, chunk);
  }
}

TEST_F(CudaBatchedNorms, ResNet50Tensors) {
  const Problem& p = ResNet50Problem();
  ASSERT_EQ(p.tensors.size(), 161u);
  for (bool half : {false, true}) Check(p, MakeGrads(p.params.size(), 22, half), cuda::kDefaultChunkElems);
}

class CudaFusedUpdate : public CudaTest {
 protected:
  // `steps` steps of norms + update on the GPU; the CPU reference uses the
  // GPU's norms (checked against cpu::TensorNorms), so masters, momentum and
  // the fp16 copy must be bit-identical.
  void Check(const Problem& p, const Grads& g, bool lars, bool nesterov, int steps) {
    SCOPED_TRACE(std::string(lars ? "LARS" : "SGD") + (nesterov ? " nesterov" : "") +
                 (g.half ? " fp16 grads" : " fp32 grads"));
    TensorTable table(p.tensors);
    const size_t n = p.params.size(), nt = p.tensors.size();
    std::mt19937 gen(31);
    std::normal_distribution<float> dist(0.0f, 1e-3f);
    std::vector<float> mom(n);
    for (float& x : mom) x = dist(gen);
    std::vector<float> ref_w = p.params, ref_v = mom;

    DeviceBuffer<float> w(p.params), v(mom), wn(nt), gn(nt);
    DeviceBuffer<uint16_t> wh(n);
    DeviceGrads grads(g);
    for (int step = 0; step < steps; ++step) {
      cuda::MomentumUpdateParams hp;
      hp.lars = lars;
      hp.lr = 0.1f * (step + 1);
      hp.momentum = 0.9f;
      hp.weight_decay = 5e-5f;
      hp.eta = 0.001f;
      hp.epsilon = 1e-9f;
      hp.nesterov = nesterov;
      wn.Poison();
      gn.Poison();
      wh.Poison();
      if (lars) Norms(table, w.get(), grads, g.grad_scale, wn.get(), gn.get(), stream_);
      if (g.half)
        cuda::FusedMomentumUpdate(table.view(), w.get(), v.get(), AsHalf(grads.f16.get()), g.grad_scale,
                                  lars ? wn.get() : nullptr, lars ? gn.get() : nullptr, AsHalf(wh.get()),
                                  nullptr, hp, stream_);
      else
        cuda::FusedMomentumUpdate(table.view(), w.get(), v.get(), grads.f32.get(), g.grad_scale,
                                  lars ? wn.get() : nullptr, lars ? gn.get() : nullptr, AsHalf(wh.get()),
                                  nullptr, hp, stream_);
      Sync();
      if (lars) {
        const std::vector<float> gw = wn.Download(), gg = gn.Download();
        std::vector<float> want_w(nt), want_g(nt);
        cpu::TensorNorms(ref_w.data(), g.unscaled.data(), p.tensors, want_w.data(), want_g.data());
        EXPECT_TRUE(AllClose(gw, want_w, 1e-6, 1e-30)) << "step " << step;
        EXPECT_TRUE(AllClose(gg, want_g, 1e-6, 1e-30)) << "step " << step;
        cpu::LarsHyper h{.lr = hp.lr, .momentum = hp.momentum, .weight_decay = hp.weight_decay, .eta = hp.eta,
                         .epsilon = hp.epsilon, .nesterov = nesterov};
        cpu::LarsUpdate(ref_w.data(), g.unscaled.data(), ref_v.data(), p.tensors, gw.data(), gg.data(), h);
      } else {
        cpu::SgdHyper h{.lr = hp.lr, .momentum = hp.momentum, .weight_decay = hp.weight_decay, .nesterov = nesterov};
        cpu::SgdUpdate(ref_w.data(), g.unscaled.data(), ref_v.data(), p.tensors, h);
      }
      const std::vector<float> got_w = w.Download(), got_v = v.Download();
      ASSERT_TRUE(BitEqual(got_w, ref_w)) << "masters, step " << step;
      ASSERT_TRUE(BitEqual(got_v, ref_v)) << "momentum, step " << step;
      std::vector<uint16_t> want_h(n, 0xffff);  // outside every tensor: still poison
      for (const TensorSlice& t : p.tensors)
        for (int64_t i = t.offset; i < t.offset + t.size; ++i) want_h[i] = FloatToHalf(ref_w[i]);
      ASSERT_TRUE(BitEqual(wh.Download(), want_h)) << "fp16 copy, step " << step;
    }
    // The update did something (guards against a kernel that never ran).
    EXPECT_FALSE(BitEqual(w.Download(), p.params));
  }
};

TEST_F(CudaFusedUpdate, LarsOddTable) {
  const Problem p = OddProblem();
  for (bool half : {false, true})
    for (bool nesterov : {false, true})
      Check(p, MakeGrads(p.params.size(), 41, half, &p.tensors[5]), /*lars=*/true, nesterov, 3);
}

TEST_F(CudaFusedUpdate, SgdOddTable) {
  const Problem p = OddProblem();
  for (bool half : {false, true})
    for (bool nesterov : {false, true})
      Check(p, MakeGrads(p.params.size(), 42, half), /*lars=*/false, nesterov, 3);
}

TEST_F(CudaFusedUpdate, LarsResNet50) {
  const Problem& p = ResNet50Problem();
  for (bool half : {false, true}) Check(p, MakeGrads(p.params.size(), 43, half), /*lars=*/true, false, 2);
}

TEST_F(CudaFusedUpdate, SkipFlagChangesNothing) {
  const Problem p = OddProblem();
  const Grads g = MakeGrads(p.params.size(), 44, false);
  TensorTable table(p.tensors);
  const size_t n = p.params.size(), nt = p.tensors.size();
  DeviceBuffer<float> w(p.params), v(std::vector<float>(n, 0.5f)), gr(g.f32), wn(nt), gn(nt);
  DeviceBuffer<uint16_t> wh(n);
  DeviceBuffer<int> flag(std::vector<int>{1});
  wh.Poison();
  cuda::MomentumUpdateParams hp;
  hp.lr = 0.5f;
  cuda::BatchedTensorNorms(table.view(), w.get(), gr.get(), 1.0f, wn.get(), gn.get(), stream_);
  cuda::FusedMomentumUpdate(table.view(), w.get(), v.get(), gr.get(), 1.0f, wn.get(), gn.get(), AsHalf(wh.get()),
                            flag.get(), hp, stream_);
  Sync();
  EXPECT_TRUE(BitEqual(w.Download(), p.params));
  EXPECT_TRUE(BitEqual(v.Download(), std::vector<float>(n, 0.5f)));
  EXPECT_TRUE(BitEqual(wh.Download(), std::vector<uint16_t>(n, 0xffff)));
  flag.Upload({0});
  cuda::FusedMomentumUpdate(table.view(), w.get(), v.get(), gr.get(), 1.0f, wn.get(), gn.get(), AsHalf(wh.get()),
                            flag.get(), hp, stream_);
  Sync();
  EXPECT_FALSE(BitEqual(w.Download(), p.params));
}

// One update with the gradient scale by value or from device memory.
void Update(const TensorTable& table, float* w, float* v, const DeviceGrads& g, float grad_scale,
            const float* grad_scale_dev, const float* wn, const float* gn, uint16_t* wh, const int* skip,
            const cuda::MomentumUpdateParams& hp, cudaStream_t stream) {
  if (grad_scale_dev != nullptr) {
    if (g.half)
      cuda::FusedMomentumUpdate(table.view(), w, v, AsHalf(g.f16.get()), grad_scale_dev, wn, gn, AsHalf(wh), skip, hp,
                                stream);
    else
      cuda::FusedMomentumUpdate(table.view(), w, v, g.f32.get(), grad_scale_dev, wn, gn, AsHalf(wh), skip, hp, stream);
  } else if (g.half) {
    cuda::FusedMomentumUpdate(table.view(), w, v, AsHalf(g.f16.get()), grad_scale, wn, gn, AsHalf(wh), skip, hp,
                              stream);
  } else {
    cuda::FusedMomentumUpdate(table.view(), w, v, g.f32.get(), grad_scale, wn, gn, AsHalf(wh), skip, hp, stream);
  }
}

TEST_F(CudaFusedUpdate, DeviceScalarsBitIdentical) {
  // Two copies of the state: A by value, B with lr and/or grad_scale read
  // from device memory (both at step 0, lr only at step 1, grad_scale only at
  // step 2; the values change every step, uploaded between launches as a
  // replayed graph would see them). Norms, masters, momentum and the fp16
  // copy of B must equal A's bit for bit.
  const Problem p = OddProblem();
  TensorTable table(p.tensors);
  const size_t n = p.params.size(), nt = p.tensors.size();
  for (bool lars : {true, false}) {
    for (bool half : {false, true}) {
      for (bool nesterov : {false, true}) {
        SCOPED_TRACE(std::string(lars ? "LARS" : "SGD") + (nesterov ? " nesterov" : "") +
                     (half ? " fp16 grads" : " fp32 grads"));
        const Grads g = MakeGrads(n, 45, half, &p.tensors[5]);
        DeviceGrads grads(g);
        const std::vector<float> mom(n, 1e-4f);
        DeviceBuffer<float> wa(p.params), va(mom), wb(p.params), vb(mom), wna(nt), gna(nt), wnb(nt), gnb(nt);
        DeviceBuffer<uint16_t> wha(n), whb(n);
        DeviceBuffer<float> lr_dev(1), scale_dev(1);
        for (int step = 0; step < 3; ++step) {
          SCOPED_TRACE("step " + std::to_string(step));
          const bool dev_lr = step != 2, dev_scale = step != 1;
          cuda::MomentumUpdateParams hp;
          hp.lars = lars;
          hp.lr = 0.05f * float(step + 1) + 0.013f;
          hp.weight_decay = 5e-5f;
          hp.nesterov = nesterov;
          lr_dev.Upload({hp.lr});
          scale_dev.Upload({g.grad_scale});
          cuda::MomentumUpdateParams hb = hp;
          if (dev_lr) {
            hb.lr_dev = lr_dev.get();
            hb.lr = NAN;  // must not be used
          }
          for (auto* b : {&wna, &gna, &wnb, &gnb}) b->Poison();
          wha.Poison();
          whb.Poison();
          if (lars) {
            Norms(table, wa.get(), grads, g.grad_scale, wna.get(), gna.get(), stream_);
            if (dev_scale)
              DevNorms(table, wb.get(), grads, scale_dev.get(), wnb.get(), gnb.get(), stream_);
            else
              Norms(table, wb.get(), grads, g.grad_scale, wnb.get(), gnb.get(), stream_);
          }
          Update(table, wa.get(), va.get(), grads, g.grad_scale, nullptr, lars ? wna.get() : nullptr,
                 lars ? gna.get() : nullptr, wha.get(), nullptr, hp, stream_);
          Update(table, wb.get(), vb.get(), grads, g.grad_scale, dev_scale ? scale_dev.get() : nullptr,
                 lars ? wnb.get() : nullptr, lars ? gnb.get() : nullptr, whb.get(), nullptr, hb, stream_);
          Sync();
          if (lars) {
            ASSERT_TRUE(BitEqual(wnb.Download(), wna.Download())) << "weight norms";
            ASSERT_TRUE(BitEqual(gnb.Download(), gna.Download())) << "grad norms";
          }
          ASSERT_TRUE(BitEqual(wb.Download(), wa.Download())) << "masters";
          ASSERT_TRUE(BitEqual(vb.Download(), va.Download())) << "momentum";
          ASSERT_TRUE(BitEqual(whb.Download(), wha.Download())) << "fp16 copy";
        }
        EXPECT_FALSE(BitEqual(wb.Download(), p.params));  // the update did something
      }
    }
  }
}

TEST_F(CudaFusedUpdate, NonFiniteDeviceLrPropagatesUnlessSkipped) {
  // Device scalars are not validated: a NaN lr reaches every element of every
  // tensor (as the CPU formulas would compute); elements outside the tensors
  // stay untouched; with the skip flag set nothing changes.
  const Problem p = OddProblem();
  const Grads g = MakeGrads(p.params.size(), 46, false);
  TensorTable table(p.tensors);
  const size_t n = p.params.size();
  DeviceBuffer<float> w(p.params), v(std::vector<float>(n, 0.5f)), gr(g.f32), lr(std::vector<float>{NAN});
  DeviceBuffer<float> one(std::vector<float>{1.0f});
  DeviceBuffer<int> flag(std::vector<int>{1});
  cuda::MomentumUpdateParams hp;
  hp.lars = false;
  hp.lr = 0.1f;  // ignored: lr_dev is set
  hp.lr_dev = lr.get();
  cuda::FusedMomentumUpdate(table.view(), w.get(), v.get(), gr.get(), one.get(), nullptr, nullptr, nullptr,
                            flag.get(), hp, stream_);
  Sync();
  EXPECT_TRUE(BitEqual(w.Download(), p.params)) << "skipped step changed the masters";
  flag.Upload({0});
  cuda::FusedMomentumUpdate(table.view(), w.get(), v.get(), gr.get(), one.get(), nullptr, nullptr, nullptr,
                            flag.get(), hp, stream_);
  Sync();
  const std::vector<float> got = w.Download();
  std::vector<bool> inside(n, false);
  for (const TensorSlice& t : p.tensors)
    for (int64_t i = t.offset; i < t.offset + t.size; ++i) inside[i] = true;
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool ok = inside[i] ? std::isnan(got[i]) : std::memcmp(&got[i], &p.params[i], sizeof(float)) == 0;
    if (!ok && wrong++ == 0) ADD_FAILURE() << "first wrong element [" << i << "] got " << got[i];
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(CudaNormsLarsArgs, DeviceScalarHostChecks) {
  // Thrown before any CUDA call (or nothing launched: empty table), so no
  // device is needed; host addresses stand in for device ones and are never
  // dereferenced.
  const cuda::TensorTableView empty;
  float f = 0;
  __half h;
  const float* no_scale = nullptr;
  ExpectInvalid([&] { cuda::BatchedTensorNorms(empty, &f, &f, no_scale, &f, &f, nullptr); }, "grad_scale_dev");
  ExpectInvalid([&] { cuda::BatchedTensorNorms(empty, &f, &h, no_scale, &f, &f, nullptr); }, "grad_scale_dev");
  cuda::TensorTableView broken;
  broken.num_tensors = 2;
  broken.num_chunks = 2;  // but no device arrays
  ExpectInvalid([&] { cuda::BatchedTensorNorms(broken, &f, &f, &f, &f, &f, nullptr); }, "tensor table");
  cuda::BatchedTensorNorms(empty, static_cast<const float*>(nullptr), static_cast<const __half*>(nullptr), &f,
                           nullptr, nullptr, nullptr);  // empty: launches nothing

  cuda::MomentumUpdateParams p;
  p.lr = 0.1f;
  ExpectInvalid([&] { cuda::FusedMomentumUpdate(empty, &f, &f, &f, no_scale, &f, &f, nullptr, nullptr, p, nullptr); },
                "grad_scale_dev");
  ExpectInvalid([&] { cuda::FusedMomentumUpdate(empty, &f, &f, &h, no_scale, &f, &f, nullptr, nullptr, p, nullptr); },
                "grad_scale_dev");
  // lr from the device: p.lr is not checked (not used); the other
  // hyperparameters still are.
  p.lr = NAN;
  p.lr_dev = &f;
  cuda::FusedMomentumUpdate(empty, &f, &f, &f, &f, &f, &f, nullptr, nullptr, p, nullptr);
  cuda::FusedMomentumUpdate(empty, &f, &f, &h, 1.0f, &f, &f, nullptr, nullptr, p, nullptr);
  p.momentum = INFINITY;
  ExpectInvalid([&] { cuda::FusedMomentumUpdate(empty, &f, &f, &f, &f, &f, &f, nullptr, nullptr, p, nullptr); },
                "momentum");
  p.momentum = 0.9f;
  p.lr_dev = nullptr;  // by value again: checked
  ExpectInvalid([&] { cuda::FusedMomentumUpdate(empty, &f, &f, &f, &f, &f, &f, nullptr, nullptr, p, nullptr); },
                "lr");
  p.lr = 0.1f;
  ExpectInvalid([&] { cuda::FusedMomentumUpdate(broken, &f, &f, &f, &f, &f, &f, nullptr, nullptr, p, nullptr); },
                "tensor table");
}

}  // namespace
}  // namespace dtrain::gpu_test
