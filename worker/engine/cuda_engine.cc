// The CUDA engine (contract in cuda_engine.h).
#include "worker/engine/cuda_engine.h"

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "kernels/cpu/loss_scale.h"
#include "kernels/cpu/softmax_cross_entropy.h"
#include "kernels/cuda/batched_norms.h"
#include "kernels/cuda/cast.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/cudnn_check.h"
#include "kernels/cuda/dnn_versions.h"
#include "kernels/cuda/input_norm.h"
#include "kernels/cuda/input_pack.h"
#include "kernels/cuda/lars_update.h"
#include "kernels/cuda/loss_scale.h"
#include "kernels/cuda/tensor_table.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/engine/cuda_model.h"
#include "worker/engine/device_memory.h"
#include "worker/engine/overlap.h"

namespace dtrain::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

using Device = DeviceMemory;
using Pinned = PinnedMemory;

// Waits for everything enqueued on `s`, bounded: a hung kernel or a peer
// that never joins NCCL fails the step instead of hanging the worker.
void SyncBounded(cudaStream_t s, const Deadline& d, const char* what) {
  for (;;) {
    const cudaError_t e = cudaStreamQuery(s);
    if (e == cudaSuccess) return;
    if (e != cudaErrorNotReady) CUDA_CHECK(e);
    if (d.Aborted()) Fail(ErrorCode::kAborted, std::string(what) + ": aborted while the GPU was busy");
    if (d.Expired()) Fail(ErrorCode::kDeadlineExceeded, std::string(what) + ": the GPU did not finish in time");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// A copy ordered on `s` (the compute stream is non-blocking: a plain
// cudaMemcpy on the legacy stream would not be ordered with it), waited for.
void CopyOn(cudaStream_t s, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const Deadline& d,
            const char* what) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, s));
  SyncBounded(s, d, what);
}

// One rank: nothing to average.
class NoLauncher final : public BucketLauncher {
 public:
  void Launch(int) override {}
  double WaitAll() override { return 0; }
};

// NCCL: the bucket's average goes on NCCL's stream behind an event recorded
// on the compute stream right after its last gradient kernel.
class NcclLauncher final : public BucketLauncher {
 public:
  NcclLauncher(comm::NcclCommunicator& c, cudaStream_t compute, const BucketPlan& plan, __half* g16, float* g32,
               const EngineOptions& o)
      : comm_(c), compute_(compute), plan_(plan), g16_(g16), g32_(g32), opt_(o) {
    events_.resize(plan.buckets.size());
    for (auto& e : events_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~NcclLauncher() override {
    for (auto& e : events_) cudaEventDestroy(e);
  }
  void Launch(int b) override {
    const Bucket& bk = plan_.buckets[b];
    CUDA_CHECK(cudaEventRecord(events_[b], compute_));
    void* ptr = bk.group == kHalfGrads ? static_cast<void*>(g16_ + bk.offset) : static_cast<void*>(g32_ + bk.offset);
    comm_.EnqueueAllReduce(ptr, bk.count, bk.group == kHalfGrads ? comm::DType::kF16 : comm::DType::kF32,
                           comm::ReduceOp::kAvg, nullptr, events_[b],
                           Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort));
  }
  double WaitAll() override {
    const auto t0 = Clock::now();
    if (opt_.on_wait) opt_.on_wait(true);
    comm_.Wait(Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort));
    if (opt_.on_wait) opt_.on_wait(false);
    return Seconds(t0, Clock::now());
  }

 private:
  comm::NcclCommunicator& comm_;
  cudaStream_t compute_;
  const BucketPlan& plan_;
  __half* g16_;
  float* g32_;
  const EngineOptions& opt_;
  std::vector<cudaEvent_t> events_;
};

