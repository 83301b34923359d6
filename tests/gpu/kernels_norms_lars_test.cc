// GPU parity: BatchedTensorNorms and FusedMomentumUpdate (LARS and SGD, plain
// and Nesterov, fp32 and fp16 gradients) against cpu::TensorNorms,
// cpu::LarsUpdate and cpu::SgdUpdate, on an odd tensor table (sizes 0, 1, 7,
// chunk edges, 2^20 + 3, gaps between tensors) and on ResNet-50's 161 tensors.
#include <gtest/gtest.h>

#include <random>
#include <vector>

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

}  // namespace
}  // namespace dtrain::gpu_test
