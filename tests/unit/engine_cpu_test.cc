// The engine seam: the CPU engine's canonical state is the CPU model's own
// (same checksum as model::Model from the same seed), exports and imports it
// exactly, computes the model's gradients, and refuses a state of the wrong
// size naming the part; asking for the CUDA engine where it cannot run fails
// with the reason; precision "auto" resolves per engine; evaluation reports
// top-1, top-5 and loss; precise BN's accumulation is a plain mean.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/comm/local_communicator.h"
#include "worker/engine/train_engine.h"
#include "worker/trainer/trainer.h"

namespace dtrain::engine {
namespace {

EngineOptions Options(comm::Communicator* c) {
  EngineOptions o;
  o.model_name = "resnet20";
  o.model.in_channels = 1;
  o.model.num_classes = 4;
  o.model.image_size = 12;
  o.model.max_batch = 4;
  o.seed = 9;
  o.comm = c;
  o.wire = comm::DType::kF32;
  o.label_smoothing = 0.1;
  return o;
}

// The model the engine builds: its options with the kernels the engine resolves.
model::ModelOptions ModelOf(const EngineOptions& o) {
  model::ModelOptions m = o.model;
  m.kernels = model::ResolveKernels(o.cpu_kernels, m.batch_norm);
  m.threads = o.threads;
  return m;
}

data::Batch SmallBatch() {
  data::Batch b;
  b.size = 4;
  b.channels = 1;
  b.height = b.width = 12;
  b.images.resize(4 * 144);
  for (size_t i = 0; i < b.images.size(); ++i) b.images[i] = float((i * 37) % 17) / 17.0f - 0.5f;
  b.labels = {0, 3, 1, 2};
  return b;
}

TEST(CpuEngine, StateIsTheModelsOwnAndRoundTripsExactly) {
  auto comm = comm::MakeLocalCommunicator();
  const EngineOptions o = Options(comm.get());
  auto e = MakeEngine("cpu", o);
  auto m = model::BuildModel<float>("resnet20", ModelOf(o), o.seed);
  EXPECT_EQ(e->Checksum(), m->Checksum());
  EXPECT_EQ(std::string(e->kind()), "cpu");

  e->Step(SmallBatch(), 0.1);  // moves weights, momentum and BN statistics
  EngineState a;
  e->ExportState(&a);
  EXPECT_NE(e->Checksum(), m->Checksum());
  auto f = MakeEngine("cpu", o);
  f->ImportState(a);
  EngineState b;
  f->ExportState(&b);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.momentum, b.momentum);
  EXPECT_EQ(a.bn_running, b.bn_running);
  EXPECT_EQ(e->Checksum(), f->Checksum());
  // The same next step from the same state: the same loss.
  EXPECT_EQ(e->Step(SmallBatch(), 0.1).loss, f->Step(SmallBatch(), 0.1).loss);

  a.momentum.pop_back();
  try {
    f->ImportState(a);
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("momentum holds"), std::string::npos) << err.what();
  }
}

TEST(CpuEngine, ComputeGradientsAreTheModelsGradients) {
  auto comm = comm::MakeLocalCommunicator();
  for (const char* kernels : {"auto", "reference"}) {
  SCOPED_TRACE(kernels);
  EngineOptions o = Options(comm.get());
  o.cpu_kernels = kernels;
  auto e = MakeEngine("cpu", o);
  EXPECT_NE(e->describe().find(ModelOf(o).kernels == "onednn" ? "oneDNN" : "reference"),
            std::string::npos)
      << e->describe();
  auto m = model::BuildModel<float>("resnet20", ModelOf(o), o.seed);
  const data::Batch b = SmallBatch();
  std::vector<float> g;
  const double loss = e->ComputeGradients(b, &g);
  const model::StepResult r = m->Forward(b.images.data(), b.labels.data(), 4, true, 0.1);
  m->Backward();
  EXPECT_EQ(loss, r.loss);
  EXPECT_EQ(g, std::vector<float>(m->grads(), m->grads() + m->num_params()));
  }
}

TEST(CpuEngine, UnknownOrUnavailableKernelsAreRejectedByName) {
  auto comm = comm::MakeLocalCommunicator();
  EngineOptions o = Options(comm.get());
  o.cpu_kernels = "mkl";
  try {
    MakeEngine("cpu", o);
    FAIL() << "accepted kernels 'mkl'";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("allowed auto, onednn, reference"), std::string::npos)
        << err.what();
  }
}

data::Batch ShiftedBatch(int k) {  // batches with different statistics
  data::Batch b = SmallBatch();
  for (size_t i = 0; i < b.images.size(); ++i) b.images[i] = b.images[i] * float(1 + k) + 0.25f * float(k);
  return b;
}

