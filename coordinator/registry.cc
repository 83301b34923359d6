// The worker side of CoordinatorCore: registration (a worker keeps its id;
// two workers claiming one local rank of a host are warned about), messages
// from workers, disconnects, the heartbeat deadline, rendezvous deadlines,
// dropping DEAD workers after dead_worker_seconds, and watchers.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/error.h"
#include "coordinator/core.h"
#include "coordinator/store.h"

namespace dtrain::coordinator {
namespace {

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

CoordinatorCore::CoordinatorCore(CoreOptions options) : opt_(options) {
  if (opt_.store) Restore();
  health_ = std::thread([this] { HealthLoop(); });
}

CoordinatorCore::~CoordinatorCore() {
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    stop_ = true;
  }
  health_cv_.notify_all();
  health_.join();
}

void CoordinatorCore::HealthLoop() {
  const auto period = std::chrono::milliseconds(
      std::clamp<int64_t>(static_cast<int64_t>(opt_.heartbeat_timeout_seconds * 100), 20, 500));
  std::unique_lock<std::mutex> lock(health_mu_);
  while (!stop_) {
    health_cv_.wait_for(lock, period, [this] { return stop_.load(); });
    if (stop_) break;
    lock.unlock();
    CheckDeadlines(std::chrono::steady_clock::now());
    lock.lock();
  }
}

std::string CoordinatorCore::RegisterWorker(const v1::Register& reg,
                                            std::shared_ptr<WorkerChannel> channel) {
  Outbox out;
  Notices notices;
  std::string id;
  {
    auto lock = WriteLock();
    id = WorkerIdFor(reg, out, notices);
    Worker& w = workers_[id];
    w = Worker{};  // nothing of a previous life (a drain marker above all) carries over
    w.info.set_id(id);
    w.info.set_host(reg.host());
    w.info.set_local_rank(reg.local_rank());
    *w.info.mutable_devices() = reg.devices();
    w.info.set_state(v1::IDLE);
    w.info.set_rank(-1);
    w.info.set_registered_time(UnixNow());
    w.info.set_metrics_address(reg.metrics_address());
    w.info.set_pid(reg.pid());
    w.ucx_address = reg.ucx_address();
    w.channel = std::move(channel);
    w.last_seen.store(std::chrono::steady_clock::now());
    RecordWorker(w);
    WarnSameLocalRank(w);
    v1::CoordinatorMessage msg;
    msg.mutable_registered()->set_worker_id(id);
    msg.mutable_registered()->set_heartbeat_interval_seconds(opt_.heartbeat_interval_seconds);
    out.push_back({w.channel, msg});
    spdlog::info("worker {} registered: host {} local rank {} pid {} ({} device(s): {})", id,
                 reg.host(), reg.local_rank(), reg.pid(), reg.devices_size(),
                 reg.devices_size() ? reg.devices(0).name() : "none");
    Schedule(out, notices);
  }
  Deliver(out, notices);
  return id;
}

bool CoordinatorCore::OnPlainHeartbeat(const std::string& worker_id, const v1::WorkerMessage& msg) {
  if (msg.msg_case() != v1::WorkerMessage::kHeartbeat || msg.heartbeat().waiting_step() > 0) {
    return false;
  }
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end() && it->second.info.state() != v1::DEAD) {
    it->second.last_seen.store(std::chrono::steady_clock::now());
  }
  return true;
}

void CoordinatorCore::OnWorkerMessage(const std::string& worker_id, const v1::WorkerMessage& msg) {
  if (msg.msg_case() == v1::WorkerMessage::kLogLines) {  // dtrain logs: no state to change
    LogLinesFn fn;
    {
      std::lock_guard<std::mutex> lock(log_lines_mu_);
      fn = log_lines_;
    }
    if (fn) fn(worker_id, msg.log_lines());
    return;
  }
  if (OnPlainHeartbeat(worker_id, msg)) return;
  Outbox out;
  Notices notices;
  {
    // Progress, rendezvous and step heartbeats (every rank, every few steps)
    // change only the job: they leave ListWorkers' cache valid. Only a
    // finished job changes a worker (state, job, rank).
    std::unique_lock<std::shared_mutex> lock(mu_);
    if (msg.msg_case() == v1::WorkerMessage::kFinished) ++registry_generation_;
    auto it = workers_.find(worker_id);
    if (it == workers_.end() || it->second.info.state() == v1::DEAD) return;
    Worker& w = it->second;
    w.last_seen.store(std::chrono::steady_clock::now());
    const std::string job_id = w.info.job_id();
    switch (msg.msg_case()) {
      case v1::WorkerMessage::kProgress:
        OnProgress(w, msg.progress());
        break;
      case v1::WorkerMessage::kPublish:
        OnPublish(w, msg.publish(), out);
        break;
      case v1::WorkerMessage::kFinished: {
        if (!w.draining_job.empty() && w.draining_job == msg.finished().job_id() &&
            w.info.job_id().empty()) {
          w.draining_job.clear();  // the aborted rank of a restarted job has stopped
          w.info.set_state(v1::IDLE);
          Schedule(out, notices);
          break;
        }
        auto jt = jobs_.find(msg.finished().job_id());
        if (jt == jobs_.end() || job_id != msg.finished().job_id()) break;
        const int rank = w.info.rank();
        w.info.set_state(v1::IDLE);
        w.info.clear_job_id();
        w.info.set_rank(-1);
        FinishRank(jt->second, rank, msg.finished(), out);
        Schedule(out, notices);
        break;
      }
      case v1::WorkerMessage::kHeartbeat:
        if (msg.heartbeat().waiting_step() > 0 && msg.heartbeat().job_id() == job_id) {
          if (auto jt = jobs_.find(job_id); jt != jobs_.end()) {
            Advance(jt->second, w.info.rank(), msg.heartbeat().waiting_step());
          }
        }
        break;
      default:
        break;
    }
    if (!job_id.empty()) {
      auto jt = jobs_.find(job_id);
      if (jt != jobs_.end() && msg.msg_case() != v1::WorkerMessage::kHeartbeat) {
        Touch(jt->second, notices);
      }
    }
  }
  Deliver(out, notices);
}

