// ResNet construction: architecture tables, the parameter/buffer tables,
// seeded initialisation, activation reservation, checksum.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "kernels/cpu/pool.h"
#include "worker/model/model.h"
#include "worker/model/rng.h"
#ifdef DTRAIN_HAVE_DNNL
#include "worker/model/resnet_dnnl.h"
#endif

namespace dtrain::model {

bool HaveOneDnn() {
#ifdef DTRAIN_HAVE_DNNL
  return true;
#else
  return false;
#endif
}

std::string OneDnnInfo() {
#ifdef DTRAIN_HAVE_DNNL
  return onednn::RuntimeInfo();
#else
  return "";
#endif
}

std::string ResolveKernels(const std::string& requested, bool batch_norm) {
  if (requested == "reference") return requested;
  if (requested == "auto") return HaveOneDnn() && batch_norm ? "onednn" : "reference";
  if (requested == "onednn") {
    if (!HaveOneDnn())
      Fail(ErrorCode::kUnavailable,
           "CPU kernels 'onednn': this build has no oneDNN (install libdnnl-dev and rebuild; "
           "deploy/install-deps.sh does), or use 'reference' or 'auto'");
    if (!batch_norm)
      Fail(ErrorCode::kInvalidArgument,
           "CPU kernels 'onednn' need batch_norm: true (without batch statistics the model "
           "runs on the reference kernels); use 'auto' or 'reference'");
    return requested;
  }
  Fail(ErrorCode::kInvalidArgument,
       "CPU kernels '" + requested + "': allowed auto, onednn, reference");
}

uint64_t Fnv1a64(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

template <typename T>
int Model<T>::AddProf(const std::string& name) {
  profile_.push_back({name, 0, 0});
  return int(profile_.size()) - 1;
}

template <typename T>
typename Model<T>::Conv Model<T>::MakeConv(const ArchConv& ac) {
  Conv cv;
  cv.shape = ac.shape;
  cv.tensor = ac.tensor;
  cv.prof = AddProf(ac.name);
  return cv;
}

template <typename T>
typename Model<T>::Bn Model<T>::MakeBn(const ArchBn& ab) {
  Bn bn;
  bn.c = ab.c;
  bn.hw = ab.hw;
  bn.tensor = ab.tensor;
  bn.running = ab.running;
  bn.mean.assign(ab.c, T(0));
  bn.inv_std.assign(ab.c, T(0));
  bn.prof = AddProf(ab.name);
  return bn;
}

template <typename T>
void Model<T>::Build(const std::string& name, const ModelOptions& opt,
                     uint64_t seed) {
  if (opt.max_batch < 0)
    Fail(ErrorCode::kInvalidArgument, "model options: max_batch must be >= 0");
  if (!(opt.bn_momentum >= 0 && opt.bn_momentum <= 1) || !(opt.bn_epsilon > 0))
    Fail(ErrorCode::kInvalidArgument,
         "model options: bn_momentum must be in [0, 1] and bn_epsilon > 0");
  arch_ = BuildResnetArch(name, opt.in_channels, opt.num_classes, opt.image_size);
  name_ = name;
  opt_ = opt;
  tensors_ = arch_.tensors;
  buffer_tensors_ = arch_.buffers;
  buffers_.assign(arch_.num_buffers, T(0));

  stem_c_ = arch_.stem_c;
  stem_conv_ = MakeConv(arch_.stem_conv);
  stem_hw_ = arch_.stem_side;
  stem_bn_ = MakeBn(arch_.stem_bn);
  stem_pool_ = arch_.stem_pool;
  if (stem_pool_) stem_prof_pool_ = AddProf("maxpool");
  pool_hw_ = arch_.pool_side;
  for (const ArchBlock& ab : arch_.blocks) {
    Block blk;
    blk.nconv = ab.nconv;
    for (int i = 0; i < ab.nconv; ++i) {
      blk.conv[i] = MakeConv(ab.conv[i]);
      blk.bn[i] = MakeBn(ab.bn[i]);
    }
    blk.proj = ab.proj;
    if (blk.proj) {
      blk.pconv = MakeConv(ab.pconv);
      blk.pbn = MakeBn(ab.pbn);
    }
    blk.prof_add = AddProf(ab.name + ".add_relu");
    blk.in_per_image = size_t(ab.in_c) * ab.in_side * ab.in_side;
    blk.out_per_image = size_t(ab.out_c) * ab.out_side * ab.out_side;
    blocks_.push_back(std::move(blk));
  }
  feat_c_ = arch_.feat_c;
  feat_hw_ = arch_.feat_side;
  fc_tensor_ = arch_.fc_tensor;
  prof_head_ = AddProf("gap_fc_loss");

  params_.assign(arch_.num_params, T(0));
  grads_.assign(arch_.num_params, T(0));
  Initialise(seed);
  if (opt.kernels == "onednn") {
    if (!std::is_same_v<T, float>)
      Fail(ErrorCode::kInvalidArgument, "model options: kernels 'onednn' compute in float only");
    if (opt.threads < 1)
      Fail(ErrorCode::kInvalidArgument, "model options: threads must be >= 1");
    ResolveKernels(opt.kernels, opt.batch_norm);  // throws when it cannot run
#ifdef DTRAIN_HAVE_DNNL
    if constexpr (std::is_same_v<T, float>) fast_body_ = std::make_unique<ResnetDnnl>(*this, opt.threads);
#endif
  } else if (opt.kernels != "reference") {
    Fail(ErrorCode::kInvalidArgument, "model options: kernels '" + opt.kernels +
                                          "': allowed reference, onednn (resolve 'auto' first)");
  }
  if (opt.max_batch > 0) Reserve(opt.max_batch);
}

template <typename T>
void Model<T>::Initialise(uint64_t seed) {
  auto is_last_bn = [&](int tensor) {
    for (const Block& b : blocks_)
      if (b.bn[b.nconv - 1].tensor == tensor) return true;
    return false;
  };
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const ParamTensor& t = tensors_[i];
    SplitMix64 rng(seed ^ (0x5851F42D4C957F2Dull * (i + 1)));
    T* p = params_.data() + t.offset;
    const bool is_fc = t.name.rfind("fc.", 0) == 0;
    if (is_fc) {  // uniform(+-1/sqrt(fan_in)), weight and bias alike
      const double bound = 1.0 / std::sqrt(double(feat_c_));
      for (size_t j = 0; j < t.size; ++j) p[j] = T(rng.Uniform(-bound, bound));
    } else if (t.shape.size() == 4) {  // conv: kaiming normal, fan_out
      const double std = std::sqrt(2.0 / (double(t.shape[0]) * t.shape[2] * t.shape[3]));
      for (size_t j = 0; j < t.size; ++j) p[j] = T(std * rng.Normal());
    } else {  // BN: gamma ("X.weight") and beta ("X.bias")
      const bool gamma = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
      const T v = gamma && !(opt_.zero_init_residual && is_last_bn(int(i))) ? T(1) : T(0);
      std::fill(p, p + t.size, gamma ? v : T(0));
    }
  }
  for (const ParamTensor& b : buffer_tensors_) {
    const bool var = b.name.find("running_var") != std::string::npos;
    std::fill(buffers_.begin() + b.offset, buffers_.begin() + b.offset + b.size,
              var ? T(1) : T(0));
  }
}

template <typename T>
void Model<T>::Reserve(int max_batch) {
  if (max_batch <= 0)
    Fail(ErrorCode::kInvalidArgument, "Reserve: max_batch must be > 0");
  const size_t n = size_t(max_batch);
  feat_.assign(n * feat_c_, T(0));
  dfeat_.assign(n * feat_c_, T(0));
  logits_.assign(n * opt_.num_classes, T(0));
  probs_.assign(n * opt_.num_classes, T(0));
  dlogits_.assign(n * opt_.num_classes, T(0));
  batch_cap_ = max_batch;
  have_training_forward_ = false;
  if (fast_body_) return;  // it keeps its own activations, grown as it runs
  size_t max_act = 0, ws = 0;
  auto conv_ws = [&](const Conv& cv) {
    cpu::Conv2dShape s = cv.shape;
    s.n = max_batch;
    ws = std::max(ws, cpu::Conv2dWorkspaceSize(s));
    max_act = std::max({max_act, s.in_size(), s.out_size()});
  };
  conv_ws(stem_conv_);
  const size_t stem = n * stem_c_ * stem_hw_ * stem_hw_;
  stem_cout_.assign(stem, T(0));
  stem_act_.assign(stem, T(0));
  if (stem_pool_) {
    const size_t pooled = n * stem_c_ * pool_hw_ * pool_hw_;
    pool_out_.assign(pooled, T(0));
    pool_argmax_.assign(pooled, 0);
  }
  for (Block& b : blocks_) {
    for (int i = 0; i < b.nconv; ++i) {
      conv_ws(b.conv[i]);
      cpu::Conv2dShape s = b.conv[i].shape;
      s.n = max_batch;
      b.cout[i].assign(s.out_size(), T(0));
      if (i < b.nconv - 1) b.act[i].assign(s.out_size(), T(0));
    }
    b.out.assign(n * b.out_per_image, T(0));
    if (b.proj) {
      conv_ws(b.pconv);
      b.pout.assign(n * b.out_per_image, T(0));
      b.pbn_out.assign(n * b.out_per_image, T(0));
    }
  }
  for (auto& g : grad_) g.assign(max_act, T(0));
  workspace_.assign(ws, T(0));
}

template <typename T>
uint64_t Model<T>::Checksum() const {
  const uint64_t h1 = Fnv1a64(params_.data(), params_.size() * sizeof(T));
  const uint64_t h2 = Fnv1a64(buffers_.data(), buffers_.size() * sizeof(T));
  return h1 ^ (h2 * 0x9E3779B97F4A7C15ull);
}

template <typename T>
void Model<T>::ResetProfile() {
  for (auto& p : profile_) p.forward_s = p.backward_s = 0;
}

template <typename T>
std::unique_ptr<Model<T>> BuildModel(const std::string& name,
                                     const ModelOptions& options,
                                     uint64_t seed) {
  std::unique_ptr<Model<T>> m(new Model<T>());
  m->Build(name, options, seed);
  return m;
}

template class Model<float>;
template class Model<double>;
template std::unique_ptr<Model<float>> BuildModel<float>(const std::string&, const ModelOptions&, uint64_t);
template std::unique_ptr<Model<double>> BuildModel<double>(const std::string&, const ModelOptions&, uint64_t);

}  // namespace dtrain::model