// A host communicator (UCX) on GPUs: after backward, each bucket is copied to
// pinned memory, averaged on the host and copied back. Not overlapped.
class StagedLauncher final : public BucketLauncher {
 public:
  StagedLauncher(comm::Communicator& c, cudaStream_t compute, const BucketPlan& plan, __half* g16, float* g32,
                 const EngineOptions& o)
      : comm_(c), compute_(compute), plan_(plan), g16_(g16), g32_(g32), opt_(o) {
    size_t largest = 0;
    for (const Bucket& b : plan.buckets) largest = std::max(largest, b.count * (b.group == kHalfGrads ? 2 : 4));
    host_ = Pinned(largest);
  }
  void Launch(int) override {}
  double WaitAll() override {
    const auto t0 = Clock::now();
    if (opt_.on_wait) opt_.on_wait(true);
    const Deadline d = Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort);
    SyncBounded(compute_, d, "backward");
    for (const Bucket& b : plan_.buckets) {
      const bool half = b.group == kHalfGrads;
      void* dev = half ? static_cast<void*>(g16_ + b.offset) : static_cast<void*>(g32_ + b.offset);
      const size_t bytes = b.count * (half ? 2 : 4);
      CUDA_CHECK(cudaMemcpyAsync(host_.as<void>(), dev, bytes, cudaMemcpyDeviceToHost, compute_));
      SyncBounded(compute_, d, "gradient staging");
      comm_.AllReduce(host_.as<void>(), b.count, half ? comm::DType::kF16 : comm::DType::kF32, comm::ReduceOp::kAvg, d);
      CUDA_CHECK(cudaMemcpyAsync(dev, host_.as<void>(), bytes, cudaMemcpyHostToDevice, compute_));
      SyncBounded(compute_, d, "gradient staging");
    }
    if (opt_.on_wait) opt_.on_wait(false);
    return Seconds(t0, Clock::now());
  }

 private:
  comm::Communicator& comm_;
  cudaStream_t compute_;
  const BucketPlan& plan_;
  __half* g16_;
  float* g32_;
  const EngineOptions& opt_;
  Pinned host_;
};

// Every per-step scalar the kernels read lives here, in device memory (the
// step reads no host value, so it can be captured in a CUDA graph); the host
// reads the struct back once per step.
struct StepScalars {
  float mean_loss;
  int32_t correct;
  float lr;    // written before each step
  float one;   // 1.0: the loss scale of evaluation, the grad scale of unscaled groups
  cuda::DeviceLossScale loss_scale;
};

class CudaEngine final : public TrainEngine {
 public:
  explicit CudaEngine(const EngineOptions& o);
  ~CudaEngine() override;

  const char* kind() const override { return "cuda"; }
  std::string describe() const override { return describe_; }
  const model::ResnetArch& arch() const override { return arch_; }
  size_t num_buckets() const override { return overlap_->plan().buckets.size(); }
  StepStats Step(const data::Batch& batch, double lr) override;
  EvalStats Predict(const data::Batch& batch) override;
  void AccumulateBnStatistics(const data::Batch& batch, double factor) override;
  void ExportState(EngineState* state) override;
  void ImportState(const EngineState& state) override;
  double ComputeGradients(const data::Batch& batch, std::vector<float>* grads) override;
  void GetBnRunning(std::vector<float>* out) override;
  void SetBnRunning(const std::vector<float>& values) override;
  std::vector<model::LayerTime> TakeProfile() override;

  bool resident = false;

 private:
  CudaParams Params() const {
    return {w16_.as<__half>(), master_.as<float>(), g16_.as<__half>(), g32_.as<float>(), bn_running_.as<float>()};
  }
  // Copies the batch to the device; a training batch stays there when
  // `resident` (benches), any other upload replaces it.
  void Upload(const data::Batch& b, bool training);
  // Enqueues the forward pass of the uploaded batch (training: batch BN
  // statistics, loss-scaled dlogits kept for backward).
  void EnqueueForward(bool training);
  void WarmUp();
  void Update(double lr);
  StepScalars ReadScalars(const char* what);
  void SetLossScale(double scale);
  cuda::DeviceLossScale* LossState() const { return &scalars_.as<StepScalars>()->loss_scale; }

