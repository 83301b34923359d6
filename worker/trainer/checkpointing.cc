#include "worker/trainer/checkpointing.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "worker/checkpoint/checkpoint_dirs.h"
#include "worker/checkpoint/checkpoint_file.h"
#include "worker/checkpoint/weights_file.h"

namespace dtrain::trainer {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "dtrain-train-1";

const std::string& Meta(const ckpt::CheckpointData& d, const std::string& file, const std::string& key) {
  return ckpt::MetaEntry(d, file, key, "not written by this dtrain?");
}

int64_t MetaInt(const ckpt::CheckpointData& d, const std::string& file, const std::string& key) {
  return ckpt::MetaInteger(d, file, key, INT64_MIN, INT64_MAX, "not written by this dtrain?");
}

const std::vector<float>& Tensor(const ckpt::CheckpointData& d, const std::string& file,
                                 const std::string& name, size_t size) {
  auto it = d.tensors.find(name);
  if (it == d.tensors.end()) Fail(ErrorCode::kDataLoss, file + ": checkpoint has no tensor '" + name + "'");
  if (it->second.size() != size) {
    Fail(ErrorCode::kInvalidArgument, file + ": tensor '" + name + "' holds " +
                                          std::to_string(it->second.size()) + " values; this model needs " +
                                          std::to_string(size));
  }
  return it->second;
}

void Expect(const std::string& file, const std::string& what, const std::string& have,
            const std::string& want, const std::string& hint = "") {
  if (have == want) return;
  Fail(ErrorCode::kInvalidArgument, "refusing checkpoint " + file + ": it was written with " + what +
                                        " " + have + ", this job has " + want + hint);
}

std::string FormatScale(double scale) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", scale);
  return buf;
}

double ParseScale(const ckpt::CheckpointData& d, const std::string& file) {
  const std::string& v = Meta(d, file, "loss_scale");
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(x > 0) || !std::isfinite(x)) {
    Fail(ErrorCode::kDataLoss, file + ": checkpoint entry 'loss_scale' is '" + v + "', not a positive number");
  }
  return x;
}

}  // namespace

std::string CheckpointStepDir(const std::string& job_dir, int64_t step) {
  return ckpt::StepDirPath(job_dir, step);
}

bool CheckpointDue(const CheckpointSpec& spec, int64_t steps_done, int64_t steps_per_epoch) {
  if (spec.dir.empty()) return false;
  if (spec.every_steps > 0 && steps_done % spec.every_steps == 0) return true;
  if (spec.every_epochs > 0) {
    const int64_t every = std::max<int64_t>(1, std::llround(spec.every_epochs * double(steps_per_epoch)));
    if (steps_done % every == 0) return true;
  }
  return false;
}

void WriteCheckpoint(const std::string& dir, const JobSpec& spec, const RunPosition& pos,
                     int64_t steps_done, engine::TrainEngine& engine) {
  engine::EngineState st;
  engine.ExportState(&st);
  ckpt::CheckpointData r;
  r.meta = {{"format", kFormat},
            {"kind", "rank"},
            {"rank", std::to_string(pos.rank)},
            {"world_size", std::to_string(pos.world_size)},
            {"step", std::to_string(steps_done)},
            {"data_epoch", std::to_string(steps_done / pos.steps_per_epoch)},
            {"data_step", std::to_string(steps_done % pos.steps_per_epoch)},
            {"rng", "counter-based: (seed, epoch, image index); the data position is the state"}};
  r.tensors["bn_running"] = st.bn_running;
  ckpt::WriteCheckpointFile(dir + "/rank-" + std::to_string(pos.rank) + ".ckpt", r);
  if (pos.rank != 0) return;
  ckpt::CheckpointData m;
  m.meta = {{"format", kFormat},
            {"kind", "model"},
            {"model", spec.model},
            {"in_channels", std::to_string(engine.arch().in_channels)},
            {"num_classes", std::to_string(engine.arch().num_classes)},
            {"image_size", std::to_string(engine.arch().image_size)},
            {"num_params", std::to_string(st.params.size())},
            {"num_buffers", std::to_string(st.bn_running.size())},
            {"world_size", std::to_string(pos.world_size)},
            {"batch_per_worker", std::to_string(spec.batch_per_worker)},
            {"seed", std::to_string(pos.seed)},
            {"train_images", std::to_string(pos.train_images)},
            {"steps_per_epoch", std::to_string(pos.steps_per_epoch)},
            {"step", std::to_string(steps_done)},
            {"epoch", std::to_string(steps_done / pos.steps_per_epoch)},
            {"optimizer", spec.optimizer.name},
            {"engine", engine.kind()},
            {"loss_scale", FormatScale(st.loss_scale)}};
  m.tensors["params"] = std::move(st.params);
  m.tensors["momentum"] = std::move(st.momentum);
  m.tensors["bn_running"] = std::move(st.bn_running);
  ckpt::WriteCheckpointFile(dir + "/model.ckpt", m);
}

