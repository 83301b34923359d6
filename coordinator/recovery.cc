// The recovery side of CoordinatorCore: write-through of jobs and issued
// worker ids to the store, restoring them after a coordinator restart (a
// worker that registers again keeps its id), and restarting a job that lost
// a rank (from its last checkpoint, on a replacement or, elastic, on fewer
// workers).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/error.h"
#include "coordinator/core.h"
#include "coordinator/store.h"

namespace dtrain::coordinator {
namespace {

constexpr uint64_t kIdBlock = 1024;  // ids reserved per store write
constexpr size_t kMaxEvents = 100;   // journal lines kept per job

std::string ResumePoint(const v1::Job& job) {
  if (job.checkpoint_step() <= 0) return "from the start (no checkpoint yet)";
  return "from checkpoint step " + std::to_string(job.checkpoint_step()) + " in " +
         job.checkpoint_dir();
}

}  // namespace

void CoordinatorCore::AddEvent(Job& job, const std::string& text) {
  const std::time_t t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", std::gmtime(&t));
  job.info.add_events(std::string(stamp) + "Z " + text);
  if (job.info.events_size() > int(kMaxEvents)) job.info.mutable_events()->DeleteSubrange(0, 1);
}

void CoordinatorCore::Save(Job& job, bool force) {
  if (!opt_.store) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && job.saved_state == int(job.info.state()) &&
      job.saved_checkpoint == job.info.checkpoint_step() && job.saved_attempt == job.info.attempt() &&
      now - job.saved_at < std::chrono::seconds(2)) {
    return;
  }
  try {
    opt_.store->PutJob(job.info);
    job.saved_state = int(job.info.state());
    job.saved_checkpoint = job.info.checkpoint_step();
    job.saved_attempt = job.info.attempt();
    job.saved_at = now;
  } catch (const Error& e) {
    if (force) throw;
    job.saved_state = -1;  // CheckDeadlines tries again
    spdlog::error("job {}: {}", job.info.id(), e.what());
  }
}

uint32_t CoordinatorCore::NextSeq() {
  if (opt_.store && next_seq_ >= seq_block_end_) {
    seq_block_end_ = next_seq_ + kIdBlock;
    opt_.store->PutCounter("seq_block_end", seq_block_end_);
  }
  return static_cast<uint32_t>(next_seq_++ & 0xffffff);  // UCX tags carry 24 bits
}

std::string CoordinatorCore::NextWorkerId() {
  if (opt_.store && next_worker_ >= worker_block_end_) {
    worker_block_end_ = next_worker_ + kIdBlock;
    opt_.store->PutCounter("worker_block_end", worker_block_end_);
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "w-%04llu", static_cast<unsigned long long>(next_worker_++));
  return buf;
}

std::string CoordinatorCore::WorkerIdFor(const v1::Register& reg, Outbox& out, Notices& notices) {
  const std::string& want = reg.worker_id();
  if (want.empty()) return NextWorkerId();
  char whose[256];
  std::string refused;
  if (auto it = workers_.find(want); it != workers_.end()) {
    Worker& old = it->second;
    if (old.info.host() == reg.host() && old.info.pid() == reg.pid()) {
      // The same process: its old stream broke (perhaps unnoticed so far).
      const std::string old_job = old.info.job_id();
      if (old.info.state() != v1::DEAD) DeclareDead(old, "it registered again (restarted?)", out);
      if (auto jt = jobs_.find(old_job); jt != jobs_.end()) Touch(jt->second, notices);
      return want;
    }
    std::snprintf(whose, sizeof(whose), "it belongs to the worker on host %s with pid %d (%s)",
                  old.info.host().c_str(), old.info.pid(), v1::WorkerState_Name(old.info.state()).c_str());
    refused = whose;
  } else if (auto rt = returning_.find(want); rt != returning_.end()) {
    if (rt->second.host == reg.host() && rt->second.pid == reg.pid()) {
      returning_.erase(rt);
      spdlog::info("worker {} (host {}, pid {}) is back after the coordinator restarted and keeps "
                   "its id", want, reg.host(), reg.pid());
      return want;
    }
    std::snprintf(whose, sizeof(whose), "the previous coordinator issued it to host %s, pid %d",
                  rt->second.host.c_str(), rt->second.pid);
    refused = whose;
  } else {
    refused = opt_.store ? "this state directory never issued it, or it was dropped after "
                           "--dead-worker-seconds"
                         : "this coordinator never issued it (without --state-dir, ids are not "
                           "kept across a coordinator restart)";
  }
  const std::string id = NextWorkerId();
  spdlog::warn("the worker on host {} (pid {}) asked to keep its id {}, but {}: it is worker {} now",
               reg.host(), reg.pid(), want, refused, id);
  return id;
}

void CoordinatorCore::RecordWorker(const Worker& w) {
  if (!opt_.store) return;
  try {
    opt_.store->PutWorker({w.info.id(), w.info.host(), w.info.pid(), w.info.local_rank()});
  } catch (const Error& e) {
    spdlog::error("worker {}: {} (it gets a new id if the coordinator restarts)", w.info.id(),
                  e.what());
  }
}

