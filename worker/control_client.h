// ControlClient: the worker's one long-lived bidirectional stream to the
// coordinator. It registers, heartbeats, relays assignments and abort
// commands to handlers, answers rendezvous calls, and reconnects with
// exponential backoff when the stream breaks, sending its worker id so the
// coordinator (restarted too, with its --state-dir) lets it keep that id; it
// takes whatever id the coordinator answers. gRPC stays inside
// control_client.cc.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/deadline.h"
#include "proto/dtrain.pb.h"
#include "worker/config.h"

namespace dtrain::worker {

class ControlClient {
 public:
  struct Handlers {
    // Called on the reader thread; must return quickly.
    std::function<void(const v1::Assignment&)> on_assignment;
    std::function<void(const std::string& job_id, const std::string& reason)> on_abort;
    std::function<void(const v1::LogRequest&)> on_log_request;  // may be empty
    // The stream broke: abort the running job and return once it has ended
    // (the coordinator has already failed it); then we register again.
    std::function<void(const std::string& why)> on_disconnect;
  };

  ControlClient(const WorkerConfig& cfg, v1::Register reg, Handlers handlers);
  ~ControlClient();

  // Connects, registers and serves the stream until Shutdown(); reconnects
  // with backoff in between. Throws Error(kPermissionDenied) when the
  // coordinator refuses this worker's token 5 times in a row.
  void Run();
  void Shutdown();

  // Thread-safe. False when not connected (the message is dropped).
  bool Send(const v1::WorkerMessage& msg);

  // Publishes `value` under `key` for this job and waits until every rank
  // has: returns all values by rank. Throws Error naming who did not arrive
  // (from the coordinator), kDeadlineExceeded, or kAborted.
  std::vector<std::string> Rendezvous(const std::string& job_id, const std::string& key,
                                      const std::string& value, const Deadline& deadline);

  // What the next heartbeats say this rank is doing: waiting in the allreduce
  // of `step` of `job_id` (step 0: not waiting). For the stall inspector.
  void SetWaiting(const std::string& job_id, int64_t step);

  std::string worker_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::worker
