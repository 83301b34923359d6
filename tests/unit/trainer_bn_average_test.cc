// One model on every rank (bn_average.h): after the averaging both ranks' BN
// running statistics are bit-identical and equal the mean of their inputs;
// and a 2-rank job's reported accuracy is exactly what one process gets by
// evaluating the job's saved checkpoint on the whole test set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/job_spec.h"
#include "comm_procs.h"
#include "worker/comm/local_communicator.h"
#include "worker/comm/ucx_communicator.h"
#include "worker/data/pipeline.h"
#include "worker/engine/train_engine.h"
#include "worker/trainer/bn_average.h"
#include "worker/trainer/checkpointing.h"
#include "worker/trainer/trainer.h"

namespace dtrain::trainer {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/dtrain-bn-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  return tmpl;
}

void WriteFloats(const std::string& path, const std::vector<float>& v) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> ReadFloats(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<float> v(size_t(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), v.size() * sizeof(float));
  return v;
}

engine::EngineOptions SmallEngine(comm::Communicator* c) {
  engine::EngineOptions o;
  o.model_name = "resnet20";
  o.model.in_channels = 1;
  o.model.num_classes = 4;
  o.model.image_size = 12;
  o.model.max_batch = 8;
  o.comm = c;
  o.seed = 3;
  return o;
}

// Rank r's statistics before the averaging: different on every rank.
float Stat(int rank, size_t i) { return float((i * 37 + 11 * rank) % 101) / 7.0f + 0.3f * rank + 1e-3f * i; }

TEST(BnAverage, TwoRanksEndWithBitIdenticalMeanStatistics) {
  const std::string dir = TempDir();
  auto codes = comm::testing::RunRanks(2, 120, [&](int rank, comm::UcxWorker& w, std::vector<comm::PeerInfo> peers) {
    auto comm = comm::MakeUcxCommunicator(w, 1, rank, peers);
    auto e = engine::MakeEngine("cpu", SmallEngine(comm.get()));
    std::vector<float> mine(e->arch().num_buffers);
    for (size_t i = 0; i < mine.size(); ++i) mine[i] = Stat(rank, i);
    e->SetBnRunning(mine);
    AverageBnStatistics(*e, *comm, Deadline::AfterSeconds(30));
    std::vector<float> after;
    e->GetBnRunning(&after);
    WriteFloats(dir + "/rank" + std::to_string(rank), after);
    return 0;
  });
  ASSERT_EQ(codes, (std::vector<int>{0, 0}));
  const std::vector<float> a = ReadFloats(dir + "/rank0"), b = ReadFloats(dir + "/rank1");
  ASSERT_GT(a.size(), 100u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::memcmp(&a[i], &b[i], sizeof(float)), 0) << "element " << i << " differs between the ranks";
    ASSERT_EQ(a[i], (Stat(0, i) + Stat(1, i)) / 2.0f) << "element " << i;
  }
  std::filesystem::remove_all(dir);
}

TEST(BnAverage, OneRankIsLeftAsItIs) {
  auto comm = comm::MakeLocalCommunicator();
  auto e = engine::MakeEngine("cpu", SmallEngine(comm.get()));
  std::vector<float> mine(e->arch().num_buffers), after;
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = Stat(0, i);
  e->SetBnRunning(mine);
  AverageBnStatistics(*e, *comm, Deadline::AfterSeconds(30));
  e->GetBnRunning(&after);
  EXPECT_EQ(after, mine);
  EXPECT_THROW(e->SetBnRunning(std::vector<float>(3)), Error);
}

TEST(BnAverage, TwoRankAccuracyIsTheSavedModelsAccuracyOnTheWholeTestSet) {
  const std::string dir = TempDir();
  JobSpec spec = ParseJobSpec("kind: train\n", {"model=resnet20", "workers=2", "dataset.name=synthetic",
                                                "dataset.image_size=12", "dataset.channels=1", "dataset.classes=4",
                                                "dataset.train_size=512", "dataset.test_size=203",
                                                "batch_per_worker=16", "epochs=1", "max_steps=12",
                                                "schedule.base_lr=0.1", "schedule.warmup_epochs=0",
                                                "optimizer.name=sgd", "eval_every_epochs=100",
                                                "checkpoint.dir=" + dir, "checkpoint.every_steps=6"});
  auto codes = comm::testing::RunRanks(2, 180, [&](int rank, comm::UcxWorker& w, std::vector<comm::PeerInfo> peers) {
    auto comm = comm::MakeUcxCommunicator(w, 1, rank, peers);
    TrainEnv env;
    env.rank = rank;
    env.world_size = 2;
    env.seed = 5;
    env.comm = comm.get();
    env.checkpoint_dir = dir + "/job";
    const TrainOutcome o = RunTraining(spec, env);
    const float acc = float(o.eval_accuracy);
    std::ofstream(dir + "/acc" + std::to_string(rank), std::ios::binary).write(reinterpret_cast<const char*>(&acc), 4);
    return 0;
  });
  ASSERT_EQ(codes, (std::vector<int>{0, 0}));
  float reported[2];
  for (int r = 0; r < 2; ++r)
    std::ifstream(dir + "/acc" + std::to_string(r), std::ios::binary).read(reinterpret_cast<char*>(&reported[r]), 4);
  EXPECT_EQ(reported[0], reported[1]);

  // One process: the final checkpoint (model.ckpt: weights and rank 0's BN
  // statistics) on all 203 test images.
  auto comm = comm::MakeLocalCommunicator();
  std::unique_ptr<data::DataSource> source = data::OpenDataSource(spec.dataset, spec.augment, 5, 1);
  engine::EngineOptions o = SmallEngine(comm.get());
  o.seed = 5;
  o.model.max_batch = 16;
  auto e = engine::MakeEngine("cpu", o);
  JobSpec one = spec;
  one.elastic = true;  // the checkpoint was written by 2 ranks
  LoadCheckpoint(CheckpointStepDir(dir + "/job", 12), one,
                 RunPosition{1, 0, 5, source->info().train_size, 32}, *e);
  int64_t correct = 0, seen = 0;
  auto it = source->Eval(1, 0, 16);
  data::Batch b;
  while (it->Next(&b)) {
    correct += e->Predict(b).correct;
    seen += b.size;
  }
  ASSERT_EQ(seen, 203);
  const float single = float(correct) / float(seen);
  std::printf("2-rank job reported %.6f; its checkpoint evaluated by one process: %lld / %lld = %.6f\n", reported[0],
              static_cast<long long>(correct), static_cast<long long>(seen), single);
  EXPECT_EQ(reported[0], single);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dtrain::trainer
