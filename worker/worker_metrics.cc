#include "worker/worker_metrics.h"

#include <unistd.h>

#include <chrono>
#include <fstream>

#include "common/metrics.h"

namespace dtrain::worker {
namespace {

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return double(resident) * double(sysconf(_SC_PAGESIZE));
}

}  // namespace

WorkerMetrics::WorkerMetrics(std::string host, std::string device)
    : host_(std::move(host)), device_(std::move(device)) {}

void WorkerMetrics::StartJob(const std::string& job_id, int rank, int world_size) {
  std::lock_guard<std::mutex> lock(mu_);
  job_ = job_id;
  rank_ = rank;
  world_ = world_size;
  last_.Clear();
  last_.set_eval_accuracy(-1);
  last_.set_eval_loss(-1);
  last_.set_eval_top5_accuracy(-1);
  steps_total_ = allreduce_bytes_total_ = allreduce_seconds_total_ = last_step_unix_ = 0;
}

void WorkerMetrics::Observe(const v1::Progress& p) {
  std::lock_guard<std::mutex> lock(mu_);
  if (p.job_id() != job_) return;
  last_ = p;
  steps_total_ = double(p.step());
  allreduce_bytes_total_ += p.allreduce_bytes();
  allreduce_seconds_total_ += p.allreduce_seconds();
  last_step_unix_ = UnixSeconds();
}

void WorkerMetrics::EndJob() {
  std::lock_guard<std::mutex> lock(mu_);
  job_.clear();
}

std::vector<prometheus::MetricFamily> WorkerMetrics::Collect() const {
  std::lock_guard<std::mutex> lock(mu_);
  FamilyBuilder b;
  b.Gauge("dtrain_worker_device_memory_bytes",
          "Memory in use on the worker's device (the process's resident memory on the CPU).");
  b.Add({{"host", host_}, {"device", device_}}, ResidentBytes());
  if (job_.empty()) return b.Take();
  const FamilyBuilder::Labels l = {{"job", job_}, {"rank", std::to_string(rank_)}, {"host", host_}};
  const v1::Progress& p = last_;
  b.Gauge("dtrain_worker_images_per_second", "Global images/s as this rank measures it (its rate x world size).")
      .Add(l, p.images_per_second());
  b.Gauge("dtrain_worker_compute_images_per_second",
          "This rank's images/s without data wait and communication (a step without communication).")
      .Add(l, p.compute_images_per_second());
  b.Gauge("dtrain_worker_step_phase_seconds", "Seconds of the last step spent in each phase.");
  for (const auto& [phase, s] : {std::pair<const char*, double>{"data", p.data_seconds()},
                                 {"compute", p.compute_seconds()},
                                 {"comm", p.comm_seconds()},
                                 {"update", p.update_seconds()}}) {
    FamilyBuilder::Labels pl = l;
    pl.push_back({"phase", phase});
    b.Add(pl, s);
  }
  b.Counter("dtrain_worker_steps_total", "Steps finished by this rank.").Add(l, steps_total_);
  b.Counter("dtrain_worker_allreduce_bytes_total", "Gradient bytes this rank allreduced.")
      .Add(l, allreduce_bytes_total_);
  b.Counter("dtrain_worker_allreduce_seconds_total",
            "Seconds the communication thread spent allreducing gradients.")
      .Add(l, allreduce_seconds_total_);
  const double algbw = p.allreduce_seconds() > 0 ? p.allreduce_bytes() / p.allreduce_seconds() : 0;
  b.Gauge("dtrain_worker_allreduce_algbw_bytes_per_second",
          "Algorithm bandwidth of the last step's allreduce (bytes / time).")
      .Add(l, algbw);
  b.Gauge("dtrain_worker_allreduce_busbw_bytes_per_second",
          "Bus bandwidth of the last step's allreduce (algbw x 2(n-1)/n).")
      .Add(l, world_ > 1 ? algbw * 2.0 * (world_ - 1) / world_ : 0.0);
  b.Gauge("dtrain_worker_loss", "Training loss of the last step.").Add(l, p.loss());
  b.Gauge("dtrain_worker_eval_accuracy_ratio", "Last top-1 test accuracy (-1 before the first evaluation).")
      .Add(l, p.eval_accuracy());
  b.Gauge("dtrain_worker_eval_top5_accuracy_ratio",
          "Last top-5 test accuracy (-1 before the first evaluation, or with 10 classes or fewer).")
      .Add(l, p.eval_top5_accuracy());
  b.Gauge("dtrain_worker_eval_loss", "Last mean test cross-entropy (-1 before the first evaluation).")
      .Add(l, p.eval_loss());
  b.Gauge("dtrain_worker_learning_rate", "Learning rate of the last step.").Add(l, p.learning_rate());
  b.Gauge("dtrain_worker_loss_scale", "Dynamic loss scale (1 without fp16).")
      .Add(l, p.loss_scale() > 0 ? p.loss_scale() : 1.0);
  b.Gauge("dtrain_worker_bad_records", "Unreadable or corrupt images replaced so far in the job (this rank).")
      .Add(l, double(p.bad_records()));
  b.Gauge("dtrain_worker_last_step_timestamp_seconds", "Unix time of the last finished step.")
      .Add(l, last_step_unix_);
  return b.Take();
}

}  // namespace dtrain::worker
