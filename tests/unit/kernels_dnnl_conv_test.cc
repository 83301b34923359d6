// Parity of the oneDNN convolution (kernels/dnnl) with the im2col + BLAS
// reference (kernels/cpu), both fp32, on every distinct conv shape of resnet20
// (28x28x1, as BuildResnetArch makes it), a handful of resnet50 shapes and two
// odd ones: y, dx (overwritten and accumulated), dw.
//
// Norm: relative L2 error ||got - ref||_2 / ||ref||_2 <= 1e-5 (sums in
// double), and max |got - ref| <= 1e-5 * max |ref| elementwise (batch 8 for
// resnet20, 2 for resnet50); dw at batch 128 is checked in relative L2 only.
// Also: primitives are created once per shape, and a chain of two convs kept in
// oneDNN's blocked layout equals the NCHW path.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/dnnl/conv2d_dnnl.h"
#include "tests/unit/rel_error.h"
#include "worker/model/resnet_arch.h"

namespace dtrain::onednn {
namespace {

using Vec = std::vector<float>;
constexpr double kRelL2 = 1e-5, kMaxAbs = 1e-5;

struct Case {
  std::string name;
  Conv2dShape s;
};

std::string Name(const Case& c) {
  std::string n = c.name;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

std::vector<Case> ArchConvs(const std::string& model, int in_c, int image, int n,
                            const std::set<std::string>& only = {}) {
  const model::ResnetArch a = model::BuildResnetArch(model, in_c, 10, image);
  std::vector<const model::ArchConv*> all{&a.stem_conv};
  for (const model::ArchBlock& b : a.blocks) {
    for (int i = 0; i < b.nconv; ++i) all.push_back(&b.conv[i]);
    if (b.proj) all.push_back(&b.pconv);
  }
  std::vector<Case> out;
  auto key = [](const Conv2dShape& s) {
    return std::vector<int>{s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad};
  };
  std::set<std::vector<int>> seen;
  for (const model::ArchConv* cv : all) {
    if (!only.empty() && !only.count(cv->name)) continue;
    if (!seen.insert(key(cv->shape)).second) continue;
    Case c{model + "_" + cv->name, cv->shape};
    c.s.n = n;
    out.push_back(c);
  }
  return out;
}

std::vector<Case> AllCases() {
  std::vector<Case> v = ArchConvs("resnet20", 1, 28, 8);  // 8 distinct shapes
  for (const Case& c : ArchConvs("resnet50", 3, 56, 2,
                                 {"conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3",
                                  "layer1.0.downsample.0", "layer2.0.conv2",
                                  "layer2.0.downsample.0", "layer3.0.conv1", "layer4.0.conv2"}))
    v.push_back(c);
  v.push_back({"odd_3x3_s2_p0", {3, 5, 9, 7, 6, 3, 3, 2, 0}});
  v.push_back({"odd_7x7_s1_p1", {2, 4, 11, 10, 8, 7, 7, 1, 1}});
  return v;
}

using Err = testing::RelError;
using testing::CompareRel;

#define EXPECT_CLOSE(got, ref, what)                                                     \
  do {                                                                                   \
    const Err e = CompareRel(got, ref);                                                     \
    std::printf("  %-5s rel_l2 %.2e  max_abs/max|ref| %.2e\n", what, e.rel_l2,           \
                e.max_abs_rel);                                                          \
    EXPECT_LE(e.rel_l2, kRelL2) << what;                                                 \
    EXPECT_LE(e.max_abs_rel, kMaxAbs) << what;                                           \
  } while (0)

class DnnlConvParity : public ::testing::TestWithParam<Case> {};

TEST_P(DnnlConvParity, ForwardAndBothGradientsMatchIm2colReference) {
  const Conv2dShape s = GetParam().s;
  std::mt19937_64 rng(12345);
  const Vec x = testing::RandomUniform(s.in_size(), rng), w = testing::RandomUniform(s.weight_size(), rng),
            dy = testing::RandomUniform(s.out_size(), rng), dx0 = testing::RandomUniform(s.in_size(), rng);
  Vec ws(cpu::Conv2dWorkspaceSize(s));

  Vec y_ref(s.out_size()), dx_ref(s.in_size()), dxa_ref = dx0, dw_ref(s.weight_size());
  cpu::Conv2dForward(s, x.data(), w.data(), y_ref.data(), ws.data());
  cpu::Conv2dBackward(s, x.data(), w.data(), dy.data(), dx_ref.data(), false, dw_ref.data(),
                      ws.data());
  cpu::Conv2dBackward<float>(s, nullptr, w.data(), dy.data(), dxa_ref.data(), true, nullptr,
                             ws.data());

  Conv2dDnnl conv(1);
  Vec y(s.out_size(), 7.f), dx(s.in_size(), 7.f), dxa = dx0, dw(s.weight_size(), 7.f);
  conv.Forward(s, x.data(), w.data(), y.data());
  conv.Backward(s, x.data(), w.data(), dy.data(), dx.data(), false, dw.data());
  conv.Backward(s, nullptr, w.data(), dy.data(), dxa.data(), true, nullptr);
  std::printf("  %s\n", conv.ImplInfo(s).c_str());
  EXPECT_CLOSE(y, y_ref, "y");
  EXPECT_CLOSE(dx, dx_ref, "dx");
  EXPECT_CLOSE(dxa, dxa_ref, "dx+=");
  EXPECT_CLOSE(dw, dw_ref, "dw");
}

INSTANTIATE_TEST_SUITE_P(Shapes, DnnlConvParity, ::testing::ValuesIn(AllCases()),
                         [](const auto& info) { return Name(info.param); });

// At the training batch (128) the weight gradient sums 128 * 28 * 28 = 100,352
// products per element; oneDNN's single-thread kernel sums them sequentially, so
// its error grows with the batch. Checked against a double reference, and
// against the fp32 im2col kernel, on the resnet20 shapes with the longest sums.
TEST(DnnlConv, WeightGradientAtBatch128StaysWithin1e5OfTheReferences) {
  for (Case c : ArchConvs("resnet20", 1, 28, 128, {"conv1", "layer1.0.conv1", "layer2.0.conv1"})) {
    const Conv2dShape s = c.s;
    std::mt19937_64 rng(5);
    const Vec x = testing::RandomUniform(s.in_size(), rng), dy = testing::RandomUniform(s.out_size(), rng);
    Vec ws(cpu::Conv2dWorkspaceSize(s)), dw_ref(s.weight_size()), dw(s.weight_size());
    std::vector<double> xd(x.begin(), x.end()), dyd(dy.begin(), dy.end()),
        wsd(cpu::Conv2dWorkspaceSize(s)), dw_d(s.weight_size());
    cpu::Conv2dBackward<double>(s, xd.data(), nullptr, dyd.data(), nullptr, false, dw_d.data(),
                                wsd.data());
    cpu::Conv2dBackward<float>(s, x.data(), nullptr, dy.data(), nullptr, false, dw_ref.data(),
                               ws.data());
    Conv2dDnnl conv(1);
    conv.Backward(s, x.data(), nullptr, dy.data(), nullptr, false, dw.data());
    const Vec exact(dw_d.begin(), dw_d.end());  // double rounded once to fp32
    std::printf(" %s\n", c.name.c_str());
    const Err vs_double = CompareRel(dw, exact), im2col_vs_double = CompareRel(dw_ref, exact),
              vs_im2col = CompareRel(dw, dw_ref);
    std::printf("  dw vs double: onednn rel_l2 %.2e max %.2e, im2col rel_l2 %.2e max %.2e; "
                "onednn vs im2col rel_l2 %.2e max %.2e\n",
                vs_double.rel_l2, vs_double.max_abs_rel, im2col_vs_double.rel_l2,
                im2col_vs_double.max_abs_rel, vs_im2col.rel_l2, vs_im2col.max_abs_rel);
    EXPECT_LE(vs_double.rel_l2, kRelL2) << c.name;
    EXPECT_LE(vs_im2col.rel_l2, kRelL2) << c.name;
  }
}

TEST(DnnlConv, SecondCallWithTheSameShapeCreatesNoPrimitive) {
  const Conv2dShape s{4, 16, 14, 14, 32, 3, 3, 2, 1};
  std::mt19937_64 rng(7);
  const Vec x = testing::RandomUniform(s.in_size(), rng), w = testing::RandomUniform(s.weight_size(), rng),
            dy = testing::RandomUniform(s.out_size(), rng);
  Vec y(s.out_size()), dx(s.in_size()), dw(s.weight_size());
  Conv2dDnnl conv(1);
  auto step = [&] {
    conv.Forward(s, x.data(), w.data(), y.data());
    conv.Backward(s, x.data(), w.data(), dy.data(), dx.data(), false, dw.data());
    conv.Backward(s, x.data(), w.data(), dy.data(), dx.data(), true, dw.data());
  };
  step();
  const size_t first = conv.primitives_created();
  EXPECT_GE(first, 6u);  // fwd, bwd data, bwd weights: a descriptor and a primitive each
  const Vec y1 = y;
  step();
  step();
  EXPECT_EQ(conv.primitives_created(), first);
  EXPECT_EQ(y, y1);  // and the cached primitives compute the same thing again

  Conv2dShape other = s;
  other.n = 2;  // a new shape creates its own
  Vec y2(other.out_size());
  conv.Forward(other, x.data(), w.data(), y2.data());
  EXPECT_GT(conv.primitives_created(), first);
}

// Two resnet20 convs (stem 1->16, then 16->16) chained through oneDNN's layout,
// converted to NCHW only at the edges, forward and backward: the same numbers
// as the NCHW API (the same primitives run; only the edge reorders differ).
TEST(DnnlConv, TwoConvsChainedInBlockedLayoutEqualTheNchwPath) {
  const Conv2dShape a{8, 1, 28, 28, 16, 3, 3, 1, 1}, b{8, 16, 28, 28, 16, 3, 3, 1, 1};
  std::mt19937_64 rng(99);
  const Vec x = testing::RandomUniform(a.in_size(), rng), wa = testing::RandomUniform(a.weight_size(), rng),
            wb = testing::RandomUniform(b.weight_size(), rng), dy = testing::RandomUniform(b.out_size(), rng);
  Conv2dDnnl conv(1);

  // NCHW path.
  Vec y1(a.out_size()), y2(b.out_size()), d1(a.out_size()), dx(a.in_size());
  Vec dwa(a.weight_size()), dwb(b.weight_size());
  conv.Forward(a, x.data(), wa.data(), y1.data());
  conv.Forward(b, y1.data(), wb.data(), y2.data());
  conv.Backward(b, y1.data(), wb.data(), dy.data(), d1.data(), false, dwb.data());
  conv.Backward(a, x.data(), wa.data(), d1.data(), dx.data(), false, dwa.data());

  // Blocked path: x and dy converted in, y2 and dx converted out.
  const Desc x_plain = Nchw(a.n, a.c, a.h, a.w), y_plain = Nchw(b.n, b.k, b.h, b.w);
  const Desc xd = conv.SrcDesc(a), y1d = conv.DstDesc(a), y2d = conv.DstDesc(b);
  std::printf("  layouts: x %s, y1 %s, y2 %s (blocked = not nchw)\n",
              xd == x_plain ? "nchw" : "blocked", y1d == Nchw(a.n, a.k, a.h, a.w) ? "nchw" : "blocked",
              y2d == y_plain ? "nchw" : "blocked");
  Vec xb(xd.get_size() / 4), y1b(y1d.get_size() / 4), y2b(y2d.get_size() / 4);
  Vec dyb(y2d.get_size() / 4), d1b(y1d.get_size() / 4), dxb(xd.get_size() / 4);
  Vec bwa(a.weight_size()), bwb(b.weight_size()), y2_out(b.out_size()), dx_out(a.in_size());
  conv.Reorder(x_plain, x.data(), xd, xb.data());
  conv.ForwardBlocked(a, xd, xb.data(), wa.data(), y1b.data());
  conv.ForwardBlocked(b, y1d, y1b.data(), wb.data(), y2b.data());
  conv.Reorder(y2d, y2b.data(), y_plain, y2_out.data());
  conv.Reorder(y_plain, dy.data(), y2d, dyb.data());
  conv.BackwardBlocked(b, y1d, y1b.data(), wb.data(), y2d, dyb.data(), d1b.data(), false,
                       bwb.data());
  conv.BackwardBlocked(a, xd, xb.data(), wa.data(), y1d, d1b.data(), dxb.data(),
                       false, bwa.data());
  conv.Reorder(xd, dxb.data(), x_plain, dx_out.data());

  EXPECT_EQ(y2_out, y2);
  EXPECT_EQ(dx_out, dx);
  EXPECT_EQ(bwb, dwb);
  EXPECT_EQ(bwa, dwa);

  // And the chain agrees with the im2col reference end to end.
  Vec ws(std::max(cpu::Conv2dWorkspaceSize(a), cpu::Conv2dWorkspaceSize(b)));
  Vec r1(a.out_size()), r2(b.out_size());
  cpu::Conv2dForward(a, x.data(), wa.data(), r1.data(), ws.data());
  cpu::Conv2dForward(b, r1.data(), wb.data(), r2.data(), ws.data());
  EXPECT_CLOSE(y2_out, r2, "y2");
}

TEST(DnnlConv, AccumulateInBlockedLayoutAddsToDx) {
  const Conv2dShape s{4, 16, 14, 14, 16, 3, 3, 1, 1};
  std::mt19937_64 rng(3);
  const Vec x = testing::RandomUniform(s.in_size(), rng), w = testing::RandomUniform(s.weight_size(), rng),
            dy = testing::RandomUniform(s.out_size(), rng);
  Conv2dDnnl conv(1);
  const Desc xd = conv.SrcDesc(s), yd = conv.DstDesc(s);
  Vec dyb(yd.get_size() / 4), once(xd.get_size() / 4, 0.f), twice(xd.get_size() / 4, 0.f);
  conv.Reorder(Nchw(s.n, s.k, s.h, s.w), dy.data(), yd, dyb.data());
  conv.BackwardBlocked(s, xd, x.data(), w.data(), yd, dyb.data(), once.data(), false, nullptr);
  conv.BackwardBlocked(s, xd, x.data(), w.data(), yd, dyb.data(), twice.data(), false, nullptr);
  conv.BackwardBlocked(s, xd, x.data(), w.data(), yd, dyb.data(), twice.data(), true, nullptr);
  for (float& v : once) v *= 2;
  EXPECT_EQ(twice, once);  // d + d == 2d exactly in fp32
}

TEST(DnnlConv, CallsRunOnTheObjectsThreadCountAndRestoreTheCallers) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(before + 1);
  Conv2dDnnl conv(1);
  EXPECT_EQ(conv.threads(), 1);
  const Conv2dShape s{2, 4, 6, 6, 4, 3, 3, 1, 1};
  Vec x(s.in_size(), 1.f), w(s.weight_size(), 1.f), y(s.out_size());
  conv.Forward(s, x.data(), w.data(), y.data());
  EXPECT_EQ(omp_get_max_threads(), before + 1);
  EXPECT_FLOAT_EQ(y[s.out_w() + 1], 4.f * 9.f);  // an interior pixel sums 4 channels x 3x3 ones
  omp_set_num_threads(before);
}

TEST(DnnlConv, RejectsBadShapesAndThreadCounts) {
  Conv2dDnnl conv(1);
  Conv2dShape s{2, 4, 6, 6, 4, 3, 3, 1, 1};
  s.stride = 0;
  Vec buf(1024);
  try {
    conv.Forward(s, buf.data(), buf.data(), buf.data());
    FAIL() << "stride 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("stride"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Conv2dDnnl(0), Error);
}

}  // namespace
}  // namespace dtrain::onednn
