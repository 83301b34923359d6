// WorkerMetrics: the worker's Prometheus metrics, read at scrape time from the
// last progress of the running job (labels job, rank, host): images/s (global
// and compute-only), step seconds by phase, steps, allreduce bytes and seconds
// (totals) with algorithm and bus bandwidth of the last step, loss, accuracy,
// learning rate, loss scale, a last-step timestamp; and the device memory in
// use (labels host, device; the process's resident memory on the CPU).
#pragma once

#include <prometheus/collectable.h>

#include <mutex>
#include <string>

#include "proto/dtrain.pb.h"

namespace dtrain::worker {

class WorkerMetrics final : public prometheus::Collectable {
 public:
  WorkerMetrics(std::string host, std::string device);
  void StartJob(const std::string& job_id, int rank, int world_size);
  void Observe(const v1::Progress& p);  // after every step
  void EndJob();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string host_, device_;
  mutable std::mutex mu_;
  std::string job_;
  int rank_ = -1, world_ = 1;
  v1::Progress last_;
  double steps_total_ = 0, allreduce_bytes_total_ = 0, allreduce_seconds_total_ = 0;
  double last_step_unix_ = 0;
};

}  // namespace dtrain::worker
