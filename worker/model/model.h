// ResNet models on the CPU kernels (NCHW, T = float for training, double for
// gradient checks).
//
// Names: resnet18/34 (basic blocks), resnet50/101/152 (bottleneck v1.5, stride
// in the 3x3 conv); all ImageNet-style: 7x7/2 stem + 3x3/2 max pool, stages of
// 64/128/256/512 (x4 for bottlenecks). resnet20/32/56: CIFAR-style, 3x3/1 stem,
// 3 stages of 16/32/64 channels, basic blocks, option-B shortcuts (1x1 conv +
// BN where the shape changes). Every model ends in global average pool + FC.
//
// Conventions the trainer relies on:
//  * params(): ONE contiguous buffer of num_params() values, tensors in
//    forward order; grads() has the same layout. tensors() describes each
//    (PyTorch-style names, e.g. "layer1.0.conv1.weight"); no_decay marks BN
//    gamma/beta and biases (no weight decay, no LARS scaling).
//  * BN running mean/var live in buffers() (described by buffer_tensors()).
//  * Backward() overwrites every gradient, in reverse layer order, and calls
//    on_ready(tensor_index) as soon as that tensor's gradient is final; the
//    indices arrive strictly decreasing, each exactly once.
//  * Weights come from the seed alone (same seed -> bit-identical weights on
//    every rank): convs kaiming-normal, mode fan_out (std = sqrt(2/(k*r*s)));
//    FC weight and bias uniform(+-1/sqrt(fan_in)) (PyTorch's default); BN
//    gamma = 1 (0 on each block's last BN if zero_init_residual), beta = 0;
//    running mean 0, var 1. RNG: splitmix64 + Box-Muller, one stream per tensor.
//  * Activation buffers are sized for a max batch (options.max_batch, or the
//    first Forward's batch; a larger batch later re-reserves). Steps do not
//    allocate. BLAS threads are the caller's setting.
//  * Kernels (options.kernels): "reference" runs kernels/cpu (im2col + BLAS,
//    NCHW; float or double, the gradient checks' path); "onednn" (float only,
//    with batch_norm, in builds with oneDNN: HaveOneDnn()) runs the layers up
//    to the global average pool on kernels/dnnl in oneDNN's blocked layouts
//    (resnet_dnnl.h) with options.threads OpenMP threads. The FC and the loss
//    are the reference's either way; the contract above holds for both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/conv2d.h"
#include "worker/model/resnet_arch.h"

