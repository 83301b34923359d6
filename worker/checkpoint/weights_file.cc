#include "worker/checkpoint/weights_file.h"

#include <cstdlib>
#include <set>

#include "common/error.h"
#include "worker/checkpoint/checkpoint_file.h"

namespace dtrain::ckpt {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> Shape64(const std::vector<int>& shape) { return {shape.begin(), shape.end()}; }

// "X.running_mean" -> "X.num_batches_tracked"
std::string TrackedName(const std::string& running_mean) {
  return running_mean.substr(0, running_mean.rfind('.')) + ".num_batches_tracked";
}

bool Skipped(const std::string& name, const std::vector<std::string>& skip) {
  for (const std::string& p : skip) {
    if (name == p || name.rfind(p + ".", 0) == 0) return true;
  }
  return false;
}

constexpr const char* kOldCheckpoint =
    "a checkpoint written before dtrain recorded the architecture in it; resume the job once to write a "
    "new checkpoint";

const std::string& MetaOf(const CheckpointData& d, const std::string& file, const std::string& key) {
  return MetaEntry(d, file, key, kOldCheckpoint);
}

int IntMeta(const CheckpointData& d, const std::string& file, const std::string& key) {
  return int(MetaInteger(d, file, key, 1, 1 << 20, kOldCheckpoint));
}

}  // namespace

SafetensorsFile WeightsToSafetensors(const model::ResnetArch& arch, const std::vector<float>& params,
                                     const std::vector<float>& bn_running, int64_t step,
                                     const std::map<std::string, std::string>& extra_metadata) {
  if (params.size() != arch.num_params || bn_running.size() != arch.num_buffers) {
    Fail(ErrorCode::kInvalidArgument, arch.name + ": " + std::to_string(params.size()) + " parameters and " +
                                          std::to_string(bn_running.size()) + " BN values given; the model has " +
                                          std::to_string(arch.num_params) + " and " +
                                          std::to_string(arch.num_buffers));
  }
  SafetensorsFile f;
  f.metadata = extra_metadata;
  f.metadata["format"] = "pt";
  f.metadata["producer"] = "dtrain";
  f.metadata["model"] = arch.name;
  f.metadata["step"] = std::to_string(step);
  f.metadata["in_channels"] = std::to_string(arch.in_channels);
  f.metadata["num_classes"] = std::to_string(arch.num_classes);
  f.metadata["image_size"] = std::to_string(arch.image_size);
  auto put = [&](const model::ParamTensor& t, const std::vector<float>& from) {
    SafeTensor& s = f.tensors[t.name];
    s.dtype = "F32";
    s.shape = Shape64(t.shape);
    s.f32.assign(from.begin() + long(t.offset), from.begin() + long(t.offset + t.size));
  };
  for (const auto& t : arch.tensors) put(t, params);
  for (const auto& b : arch.buffers) {
    put(b, bn_running);
    if (b.name.ends_with(".running_mean")) {
      SafeTensor& n = f.tensors[TrackedName(b.name)];
      n.dtype = "I64";
      n.shape = {};
      n.i64 = {step};
    }
  }
  return f;
}

SafetensorsFile ModelCheckpointToSafetensors(const std::string& path,
                                             const std::map<std::string, std::string>& extra_metadata) {
  const CheckpointData d = ReadCheckpointFile(path);
  if (MetaOf(d, path, "kind") != "model") {
    Fail(ErrorCode::kInvalidArgument, path + ": a rank's checkpoint file, not the model's (model.ckpt)");
  }
  const model::ResnetArch arch =
      model::BuildResnetArch(MetaOf(d, path, "model"), IntMeta(d, path, "in_channels"),
                             IntMeta(d, path, "num_classes"), IntMeta(d, path, "image_size"));
  auto tensor = [&](const char* name, size_t size) -> const std::vector<float>& {
    auto it = d.tensors.find(name);
    if (it == d.tensors.end()) Fail(ErrorCode::kDataLoss, path + ": no tensor '" + name + "'");
    if (it->second.size() != size) {
      Fail(ErrorCode::kDataLoss, path + ": tensor '" + name + "' holds " + std::to_string(it->second.size()) +
                                     " values; " + arch.name + " as recorded in the file needs " +
                                     std::to_string(size));
    }
    return it->second;
  };
  const int64_t step = MetaInteger(d, path, "step", 0, INT64_MAX);
  return WeightsToSafetensors(arch, tensor("params", arch.num_params), tensor("bn_running", arch.num_buffers),
                              step, extra_metadata);
}

