// Parity of oneDNN's batch norm (+ReLU), add+ReLU, ReLU backward and pooling
// (kernels/dnnl) with the CPU reference (kernels/cpu), fp32, forward and
// backward, on resnet20's and resnet50's activation shapes, in the blocked
// layout the convolutions hand over (nChw8c on avx2, nChw16c on avx512) and in
// plain NCHW. Norm as in kernels_dnnl_conv_test: relative L2 <= 1e-5 and
// max |got - ref| <= 1e-5 * max |ref|; the elementwise ops and the max pool's
// forward are exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual_add.h"
#include "kernels/dnnl/batch_norm_dnnl.h"
#include "kernels/dnnl/eltwise_dnnl.h"
#include "kernels/dnnl/pool_dnnl.h"
#include "tests/unit/rel_error.h"

namespace dtrain::onednn {
namespace {

using Vec = std::vector<float>;
using Tag = dnnl::memory::format_tag;
constexpr double kRel = 1e-5;

struct Act {
  int n, c, h, w;
  Tag tag;
};

std::string Name(const Act& a) {
  return std::to_string(a.n) + "x" + std::to_string(a.c) + "x" + std::to_string(a.h) + "x" +
         std::to_string(a.w) + (a.tag == Tag::nchw ? "_nchw" : "_blocked");
}

// The blocked layout of this machine's convolutions (8 or 16 channels per block).
Tag Blocked() {
  return dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core ? Tag::nChw16c
                                                                      : Tag::nChw8c;
}

Desc D(const Act& a) { return Desc({a.n, a.c, a.h, a.w}, dnnl::memory::data_type::f32, a.tag); }

// Plain NCHW <-> the layout d.
Vec To(const Desc& d, const Vec& plain, int n, int c, int h, int w) {
  Vec out(d.get_size() / sizeof(float));
  dnnl::memory a = Mem(Nchw(n, c, h, w), plain.data()), b = Mem(d, out.data());
  dnnl::reorder(a, b).execute(Stream(), a, b);
  Stream().wait();
  return out;
}
Vec From(const Desc& d, const Vec& v, int n, int c, int h, int w) {
  Vec out(size_t(n) * c * h * w);
  dnnl::memory a = Mem(d, v.data()), b = Mem(Nchw(n, c, h, w), out.data());
  dnnl::reorder(a, b).execute(Stream(), a, b);
  Stream().wait();
  return out;
}

void ExpectClose(const Vec& got, const Vec& ref, const char* what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  const testing::RelError e = testing::CompareRel(got, ref);
  const double rel = e.rel_l2, mx = e.max_abs_rel;
  std::printf("  %-8s rel_l2 %.2e  max_abs/max|ref| %.2e\n", what, rel, mx);
  EXPECT_LE(rel, kRel) << what;
  EXPECT_LE(mx, kRel) << what;
}

std::vector<Act> BnShapes() {
  const Tag b = Blocked();
  return {{8, 16, 28, 28, b}, {8, 32, 14, 14, b}, {8, 64, 7, 7, b}, {128, 64, 7, 7, b},
          {2, 256, 14, 14, b}, {2, 64, 56, 56, b}, {8, 16, 28, 28, Tag::nchw}, {4, 24, 5, 3, b}};
}

class DnnlBnParity : public ::testing::TestWithParam<Act> {};

TEST_P(DnnlBnParity, TrainingInferenceAndBackwardMatchTheReference) {
  const Act a = GetParam();
  const Desc d = D(a);
  const size_t count = size_t(a.n) * a.c * a.h * a.w;
  std::mt19937_64 rng(7 + a.c);
  const Vec x = testing::RandomUniform(count, rng, -2.f, 3.f), dy = testing::RandomUniform(count, rng);
  const Vec gamma = testing::RandomUniform(a.c, rng, 0.5f, 1.5f), beta = testing::RandomUniform(a.c, rng, -0.5f, 0.5f);
  const float eps = 1e-5f;
  const cpu::BatchNormShape s{a.n, a.c, a.h * a.w};
  for (bool relu : {false, true}) {
    SCOPED_TRACE(relu ? "with ReLU" : "without ReLU");
    // Reference.
    Vec rm(a.c, 0.f), rv(a.c, 1.f), smean(a.c), sinv(a.c), y_ref(count);
    cpu::BatchNormForwardTraining(s, x.data(), gamma.data(), beta.data(), eps, 0.9, rm.data(),
                                  rv.data(), smean.data(), sinv.data(), y_ref.data(), relu);
    Vec dx_ref(count), dg_ref(a.c), db_ref(a.c);
    cpu::BatchNormBackward(s, x.data(), dy.data(), gamma.data(), smean.data(), sinv.data(),
                           dx_ref.data(), dg_ref.data(), db_ref.data(),
                           relu ? y_ref.data() : nullptr);
    Vec yi_ref(count);
    cpu::BatchNormForwardInference(s, x.data(), gamma.data(), beta.data(), smean.data(),
                                   rv.data(), eps, yi_ref.data(), relu);
    // oneDNN in layout d.
    BatchNormDnnl bn(1);
    const Vec xb = To(d, x, a.n, a.c, a.h, a.w), dyb = To(d, dy, a.n, a.c, a.h, a.w);
    Vec yb(xb.size()), mean(a.c), var(a.c);
    std::vector<uint8_t> ws(bn.WorkspaceBytes(d, eps, relu));
    bn.ForwardTraining(d, eps, relu, xb.data(), gamma.data(), beta.data(), yb.data(), mean.data(),
                       var.data(), ws.data());
    ExpectClose(From(d, yb, a.n, a.c, a.h, a.w), y_ref, "y");
    ExpectClose(mean, smean, "mean");
    Vec inv(a.c);
    for (int c = 0; c < a.c; ++c) inv[c] = float(1.0 / std::sqrt(double(var[c]) + eps));
    ExpectClose(inv, sinv, "1/std");
    Vec dxb(xb.size()), dg(a.c), db(a.c);
    bn.Backward(d, eps, relu, xb.data(), dyb.data(), gamma.data(), beta.data(), mean.data(), var.data(),
                ws.data(), dxb.data(), dg.data(), db.data());
    ExpectClose(From(d, dxb, a.n, a.c, a.h, a.w), dx_ref, "dx");
    ExpectClose(dg, dg_ref, "dgamma");
    ExpectClose(db, db_ref, "dbeta");
    // In place: dx over dy gives the same numbers.
    Vec inplace = dyb;
    bn.Backward(d, eps, relu, xb.data(), inplace.data(), gamma.data(), beta.data(), mean.data(), var.data(),
                ws.data(), inplace.data(), dg.data(), db.data());
    EXPECT_EQ(inplace, dxb) << "in-place backward differs";
    Vec yi(xb.size());
    bn.ForwardInference(d, eps, relu, xb.data(), gamma.data(), beta.data(), smean.data(),
                        rv.data(), yi.data());
    ExpectClose(From(d, yi, a.n, a.c, a.h, a.w), yi_ref, "y_infer");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DnnlBnParity, ::testing::ValuesIn(BnShapes()),
                         [](const auto& info) { return Name(info.param); });

TEST(DnnlEltwise, AddReluAndReluBackwardEqualTheReferenceExactly) {
  for (const Act& a : {Act{8, 16, 28, 28, Blocked()}, Act{3, 64, 7, 7, Blocked()},
                       Act{2, 12, 5, 5, Tag::nchw}}) {
    SCOPED_TRACE(Name(a));
    const Desc d = D(a);
    const size_t count = size_t(a.n) * a.c * a.h * a.w;
    std::mt19937_64 rng(11);
    const Vec x = testing::RandomUniform(count, rng), sc = testing::RandomUniform(count, rng), dy = testing::RandomUniform(count, rng);
    Vec y_ref(count), dx_ref(count);
    cpu::ResidualAddRelu(count, x.data(), sc.data(), y_ref.data());
    cpu::ReluBackward(count, y_ref.data(), dy.data(), dx_ref.data());
    EltwiseDnnl elt(1);
    Vec xb = To(d, x, a.n, a.c, a.h, a.w);
    const Vec scb = To(d, sc, a.n, a.c, a.h, a.w), dyb = To(d, dy, a.n, a.c, a.h, a.w);
    elt.AddRelu(d, xb.data(), d, scb.data(), xb.data());  // in place, as the model runs it
    EXPECT_EQ(From(d, xb, a.n, a.c, a.h, a.w), y_ref);
    Vec g = dyb;
    elt.ReluBackward(d, xb.data(), g.data(), g.data());
    EXPECT_EQ(From(d, g, a.n, a.c, a.h, a.w), dx_ref);
    // The shortcut in plain NCHW while the main path is blocked.
    if (a.tag != Tag::nchw) {
      Vec xb2 = To(d, x, a.n, a.c, a.h, a.w);
      elt.AddRelu(d, xb2.data(), Nchw(a.n, a.c, a.h, a.w), sc.data(), xb2.data());
      EXPECT_EQ(From(d, xb2, a.n, a.c, a.h, a.w), y_ref) << "mixed layouts";
    }
  }
}

TEST(DnnlPool, MaxPoolForwardAndBackwardMatchTheReference) {
  for (const Act& a : {Act{2, 64, 56, 56, Blocked()}, Act{2, 64, 112, 112, Blocked()},
                       Act{3, 8, 9, 7, Tag::nchw}}) {
    SCOPED_TRACE(Name(a));
    const cpu::MaxPoolShape s{a.n, a.c, a.h, a.w, 3, 2, 1};
    const Desc d = D(a);
    std::mt19937_64 rng(5);
    // Distinct values: no ties, so the maxima are unambiguous.
    Vec x(s.in_size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);  // exact below 2^24
    std::shuffle(x.begin(), x.end(), rng);
    const Vec dy = testing::RandomUniform(s.out_size(), rng);
    Vec y_ref(s.out_size()), dx_ref(s.in_size());
    std::vector<int32_t> arg(s.out_size());
    cpu::MaxPoolForward(s, x.data(), y_ref.data(), arg.data());
    cpu::MaxPoolBackward(s, dy.data(), arg.data(), dx_ref.data());
    PoolDnnl pool(1);
    const Desc yd = pool.MaxDstDesc(d, s);
    const Vec xb = To(d, x, a.n, a.c, a.h, a.w);
    Vec yb(yd.get_size() / 4), yi(yd.get_size() / 4);
    std::vector<uint8_t> ws(pool.MaxWorkspaceBytes(d, s));
    pool.MaxForward(d, s, xb.data(), yb.data(), ws.data());
    pool.MaxForward(d, s, xb.data(), yi.data(), nullptr);
    EXPECT_EQ(From(yd, yb, a.n, a.c, s.out_h(), s.out_w()), y_ref);
    EXPECT_EQ(yi, yb) << "inference differs from training";
    Vec dxb(xb.size());
    pool.MaxBackward(d, s, To(yd, dy, a.n, a.c, s.out_h(), s.out_w()).data(), ws.data(),
                     dxb.data());
    // An input that wins overlapping windows sums their dy in its own order.
    ExpectClose(From(d, dxb, a.n, a.c, a.h, a.w), dx_ref, "dx");
  }
}

TEST(DnnlPool, GlobalAveragePoolForwardAndBackwardMatchTheReference) {
  for (const Act& a : {Act{128, 64, 7, 7, Blocked()}, Act{2, 2048, 7, 7, Blocked()},
                       Act{3, 10, 5, 4, Tag::nchw}}) {
    SCOPED_TRACE(Name(a));
    const cpu::GlobalAvgPoolShape s{a.n, a.c, a.h * a.w};
    const Desc d = D(a);
    std::mt19937_64 rng(9);
    const Vec x = testing::RandomUniform(size_t(a.n) * a.c * a.h * a.w, rng), dy = testing::RandomUniform(size_t(a.n) * a.c, rng);
    Vec y_ref(size_t(a.n) * a.c), dx_ref(x.size());
    cpu::GlobalAvgPoolForward(s, x.data(), y_ref.data());
    cpu::GlobalAvgPoolBackward(s, dy.data(), dx_ref.data());
    PoolDnnl pool(1);
    Vec y(y_ref.size()), dxb(d.get_size() / 4);
    pool.GlobalAvgForward(d, To(d, x, a.n, a.c, a.h, a.w).data(), y.data());
    ExpectClose(y, y_ref, "y");
    pool.GlobalAvgBackward(d, dy.data(), dxb.data());
    ExpectClose(From(d, dxb, a.n, a.c, a.h, a.w), dx_ref, "dx");
  }
}

TEST(DnnlOps, SecondCallWithTheSameLayoutCreatesNoPrimitive) {
  const Act a{4, 16, 8, 8, Blocked()};
  const Desc d = D(a);
  const size_t count = d.get_size() / 4;
  Vec x(count, 1.f), y(count), g(a.c, 1.f), b(a.c, 0.f), m(a.c), v(a.c), dx(count), dg(a.c),
      db(a.c), f(size_t(a.n) * a.c);
  x[3] = 2.f;
  BatchNormDnnl bn(1);
  EltwiseDnnl elt(1);
  PoolDnnl pool(1);
  std::vector<uint8_t> ws(bn.WorkspaceBytes(d, 1e-5f, true));
  auto step = [&] {
    bn.ForwardTraining(d, 1e-5f, true, x.data(), g.data(), b.data(), y.data(), m.data(), v.data(),
                       ws.data());
    bn.Backward(d, 1e-5f, true, x.data(), y.data(), g.data(), b.data(), m.data(), v.data(), ws.data(),
                dx.data(), dg.data(), db.data());
    elt.AddRelu(d, y.data(), d, x.data(), y.data());
    elt.ReluBackward(d, y.data(), dx.data(), dx.data());
    pool.GlobalAvgForward(d, y.data(), f.data());
    pool.GlobalAvgBackward(d, f.data(), dx.data());
  };
  step();
  const size_t made = bn.primitives_created() + elt.primitives_created() + pool.primitives_created();
  EXPECT_GT(made, 0u);
  step();
  EXPECT_EQ(bn.primitives_created() + elt.primitives_created() + pool.primitives_created(), made);
}

TEST(DnnlOps, RejectsThreadCountsBelowOne) {
  EXPECT_THROW(BatchNormDnnl(0), Error);
  EXPECT_THROW(EltwiseDnnl(-1), Error);
  EXPECT_THROW(PoolDnnl(0), Error);
}

}  // namespace
}  // namespace dtrain::onednn
