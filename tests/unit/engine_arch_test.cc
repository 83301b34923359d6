// The shared ResNet architecture table and the host-side layouts of the CUDA
// engine: ResNet-50's table is torchvision's (161 tensors, 25,557,032
// parameters, the same names in the same order); the CPU model is built from
// the table; KCRS<->KRSC and NCHW<->NHWC converters place every element where
// cuDNN expects it and drop channel padding on the way back; the device
// buffer plan aligns and separates the fp16- and fp32-gradient groups and
// round-trips the canonical state exactly.
#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/layout.h"
#include "worker/engine/device_plan.h"
#include "worker/model/model.h"
#include "worker/model/resnet_arch.h"

namespace dtrain::engine {
namespace {

// torchvision.models.resnetNN().named_parameters(), spelled out the way
// torchvision registers its modules (conv1, bn1, layer1..4 of blocks with
// conv1/bn1/conv2/bn2[/conv3/bn3] then downsample.0/.1, fc).
std::vector<std::string> TorchvisionNames(bool bottleneck, const std::vector<int>& blocks) {
  std::vector<std::string> n = {"conv1.weight", "bn1.weight", "bn1.bias"};
  int in = 64;
  for (int layer = 0; layer < int(blocks.size()); ++layer) {
    const int out = (64 << layer) * (bottleneck ? 4 : 1);
    for (int b = 0; b < blocks[layer]; ++b) {
      const std::string p = "layer" + std::to_string(layer + 1) + "." + std::to_string(b) + ".";
      for (int k = 1; k <= (bottleneck ? 3 : 2); ++k) {
        n.push_back(p + "conv" + std::to_string(k) + ".weight");
        n.push_back(p + "bn" + std::to_string(k) + ".weight");
        n.push_back(p + "bn" + std::to_string(k) + ".bias");
      }
      const bool down = b == 0 && (layer > 0 || in != out);
      if (down) {
        n.push_back(p + "downsample.0.weight");
        n.push_back(p + "downsample.1.weight");
        n.push_back(p + "downsample.1.bias");
      }
      in = out;
    }
  }
  n.push_back("fc.weight");
  n.push_back("fc.bias");
  return n;
}

std::vector<std::string> Names(const model::ResnetArch& a) {
  std::vector<std::string> v;
  for (const auto& t : a.tensors) v.push_back(t.name);
  return v;
}

TEST(ResnetArch, ResNet50IsTorchvisionsResNet50) {
  const model::ResnetArch a = model::BuildResnetArch("resnet50", 3, 1000, 224);
  EXPECT_EQ(a.tensors.size(), 161u);
  EXPECT_EQ(a.num_params, 25557032u);
  EXPECT_EQ(Names(a), TorchvisionNames(true, {3, 4, 6, 3}));
  EXPECT_EQ(a.buffers.size(), 2u * 53);  // 53 BN layers: running_mean, running_var
  EXPECT_EQ(a.buffers.front().name, "bn1.running_mean");
  EXPECT_EQ(a.buffers.back().name, "layer4.2.bn3.running_var");
  EXPECT_EQ(a.tensors[a.stem_conv.tensor].shape, (std::vector<int>{64, 3, 7, 7}));
  EXPECT_EQ(a.tensors[a.fc_tensor].shape, (std::vector<int>{1000, 2048}));
  EXPECT_EQ(a.feat_side, 7);
}

TEST(ResnetArch, ResNet18And101And152AreTorchvisions) {
  EXPECT_EQ(Names(model::BuildResnetArch("resnet18", 3, 1000, 224)), TorchvisionNames(false, {2, 2, 2, 2}));
  EXPECT_EQ(model::BuildResnetArch("resnet18", 3, 1000, 224).num_params, 11689512u);
  EXPECT_EQ(Names(model::BuildResnetArch("resnet101", 3, 1000, 224)), TorchvisionNames(true, {3, 4, 23, 3}));
  EXPECT_EQ(model::BuildResnetArch("resnet101", 3, 1000, 224).num_params, 44549160u);
  EXPECT_EQ(model::BuildResnetArch("resnet152", 3, 1000, 224).num_params, 60192808u);
}

TEST(ResnetArch, TheCpuModelIsBuiltFromTheTable) {
  for (const std::string& name : model::ModelNames()) {
    model::ModelOptions o;
    o.in_channels = 1;
    o.num_classes = 10;
    o.image_size = name == "resnet20" || name == "resnet32" || name == "resnet56" ? 28 : 64;
    const auto m = model::BuildModel<float>(name, o, 1);
    const model::ResnetArch a = model::BuildResnetArch(name, 1, 10, o.image_size);
    ASSERT_EQ(m->tensors().size(), a.tensors.size()) << name;
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      EXPECT_EQ(m->tensors()[i].name, a.tensors[i].name);
      EXPECT_EQ(m->tensors()[i].offset, a.tensors[i].offset);
      EXPECT_EQ(m->tensors()[i].shape, a.tensors[i].shape);
      EXPECT_EQ(m->tensors()[i].no_decay, a.tensors[i].no_decay);
    }
    EXPECT_EQ(m->num_buffers(), a.num_buffers) << name;
  }
}

TEST(ResnetArch, UnknownModelAndBadSizesNameWhatIsAllowed) {
  try {
    model::BuildResnetArch("resnet51", 3, 10, 224);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("allowed: resnet18"), std::string::npos) << e.what();
  }
  try {
    model::BuildResnetArch("resnet50", 3, 10, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("image_size must be > 0"), std::string::npos) << e.what();
  }
}

