// Coordinator durability and restarts (core + real SQLite store in a temp
// dir): jobs survive a new core on the same store, a running job resumes from
// its last checkpoint, a lost rank restarts the job on a replacement worker
// (survivors drain first), restarts run out into FAILED, elastic jobs go on
// with fewer workers, a worker that registers again keeps its id (across a
// coordinator restart too) while ids never go to another worker, DEAD workers
// are dropped after dead_worker_seconds, two workers claiming one local rank
// of a host are warned about, and a damaged database is refused naming the
// file. (Real processes: tests/integration, test_recovery and test_worker_ids.)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "coordinator/core.h"
#include "coordinator/store.h"
#include "recording_channel.h"

namespace dtrain::coordinator {
namespace {

using Channel = RecordingChannel;

std::string TempDir() {
  char tmpl[] = "/tmp/dtrain-recovery-XXXXXX";
  return mkdtemp(tmpl);
}

struct Cluster {
  explicit Cluster(JobStore* store, double elastic_wait = 0) {
    CoreOptions o{60.0, 1.0};
    o.store = store;
    core = std::make_unique<CoordinatorCore>(o);
  }
  std::unique_ptr<CoordinatorCore> core;
  std::vector<std::shared_ptr<Channel>> ch;
  std::vector<std::string> ids;
  size_t Add(const std::string& host) {
    v1::Register reg;
    reg.set_host(host);
    ch.push_back(std::make_shared<Channel>());
    ids.push_back(core->RegisterWorker(reg, ch.back()));
    return ids.size() - 1;
  }
  void Send(size_t i, const v1::WorkerMessage& m) { core->OnWorkerMessage(ids[i], m); }
  void Checkpoint(size_t i, const std::string& job, int64_t step, const std::string& dir) {
    v1::WorkerMessage m;
    m.mutable_progress()->set_job_id(job);
    m.mutable_progress()->set_step(step);
    m.mutable_progress()->set_checkpoint_step(step);
    m.mutable_progress()->set_checkpoint_dir(dir);
    Send(i, m);
  }
  void Finish(size_t i, const std::string& job, bool ok) {
    v1::WorkerMessage m;
    m.mutable_finished()->set_job_id(job);
    m.mutable_finished()->set_ok(ok);
    m.mutable_finished()->set_aborted(!ok);
    Send(i, m);
  }
};

const char* kTrain =
    "name: t\nkind: train\nmodel: resnet20\nworkers: 2\nseed: 7\nmax_restarts: 1\n"
    "checkpoint: {dir: /tmp/ck, every_steps: 10}\n";

TEST(JobStore, JobsAndCountersSurviveReopening) {
  const std::string dir = TempDir();
  {
    JobStore s(dir);
    v1::Job j;
    j.set_id("job-000003");
    j.set_state(v1::SUCCEEDED);
    j.set_reason("why");
    s.PutJob(j);
    j.set_reason("updated");
    s.PutJob(j);
    s.PutCounter("c", 42);
  }
  JobStore s(dir);
  auto jobs = s.LoadJobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].reason(), "updated");
  EXPECT_EQ(s.GetCounter("c", 0), 42u);
  EXPECT_EQ(s.GetCounter("missing", 5), 5u);
}

TEST(JobStore, DamagedDatabaseIsRefusedNamingTheFile) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/coordinator.db") << std::string(4096, 'x');
  try {
    JobStore s(dir);
    FAIL() << "a garbage file was opened as a store";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/coordinator.db"), std::string::npos) << e.what();
  }
}

