#include "coordinator/metrics.h"

#include <map>

#include "common/metrics.h"

namespace dtrain::coordinator {

std::vector<prometheus::MetricFamily> CoordinatorMetrics::Collect() const {
  const std::vector<v1::Job> jobs = core_.ListJobs();
  const std::vector<v1::Worker> workers = core_.ListWorkers();
  std::vector<const v1::Job*> running;
  std::map<std::string, int> job_states, worker_states;
  for (int s = v1::QUEUED; s <= v1::CANCELLED; ++s) job_states[v1::JobState_Name(s)] = 0;
  for (int s = v1::IDLE; s <= v1::DEAD; ++s) worker_states[v1::WorkerState_Name(s)] = 0;
  for (const auto& j : jobs) {
    ++job_states[v1::JobState_Name(j.state())];
    if (j.state() == v1::RUNNING) running.push_back(&j);
  }
  for (const auto& w : workers) ++worker_states[v1::WorkerState_Name(w.state())];

  FamilyBuilder b;
  b.Gauge("dtrain_job_images_per_second", "Global training throughput of a running job (images/s).");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->images_per_second());
  b.Gauge("dtrain_job_world_size", "Number of ranks of a running job.");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->world_size());
  b.Gauge("dtrain_job_scaling_efficiency_ratio",
          "Global images/s divided by the sum of the ranks' compute-only images/s.");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->scaling_efficiency());
  b.Gauge("dtrain_job_bad_records", "Unreadable images replaced so far, summed over the ranks of a running job.");
  for (const auto* j : running) b.Add({{"job", j->id()}}, double(j->bad_records()));
  b.Gauge("dtrain_job_eval_accuracy_ratio", "Last top-1 test accuracy of a running job (-1: not evaluated yet).");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->eval_accuracy());
  b.Gauge("dtrain_job_eval_top5_accuracy_ratio",
          "Last top-5 test accuracy of a running job (-1: not evaluated yet, or 10 classes or fewer).");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->eval_top5_accuracy());
  b.Gauge("dtrain_job_eval_loss", "Last mean test cross-entropy of a running job (-1: not evaluated yet).");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->eval_loss());
  b.Gauge("dtrain_job_step", "Steps finished by rank 0 of a running job.");
  for (const auto* j : running) b.Add({{"job", j->id()}}, double(j->step()));
  b.Gauge("dtrain_job_stalled_ranks", "Ranks of a running job that are stalled behind the others.");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->stalled_size());
  b.Gauge("dtrain_rank_stalled_seconds",
          "Seconds since the other ranks finished the step a stalled rank has not reached.");
  for (const auto* j : running) {
    for (const auto& s : j->stalled()) {
      b.Add({{"job", j->id()}, {"rank", std::to_string(s.rank())}, {"host", s.host()}}, s.seconds());
    }
  }
  b.Gauge("dtrain_job_restarts", "Restarts of a running job after a lost rank (max_restarts caps them).");
  for (const auto* j : running) b.Add({{"job", j->id()}}, j->restarts());
  b.Gauge("dtrain_job_checkpoint_step", "Step of a running job's last complete checkpoint (0: none).");
  for (const auto* j : running) b.Add({{"job", j->id()}}, double(j->checkpoint_step()));
  b.Gauge("dtrain_jobs", "Jobs known to the coordinator, by state.");
  for (const auto& [state, n] : job_states) b.Add({{"state", state}}, n);
  b.Gauge("dtrain_workers", "Registered workers, by state.");
  for (const auto& [state, n] : worker_states) b.Add({{"state", state}}, n);
  return b.Take();
}

}  // namespace dtrain::coordinator
