#include "kernels/dnnl/conv2d_dnnl.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/error.h"

namespace dtrain::onednn {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Conv = dnnl::convolution_forward;
using ConvBwdData = dnnl::convolution_backward_data;
using ConvBwdWeights = dnnl::convolution_backward_weights;

std::string ShapeName(const Conv2dShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " " + std::to_string(s.h) +
         "x" + std::to_string(s.w) + " k=" + std::to_string(s.k) + " " + std::to_string(s.r) +
         "x" + std::to_string(s.s) + "/" + std::to_string(s.stride) + " pad " +
         std::to_string(s.pad);
}

}  // namespace

// One shape's primitives. Backward ones are made on the first Backward call.
struct ConvEntry {
  Desc x_plain, y_plain, w_plain;
  Conv::primitive_desc fwd_pd;
  Conv fwd;
  bool have_bwd = false;
  ConvBwdData::primitive_desc bwd_d_pd;
  ConvBwdData bwd_d;
  ConvBwdWeights::primitive_desc bwd_w_pd;
  ConvBwdWeights bwd_w;
};

struct ReorderEntry {
  Desc from, to;
  bool accumulate;
  dnnl::reorder prim;
};

struct Conv2dDnnl::Impl {
  std::map<std::array<int, 9>, ConvEntry> convs;
  std::vector<ReorderEntry> reorders;
  size_t created = 0;
  // Staging for operands whose layout differs from the primitive's.
  Buffer src, wei, ddst, ddst_w, out, dwei, scratch;


  ConvEntry& Entry(const Conv2dShape& s, bool backward);
  dnnl::reorder& FindReorder(const Desc& from, const Desc& to, bool accumulate);
  void Reorder(const Desc& from, const float* src, const Desc& to, float* dst, bool acc);

  // p (layout have) as layout want: p itself, or a copy reordered into buf.
  const float* Prepare(const Desc& have, const float* p, const Desc& want, Buffer& buf) {
    if (have == want) return p;
    float* q = buf.Get(want.get_size());
    Reorder(have, p, want, q, false);
    return q;
  }
  // Where a primitive writing layout made should write for dst (layout want).
  float* Target(const Desc& made, const Desc& want, float* dst, bool acc, Buffer& buf) {
    return made == want && !acc ? dst : buf.Get(made.get_size());
  }
  void Finish(const Desc& made, float* t, const Desc& want, float* dst, bool acc) {
    if (t != dst) Reorder(made, t, want, dst, acc);
  }
  void Execute(dnnl::primitive& p, std::unordered_map<int, memory> args, const Desc& scratch_d) {
    onednn::Execute(p, std::move(args), scratch_d, scratch);
  }

  void Forward(const Conv2dShape& s, const Desc& xd, const float* x, const float* w,
               const Desc& yd, float* y);
  void Backward(const Conv2dShape& s, const Desc& xd, const float* x, const float* w,
                const Desc& dyd, const float* dy, const Desc* dxd, float* dx, bool acc,
                float* dw);
};