TEST(CoordinatorRecovery, NewCoreOnTheSameStoreListsEveryJobAndResumesTheRunningOne) {
  const std::string dir = TempDir();
  std::string running, queued, done;
  {
    JobStore store(dir);
    Cluster c(&store);
    c.Add("a");
    c.Add("b");
    done = c.core->Submit("name: d\nkind: allreduce-bench\nworkers: 1\n", {}).id();
    c.Finish(0, done, true);
    running = c.core->Submit(kTrain, {}).id();
    queued = c.core->Submit("name: q\nkind: allreduce-bench\nworkers: 2\n", {}).id();
    ASSERT_EQ(c.core->GetJob(running).state(), v1::RUNNING);
    c.Checkpoint(c.core->GetJob(running).ranks(0).worker_id() == c.ids[0] ? 0 : 1, running, 20,
                 "/tmp/ck/" + running + "/step-20");
    ASSERT_EQ(c.core->GetJob(running).checkpoint_step(), 20);
  }  // the "kill": nothing is flushed beyond what Put wrote
  JobStore store(dir);
  Cluster c(&store);
  auto jobs = c.core->ListJobs();
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(c.core->GetJob(done).state(), v1::SUCCEEDED);
  const v1::Job r = c.core->GetJob(running);
  EXPECT_EQ(r.state(), v1::QUEUED);
  EXPECT_EQ(r.attempt(), 1);
  EXPECT_EQ(r.restarts(), 0) << "a coordinator restart is not the job's restart";
  ASSERT_GT(r.events_size(), 0);
  EXPECT_NE(r.events(r.events_size() - 1).find("resuming from checkpoint step 20"), std::string::npos);
  // Workers reconnect: the resumed job runs first (ahead of the queued one), from step 20.
  c.Add("a");
  c.Add("b");
  EXPECT_NE(c.ids[0], "w-0001") << "a NEW worker never gets an id issued before the restart";
  EXPECT_EQ(c.core->GetJob(running).state(), v1::RUNNING);
  EXPECT_EQ(c.core->GetJob(queued).state(), v1::QUEUED);
  auto a = c.ch[0]->Assignments();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].resume_step(), 20);
  EXPECT_EQ(a[0].resume_dir(), "/tmp/ck/" + running + "/step-20");
  EXPECT_EQ(a[0].attempt(), 1);
  // A job submitted now gets a fresh id.
  EXPECT_GT(c.core->Submit("name: n\nkind: allreduce-bench\nworkers: 1\n", {}).id(), queued);
}

TEST(CoordinatorRecovery, LostRankRestartsFromCheckpointOnAReplacementAfterSurvivorsDrain) {
  Cluster c(nullptr);
  c.Add("a");
  c.Add("b");
  const std::string job = c.core->Submit(kTrain, {}).id();
  ASSERT_EQ(c.core->GetJob(job).state(), v1::RUNNING);
  c.Checkpoint(0, job, 10, "/tmp/ck/" + job + "/step-10");
  c.core->OnWorkerDisconnected(c.ids[1], c.ch[1].get(), "killed");
  v1::Job j = c.core->GetJob(job);
  EXPECT_EQ(j.state(), v1::QUEUED);
  EXPECT_EQ(j.restarts(), 1);
  EXPECT_NE(j.events(0).find("lost rank 1 (host b"), std::string::npos) << j.events(0);
  EXPECT_EQ(c.ch[0]->Aborts(), 1) << "the survivor is told to stop";
  c.Add("c");  // a replacement: the survivor is still draining, so the job waits
  EXPECT_EQ(c.core->GetJob(job).state(), v1::QUEUED);
  c.Finish(0, job, false);  // the survivor has stopped
  j = c.core->GetJob(job);
  ASSERT_EQ(j.state(), v1::RUNNING);
  EXPECT_EQ(j.attempt(), 1);
  auto a = c.ch[2]->Assignments();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].resume_step(), 10);
  EXPECT_NE(a[0].job_seq(), c.ch[0]->Assignments()[0].job_seq()) << "fresh UCX tag space";
  // The second loss has no restart left.
  c.core->OnWorkerDisconnected(c.ids[2], c.ch[2].get(), "killed again");
  j = c.core->GetJob(job);
  EXPECT_EQ(j.state(), v1::FAILED);
  EXPECT_NE(j.reason().find("no restarts left: 1 of max_restarts 1"), std::string::npos) << j.reason();
}

TEST(CoordinatorRecovery, DrainingWorkerThatComesBackStartsClean) {
  Cluster c(nullptr);
  c.Add("a");
  c.Add("b");
  const std::string job = c.core->Submit(kTrain, {}).id();
  c.core->OnWorkerDisconnected(c.ids[1], c.ch[1].get(), "killed");  // restart; "a" drains
  c.core->OnWorkerDisconnected(c.ids[0], c.ch[0].get(), "stream broke");  // before it reported
  v1::Register reg;  // "a" comes back under its id, then a replacement joins
  reg.set_host("a");
  reg.set_worker_id(c.ids[0]);
  c.ch.push_back(std::make_shared<Channel>());
  c.ids.push_back(c.core->RegisterWorker(reg, c.ch.back()));
  ASSERT_EQ(c.ids.back(), c.ids[0]);
  c.Add("c");
  ASSERT_EQ(c.core->GetJob(job).state(), v1::RUNNING);
  c.Finish(2, job, true);  // its report of the NEW attempt counts (no stale drain marker)
  c.Finish(3, job, true);
  EXPECT_EQ(c.core->GetJob(job).state(), v1::SUCCEEDED);
}

