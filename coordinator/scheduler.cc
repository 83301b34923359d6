// The job side of CoordinatorCore: submit, cancel, the FIFO queue with its
// backfill rule, why a job waits and its queue timeout (core.h), starting a
// job on N idle workers in topology order, and ending it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/error.h"
#include "coordinator/core.h"

namespace dtrain::coordinator {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

uint64_t DrawSeed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

std::string Workers(int n) { return std::to_string(n) + (n == 1 ? " worker" : " workers"); }

// A measured time ("3.2", "41") and a configured one, as written ("0.5", "30").
std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", s < 10 ? 1 : 0, s);
  return buf;
}
std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// Why a job that cannot start waits: "waiting for 8 workers, 2 registered, 2 idle".
std::string WaitingFor(const JobSpec& spec, bool restarted, int registered, int idle) {
  std::string s = "waiting for " + Workers(spec.workers) + ", " + std::to_string(registered) +
                  " registered, " + std::to_string(idle) + " idle";
  if (spec.elastic && restarted && spec.min_workers < spec.workers) {
    s += " (elastic: or at least " + std::to_string(spec.min_workers) + " after " +
         Number(spec.elastic_wait_seconds) + " s)";
  }
  return s;
}

}  // namespace

v1::Job CoordinatorCore::Submit(const std::string& spec_yaml,
                                const std::vector<std::string>& overrides) {
  JobSpec spec = ParseJobSpec(spec_yaml, overrides);  // throws: nothing is created
  if (!spec.seed) spec.seed = DrawSeed();
  Outbox out;
  Notices notices;
  v1::Job snapshot;
  {
    auto lock = WriteLock();
    const uint64_t n = next_job_++;
    char id[32];
    std::snprintf(id, sizeof(id), "job-%06llu", static_cast<unsigned long long>(n));
    Job& job = jobs_[id];
    job.spec = spec;
    job.info.set_id(id);
    job.info.set_name(spec.name);
    job.info.set_kind(spec.kind);
    job.info.set_state(v1::QUEUED);
    job.info.set_world_size(spec.workers);
    job.info.set_seed(*spec.seed);
    job.info.set_spec_yaml(JobSpecToYaml(spec));
    job.info.set_eval_accuracy(-1);
    job.info.set_eval_loss(-1);
    job.info.set_eval_top5_accuracy(-1);
    job.info.set_submit_time(UnixNow());
    job.queued_at = std::chrono::steady_clock::now();
    try {
      Save(job, true);  // nothing is queued that the store does not hold
    } catch (...) {
      jobs_.erase(id);
      throw;
    }
    queue_.push_back(id);
    spdlog::info("job {} '{}' ({}) queued: {}, seed {}", id, spec.name, spec.kind,
                 Workers(spec.workers), *spec.seed);
    Schedule(out, notices);
    snapshot = job.info;
  }
  Deliver(out, notices);
  return snapshot;
}

CoordinatorCore::Job& CoordinatorCore::FindJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) Fail(ErrorCode::kNotFound, "no job '" + job_id + "' (dtrain list shows the jobs)");
  return it->second;
}

v1::Job CoordinatorCore::GetJob(const std::string& job_id) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return const_cast<CoordinatorCore*>(this)->FindJob(job_id).info;
}

std::vector<v1::Job> CoordinatorCore::ListJobs() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<v1::Job> out;
  out.reserve(jobs_.size());
  for (const auto& [id, job] : jobs_) out.push_back(job.info);
  return out;
}

v1::Job CoordinatorCore::Cancel(const std::string& job_id) {
  Outbox out;
  Notices notices;
  v1::Job snapshot;
  {
    auto lock = WriteLock();
    Job& job = FindJob(job_id);
    if (IsTerminal(job.info.state())) return job.info;  // nothing to cancel: unchanged
    if (job.info.state() == v1::QUEUED) {
      std::erase(queue_, job_id);
    }
    FailJob(job, v1::CANCELLED, "cancelled by the user", out);
    Touch(job, notices);
    Schedule(out, notices);
    snapshot = job.info;
  }
  Deliver(out, notices);
  return snapshot;
}

