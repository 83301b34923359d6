// CoordinatorCore: the coordinator's state machine, free of gRPC. It owns the
// worker registry, the FIFO job queue, rank assignment, rendezvous barriers and
// the heartbeat deadline. The gRPC service (service.cc) turns RPCs into calls
// here; messages to a worker go out through its WorkerChannel. One reader-writer
// mutex guards everything; no call blocks on the network while holding it.
// Readers (GetJob, ListJobs, ListWorkers) and plain heartbeats share it, so
// they run side by side on gRPC's callback threads; everything else takes it
// exclusively (WriteLock). A heartbeat only stores its worker's last-seen
// time (atomic); one that reports a step it waits in goes the exclusive way.
//
// Queue (scheduler.cc): FIFO by arrival; a job that cannot start keeps its
// place and says why in its `reason` ("waiting for 8 workers, 2 registered,
// 2 idle"), logged once per change. Backfill: a later job that fits in the
// idle workers may start ahead of a waiting job only while that job has never
// run and fewer workers are registered than it asks for (it could not start
// anyway); once enough are registered it holds the line, so it waits at most
// for the jobs already running. A restarted job always holds the line. With
// `queue_timeout_seconds`, a job still queued that long after it entered the
// queue (submission, restart or coordinator restart) FAILS with that reason.
//
// Durability: with a JobStore (--state-dir) every job is written through on
// each change of state or checkpoint (progress at most every 2 s); a new core
// on the same store lists every job as before, and jobs that were RUNNING
// when the old coordinator died go back to the front of the queue to resume
// from their last checkpoint.
//
// Restarts: a train job that loses a rank (dead worker, failed rank, missed
// rendezvous) with restarts left goes back to the front of the queue; its
// surviving ranks are aborted and drain (BUSY until they report) before they
// are idle again. It restarts from its last checkpoint on N idle workers (a
// replacement included); with `elastic`, after elastic_wait_seconds, on the
// idle workers there are (>= min_workers).
//
// Worker ids: a worker that registers again with its id keeps it (the same
// host and pid, after a broken stream or, with a store, a coordinator
// restart); ids come from blocks reserved in the store and are never given to
// another worker. A DEAD worker is dropped from the registry after
// dead_worker_seconds unless it registers again first.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/job_spec.h"
#include "proto/dtrain.pb.h"

namespace dtrain::coordinator {

namespace v1 = ::dtrain::v1;
using SteadyTime = std::chrono::steady_clock::time_point;

// The downward half of a worker's stream. Send never blocks; Close ends the
// stream (the worker will reconnect and register again).
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  virtual void Send(const v1::CoordinatorMessage& msg) = 0;
  virtual void Close(const std::string& reason) = 0;
};

class JobStore;

struct CoreOptions {
  double heartbeat_timeout_seconds = 10.0;
  double heartbeat_interval_seconds = 1.0;  // told to workers at registration
  double failure_grace_seconds = 1.0;       // see Job::pending_failure
  // Stall inspector: a rank is stalled when others finished the step after
  // its last one more than this long ago.
  double stall_timeout_seconds = 30.0;
  // A worker told to abort a job (restart) is declared dead when it has not
  // reported the job's end after this long.
  double drain_timeout_seconds = 60.0;
  // A DEAD worker (and, after a restart, an id not claimed back) is dropped
  // from the registry and the store after this long.
  double dead_worker_seconds = 600.0;
  JobStore* store = nullptr;  // not owned; null: nothing survives a restart
};

class CoordinatorCore {
 public:
  explicit CoordinatorCore(CoreOptions options);
  ~CoordinatorCore();

  // ---- client side (each throws dtrain::Error with an actionable message) ----
  v1::Job Submit(const std::string& spec_yaml, const std::vector<std::string>& overrides);
  v1::Job GetJob(const std::string& job_id) const;
  std::vector<v1::Job> ListJobs() const;
  v1::Job Cancel(const std::string& job_id);
  std::vector<v1::Worker> ListWorkers() const;
  // The same as a serialized v1::ListWorkersResponse, for the RPC: each
  // worker's bytes are cached until the next exclusive section, and only the
  // heartbeat ages are written per call (exact at the time of the call).
  std::string ListWorkersSerialized() const;
  // Calls `on_change` (outside the lock) with a snapshot whenever the job
  // changes, until it ends or the returned token is destroyed.
  using WatchFn = std::function<void(const v1::Job&)>;
  std::shared_ptr<void> Watch(const std::string& job_id, WatchFn on_change);