namespace dtrain::model {

class ResnetDnnl;

// The layers from the stem to the global average pool on other kernels than
// the reference's (resnet_dnnl.h): Forward leaves the pooled features in the
// model's feat buffer, Backward starts from its dfeat buffer and calls
// on_ready as the reference does.
class BodyKernels {
 public:
  virtual ~BodyKernels() = default;
  virtual void Forward(const float* images, int n, bool training) = 0;
  virtual void Backward(int n, const float* images,
                        const std::function<void(int)>& on_ready) = 0;
};

struct ModelOptions {
  int in_channels = 3;
  int num_classes = 1000;
  int image_size = 224;         // square inputs, image_size x image_size
  double bn_momentum = 0.9;     // running = m * running + (1 - m) * batch
  double bn_epsilon = 1e-5;
  bool zero_init_residual = false;
  // false: no batch statistics; every BN becomes a learned per-channel affine
  // gamma * x + beta (same tensors, running buffers unused), so the gradient
  // of a batch split across ranks equals that of the whole batch.
  bool batch_norm = true;
  int max_batch = 0;            // >0: reserve activations at build time
  std::string kernels = "reference";  // "reference" | "onednn" (see above)
  int threads = 1;              // oneDNN's threads per call ("onednn")
};

// Whether this build has the oneDNN kernels (kernels/dnnl), and what they run
// on ("oneDNN 2.6.3 (cpu runtime OMP, isa avx2)"; "" without them).
bool HaveOneDnn();
std::string OneDnnInfo();
// "auto" -> "onednn" when HaveOneDnn() and the model has batch norm, else
// "reference"; "onednn" / "reference" pass through when possible. Throws
// kInvalidArgument for other names and kUnavailable for "onednn" without it.
std::string ResolveKernels(const std::string& requested, bool batch_norm);

struct StepResult {
  double loss = 0;      // mean over the batch
  int64_t correct = 0;  // top-1
};

// Seconds spent per layer since the last ResetProfile() (profiling on only).
struct LayerTime {
  std::string name;
  double forward_s = 0, backward_s = 0;
};

// BuildModel accepts ModelNames() (resnet_arch.h).

// FNV-1a 64 over bytes.
uint64_t Fnv1a64(const void* data, size_t bytes);

template <typename T>
class Model {
 public:
  const std::string& name() const { return name_; }
  const ModelOptions& options() const { return opt_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const std::vector<ParamTensor>& buffer_tensors() const { return buffer_tensors_; }
  const ResnetArch& arch() const { return arch_; }
  size_t num_params() const { return params_.size(); }
  T* params() { return params_.data(); }
  const T* params() const { return params_.data(); }
  T* grads() { return grads_.data(); }
  const T* grads() const { return grads_.data(); }
  T* buffers() { return buffers_.data(); }
  size_t num_buffers() const { return buffers_.size(); }

  // Sizes activation buffers for batches up to max_batch (allocates).
  void Reserve(int max_batch);
  int reserved_batch() const { return batch_cap_; }

  // images: [n, in_channels, image_size, image_size]; labels in
  // [0, num_classes). training: batch-statistics BN (running stats updated)
  // and state kept for Backward (images and labels must stay valid until
  // Backward returns); otherwise running-stats BN.
  StepResult Forward(const T* images, const int32_t* labels, int n,
                     bool training, double label_smoothing);
  // Gradients of the last training Forward's mean loss.
  void Backward(const std::function<void(int tensor_index)>& on_ready = {});
  // Inference-mode forward; returns the top-1 correct count.
  int64_t Predict(const T* images, const int32_t* labels, int n);
  // The BN running-average momentum (ModelOptions::bn_momentum), changeable
  // between steps (precise BN's cumulative mean sets it per batch).
  double bn_momentum() const { return opt_.bn_momentum; }
  void set_bn_momentum(double m) { opt_.bn_momentum = m; }
  // Logits [n, num_classes] of the last Forward/Predict.
  const T* logits() const { return logits_.data(); }

  // "reference" or "onednn": the kernels this model runs on.
  const std::string& kernels() const { return opt_.kernels; }

  // FNV-1a over the parameter bytes, then the buffer bytes.
  uint64_t Checksum() const;

  void set_profiling(bool on) { profiling_ = on; }
  void ResetProfile();
  const std::vector<LayerTime>& profile() const { return profile_; }

 private:
  template <typename U>
  friend std::unique_ptr<Model<U>> BuildModel(const std::string&,
                                              const ModelOptions&, uint64_t);
  friend class ResnetDnnl;
  struct Conv {
    cpu::Conv2dShape shape;  // shape.n is set per call
    int tensor = -1;
    int prof = -1;
  };
  struct Bn {
    int c = 0, hw = 0;
    int tensor = -1;  // gamma; beta is tensor + 1
    size_t running = 0;  // running mean at buffers_[running], var after it
    std::vector<T> mean, inv_std;
    int prof = -1;
  };
  struct Block {
    int nconv = 0;  // 2 basic, 3 bottleneck
    Conv conv[3];
    Bn bn[3];
    bool proj = false;
    Conv pconv;
    Bn pbn;
    int prof_add = -1;
    size_t in_per_image = 0, out_per_image = 0;
    // activations: conv outputs, relu(bn) outputs, block output, shortcut
    std::vector<T> cout[3], act[2], out, pout, pbn_out;
  };

  Model() = default;
  Conv MakeConv(const ArchConv& ac);
  Bn MakeBn(const ArchBn& ab);
  int AddProf(const std::string& name);
  void Build(const std::string& name, const ModelOptions& opt, uint64_t seed);
  void Initialise(uint64_t seed);

  void ConvForward(Conv& cv, const T* x, T* y, int n);
  void BnForward(Bn& bn, const T* x, T* y, int n, bool training, bool relu);
  void BnBackward(Bn& bn, const T* x, T* g, const T* relu_y, int n,
                  const std::function<void(int)>& on_ready);
  void ConvBackward(Conv& cv, const T* x, const T* dy, T* dx, bool accumulate,
                    int n, const std::function<void(int)>& on_ready);
  void Tic();
  void Toc(int prof, bool backward);
  // The reference layers up to the global average pool (-> feat_), and back
  // from dfeat_ to the stem.
  void BodyForward(const T* images, int n, bool training);
  void BodyBackward(int n, const std::function<void(int)>& on_ready);

  std::string name_;
  ModelOptions opt_;
  ResnetArch arch_;
  std::vector<ParamTensor> tensors_, buffer_tensors_;
  std::vector<T> params_, grads_, buffers_;

  // structure
  Conv stem_conv_;
  Bn stem_bn_;
  bool stem_pool_ = false;
  int stem_prof_pool_ = -1;
  int stem_c_ = 0, stem_hw_ = 0, pool_hw_ = 0;
  std::vector<Block> blocks_;
  int feat_c_ = 0, feat_hw_ = 0;
  int fc_tensor_ = -1, prof_head_ = -1;

  // activations (sized by Reserve)
  int batch_cap_ = 0;
  int last_n_ = 0;
  bool have_training_forward_ = false;
  double last_smoothing_ = 0;
  const T* last_images_ = nullptr;
  const int32_t* last_labels_ = nullptr;
  std::vector<T> stem_cout_, stem_act_, pool_out_;
  std::vector<int32_t> pool_argmax_;
  std::vector<T> feat_, logits_, probs_, dfeat_, dlogits_;
  std::vector<T> grad_[3];
  std::vector<T> workspace_;

  bool profiling_ = false;
  std::vector<LayerTime> profile_;
  double tic_ = 0;

  std::unique_ptr<BodyKernels> fast_body_;  // set when kernels == "onednn"
};

// Builds a model by name (see ModelNames()); unknown names and impossible
// options throw kInvalidArgument.
template <typename T>
std::unique_ptr<Model<T>> BuildModel(const std::string& name,
                                     const ModelOptions& options,
                                     uint64_t seed);

}  // namespace dtrain::model