  EngineOptions opt_;
  model::ResnetArch arch_;
  DevicePlan plan_;
  std::string describe_;
  cpu::LossScalerOptions ls_opt_;
  cudaStream_t compute_ = nullptr, copy_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  cudaEvent_t ev_input_ = nullptr, ev_start_ = nullptr, ev_bwd_ = nullptr, ev_upd0_ = nullptr, ev_upd1_ = nullptr;
  Device master_, momentum_, w16_, g16_, g32_, bn_running_;
  Device norms_;  // weight and grad norms of both groups
  Device images32_, images16_, labels_, scalars_;
  Pinned h_images_, h_labels_, h_scalars_, h_lr_;
  std::vector<float> logits_;  // evaluation's logits on the host (top-5)
  std::unique_ptr<cuda::TensorTable> table_[2];
  std::unique_ptr<CudaResnet> net_;
  BucketPlan bplan_;
  std::unique_ptr<BucketLauncher> launcher_;
  std::unique_ptr<OverlapScheduler> overlap_;
  float scale_ = 1, inv_scale_ = 1;  // host copies of the device loss scale (reporting only)
  bool uploaded_ = false;
  int last_n_ = 0;
};

CudaEngine::CudaEngine(const EngineOptions& o) : opt_(o) {
  if (o.precision != "fp16") {
    Fail(ErrorCode::kInvalidArgument, "the CUDA engine computes in fp16 (fp32 master weights); precision '" +
                                          o.precision + "' is not supported: set precision: fp16 or auto");
  }
  if (o.wire != comm::DType::kF16) {
    Fail(ErrorCode::kInvalidArgument, "allreduce.dtype fp32 with the CUDA engine: its weight gradients are fp16 "
                                      "(BN and bias gradients are averaged in fp32 anyway); set allreduce.dtype: fp16");
  }
  if (!o.comm) Fail(ErrorCode::kInvalidArgument, "CUDA engine: no communicator");
  if (o.optimizer.name != "lars" && o.optimizer.name != "sgd") {
    Fail(ErrorCode::kInvalidArgument, "optimizer.name '" + o.optimizer.name + "': allowed sgd, lars");
  }
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    Fail(ErrorCode::kUnavailable, std::string("CUDA engine: no usable CUDA device (") +
                                      (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + ")");
  }
  if (o.device < 0 || o.device >= count) {
    Fail(ErrorCode::kInvalidArgument, "CUDA engine: device " + std::to_string(o.device) + " of " +
                                          std::to_string(count));
  }
  const cuda::DnnVersions v = cuda::QueryDnnVersions();
  cuda::CheckDnnVersions(v);
  CUDA_CHECK(cudaSetDevice(o.device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
  describe_ = "cuda:" + std::to_string(o.device) + " " + prop.name + " (NHWC fp16, fp32 masters; " +
              cuda::DescribeDnnVersions(v) + ")";

  arch_ = model::BuildResnetArch(o.model_name, o.model.in_channels, o.model.num_classes, o.model.image_size);
  plan_ = PlanDeviceTensors(arch_);
  const int max_batch = o.model.max_batch > 0 ? o.model.max_batch : 256;

  CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  CUDNN_CHECK(cudnnCreate(&cudnn_));
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  for (cudaEvent_t* ev : {&ev_start_, &ev_bwd_, &ev_upd0_, &ev_upd1_}) CUDA_CHECK(cudaEventCreate(ev));
  CUDA_CHECK(cudaEventCreateWithFlags(&ev_input_, cudaEventDisableTiming));

  const size_t ge0 = plan_.group_elems[0], ge1 = plan_.group_elems[1];
  master_ = Device((ge0 + ge1) * sizeof(float));
  momentum_ = Device((ge0 + ge1) * sizeof(float));
  w16_ = Device(ge0 * sizeof(__half));
  g16_ = Device(ge0 * sizeof(__half));
  g32_ = Device(ge1 * sizeof(float));
  bn_running_ = Device(arch_.num_buffers * sizeof(float));
  norms_ = Device(4 * arch_.tensors.size() * sizeof(float));  // weight and grad norms, two groups
  const size_t pixels = size_t(max_batch) * arch_.image_size * arch_.image_size;
  images32_ = Device(pixels * arch_.in_channels * sizeof(float));
  images16_ = Device(pixels * plan_.input_c_pad * sizeof(__half));
  labels_ = Device(size_t(max_batch) * sizeof(int32_t));
  scalars_ = Device(sizeof(StepScalars));
  h_images_ = Pinned(pixels * arch_.in_channels * sizeof(float));
  h_labels_ = Pinned(size_t(max_batch) * sizeof(int32_t));
  h_scalars_ = Pinned(sizeof(StepScalars));
  h_lr_ = Pinned(sizeof(float));

  // The two groups' tensor tables (offsets inside each group's region).
  std::vector<cpu::TensorSlice> slices[2];
  std::vector<BucketTensor> bt;
  for (size_t i = 0; i < arch_.tensors.size(); ++i) {
    const DevicePlacement& d = plan_.tensors[i];
    slices[d.group].push_back({int64_t(d.offset), int64_t(d.size), arch_.tensors[i].no_decay});
    bt.push_back({d.offset, d.size, d.group});
  }
  for (int g = 0; g < 2; ++g) table_[g] = std::make_unique<cuda::TensorTable>(slices[g]);

  net_ = std::make_unique<CudaResnet>(arch_, plan_, o.model, max_batch, cudnn_, lt_);
  net_->set_profiling(o.profiling);
  net_->set_autotune(o.autotune);

  bplan_ = PlanBuckets(bt, o.bucket_mb, {sizeof(__half), sizeof(float)});
  if (o.comm->world_size() == 1) {
    launcher_ = std::make_unique<NoLauncher>();
  } else if (auto* nccl = dynamic_cast<comm::NcclCommunicator*>(o.comm)) {
    if (nccl->device() != o.device) {
      Fail(ErrorCode::kInvalidArgument, "CUDA engine on device " + std::to_string(o.device) +
                                            " but its NCCL communicator is on device " +
                                            std::to_string(nccl->device()));
    }
    launcher_ = std::make_unique<NcclLauncher>(*nccl, compute_, bplan_, g16_.as<__half>(), g32_.as<float>(), opt_);
  } else {
    spdlog::warn("CUDA engine with the {} communicator: gradients are staged through host memory after backward "
                 "(not overlapped); use allreduce.backend: nccl on GPUs",
                 o.comm->backend());
    launcher_ = std::make_unique<StagedLauncher>(*o.comm, compute_, bplan_, g16_.as<__half>(), g32_.as<float>(), opt_);
  }
  overlap_ = std::make_unique<OverlapScheduler>(bplan_, *launcher_);

  // Initial weights: the CPU model's, from the seed (bit-identical on every
  // rank and engine), converted to the device layout.
  model::ModelOptions init = o.model;
  init.max_batch = 0;
  auto cpu_model = model::BuildModel<float>(o.model_name, init, o.seed);
  EngineState st;
  st.params.assign(cpu_model->params(), cpu_model->params() + cpu_model->num_params());
  st.momentum.assign(arch_.num_params, 0.0f);
  st.bn_running.assign(cpu_model->buffers(), cpu_model->buffers() + cpu_model->num_buffers());
  st.loss_scale = ls_opt_.init_scale;
  ImportState(st);
  WarmUp();
  ImportState(st);  // the warm-up moved BN statistics: back to the seed's state
}

// One forward + backward at the max batch on a zero batch, reporting nothing:
// every cuDNN plan is built (and autotuned, synchronising) now, not in the
// first step while NCCL reductions are in flight.
void CudaEngine::WarmUp() {
  const auto t0 = Clock::now();
  last_n_ = net_->max_batch();
  uploaded_ = false;
  CUDA_CHECK(cudaMemsetAsync(images16_.as<void>(), 0, images16_.bytes(), compute_));
  CUDA_CHECK(cudaMemsetAsync(labels_.as<void>(), 0, labels_.bytes(), compute_));
  EnqueueForward(true);
  net_->Backward(Params(), {}, compute_);
  EnqueueForward(false);  // evaluation's BN plans (the convolutions are shared)
  SyncBounded(compute_, Deadline::AfterSeconds(std::max(600.0, opt_.timeout_seconds), opt_.abort), "warm-up");
  net_->TakeProfile();
  spdlog::info("CUDA engine: plans for batch {} built in {:.1f} s", last_n_, Seconds(t0, Clock::now()));
}

CudaEngine::~CudaEngine() {
  if (compute_) cudaStreamSynchronize(compute_);
  net_.reset();
  overlap_.reset();
  launcher_.reset();
  for (cudaEvent_t ev : {ev_input_, ev_start_, ev_bwd_, ev_upd0_, ev_upd1_})
    if (ev) cudaEventDestroy(ev);
  if (lt_) cublasLtDestroy(lt_);
  if (cudnn_) cudnnDestroy(cudnn_);
  if (copy_) cudaStreamDestroy(copy_);
  if (compute_) cudaStreamDestroy(compute_);
}

void CudaEngine::Upload(const data::Batch& b, bool training) {
  if (b.size <= 0 || b.size > net_->max_batch()) {
    Fail(ErrorCode::kInvalidArgument, "CUDA engine: batch of " + std::to_string(b.size) + " images; allowed 1.." +
                                          std::to_string(net_->max_batch()));
  }
  if (b.channels != arch_.in_channels || b.height != arch_.image_size || b.width != arch_.image_size) {
    Fail(ErrorCode::kInvalidArgument, "CUDA engine: batch of " + std::to_string(b.channels) + "x" +
                                          std::to_string(b.height) + "x" + std::to_string(b.width) +
                                          " images; the model takes " + std::to_string(arch_.in_channels) + "x" +
                                          std::to_string(arch_.image_size) + "x" + std::to_string(arch_.image_size));
  }
  const size_t pixels = size_t(b.size) * b.channels * b.height * b.width;
  const bool raw = b.images.empty();  // uint8 NHWC from the JPEG pipeline, normalised here on the device
  if ((raw ? b.pixels.size() : b.images.size()) != pixels || b.labels.size() != size_t(b.size) ||
      (raw && (b.mean.size() != size_t(b.channels) || b.std.size() != size_t(b.channels)))) {
    Fail(ErrorCode::kInvalidArgument, "CUDA engine: malformed batch: " +
                                          std::to_string(raw ? b.pixels.size() : b.images.size()) + " values, " +
                                          std::to_string(b.labels.size()) + " labels and " +
                                          std::to_string(b.mean.size()) + " channel means for " +
                                          std::to_string(b.size) + " images of " + std::to_string(b.channels) +
                                          "x" + std::to_string(b.height) + "x" + std::to_string(b.width));
  }
  last_n_ = int(b.size);
  if (training && resident && uploaded_) return;
  // images32_/h_images_ hold fp32 NCHW or, 4x smaller, the uint8 NHWC pixels.
  const size_t bytes = raw ? pixels : pixels * sizeof(float);
  std::memcpy(h_images_.as<void>(), raw ? static_cast<const void*>(b.pixels.data()) : b.images.data(), bytes);
  std::memcpy(h_labels_.as<void>(), b.labels.data(), b.labels.size() * sizeof(int32_t));
  CUDA_CHECK(cudaMemcpyAsync(images32_.as<void>(), h_images_.as<void>(), bytes, cudaMemcpyHostToDevice, copy_));
  CUDA_CHECK(cudaMemcpyAsync(labels_.as<void>(), h_labels_.as<void>(), b.labels.size() * sizeof(int32_t),
                             cudaMemcpyHostToDevice, copy_));
  CUDA_CHECK(cudaEventRecord(ev_input_, copy_));
  CUDA_CHECK(cudaStreamWaitEvent(compute_, ev_input_, 0));
  if (raw) {
    const cpu::InputNormShape shape{.n = int(b.size), .c = b.channels, .h = b.height, .w = b.width,
                                    .layout = cpu::PixelLayout::kNHWC, .c_pad = plan_.input_c_pad};
    cuda::NormalizeToHalfNHWC(shape, images32_.as<uint8_t>(), 1.0f / 255.0f, b.mean.data(), b.std.data(),
                              images16_.as<__half>(), compute_);
  } else {
    cuda::PackNchwToHalfNhwc(images32_.as<float>(), int(b.size), b.channels, b.height, b.width, plan_.input_c_pad,
                             images16_.as<__half>(), compute_);
  }
  uploaded_ = training;
}

void CudaEngine::EnqueueForward(bool training) {
  StepScalars* d = scalars_.as<StepScalars>();
  net_->Forward(Params(), last_n_, images16_.as<__half>(), labels_.as<int32_t>(), training,
                training ? float(opt_.label_smoothing) : 0.0f, training ? &d->loss_scale.scale : &d->one,
                &d->mean_loss, &d->correct, compute_);
}

StepScalars CudaEngine::ReadScalars(const char* what) {
  CUDA_CHECK(cudaMemcpyAsync(h_scalars_.as<void>(), scalars_.as<void>(), sizeof(StepScalars), cudaMemcpyDeviceToHost,
                             compute_));
  SyncBounded(compute_, Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), what);
  return *h_scalars_.as<StepScalars>();
}

void CudaEngine::Update(double lr) {
  const size_t ge0 = plan_.group_elems[0], ge1 = plan_.group_elems[1];
  StepScalars* d = scalars_.as<StepScalars>();
  cuda::DeviceLossScale* ls = LossState();
  int32_t* found = &ls->found_inf;
  const float* inv = &ls->inv_scale;
  float* master1 = master_.as<float>() + ge0;
  float* momentum1 = momentum_.as<float>() + ge0;
  const size_t nt = arch_.tensors.size();
  float* wn0 = norms_.as<float>();
  float* gn0 = wn0 + nt;
  float* wn1 = gn0 + nt;
  float* gn1 = wn1 + nt;
  // The learning rate goes to device memory like every other step scalar.
  *h_lr_.as<float>() = float(lr);
  CUDA_CHECK(cudaMemcpyAsync(&d->lr, h_lr_.as<void>(), sizeof(float), cudaMemcpyHostToDevice, compute_));
  // Overflow check of the averaged, still scaled gradients; the fp32 group is
  // unscaled in place (the fp16 group is unscaled inside the update).
  cuda::CheckFinite(g16_.as<__half>(), int64_t(ge0), inv, found, compute_);
  cuda::UnscaleAndCheck(g32_.as<float>(), g32_.as<float>(), int64_t(ge1), inv, found, compute_);
  cuda::MomentumUpdateParams h;
  h.lars = opt_.optimizer.name == "lars";
  h.lr_dev = &d->lr;
  h.momentum = float(opt_.optimizer.momentum);
  h.weight_decay = float(opt_.optimizer.weight_decay);
  h.eta = float(opt_.optimizer.lars_eta);
  h.epsilon = float(opt_.optimizer.lars_epsilon);
  h.nesterov = opt_.optimizer.nesterov;
  if (h.lars) {
    cuda::BatchedTensorNorms(table_[0]->view(), master_.as<float>(), g16_.as<__half>(), inv, wn0, gn0, compute_);
    cuda::BatchedTensorNorms(table_[1]->view(), master1, g32_.as<float>(), &d->one, wn1, gn1, compute_);
  }
  cuda::FusedMomentumUpdate(table_[0]->view(), master_.as<float>(), momentum_.as<float>(), g16_.as<__half>(), inv,
                            h.lars ? wn0 : nullptr, h.lars ? gn0 : nullptr, w16_.as<__half>(), found, h, compute_);
  cuda::FusedMomentumUpdate(table_[1]->view(), master1, momentum1, g32_.as<float>(), &d->one,
                            h.lars ? wn1 : nullptr, h.lars ? gn1 : nullptr, nullptr, found, h, compute_);
  cuda::LossScaleUpdate(ls, ls_opt_, compute_);
}

StepStats CudaEngine::Step(const data::Batch& batch, double lr) {
  CUDA_CHECK(cudaSetDevice(opt_.device));
  Upload(batch, true);
  CUDA_CHECK(cudaEventRecord(ev_start_, compute_));
  EnqueueForward(true);
  overlap_->BeginStep();
  net_->Backward(Params(), [this](int t) { overlap_->OnTensorReady(t); }, compute_);
  CUDA_CHECK(cudaEventRecord(ev_bwd_, compute_));
  const double waited = overlap_->EndStep();
  CUDA_CHECK(cudaEventRecord(ev_upd0_, compute_));
  Update(lr);
  CUDA_CHECK(cudaEventRecord(ev_upd1_, compute_));
  const StepScalars r = ReadScalars("training step");
  float fwd_bwd_ms = 0, upd_ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&fwd_bwd_ms, ev_start_, ev_bwd_));
  CUDA_CHECK(cudaEventElapsedTime(&upd_ms, ev_upd0_, ev_upd1_));
  StepStats st;
  st.loss = r.mean_loss;
  st.correct = r.correct;
  st.compute_seconds = fwd_bwd_ms / 1e3;
  st.update_seconds = upd_ms / 1e3;
  st.comm_seconds = waited;
  // NCCL's own time on its stream is not seen from the host without more
  // events: report the exposed wait for both.
  st.allreduce_seconds = waited;
  st.skipped = r.loss_scale.skipped != 0;
  scale_ = r.loss_scale.scale;
  inv_scale_ = r.loss_scale.inv_scale;
  st.loss_scale = scale_;
  return st;
}