void ApplySafetensors(const SafetensorsFile& file, const std::string& path, const model::ResnetArch& arch,
                      const std::vector<std::string>& skip, std::vector<float>* params,
                      std::vector<float>* bn_running) {
  if (params->size() != arch.num_params || bn_running->size() != arch.num_buffers) {
    Fail(ErrorCode::kInvalidArgument, "ApplySafetensors: buffers sized for another model than " + arch.name);
  }
  for (const std::string& p : skip) {  // first: a typo would otherwise surface as a shape error
    bool used = false;
    for (const auto& t : arch.tensors) used = used || Skipped(t.name, {p});
    for (const auto& t : arch.buffers) used = used || Skipped(t.name, {p});
    if (!used) {
      Fail(ErrorCode::kInvalidArgument, "init_from_skip: '" + p + "' names no tensor of " + arch.name +
                                            " (e.g. fc, layer4, layer4.2.conv3.weight)");
    }
  }
  std::set<std::string> expected;  // every name the architecture has, skipped or not
  auto load = [&](const model::ParamTensor& t, std::vector<float>* into) {
    expected.insert(t.name);
    if (Skipped(t.name, skip)) return;
    auto it = file.tensors.find(t.name);
    if (it == file.tensors.end()) {
      Fail(ErrorCode::kInvalidArgument, path + ": no tensor '" + t.name + "', which " + arch.name +
                                            " needs (shape " + ShapeText(Shape64(t.shape)) +
                                            "); list it in init_from_skip to keep its initial values");
    }
    const SafeTensor& s = it->second;
    if (s.shape != Shape64(t.shape)) {
      Fail(ErrorCode::kInvalidArgument, path + ": tensor '" + t.name + "' has shape " + ShapeText(s.shape) + "; " +
                                            arch.name + " here needs " + ShapeText(Shape64(t.shape)) +
                                            (t.name.rfind("fc.", 0) == 0
                                                 ? " (another class count? init_from_skip: [fc] re-initialises "
                                                   "the FC layer)"
                                                 : ""));
    }
    if (s.f32.size() != t.size) {
      Fail(ErrorCode::kInvalidArgument, path + ": tensor '" + t.name + "' is " + s.dtype +
                                            "; weights must be floating point (F32, F16, BF16, F64)");
    }
    std::copy(s.f32.begin(), s.f32.end(), into->begin() + long(t.offset));
  };
  for (const auto& t : arch.tensors) load(t, params);
  for (const auto& b : arch.buffers) {
    load(b, bn_running);
    if (b.name.ends_with(".running_mean")) expected.insert(TrackedName(b.name));  // PyTorch's counter: ignored
  }
  std::vector<std::string> extra;
  for (const auto& [name, t] : file.tensors) {
    if (!expected.count(name)) extra.push_back(name);
  }
  if (!extra.empty()) {
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 5; ++i) list += (i ? ", " : "") + extra[i];
    if (extra.size() > 5) list += " and " + std::to_string(extra.size() - 5) + " more";
    Fail(ErrorCode::kInvalidArgument, path + ": " + std::to_string(extra.size()) + " tensor(s) " + arch.name +
                                          " does not have: " + list + " (a file of another model?)");
  }
}

}  // namespace dtrain::ckpt
