#include "worker/model/resnet_arch.h"

#include "common/error.h"
#include "kernels/cpu/pool.h"

namespace dtrain::model {
namespace {

struct Family {
  const char* name;
  bool cifar;       // 3x3 stem, no pool, 16/32/64 channels
  bool bottleneck;
  int blocks[4];    // per stage; CIFAR uses 3 stages
};

constexpr Family kFamilies[] = {
    {"resnet18", false, false, {2, 2, 2, 2}},
    {"resnet34", false, false, {3, 4, 6, 3}},
    {"resnet50", false, true, {3, 4, 6, 3}},
    {"resnet101", false, true, {3, 4, 23, 3}},
    {"resnet152", false, true, {3, 8, 36, 3}},
    {"resnet20", true, false, {3, 3, 3, 0}},
    {"resnet32", true, false, {5, 5, 5, 0}},
    {"resnet56", true, false, {9, 9, 9, 0}},
};

class Builder {
 public:
  explicit Builder(ResnetArch& a) : a_(a) {}

  int AddTensor(const std::string& name, std::vector<int> shape, bool no_decay) {
    ParamTensor t;
    t.name = name;
    t.offset = a_.num_params;
    t.size = 1;
    for (int d : shape) t.size *= size_t(d);
    t.shape = std::move(shape);
    t.no_decay = no_decay;
    a_.num_params += t.size;
    a_.tensors.push_back(std::move(t));
    return int(a_.tensors.size()) - 1;
  }

  ArchConv Conv(const std::string& name, int c, int side, int k, int r, int stride, int pad) {
    if (side + 2 * pad < r) {
      Fail(ErrorCode::kInvalidArgument,
           "model " + a_.name + ": image_size " + std::to_string(a_.image_size) + " too small (" +
               name + " sees " + std::to_string(side) + "x" + std::to_string(side) + ")");
    }
    ArchConv cv;
    cv.name = name;
    cv.shape = {1, c, side, side, k, r, r, stride, pad};
    cv.shape.Check();
    cv.tensor = AddTensor(name + ".weight", {k, c, r, r}, false);
    return cv;
  }

  ArchBn Bn(const std::string& name, int c, int side) {
    ArchBn bn;
    bn.name = name;
    bn.c = c;
    bn.hw = side * side;
    bn.tensor = AddTensor(name + ".weight", {c}, true);
    AddTensor(name + ".bias", {c}, true);
    bn.running = a_.num_buffers;
    a_.buffers.push_back({name + ".running_mean", a_.num_buffers, size_t(c), {c}, true});
    a_.buffers.push_back({name + ".running_var", a_.num_buffers + c, size_t(c), {c}, true});
    a_.num_buffers += 2 * size_t(c);
    return bn;
  }

 private:
  ResnetArch& a_;
};

}  // namespace

const std::vector<std::string>& ModelNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Family& f : kFamilies) v.push_back(f.name);
    return v;
  }();
  return names;
}

std::vector<const ArchBn*> ResnetArch::AllBns() const {
  std::vector<const ArchBn*> v{&stem_bn};
  for (const ArchBlock& b : blocks) {
    for (int i = 0; i < b.nconv; ++i) v.push_back(&b.bn[i]);
    if (b.proj) v.push_back(&b.pbn);
  }
  return v;
}

ResnetArch BuildResnetArch(const std::string& name, int in_channels, int num_classes,
                           int image_size) {
  const Family* fam = nullptr;
  for (const Family& f : kFamilies)
    if (name == f.name) fam = &f;
  if (!fam) {
    std::string allowed;
    for (const auto& n : ModelNames()) allowed += (allowed.empty() ? "" : ", ") + n;
    Fail(ErrorCode::kInvalidArgument, "unknown model '" + name + "'; allowed: " + allowed);
  }
  if (in_channels <= 0 || num_classes <= 0 || image_size <= 0) {
    Fail(ErrorCode::kInvalidArgument,
         "model options: in_channels, num_classes, image_size must be > 0");
  }
  ResnetArch a;
  a.name = name;
  a.in_channels = in_channels;
  a.num_classes = num_classes;
  a.image_size = image_size;
  Builder b(a);

  int side = image_size, c = in_channels;
  a.stem_c = fam->cifar ? 16 : 64;
  a.stem_conv = fam->cifar ? b.Conv("conv1", c, side, 16, 3, 1, 1) : b.Conv("conv1", c, side, 64, 7, 2, 3);
  side = a.stem_conv.shape.out_h();
  a.stem_side = side;
  a.stem_bn = b.Bn("bn1", a.stem_c, side);
  a.stem_pool = !fam->cifar;
  if (a.stem_pool) {
    cpu::MaxPoolShape ps{1, a.stem_c, side, side, 3, 2, 1};
    ps.Check();
    side = ps.out_h();
  }
  a.pool_side = side;
  c = a.stem_c;

  const int stages = fam->cifar ? 3 : 4;
  const int expansion = fam->bottleneck ? 4 : 1;
  for (int st = 0; st < stages; ++st) {
    const int width = (fam->cifar ? 16 : 64) << st;
    for (int bi = 0; bi < fam->blocks[st]; ++bi) {
      ArchBlock blk;
      blk.name = "layer" + std::to_string(st + 1) + "." + std::to_string(bi);
      const std::string p = blk.name + ".";
      const int stride = (bi == 0 && st > 0) ? 2 : 1;
      blk.in_c = c;
      blk.in_side = side;
      if (fam->bottleneck) {
        blk.nconv = 3;
        blk.conv[0] = b.Conv(p + "conv1", c, side, width, 1, 1, 0);
        blk.bn[0] = b.Bn(p + "bn1", width, side);
        blk.conv[1] = b.Conv(p + "conv2", width, side, width, 3, stride, 1);
        side = blk.conv[1].shape.out_h();
        blk.bn[1] = b.Bn(p + "bn2", width, side);
        blk.conv[2] = b.Conv(p + "conv3", width, side, width * expansion, 1, 1, 0);
        blk.bn[2] = b.Bn(p + "bn3", width * expansion, side);
      } else {
        blk.nconv = 2;
        blk.conv[0] = b.Conv(p + "conv1", c, side, width, 3, stride, 1);
        side = blk.conv[0].shape.out_h();
        blk.bn[0] = b.Bn(p + "bn1", width, side);
        blk.conv[1] = b.Conv(p + "conv2", width, side, width, 3, 1, 1);
        blk.bn[1] = b.Bn(p + "bn2", width, side);
      }
      c = width * expansion;
      blk.proj = stride != 1 || blk.in_c != c;
      if (blk.proj) {
        blk.pconv = b.Conv(p + "downsample.0", blk.in_c, blk.in_side, c, 1, stride, 0);
        blk.pbn = b.Bn(p + "downsample.1", c, side);
      }
      blk.out_c = c;
      blk.out_side = side;
      a.blocks.push_back(std::move(blk));
    }
  }
  a.feat_c = c;
  a.feat_side = side;
  a.fc_tensor = b.AddTensor("fc.weight", {num_classes, c}, false);
  b.AddTensor("fc.bias", {num_classes}, true);
  return a;
}

}  // namespace dtrain::model