EvalStats CudaEngine::Predict(const data::Batch& batch) {
  CUDA_CHECK(cudaSetDevice(opt_.device));
  Upload(batch, false);
  EnqueueForward(false);
  // Top-5 on the host from the fp32 logits (n x classes: small beside the images).
  const int n = int(batch.size), classes = arch_.num_classes;
  logits_.resize(size_t(n) * classes);
  CUDA_CHECK(cudaMemcpyAsync(logits_.data(), net_->logits(), logits_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                             compute_));
  const StepScalars r = ReadScalars("evaluation");  // synchronises the stream, the logits copy included
  return {.correct = r.correct,
          .correct_top5 = cpu::TopKCorrect(cpu::SoftmaxCrossEntropyShape{n, classes}, logits_.data(),
                                           batch.labels.data(), 5),
          .loss_sum = double(r.mean_loss) * n};
}

void CudaEngine::AccumulateBnStatistics(const data::Batch& batch, double factor) {
  CheckBnFactor(factor);
  CUDA_CHECK(cudaSetDevice(opt_.device));
  Upload(batch, false);
  const double trained = net_->bn_momentum();
  net_->set_bn_momentum(1.0 - factor);
  EnqueueForward(true);
  net_->set_bn_momentum(trained);
  ReadScalars("BN statistics pass");
}