TEST(CoordinatorRecovery, ElasticJobContinuesOnFewerWorkersAfterItsWait) {
  Cluster c(nullptr);
  c.Add("a");
  c.Add("b");
  const std::string job =
      c.core->Submit(kTrain, {"elastic=true", "elastic_wait_seconds=0.2", "min_workers=1"}).id();
  c.core->OnWorkerDisconnected(c.ids[1], c.ch[1].get(), "killed");
  c.Finish(0, job, false);
  // No replacement: after the wait the health loop starts it on the one idle worker.
  for (int i = 0; i < 100 && c.core->GetJob(job).state() != v1::RUNNING; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  v1::Job j = c.core->GetJob(job);
  ASSERT_EQ(j.state(), v1::RUNNING);
  EXPECT_EQ(j.world_size(), 1);
  auto a = c.ch[0]->Assignments();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].world_size(), 1);
}

TEST(CoordinatorRecovery, JobWithoutRestartsFailsAsBefore) {
  Cluster c(nullptr);
  c.Add("a");
  c.Add("b");
  const std::string job = c.core->Submit(kTrain, {"max_restarts=0"}).id();
  c.core->OnWorkerDisconnected(c.ids[1], c.ch[1].get(), "killed");
  v1::Job j = c.core->GetJob(job);
  EXPECT_EQ(j.state(), v1::FAILED);
  EXPECT_NE(j.reason().find("lost rank 1"), std::string::npos);
  EXPECT_EQ(j.reason().find("restarts"), std::string::npos) << j.reason();
}

// ---- worker ids and the registry ----

v1::Register Reg(const std::string& host, int pid, const std::string& id = "", int local_rank = 0) {
  v1::Register reg;
  reg.set_host(host);
  reg.set_pid(pid);
  reg.set_worker_id(id);
  reg.set_local_rank(local_rank);
  return reg;
}

std::map<std::string, v1::WorkerState> States(const CoordinatorCore& core) {
  std::map<std::string, v1::WorkerState> out;
  for (const v1::Worker& w : core.ListWorkers()) out[w.id()] = w.state();
  return out;
}

// Sends spdlog's default logger into a string for the test's lifetime.
struct LogCapture {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> saved = spdlog::default_logger();
  LogCapture() {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text)));
  }
  ~LogCapture() { spdlog::set_default_logger(saved); }
};

constexpr auto kMinute = std::chrono::seconds(60);

TEST(WorkerIds, KeptAcrossACoordinatorRestartAndNeverGivenToAnotherWorker) {
  const std::string dir = TempDir();
  std::string a, b;
  {
    JobStore store(dir);
    Cluster c(&store);
    a = c.core->RegisterWorker(Reg("node1", 101, "", 0), std::make_shared<Channel>());
    b = c.core->RegisterWorker(Reg("node1", 102, "", 1), std::make_shared<Channel>());
    ASSERT_NE(a, b);
  }  // kill -9: the workers' streams break; they reconnect with their ids
  JobStore store(dir);
  Cluster c(&store);
  EXPECT_TRUE(c.core->ListWorkers().empty()) << "nobody is listed before it registers";
  auto ch_b = std::make_shared<Channel>();
  EXPECT_EQ(c.core->RegisterWorker(Reg("node1", 102, b, 1), ch_b), b);
  EXPECT_EQ(ch_b->sent.at(0).registered().worker_id(), b) << "the worker is told its id";
  // Another process asking for a's id (a different pid, or host) does not get it...
  const std::string thief = c.core->RegisterWorker(Reg("node1", 999, a, 2), std::make_shared<Channel>());
  const std::string other = c.core->RegisterWorker(Reg("node2", 101, a, 0), std::make_shared<Channel>());
  EXPECT_NE(thief, a);
  EXPECT_NE(other, a);
  // ...and a is still kept for its own worker.
  EXPECT_EQ(c.core->RegisterWorker(Reg("node1", 101, a, 0), std::make_shared<Channel>()), a);
  // An id this store never issued is not taken either; new ids never repeat old ones.
  const std::string stranger =
      c.core->RegisterWorker(Reg("node3", 5, "w-9999", 0), std::make_shared<Channel>());
  EXPECT_NE(stranger, "w-9999");
  const std::set<std::string> ids{a, b, thief, other, stranger};
  EXPECT_EQ(ids.size(), 5u);
  for (const auto& [id, state] : States(*c.core)) EXPECT_EQ(state, v1::IDLE) << id;
  // A second restart: all five come back under their ids (the store has them all).
  c.core.reset();
  Cluster again(&store);
  EXPECT_EQ(again.core->RegisterWorker(Reg("node1", 999, thief, 2), std::make_shared<Channel>()), thief);
  EXPECT_EQ(again.core->RegisterWorker(Reg("node1", 101, a, 0), std::make_shared<Channel>()), a);
}

