// Training checkpoints: a run stopped after a checkpoint and resumed from it
// continues bit-identically (same losses, same final weights: weights,
// momentum, BN statistics and data position all restored); only the newest
// `keep` checkpoints stay; a checkpoint of another model, seed or world size
// (without elastic) and a damaged one are refused naming the file; an elastic
// resume on another world size continues from the checkpoint's epoch.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/job_spec.h"
#include "worker/comm/local_communicator.h"
#include "worker/trainer/checkpointing.h"
#include "worker/trainer/trainer.h"

namespace dtrain::trainer {
namespace {

namespace fs = std::filesystem;

std::string TempDir() {
  char tmpl[] = "/tmp/dtrain-ckpt-XXXXXX";
  return mkdtemp(tmpl);
}

JobSpec Spec(const std::string& dir, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> all = {
      "model=resnet20",        "dataset.name=synthetic", "dataset.image_size=12",
      "dataset.channels=1",    "dataset.classes=4",      "dataset.train_size=256",
      "dataset.test_size=32",  "batch_per_worker=16",    "epochs=2",
      "schedule.base_lr=0.5",  "schedule.warmup_epochs=0.5", "optimizer.name=lars",
      "allreduce.dtype=fp32",  "eval_every_epochs=100",  "augment.crop_padding=2",
      "checkpoint.dir=" + dir, "checkpoint.every_steps=5", "checkpoint.keep=2",
  };
  all.insert(all.end(), extra.begin(), extra.end());
  return ParseJobSpec("kind: train\n", all);
}

struct RunResult {
  std::vector<double> losses;
  std::vector<float> params;
  std::vector<std::pair<int64_t, std::string>> checkpoints;
  TrainOutcome out;
};

// Runs on one rank; `abort_after` > 0 stops the run (as a killed worker
// would) once that many steps are done.
RunResult Train(const JobSpec& spec, const std::string& job_dir, const std::string& resume,
          int64_t abort_after = 0, uint64_t seed = 11) {
  auto comm = comm::MakeLocalCommunicator();
  std::atomic<bool> abort{false};
  RunResult r;
  TrainEnv env;
  env.seed = seed;
  env.comm = comm.get();
  env.abort = &abort;
  env.losses = &r.losses;
  env.final_params = &r.params;
  env.checkpoint_dir = job_dir;
  env.resume_dir = resume;
  env.on_checkpoint = [&](int64_t step, const std::string& dir) { r.checkpoints.push_back({step, dir}); };
  env.on_progress = [&](const TrainProgress& p) {
    if (abort_after > 0 && p.step >= abort_after) abort = true;
  };
  try {
    r.out = RunTraining(spec, env);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAborted) throw;
  }
  return r;
}

TEST(TrainerCheckpoint, ResumedRunContinuesBitIdentically) {
  const std::string base = TempDir();
  const JobSpec spec = Spec(base);
  const RunResult whole = Train(spec, base + "/whole", "");
  ASSERT_EQ(whole.losses.size(), 32u);  // 256 / 16 = 16 steps per epoch, 2 epochs

  const RunResult first = Train(spec, base + "/job", "", /*abort_after=*/13);
  ASSERT_EQ(first.checkpoints.size(), 2u);  // steps 5 and 10
  EXPECT_EQ(first.checkpoints.back().first, 10);
  const RunResult rest = Train(spec, base + "/job", first.checkpoints.back().second);
  EXPECT_EQ(rest.out.resumed_from_step, 10);
  ASSERT_EQ(rest.losses.size(), 22u) << "steps 11..32; steps 11-13 are redone";
  for (size_t i = 0; i < rest.losses.size(); ++i) {
    EXPECT_EQ(rest.losses[i], whole.losses[10 + i]) << "step " << 11 + i;
  }
  EXPECT_EQ(rest.params, whole.params) << "final weights equal the undisturbed run's";
  // keep: 2 -> only the newest two step directories are left: step 30 and
  // the final step, 32 (always saved).
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(base + "/job")) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"step-000000030", "step-000000032"}));
}

TEST(TrainerCheckpoint, PruningKeepsThePreviouslyReportedOneAndDropsAbandonedHigherSteps) {
  const std::string job = TempDir();
  for (int s : {100, 200, 250, 300, 400, 408}) fs::create_directories(CheckpointStepDir(job, s));
  // Resumed from 400 on more ranks (steps renumbered lower), then wrote 250:
  // 250 is the newest, 400 was reported before it; 408 (never reported, an
  // abandoned attempt's) and the older ones go. keep: 1.
  PruneCheckpoints(job, 1, 250, CheckpointStepDir(job, 400));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(job)) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"step-000000250", "step-000000400"}));
}