TEST(CpuEngine, PredictReportsTop1Top5AndTheSummedCrossEntropyOfTheModelsLogits) {
  auto comm = comm::MakeLocalCommunicator();
  EngineOptions o = Options(comm.get());
  o.model.num_classes = 8;  // top-5 differs from "all"
  auto e = MakeEngine("cpu", o);
  auto m = model::BuildModel<float>("resnet20", ModelOf(o), o.seed);
  data::Batch b = SmallBatch();
  b.labels = {0, 7, 5, 2};
  const EvalStats st = e->Predict(b);
  // The reference: the model's own inference logits, loss and ranks by hand.
  const int64_t top1 = m->Predict(b.images.data(), b.labels.data(), 4);
  const float* z = m->logits();
  double loss = 0;
  int64_t top5 = 0;
  for (int i = 0; i < 4; ++i) {
    const float* row = z + i * 8;
    double mx = row[0], sum = 0;
    for (int k = 1; k < 8; ++k) mx = std::max<double>(mx, row[k]);
    for (int k = 0; k < 8; ++k) sum += std::exp(row[k] - mx);
    loss += std::log(sum) + mx - row[b.labels[i]];
    int above = 0;
    for (int k = 0; k < 8; ++k) above += row[k] > row[b.labels[i]];
    top5 += above < 5;
  }
  EXPECT_EQ(st.correct, top1);
  EXPECT_EQ(st.correct_top5, top5);
  EXPECT_GE(st.correct_top5, st.correct);
  EXPECT_NEAR(st.loss_sum, loss, 1e-4 * loss);
}

TEST(CpuEngine, AccumulatedBnStatisticsAreThePlainMeanOverTheBatchesWhateverCameBefore) {
  auto comm = comm::MakeLocalCommunicator();
  const EngineOptions o = Options(comm.get());
  // Each batch's own statistics: factor 1 replaces the running ones.
  std::vector<std::vector<float>> single;
  for (int k = 0; k < 3; ++k) {
    auto e = MakeEngine("cpu", o);
    e->AccumulateBnStatistics(ShiftedBatch(k), 1.0);
    single.emplace_back();
    e->GetBnRunning(&single.back());
  }
  ASSERT_NE(single[0], single[1]);
  // Factors 1, 1/2, 1/3 from two starting points: the same weights, different
  // running statistics (b takes those a training step left, keeping a's weights).
  auto a = MakeEngine("cpu", o);
  auto b = MakeEngine("cpu", o);
  EngineState fresh;
  b->ExportState(&fresh);
  b->Step(SmallBatch(), 0.1);
  EngineState moved;
  b->ExportState(&moved);
  fresh.bn_running = moved.bn_running;  // the same weights as a, other running statistics
  b->ImportState(fresh);
  std::vector<float> before_a, before_b;
  a->GetBnRunning(&before_a);
  b->GetBnRunning(&before_b);
  ASSERT_NE(before_a, before_b);
  for (int k = 0; k < 3; ++k) {
    a->AccumulateBnStatistics(ShiftedBatch(k), 1.0 / (k + 1));
    b->AccumulateBnStatistics(ShiftedBatch(k), 1.0 / (k + 1));
  }
  std::vector<float> ra, rb;
  a->GetBnRunning(&ra);
  b->GetBnRunning(&rb);
  EXPECT_EQ(ra, rb);  // the starting statistics are gone, bit for bit
  ASSERT_EQ(ra.size(), single[0].size());
  for (size_t i = 0; i < ra.size(); ++i) {
    const double mean = (double(single[0][i]) + single[1][i] + single[2][i]) / 3;
    ASSERT_NEAR(ra[i], mean, 1e-5 * std::max(1.0, std::abs(mean))) << "buffer element " << i;
  }
  // Weights and optimizer momentum are untouched ...
  EngineState after;
  a->ExportState(&after);
  auto c = MakeEngine("cpu", o);
  EngineState orig;
  c->ExportState(&orig);
  EXPECT_EQ(after.params, orig.params);
  EXPECT_EQ(after.momentum, orig.momentum);
  // ... and training afterwards moves the statistics with the spec's BN
  // momentum again: the same step from the same state on a fresh engine.
  c->ImportState(after);
  a->Step(SmallBatch(), 0.1);
  c->Step(SmallBatch(), 0.1);
  std::vector<float> sa, sc;
  a->GetBnRunning(&sa);
  c->GetBnRunning(&sc);
  EXPECT_EQ(sa, sc);
  EXPECT_THROW(a->AccumulateBnStatistics(SmallBatch(), 0.0), Error);
  EXPECT_THROW(a->AccumulateBnStatistics(SmallBatch(), 1.5), Error);
}

TEST(EngineChoice, CudaWithoutAUsableGpuFailsWithTheReason) {
  auto comm = comm::MakeLocalCommunicator();
  EngineOptions o = Options(comm.get());
  o.precision = "fp16";
  o.wire = comm::DType::kF16;
  try {
    MakeEngine("cuda", o);
    FAIL() << "a CUDA engine was made on a machine without a GPU";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kUnavailable) << err.what();
    const std::string msg = err.what();
    EXPECT_TRUE(msg.find("no usable CUDA device") != std::string::npos ||
                msg.find("without the CUDA engine") != std::string::npos)
        << msg;
  }
  EXPECT_THROW(MakeEngine("tpu", o), Error);
}

TEST(EngineChoice, PrecisionAutoIsFp16OnCudaAndFp32OnCpu) {
  EXPECT_EQ(trainer::ResolvePrecision("auto", "cuda"), "fp16");
  EXPECT_EQ(trainer::ResolvePrecision("auto", "cpu"), "fp32");
  EXPECT_EQ(trainer::ResolvePrecision("fp16", "cuda"), "fp16");
  EXPECT_THROW(trainer::ResolvePrecision("fp32", "cuda"), Error);
  auto comm = comm::MakeLocalCommunicator();
  EngineOptions o = Options(comm.get());
  o.precision = "fp16";
  EXPECT_THROW(MakeEngine("cpu", o), Error);  // the CPU engine computes in fp32
}

}  // namespace
}  // namespace dtrain::engine
