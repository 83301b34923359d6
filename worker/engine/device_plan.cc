#include "worker/engine/device_plan.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/layout.h"

namespace dtrain::engine {
namespace {

size_t RoundUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

}  // namespace

DevicePlan PlanDeviceTensors(const model::ResnetArch& arch, int align_elems, int input_channel_multiple) {
  if (align_elems < 1 || input_channel_multiple < 1) {
    Fail(ErrorCode::kInvalidArgument, "device plan: align_elems and input_channel_multiple must be >= 1");
  }
  DevicePlan plan;
  plan.align_elems = align_elems;
  plan.input_channels = arch.in_channels;
  plan.input_c_pad = int(RoundUp(size_t(arch.in_channels), size_t(input_channel_multiple)));
  for (size_t i = 0; i < arch.tensors.size(); ++i) {
    const model::ParamTensor& t = arch.tensors[i];
    DevicePlacement d;
    d.group = t.shape.size() >= 2 ? kHalfGrads : kFloatGrads;
    d.size = t.size;
    if (t.shape.size() == 4) {
      d.krsc = true;
      d.k = t.shape[0];
      d.c = t.shape[1];
      d.r = t.shape[2];
      d.s = t.shape[3];
      d.c_pad = int(i) == arch.stem_conv.tensor ? plan.input_c_pad : d.c;
      d.size = size_t(d.k) * d.r * d.s * d.c_pad;
    }
    d.offset = plan.group_elems[d.group];
    plan.group_elems[d.group] = RoundUp(d.offset + d.size, size_t(align_elems));
    plan.tensors.push_back(d);
  }
  return plan;
}

void ToDeviceLayout(const DevicePlan& plan, const model::ResnetArch& arch, const float* canonical, float* master) {
  std::fill(master, master + plan.master_elems(), 0.0f);
  for (size_t i = 0; i < arch.tensors.size(); ++i) {
    const DevicePlacement& d = plan.tensors[i];
    const float* src = canonical + arch.tensors[i].offset;
    float* dst = master + plan.master_offset(int(i));
    if (d.krsc) {
      cpu::KcrsToKrsc(src, d.k, d.c, d.r, d.s, d.c_pad, dst);
    } else {
      std::memcpy(dst, src, arch.tensors[i].size * sizeof(float));
    }
  }
}

void ToCanonicalLayout(const DevicePlan& plan, const model::ResnetArch& arch, const float* master,
                       float* canonical) {
  for (size_t i = 0; i < arch.tensors.size(); ++i) {
    const DevicePlacement& d = plan.tensors[i];
    const float* src = master + plan.master_offset(int(i));
    float* dst = canonical + arch.tensors[i].offset;
    if (d.krsc) {
      cpu::KrscToKcrs(src, d.k, d.c, d.r, d.s, d.c_pad, dst);
    } else {
      std::memcpy(dst, src, arch.tensors[i].size * sizeof(float));
    }
  }
}

}  // namespace dtrain::engine