// The queue rule (core.h): jobs start in arrival order; a job that cannot
// start holds the line for every job behind it, unless it has never run and
// fewer workers are registered than it asks for: then it could not start
// whatever the jobs behind it do, and a later job that fits in the idle
// workers may start ("backfill"). Once enough workers are registered, it
// holds the line again and waits at most for the jobs already running, so it
// is never starved. A restarted job (attempt > 0) always holds the line: its
// replacement is usually about to register.
void CoordinatorCore::Schedule(Outbox& out, Notices& notices) {
  if (queue_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  int registered = 0, idle = 0;
  for (const auto& [id, w] : workers_) {
    if (w.info.state() == v1::DEAD) continue;
    ++registered;
    if (w.info.state() == v1::IDLE) ++idle;
  }
  std::deque<std::string> kept;  // still queued, in order
  // Their reasons, set once the idle count is final ("": the usual one).
  std::vector<std::pair<Job*, std::string>> waiting;
  const Job* holder = nullptr;   // the first waiting job that nothing may pass
  std::string passed;            // waiting jobs a started job went ahead of (for the log)
  const auto finish = [&] {      // `kept`, then whatever was not looked at
    kept.insert(kept.end(), queue_.begin(), queue_.end());
    queue_.swap(kept);
  };
  try {
    while (!queue_.empty()) {
      const std::string id = queue_.front();
      queue_.pop_front();
      Job& job = jobs_.at(id);
      const bool restarted = job.info.attempt() > 0;
      std::string reason;
      bool store_failed = false;
      if (!holder) {
        const int want = StartSize(job, idle, now);
        if (want > 0) {
          uint32_t seq = 0;
          try {
            seq = NextSeq();  // may write the store: before the job leaves the queue
          } catch (const Error& e) {
            store_failed = true;
            reason = std::string("cannot start: ") + e.what();
          }
          if (!store_failed) {
            if (want < job.spec.workers) {  // elastic: waited long enough for a replacement
              AddEvent(job, "elastic: continuing on " + std::to_string(want) + " of " +
                                std::to_string(job.spec.workers) +
                                " workers (learning rate scaled by " + std::to_string(want) + "/" +
                                std::to_string(job.spec.workers) + ")");
            }
            if (!passed.empty()) {
              spdlog::info("job {} ({}) starts ahead of {}: fewer workers are registered than "
                           "they ask for",
                           id, Workers(want), passed);
            }
            StartJob(job, PickIdle(want), seq, out);
            idle -= want;
            Touch(job, notices);
            continue;
          }
        }
      }
      if (holder) {
        reason = "waiting behind " + holder->info.id() + ", first in line for " +
                 Workers(holder->spec.workers);
      }
      if (job.queued_at == SteadyTime{} && job.requeued_at == SteadyTime{}) job.queued_at = now;
      const double queued_for =
          std::chrono::duration<double>(now - std::max(job.queued_at, job.requeued_at)).count();
      if (job.spec.queue_timeout_seconds > 0 && queued_for >= job.spec.queue_timeout_seconds) {
        FailJob(job, v1::FAILED,
                "queued for " + Seconds(queued_for) + " s (queue_timeout_seconds " +
                    Number(job.spec.queue_timeout_seconds) + "): " +
                    (reason.empty() ? WaitingFor(job.spec, restarted, registered, idle) : reason),
                out);
        Touch(job, notices);
        continue;  // the jobs behind it are looked at as if it had never been queued
      }
      kept.push_back(id);
      waiting.emplace_back(&job, reason);
      if (holder) continue;
      if (restarted || store_failed || registered >= job.spec.workers) {
        holder = &job;  // it only waits for busy workers (or the store): nothing passes it
      } else {
        passed += (passed.empty() ? "" : ", ") + id;
      }
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  for (auto& [job, why] : waiting) {
    if (why.empty()) why = WaitingFor(job->spec, job->info.attempt() > 0, registered, idle);
    if (why == job->info.reason()) continue;  // logged once per change, not every tick
    job->info.set_reason(why);
    spdlog::log(why.rfind("cannot", 0) == 0 ? spdlog::level::err : spdlog::level::info,
                "job {} is queued: {}", job->info.id(), why);
    Touch(*job, notices);
  }
}

int CoordinatorCore::StartSize(const Job& job, int idle, SteadyTime now) const {
  if (idle >= job.spec.workers) return job.spec.workers;
  // Elastic: a restarted job that waited long enough for a replacement goes
  // on with the idle workers there are.
  const bool shrink =
      job.spec.elastic && job.info.attempt() > 0 && idle >= job.spec.min_workers &&
      std::chrono::duration<double>(now - job.requeued_at).count() >= job.spec.elastic_wait_seconds;
  return shrink ? idle : 0;
}

std::vector<CoordinatorCore::Worker*> CoordinatorCore::PickIdle(int want) {
  // Pointers first: copying every idle worker on each registration made
  // 2,048 registrations O(N^2) (bench/load).
  std::vector<Worker*> idle;
  for (auto& [id, w] : workers_) {
    if (w.info.state() == v1::IDLE) idle.push_back(&w);
  }
  std::vector<v1::Worker> idle_info;
  idle_info.reserve(idle.size());
  for (Worker* w : idle) idle_info.push_back(w->info);
  std::vector<Worker*> chosen;
  for (size_t i : TopologyOrder(idle_info)) {
    if (static_cast<int>(chosen.size()) == want) break;
    chosen.push_back(idle[i]);
  }
  return chosen;
}

void CoordinatorCore::StartJob(Job& job, std::vector<Worker*> workers, uint32_t seq, Outbox& out) {
  const int n = static_cast<int>(workers.size());
  job.info.set_state(v1::RUNNING);
  job.info.clear_reason();  // why it waited
  job.info.set_world_size(n);
  if (job.info.attempt() == 0) job.info.set_start_time(UnixNow());
  job.worker_ids.clear();
  job.finished.assign(n, false);
  job.last_progress.assign(n, v1::Progress());
  job.position.assign(n, 0);
  job.info.clear_ranks();
  for (int r = 0; r < n; ++r) {
    Worker& w = *workers[r];
    w.info.set_state(v1::BUSY);
    w.info.set_job_id(job.info.id());
    w.info.set_rank(r);
    job.worker_ids.push_back(w.info.id());
    v1::RankInfo* ri = job.info.add_ranks();
    ri->set_rank(r);
    ri->set_worker_id(w.info.id());
    ri->set_host(w.info.host());
    ri->set_local_rank(w.info.local_rank());
  }
  std::string hosts;
  for (int r = 0; r < n; ++r) {
    v1::CoordinatorMessage msg;
    v1::Assignment* a = msg.mutable_assignment();
    a->set_job_id(job.info.id());
    a->set_job_seq(seq);
    a->set_attempt(job.info.attempt());
    if (job.info.checkpoint_step() > 0) {
      a->set_resume_dir(job.info.checkpoint_dir());
      a->set_resume_step(job.info.checkpoint_step());
    }
    a->set_rank(r);
    a->set_world_size(n);
    a->set_seed(job.info.seed());
    a->set_spec_yaml(job.info.spec_yaml());
    for (int p = 0; p < n; ++p) {
      v1::RankInfo* peer = a->add_peers();
      *peer = job.info.ranks(p);
      peer->set_ucx_address(workers[p]->ucx_address);
    }
    out.push_back({workers[r]->channel, msg});
    hosts += (r ? ", " : "") + RankName(job, r);
  }
  job.info.set_message(job.info.attempt() == 0 ? "started"
                                                : "attempt " + std::to_string(job.info.attempt()) +
                                                      " started on " + std::to_string(n) + " workers");
  if (job.info.attempt() > 0) AddEvent(job, job.info.message() + ": " + hosts);
  spdlog::info("job {} {} on {} workers: {}", job.info.id(),
               job.info.attempt() ? "attempt " + std::to_string(job.info.attempt()) + " started"
                                  : std::string("started"),
               n, hosts);
}

void CoordinatorCore::FailJob(Job& job, v1::JobState state, const std::string& reason,
                              Outbox& out) {
  if (IsTerminal(job.info.state())) return;
  const bool was_running = job.info.state() == v1::RUNNING;
  job.info.set_state(state);
  job.info.set_reason(reason);
  job.info.set_end_time(UnixNow());
  job.rendezvous.clear();
  job.info.clear_stalled();
  spdlog::warn("job {} {}: {}", job.info.id(), v1::JobState_Name(state), reason);
  if (!was_running) return;
  for (size_t r = 0; r < job.worker_ids.size(); ++r) {
    if (job.finished[r]) continue;
    auto it = workers_.find(job.worker_ids[r]);
    if (it == workers_.end() || it->second.info.state() == v1::DEAD) continue;
    v1::CoordinatorMessage msg;
    msg.mutable_command()->set_kind(v1::Command::ABORT);
    msg.mutable_command()->set_job_id(job.info.id());
    msg.mutable_command()->set_reason(reason);
    out.push_back({it->second.channel, msg});
  }
}

void CoordinatorCore::FinishRank(Job& job, int rank, const v1::JobFinished& fin, Outbox& out) {
  if (rank < 0 || rank >= static_cast<int>(job.finished.size()) || job.finished[rank]) return;
  job.finished[rank] = true;
  if (rank == 0 && fin.ok()) {
    if (fin.has_bench()) *job.info.mutable_bench() = fin.bench();
    if (fin.has_train()) *job.info.mutable_train() = fin.train();
  }
  if (job.info.state() != v1::RUNNING) return;
  if (!fin.ok() && job.pending_failure.empty()) {
    job.pending_failure = RankName(job, rank) + ": " + fin.error();
    job.pending_until = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(opt_.failure_grace_seconds));
  }
  for (bool f : job.finished) {
    if (!f) return;
  }
  if (!job.pending_failure.empty()) {  // nobody is left to be lost
    FailOrRestart(job, job.pending_failure, out);
    return;
  }
  job.info.set_state(v1::SUCCEEDED);
  job.info.set_end_time(UnixNow());
  job.info.clear_stalled();
  spdlog::info("job {} SUCCEEDED in {:.1f} s", job.info.id(),
               job.info.end_time() - job.info.start_time());
}

std::string CoordinatorCore::RankName(const Job& job, int rank) const {
  if (rank < 0 || rank >= job.info.ranks_size()) return "rank " + std::to_string(rank);
  const v1::RankInfo& ri = job.info.ranks(rank);
  return "rank " + std::to_string(rank) + " (host " + ri.host() + ", worker " + ri.worker_id() + ")";
}

void CoordinatorCore::OnProgress(Worker& w, const v1::Progress& p) {
  auto it = jobs_.find(p.job_id());
  if (it == jobs_.end() || w.info.job_id() != p.job_id()) return;
  Job& job = it->second;
  const int rank = w.info.rank();
  if (rank < 0 || rank >= static_cast<int>(job.last_progress.size())) return;
  job.last_progress[rank] = p;
  Advance(job, rank, p.step());
  int64_t bad = 0;  // each rank counts the records it read; the job's figure is their sum
  for (const v1::Progress& q : job.last_progress) bad += q.bad_records();
  job.info.set_bad_records(bad);
  if (!p.mlperf_log().empty()) job.info.set_mlperf_log(p.mlperf_log());
  if (rank != 0) return;
  if (p.checkpoint_step() > 0) {  // every rank has written it (the trainer's barrier)
    job.info.set_checkpoint_step(p.checkpoint_step());
    job.info.set_checkpoint_dir(p.checkpoint_dir());
  }
  v1::Job& j = job.info;
  j.set_step(p.step());
  j.set_total_steps(p.total_steps());
  j.set_epoch(p.epoch());
  j.set_loss(p.loss());
  j.set_images_per_second(p.images_per_second());
  j.set_eval_accuracy(p.eval_accuracy());
  j.set_eval_loss(p.eval_loss());
  j.set_eval_top5_accuracy(p.eval_top5_accuracy());
  j.set_message(p.message());
  // Scaling efficiency: global img/s over the sum of each rank's compute-only rate.
  double compute_sum = 0;
  for (const v1::Progress& q : job.last_progress) {
    if (q.compute_images_per_second() <= 0) {
      compute_sum = 0;
      break;
    }
    compute_sum += q.compute_images_per_second();
  }
  if (compute_sum > 0) j.set_scaling_efficiency(p.images_per_second() / compute_sum);
}

void CoordinatorCore::Advance(Job& job, int rank, int64_t position) {
  if (rank < 0 || rank >= static_cast<int>(job.position.size())) return;
  job.position[rank] = std::max(job.position[rank], position);
  if (position <= job.max_position) return;
  const auto now = std::chrono::steady_clock::now();
  for (int64_t s = std::max(job.max_position + 1, position - 1000); s <= position; ++s) {
    job.first_reached[s] = now;
  }
  job.max_position = position;
  const int64_t lowest = *std::min_element(job.position.begin(), job.position.end());
  job.first_reached.erase(job.first_reached.begin(), job.first_reached.lower_bound(lowest + 1));
}

bool CoordinatorCore::InspectStalls(Job& job, SteadyTime now) {
  std::vector<v1::StalledRank> stalled;
  for (size_t r = 0; r < job.position.size(); ++r) {
    // Behind: the others reached a collective this rank has not.
    double waited = 0;
    const int64_t pos = job.position[r];
    if (pos < job.max_position) {
      auto it = job.first_reached.find(pos + 1);
      if (it != job.first_reached.end()) waited = std::chrono::duration<double>(now - it->second).count();
    }
    // Silent: no message at all (stopped or hung wherever it is, even inside
    // the collective), well before the heartbeat deadline fails the job.
    auto wit = workers_.find(job.worker_ids[r]);
    if (wit != workers_.end()) {
      waited = std::max(waited, std::chrono::duration<double>(now - wit->second.last_seen.load()).count());
    }
    if (waited < opt_.stall_timeout_seconds) continue;
    v1::StalledRank s;
    s.set_rank(int(r));
    s.set_host(job.info.ranks(int(r)).host());
    s.set_worker_id(job.info.ranks(int(r)).worker_id());
    s.set_step(job.last_progress[r].step());
    s.set_behind_steps(std::max<int64_t>(0, job.max_position - pos));
    s.set_seconds(waited);
    stalled.push_back(s);
  }
  bool changed = stalled.size() != size_t(job.info.stalled_size());
  for (size_t i = 0; !changed && i < stalled.size(); ++i) {
    changed = stalled[i].rank() != job.info.stalled(int(i)).rank();
  }
  if (changed) {
    if (stalled.empty()) {
      spdlog::info("job {}: no rank is stalled any more", job.info.id());
    }
    for (const auto& s : stalled) {
      spdlog::warn("job {}: {} is stalled after step {} for {:.1f} s ({})", job.info.id(),
                   RankName(job, s.rank()), s.step(), s.seconds(),
                   s.behind_steps() > 0 ? "the other ranks wait for it in the next allreduce"
                                        : "it has sent nothing since");
    }
  }
  job.info.clear_stalled();
  for (auto& s : stalled) *job.info.add_stalled() = std::move(s);
  return changed;
}

void CoordinatorCore::OnPublish(Worker& w, const v1::RendezvousPublish& pub, Outbox& out) {
  auto it = jobs_.find(pub.job_id());
  if (it == jobs_.end() || w.info.job_id() != pub.job_id()) return;
  Job& job = it->second;
  if (job.info.state() != v1::RUNNING) return;
  const int n = static_cast<int>(job.worker_ids.size());
  auto [rit, fresh] = job.rendezvous.try_emplace(pub.key());
  Rendezvous& rv = rit->second;
  if (fresh) {
    rv.values.assign(n, "");
    rv.arrived.assign(n, false);
    const double t = pub.timeout_seconds() > 0 ? pub.timeout_seconds() : 60.0;
    rv.deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(t));
  }
  const int rank = w.info.rank();
  rv.values[rank] = pub.value();
  rv.arrived[rank] = true;
  for (bool a : rv.arrived) {
    if (!a) return;
  }
  v1::CoordinatorMessage msg;
  v1::RendezvousResult* res = msg.mutable_rendezvous();
  res->set_job_id(job.info.id());
  res->set_key(pub.key());
  res->set_ok(true);
  for (const auto& v : rv.values) res->add_values(v);
  for (const auto& id : job.worker_ids) out.push_back({workers_.at(id).channel, msg});
  job.rendezvous.erase(rit);
}

}  // namespace dtrain::coordinator
