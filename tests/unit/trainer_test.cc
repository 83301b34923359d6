// The trainer: the same spec and seed give the same loss at every step;
// data parallelism is exact (2 ranks x batch B == 1 rank x batch 2B on a model
// without BN, for SGD and LARS); every rank starts from identical weights;
// buckets cover the gradient in reverse layer order.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/job_spec.h"
#include "comm_procs.h"
#include "worker/comm/local_communicator.h"
#include "worker/comm/ucx_communicator.h"
#include "worker/model/model.h"
#include "worker/engine/grad_allreducer.h"
#include "worker/trainer/trainer.h"

namespace dtrain::trainer {
namespace {

using engine::GradAllreducer;
using engine::GradTensor;

// A small, fast job on the synthetic data set.
JobSpec SmallSpec(const std::vector<std::string>& sets = {}) {
  std::vector<std::string> all = {
      "model=resnet20",        "dataset.name=synthetic", "dataset.image_size=12",
      "dataset.channels=1",    "dataset.classes=4",      "dataset.train_size=512",
      "dataset.test_size=64",  "batch_per_worker=16",    "epochs=1",
      "max_steps=6",           "schedule.base_lr=0.05",  "schedule.warmup_epochs=0",
      "optimizer.name=sgd",    "allreduce.dtype=fp32",   "allreduce.bucket_mb=0.05",
      "eval_every_epochs=100", "augment.crop_padding=2",
  };
  all.insert(all.end(), sets.begin(), sets.end());
  return ParseJobSpec("kind: train\n", all);
}

TrainOutcome RunLocal(const JobSpec& spec, std::vector<double>* losses,
                      std::vector<float>* params = nullptr) {
  auto comm = comm::MakeLocalCommunicator();
  TrainEnv env;
  env.seed = 7;
  env.comm = comm.get();
  env.losses = losses;
  env.final_params = params;
  return RunTraining(spec, env);
}

TEST(Trainer, SameSpecAndSeedGiveTheSameLossAtEveryStep) {
  std::vector<double> a, b;
  RunLocal(SmallSpec({"optimizer.name=lars", "schedule.base_lr=1.0"}), &a);
  RunLocal(SmallSpec({"optimizer.name=lars", "schedule.base_lr=1.0"}), &b);
  ASSERT_EQ(a.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i;
  EXPECT_NE(a.front(), a.back()) << "the loss moves";
}

TEST(Trainer, TargetAccuracyStopsEarly) {
  std::vector<double> losses;
  TrainOutcome o = RunLocal(SmallSpec({"eval_every_epochs=0.1", "target_accuracy=0.01"}), &losses);
  EXPECT_TRUE(o.reached_target);
  EXPECT_LT(o.steps, 6);
  EXPECT_GE(o.eval_accuracy, 0.01);
}

TEST(Trainer, Fp16PrecisionIsRefusedOnTheCpuBackend) {
  std::vector<double> l;
  EXPECT_THROW(RunLocal(SmallSpec({"precision=fp16"}), &l), Error);
}

TEST(GradAllreducer, BucketsCoverTheGradientInReverseLayerOrder) {
  auto comm = comm::MakeLocalCommunicator();
  std::vector<GradTensor> t = {{0, 100}, {100, 50}, {150, 300}, {450, 10}, {460, 1000}};
  std::vector<float> g(1460, 1.0f);
  // Buckets of at least 300 floats.
  GradAllreducer r(*comm, t, g.data(), 300 * 4 / 1048576.0, comm::DType::kF32, 10, nullptr);
  ASSERT_EQ(r.num_buckets(), 3u);
  EXPECT_EQ(r.bucket_tensors(0), std::make_pair(4, 4));  // the last layer first
  EXPECT_EQ(r.bucket_tensors(1), std::make_pair(2, 3));
  EXPECT_EQ(r.bucket_tensors(2), std::make_pair(0, 1));
  r.BeginStep();
  for (int i = 4; i >= 0; --i) r.OnTensorReady(i);
  EXPECT_GE(r.WaitAll(), 0.0);
}

class DataParallelEquivalence : public ::testing::TestWithParam<const char*> {};

TEST_P(DataParallelEquivalence, TwoRanksOfBatchBMatchOneRankOfBatch2B) {
  const std::string opt = GetParam();
  const std::vector<std::string> common = {"model=resnet20",     "batch_norm=false",
                                           "optimizer.name=" + opt, "max_steps=5",
                                           "schedule.base_lr=" + std::string(opt == "lars" ? "0.5" : "0.02")};
  // 1 rank, batch 32.
  std::vector<float> single;
  std::vector<double> l;
  std::vector<std::string> s1 = common;
  s1.push_back("batch_per_worker=32");
  s1.push_back("workers=1");
  const TrainOutcome one = RunLocal(SmallSpec(s1), &l, &single);
  ASSERT_EQ(l.size(), 5u);
  EXPECT_NE(l.front(), l.back()) << "the weights moved";

  // 2 real rank processes over UCX, batch 16 each.
  char tmpl[] = "/tmp/dtrain-dp-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::vector<std::string> s2 = common;
  s2.push_back("batch_per_worker=16");
  s2.push_back("workers=2");
  const JobSpec spec2 = SmallSpec(s2);
  auto codes = comm::testing::RunRanks(2, 120, [&](int rank, comm::UcxWorker& w,
                                                   std::vector<comm::PeerInfo> peers) {
    auto comm = comm::MakeUcxCommunicator(w, 1, rank, peers);
    TrainEnv env;
    env.rank = rank;
    env.world_size = 2;
    env.seed = 7;
    env.comm = comm.get();
    std::vector<float> params;
    env.final_params = &params;
    const TrainOutcome o = RunTraining(spec2, env);
    std::ofstream(dir + "/rank" + std::to_string(rank), std::ios::binary)
        .write(reinterpret_cast<const char*>(params.data()), params.size() * sizeof(float));
    return o.initial_checksum == one.initial_checksum ? 0 : 10;  // identical initial weights
  });
  ASSERT_EQ(codes, (std::vector<int>{0, 0}));
  for (int rank = 0; rank < 2; ++rank) {
    std::ifstream f(dir + "/rank" + std::to_string(rank), std::ios::binary);
    std::vector<float> p(single.size());
    f.read(reinterpret_cast<char*>(p.data()), p.size() * sizeof(float));
    ASSERT_EQ(f.gcount(), std::streamsize(p.size() * sizeof(float)));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      diff += (double(p[i]) - single[i]) * (double(p[i]) - single[i]);
      norm += double(single[i]) * single[i];
    }
    EXPECT_LT(std::sqrt(diff / norm), 1e-5) << opt << " rank " << rank;
    std::remove((dir + "/rank" + std::to_string(rank)).c_str());
  }
  rmdir(dir.c_str());
}

INSTANTIATE_TEST_SUITE_P(SgdAndLars, DataParallelEquivalence, ::testing::Values("sgd", "lars"));

}  // namespace
}  // namespace dtrain::trainer
