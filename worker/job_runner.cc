#include "worker/job_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "common/error.h"
#include "common/job_spec.h"
#include "worker/comm/host_layout.h"
#include "worker/comm/local_communicator.h"
#ifdef DTRAIN_HAVE_NCCL
#include "worker/comm/nccl_communicator.h"
#endif
#include "worker/comm/ucx_communicator.h"
#include "worker/control_client.h"
#include "worker/engine/train_engine.h"
#include "worker/job_log.h"
#include "worker/jobs/allreduce_bench.h"
#include "worker/trainer/trainer.h"
#include "worker/worker_metrics.h"

namespace dtrain::worker {
namespace {

std::vector<comm::PeerInfo> Peers(const v1::Assignment& a) {
  std::vector<comm::PeerInfo> peers;
  for (const v1::RankInfo& p : a.peers()) {
    peers.push_back({p.rank(), p.host(), p.worker_id(), p.ucx_address()});
  }
  return peers;
}

// NCCL needs this worker's device to be a GPU (and a build with NCCL). Rank 0
// creates the unique id; the coordinator's rendezvous "nccl-id" relays it
// (the other ranks publish ""); then all ranks initialise collectively.
std::unique_ptr<comm::Communicator> MakeNccl(const v1::Assignment& a, const DeviceInfo& device,
                                             ControlClient& control,
                                             const std::function<Deadline()>& deadline) {
  if (device.kind != "cuda") {
    Fail(ErrorCode::kUnavailable, "allreduce.backend nccl needs a CUDA device; this worker has none "
                                  "(device " + device.kind + "); use ucx or local");
  }
#ifdef DTRAIN_HAVE_NCCL
  const std::string mine = a.rank() == 0 ? comm::NewNcclUniqueId() : std::string();
  const std::vector<std::string> ids = control.Rendezvous(a.job_id(), "nccl-id", mine, deadline());
  if (ids.empty()) Fail(ErrorCode::kInternal, "rendezvous nccl-id returned no values");
  return comm::MakeNcclCommunicator(a.rank(), a.world_size(), ids[0], device.index, Peers(a),
                                    deadline());
#else
  Fail(ErrorCode::kUnavailable, "allreduce.backend nccl: this worker was built without NCCL "
                                "(libnccl not found at build time); use ucx or local");
#endif
}

std::unique_ptr<comm::Communicator> MakeCommunicator(const JobSpec& spec, const v1::Assignment& a,
                                                     comm::UcxWorker* ucx, const DeviceInfo& device,
                                                     ControlClient& control,
                                                     const std::atomic<bool>* abort) {
  const double timeout = spec.allreduce.timeout_seconds;
  const std::function<Deadline()> deadline = [timeout, abort] {
    return Deadline::AfterSeconds(timeout, abort);
  };
  std::string backend = spec.allreduce.backend;
  // Hierarchical is the UCX backend's schedule (NCCL picks its own): asking
  // for it settles backend auto.
  if (backend == "auto" && spec.allreduce.algorithm == "hierarchical" && a.world_size() > 1) {
    backend = "ucx";
  }
  if (backend == "auto") {
#ifdef DTRAIN_HAVE_NCCL
    const bool nccl_here = device.kind == "cuda" && spec.device != "cpu";
#else
    const bool nccl_here = false;
#endif
    if (a.world_size() == 1) {
      backend = nccl_here ? "nccl" : "local";
    } else {
      // All ranks must pick the same backend: nccl only if every rank can.
      const std::vector<std::string> votes = control.Rendezvous(
          a.job_id(), "allreduce-backend", nccl_here ? "nccl" : "ucx", deadline());
      backend = std::all_of(votes.begin(), votes.end(), [](const std::string& v) { return v == "nccl"; })
                    ? "nccl"
                    : "ucx";
    }
  }
  if (backend == "local") {
    if (a.world_size() != 1) {
      Fail(ErrorCode::kInvalidArgument, "allreduce.backend local needs a world of 1 rank");
    }
    return comm::MakeLocalCommunicator();
  }
  if (backend == "nccl") return MakeNccl(a, device, control, deadline);
  if (!ucx) Fail(ErrorCode::kUnavailable, "allreduce.backend ucx: UCX failed to start on this worker");
  comm::UcxCommOptions options;
  options.algorithm = comm::ParseAllreduceAlgorithm(spec.allreduce.algorithm);
  return comm::MakeUcxCommunicator(*ucx, a.job_seq(), a.rank(), Peers(a), options);
}

int DistinctHosts(const v1::Assignment& a) { return comm::HostLayout::FromPeers(Peers(a)).num_hosts(); }

v1::BenchResult BenchToProto(const comm::Communicator& c, const std::string& dtype,
                             const std::vector<jobs::BenchRowResult>& rows) {
  v1::BenchResult out;
  out.set_backend(c.backend());
  out.set_algorithm(c.algorithm());
  out.set_dtype(dtype);
  out.set_world_size(c.world_size());
  for (const auto& r : rows) {
    v1::BenchRow* row = out.add_rows();
    row->set_bytes(r.bytes);
    row->set_count(r.count);
    row->set_dtype(r.dtype);
    row->set_time_us(r.time_us);
    row->set_algbw_gbps(r.algbw_gbps);
    row->set_busbw_gbps(r.busbw_gbps);
    row->set_verified(r.verified);
    row->set_iterations(r.iterations);
  }
  return out;
}

// The engine a training job runs on: "cuda" when the spec asks for it (and
// the job FAILS, naming the host and what is missing, when this worker cannot
// give it), "cpu" when asked, and for "auto" the CUDA engine whenever this
// worker has a GPU and the build has the engine.
std::string ChooseEngine(const std::string& requested, const DeviceInfo& device, const std::string& host) {
  std::string why;
  const bool built = engine::HaveCudaEngine(&why);
  if (requested == "cpu") return "cpu";
  if (requested == "cuda") {
    if (device.kind != "cuda") {
      Fail(ErrorCode::kUnavailable, "device: cuda was asked for, but worker on host " + host +
                                        " has no usable CUDA device (it offers " + device.kind +
                                        "; see its log for the CUDA error); use device: auto or cpu");
    }
    if (!built) Fail(ErrorCode::kUnavailable, "device: cuda was asked for, but on host " + host + ": " + why);
    return "cuda";
  }
  return device.kind == "cuda" && built ? "cuda" : "cpu";
}

}  // namespace

JobRunner::JobRunner(const WorkerConfig& cfg, std::vector<DeviceInfo> devices,
                     comm::UcxWorker* ucx, ControlClient* control, WorkerMetrics* metrics,
                     JobLogStore* logs)
    : cfg_(cfg), devices_(std::move(devices)), ucx_(ucx), control_(control), metrics_(metrics),
      logs_(logs) {}

JobRunner::~JobRunner() { AbortAndJoin("worker shutting down"); }

void JobRunner::Start(const v1::Assignment& a) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!job_id_.empty()) {
    v1::WorkerMessage msg;
    msg.mutable_finished()->set_job_id(a.job_id());
    msg.mutable_finished()->set_error("worker is still running job " + job_id_);
    control_->Send(msg);
    return;
  }
  if (thread_.joinable()) thread_.join();  // the last job's thread has returned
  job_id_ = a.job_id();
  abort_ = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::thread([this, a, abort = abort_] { Run(a, abort); });
}