void CoordinatorCore::OnWorkerDisconnected(const std::string& worker_id,
                                           const WorkerChannel* channel, const std::string& why) {
  Outbox out;
  Notices notices;
  {
    auto lock = WriteLock();
    auto it = workers_.find(worker_id);
    if (it == workers_.end() || it->second.channel.get() != channel) return;
    const std::string job_id = it->second.info.job_id();
    DeclareDead(it->second, "connection lost (" + why + ")", out);
    if (auto jt = jobs_.find(job_id); jt != jobs_.end()) Touch(jt->second, notices);
    Schedule(out, notices);
  }
  Deliver(out, notices);
}

void CoordinatorCore::DeclareDead(Worker& w, const std::string& why, Outbox& out) {
  if (w.info.state() == v1::DEAD) return;
  spdlog::warn("worker {} (host {}, local rank {}) declared dead: {}", w.info.id(), w.info.host(),
               w.info.local_rank(), why);
  const std::string job_id = w.info.job_id();
  const int rank = w.info.rank();
  w.info.set_state(v1::DEAD);
  w.dead_since = std::chrono::steady_clock::now();
  w.dead_reason = why;
  w.draining_job.clear();
  w.info.clear_job_id();
  w.info.set_rank(-1);
  out.push_back({w.channel, v1::CoordinatorMessage(), "declared dead: " + why});
  auto jt = jobs_.find(job_id);
  if (jt == jobs_.end()) return;
  Job& job = jt->second;
  if (rank >= 0 && rank < static_cast<int>(job.finished.size())) job.finished[rank] = true;
  std::string reason = "lost " + RankName(job, rank) + ": " + why;
  if (!job.pending_failure.empty()) reason += "; first reported by " + job.pending_failure;
  FailOrRestart(job, reason, out);
}

void CoordinatorCore::CheckDeadlines(SteadyTime now) {
  Outbox out;
  Notices notices;
  {
    auto lock = WriteLock();
    DropDeadWorkers(now);  // first: a worker declared dead below stays listed for its grace
    const auto timeout = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(opt_.heartbeat_timeout_seconds));
    bool changed = false;
    for (auto& [id, w] : workers_) {
      if (!w.draining_job.empty() && w.info.job_id().empty() && w.info.state() == v1::BUSY &&
          now > w.drain_deadline) {
        char why[160];
        std::snprintf(why, sizeof(why), "it did not stop job %s within %.0f s of being told to",
                      w.draining_job.c_str(), opt_.drain_timeout_seconds);
        DeclareDead(w, why, out);
        changed = true;
        continue;
      }
      if (w.info.state() == v1::DEAD || now - w.last_seen.load() <= timeout) continue;
      const std::string job_id = w.info.job_id();
      char why[128];
      std::snprintf(why, sizeof(why), "no heartbeat for %.1f s (deadline %.1f s)",
                    Seconds(now - w.last_seen.load()), opt_.heartbeat_timeout_seconds);
      DeclareDead(w, why, out);
      if (auto jt = jobs_.find(job_id); jt != jobs_.end()) Touch(jt->second, notices);
      changed = true;
    }
    for (auto& [id, job] : jobs_) {
      if (job.saved_state != int(job.info.state())) Save(job, false);  // retries a failed write
      if (job.info.state() != v1::RUNNING) continue;
      if (!job.pending_failure.empty() && now >= job.pending_until) {
        FailOrRestart(job, job.pending_failure, out);
        Touch(job, notices);
        changed = true;
        continue;
      }
      if (InspectStalls(job, now)) Touch(job, notices);
      for (auto& [key, rv] : job.rendezvous) {
        if (now < rv.deadline) continue;
        std::string missing;
        for (size_t r = 0; r < rv.arrived.size(); ++r) {
          if (!rv.arrived[r]) missing += (missing.empty() ? "" : ", ") + RankName(job, int(r));
        }
        const std::string reason =
            "rendezvous '" + key + "' timed out: " + missing + " did not arrive";
        v1::CoordinatorMessage msg;
        msg.mutable_rendezvous()->set_job_id(id);
        msg.mutable_rendezvous()->set_key(key);
        msg.mutable_rendezvous()->set_ok(false);
        msg.mutable_rendezvous()->set_error(reason);
        for (size_t r = 0; r < rv.arrived.size(); ++r) {
          if (rv.arrived[r]) out.push_back({workers_.at(job.worker_ids[r]).channel, msg});
        }
        FailOrRestart(job, reason, out);  // clears job.rendezvous
        Touch(job, notices);
        changed = true;
        break;
      }
    }
    // Also for elastic jobs whose wait for a replacement ran out.
    if (changed || !queue_.empty()) Schedule(out, notices);
  }
  Deliver(out, notices);
}

