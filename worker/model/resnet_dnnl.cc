#include "worker/model/resnet_dnnl.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "common/error.h"

namespace dtrain::model {

ResnetDnnl::ResnetDnnl(Model<float>& m, int threads)
    : m_(m), conv_(threads), bn_(threads), elt_(threads), pool_(threads) {
  bn_state_.resize(m.profile_.size());
  auto add = [&](const M::Bn& bn) {
    bn_state_[bn.prof].mean.assign(bn.c, 0.f);
    bn_state_[bn.prof].var.assign(bn.c, 0.f);
  };
  add(m.stem_bn_);
  for (const M::Block& b : m.blocks_) {
    for (int i = 0; i < b.nconv; ++i) add(b.bn[i]);
    if (b.proj) add(b.pbn);
  }
  acts_.resize(m.blocks_.size());
}

float* ResnetDnnl::Grow(Buffer& b, const Desc& d) {
  max_bytes_ = std::max(max_bytes_, d.get_size());
  return b.Get(d.get_size());
}

float* ResnetDnnl::Conv(M::Conv& cv, const Desc& xd, const float* x, int n, Buffer& y,
                        Desc* yd) {
  m_.Tic();
  cv.shape.n = n;
  *yd = conv_.DstDesc(cv.shape);
  float* out = Grow(y, *yd);
  conv_.ForwardBlocked(cv.shape, xd, x, m_.params_.data() + m_.tensors_[cv.tensor].offset, out);
  m_.Toc(cv.prof, false);
  return out;
}

void ResnetDnnl::BnForward(M::Bn& bn, const Desc& d, const float* x, float* y, bool training,
                           bool relu) {
  m_.Tic();
  const float eps = float(m_.opt_.bn_epsilon);
  const float* gamma = m_.params_.data() + m_.tensors_[bn.tensor].offset;
  const float* beta = m_.params_.data() + m_.tensors_[bn.tensor + 1].offset;
  float* rmean = m_.buffers_.data() + bn.running;
  float* rvar = rmean + bn.c;
  BnState& st = bn_state_[bn.prof];
  if (training) {
    const double count = double(d.dims()[0]) * bn.hw;
    if (count < 2)
      Fail(ErrorCode::kInvalidArgument,
           "batch_norm: training needs more than one value per channel");
    uint8_t* ws =
        relu ? reinterpret_cast<uint8_t*>(st.ws.Get(bn_.WorkspaceBytes(d, eps, true))) : nullptr;
    bn_.ForwardTraining(d, eps, relu, x, gamma, beta, y, st.mean.data(), st.var.data(), ws);
    // Running statistics as the reference updates them (unbiased variance).
    const double mom = m_.opt_.bn_momentum;
    for (int c = 0; c < bn.c; ++c) {
      rmean[c] = float(mom * rmean[c] + (1 - mom) * double(st.mean[c]));
      rvar[c] = float(mom * rvar[c] + (1 - mom) * double(st.var[c]) * count / (count - 1));
    }
  } else {
    bn_.ForwardInference(d, eps, relu, x, gamma, beta, rmean, rvar, y);
  }
  m_.Toc(bn.prof, false);
}

void ResnetDnnl::BnBackward(M::Bn& bn, const Desc& d, const float* x, const float* g, float* dx,
                            bool relu, const std::function<void(int)>& on_ready) {
  m_.Tic();
  const size_t g_off = m_.tensors_[bn.tensor].offset, b_off = m_.tensors_[bn.tensor + 1].offset;
  BnState& st = bn_state_[bn.prof];
  bn_.Backward(d, float(m_.opt_.bn_epsilon), relu, x, g, m_.params_.data() + g_off,
               m_.params_.data() + b_off, st.mean.data(), st.var.data(),
               relu ? reinterpret_cast<const uint8_t*>(st.ws.data()) : nullptr, dx,
               m_.grads_.data() + g_off, m_.grads_.data() + b_off);
  m_.Toc(bn.prof, true);
  if (on_ready) {
    on_ready(bn.tensor + 1);
    on_ready(bn.tensor);
  }
}

void ResnetDnnl::ConvBackward(M::Conv& cv, const Desc& xd, const float* x, const Desc& dyd,
                              const float* dy, float* dx, bool accumulate, int n,
                              const std::function<void(int)>& on_ready) {
  m_.Tic();
  cv.shape.n = n;
  const size_t off = m_.tensors_[cv.tensor].offset;
  conv_.BackwardBlocked(cv.shape, xd, x, m_.params_.data() + off, dyd, dy, dx, accumulate,
                        m_.grads_.data() + off);
  m_.Toc(cv.prof, true);
  if (on_ready) on_ready(cv.tensor);
}

void ResnetDnnl::Forward(const float* images, int n, bool training) {
  max_bytes_ = 0;
  image_d_ = onednn::Nchw(n, m_.opt_.in_channels, m_.opt_.image_size, m_.opt_.image_size);
  Conv(m_.stem_conv_, image_d_, images, n, stem_cout_, &stem_d_);
  BnForward(m_.stem_bn_, stem_d_, stem_cout_.data(), Grow(stem_act_, stem_d_), training, true);
  const float* cur = stem_act_.data();
  Desc curd = stem_d_;
  if (m_.stem_pool_) {
    m_.Tic();
    const cpu::MaxPoolShape ps{n, m_.stem_c_, m_.stem_hw_, m_.stem_hw_, 3, 2, 1};
    pool_d_ = pool_.MaxDstDesc(stem_d_, ps);
    uint8_t* ws = training ? reinterpret_cast<uint8_t*>(
                                 pool_ws_.Get(pool_.MaxWorkspaceBytes(stem_d_, ps)))
                           : nullptr;
    pool_.MaxForward(stem_d_, ps, cur, Grow(pool_out_, pool_d_), ws);
    cur = pool_out_.data();
    curd = pool_d_;
    m_.Toc(m_.stem_prof_pool_, false);
  }
  for (size_t bi = 0; bi < m_.blocks_.size(); ++bi) {
    M::Block& b = m_.blocks_[bi];
    BlockActs& A = acts_[bi];
    const float* t = cur;
    Desc td = curd;
    for (int i = 0; i < b.nconv; ++i) {
      const float* c = Conv(b.conv[i], td, t, n, A.cout[i], &A.cd[i]);
      const bool last = i == b.nconv - 1;
      float* y = Grow(last ? A.out : A.act[i], A.cd[i]);
      BnForward(b.bn[i], A.cd[i], c, y, training, !last);
      t = y;
      td = A.cd[i];
    }
    const float* sc = cur;
    Desc scd = curd;
    if (b.proj) {
      const float* p = Conv(b.pconv, curd, cur, n, A.pout, &A.pd);
      float* q = Grow(A.pbn_out, A.pd);
      BnForward(b.pbn, A.pd, p, q, training, false);
      sc = q;
      scd = A.pd;
    } else if (scd != td) {
      // Backward hands the identity shortcut the output's gradient as the input's.
      Fail(ErrorCode::kInternal, "resnet_dnnl: block " + std::to_string(bi) +
                                     ": oneDNN chose different layouts for its input and output");
    }
    m_.Tic();
    elt_.AddRelu(td, A.out.data(), scd, sc, A.out.data());
    m_.Toc(b.prof_add, false);
    cur = A.out.data();
    curd = td;
  }
  m_.Tic();
  pool_.GlobalAvgForward(curd, cur, m_.feat_.data());
  m_.Toc(m_.prof_head_, false);
}

void ResnetDnnl::Backward(int n, const float* images, const std::function<void(int)>& on_ready) {
  for (Buffer& g : grad_) g.Get(max_bytes_);
  float* a = grad_[0].data();  // dL/d(current activation)
  float* b = grad_[1].data();  // scratch
  float* c = grad_[2].data();  // dL/d(block input)
  const BlockActs& last = acts_.back();
  m_.Tic();
  pool_.GlobalAvgBackward(last.cd[m_.blocks_.back().nconv - 1], m_.dfeat_.data(), a);
  m_.Toc(m_.prof_head_, true);
  for (int bi = int(m_.blocks_.size()) - 1; bi >= 0; --bi) {
    M::Block& blk = m_.blocks_[bi];
    BlockActs& A = acts_[bi];
    const int L = blk.nconv - 1;
    const float* in = stem_act_.data();
    Desc ind = stem_d_;
    if (bi > 0) {
      in = acts_[bi - 1].out.data();
      ind = acts_[bi - 1].cd[m_.blocks_[bi - 1].nconv - 1];
    } else if (m_.stem_pool_) {
      in = pool_out_.data();
      ind = pool_d_;
    }
    const Desc& od = A.cd[L];
    m_.Tic();
    elt_.ReluBackward(od, A.out.data(), a, c);  // c: dL/d(main + shortcut)
    m_.Toc(blk.prof_add, true);
    // The last BN's input gradient first (into a); its tensors are reported
    // after the shortcut's, which come later in forward order.
    BnBackward(blk.bn[L], od, A.cout[L].data(), c, a, false, {});
    if (blk.proj) {
      BnBackward(blk.pbn, A.pd, A.pout.data(), c, b, false, on_ready);
      ConvBackward(blk.pconv, ind, in, A.pd, b, c, false, n, on_ready);
    }  // else c already holds the identity shortcut's gradient
    if (on_ready) {
      on_ready(blk.bn[L].tensor + 1);
      on_ready(blk.bn[L].tensor);
    }
    for (int i = L; i >= 0; --i) {
      if (i < L) BnBackward(blk.bn[i], A.cd[i], A.cout[i].data(), a, a, true, on_ready);
      if (i > 0) {
        ConvBackward(blk.conv[i], A.cd[i - 1], A.act[i - 1].data(), A.cd[i], a, b, false, n,
                     on_ready);
        std::swap(a, b);
      } else {
        ConvBackward(blk.conv[0], ind, in, A.cd[0], a, c, true, n, on_ready);
      }
    }
    std::swap(a, c);  // the block input's gradient becomes the current one
  }
  if (m_.stem_pool_) {
    m_.Tic();
    const cpu::MaxPoolShape ps{n, m_.stem_c_, m_.stem_hw_, m_.stem_hw_, 3, 2, 1};
    pool_.MaxBackward(stem_d_, ps, a, reinterpret_cast<const uint8_t*>(pool_ws_.data()), b);
    std::swap(a, b);
    m_.Toc(m_.stem_prof_pool_, true);
  }
  BnBackward(m_.stem_bn_, stem_d_, stem_cout_.data(), a, a, true, on_ready);
  ConvBackward(m_.stem_conv_, image_d_, images, stem_d_, a, nullptr, false, n, on_ready);
}

}  // namespace dtrain::model