void JobRunner::Abort(const std::string& job_id, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (job_id_ == job_id && abort_) {
    spdlog::warn("job {}: aborting: {}", job_id, reason);
    abort_->store(true);
  }
}

void JobRunner::AbortAndJoin(const std::string& reason) {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (abort_ && !job_id_.empty()) {
      spdlog::warn("job {}: aborting: {}", job_id_, reason);
      abort_->store(true);
    }
    t = std::move(thread_);
  }
  if (t.joinable()) t.join();
}

void JobRunner::Run(v1::Assignment a, std::shared_ptr<std::atomic<bool>> abort) {
  v1::WorkerMessage out;
  v1::JobFinished* fin = out.mutable_finished();
  fin->set_job_id(a.job_id());
  const JobLogScope log_scope(a.job_id());  // this thread's lines are the job's (dtrain logs)
  spdlog::info("job {}: rank {} of {} starting (attempt {}) on host {}", a.job_id(), a.rank(),
               a.world_size(), a.attempt(), cfg_.host);
  if (metrics_) metrics_->StartJob(a.job_id(), a.rank(), a.world_size());
  const auto report = [&](const v1::WorkerMessage& m) {
    if (metrics_) metrics_->Observe(m.progress());
    control_->Send(m);
  };
  try {
    const JobSpec spec = ParseJobSpec(a.spec_yaml());
    const double timeout = spec.allreduce.timeout_seconds;
    std::unique_ptr<comm::Communicator> comm =
        MakeCommunicator(spec, a, ucx_, devices_.at(0), *control_, abort.get());
    spdlog::info("job {}: rank {} allreduce backend {}{}{} over {} host(s)", a.job_id(), a.rank(),
                 comm->backend(), *comm->algorithm() ? ", algorithm " : "", comm->algorithm(),
                 DistinctHosts(a));
    control_->Rendezvous(a.job_id(), "start", "", Deadline::AfterSeconds(timeout, abort.get()));
    if (spec.kind == "allreduce-bench") {
      const comm::DType dtype = comm::ParseDType(spec.allreduce.dtype);
      auto rows = jobs::RunAllreduceBench(
          *comm, spec.bench, dtype, timeout, abort.get(),
          [&](const std::string& message, int done, int total) {
            v1::WorkerMessage p;
            p.mutable_progress()->set_job_id(a.job_id());
            p.mutable_progress()->set_step(done);
            p.mutable_progress()->set_total_steps(total);
            p.mutable_progress()->set_eval_accuracy(-1);
            p.mutable_progress()->set_eval_loss(-1);
            p.mutable_progress()->set_eval_top5_accuracy(-1);
            p.mutable_progress()->set_message(message);
            report(p);
          });
      *fin->mutable_bench() = BenchToProto(*comm, spec.allreduce.dtype, rows);
      fin->mutable_bench()->set_hosts(DistinctHosts(a));
    } else if (spec.kind == "train") {
      trainer::TrainEnv env;
      env.device = ChooseEngine(spec.device, devices_.at(0), cfg_.host);
      env.device_index = devices_.at(0).index;
      env.data_threads = DataThreadsFor(cfg_, env.device);
      spdlog::info("job {}: rank {} trains on the {} engine ({}, {} data thread(s))", a.job_id(),
                   a.rank(), env.device,
                   env.device == "cuda" ? "device " + std::to_string(env.device_index)
                                        : std::to_string(cfg_.blas_threads) + " compute thread(s)",
                   env.data_threads);
      env.rank = a.rank();
      env.world_size = a.world_size();
      env.seed = a.seed();
      env.cpu_kernels = cfg_.cpu_kernels;
      env.compute_threads = cfg_.blas_threads;
      env.comm = comm.get();
      env.abort = abort.get();
      if (a.rank() == 0) {
        std::error_code ec;
        std::filesystem::create_directories(cfg_.log_dir, ec);
        env.mlperf_log_path = cfg_.log_dir + "/" + a.job_id() +
                              (a.attempt() > 0 ? ".attempt-" + std::to_string(a.attempt()) : "") +
                              ".mllog";
        if (spec.tensorboard.every_steps > 0) env.tensorboard_dir = cfg_.log_dir + "/" + a.job_id();
      }
      if (!spec.checkpoint.dir.empty()) {
        env.checkpoint_dir = (std::filesystem::path(spec.checkpoint.dir) / a.job_id()).string();
      }
      env.resume_dir = a.resume_dir();
      bool told_log = false;
      int64_t checkpoint_step = 0;  // reported with the next progress message
      std::string checkpoint_dir;
      env.on_checkpoint = [&](int64_t step, const std::string& dir) {
        checkpoint_step = step;
        checkpoint_dir = dir;
        spdlog::info("job {}: checkpoint of step {} written by every rank: {}", a.job_id(), step, dir);
      };
      env.on_wait = [&](int64_t step, bool waiting) {
        control_->SetWaiting(a.job_id(), waiting ? step : 0);
      };
      env.on_progress = [&](const trainer::TrainProgress& tp) {
        v1::WorkerMessage m;
        v1::Progress* p = m.mutable_progress();
        p->set_job_id(a.job_id());
        p->set_step(tp.step);
        p->set_total_steps(tp.total_steps);
        p->set_epoch(tp.epoch);
        p->set_loss(tp.loss);
        p->set_images_per_second(tp.images_per_second);
        p->set_compute_images_per_second(tp.compute_images_per_second);
        p->set_eval_accuracy(tp.eval_accuracy);
        p->set_eval_loss(tp.eval_loss);
        p->set_eval_top5_accuracy(tp.eval_top5_accuracy);
        p->set_learning_rate(tp.learning_rate);
        p->set_message(tp.message);
        p->set_data_seconds(tp.data_seconds);
        p->set_compute_seconds(tp.compute_seconds);
        p->set_comm_seconds(tp.comm_seconds);
        p->set_update_seconds(tp.update_seconds);
        p->set_loss_scale(tp.loss_scale);
        p->set_bad_records(tp.bad_records);
        p->set_allreduce_bytes(tp.allreduce_bytes);
        p->set_allreduce_seconds(tp.allreduce_seconds);
        if (!told_log) p->set_mlperf_log(env.mlperf_log_path);  // the run's first step
        told_log = true;
        if (checkpoint_step > 0) {
          p->set_checkpoint_step(checkpoint_step);
          p->set_checkpoint_dir(checkpoint_dir);
          checkpoint_step = 0;
        }
        report(m);
      };
      const trainer::TrainOutcome o = trainer::RunTraining(spec, env);
      v1::TrainResult* t = fin->mutable_train();
      t->set_steps(o.steps);
      t->set_epochs(o.epochs);
      t->set_final_loss(o.final_loss);
      t->set_eval_accuracy(o.eval_accuracy);
      t->set_eval_loss(o.eval_loss);
      t->set_eval_top5_accuracy(o.eval_top5_accuracy);
      t->set_images_per_second(o.images_per_second);
      t->set_seconds(o.seconds);
      t->set_reached_target(o.reached_target);
    } else {
      Fail(ErrorCode::kInvalidArgument, "job kind '" + spec.kind + "' is not supported");
    }
    fin->set_ok(true);
    spdlog::info("job {}: rank {} done", a.job_id(), a.rank());
  } catch (const std::exception& e) {
    fin->set_ok(false);
    fin->set_error(e.what());
    fin->set_aborted(abort->load());
    if (abort->load()) {
      spdlog::warn("job {}: rank {} stopped: {}", a.job_id(), a.rank(), e.what());
    } else {
      spdlog::error("job {}: rank {} failed: {}", a.job_id(), a.rank(), e.what());
    }
  }
  if (metrics_) metrics_->EndJob();
  if (logs_) logs_->MarkEnded(a.job_id());
  control_->SetWaiting("", 0);
  {
    // Idle BEFORE saying so: the coordinator may assign the next job the
    // moment it reads JobFinished (Start then joins this thread).
    std::lock_guard<std::mutex> lock(mu_);
    job_id_.clear();
  }
  control_->Send(out);
}

}  // namespace dtrain::worker
