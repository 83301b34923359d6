// CudaResnet: the network's forward and backward on the GPU (contract in
// cuda_model.h). Mirrors worker/model/resnet_step.cc (the CPU reference).
#include "worker/engine/cuda_model.h"

#include <string>
#include <utility>

#include "common/error.h"
#include "kernels/cuda/batch_norm_cudnn.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/cuda/fc_cublaslt.h"
#include "kernels/cuda/pool.h"
#include "kernels/cuda/softmax_xent.h"
#include "worker/engine/device_memory.h"

namespace dtrain::engine {
namespace {

using cuda::BnActivation;

using DeviceMem = DeviceMemory;

DeviceMem Halves(size_t n) { return DeviceMem(n * sizeof(__half)); }
DeviceMem Floats(size_t n) { return DeviceMem(n * sizeof(float)); }

enum Family { kConvFwd, kConvDgrad, kConvWgrad, kBnFwd, kBnBwd, kPool, kFc, kLoss, kFamilies };
const char* const kFamilyNames[kFamilies] = {"conv fwd", "conv dgrad", "conv wgrad", "bn fwd",
                                             "bn bwd",   "pool",       "fc",         "softmax-ce"};

struct Conv {
  cpu::Conv2dShape shape;  // device shape (stem: padded input channels); n set per call
  int tensor = -1;
};

struct Bn {
  cpu::BatchNormShape shape;  // n set per call
  int tensor = -1;
  size_t running = 0;
  BnActivation act = BnActivation::kNone;
  DeviceMem save_mean, save_inv_std, reserve;
};

struct Block {
  int nconv = 0;
  Conv conv[3];
  Bn bn[3];
  bool proj = false;
  Conv pconv;
  Bn pbn;
  size_t out_per_image = 0;
  DeviceMem cout[3], act[2], out, pout, pbn_out;
};

}  // namespace

struct CudaResnet::Impl {
  const model::ResnetArch& arch;
  const DevicePlan& plan;
  model::ModelOptions mo;
  cuda::CudnnConvolutions convs;
  cuda::CudnnBatchNorm bns;
  cuda::CublasLtFc fc;

  Conv stem_conv;
  Bn stem_bn;
  DeviceMem stem_cout, stem_act, pool_out, pool_argmax;
  std::vector<Block> blocks;
  DeviceMem feat, logits, dlogits, dfeat, loss, hits;
  DeviceMem grad[3];
  size_t max_act = 0;

  // last training forward
  int n = 0;
  const __half* x = nullptr;
  bool have_forward = false;

  // profiling: an event before and after each timed op, per family
  bool profiling = false;
  std::vector<std::pair<int, std::pair<cudaEvent_t, cudaEvent_t>>> marks;
  size_t used_marks = 0;
  double family_s[kFamilies] = {};

  Impl(const model::ResnetArch& a, const DevicePlan& p, const model::ModelOptions& o, cudnnHandle_t cudnn,
       cublasLtHandle_t lt)
      : arch(a), plan(p), mo(o), convs(cudnn), bns(cudnn), fc(lt) {}

  ~Impl() {
    for (auto& m : marks) {
      cudaEventDestroy(m.second.first);
      cudaEventDestroy(m.second.second);
    }
  }

  // Times the ops enqueued by f when profiling.
  template <typename F>
  void Timed(int family, cudaStream_t s, F&& f) {
    if (!profiling) {
      f();
      return;
    }
    if (used_marks == marks.size()) {
      cudaEvent_t a, b;
      CUDA_CHECK(cudaEventCreate(&a));
      CUDA_CHECK(cudaEventCreate(&b));
      marks.push_back({family, {a, b}});
    }
    auto& m = marks[used_marks++];
    m.first = family;
    CUDA_CHECK(cudaEventRecord(m.second.first, s));
    f();
    CUDA_CHECK(cudaEventRecord(m.second.second, s));
  }