TEST(Layout, KcrsToKrscPutsEachWeightWhereCudnnReadsIt) {
  const int k = 3, c = 5, r = 2, s = 3, c_pad = 8;
  std::vector<float> kcrs(k * c * r * s);
  std::iota(kcrs.begin(), kcrs.end(), 1.0f);
  std::vector<float> krsc(k * r * s * c_pad, -1.0f), back(kcrs.size(), -1.0f);
  cpu::KcrsToKrsc(kcrs.data(), k, c, r, s, c_pad, krsc.data());
  for (int ki = 0; ki < k; ++ki)
    for (int ri = 0; ri < r; ++ri)
      for (int si = 0; si < s; ++si)
        for (int ci = 0; ci < c_pad; ++ci) {
          const float got = krsc[((ki * r + ri) * s + si) * c_pad + ci];
          const float want = ci < c ? kcrs[((ki * c + ci) * r + ri) * s + si] : 0.0f;
          ASSERT_EQ(got, want) << "k " << ki << " r " << ri << " s " << si << " c " << ci;
        }
  cpu::KrscToKcrs(krsc.data(), k, c, r, s, c_pad, back.data());
  EXPECT_EQ(back, kcrs);
}

TEST(Layout, NchwToNhwcAndBackWithoutPadding) {
  const int n = 2, c = 3, h = 4, w = 5;
  std::vector<uint16_t> nchw(n * c * h * w), nhwc(nchw.size()), back(nchw.size());
  std::iota(nchw.begin(), nchw.end(), uint16_t(0));
  cpu::NchwToNhwc(nchw.data(), n, c, h, w, c, nhwc.data());
  EXPECT_EQ(nhwc[((1 * h + 2) * w + 3) * c + 1], nchw[((1 * c + 1) * h + 2) * w + 3]);
  cpu::NhwcToNchw(nhwc.data(), n, c, h, w, c, back.data());
  EXPECT_EQ(back, nchw);
  EXPECT_THROW(cpu::NchwToNhwc(nchw.data(), n, c, h, w, c - 1, nhwc.data()), Error);
}

TEST(DevicePlan, GroupsAlignmentAndPaddingOfResNet50) {
  const model::ResnetArch a = model::BuildResnetArch("resnet50", 3, 1000, 224);
  const DevicePlan p = PlanDeviceTensors(a);
  ASSERT_EQ(p.tensors.size(), 161u);
  EXPECT_EQ(p.input_c_pad, 8);
  size_t half = 0, flt = 0, end[2] = {0, 0}, padded_params = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const DevicePlacement& d = p.tensors[i];
    const bool weight = a.tensors[i].shape.size() >= 2;
    EXPECT_EQ(d.group, weight ? kHalfGrads : kFloatGrads) << a.tensors[i].name;
    EXPECT_EQ(d.offset % 16, 0u) << a.tensors[i].name;
    EXPECT_GE(d.offset, end[d.group]) << a.tensors[i].name << " overlaps the tensor before it";
    end[d.group] = d.offset + d.size;
    (weight ? half : flt) += 1;
    padded_params += d.size;
  }
  EXPECT_EQ(half, 54u);  // 53 convs + fc.weight
  EXPECT_EQ(flt, 107u);  // 53 BN gamma/beta pairs + fc.bias
  EXPECT_EQ(p.tensors[a.stem_conv.tensor].size, 64u * 7 * 7 * 8);
  EXPECT_EQ(padded_params, a.num_params + 64u * 7 * 7 * 5);  // only the stem grows
  EXPECT_EQ(p.group_elems[0] % 16, 0u);
  EXPECT_GE(p.group_elems[0], end[0]);
  EXPECT_GE(p.group_elems[1], end[1]);
  EXPECT_EQ(p.master_offset(a.fc_tensor + 1), p.group_elems[0] + p.tensors[a.fc_tensor + 1].offset);
}

TEST(DevicePlan, CanonicalStateRoundTripsExactlyWithZeroPadding) {
  const model::ResnetArch a = model::BuildResnetArch("resnet20", 1, 10, 28);
  const DevicePlan p = PlanDeviceTensors(a);
  EXPECT_EQ(p.input_c_pad, 8);
  std::vector<float> canon(a.num_params), master(p.master_elems(), 7.0f), back(a.num_params, -1.0f);
  for (size_t i = 0; i < canon.size(); ++i) canon[i] = float(i % 1000) * 0.001f + 1.0f;  // never 0
  ToDeviceLayout(p, a, canon.data(), master.data());
  ToCanonicalLayout(p, a, master.data(), back.data());
  EXPECT_EQ(back, canon);
  size_t zeros = 0;
  for (float v : master) zeros += v == 0.0f;
  EXPECT_EQ(zeros, p.master_elems() - a.num_params) << "padding must be zeros, every value placed once";
}

}  // namespace
}  // namespace dtrain::engine
