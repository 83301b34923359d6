// ResNet forward / backward / predict over the CPU kernels.
#include <chrono>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "common/error.h"
#include "kernels/cpu/channel_affine.h"
#include "kernels/cpu/fully_connected.h"
#include "kernels/cpu/pool.h"
#include "kernels/cpu/relu.h"
#include "kernels/cpu/residual_add.h"
#include "kernels/cpu/softmax_cross_entropy.h"
#include "worker/model/model.h"

namespace dtrain::model {
namespace {

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

template <typename T>
void Model<T>::Tic() {
  if (profiling_) tic_ = Now();
}

template <typename T>
void Model<T>::Toc(int prof, bool backward) {
  if (!profiling_) return;
  const double t = Now();
  (backward ? profile_[prof].backward_s : profile_[prof].forward_s) += t - tic_;
  tic_ = t;
}

template <typename T>
void Model<T>::ConvForward(Conv& cv, const T* x, T* y, int n) {
  Tic();
  cv.shape.n = n;
  cpu::Conv2dForward(cv.shape, x, params_.data() + tensors_[cv.tensor].offset,
                     y, workspace_.data());
  Toc(cv.prof, false);
}

template <typename T>
void Model<T>::ConvBackward(Conv& cv, const T* x, const T* dy, T* dx,
                            bool accumulate, int n,
                            const std::function<void(int)>& on_ready) {
  Tic();
  cv.shape.n = n;
  const size_t off = tensors_[cv.tensor].offset;
  cpu::Conv2dBackward(cv.shape, x, params_.data() + off, dy, dx, accumulate,
                      grads_.data() + off, workspace_.data());
  Toc(cv.prof, true);
  if (on_ready) on_ready(cv.tensor);
}

template <typename T>
void Model<T>::BnForward(Bn& bn, const T* x, T* y, int n, bool training,
                         bool relu) {
  Tic();
  const cpu::BatchNormShape s{n, bn.c, bn.hw};
  const T* gamma = params_.data() + tensors_[bn.tensor].offset;
  const T* beta = params_.data() + tensors_[bn.tensor + 1].offset;
  T* rmean = buffers_.data() + bn.running;
  T* rvar = rmean + bn.c;
  if (!opt_.batch_norm)
    cpu::ChannelAffineForward(s, x, gamma, beta, y, relu);
  else if (training)
    cpu::BatchNormForwardTraining(s, x, gamma, beta, opt_.bn_epsilon,
                                  opt_.bn_momentum, rmean, rvar, bn.mean.data(),
                                  bn.inv_std.data(), y, relu);
  else
    cpu::BatchNormForwardInference(s, x, gamma, beta, rmean, rvar,
                                   opt_.bn_epsilon, y, relu);
  Toc(bn.prof, false);
}

// g holds dL/d(bn output), or dL/d(relu output) when the BN had a fused
// ReLU whose output is relu_y; overwritten with dL/d(bn input).
template <typename T>
void Model<T>::BnBackward(Bn& bn, const T* x, T* g, const T* relu_y, int n,
                          const std::function<void(int)>& on_ready) {
  Tic();
  const cpu::BatchNormShape s{n, bn.c, bn.hw};
  const size_t g_off = tensors_[bn.tensor].offset;
  const size_t b_off = tensors_[bn.tensor + 1].offset;
  if (opt_.batch_norm)
    cpu::BatchNormBackward(s, x, g, params_.data() + g_off, bn.mean.data(),
                           bn.inv_std.data(), g, grads_.data() + g_off,
                           grads_.data() + b_off, relu_y);
  else
    cpu::ChannelAffineBackward(s, x, g, params_.data() + g_off, g,
                               grads_.data() + g_off, grads_.data() + b_off, relu_y);
  Toc(bn.prof, true);
  if (on_ready) {
    on_ready(bn.tensor + 1);
    on_ready(bn.tensor);
  }
}

template <typename T>
void Model<T>::BodyForward(const T* images, int n, bool training) {
  ConvForward(stem_conv_, images, stem_cout_.data(), n);
  BnForward(stem_bn_, stem_cout_.data(), stem_act_.data(), n, training, true);
  const T* cur = stem_act_.data();
  if (stem_pool_) {
    Tic();
    const cpu::MaxPoolShape ps{n, stem_c_, stem_hw_, stem_hw_, 3, 2, 1};
    cpu::MaxPoolForward(ps, cur, pool_out_.data(), pool_argmax_.data());
    cur = pool_out_.data();
    Toc(stem_prof_pool_, false);
  }
  for (Block& b : blocks_) {
    const T* t = cur;
    for (int i = 0; i < b.nconv; ++i) {
      ConvForward(b.conv[i], t, b.cout[i].data(), n);
      const bool last = i == b.nconv - 1;
      T* y = last ? b.out.data() : b.act[i].data();
      BnForward(b.bn[i], b.cout[i].data(), y, n, training, !last);
      t = y;
    }
    const T* sc = cur;
    if (b.proj) {
      ConvForward(b.pconv, cur, b.pout.data(), n);
      BnForward(b.pbn, b.pout.data(), b.pbn_out.data(), n, training, false);
      sc = b.pbn_out.data();
    }
    Tic();
    cpu::ResidualAddRelu(size_t(n) * b.out_per_image, b.out.data(), sc, b.out.data());
    Toc(b.prof_add, false);
    cur = b.out.data();
  }
  Tic();
  cpu::GlobalAvgPoolForward(cpu::GlobalAvgPoolShape{n, feat_c_, feat_hw_ * feat_hw_},
                            cur, feat_.data());
  Toc(prof_head_, false);
}

template <typename T>
StepResult Model<T>::Forward(const T* images, const int32_t* labels, int n,
                             bool training, double label_smoothing) {
  if (n <= 0)
    Fail(ErrorCode::kInvalidArgument, "Forward: batch must be > 0, got " + std::to_string(n));
  if (n > batch_cap_) Reserve(n);
  have_training_forward_ = false;
  if constexpr (std::is_same_v<T, float>) {
    if (fast_body_) fast_body_->Forward(images, n, training);
    else BodyForward(images, n, training);
  } else {
    BodyForward(images, n, training);
  }
  Tic();
  const T* fc_w = params_.data() + tensors_[fc_tensor_].offset;
  const T* fc_b = params_.data() + tensors_[fc_tensor_ + 1].offset;
  cpu::FullyConnectedForward(cpu::FullyConnectedShape{n, feat_c_, opt_.num_classes},
                             feat_.data(), fc_w, fc_b, logits_.data());
  StepResult r;
  r.loss = cpu::SoftmaxCrossEntropyForward(
      cpu::SoftmaxCrossEntropyShape{n, opt_.num_classes}, logits_.data(), labels,
      label_smoothing, probs_.data(), &r.correct);
  Toc(prof_head_, false);
  last_n_ = n;
  if (training) {
    have_training_forward_ = true;
    last_smoothing_ = label_smoothing;
    last_images_ = images;
    last_labels_ = labels;
  }
  return r;
}

template <typename T>
void Model<T>::Backward(const std::function<void(int)>& on_ready) {
  if (!have_training_forward_)
    Fail(ErrorCode::kInvalidArgument, "Backward: needs a preceding training Forward");
  have_training_forward_ = false;
  const int n = last_n_;
  Tic();
  cpu::SoftmaxCrossEntropyBackward(cpu::SoftmaxCrossEntropyShape{n, opt_.num_classes},
                                   probs_.data(), last_labels_, last_smoothing_,
                                   dlogits_.data());
  const size_t w_off = tensors_[fc_tensor_].offset;
  const size_t b_off = tensors_[fc_tensor_ + 1].offset;
  cpu::FullyConnectedBackward(cpu::FullyConnectedShape{n, feat_c_, opt_.num_classes},
                              feat_.data(), params_.data() + w_off, dlogits_.data(),
                              dfeat_.data(), grads_.data() + w_off, grads_.data() + b_off);
  Toc(prof_head_, true);
  if (on_ready) {
    on_ready(fc_tensor_ + 1);
    on_ready(fc_tensor_);
  }
  if constexpr (std::is_same_v<T, float>) {
    if (fast_body_) return fast_body_->Backward(n, last_images_, on_ready);
  }
  BodyBackward(n, on_ready);
}

template <typename T>
void Model<T>::BodyBackward(int n, const std::function<void(int)>& on_ready) {
  Tic();
  T* a = grad_[0].data();  // dL/d(current activation)
  T* b = grad_[1].data();  // scratch
  T* c = grad_[2].data();  // dL/d(block input)
  cpu::GlobalAvgPoolBackward(cpu::GlobalAvgPoolShape{n, feat_c_, feat_hw_ * feat_hw_},
                             dfeat_.data(), a);
  Toc(prof_head_, true);
  for (int bi = int(blocks_.size()) - 1; bi >= 0; --bi) {
    Block& blk = blocks_[bi];
    const T* in = bi > 0 ? blocks_[bi - 1].out.data()
                         : (stem_pool_ ? pool_out_.data() : stem_act_.data());
    const size_t out_count = size_t(n) * blk.out_per_image;
    Tic();
    cpu::ReluBackward(out_count, blk.out.data(), a, a);
    Toc(blk.prof_add, true);
    // Shortcut first: its tensors come last in forward order.
    if (blk.proj) {
      std::memcpy(b, a, sizeof(T) * out_count);
      BnBackward(blk.pbn, blk.pout.data(), b, nullptr, n, on_ready);
      ConvBackward(blk.pconv, in, b, c, false, n, on_ready);
    } else {
      std::memcpy(c, a, sizeof(T) * out_count);
    }
    for (int i = blk.nconv - 1; i >= 0; --i) {
      const T* relu_y = i < blk.nconv - 1 ? blk.act[i].data() : nullptr;
      BnBackward(blk.bn[i], blk.cout[i].data(), a, relu_y, n, on_ready);
      if (i > 0) {
        ConvBackward(blk.conv[i], blk.act[i - 1].data(), a, b, false, n, on_ready);
        std::swap(a, b);
      } else {
        ConvBackward(blk.conv[0], in, a, c, true, n, on_ready);
      }
    }
    std::swap(a, c);  // block input gradient becomes the current one
  }
  if (stem_pool_) {
    Tic();
    const cpu::MaxPoolShape ps{n, stem_c_, stem_hw_, stem_hw_, 3, 2, 1};
    cpu::MaxPoolBackward(ps, a, pool_argmax_.data(), b);
    std::swap(a, b);
    Toc(stem_prof_pool_, true);
  }
  BnBackward(stem_bn_, stem_cout_.data(), a, stem_act_.data(), n, on_ready);
  ConvBackward(stem_conv_, last_images_, a, nullptr, false, n, on_ready);
}

template <typename T>
int64_t Model<T>::Predict(const T* images, const int32_t* labels, int n) {
  return Forward(images, labels, n, false, 0.0).correct;
}

#define DTRAIN_MODEL_STEP(T)                                                   \
  template StepResult Model<T>::Forward(const T*, const int32_t*, int, bool,   \
                                        double);                               \
  template void Model<T>::Backward(const std::function<void(int)>&);           \
  template void Model<T>::BodyForward(const T*, int, bool);                    \
  template void Model<T>::Tic();                                               \
  template void Model<T>::Toc(int, bool);                                      \
  template void Model<T>::BodyBackward(int, const std::function<void(int)>&);  \
  template int64_t Model<T>::Predict(const T*, const int32_t*, int);
DTRAIN_MODEL_STEP(float)
DTRAIN_MODEL_STEP(double)
#undef DTRAIN_MODEL_STEP

}  // namespace dtrain::model