void CudaEngine::ExportState(EngineState* s) {
  CUDA_CHECK(cudaSetDevice(opt_.device));
  SyncBounded(compute_, Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), "state export");
  const size_t me = plan_.master_elems();
  std::vector<float> buf(me);
  s->params.resize(arch_.num_params);
  s->momentum.resize(arch_.num_params);
  s->bn_running.resize(arch_.num_buffers);
  const Deadline dl = Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort);
  CopyOn(compute_, buf.data(), master_.as<void>(), me * sizeof(float), cudaMemcpyDeviceToHost, dl, "state export");
  ToCanonicalLayout(plan_, arch_, buf.data(), s->params.data());
  CopyOn(compute_, buf.data(), momentum_.as<void>(), me * sizeof(float), cudaMemcpyDeviceToHost, dl, "state export");
  ToCanonicalLayout(plan_, arch_, buf.data(), s->momentum.data());
  CopyOn(compute_, s->bn_running.data(), bn_running_.as<void>(), arch_.num_buffers * sizeof(float),
         cudaMemcpyDeviceToHost, dl, "state export");
  s->loss_scale = scale_;
}

void CudaEngine::SetLossScale(double scale) {
  cpu::LossScalerOptions o = ls_opt_;
  o.init_scale = float(scale);
  o.min_scale = std::min(o.min_scale, o.init_scale);
  o.max_scale = std::max(o.max_scale, o.init_scale);
  StepScalars init{};
  init.one = 1.0f;
  init.loss_scale = cuda::MakeDeviceLossScale(o);
  CopyOn(compute_, scalars_.as<void>(), &init, sizeof(init), cudaMemcpyHostToDevice,
         Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), "loss scale");
  scale_ = init.loss_scale.scale;
  inv_scale_ = init.loss_scale.inv_scale;
}

