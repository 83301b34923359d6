#include "kernels/dnnl/pool_dnnl.h"

#include <string>
#include <vector>

#include "common/error.h"

namespace dtrain::onednn {
namespace {

using Fwd = dnnl::pooling_forward;
using Bwd = dnnl::pooling_backward;
using Tag = dnnl::memory::format_tag;

// One pooling (max 3x3/2 or global average) over one layout.
struct PoolEntry {
  Desc x;
  int window = 0, stride = 0, pad = 0;  // window 0: global average
  Fwd::primitive_desc train_pd, infer_pd;
  Fwd train, infer;
  bool have_bwd = false;
  Bwd::primitive_desc bwd_pd;
  Bwd bwd;
  Desc y_plain;  // global average: [n, c, 1, 1] plain
  dnnl::reorder to_plain, from_plain;
};

}  // namespace

struct PoolDnnl::Impl {
  std::vector<PoolEntry> entries;
  size_t created = 0;
  Buffer scratch, staging;

  PoolEntry& Entry(const Desc& xd, int window, int stride, int pad) {
    for (PoolEntry& e : entries)
      if (e.window == window && e.stride == stride && e.pad == pad && e.x == xd) return e;
    try {
      const auto dims = xd.dims();
      const bool global = window == 0;
      const dnnl::memory::dim oh = global ? 1 : (dims[2] + 2 * pad - window) / stride + 1;
      const dnnl::memory::dim ow = global ? 1 : (dims[3] + 2 * pad - window) / stride + 1;
      const Desc ya({dims[0], dims[1], oh, ow}, dnnl::memory::data_type::f32, Tag::any);
      const dnnl::memory::dims st = global ? dnnl::memory::dims{1, 1}
                                           : dnnl::memory::dims{stride, stride};
      const dnnl::memory::dims k = global ? dnnl::memory::dims{dims[2], dims[3]}
                                          : dnnl::memory::dims{window, window};
      const dnnl::memory::dims p{pad, pad};
      const auto alg = global ? dnnl::algorithm::pooling_avg_exclude_padding
                              : dnnl::algorithm::pooling_max;
      PoolEntry e;
      e.x = xd;
      e.window = window;
      e.stride = stride;
      e.pad = pad;
      e.train_pd = Fwd::primitive_desc(
          Fwd::desc(dnnl::prop_kind::forward_training, alg, xd, ya, st, k, p, p),
          ScratchpadAttr(), Engine());
      e.train = Fwd(e.train_pd);
      // Inference writes the same dst layout as training (the next layer expects it).
      e.infer_pd = Fwd::primitive_desc(Fwd::desc(dnnl::prop_kind::forward_inference, alg, xd,
                                                 e.train_pd.dst_desc(), st, k, p, p),
                                       ScratchpadAttr(), Engine());
      e.infer = Fwd(e.infer_pd);
      e.bwd_pd = Bwd::primitive_desc(Bwd::desc(alg, xd, e.train_pd.dst_desc(), st, k, p, p),
                                     ScratchpadAttr(), Engine(), e.train_pd);
      e.bwd = Bwd(e.bwd_pd);
      created += 6;
      if (global) {
        e.y_plain = Nchw(int(dims[0]), int(dims[1]), 1, 1);
        e.to_plain = dnnl::reorder(
            dnnl::reorder::primitive_desc(Engine(), e.train_pd.dst_desc(), Engine(), e.y_plain));
        e.from_plain = dnnl::reorder(dnnl::reorder::primitive_desc(
            Engine(), e.y_plain, Engine(), e.bwd_pd.diff_dst_desc()));
        created += 4;
      }
      entries.push_back(std::move(e));
      return entries.back();
    } catch (const dnnl::error& err) {
      Fail(ErrorCode::kInternal, std::string("pool_dnnl: oneDNN has no fp32 pooling for this "
                                             "layout and shape: ") +
                                     err.what());
    }
  }
};

PoolDnnl::PoolDnnl(int threads)
    : threads_(CheckedThreads("pool_dnnl", threads)), impl_(std::make_unique<Impl>()) {}

PoolDnnl::~PoolDnnl() = default;

Desc PoolDnnl::MaxDstDesc(const Desc& xd, const cpu::MaxPoolShape& s) {
  ThreadScope ts(threads_);
  return impl_->Entry(xd, s.window, s.stride, s.pad).train_pd.dst_desc();
}

size_t PoolDnnl::MaxWorkspaceBytes(const Desc& xd, const cpu::MaxPoolShape& s) {
  ThreadScope ts(threads_);
  return impl_->Entry(xd, s.window, s.stride, s.pad).train_pd.workspace_desc().get_size();
}

void PoolDnnl::MaxForward(const Desc& xd, const cpu::MaxPoolShape& s, const float* x, float* y,
                          uint8_t* ws) {
  s.Check();
  ThreadScope ts(threads_);
  PoolEntry& e = impl_->Entry(xd, s.window, s.stride, s.pad);
  if (ws) {
    Execute(e.train,
            {{DNNL_ARG_SRC, Mem(xd, x)},
             {DNNL_ARG_DST, Mem(e.train_pd.dst_desc(), y)},
             {DNNL_ARG_WORKSPACE, Mem(e.train_pd.workspace_desc(), ws)}},
            e.train_pd.scratchpad_desc(), impl_->scratch);
  } else {
    Execute(e.infer, {{DNNL_ARG_SRC, Mem(xd, x)}, {DNNL_ARG_DST, Mem(e.infer_pd.dst_desc(), y)}},
            e.infer_pd.scratchpad_desc(), impl_->scratch);
  }
}

void PoolDnnl::MaxBackward(const Desc& xd, const cpu::MaxPoolShape& s, const float* dy,
                           const uint8_t* ws, float* dx) {
  s.Check();
  ThreadScope ts(threads_);
  PoolEntry& e = impl_->Entry(xd, s.window, s.stride, s.pad);
  Execute(e.bwd,
          {{DNNL_ARG_DIFF_DST, Mem(e.bwd_pd.diff_dst_desc(), dy)},
           {DNNL_ARG_WORKSPACE, Mem(e.train_pd.workspace_desc(), ws)},
           {DNNL_ARG_DIFF_SRC, Mem(xd, dx)}},
          e.bwd_pd.scratchpad_desc(), impl_->scratch);
}

void PoolDnnl::GlobalAvgForward(const Desc& xd, const float* x, float* y) {
  ThreadScope ts(threads_);
  PoolEntry& e = impl_->Entry(xd, 0, 1, 0);
  const Desc yd = e.infer_pd.dst_desc();
  float* t = impl_->staging.Get(yd.get_size());
  Execute(e.infer, {{DNNL_ARG_SRC, Mem(xd, x)}, {DNNL_ARG_DST, Mem(yd, t)}},
          e.infer_pd.scratchpad_desc(), impl_->scratch);
  dnnl::memory from = Mem(yd, t), to = Mem(e.y_plain, y);
  e.to_plain.execute(Stream(), from, to);
  Stream().wait();
}

void PoolDnnl::GlobalAvgBackward(const Desc& xd, const float* dy, float* dx) {
  ThreadScope ts(threads_);
  PoolEntry& e = impl_->Entry(xd, 0, 1, 0);
  const Desc dyd = e.bwd_pd.diff_dst_desc();
  float* t = impl_->staging.Get(dyd.get_size());
  dnnl::memory from = Mem(e.y_plain, dy), to = Mem(dyd, t);
  e.from_plain.execute(Stream(), from, to);
  Stream().wait();
  Execute(e.bwd, {{DNNL_ARG_DIFF_DST, Mem(dyd, t)}, {DNNL_ARG_DIFF_SRC, Mem(xd, dx)}},
          e.bwd_pd.scratchpad_desc(), impl_->scratch);
}

size_t PoolDnnl::primitives_created() const { return impl_->created; }

}  // namespace dtrain::onednn
