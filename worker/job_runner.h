// JobRunner: runs one assignment at a time on its own thread: resolves the
// spec, builds the job's Communicator from its peers, meets the other ranks at
// a "start" rendezvous, runs the job kind, and reports JobFinished. Abort (a
// cancel, a failed peer, a lost coordinator) cuts every wait short through
// the job's abort flag.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proto/dtrain.pb.h"
#include "worker/config.h"
#include "worker/devices.h"

namespace dtrain::comm {
class UcxWorker;
}

namespace dtrain::worker {

class ControlClient;
class WorkerMetrics;
class JobLogStore;

class JobRunner {
 public:
  // `metrics` may be null (no --metrics); `logs` may be null (no job logs kept).
  JobRunner(const WorkerConfig& cfg, std::vector<DeviceInfo> devices, comm::UcxWorker* ucx,
            ControlClient* control, WorkerMetrics* metrics, JobLogStore* logs = nullptr);
  ~JobRunner();

  void Start(const v1::Assignment& assignment);  // returns at once
  void Abort(const std::string& job_id, const std::string& reason);
  void AbortAndJoin(const std::string& reason);  // abort the running job, wait for it

 private:
  void Run(v1::Assignment a, std::shared_ptr<std::atomic<bool>> abort);

  const WorkerConfig cfg_;
  const std::vector<DeviceInfo> devices_;
  comm::UcxWorker* ucx_;
  ControlClient* control_;
  WorkerMetrics* metrics_;
  JobLogStore* logs_;
  std::mutex mu_;
  std::thread thread_;
  std::string job_id_;  // running job, empty when idle
  std::shared_ptr<std::atomic<bool>> abort_;
};

}  // namespace dtrain::worker