TEST(TrainerCheckpoint, MismatchedOrDamagedCheckpointIsRefusedNamingTheFile) {
  const std::string base = TempDir();
  const RunResult first = Train(Spec(base, {"checkpoint.every_steps=4"}), base + "/j", "", 5);
  ASSERT_FALSE(first.checkpoints.empty());
  const std::string dir = first.checkpoints.back().second;
  const auto expect_refused = [&](const JobSpec& spec, uint64_t seed, const std::string& words) {
    try {
      Train(spec, base + "/j2", dir, 0, seed);
      FAIL() << "loaded a checkpoint that should be refused (" << words << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir + "/model.ckpt"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_refused(Spec(base, {"model=resnet32"}), 11, "model resnet20, this job has resnet32");
  expect_refused(Spec(base), 12, "seed 11, this job has 12");
  expect_refused(Spec(base, {"dataset.classes=5"}), 11, "parameter count");
  // Damage one byte in the middle: the checksum names file and offset.
  {
    std::fstream f(dir + "/model.ckpt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4000);
    f.put('\x7f');
  }
  expect_refused(Spec(base), 11, "offset");
}

TEST(TrainerCheckpoint, ElasticResumeOnAnotherWorldSizeKeepsTheEpoch) {
  // A checkpoint written by 2 ranks (made here by rewriting world_size as a
  // 2-rank run would have): refused without elastic, resumed with it.
  const std::string base = TempDir();
  const JobSpec spec = Spec(base, {"workers=2", "elastic=true", "checkpoint.every_steps=3"});
  auto comm = comm::MakeLocalCommunicator();
  // Write the checkpoint from a 1-rank run, then relabel it as 2 ranks with
  // 8 steps per epoch (256 / (2 x 16)).
  const RunResult first = Train(Spec(base, {"checkpoint.every_steps=3"}), base + "/j", "", 4);
  ASSERT_FALSE(first.checkpoints.empty());
  EXPECT_EQ(first.checkpoints.back().first, 3);
  const std::string dir = first.checkpoints.back().second;
  RunPosition two{2, 0, 11, 256, 8};
  RunPosition one{1, 0, 11, 256, 16};
  // Elastic: 3 steps of 2 x 16 = 96 images into epoch 0 -> step 6 of 1 x 16.
  engine::EngineOptions eo;
  eo.model_name = "resnet20";
  eo.model = {1, 4, 12, 0.9, 1e-5, true, true, 16};
  eo.seed = 11;
  eo.optimizer = spec.optimizer;
  eo.comm = comm.get();
  auto eng = engine::MakeEngine("cpu", eo);
  // Rewrite the checkpoint as if two ranks wrote it.
  const int64_t step1 = LoadCheckpoint(dir, Spec(base), one, *eng);
  EXPECT_EQ(step1, 3);
  WriteCheckpoint(base + "/two", spec, two, 3, *eng);
  EXPECT_EQ(LoadCheckpoint(base + "/two", spec, one, *eng), 6);
  try {
    LoadCheckpoint(base + "/two", Spec(base, {"workers=2"}), one, *eng);
    FAIL() << "a 2-rank checkpoint loaded on 1 rank without elastic";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("world size 2, this job has 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("elastic: true"), std::string::npos) << e.what();
  }
}

TEST(TrainerCheckpoint, TheFinalStepIsAlwaysCheckpointedAndReported) {
  // every_steps 1 over 2 steps: both steps; every_steps 5 over 7: steps 5 and 7.
  const std::string base = TempDir();
  const RunResult a = Train(Spec(base, {"checkpoint.every_steps=1", "max_steps=2"}), base + "/a", "");
  ASSERT_EQ(a.checkpoints.size(), 2u);
  EXPECT_EQ(a.checkpoints[0].first, 1);
  EXPECT_EQ(a.checkpoints[1].first, 2);
  const RunResult b = Train(Spec(base, {"checkpoint.every_steps=5", "max_steps=7"}), base + "/b", "");
  ASSERT_EQ(b.checkpoints.size(), 2u);
  EXPECT_EQ(b.checkpoints.back().first, 7);
  EXPECT_TRUE(fs::exists(b.checkpoints.back().second + "/model.ckpt"));
  // It holds exactly the final weights.
  const RunResult c = Train(Spec(base, {"checkpoint.every_steps=5", "max_steps=9"}), base + "/c",
                            b.checkpoints.back().second);
  EXPECT_EQ(c.out.resumed_from_step, 7);
}

}  // namespace
}  // namespace dtrain::trainer