  Conv MakeConv(const model::ArchConv& ac, int c_override = 0) {
    Conv cv;
    cv.shape = ac.shape;
    if (c_override > 0) cv.shape.c = c_override;
    cv.tensor = ac.tensor;
    return cv;
  }

  void MakeBn(Bn& bn, const model::ArchBn& ab, BnActivation act, int max_batch) {
    bn.shape = {max_batch, ab.c, ab.hw};
    bn.tensor = ab.tensor;
    bn.running = ab.running;
    bn.act = act;
    bn.save_mean = Floats(ab.c);
    bn.save_inv_std = Floats(ab.c);
    bn.reserve = DeviceMem(bns.ReserveBytes(bn.shape, act));
  }

};

namespace {

const __half* WeightOf(const CudaParams& p, const DevicePlan& plan, int tensor) {
  return p.w16 + plan.tensors[tensor].offset;
}
const float* MasterOf(const CudaParams& p, const DevicePlan& plan, int tensor) {
  return p.master + plan.master_offset(tensor);
}
__half* HalfGradOf(const CudaParams& p, const DevicePlan& plan, int tensor) {
  return p.g16 + plan.tensors[tensor].offset;
}
float* FloatGradOf(const CudaParams& p, const DevicePlan& plan, int tensor) {
  return p.g32 + plan.tensors[tensor].offset;
}

}  // namespace

CudaResnet::CudaResnet(const model::ResnetArch& arch, const DevicePlan& plan, const model::ModelOptions& mo,
                       int max_batch, cudnnHandle_t cudnn, cublasLtHandle_t lt)
    : impl_(std::make_unique<Impl>(arch, plan, mo, cudnn, lt)), max_batch_(max_batch) {
  if (max_batch <= 0) Fail(ErrorCode::kInvalidArgument, "CudaResnet: max_batch must be > 0");
  if (!mo.batch_norm) {
    Fail(ErrorCode::kInvalidArgument,
         "batch_norm: false (a per-channel affine instead of BN) runs on the CPU engine only; "
         "set batch_norm: true or device: cpu");
  }
  Impl& m = *impl_;
  const size_t n = size_t(max_batch);
  auto note = [&](size_t elems) { m.max_act = std::max(m.max_act, elems); };

  m.stem_conv = m.MakeConv(arch.stem_conv, plan.input_c_pad);
  m.MakeBn(m.stem_bn, arch.stem_bn, BnActivation::kRelu, max_batch);
  const size_t stem = n * arch.stem_c * arch.stem_side * arch.stem_side;
  m.stem_cout = Halves(stem);
  m.stem_act = Halves(stem);
  note(stem);
  if (arch.stem_pool) {
    const size_t pooled = n * arch.stem_c * arch.pool_side * arch.pool_side;
    m.pool_out = Halves(pooled);
    m.pool_argmax = DeviceMem(pooled * sizeof(int32_t));
  }
  for (const model::ArchBlock& ab : arch.blocks) {
    Block b;
    b.nconv = ab.nconv;
    for (int i = 0; i < ab.nconv; ++i) {
      b.conv[i] = m.MakeConv(ab.conv[i]);
      const bool last = i == ab.nconv - 1;
      m.MakeBn(b.bn[i], ab.bn[i], last ? BnActivation::kAddRelu : BnActivation::kRelu, max_batch);
      cpu::Conv2dShape s = ab.conv[i].shape;
      s.n = max_batch;
      b.cout[i] = Halves(s.out_size());
      if (!last) b.act[i] = Halves(s.out_size());
      note(s.out_size());
      note(s.in_size());
    }
    b.out_per_image = size_t(ab.out_c) * ab.out_side * ab.out_side;
    b.out = Halves(n * b.out_per_image);
    b.proj = ab.proj;
    if (b.proj) {
      b.pconv = m.MakeConv(ab.pconv);
      m.MakeBn(b.pbn, ab.pbn, BnActivation::kNone, max_batch);
      b.pout = Halves(n * b.out_per_image);
      b.pbn_out = Halves(n * b.out_per_image);
    }
    m.blocks.push_back(std::move(b));
  }
  for (auto& g : m.grad) g = Halves(m.max_act);
  m.feat = Halves(n * arch.feat_c);
  m.dfeat = Halves(n * arch.feat_c);
  m.logits = Floats(n * arch.num_classes);
  m.dlogits = Halves(n * arch.num_classes);
  m.loss = Floats(n);
  m.hits = DeviceMem(n * sizeof(int32_t));
}

CudaResnet::~CudaResnet() = default;

void CudaResnet::set_profiling(bool on) { impl_->profiling = on; }
void CudaResnet::set_autotune(bool on) { impl_->convs.set_autotune(on); }
double CudaResnet::bn_momentum() const { return impl_->mo.bn_momentum; }
void CudaResnet::set_bn_momentum(double m) { impl_->mo.bn_momentum = m; }
const float* CudaResnet::logits() const { return impl_->logits.as<float>(); }

FamilyTimes CudaResnet::TakeProfile() {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.used_marks; ++i) {
    auto& mk = m.marks[i];
    CUDA_CHECK(cudaEventSynchronize(mk.second.second));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, mk.second.first, mk.second.second));
    m.family_s[mk.first] += ms / 1e3;
  }
  m.used_marks = 0;
  FamilyTimes t;
  for (int f = 0; f < kFamilies; ++f) {
    t.names.push_back(kFamilyNames[f]);
    t.seconds.push_back(m.family_s[f]);
    m.family_s[f] = 0;
  }
  return t;
}

