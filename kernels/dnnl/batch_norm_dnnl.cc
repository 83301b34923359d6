#include "kernels/dnnl/batch_norm_dnnl.h"

#include <string>
#include <vector>

#include "common/error.h"

namespace dtrain::onednn {
namespace {

using Fwd = dnnl::batch_normalization_forward;
using Bwd = dnnl::batch_normalization_backward;
using Flags = dnnl::normalization_flags;

Flags MakeFlags(bool relu, bool global_stats) {
  Flags f = Flags::use_scale | Flags::use_shift;
  if (relu) f = f | Flags::fuse_norm_relu;
  if (global_stats) f = f | Flags::use_global_stats;
  return f;
}

// One (desc, eps, relu)'s primitives; inference and backward made on first use.
struct BnEntry {
  Desc d;
  float eps = 0;
  bool relu = false;
  Fwd::primitive_desc train_pd;
  Fwd train;
  bool have_infer = false, have_bwd = false;
  Fwd::primitive_desc infer_pd;
  Fwd infer;
  Bwd::primitive_desc bwd_pd;
  Bwd bwd;
};

Desc Channels(const Desc& d) {
  return Desc({d.dims()[1]}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
}

}  // namespace

struct BatchNormDnnl::Impl {
  std::vector<BnEntry> entries;
  size_t created = 0;
  Buffer scratch;

  BnEntry& Entry(const Desc& d, float eps, bool relu) {
    for (BnEntry& e : entries)
      if (e.relu == relu && e.eps == eps && e.d == d) return e;
    try {
      BnEntry e;
      e.d = d;
      e.eps = eps;
      e.relu = relu;
      e.train_pd = Fwd::primitive_desc(
          Fwd::desc(dnnl::prop_kind::forward_training, d, eps, MakeFlags(relu, false)),
          ScratchpadAttr(), Engine());
      e.train = Fwd(e.train_pd);
      created += 2;
      entries.push_back(std::move(e));
      return entries.back();
    } catch (const dnnl::error& err) {
      Fail(ErrorCode::kInternal,
           std::string("batch_norm_dnnl: oneDNN has no fp32 batch norm for this layout: ") +
               err.what());
    }
  }
  BnEntry& Infer(const Desc& d, float eps, bool relu) {
    BnEntry& e = Entry(d, eps, relu);
    if (!e.have_infer) {
      e.infer_pd = Fwd::primitive_desc(
          Fwd::desc(dnnl::prop_kind::forward_inference, d, eps, MakeFlags(relu, true)),
          ScratchpadAttr(), Engine());
      e.infer = Fwd(e.infer_pd);
      e.have_infer = true;
      created += 2;
    }
    return e;
  }
  BnEntry& Back(const Desc& d, float eps, bool relu) {
    BnEntry& e = Entry(d, eps, relu);
    if (!e.have_bwd) {
      e.bwd_pd = Bwd::primitive_desc(
          Bwd::desc(dnnl::prop_kind::backward, d, d, eps, MakeFlags(relu, false)),
          ScratchpadAttr(), Engine(), e.train_pd);
      e.bwd = Bwd(e.bwd_pd);
      e.have_bwd = true;
      created += 2;
    }
    return e;
  }
};

BatchNormDnnl::BatchNormDnnl(int threads)
    : threads_(CheckedThreads("batch_norm_dnnl", threads)), impl_(std::make_unique<Impl>()) {}

BatchNormDnnl::~BatchNormDnnl() = default;

size_t BatchNormDnnl::WorkspaceBytes(const Desc& d, float eps, bool relu) {
  ThreadScope ts(threads_);
  return relu ? impl_->Entry(d, eps, relu).train_pd.workspace_desc().get_size() : 0;
}

void BatchNormDnnl::ForwardTraining(const Desc& d, float eps, bool relu, const float* x,
                                    const float* gamma, const float* beta, float* y, float* mean,
                                    float* var, uint8_t* ws) {
  ThreadScope ts(threads_);
  BnEntry& e = impl_->Entry(d, eps, relu);
  const Desc c = Channels(d);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, Mem(d, x)},         {DNNL_ARG_DST, Mem(d, y)},
      {DNNL_ARG_SCALE, Mem(c, gamma)},   {DNNL_ARG_SHIFT, Mem(c, beta)},
      {DNNL_ARG_MEAN, Mem(c, mean)},     {DNNL_ARG_VARIANCE, Mem(c, var)}};
  if (relu) args.emplace(DNNL_ARG_WORKSPACE, Mem(e.train_pd.workspace_desc(), ws));
  Execute(e.train, std::move(args), e.train_pd.scratchpad_desc(), impl_->scratch);
}

void BatchNormDnnl::ForwardInference(const Desc& d, float eps, bool relu, const float* x,
                                     const float* gamma, const float* beta, const float* mean,
                                     const float* var, float* y) {
  ThreadScope ts(threads_);
  BnEntry& e = impl_->Infer(d, eps, relu);
  const Desc c = Channels(d);
  Execute(e.infer,
          {{DNNL_ARG_SRC, Mem(d, x)},
           {DNNL_ARG_DST, Mem(d, y)},
           {DNNL_ARG_SCALE, Mem(c, gamma)},
           {DNNL_ARG_SHIFT, Mem(c, beta)},
           {DNNL_ARG_MEAN, Mem(c, mean)},
           {DNNL_ARG_VARIANCE, Mem(c, var)}},
          e.infer_pd.scratchpad_desc(), impl_->scratch);
}

void BatchNormDnnl::Backward(const Desc& d, float eps, bool relu, const float* x, const float* dy,
                             const float* gamma, const float* beta, const float* mean, const float* var,
                             const uint8_t* ws, float* dx, float* dgamma, float* dbeta) {
  ThreadScope ts(threads_);
  BnEntry& e = impl_->Back(d, eps, relu);
  const Desc c = Channels(d);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, Mem(d, x)},           {DNNL_ARG_DIFF_DST, Mem(d, dy)},
      {DNNL_ARG_SCALE, Mem(c, gamma)},     {DNNL_ARG_SHIFT, Mem(c, beta)},
      {DNNL_ARG_MEAN, Mem(c, mean)},
      {DNNL_ARG_VARIANCE, Mem(c, var)},    {DNNL_ARG_DIFF_SRC, Mem(d, dx)},
      {DNNL_ARG_DIFF_SCALE, Mem(c, dgamma)}, {DNNL_ARG_DIFF_SHIFT, Mem(c, dbeta)}};
  if (relu) args.emplace(DNNL_ARG_WORKSPACE, Mem(e.train_pd.workspace_desc(), ws));
  Execute(e.bwd, std::move(args), e.bwd_pd.scratchpad_desc(), impl_->scratch);
}

std::string BatchNormDnnl::ImplInfo(const Desc& d, float eps, bool relu) {
  ThreadScope ts(threads_);
  impl_->Infer(d, eps, relu);
  BnEntry& e = impl_->Back(d, eps, relu);
  return std::string("train=") + e.train_pd.impl_info_str() +
         " infer=" + e.infer_pd.impl_info_str() + " bwd=" + e.bwd_pd.impl_info_str();
}

size_t BatchNormDnnl::primitives_created() const { return impl_->created; }

}  // namespace dtrain::onednn