void CoordinatorCore::DropDeadWorkers(SteadyTime now) {
  const auto grace = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(opt_.dead_worker_seconds));
  std::vector<std::string> forget;
  for (auto it = workers_.begin(); it != workers_.end();) {
    const Worker& w = it->second;
    if (w.info.state() != v1::DEAD || now - w.dead_since < grace) {
      ++it;
      continue;
    }
    // No job refers to it any more: losing it failed or requeued its job,
    // and a queued job holds no worker.
    spdlog::info("worker {} (host {}, local rank {}) dropped from the registry: DEAD for {:.0f} s "
                 "(--dead-worker-seconds {:g})",
                 it->first, w.info.host(), w.info.local_rank(), Seconds(now - w.dead_since),
                 opt_.dead_worker_seconds);
    forget.push_back(it->first);
    it = workers_.erase(it);
  }
  for (auto it = returning_.begin(); it != returning_.end();) {
    if (now < it->second.forget_at) {
      ++it;
      continue;
    }
    spdlog::info("worker id {} (host {}, pid {}) was not claimed back within {:g} s of the "
                 "coordinator's restart: forgotten",
                 it->first, it->second.host, it->second.pid, opt_.dead_worker_seconds);
    forget.push_back(it->first);
    it = returning_.erase(it);
  }
  if (!opt_.store) return;
  for (const std::string& id : forget) {
    try {
      opt_.store->DeleteWorker(id);
    } catch (const Error& e) {  // harmless: a restart forgets it again
      spdlog::error("worker {}: {}", id, e.what());
    }
  }
}

void CoordinatorCore::WarnSameLocalRank(const Worker& w) const {
  for (const auto& [id, o] : workers_) {
    if (id == w.info.id() || o.info.state() == v1::DEAD || o.info.host() != w.info.host() ||
        o.info.local_rank() != w.info.local_rank()) {
      continue;
    }
    spdlog::warn("workers {} (pid {}) and {} (pid {}) on host {} both claim local rank {}: on a GPU "
                 "host they pick the same device; give each worker of a host its own --local-rank "
                 "(or SLURM_LOCALID / OMPI_COMM_WORLD_LOCAL_RANK)",
                 o.info.id(), o.info.pid(), w.info.id(), w.info.pid(), w.info.host(),
                 w.info.local_rank());
  }
}

std::shared_ptr<void> CoordinatorCore::Watch(const std::string& job_id, WatchFn on_change) {
  v1::Job snapshot;
  uint64_t key;
  {
    auto lock = WriteLock();
    snapshot = FindJob(job_id).info;
    key = next_watcher_++;
    watchers_[key] = Watcher{job_id, on_change};
  }
  on_change(snapshot);
  return std::shared_ptr<void>(nullptr, [this, key](void*) {
    auto lock = WriteLock();
    watchers_.erase(key);
  });
}

void CoordinatorCore::Touch(Job& job, Notices& notices) {
  Save(job, false);
  for (const auto& [key, w] : watchers_) {
    if (w.job_id == job.info.id()) notices.push_back({w.fn, job.info});
  }
}

void CoordinatorCore::Deliver(Outbox& out, Notices& notices) {
  for (auto& a : out) {
    if (!a.channel) continue;
    if (a.close.empty()) {
      a.channel->Send(a.msg);
    } else {
      a.channel->Close(a.close);
    }
  }
  for (auto& [fn, job] : notices) fn(job);
}

}  // namespace dtrain::coordinator