ConvEntry& Conv2dDnnl::Impl::Entry(const Conv2dShape& s, bool backward) {
  const std::array<int, 9> key{s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad};
  auto it = convs.find(key);
  try {
    if (it == convs.end()) {
      s.Check();
      ConvEntry e;
      e.x_plain = Nchw(s.n, s.c, s.h, s.w);
      e.y_plain = Nchw(s.n, s.k, s.out_h(), s.out_w());
      e.w_plain = Desc({s.k, s.c, s.r, s.s}, memory::data_type::f32, Tag::oihw);
      const Desc xa({s.n, s.c, s.h, s.w}, memory::data_type::f32, Tag::any);
      const Desc ya({s.n, s.k, s.out_h(), s.out_w()}, memory::data_type::f32, Tag::any);
      const Desc wa({s.k, s.c, s.r, s.s}, memory::data_type::f32, Tag::any);
      e.fwd_pd = Conv::primitive_desc(
          Conv::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, xa,
                     wa, ya, {s.stride, s.stride}, {s.pad, s.pad}, {s.pad, s.pad}),
          ScratchpadAttr(), Engine());
      e.fwd = Conv(e.fwd_pd);
      created += 2;
      it = convs.emplace(key, std::move(e)).first;
    }
    ConvEntry& e = it->second;
    if (backward && !e.have_bwd) {
      // Preferably a gradient keeps its tensor's layout (diff_src = src,
      // diff_dst = dst); where oneDNN has only its reference kernel for that,
      // layouts of its choice, then plain ones (its gemm path), with reorders.
      const Desc xa({s.n, s.c, s.h, s.w}, memory::data_type::f32, Tag::any);
      const Desc ya({s.n, s.k, s.out_h(), s.out_w()}, memory::data_type::f32, Tag::any);
      const Desc wa({s.k, s.c, s.r, s.s}, memory::data_type::f32, Tag::any);
      const memory::dims st{s.stride, s.stride}, pd{s.pad, s.pad};
      const std::pair<Desc, Desc> layouts[] = {
          {e.fwd_pd.src_desc(), e.fwd_pd.dst_desc()}, {xa, ya}, {e.x_plain, e.y_plain}};
      auto pick = [&](auto make) {
        decltype(make(xa, ya)) first;
        bool have = false;
        for (const auto& [xd, yd] : layouts) {
          try {
            auto p = make(xd, yd);
            ++created;
            if (std::string(p.impl_info_str()).rfind("ref", 0) != 0) return p;
            if (!have) first = p;
            have = true;
          } catch (const dnnl::error&) {
          }
        }
        if (!have) throw dnnl::error(dnnl_unimplemented, "no backward convolution");
        return first;
      };
      e.bwd_d_pd = pick([&](const Desc& xd, const Desc& yd) {
        return ConvBwdData::primitive_desc(
            ConvBwdData::desc(dnnl::algorithm::convolution_direct, xd, wa, yd, st, pd, pd),
            ScratchpadAttr(), Engine(), e.fwd_pd);
      });
      e.bwd_w_pd = pick([&](const Desc& xd, const Desc& yd) {
        return ConvBwdWeights::primitive_desc(
            ConvBwdWeights::desc(dnnl::algorithm::convolution_direct, xd, wa, yd, st, pd, pd),
            ScratchpadAttr(), Engine(), e.fwd_pd);
      });
      e.bwd_d = ConvBwdData(e.bwd_d_pd);
      e.bwd_w = ConvBwdWeights(e.bwd_w_pd);
      e.have_bwd = true;
      created += 2;
    }
    return e;
  } catch (const dnnl::error& err) {
    Fail(ErrorCode::kInternal, "conv2d_dnnl: oneDNN has no fp32 convolution for " +
                                   ShapeName(s) + ": " + err.what());
  }
}

dnnl::reorder& Conv2dDnnl::Impl::FindReorder(const Desc& from, const Desc& to, bool acc) {
  for (ReorderEntry& r : reorders)
    if (r.accumulate == acc && r.from == from && r.to == to) return r.prim;
  if (from.dims() != to.dims())
    Fail(ErrorCode::kInvalidArgument, "conv2d_dnnl: Reorder between different logical dims");
  dnnl::primitive_attr attr;
  if (acc) {
    dnnl::post_ops po;
    po.append_sum(1.f);
    attr.set_post_ops(po);
  }
  dnnl::reorder::primitive_desc pd(Engine(), from, Engine(), to, attr);
  reorders.push_back({from, to, acc, dnnl::reorder(pd)});
  created += 2;
  return reorders.back().prim;
}

void Conv2dDnnl::Impl::Reorder(const Desc& from, const float* src, const Desc& to, float* dst,
                               bool acc) {
  if (!acc && from == to) {
    if (src != dst) std::memcpy(dst, src, from.get_size());
    return;
  }
  memory a = Mem(from, src), b = Mem(to, dst);
  FindReorder(from, to, acc).execute(Stream(), a, b);
  Stream().wait();
}

void Conv2dDnnl::Impl::Forward(const Conv2dShape& s, const Desc& xd, const float* x,
                               const float* w, const Desc& yd, float* y) {
  ConvEntry& e = Entry(s, false);
  const Desc src_d = e.fwd_pd.src_desc(), wei_d = e.fwd_pd.weights_desc(),
             dst_d = e.fwd_pd.dst_desc();
  const float* xs = Prepare(xd, x, src_d, src);
  const float* ws = Prepare(e.w_plain, w, wei_d, wei);
  float* t = Target(dst_d, yd, y, false, out);
  Execute(e.fwd,
          {{DNNL_ARG_SRC, Mem(src_d, xs)}, {DNNL_ARG_WEIGHTS, Mem(wei_d, ws)},
           {DNNL_ARG_DST, Mem(dst_d, t)}},
          e.fwd_pd.scratchpad_desc());
  Finish(dst_d, t, yd, y, false);
}

