// Weights out and in (worker/checkpoint/weights_file.h): the safetensors form
// of a model has exactly torchvision's state_dict keys and shapes, round-trips
// bit for bit, and loading a file that does not fit names the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/checkpoint/checkpoint_file.h"
#include "worker/checkpoint/weights_file.h"

namespace dtrain::ckpt {
namespace {

struct Weights {
  model::ResnetArch arch;
  std::vector<float> params, bn;
};

Weights Numbered(const std::string& model, int in_channels, int classes, int image_size, float base) {
  Weights w{model::BuildResnetArch(model, in_channels, classes, image_size), {}, {}};
  w.params.resize(w.arch.num_params);
  w.bn.resize(w.arch.num_buffers);
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = base + float(i % 1009) * 0.001f;
  for (size_t i = 0; i < w.bn.size(); ++i) w.bn[i] = base + 0.5f + float(i % 613) * 0.01f;
  return w;
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Weights, SafetensorsHoldEveryTensorUnderTorchvisionNamesWithTheCounterPerBn) {
  const Weights w = Numbered("resnet18", 3, 1000, 224, 0.0f);
  const SafetensorsFile f = WeightsToSafetensors(w.arch, w.params, w.bn, 77, {{"job_id", "job-000009"}});
  // torchvision resnet18's state_dict: 62 parameters, 20 BNs x (mean, var, num_batches_tracked).
  EXPECT_EQ(f.tensors.size(), 62u + 20u * 3u);
  EXPECT_EQ(f.tensors.at("conv1.weight").shape, (std::vector<int64_t>{64, 3, 7, 7}));
  EXPECT_EQ(f.tensors.at("layer2.0.downsample.0.weight").shape, (std::vector<int64_t>{128, 64, 1, 1}));
  EXPECT_EQ(f.tensors.at("layer4.1.bn2.running_var").shape, (std::vector<int64_t>{512}));
  EXPECT_EQ(f.tensors.at("fc.weight").shape, (std::vector<int64_t>{1000, 512}));
  const SafeTensor& counter = f.tensors.at("layer1.0.bn1.num_batches_tracked");
  EXPECT_EQ(counter.dtype, "I64");
  EXPECT_TRUE(counter.shape.empty());
  EXPECT_EQ(counter.i64, (std::vector<int64_t>{77}));
  const auto& fc = w.arch.tensors[size_t(w.arch.fc_tensor)];
  EXPECT_EQ(f.tensors.at("fc.weight").f32,
            std::vector<float>(w.params.begin() + long(fc.offset), w.params.begin() + long(fc.offset + fc.size)));
  EXPECT_EQ(f.metadata.at("model"), "resnet18");
  EXPECT_EQ(f.metadata.at("step"), "77");
  EXPECT_EQ(f.metadata.at("num_classes"), "1000");
  EXPECT_EQ(f.metadata.at("job_id"), "job-000009");
  EXPECT_EQ(f.metadata.at("format"), "pt");
}

TEST(Weights, ApplyingTheExportRestoresEveryValueBitForBit) {
  const Weights w = Numbered("resnet20", 1, 10, 28, 0.25f);
  Weights into = Numbered("resnet20", 1, 10, 28, -3.0f);
  // Through the bytes of a real file.
  const std::string path = testing::TempDir() + "/weights_roundtrip.safetensors";
  WriteSafetensorsFile(path, WeightsToSafetensors(w.arch, w.params, w.bn, 5, {}));
  ApplySafetensors(ReadSafetensorsFile(path), path, into.arch, {}, &into.params, &into.bn);
  EXPECT_EQ(into.params, w.params);
  EXPECT_EQ(into.bn, w.bn);
  std::filesystem::remove(path);
}

TEST(Weights, AnotherClassCountNamesTheFcLayerAndSkippingItKeepsItsInitialValues) {
  const Weights file = Numbered("resnet20", 1, 12, 28, 0.25f);
  const SafetensorsFile f = WeightsToSafetensors(file.arch, file.params, file.bn, 5, {});
  Weights into = Numbered("resnet20", 1, 10, 28, -3.0f);
  const std::string e = ErrorOf([&] { ApplySafetensors(f, "/w/a.safetensors", into.arch, {}, &into.params, &into.bn); });
  EXPECT_NE(e.find("/w/a.safetensors: tensor 'fc.weight' has shape [12, 64]; resnet20 here needs [10, 64]"),
            std::string::npos) << e;
  EXPECT_NE(e.find("init_from_skip: [fc]"), std::string::npos) << e;

  const std::vector<float> before = into.params;
  ApplySafetensors(f, "/w/a.safetensors", into.arch, {"fc"}, &into.params, &into.bn);
  const auto& fc = into.arch.tensors[size_t(into.arch.fc_tensor)];
  for (size_t i = 0; i < into.params.size(); ++i) {
    const bool in_fc = i >= fc.offset;  // fc.weight then fc.bias close the parameter list
    ASSERT_EQ(into.params[i], in_fc ? before[i] : file.params[i]) << "parameter " << i;
  }
  EXPECT_EQ(into.bn, file.bn);
  const std::string typo =
      ErrorOf([&] { ApplySafetensors(f, "/w/a.safetensors", into.arch, {"fcc"}, &into.params, &into.bn); });
  EXPECT_NE(typo.find("init_from_skip: 'fcc' names no tensor of resnet20"), std::string::npos) << typo;
}

TEST(Weights, MissingExtraAndNonFloatTensorsAreNamed) {
  const Weights w = Numbered("resnet20", 1, 10, 28, 0.25f);
  Weights into = Numbered("resnet20", 1, 10, 28, -3.0f);
  SafetensorsFile missing = WeightsToSafetensors(w.arch, w.params, w.bn, 5, {});
  missing.tensors.erase("layer2.1.bn2.running_var");
  std::string e = ErrorOf([&] { ApplySafetensors(missing, "m.st", into.arch, {}, &into.params, &into.bn); });
  EXPECT_NE(e.find("m.st: no tensor 'layer2.1.bn2.running_var', which resnet20 needs (shape [32])"),
            std::string::npos) << e;

  // A deeper model's file: resnet56 has layer1.3 ... which resnet20 has not.
  const Weights deep = Numbered("resnet56", 1, 10, 28, 0.25f);
  e = ErrorOf([&] {
    ApplySafetensors(WeightsToSafetensors(deep.arch, deep.params, deep.bn, 5, {}), "deep.st", into.arch, {},
                     &into.params, &into.bn);
  });
  EXPECT_NE(e.find("deep.st: "), std::string::npos) << e;
  EXPECT_NE(e.find("tensor(s) resnet20 does not have: layer1.3."), std::string::npos) << e;
  EXPECT_NE(e.find("(a file of another model?)"), std::string::npos) << e;

  SafetensorsFile ints = WeightsToSafetensors(w.arch, w.params, w.bn, 5, {});
  SafeTensor& t = ints.tensors.at("conv1.weight");
  t.dtype = "I64";
  t.i64.assign(t.f32.size(), 1);
  t.f32.clear();
  e = ErrorOf([&] { ApplySafetensors(ints, "i.st", into.arch, {}, &into.params, &into.bn); });
  EXPECT_NE(e.find("i.st: tensor 'conv1.weight' is I64; weights must be floating point"), std::string::npos) << e;
}

TEST(Weights, AModelCheckpointExportsWithItsRecordedArchitectureAndAnOldOneIsRefusedByName) {
  const Weights w = Numbered("resnet20", 1, 10, 28, 0.25f);
  CheckpointData d;
  d.meta = {{"kind", "model"}, {"model", "resnet20"}, {"in_channels", "1"}, {"num_classes", "10"},
            {"image_size", "28"}, {"step", "64"}};
  d.tensors["params"] = w.params;
  d.tensors["bn_running"] = w.bn;
  d.tensors["momentum"] = std::vector<float>(w.params.size(), 0.0f);
  const std::string path = testing::TempDir() + "/weights_model.ckpt";
  WriteCheckpointFile(path, d);
  const SafetensorsFile f = ModelCheckpointToSafetensors(path, {{"job_id", "j"}});
  EXPECT_EQ(f.metadata.at("step"), "64");
  EXPECT_EQ(f.tensors.at("layer3.2.bn2.num_batches_tracked").i64, (std::vector<int64_t>{64}));
  Weights into = Numbered("resnet20", 1, 10, 28, -3.0f);
  ApplySafetensors(f, path, into.arch, {}, &into.params, &into.bn);
  EXPECT_EQ(into.params, w.params);

  d.meta.erase("num_classes");
  WriteCheckpointFile(path, d);
  const std::string e = ErrorOf([&] { ModelCheckpointToSafetensors(path, {}); });
  EXPECT_NE(e.find(path + ": checkpoint has no 'num_classes' entry"), std::string::npos) << e;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace dtrain::ckpt