void PruneCheckpoints(const std::string& job_dir, int keep, int64_t written_step,
                      const std::string& protect_dir) {
  std::error_code ec;
  int kept = 0;
  for (const auto& [step, path] : ckpt::ListStepDirs(job_dir)) {  // newest first
    const bool newest = step <= written_step && kept < std::max(1, keep);
    if (newest) ++kept;
    if (newest || (!protect_dir.empty() && fs::equivalent(path, protect_dir, ec))) continue;
    fs::remove_all(path, ec);
    if (ec) spdlog::warn("could not remove old checkpoint {}: {}", path, ec.message());
  }
}

void LoadInitialWeights(const JobSpec& spec, engine::TrainEngine& engine) {
  engine::EngineState st;
  engine.ExportState(&st);
  const ckpt::SafetensorsFile f = ckpt::ReadSafetensorsFile(spec.init_from);
  ckpt::ApplySafetensors(f, spec.init_from, engine.arch(), spec.init_from_skip, &st.params, &st.bn_running);
  std::fill(st.momentum.begin(), st.momentum.end(), 0.0f);
  engine.ImportState(st);
}

int64_t LoadCheckpoint(const std::string& dir, const JobSpec& spec, const RunPosition& pos,
                       engine::TrainEngine& engine) {
  engine::EngineState st;
  engine.ExportState(&st);  // for the sizes this model needs
  const std::string file = dir + "/model.ckpt";
  const ckpt::CheckpointData m = ckpt::ReadCheckpointFile(file);
  Expect(file, "format", Meta(m, file, "format"), kFormat);
  Expect(file, "kind", Meta(m, file, "kind"), "model");
  Expect(file, "model", Meta(m, file, "model"), spec.model);
  Expect(file, "parameter count", Meta(m, file, "num_params"), std::to_string(st.params.size()),
         " (another data set's classes or image size?)");
  Expect(file, "seed", Meta(m, file, "seed"), std::to_string(pos.seed), " (another job's checkpoint?)");
  Expect(file, "batch_per_worker", Meta(m, file, "batch_per_worker"),
         std::to_string(spec.batch_per_worker));
  Expect(file, "optimizer", Meta(m, file, "optimizer"), spec.optimizer.name);
  const int64_t old_world = MetaInt(m, file, "world_size");
  if (old_world != pos.world_size && !spec.elastic) {
    Expect(file, "world size", std::to_string(old_world), std::to_string(pos.world_size),
           "; set elastic: true to resume on another number of workers (the learning rate is "
           "rescaled and the data re-sharded)");
  }
  const int64_t step = MetaInt(m, file, "step");
  const int64_t old_spe = MetaInt(m, file, "steps_per_epoch");
  if (step < 0 || old_spe < 1 || old_world < 1) {
    Fail(ErrorCode::kDataLoss, file + ": checkpoint position is invalid (step " + std::to_string(step) +
                                   ", steps per epoch " + std::to_string(old_spe) + ")");
  }
  const auto& params = Tensor(m, file, "params", st.params.size());
  const auto& momentum = Tensor(m, file, "momentum", st.momentum.size());
  const std::vector<float>* bn = &Tensor(m, file, "bn_running", st.bn_running.size());
  // This rank's own BN statistics when the world is unchanged.
  ckpt::CheckpointData r;
  const std::string rank_file = dir + "/rank-" + std::to_string(pos.rank) + ".ckpt";
  if (old_world == pos.world_size && pos.rank != 0) {
    r = ckpt::ReadCheckpointFile(rank_file);
    Expect(rank_file, "rank", Meta(r, rank_file, "rank"), std::to_string(pos.rank));
    Expect(rank_file, "step", Meta(r, rank_file, "step"), std::to_string(step),
           " (model.ckpt's step: a mixed checkpoint directory)");
    bn = &Tensor(r, rank_file, "bn_running", st.bn_running.size());
  }
  st.params = params;
  st.momentum = momentum;
  st.bn_running = *bn;
  st.loss_scale = ParseScale(m, file);
  engine.ImportState(st);

  if (old_world == pos.world_size) return step;
  // Elastic: keep the epoch, skip the images the old sharding already used.
  const int64_t epoch = step / old_spe;
  const int64_t used = (step % old_spe) * old_world * spec.batch_per_worker;
  const int64_t global_batch = int64_t(pos.world_size) * spec.batch_per_worker;
  const int64_t in_epoch = std::min(pos.steps_per_epoch, (used + global_batch - 1) / global_batch);
  const int64_t resume = epoch * pos.steps_per_epoch + in_epoch;
  if (pos.rank == 0) {
    spdlog::info("elastic resume: checkpoint step {} of {} ranks (epoch {}, {} images in) -> step {} "
                 "of {} ranks",
                 step, old_world, epoch, used, resume, pos.world_size);
  }
  return resume;
}

}  // namespace dtrain::trainer
