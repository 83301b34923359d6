// ResNet construction: architecture tables, the parameter/buffer tables,
// seeded initialisation, activation reservation, checksum.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/cpu/pool.h"
#include "worker/model/model.h"
#include "worker/model/rng.h"

namespace dtrain::model {
namespace {

struct Arch {
  const char* name;
  bool cifar;       // 3x3 stem, no pool, 16/32/64 channels
  bool bottleneck;
  int blocks[4];    // per stage; CIFAR uses 3 stages
};

constexpr Arch kArchs[] = {
    {"resnet18", false, false, {2, 2, 2, 2}},
    {"resnet34", false, false, {3, 4, 6, 3}},
    {"resnet50", false, true, {3, 4, 6, 3}},
    {"resnet101", false, true, {3, 4, 23, 3}},
    {"resnet152", false, true, {3, 8, 36, 3}},
    {"resnet20", true, false, {3, 3, 3, 0}},
    {"resnet32", true, false, {5, 5, 5, 0}},
    {"resnet56", true, false, {9, 9, 9, 0}},
};

}  // namespace

const std::vector<std::string>& ModelNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Arch& a : kArchs) v.push_back(a.name);
    return v;
  }();
  return names;
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
int Model<T>::AddTensor(const std::string& name, std::vector<int> shape,
                        bool no_decay) {
  ParamTensor t;
  t.name = name;
  t.offset = tensors_.empty() ? 0 : tensors_.back().offset + tensors_.back().size;
  t.size = 1;
  for (int d : shape) t.size *= size_t(d);
  t.shape = std::move(shape);
  t.no_decay = no_decay;
  tensors_.push_back(std::move(t));
  return int(tensors_.size()) - 1;
}

template <typename T>
int Model<T>::AddProf(const std::string& name) {
  profile_.push_back({name, 0, 0});
  return int(profile_.size()) - 1;
}

template <typename T>
typename Model<T>::Conv Model<T>::MakeConv(const std::string& name, int c,
                                           int hw, int k, int r, int stride,
                                           int pad) {
  Conv cv;
  cv.shape = {1, c, hw, hw, k, r, r, stride, pad};
  if (hw + 2 * pad < r)
    Fail(ErrorCode::kInvalidArgument,
         "model " + name_ + ": image_size " + std::to_string(opt_.image_size) +
             " too small (" + name + " sees " + std::to_string(hw) + "x" +
             std::to_string(hw) + ")");
  cv.shape.Check();
  cv.tensor = AddTensor(name + ".weight", {k, c, r, r}, false);
  cv.prof = AddProf(name);
  return cv;
}

template <typename T>
typename Model<T>::Bn Model<T>::MakeBn(const std::string& name, int c, int side) {
  Bn bn;
  bn.c = c;
  bn.hw = side * side;
  bn.tensor = AddTensor(name + ".weight", {c}, true);
  AddTensor(name + ".bias", {c}, true);
  bn.running = buffers_.size();
  buffer_tensors_.push_back({name + ".running_mean", buffers_.size(), size_t(c), {c}, true});
  buffer_tensors_.push_back({name + ".running_var", buffers_.size() + c, size_t(c), {c}, true});
  buffers_.resize(buffers_.size() + 2 * size_t(c));
  bn.mean.assign(c, T(0));
  bn.inv_std.assign(c, T(0));
  bn.prof = AddProf(name);
  return bn;
}

