// LogRequestServer: answers the coordinator's LogRequests from the
// JobLogStore, one thread per request: the last `tail` lines in batches, then
// (follow) new lines every 200 ms until the job ends, the coordinator cancels,
// the stream breaks (send returns false) or the server is destroyed. The last
// batch says done; a job this worker has no lines of is an error naming the
// file it looked for.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "proto/dtrain.pb.h"
#include "worker/job_log.h"

namespace dtrain::worker {

class LogRequestServer {
 public:
  using SendFn = std::function<bool(const v1::WorkerMessage&)>;
  LogRequestServer(const JobLogStore& store, std::string host, SendFn send);
  ~LogRequestServer();  // stops and joins every request

  void Handle(const v1::LogRequest& req);  // returns at once

 private:
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> cancel;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  void Serve(v1::LogRequest req, const std::atomic<bool>& cancel);
  void ReapLocked();

  const JobLogStore& store_;
  const std::string host_;
  const SendFn send_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<uint64_t, Running> running_;
};

}  // namespace dtrain::worker
