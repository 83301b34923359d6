// The engine seam: the CPU engine's canonical state is the CPU model's own
// (same checksum as model::Model from the same seed), exports and imports it
// exactly, computes the model's gradients, and refuses a state of the wrong
// size naming the part; asking for the CUDA engine where it cannot run fails
// with the reason; precision "auto" resolves per engine.
#include <gtest/gtest.h>

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
  auto m = model::BuildModel<float>("resnet20", o.model, o.seed);
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
  const EngineOptions o = Options(comm.get());
  auto e = MakeEngine("cpu", o);
  auto m = model::BuildModel<float>("resnet20", o.model, o.seed);
  const data::Batch b = SmallBatch();
  std::vector<float> g;
  const double loss = e->ComputeGradients(b, &g);
  const model::StepResult r = m->Forward(b.images.data(), b.labels.data(), 4, true, 0.1);
  m->Backward();
  EXPECT_EQ(loss, r.loss);
  EXPECT_EQ(g, std::vector<float>(m->grads(), m->grads() + m->num_params()));
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
