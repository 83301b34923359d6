#include "worker/log_requests.h"

#include <chrono>

namespace dtrain::worker {
namespace {

constexpr size_t kBatchLines = 500;
constexpr size_t kBatchBytes = size_t(256) << 10;
constexpr auto kFollowPoll = std::chrono::milliseconds(200);

}  // namespace

LogRequestServer::LogRequestServer(const JobLogStore& store, std::string host, SendFn send)
    : store_(store), host_(std::move(host)), send_(std::move(send)) {}

LogRequestServer::~LogRequestServer() {
  stop_ = true;
  std::map<uint64_t, Running> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running.swap(running_);
  }
  for (auto& [id, r] : running) r.thread.join();
}

void LogRequestServer::ReapLocked() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second.finished->load()) {
      it->second.thread.join();
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
}

void LogRequestServer::Handle(const v1::LogRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  ReapLocked();
  if (req.cancel()) {
    auto it = running_.find(req.request_id());
    if (it != running_.end()) *it->second.cancel = true;
    return;
  }
  if (stop_ || running_.count(req.request_id())) return;
  Running r;
  r.cancel = std::make_shared<std::atomic<bool>>(false);
  r.finished = std::make_shared<std::atomic<bool>>(false);
  r.thread = std::thread([this, req, cancel = r.cancel, finished = r.finished] {
    Serve(req, *cancel);
    *finished = true;
  });
  running_.emplace(req.request_id(), std::move(r));
}

void LogRequestServer::Serve(v1::LogRequest req, const std::atomic<bool>& cancel) {
  auto batch = [&](const std::vector<std::string>& lines, bool done, const std::string& error) {
    size_t i = 0;
    do {
      v1::WorkerMessage m;
      v1::LogLines* out = m.mutable_log_lines();
      out->set_request_id(req.request_id());
      size_t bytes = 0;
      while (i < lines.size() && out->lines_size() < int(kBatchLines) && bytes < kBatchBytes) {
        bytes += lines[i].size();
        out->add_lines(lines[i++]);
      }
      out->set_done(done && i == lines.size());
      out->set_error(out->done() ? error : "");
      if (!send_(m)) return false;
    } while (i < lines.size());
    return true;
  };

  JobLogStore::Slice s = store_.Read(req.job_id(), 0, req.tail());
  if (!s.found) {
    batch({}, true, "this worker (host " + host_ + ") has no log lines of job " + req.job_id() +
                        " (looked in memory and " + store_.PathOf(req.job_id()) + ")");
    return;
  }
  bool done = !req.follow() || s.ended;
  if (!batch(s.lines, done, "") || done) return;
  uint64_t next = s.next;
  while (!cancel && !stop_) {
    std::this_thread::sleep_for(kFollowPoll);
    s = store_.Read(req.job_id(), next, 0);
    next = s.next;
    if (s.lines.empty() && !s.ended) continue;
    if (!batch(s.lines, s.ended, "") || s.ended) return;
  }
  batch({}, true, "");  // cancelled or stopping: close the request
}

}  // namespace dtrain::worker
