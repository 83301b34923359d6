// The CLI's connection to dtrain-coordinator. One channel; every unary call
// carries a deadline of `timeout_seconds`; the first call also waits at most
// min(timeout, 5 s) for the connection itself, so an unreachable coordinator
// is reported quickly. Failures throw CliError with the exit code from
// exit_code.h and an actionable message (an unreachable coordinator names the
// address and how to change it; INVALID_ARGUMENT / NOT_FOUND carry the
// coordinator's message as is). Only rpc.cc includes gRPC.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proto/dtrain.pb.h"

namespace dtrain::cli {

// How to talk to the coordinator: TLS when ca_pem is set (else plaintext),
// and the bearer token every call carries (none when empty).
struct ConnectOptions {
  std::string ca_pem;
  std::string token;
};

class CoordinatorClient {
 public:
  // `address` is HOST:PORT as the user gave it (already validated).
  CoordinatorClient(const std::string& address, double timeout_seconds,
                    const ConnectOptions& connect = {});
  ~CoordinatorClient();

  v1::Job SubmitJob(const std::string& spec_yaml, const std::vector<std::string>& sets);
  v1::Job GetJob(const std::string& job_id);
  std::vector<v1::Job> ListJobs();
  v1::Job CancelJob(const std::string& job_id);
  std::vector<v1::Worker> ListWorkers();

  enum class WatchEnd {
    kStopped,  // on_event returned false (the caller saw what it waited for)
    kClosed,   // the coordinator ended the stream normally
    kExpired,  // the stream ran for max_seconds; open a new one to go on
  };
  // Opens a WatchJob stream (deadline: now + max_seconds) and passes every
  // event's job to on_event until it returns false. A broken stream throws
  // CliError (transient() tells whether retrying makes sense).
  WatchEnd WatchJob(const std::string& job_id, double max_seconds,
                    const std::function<bool(const v1::Job&)>& on_event);

  // Opens a GetJobLogs stream (deadline: now + max_seconds) and passes every
  // chunk to on_chunk until the coordinator closes it. Failures (an unknown
  // job: NOT_FOUND) throw CliError; the stream outliving max_seconds returns
  // false.
  bool GetJobLogs(const v1::GetJobLogsRequest& req, double max_seconds,
                  const std::function<void(const v1::JobLogsChunk&)>& on_chunk);

  const std::string& address() const { return address_; }

 private:
  struct Impl;
  std::string address_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtrain::cli
