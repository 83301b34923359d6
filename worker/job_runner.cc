#include "worker/job_runner.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/error.h"
#include "common/job_spec.h"
#include "worker/comm/local_communicator.h"
#include "worker/comm/ucx_communicator.h"
#include "worker/control_client.h"
#include "worker/jobs/allreduce_bench.h"
#include "worker/trainer/trainer.h"
#include "worker/worker_metrics.h"

namespace dtrain::worker {
namespace {

std::unique_ptr<comm::Communicator> MakeCommunicator(const JobSpec& spec, const v1::Assignment& a,
                                                     comm::UcxWorker* ucx) {
  std::string backend = spec.allreduce.backend;
  if (backend == "auto") backend = a.world_size() == 1 ? "local" : "ucx";
  if (backend == "local") {
    if (a.world_size() != 1) {
      Fail(ErrorCode::kInvalidArgument, "allreduce.backend local needs a world of 1 rank");
    }
    return comm::MakeLocalCommunicator();
  }
  if (backend == "nccl") {
    Fail(ErrorCode::kUnavailable,
         "allreduce.backend nccl is not available in this worker yet (the GPU engine adds it); "
         "use auto or ucx");
  }
  if (!ucx) Fail(ErrorCode::kUnavailable, "allreduce.backend ucx: UCX failed to start on this worker");
  std::vector<comm::PeerInfo> peers;
  for (const v1::RankInfo& p : a.peers()) {
    peers.push_back({p.rank(), p.host(), p.worker_id(), p.ucx_address()});
  }
  return comm::MakeUcxCommunicator(*ucx, a.job_seq(), a.rank(), std::move(peers));
}

v1::BenchResult BenchToProto(const comm::Communicator& c, const std::string& dtype,
                             const std::vector<jobs::BenchRowResult>& rows) {
  v1::BenchResult out;
  out.set_backend(c.backend());
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

}  // namespace

JobRunner::JobRunner(const WorkerConfig& cfg, std::vector<DeviceInfo> devices,
                     comm::UcxWorker* ucx, ControlClient* control, WorkerMetrics* metrics)
    : cfg_(cfg), devices_(std::move(devices)), ucx_(ucx), control_(control), metrics_(metrics) {}

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
  spdlog::info("job {}: rank {} of {} starting", a.job_id(), a.rank(), a.world_size());
  if (metrics_) metrics_->StartJob(a.job_id(), a.rank(), a.world_size());
  const auto report = [&](const v1::WorkerMessage& m) {
    if (metrics_) metrics_->Observe(m.progress());
    control_->Send(m);
  };
  try {
    const JobSpec spec = ParseJobSpec(a.spec_yaml());
    const double timeout = spec.allreduce.timeout_seconds;
    std::unique_ptr<comm::Communicator> comm = MakeCommunicator(spec, a, ucx_);
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
            p.mutable_progress()->set_message(message);
            report(p);
          });
      *fin->mutable_bench() = BenchToProto(*comm, spec.allreduce.dtype, rows);
    } else if (spec.kind == "train") {
      if (spec.device == "cuda" || (spec.device == "auto" && devices_.at(0).kind == "cuda")) {
        spdlog::warn("job {}: the CUDA engine is not built yet; training on the CPU", a.job_id());
      }
      trainer::TrainEnv env;
      env.rank = a.rank();
      env.world_size = a.world_size();
      env.seed = a.seed();
      env.comm = comm.get();
      env.abort = abort.get();
      if (a.rank() == 0) {
        std::error_code ec;
        std::filesystem::create_directories(cfg_.log_dir, ec);
        env.mlperf_log_path = cfg_.log_dir + "/" + a.job_id() + ".mllog";
      }
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
        p->set_learning_rate(tp.learning_rate);
        p->set_message(tp.message);
        p->set_data_seconds(tp.data_seconds);
        p->set_compute_seconds(tp.compute_seconds);
        p->set_comm_seconds(tp.comm_seconds);
        p->set_update_seconds(tp.update_seconds);
        p->set_loss_scale(1.0);
        p->set_allreduce_bytes(tp.allreduce_bytes);
        p->set_allreduce_seconds(tp.allreduce_seconds);
        if (tp.step == 1) p->set_mlperf_log(env.mlperf_log_path);
        report(m);
      };
      const trainer::TrainOutcome o = trainer::RunTraining(spec, env);
      v1::TrainResult* t = fin->mutable_train();
      t->set_steps(o.steps);
      t->set_epochs(o.epochs);
      t->set_final_loss(o.final_loss);
      t->set_eval_accuracy(o.eval_accuracy);
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
  control_->SetWaiting("", 0);
  control_->Send(out);
  std::lock_guard<std::mutex> lock(mu_);
  job_id_.clear();
}

}  // namespace dtrain::worker
