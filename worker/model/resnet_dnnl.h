// The CPU engine's fast body: Model<float>'s layers from the stem to the
// global average pool on oneDNN (kernels/dnnl): convolutions, batch norm with
// its ReLU fused, add+ReLU and pooling, every activation and its gradient in
// the layout oneDNN's convolutions prefer (blocked, e.g. nChw8c), converted
// only at the edges (the stem reads the NCHW images as they are; the pool
// hands the FC a plain [n, c]). Parameters, gradients, BN running statistics,
// profiling and the on_ready order are the model's and the reference's
// (model.h); results equal the reference's within fp32 rounding.
//
// Buffers grow on the first step of a batch size and are kept; primitives are
// created once per shape. Built only with oneDNN (HaveOneDnn()).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "kernels/dnnl/batch_norm_dnnl.h"
#include "kernels/dnnl/conv2d_dnnl.h"
#include "kernels/dnnl/eltwise_dnnl.h"
#include "kernels/dnnl/pool_dnnl.h"
#include "worker/model/model.h"

namespace dtrain::model {

class ResnetDnnl final : public BodyKernels {
 public:
  ResnetDnnl(Model<float>& m, int threads);
  void Forward(const float* images, int n, bool training) override;
  void Backward(int n, const float* images, const std::function<void(int)>& on_ready) override;

 private:
  using M = Model<float>;
  using Buffer = onednn::Buffer;
  using Desc = onednn::Desc;
  struct BnState {  // per BN: batch statistics and the fused ReLU's mask
    std::vector<float> mean, var;
    Buffer ws;
  };
  struct BlockActs {  // as Model::Block's, in oneDNN layouts
    Buffer cout[3], act[2], out, pout, pbn_out;
    Desc cd[3], pd;  // layouts of the conv outputs (= their BN outputs)
  };

  // y (layout *yd) = conv(x in layout xd).
  float* Conv(M::Conv& cv, const Desc& xd, const float* x, int n, Buffer& y, Desc* yd);
  void BnForward(M::Bn& bn, const Desc& d, const float* x, float* y, bool training, bool relu);
  // g: dL/d(BN output) (of its ReLU when relu) -> dx (may alias g).
  void BnBackward(M::Bn& bn, const Desc& d, const float* x, const float* g, float* dx, bool relu,
                  const std::function<void(int)>& on_ready);
  void ConvBackward(M::Conv& cv, const Desc& xd, const float* x, const Desc& dyd,
                    const float* dy, float* dx, bool accumulate, int n,
                    const std::function<void(int)>& on_ready);
  float* Grow(Buffer& b, const Desc& d);

  M& m_;
  onednn::Conv2dDnnl conv_;
  onednn::BatchNormDnnl bn_;
  onednn::EltwiseDnnl elt_;
  onednn::PoolDnnl pool_;
  std::vector<BnState> bn_state_;  // by the BN's profile index
  std::vector<BlockActs> acts_;    // by block
  Buffer stem_cout_, stem_act_, pool_out_, pool_ws_;
  Desc image_d_, stem_d_, pool_d_;
  Buffer grad_[3];
  size_t max_bytes_ = 0;  // the largest activation of the last forward
};

}  // namespace dtrain::model