void CudaResnet::Forward(const CudaParams& p, int n, const __half* x, const int32_t* labels, bool training,
                         float label_smoothing, const float* loss_scale, float* mean_loss, int32_t* correct,
                         cudaStream_t s) {
  Impl& m = *impl_;
  if (n <= 0 || n > max_batch_) {
    Fail(ErrorCode::kInvalidArgument, "CUDA forward: batch " + std::to_string(n) + " outside 1.." +
                                          std::to_string(max_batch_) + " (the engine's max batch)");
  }
  if (!m.profiling) m.used_marks = 0;
  const DevicePlan& plan = m.plan;
  const double eps = m.mo.bn_epsilon, mom = m.mo.bn_momentum;
  auto conv_fwd = [&](Conv& cv, const __half* in, __half* out) {
    cpu::Conv2dShape sh = cv.shape;
    sh.n = n;
    m.Timed(kConvFwd, s, [&] { m.convs.Forward(sh, in, WeightOf(p, plan, cv.tensor), out, s); });
  };
  auto bn_fwd = [&](Bn& bn, const __half* in, const __half* z, __half* out) {
    cpu::BatchNormShape sh = bn.shape;
    sh.n = n;
    const float* gamma = MasterOf(p, plan, bn.tensor);
    const float* beta = MasterOf(p, plan, bn.tensor + 1);
    float* rmean = p.bn_running + bn.running;
    float* rvar = rmean + bn.shape.c;
    if (training && n != bn.shape.n) {  // another batch size may need more reserve than the max batch's
      const size_t need = m.bns.ReserveBytes(sh, bn.act);
      if (need > bn.reserve.bytes()) bn.reserve = DeviceMem(need);
    }
    m.Timed(kBnFwd, s, [&] {
      if (training) {
        m.bns.ForwardTraining(sh, bn.act, in, z, gamma, beta, eps, mom, rmean, rvar, bn.save_mean.as<float>(),
                              bn.save_inv_std.as<float>(), bn.reserve.as<void>(), out, s);
      } else {
        m.bns.ForwardInference(sh, bn.act, in, z, gamma, beta, rmean, rvar, eps, out, s);
      }
    });
  };

  conv_fwd(m.stem_conv, x, m.stem_cout.as<__half>());
  bn_fwd(m.stem_bn, m.stem_cout.as<__half>(), nullptr, m.stem_act.as<__half>());
  const __half* cur = m.stem_act.as<__half>();
  if (m.arch.stem_pool) {
    const cpu::MaxPoolShape ps{n, m.arch.stem_c, m.arch.stem_side, m.arch.stem_side, 3, 2, 1};
    m.Timed(kPool, s, [&] {
      cuda::MaxPoolForwardNHWC(ps, cur, m.pool_out.as<__half>(), m.pool_argmax.as<int32_t>(), s);
    });
    cur = m.pool_out.as<__half>();
  }
  for (Block& b : m.blocks) {
    const __half* sc = cur;
    if (b.proj) {
      conv_fwd(b.pconv, cur, b.pout.as<__half>());
      bn_fwd(b.pbn, b.pout.as<__half>(), nullptr, b.pbn_out.as<__half>());
      sc = b.pbn_out.as<__half>();
    }
    const __half* t = cur;
    for (int i = 0; i < b.nconv; ++i) {
      conv_fwd(b.conv[i], t, b.cout[i].as<__half>());
      const bool last = i == b.nconv - 1;
      __half* y = last ? b.out.as<__half>() : b.act[i].as<__half>();
      bn_fwd(b.bn[i], b.cout[i].as<__half>(), last ? sc : nullptr, y);
      t = y;
    }
    cur = b.out.as<__half>();
  }
  const int classes = m.arch.num_classes, feat_c = m.arch.feat_c;
  m.Timed(kPool, s, [&] {
    cuda::GlobalAvgPoolForwardNHWC({n, feat_c, m.arch.feat_side * m.arch.feat_side}, cur, m.feat.as<__half>(), s);
  });
  m.Timed(kFc, s, [&] {
    m.fc.Forward(n, feat_c, classes, m.feat.as<__half>(), WeightOf(p, plan, m.arch.fc_tensor),
                 MasterOf(p, plan, m.arch.fc_tensor + 1), m.logits.as<float>(), s);
  });
  m.Timed(kLoss, s, [&] {
    cuda::SoftmaxCrossEntropy<float, __half>(n, classes, m.logits.as<float>(), labels, label_smoothing, loss_scale,
                                             m.loss.as<float>(), training ? m.dlogits.as<__half>() : nullptr,
                                             m.hits.as<int32_t>(), s);
    cuda::MeanLossAndCorrect(n, m.loss.as<float>(), m.hits.as<int32_t>(), mean_loss, correct, s);
  });
  m.have_forward = training;
  m.n = n;
  m.x = x;
}

