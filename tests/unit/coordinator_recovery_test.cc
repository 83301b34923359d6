// Coordinator durability and restarts (core + real SQLite store in a temp
// dir): jobs survive a new core on the same store, a running job resumes from
// its last checkpoint, a lost rank restarts the job on a replacement worker
// (survivors drain first), restarts run out into FAILED, elastic jobs go on
// with fewer workers, worker ids never repeat across restarts, and a damaged
// database is refused naming the file. (Real processes: tests/integration.)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

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
    "name: t\nkind: train\nworkers: 2\nseed: 7\nmax_restarts: 1\n"
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
  EXPECT_NE(c.ids[0], "w-0001") << "worker ids do not repeat across coordinator restarts";
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

}  // namespace
}  // namespace dtrain::coordinator