template <typename T>
void Model<T>::Build(const std::string& name, const ModelOptions& opt,
                     uint64_t seed) {
  const Arch* arch = nullptr;
  for (const Arch& a : kArchs)
    if (name == a.name) arch = &a;
  if (!arch) {
    std::string allowed;
    for (const auto& n : ModelNames()) allowed += (allowed.empty() ? "" : ", ") + n;
    Fail(ErrorCode::kInvalidArgument,
         "unknown model '" + name + "'; allowed: " + allowed);
  }
  if (opt.in_channels <= 0 || opt.num_classes <= 0 || opt.image_size <= 0 ||
      opt.max_batch < 0)
    Fail(ErrorCode::kInvalidArgument,
         "model options: in_channels, num_classes, image_size must be > 0 and "
         "max_batch >= 0");
  if (!(opt.bn_momentum >= 0 && opt.bn_momentum <= 1) || !(opt.bn_epsilon > 0))
    Fail(ErrorCode::kInvalidArgument,
         "model options: bn_momentum must be in [0, 1] and bn_epsilon > 0");
  name_ = name;
  opt_ = opt;

  int hw = opt.image_size, c = opt.in_channels;
  if (arch->cifar) {
    stem_c_ = 16;
    stem_conv_ = MakeConv("conv1", c, hw, 16, 3, 1, 1);
  } else {
    stem_c_ = 64;
    stem_conv_ = MakeConv("conv1", c, hw, 64, 7, 2, 3);
  }
  hw = stem_conv_.shape.out_h();
  stem_hw_ = hw;
  stem_bn_ = MakeBn("bn1", stem_c_, hw);
  stem_pool_ = !arch->cifar;
  if (stem_pool_) {
    cpu::MaxPoolShape ps{1, stem_c_, hw, hw, 3, 2, 1};
    ps.Check();
    hw = ps.out_h();
    stem_prof_pool_ = AddProf("maxpool");
  }
  pool_hw_ = hw;
  c = stem_c_;

  const int stages = arch->cifar ? 3 : 4;
  const int expansion = arch->bottleneck ? 4 : 1;
  for (int st = 0; st < stages; ++st) {
    const int width = (arch->cifar ? 16 : 64) << st;
    for (int b = 0; b < arch->blocks[st]; ++b) {
      const std::string p = "layer" + std::to_string(st + 1) + "." + std::to_string(b) + ".";
      const int stride = (b == 0 && st > 0) ? 2 : 1;
      Block blk;
      blk.in_per_image = size_t(c) * hw * hw;
      const int in_c = c, in_hw = hw;
      if (arch->bottleneck) {
        blk.nconv = 3;
        blk.conv[0] = MakeConv(p + "conv1", c, hw, width, 1, 1, 0);
        blk.bn[0] = MakeBn(p + "bn1", width, hw);
        blk.conv[1] = MakeConv(p + "conv2", width, hw, width, 3, stride, 1);
        hw = blk.conv[1].shape.out_h();
        blk.bn[1] = MakeBn(p + "bn2", width, hw);
        blk.conv[2] = MakeConv(p + "conv3", width, hw, width * expansion, 1, 1, 0);
        blk.bn[2] = MakeBn(p + "bn3", width * expansion, hw);
      } else {
        blk.nconv = 2;
        blk.conv[0] = MakeConv(p + "conv1", c, hw, width, 3, stride, 1);
        hw = blk.conv[0].shape.out_h();
        blk.bn[0] = MakeBn(p + "bn1", width, hw);
        blk.conv[1] = MakeConv(p + "conv2", width, hw, width, 3, 1, 1);
        blk.bn[1] = MakeBn(p + "bn2", width, hw);
      }
      c = width * expansion;
      blk.proj = stride != 1 || in_c != c;
      if (blk.proj) {
        blk.pconv = MakeConv(p + "downsample.0", in_c, in_hw, c, 1, stride, 0);
        blk.pbn = MakeBn(p + "downsample.1", c, hw);
      }
      blk.prof_add = AddProf(p + "add_relu");
      blk.out_per_image = size_t(c) * hw * hw;
      blocks_.push_back(std::move(blk));
    }
  }
  feat_c_ = c;
  feat_hw_ = hw;
  fc_tensor_ = AddTensor("fc.weight", {opt.num_classes, c}, false);
  AddTensor("fc.bias", {opt.num_classes}, true);
  prof_head_ = AddProf("gap_fc_loss");

  const size_t total = tensors_.back().offset + tensors_.back().size;
  params_.assign(total, T(0));
  grads_.assign(total, T(0));
  Initialise(seed);
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
  feat_.assign(n * feat_c_, T(0));
  dfeat_.assign(n * feat_c_, T(0));
  logits_.assign(n * opt_.num_classes, T(0));
  probs_.assign(n * opt_.num_classes, T(0));
  dlogits_.assign(n * opt_.num_classes, T(0));
  batch_cap_ = max_batch;
  have_training_forward_ = false;
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