void CudaEngine::ImportState(const EngineState& s) {
  CheckStateSizes(s, arch_, arch_.num_params);
  CUDA_CHECK(cudaSetDevice(opt_.device));
  SyncBounded(compute_, Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), "state import");
  const size_t me = plan_.master_elems();
  std::vector<float> buf(me);
  const Deadline dl = Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort);
  ToDeviceLayout(plan_, arch_, s.params.data(), buf.data());
  CopyOn(compute_, master_.as<void>(), buf.data(), me * sizeof(float), cudaMemcpyHostToDevice, dl, "state import");
  ToDeviceLayout(plan_, arch_, s.momentum.data(), buf.data());
  CopyOn(compute_, momentum_.as<void>(), buf.data(), me * sizeof(float), cudaMemcpyHostToDevice, dl, "state import");
  CopyOn(compute_, bn_running_.as<void>(), s.bn_running.data(), arch_.num_buffers * sizeof(float),
         cudaMemcpyHostToDevice, dl, "state import");
  cuda::CastFloatToHalf(master_.as<float>(), w16_.as<__half>(), int64_t(plan_.group_elems[0]), compute_);
  SyncBounded(compute_, Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), "state import");
  SetLossScale(s.loss_scale);
}

void CudaEngine::GetBnRunning(std::vector<float>* out) {
  CUDA_CHECK(cudaSetDevice(opt_.device));
  out->resize(arch_.num_buffers);
  CopyOn(compute_, out->data(), bn_running_.as<void>(), arch_.num_buffers * sizeof(float), cudaMemcpyDeviceToHost,
         Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), "BN statistics read");
}