void CoordinatorCore::Restore() {
  JobStore& store = *opt_.store;
  next_worker_ = std::max<uint64_t>(1, store.GetCounter("worker_block_end", 1));
  next_seq_ = std::max<uint64_t>(1, store.GetCounter("seq_block_end", 1));
  // Workers come back on their own (with their ids) within their reconnect
  // backoff; an id not claimed back is forgotten like a DEAD worker.
  const SteadyTime forget_at =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(opt_.dead_worker_seconds));
  for (JobStore::WorkerRecord& r : store.LoadWorkers()) {
    returning_[r.id] = Returning{std::move(r.host), r.pid, forget_at};
  }
  std::vector<std::string> resumed, queued;
  int running = 0;
  for (v1::Job& rec : store.LoadJobs()) {
    unsigned long long n = 0;
    if (std::sscanf(rec.id().c_str(), "job-%llu", &n) == 1) next_job_ = std::max<uint64_t>(next_job_, n + 1);
    Job& job = jobs_[rec.id()];
    job.info = std::move(rec);
    job.saved_state = int(job.info.state());  // what the store holds
    job.saved_checkpoint = job.info.checkpoint_step();
    job.saved_attempt = job.info.attempt();
    try {
      job.spec = ParseJobSpec(job.info.spec_yaml());
    } catch (const Error& e) {
      if (!IsTerminal(job.info.state())) {
        job.info.set_state(v1::FAILED);
        job.info.set_reason(std::string("its stored spec no longer parses: ") + e.what());
        Save(job, false);
      }
      continue;
    }
    job.info.clear_stalled();
    if (job.info.state() == v1::RUNNING) {
      ++running;
      AddEvent(job, "the coordinator restarted while the job ran; resuming " + ResumePoint(job.info));
      job.info.set_state(v1::QUEUED);
      job.info.set_attempt(job.info.attempt() + 1);
      job.info.set_message("resuming after a coordinator restart: waiting for " +
                           std::to_string(job.spec.workers) + " workers");
      job.info.clear_ranks();
      job.requeued_at = std::chrono::steady_clock::now();
      resumed.push_back(job.info.id());
      Save(job, false);
    } else if (job.info.state() == v1::QUEUED) {
      job.requeued_at = std::chrono::steady_clock::now();  // an elastic wait starts again
      (job.info.attempt() > 0 ? resumed : queued).push_back(job.info.id());
    }
  }
  // Submission order by number (job-1000000 comes after job-999999).
  const auto by_number = [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  };
  std::sort(resumed.begin(), resumed.end(), by_number);
  std::sort(queued.begin(), queued.end(), by_number);
  queue_.assign(resumed.begin(), resumed.end());
  queue_.insert(queue_.end(), queued.begin(), queued.end());
  spdlog::info("state {}: restored {} jobs ({} were running and resume, {} queued); {} worker ids "
               "kept for their workers for {:.0f} s; next new worker id w-{:04d}",
               store.path(), jobs_.size(), running, queue_.size() - running, returning_.size(),
               opt_.dead_worker_seconds, next_worker_);
}

void CoordinatorCore::FailOrRestart(Job& job, const std::string& reason, Outbox& out) {
  if (job.info.state() != v1::RUNNING) return;
  const int used = job.info.restarts();
  if (job.spec.kind != "train" || used >= job.spec.max_restarts) {
    FailJob(job, v1::FAILED,
            job.spec.max_restarts > 0 ? reason + " (no restarts left: " + std::to_string(used) +
                                            " of max_restarts " +
                                            std::to_string(job.spec.max_restarts) + " used)"
                                      : reason,
            out);
    return;
  }
  job.info.set_restarts(used + 1);
  const std::string text = "restart " + std::to_string(used + 1) + " of " +
                           std::to_string(job.spec.max_restarts) + " after: " + reason +
                           "; resuming " + ResumePoint(job.info);
  AddEvent(job, text);
  spdlog::warn("job {}: {}", job.info.id(), text);
  Requeue(job, out);
}

void CoordinatorCore::Requeue(Job& job, Outbox& out) {
  const auto now = std::chrono::steady_clock::now();
  const auto drain = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(opt_.drain_timeout_seconds));
  for (size_t r = 0; r < job.worker_ids.size(); ++r) {
    auto it = workers_.find(job.worker_ids[r]);
    if (it == workers_.end()) continue;
    Worker& w = it->second;
    if (w.info.state() != v1::BUSY || w.info.job_id() != job.info.id()) continue;
    v1::CoordinatorMessage msg;
    msg.mutable_command()->set_kind(v1::Command::ABORT);
    msg.mutable_command()->set_job_id(job.info.id());
    msg.mutable_command()->set_reason("the job restarts (a rank was lost)");
    out.push_back({w.channel, msg});
    w.info.clear_job_id();
    w.info.set_rank(-1);
    w.draining_job = job.info.id();
    w.drain_deadline = now + drain;
  }
  job.worker_ids.clear();
  job.finished.clear();
  job.last_progress.clear();
  job.position.clear();
  job.first_reached.clear();
  job.max_position = 0;
  job.rendezvous.clear();
  job.pending_failure.clear();
  job.info.clear_stalled();
  job.info.clear_ranks();
  job.info.set_state(v1::QUEUED);
  job.info.set_attempt(job.info.attempt() + 1);
  job.info.set_message("restarting: waiting for " + std::to_string(job.spec.workers) + " workers" +
                       (job.spec.elastic ? " (elastic: or at least " +
                                               std::to_string(job.spec.min_workers) + " after " +
                                               std::to_string(job.spec.elastic_wait_seconds) + " s)"
                                         : ""));
  job.requeued_at = now;
  queue_.push_front(job.info.id());
}

}  // namespace dtrain::coordinator
