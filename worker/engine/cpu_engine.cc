#include "worker/engine/cpu_engine.h"

#include <chrono>

#include "common/error.h"
#include "kernels/cpu/softmax_cross_entropy.h"
#include "worker/engine/grad_allreducer.h"
#include "worker/optim/optimizer.h"

namespace dtrain::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::vector<cpu::TensorSlice> Slices(const model::Model<float>& m) {
  std::vector<cpu::TensorSlice> s;
  for (const auto& t : m.tensors()) s.push_back({int64_t(t.offset), int64_t(t.size), t.no_decay});
  return s;
}

std::vector<GradTensor> GradTensors(const model::Model<float>& m) {
  std::vector<GradTensor> g;
  for (const auto& t : m.tensors()) g.push_back({t.offset, t.size});
  return g;
}

model::ModelOptions WithKernels(const EngineOptions& o) {
  model::ModelOptions m = o.model;
  m.kernels = model::ResolveKernels(o.cpu_kernels, m.batch_norm);
  m.threads = o.threads;
  return m;
}

class CpuEngine final : public TrainEngine {
 public:
  explicit CpuEngine(const EngineOptions& o)
      : opt_(o),
        model_(model::BuildModel<float>(o.model_name, WithKernels(o), o.seed)),
        optimizer_(o.optimizer, Slices(*model_), int64_t(model_->num_params())),
        reducer_(*o.comm, GradTensors(*model_), model_->grads(), o.bucket_mb, o.wire, o.timeout_seconds,
                 o.abort) {
    model_->set_profiling(o.profiling);
  }

  const char* kind() const override { return "cpu"; }
  std::string describe() const override {
    return model_->kernels() == "onednn"
               ? "cpu (fp32, " + model::OneDnnInfo() + ", blocked layouts, " +
                     std::to_string(opt_.threads) + " thread(s))"
               : "cpu (fp32 NCHW, reference kernels: im2col + OpenBLAS)";
  }
  const model::ResnetArch& arch() const override { return model_->arch(); }
  size_t num_buckets() const override { return reducer_.num_buckets(); }

  StepStats Step(const data::Batch& b, double lr) override {
    StepStats s;
    const auto t0 = Clock::now();
    reducer_.BeginStep();
    const model::StepResult r =
        model_->Forward(Input(b), b.labels.data(), int(b.size), true, opt_.label_smoothing);
    model_->Backward(ready_);
    const auto t1 = Clock::now();
    if (opt_.on_wait) opt_.on_wait(true);
    s.comm_seconds = reducer_.WaitAll();
    if (opt_.on_wait) opt_.on_wait(false);
    s.allreduce_seconds = reducer_.comm_seconds();
    const auto t2 = Clock::now();
    optimizer_.Step({model_->params(), model_->num_params()}, {model_->grads(), model_->num_params()}, lr);
    const auto t3 = Clock::now();
    s.loss = r.loss;
    s.correct = r.correct;
    s.compute_seconds = Seconds(t0, t1);
    s.update_seconds = Seconds(t2, t3);
    return s;
  }

  EvalStats Predict(const data::Batch& b) override {
    const int n = int(b.size);
    const model::StepResult r = model_->Forward(Input(b), b.labels.data(), n, false, 0.0);
    const cpu::SoftmaxCrossEntropyShape shape{n, model_->arch().num_classes};
    return {.correct = r.correct,
            .correct_top5 = cpu::TopKCorrect(shape, model_->logits(), b.labels.data(), 5),
            .loss_sum = r.loss * n};
  }

  void AccumulateBnStatistics(const data::Batch& b, double factor) override {
    CheckBnFactor(factor);
    const double trained = model_->bn_momentum();
    model_->set_bn_momentum(1.0 - factor);
    model_->Forward(Input(b), b.labels.data(), int(b.size), true, 0.0);
    model_->set_bn_momentum(trained);
  }

  void ExportState(EngineState* st) override {
    st->params.assign(model_->params(), model_->params() + model_->num_params());
    st->momentum.assign(optimizer_.momentum().begin(), optimizer_.momentum().end());
    st->bn_running.assign(model_->buffers(), model_->buffers() + model_->num_buffers());
    st->loss_scale = 1;
  }

  void ImportState(const EngineState& st) override {
    CheckStateSizes(st, model_->arch(), optimizer_.momentum().size());
    std::copy(st.params.begin(), st.params.end(), model_->params());
    std::copy(st.momentum.begin(), st.momentum.end(), optimizer_.momentum().begin());
    std::copy(st.bn_running.begin(), st.bn_running.end(), model_->buffers());
  }

  double ComputeGradients(const data::Batch& b, std::vector<float>* grads) override {
    const model::StepResult r =
        model_->Forward(Input(b), b.labels.data(), int(b.size), true, opt_.label_smoothing);
    model_->Backward();
    grads->assign(model_->grads(), model_->grads() + model_->num_params());
    return r.loss;
  }

  void GetBnRunning(std::vector<float>* out) override {
    out->assign(model_->buffers(), model_->buffers() + model_->num_buffers());
  }

  void SetBnRunning(const std::vector<float>& v) override {
    CheckBnSize(v, model_->arch());
    std::copy(v.begin(), v.end(), model_->buffers());
  }

  std::vector<model::LayerTime> TakeProfile() override {
    std::vector<model::LayerTime> p = model_->profile();
    model_->ResetProfile();
    return p;
  }

 private:
  // fp32 NCHW input: the batch's own, or its uint8 pixels normalised here.
  const float* Input(const data::Batch& b) { return data::NormalizedNchw(b, &input_); }

  EngineOptions opt_;
  std::unique_ptr<model::Model<float>> model_;
  optim::Optimizer optimizer_;
  GradAllreducer reducer_;
  const std::function<void(int)> ready_ = [this](int t) { reducer_.OnTensorReady(t); };
  std::vector<float> input_;
};

}  // namespace

std::unique_ptr<TrainEngine> MakeCpuEngine(const EngineOptions& o) {
  if (!o.comm) Fail(ErrorCode::kInvalidArgument, "CPU engine: no communicator");
  if (o.precision != "fp32") {
    Fail(ErrorCode::kInvalidArgument, "precision '" + o.precision +
                                          "' needs the CUDA engine; the CPU engine computes in fp32 "
                                          "(set precision: fp32 or auto, or run on a GPU worker)");
  }
  return std::make_unique<CpuEngine>(o);
}

}  // namespace dtrain::engine