TEST(WorkerIds, TheResumedJobRunsOnTheWorkersUnderTheirOldIds) {
  const std::string dir = TempDir();
  std::string job, a, b;
  {
    JobStore store(dir);
    Cluster c(&store);
    a = c.core->RegisterWorker(Reg("a", 1), std::make_shared<Channel>());
    b = c.core->RegisterWorker(Reg("b", 2), std::make_shared<Channel>());
    job = c.core->Submit(kTrain, {}).id();
    ASSERT_EQ(c.core->GetJob(job).state(), v1::RUNNING);
  }
  JobStore store(dir);
  Cluster c(&store);
  EXPECT_EQ(c.core->RegisterWorker(Reg("a", 1, a), std::make_shared<Channel>()), a);
  EXPECT_EQ(c.core->RegisterWorker(Reg("b", 2, b), std::make_shared<Channel>()), b);
  const v1::Job j = c.core->GetJob(job);
  ASSERT_EQ(j.state(), v1::RUNNING);
  EXPECT_EQ(j.attempt(), 1);
  EXPECT_EQ(j.restarts(), 0);
  std::string events;
  for (const auto& e : j.events()) events += e + "\n";
  EXPECT_NE(events.find("the coordinator restarted while the job ran; resuming from the start (no "
                        "checkpoint yet)"),
            std::string::npos)
      << events;
  std::set<std::string> ranks;
  for (const auto& r : j.ranks()) ranks.insert(r.worker_id());
  EXPECT_EQ(ranks, (std::set<std::string>{a, b}));
}

TEST(WorkerIds, ALiveIdIsTakenOverOnlyByTheSameProcess) {
  Cluster c(nullptr);
  auto old_ch = std::make_shared<Channel>();
  const std::string a = c.core->RegisterWorker(Reg("a", 7), old_ch);
  // Another process claims it while it is alive: a new id; the live one is untouched.
  const std::string other = c.core->RegisterWorker(Reg("a", 8, a, 1), std::make_shared<Channel>());
  EXPECT_NE(other, a);
  EXPECT_TRUE(old_ch->closed.empty()) << old_ch->closed;
  EXPECT_EQ(States(*c.core).at(a), v1::IDLE);
  // The same process (its old stream broke unnoticed): it takes its id back.
  auto new_ch = std::make_shared<Channel>();
  EXPECT_EQ(c.core->RegisterWorker(Reg("a", 7, a), new_ch), a);
  EXPECT_FALSE(old_ch->closed.empty()) << "the stale stream is closed";
  EXPECT_EQ(States(*c.core).at(a), v1::IDLE);
  EXPECT_EQ(c.core->ListWorkers().size(), 2u);
}

