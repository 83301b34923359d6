// The ResNet architecture table: ONE description of every model of the family
// (layers, shapes, tensor names in torchvision's spelling, tensor order), read
// by the CPU model (worker/model/model.h) and the CUDA engine
// (worker/engine/cuda_engine.cc), so parameter tables, checkpoints and
// exported names are identical in both.
//
// Models: resnet18/34 (basic blocks), resnet50/101/152 (bottleneck v1.5,
// stride in the 3x3 conv): 7x7/2 stem + 3x3/2 max pool, stages of
// 64/128/256/512 (x4 for bottlenecks). resnet20/32/56 (CIFAR-style): 3x3/1
// stem, no pool, 3 stages of 16/32/64, basic blocks, option-B shortcuts
// (1x1 conv + BN where the shape changes). All end in global average pool + FC.
//
// Tensors, in forward order (contiguous offsets): conv weights [k, c, r, s]
// ("X.weight"), BN gamma and beta ("X.weight", "X.bias", no_decay), per block
// convs/BNs then the shortcut ("layerS.B.downsample.0/1"), then "fc.weight"
// [classes, features] and "fc.bias" (no_decay). Buffers: per BN
// "X.running_mean" then "X.running_var". ResNet-50 at 1,000 classes: 161
// tensors, 25,557,032 parameters (torchvision's resnet50 exactly).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d.h"

namespace dtrain::model {

struct ParamTensor {
  std::string name;
  size_t offset = 0;  // in elements, into the flat parameter (or buffer) array
  size_t size = 0;
  std::vector<int> shape;
  bool no_decay = false;  // BN gamma/beta and biases
};

struct ArchConv {
  std::string name;         // "layer1.0.conv1"
  cpu::Conv2dShape shape;   // shape.n = 1 (set per call)
  int tensor = -1;          // its weight
};

struct ArchBn {
  std::string name;         // "layer1.0.bn1"
  int c = 0, hw = 0;        // channels, spatial size h*w
  int tensor = -1;          // gamma; beta is tensor + 1
  size_t running = 0;       // buffer offset of running_mean; running_var follows (c values)
};

struct ArchBlock {
  std::string name;         // "layer1.0"
  int nconv = 0;            // 2 basic, 3 bottleneck
  ArchConv conv[3];
  ArchBn bn[3];
  bool proj = false;        // projection shortcut (downsample.0 conv, downsample.1 BN)
  ArchConv pconv;
  ArchBn pbn;
  int in_c = 0, in_side = 0, out_c = 0, out_side = 0;
};

struct ResnetArch {
  std::string name;
  int in_channels = 0, num_classes = 0, image_size = 0;
  ArchConv stem_conv;
  ArchBn stem_bn;
  bool stem_pool = false;   // 3x3/2 max pool, pad 1
  int stem_c = 0, stem_side = 0, pool_side = 0;
  std::vector<ArchBlock> blocks;
  int feat_c = 0, feat_side = 0;
  int fc_tensor = -1;       // fc.weight; fc.bias is fc_tensor + 1
  std::vector<ParamTensor> tensors;   // forward order, contiguous
  std::vector<ParamTensor> buffers;   // BN running statistics
  size_t num_params = 0, num_buffers = 0;
  std::vector<const ArchBn*> AllBns() const;  // forward order
};

// Names BuildResnetArch accepts.
const std::vector<std::string>& ModelNames();

// Unknown names and impossible sizes (e.g. an image too small for the stem)
// throw Error(kInvalidArgument) naming the model, the layer and what is allowed.
ResnetArch BuildResnetArch(const std::string& name, int in_channels, int num_classes,
                           int image_size);

}  // namespace dtrain::model