void CudaEngine::SetBnRunning(const std::vector<float>& v) {
  CheckBnSize(v, arch_);
  CUDA_CHECK(cudaSetDevice(opt_.device));
  CopyOn(compute_, bn_running_.as<void>(), v.data(), arch_.num_buffers * sizeof(float), cudaMemcpyHostToDevice,
         Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort), "BN statistics write");
}

double CudaEngine::ComputeGradients(const data::Batch& batch, std::vector<float>* grads) {
  CUDA_CHECK(cudaSetDevice(opt_.device));
  Upload(batch, false);
  EnqueueForward(true);
  net_->Backward(Params(), {}, compute_);
  const StepScalars r = ReadScalars("gradients");
  const size_t ge0 = plan_.group_elems[0], ge1 = plan_.group_elems[1];
  std::vector<__half> h16(ge0);
  std::vector<float> master(ge0 + ge1);
  const Deadline dl = Deadline::AfterSeconds(opt_.timeout_seconds, opt_.abort);
  CopyOn(compute_, h16.data(), g16_.as<void>(), ge0 * sizeof(__half), cudaMemcpyDeviceToHost, dl, "gradients");
  CopyOn(compute_, master.data() + ge0, g32_.as<void>(), ge1 * sizeof(float), cudaMemcpyDeviceToHost, dl, "gradients");
  for (size_t i = 0; i < ge0; ++i) master[i] = __half2float(h16[i]);
  const float inv = r.loss_scale.inv_scale;  // the scale these gradients carry
  for (float& g : master) g *= inv;
  grads->assign(arch_.num_params, 0.0f);
  ToCanonicalLayout(plan_, arch_, master.data(), grads->data());
  return r.mean_loss;
}

std::vector<model::LayerTime> CudaEngine::TakeProfile() {
  const FamilyTimes f = net_->TakeProfile();
  std::vector<model::LayerTime> out;
  for (size_t i = 0; i < f.names.size(); ++i) out.push_back({f.names[i], f.seconds[i], 0});
  return out;
}

}  // namespace

std::unique_ptr<TrainEngine> MakeCudaEngine(const EngineOptions& o) { return std::make_unique<CudaEngine>(o); }

void SetResidentBatch(TrainEngine& e, bool on) {
  auto* c = dynamic_cast<CudaEngine*>(&e);
  if (!c) Fail(ErrorCode::kInvalidArgument, "SetResidentBatch: not a CUDA engine");
  c->resident = on;
}

}  // namespace dtrain::engine