TEST(WorkerIds, DeadWorkerIsDroppedAfterTheGraceUnlessItRegistersAgain) {
  CoreOptions o{3600.0, 1.0};  // no heartbeat deadline inside this test
  o.dead_worker_seconds = 600;
  const std::string dir = TempDir();
  JobStore store(dir);
  o.store = &store;
  std::string gone, back, live;
  auto gone_ch = std::make_shared<Channel>(), back_ch = std::make_shared<Channel>();
  {
    CoordinatorCore core(o);
    gone = core.RegisterWorker(Reg("h", 1, "", 0), gone_ch);
    back = core.RegisterWorker(Reg("h", 2, "", 1), back_ch);
    live = core.RegisterWorker(Reg("h", 3, "", 2), std::make_shared<Channel>());
    core.OnWorkerDisconnected(gone, gone_ch.get(), "killed");
    core.OnWorkerDisconnected(back, back_ch.get(), "partitioned");
    EXPECT_EQ(States(core).at(gone), v1::DEAD);
    EXPECT_EQ(States(core).at(back), v1::DEAD);
    const auto t0 = std::chrono::steady_clock::now();
    core.CheckDeadlines(t0 + 9 * kMinute);
    EXPECT_EQ(States(core).size(), 3u) << "DEAD workers stay listed during the grace";
    EXPECT_EQ(core.RegisterWorker(Reg("h", 2, back, 1), std::make_shared<Channel>()), back);
    core.CheckDeadlines(t0 + 11 * kMinute);
    const auto states = States(core);
    EXPECT_EQ(states.count(gone), 0u) << "dropped after 600 s DEAD";
    EXPECT_EQ(states.at(back), v1::IDLE) << "it came back in time and keeps its id";
    EXPECT_EQ(states.at(live), v1::IDLE);
    // Too late: a dropped worker that comes back gets a new id.
    const std::string late = core.RegisterWorker(Reg("h", 1, gone, 0), std::make_shared<Channel>());
    EXPECT_NE(late, gone);
    EXPECT_EQ(States(core).at(late), v1::IDLE);
  }
  // The store forgot it too: after a restart its id is not given back either.
  CoordinatorCore core(o);
  EXPECT_NE(core.RegisterWorker(Reg("h", 1, gone, 0), std::make_shared<Channel>()), gone);
  EXPECT_EQ(core.RegisterWorker(Reg("h", 2, back, 1), std::make_shared<Channel>()), back);
}

TEST(WorkerIds, IdsNotClaimedBackAfterARestartAreForgottenAfterTheGrace) {
  CoreOptions o{3600.0, 1.0};
  o.dead_worker_seconds = 600;
  JobStore store(TempDir());
  o.store = &store;
  std::string a, b;
  {
    CoordinatorCore core(o);
    a = core.RegisterWorker(Reg("h", 1, "", 0), std::make_shared<Channel>());
    b = core.RegisterWorker(Reg("h", 2, "", 1), std::make_shared<Channel>());
  }
  {
    CoordinatorCore core(o);
    EXPECT_EQ(core.RegisterWorker(Reg("h", 2, b, 1), std::make_shared<Channel>()), b);
    core.CheckDeadlines(std::chrono::steady_clock::now() + 11 * kMinute);
    EXPECT_NE(core.RegisterWorker(Reg("h", 1, a, 0), std::make_shared<Channel>()), a)
        << "a did not come back within the grace";
  }
  CoordinatorCore core(o);
  EXPECT_NE(core.RegisterWorker(Reg("h", 1, a, 0), std::make_shared<Channel>()), a);
  EXPECT_EQ(core.RegisterWorker(Reg("h", 2, b, 1), std::make_shared<Channel>()), b);
}

TEST(WorkerIds, TwoWorkersClaimingOneLocalRankOfAHostAreWarnedAbout) {
  Cluster c(nullptr);
  LogCapture log;
  const std::string a = c.core->RegisterWorker(Reg("node4", 10, "", 1), std::make_shared<Channel>());
  const std::string other_host =
      c.core->RegisterWorker(Reg("node5", 11, "", 1), std::make_shared<Channel>());
  const std::string other_rank =
      c.core->RegisterWorker(Reg("node4", 12, "", 0), std::make_shared<Channel>());
  EXPECT_EQ(log.text.str().find("both claim local rank"), std::string::npos) << log.text.str();
  // The same worker re-registering is not a clash.
  c.core->RegisterWorker(Reg("node4", 10, a, 1), std::make_shared<Channel>());
  EXPECT_EQ(log.text.str().find("both claim local rank"), std::string::npos) << log.text.str();
  const std::string b = c.core->RegisterWorker(Reg("node4", 13, "", 1), std::make_shared<Channel>());
  const std::string text = log.text.str();
  EXPECT_NE(text.find("workers " + a + " (pid 10) and " + b + " (pid 13) on host node4 both claim "
                      "local rank 1"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace dtrain::coordinator
