// LogRelay: serves dtrain.v1 GetJobLogs. For each rank asked for, it sends a
// LogRequest down that rank's worker stream and relays the LogLines batches
// the worker answers with (worker_id checked) to the client's stream, tagged
// with rank and host. A rank whose worker is not connected, does not answer
// within kAnswerSeconds, or goes away during --follow becomes a note saying
// what is known (its worker, host, state and the job's reason). The stream
// ends when every asked rank is done; a client that goes away cancels its
// requests on the workers. Only service.cc includes this (gRPC inside).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "coordinator/core.h"

namespace dtrain::coordinator {

class LogRelay {
 public:
  static constexpr double kAnswerSeconds = 5.0;

  explicit LogRelay(CoordinatorCore& core);
  ~LogRelay();

  // The reactor for one GetJobLogs call (finished at once on a bad request).
  grpc::ServerWriteReactor<v1::JobLogsChunk>* Open(const v1::GetJobLogsRequest& req);
  // A worker's answer (from the core's worker-message path).
  void OnLines(const std::string& worker_id, const v1::LogLines& lines);

  struct Stream;  // one client call (log_relay.cc)

 private:
  struct Pending {
    std::shared_ptr<Stream> stream;
    int rank = 0;
    std::string host;
    std::string worker_id;
    std::shared_ptr<WorkerChannel> channel;
    std::chrono::steady_clock::time_point answer_by;
    bool answered = false;
  };
  void Tick();
  void Forget(const Stream* stream);  // the client call ended: cancel its requests

  CoordinatorCore& core_;
  std::mutex mu_;
  std::map<uint64_t, Pending> pending_;
  uint64_t next_id_ = 1;
  std::atomic<bool> stop_{false};
  std::thread ticker_;
};

}  // namespace dtrain::coordinator