  // ---- dtrain logs (log_sources.cc; LogRelay asks the workers) ----
  // Where each rank's log lines are: its worker and the channel to ask it
  // when that worker is connected, else `unavailable` says what is known
  // (worker, host, state, why it was lost, the job's reason). Throws
  // kNotFound for an unknown job; a job without ranks yet gives none.
  struct LogSource {
    int rank = 0;
    std::string worker_id, host;
    std::shared_ptr<WorkerChannel> channel;
    std::string unavailable;
  };
  std::vector<LogSource> LogSources(const std::string& job_id, std::string* job_state) const;
  // The worker still has this stream and is not DEAD.
  bool WorkerConnected(const std::string& worker_id, const WorkerChannel* channel) const;
  std::string WorkerSummary(const std::string& worker_id) const;  // "DEAD (why)", "IDLE", ...
  // Workers' LogLines go to `fn` (outside the lock); null: dropped.
  using LogLinesFn = std::function<void(const std::string& worker_id, const v1::LogLines&)>;
  void SetLogLinesHandler(LogLinesFn fn);

  // ---- worker side ----
  // Returns the worker id (reused when `reg.worker_id` names a known worker).
  std::string RegisterWorker(const v1::Register& reg, std::shared_ptr<WorkerChannel> channel);
  void OnWorkerMessage(const std::string& worker_id, const v1::WorkerMessage& msg);
  // `channel` tells an old stream's end from a reconnected worker's new one.
  void OnWorkerDisconnected(const std::string& worker_id, const WorkerChannel* channel,
                            const std::string& why);

  // Heartbeat and rendezvous deadlines; called by the health thread, and by
  // tests with an explicit time.
  void CheckDeadlines(SteadyTime now);

 private:
  // A worker's last message time: heartbeats store it under the shared lock
  // (several streams at once), so it is atomic; copying copies the value.
  class AtomicTime {
   public:
    AtomicTime() = default;
    AtomicTime(const AtomicTime& o) : ns_(o.ns_.load(std::memory_order_relaxed)) {}
    AtomicTime& operator=(const AtomicTime& o) {
      ns_.store(o.ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      return *this;
    }
    SteadyTime load() const {
      return SteadyTime(SteadyTime::duration(ns_.load(std::memory_order_relaxed)));
    }
    void store(SteadyTime t) { ns_.store(t.time_since_epoch().count(), std::memory_order_relaxed); }

   private:
    std::atomic<SteadyTime::rep> ns_{0};
  };
  struct Worker {
    v1::Worker info;
    std::string ucx_address;
    std::shared_ptr<WorkerChannel> channel;
    AtomicTime last_seen;
    std::string draining_job;  // aborted for a restart; BUSY until it reports the end
    SteadyTime drain_deadline;
    SteadyTime dead_since;  // when it was declared DEAD (dropped dead_worker_seconds later)
    std::string dead_reason;  // why it was declared DEAD (for dtrain logs)
  };
  // An id from the store of a previous coordinator, not registered again yet.
  struct Returning {
    std::string host;
    int32_t pid = 0;
    SteadyTime forget_at;
  };
  struct Rendezvous {
    std::vector<std::string> values;
    std::vector<bool> arrived;
    SteadyTime deadline;
  };
  struct Job {
    v1::Job info;
    JobSpec spec;
    uint32_t seq = 0;
    std::vector<std::string> worker_ids;  // by rank
    std::vector<bool> finished;            // by rank
    std::map<std::string, Rendezvous> rendezvous;
    std::vector<v1::Progress> last_progress;  // by rank
    // A rank reported a failure: held briefly, because when a peer died the
    // survivors often notice before the coordinator does, and the lost rank
    // is the cause to name.
    std::string pending_failure;
    SteadyTime pending_until;
    // Stall inspector: each rank's position (the furthest of its last finished
    // step and the step whose allreduce it is waiting in), and when each
    // recent position was first reached by any rank.
    std::vector<int64_t> position;
    std::map<int64_t, SteadyTime> first_reached;
    int64_t max_position = 0;
    SteadyTime requeued_at;  // when it went back to the queue for a restart
    SteadyTime queued_at;    // when it was submitted (queue_timeout_seconds)
    // What the store holds (Save writes when these change, or every 2 s).
    int saved_state = -1;
    int64_t saved_checkpoint = -1;
    int saved_attempt = -1;
    SteadyTime saved_at;
  };
  struct Watcher {
    std::string job_id;
    WatchFn fn;
  };
  struct Action {  // a send, or a close when `close` is set
    Action(std::shared_ptr<WorkerChannel> c, v1::CoordinatorMessage m, std::string why = "")
        : channel(std::move(c)), msg(std::move(m)), close(std::move(why)) {}
    std::shared_ptr<WorkerChannel> channel;
    v1::CoordinatorMessage msg;
    std::string close;
  };
  using Outbox = std::vector<Action>;
  using Notices = std::vector<std::pair<WatchFn, v1::Job>>;