void CudaResnet::Backward(const CudaParams& p, const std::function<void(int)>& on_ready, cudaStream_t s) {
  Impl& m = *impl_;
  if (!m.have_forward) Fail(ErrorCode::kInvalidArgument, "CUDA backward: needs a preceding training forward");
  m.have_forward = false;
  const int n = m.n;
  const DevicePlan& plan = m.plan;
  const double eps = m.mo.bn_epsilon;
  auto ready = [&](int t) {
    if (on_ready) on_ready(t);
  };
  // dy -> dx (+ dz for add+relu), BN gradients; then report gamma and beta.
  auto bn_bwd = [&](Bn& bn, const __half* x, const __half* y, const __half* dy, __half* dx, __half* dz) {
    cpu::BatchNormShape sh = bn.shape;
    sh.n = n;
    m.Timed(kBnBwd, s, [&] {
      m.bns.Backward(sh, bn.act, x, y, dy, MasterOf(p, plan, bn.tensor), MasterOf(p, plan, bn.tensor + 1),
                     bn.save_mean.as<float>(), bn.save_inv_std.as<float>(), eps, bn.reserve.as<void>(), dx, dz,
                     FloatGradOf(p, plan, bn.tensor), FloatGradOf(p, plan, bn.tensor + 1), s);
    });
    ready(bn.tensor + 1);
    ready(bn.tensor);
  };
  auto conv_wgrad = [&](Conv& cv, const __half* x, const __half* dy) {
    cpu::Conv2dShape sh = cv.shape;
    sh.n = n;
    m.Timed(kConvWgrad, s, [&] { m.convs.BackwardFilter(sh, x, dy, HalfGradOf(p, plan, cv.tensor), s); });
    ready(cv.tensor);
  };
  auto conv_dgrad = [&](Conv& cv, const __half* dy, __half* dx, bool accumulate) {
    cpu::Conv2dShape sh = cv.shape;
    sh.n = n;
    m.Timed(kConvDgrad, s, [&] { m.convs.BackwardData(sh, dy, WeightOf(p, plan, cv.tensor), dx, accumulate, s); });
  };

  const int classes = m.arch.num_classes, feat_c = m.arch.feat_c;
  __half* a = m.grad[0].as<__half>();  // dL/d(current activation)
  __half* b = m.grad[1].as<__half>();
  __half* c = m.grad[2].as<__half>();  // dL/d(block input)
  m.Timed(kFc, s, [&] {
    m.fc.BackwardWeights(n, feat_c, classes, m.feat.as<__half>(), m.dlogits.as<__half>(),
                         HalfGradOf(p, plan, m.arch.fc_tensor), FloatGradOf(p, plan, m.arch.fc_tensor + 1), s);
  });
  ready(m.arch.fc_tensor + 1);
  ready(m.arch.fc_tensor);
  m.Timed(kFc, s, [&] {
    m.fc.BackwardData(n, feat_c, classes, m.dlogits.as<__half>(), WeightOf(p, plan, m.arch.fc_tensor),
                      m.dfeat.as<__half>(), s);
  });
  m.Timed(kPool, s, [&] {
    cuda::GlobalAvgPoolBackwardNHWC({n, feat_c, m.arch.feat_side * m.arch.feat_side}, m.dfeat.as<__half>(), a, s);
  });
  for (int bi = int(m.blocks.size()) - 1; bi >= 0; --bi) {
    Block& blk = m.blocks[bi];
    const __half* in = bi > 0 ? m.blocks[bi - 1].out.as<__half>()
                              : (m.arch.stem_pool ? m.pool_out.as<__half>() : m.stem_act.as<__half>());
    const int last = blk.nconv - 1;
    // a: d(block output) -> b: d(last conv output), c: d(shortcut)
    bn_bwd(blk.bn[last], blk.cout[last].as<__half>(), blk.out.as<__half>(), a, b, c);
    if (blk.proj) {  // c: d(pbn output) -> a: d(pconv output) -> c: d(block input)
      bn_bwd(blk.pbn, blk.pout.as<__half>(), blk.pbn_out.as<__half>(), c, a, nullptr);
      conv_wgrad(blk.pconv, in, a);
      conv_dgrad(blk.pconv, a, c, false);
    }
    for (int i = last; i >= 0; --i) {  // b: d(conv i output)
      const __half* conv_in = i > 0 ? blk.act[i - 1].as<__half>() : in;
      conv_wgrad(blk.conv[i], conv_in, b);
      if (i > 0) {
        conv_dgrad(blk.conv[i], b, a, false);  // a: d(act i-1)
        bn_bwd(blk.bn[i - 1], blk.cout[i - 1].as<__half>(), blk.act[i - 1].as<__half>(), a, b, nullptr);
      } else {
        conv_dgrad(blk.conv[0], b, c, true);  // c += d(block input) through the main path
      }
    }
    std::swap(a, c);  // the block input's gradient is the next block's output gradient
  }
  const __half* dstem = a;  // d(stem output after pool)
  if (m.arch.stem_pool) {
    const cpu::MaxPoolShape ps{n, m.arch.stem_c, m.arch.stem_side, m.arch.stem_side, 3, 2, 1};
    m.Timed(kPool, s, [&] { cuda::MaxPoolBackwardNHWC(ps, a, m.pool_argmax.as<int32_t>(), b, s); });
    dstem = b;
  }
  __half* dconv = dstem == a ? b : a;
  bn_bwd(m.stem_bn, m.stem_cout.as<__half>(), m.stem_act.as<__half>(), dstem, dconv, nullptr);
  conv_wgrad(m.stem_conv, m.x, dconv);
}

}  // namespace dtrain::engine
