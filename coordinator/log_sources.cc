// CoordinatorCore's part of `dtrain logs`: which worker holds each rank's
// lines, and what is known when it cannot be asked (core.h).
#include <mutex>
#include <shared_mutex>

#include "common/error.h"
#include "coordinator/core.h"

namespace dtrain::coordinator {

std::vector<CoordinatorCore::LogSource> CoordinatorCore::LogSources(const std::string& job_id,
                                                                     std::string* job_state) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const auto jt = jobs_.find(job_id);
  if (jt == jobs_.end()) Fail(ErrorCode::kNotFound, "no job '" + job_id + "' (dtrain list shows the jobs)");
  const v1::Job& job = jt->second.info;
  if (job_state) *job_state = v1::JobState_Name(job.state());
  std::vector<LogSource> out;
  for (const v1::RankInfo& r : job.ranks()) {
    LogSource s;
    s.rank = r.rank();
    s.worker_id = r.worker_id();
    s.host = r.host();
    const std::string who = "rank " + std::to_string(r.rank()) + " (worker " + r.worker_id() + " on host " +
                            r.host() + ")";
    const std::string job_says = job.reason().empty()
                                     ? ""
                                     : "; job " + job_id + " is " + v1::JobState_Name(job.state()) + ": " +
                                           job.reason();
    const auto wt = workers_.find(r.worker_id());
    if (wt == workers_.end()) {
      s.unavailable = who + ": that worker is no longer registered, so its lines cannot be read here "
                      "(they are in its --log-dir on that host, if it had one)" + job_says;
    } else if (wt->second.info.state() == v1::DEAD) {
      s.unavailable = who + " is lost: its worker is DEAD (" +
                      (wt->second.dead_reason.empty() ? "no reason recorded" : wt->second.dead_reason) +
                      "), so its lines cannot be read; on that host they are in the worker's --log-dir" +
                      job_says;
    } else if (!wt->second.channel) {
      s.unavailable = who + ": its worker is not connected" + job_says;
    } else {
      s.channel = wt->second.channel;
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool CoordinatorCore::WorkerConnected(const std::string& worker_id, const WorkerChannel* channel) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const auto it = workers_.find(worker_id);
  return it != workers_.end() && it->second.info.state() != v1::DEAD && it->second.channel.get() == channel;
}

std::string CoordinatorCore::WorkerSummary(const std::string& worker_id) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const auto it = workers_.find(worker_id);
  if (it == workers_.end()) return "no longer registered";
  const Worker& w = it->second;
  std::string s = v1::WorkerState_Name(w.info.state());
  if (w.info.state() == v1::DEAD && !w.dead_reason.empty()) s += " (" + w.dead_reason + ")";
  return s;
}

void CoordinatorCore::SetLogLinesHandler(LogLinesFn fn) {
  std::lock_guard<std::mutex> lock(log_lines_mu_);
  log_lines_ = std::move(fn);
}

}  // namespace dtrain::coordinator