void Conv2dDnnl::Impl::Backward(const Conv2dShape& s, const Desc& xd, const float* x,
                                const float* w, const Desc& dyd, const float* dy,
                                const Desc* dxd, float* dx, bool acc, float* dw) {
  if (!dx && !dw) return;
  ConvEntry& e = Entry(s, true);
  // dy once in bwd_d's layout (bwd_w's too, unless oneDNN chose differently).
  const Desc dy_d = e.bwd_d_pd.diff_dst_desc();
  const float* dy_s = Prepare(dyd, dy, dy_d, ddst);
  if (dw) {
    const Desc src_d = e.bwd_w_pd.src_desc(), ddst_d = e.bwd_w_pd.diff_dst_desc(),
               dwei_d = e.bwd_w_pd.diff_weights_desc();
    const float* xs = Prepare(xd, x, src_d, src);
    const float* dys = ddst_d == dy_d ? dy_s : Prepare(dyd, dy, ddst_d, ddst_w);
    float* t = Target(dwei_d, e.w_plain, dw, false, dwei);
    Execute(e.bwd_w,
            {{DNNL_ARG_SRC, Mem(src_d, xs)}, {DNNL_ARG_DIFF_DST, Mem(ddst_d, dys)},
             {DNNL_ARG_DIFF_WEIGHTS, Mem(dwei_d, t)}},
            e.bwd_w_pd.scratchpad_desc());
    Finish(dwei_d, t, e.w_plain, dw, false);
  }
  if (dx) {
    const Desc wei_d = e.bwd_d_pd.weights_desc(), dsrc_d = e.bwd_d_pd.diff_src_desc();
    const float* ws = Prepare(e.w_plain, w, wei_d, wei);
    float* t = Target(dsrc_d, *dxd, dx, acc, out);
    Execute(e.bwd_d,
            {{DNNL_ARG_DIFF_DST, Mem(dy_d, dy_s)}, {DNNL_ARG_WEIGHTS, Mem(wei_d, ws)},
             {DNNL_ARG_DIFF_SRC, Mem(dsrc_d, t)}},
            e.bwd_d_pd.scratchpad_desc());
    Finish(dsrc_d, t, *dxd, dx, acc);
  }
}

Conv2dDnnl::Conv2dDnnl(int threads)
    : threads_(CheckedThreads("conv2d_dnnl", threads)), impl_(std::make_unique<Impl>()) {}

Conv2dDnnl::~Conv2dDnnl() = default;

void Conv2dDnnl::Forward(const Conv2dShape& s, const float* x, const float* w, float* y) {
  ThreadScope ts(threads_);
  ConvEntry& e = impl_->Entry(s, false);
  impl_->Forward(s, e.x_plain, x, w, e.y_plain, y);
}

void Conv2dDnnl::Backward(const Conv2dShape& s, const float* x, const float* w,
                          const float* dy, float* dx, bool accumulate_dx, float* dw) {
  ThreadScope ts(threads_);
  ConvEntry& e = impl_->Entry(s, false);
  impl_->Backward(s, e.x_plain, x, w, e.y_plain, dy, &e.x_plain, dx, accumulate_dx, dw);
}

Desc Conv2dDnnl::SrcDesc(const Conv2dShape& s) {
  ThreadScope ts(threads_);
  return impl_->Entry(s, false).fwd_pd.src_desc();
}

Desc Conv2dDnnl::DstDesc(const Conv2dShape& s) {
  ThreadScope ts(threads_);
  return impl_->Entry(s, false).fwd_pd.dst_desc();
}

void Conv2dDnnl::ForwardBlocked(const Conv2dShape& s, const Desc& xd, const float* x,
                                const float* w, float* y) {
  ThreadScope ts(threads_);
  impl_->Forward(s, xd, x, w, impl_->Entry(s, false).fwd_pd.dst_desc(), y);
}

void Conv2dDnnl::BackwardBlocked(const Conv2dShape& s, const Desc& xd, const float* x,
                                 const float* w, const Desc& dyd, const float* dy, float* dx,
                                 bool accumulate_dx, float* dw) {
  ThreadScope ts(threads_);
  impl_->Backward(s, xd, x, w, dyd, dy, &xd, dx, accumulate_dx, dw);
}

void Conv2dDnnl::Reorder(const Desc& from, const float* src, const Desc& to, float* dst,
                         bool accumulate) {
  ThreadScope ts(threads_);
  try {
    impl_->Reorder(from, src, to, dst, accumulate);
  } catch (const dnnl::error& err) {
    Fail(ErrorCode::kInternal, std::string("conv2d_dnnl: reorder failed: ") + err.what());
  }
}

std::string Conv2dDnnl::ImplInfo(const Conv2dShape& s) {
  ThreadScope ts(threads_);
  ConvEntry& e = impl_->Entry(s, true);
  return std::string("fwd=") + e.fwd_pd.impl_info_str() + " bwd_d=" + e.bwd_d_pd.impl_info_str() +
         " bwd_w=" + e.bwd_w_pd.impl_info_str();
}

size_t Conv2dDnnl::primitives_created() const { return impl_->created; }

}  // namespace dtrain::onednn
