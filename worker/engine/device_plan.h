// DevicePlan: where the CUDA engine keeps each parameter tensor of a
// ResnetArch, computed on the host (no CUDA), so it can be tested anywhere.
//
// Two groups, each one flat region, by the precision of the gradient:
//   group 0 (kHalfGrads): conv weights (KRSC [k][r][s][c_pad]) and fc.weight
//     ([classes][features]); fp16 weight copies and fp16 gradients;
//   group 1 (kFloatGrads): BN gamma/beta and fc.bias ([c]); fp32 gradients
//     (their sums over the batch overflow fp16 under loss scaling).
// Inside a group tensors keep the architecture's order, each at an offset
// aligned to align_elems elements (16 -> 32-byte fp16 / 64-byte fp32 rows:
// vector loads and cuDNN's 16-byte pointer alignment); the gaps are zeros.
// The fp32 master weights and momentum are one buffer: group 0's region,
// then group 1's (master_offset). The stem's input channels are padded to a
// multiple of input_channel_multiple (zero channels, zero weights), which
// cuDNN's NHWC fp16 kernels need; ToDevice/ToCanonical convert between this
// layout and the canonical one (train_engine.h) and drop the padding.
#pragma once

#include <cstddef>
#include <vector>

#include "worker/model/resnet_arch.h"

namespace dtrain::engine {

enum DeviceGroup { kHalfGrads = 0, kFloatGrads = 1 };

struct DevicePlacement {
  int group = kHalfGrads;
  size_t offset = 0;   // elements into the group's region
  size_t size = 0;     // elements in the device layout (with channel padding)
  bool krsc = false;   // a conv weight, stored KRSC
  int k = 0, c = 0, r = 0, s = 0, c_pad = 0;  // conv only
};

struct DevicePlan {
  std::vector<DevicePlacement> tensors;  // the architecture's order
  size_t group_elems[2] = {0, 0};        // region sizes, multiples of align
  int align_elems = 16;
  int input_channels = 0, input_c_pad = 0;
  size_t master_elems() const { return group_elems[0] + group_elems[1]; }
  size_t master_offset(int t) const {
    return (tensors[t].group == kHalfGrads ? 0 : group_elems[0]) + tensors[t].offset;
  }
};

// Throws Error(kInvalidArgument) for align_elems or input_channel_multiple < 1.
DevicePlan PlanDeviceTensors(const model::ResnetArch& arch, int align_elems = 16,
                             int input_channel_multiple = 8);

// canonical: arch.num_params floats (train_engine.h); master: master_elems()
// floats, padding written as zeros.
void ToDeviceLayout(const DevicePlan& plan, const model::ResnetArch& arch, const float* canonical,
                    float* master);
void ToCanonicalLayout(const DevicePlan& plan, const model::ResnetArch& arch, const float* master,
                       float* canonical);

}  // namespace dtrain::engine