  // All run with mu_ held; they queue sends and notices instead of doing I/O.
  // Schedule starts what can start (the queue rule above), updates the
  // waiting jobs' reasons and fails those past their queue_timeout_seconds.
  void Schedule(Outbox& out, Notices& notices);
  // How many workers `job` would start on now with `idle` idle ones (0: it cannot).
  int StartSize(const Job& job, int idle, SteadyTime now) const;
  std::vector<Worker*> PickIdle(int want);  // `want` idle workers, topology order
  void StartJob(Job& job, std::vector<Worker*> workers, uint32_t seq, Outbox& out);
  void FailJob(Job& job, v1::JobState state, const std::string& reason, Outbox& out);
  // A rank was lost: restart (max_restarts left) or fail the job.
  void FailOrRestart(Job& job, const std::string& reason, Outbox& out);
  // Stops the ranks still running (they drain) and puts the job at the front
  // of the queue for its next attempt.
  void Requeue(Job& job, Outbox& out);
  void AddEvent(Job& job, const std::string& text);
  void Save(Job& job, bool force);  // write-through to the store
  void Restore();                    // from the store, at construction
  uint32_t NextSeq();
  std::string NextWorkerId();
  // The id a registering worker keeps (its previous one, when that names
  // the same host and pid and no live worker holds it), or a new one.
  std::string WorkerIdFor(const v1::Register& reg, Outbox& out, Notices& notices);
  void RecordWorker(const Worker& w);  // write-through of an issued id
  // Drops DEAD workers and unclaimed ids of a previous coordinator after
  // dead_worker_seconds.
  void DropDeadWorkers(SteadyTime now);
  void WarnSameLocalRank(const Worker& w) const;
  void FinishRank(Job& job, int rank, const v1::JobFinished& fin, Outbox& out);
  void OnPublish(Worker& w, const v1::RendezvousPublish& pub, Outbox& out);
  void OnProgress(Worker& w, const v1::Progress& p);
  void DeclareDead(Worker& w, const std::string& why, Outbox& out);
  bool InspectStalls(Job& job, SteadyTime now);  // true when the stalled set changed
  void Advance(Job& job, int rank, int64_t position);
  void Touch(Job& job, Notices& notices);
  std::string RankName(const Job& job, int rank) const;
  Job& FindJob(const std::string& job_id);
  static void Deliver(Outbox& out, Notices& notices);

  void HealthLoop();

  // mu_ held exclusively; also marks ListWorkers' cache stale. Every writer
  // takes it this way except OnWorkerMessage, which marks the cache stale only
  // for the one message that changes a worker (JobFinished): a new path that
  // changes a worker's info or the set of workers must use WriteLock.
  std::unique_lock<std::shared_mutex> WriteLock() {
    std::unique_lock<std::shared_mutex> lock(mu_);
    ++registry_generation_;
    return lock;
  }
  // A plain heartbeat (no waiting step): the last-seen time only, shared lock.
  // False when it needs the exclusive path.
  bool OnPlainHeartbeat(const std::string& worker_id, const v1::WorkerMessage& msg);

  const CoreOptions opt_;
  mutable std::shared_mutex mu_;
  uint64_t registry_generation_ = 1;  // bumped by WriteLock; read under either lock
  // ListWorkers' cache (worker_list.cc): each worker's v1::Worker serialized
  // as a ListWorkersResponse entry without its age, in id order, built for
  // registry_generation_ == list_generation_. Rebuilt under list_mu_ with mu_
  // shared; read with mu_ shared only (no writer can run, so no rebuild either).
  struct ListRow {
    std::string entry;             // field-1 tag, length, the worker's bytes
    const AtomicTime* last_seen;   // its worker's, valid for this generation
  };
  mutable std::mutex list_mu_;
  mutable uint64_t list_generation_ = 0;
  mutable std::vector<ListRow> list_rows_;
  mutable size_t list_bytes_ = 0;
  std::map<std::string, Worker> workers_;
  std::map<std::string, Job> jobs_;
  std::deque<std::string> queue_;  // job ids, FIFO
  std::map<uint64_t, Watcher> watchers_;
  uint64_t next_watcher_ = 1;
  uint64_t next_job_ = 1;
  // Worker ids and job sequence numbers (UCX tags) never repeat, across
  // coordinator restarts too: the store keeps a reserved block's end.
  uint64_t next_worker_ = 1, worker_block_end_ = 0;
  std::map<std::string, Returning> returning_;  // by id
  uint64_t next_seq_ = 1, seq_block_end_ = 0;

  std::mutex log_lines_mu_;
  LogLinesFn log_lines_;

  std::atomic<bool> stop_{false};
  std::mutex health_mu_;
  std::condition_variable health_cv_;
  std::thread health_;
};

// Topology order for ranks: host (natural order, so node2 < node10), then
// local rank, then worker id. Returns indices into `workers`.
std::vector<size_t> TopologyOrder(const std::vector<v1::Worker>& workers);

double UnixNow();

// SUCCEEDED, FAILED or CANCELLED: the job will not change any more.
inline bool IsTerminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

}  // namespace dtrain::coordinator
