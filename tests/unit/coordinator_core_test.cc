// The coordinator core: ranks in topology order, FIFO start on N idle
// workers, a rejected spec creates nothing, the heartbeat deadline fails the
// job naming the lost rank and host, rendezvous answers all ranks at once.
// (The real gRPC path is covered by tests/integration.)
#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "coordinator/core.h"
#include "recording_channel.h"

namespace dtrain::coordinator {
namespace {

v1::Worker W(const std::string& id, const std::string& host, int local) {
  v1::Worker w;
  w.set_id(id);
  w.set_host(host);
  w.set_local_rank(local);
  return w;
}

TEST(TopologyOrder, GroupsHostsInNaturalOrderThenLocalRank) {
  std::vector<v1::Worker> ws = {W("w-1", "node10", 0), W("w-2", "node2", 1), W("w-3", "node2", 0),
                                W("w-4", "node1", 3),  W("w-5", "node10", 1)};
  std::vector<std::string> order;
  for (size_t i : TopologyOrder(ws)) order.push_back(ws[i].id());
  EXPECT_EQ(order, (std::vector<std::string>{"w-4", "w-3", "w-2", "w-1", "w-5"}));
}

struct Fixture {
  CoordinatorCore core{CoreOptions{60.0, 1.0}};  // the test drives time itself
  std::vector<std::shared_ptr<RecordingChannel>> ch;
  std::vector<std::string> ids;
  void Add(const std::string& host, int local) {
    v1::Register reg;
    reg.set_host(host);
    reg.set_local_rank(local);
    reg.set_ucx_address("addr-" + host + "-" + std::to_string(local));
    ch.push_back(std::make_shared<RecordingChannel>());
    ids.push_back(core.RegisterWorker(reg, ch.back()));
  }
  void Beat(size_t i) {
    v1::WorkerMessage m;
    m.mutable_heartbeat();
    core.OnWorkerMessage(ids[i], m);
  }
};

const char* kBench = "kind: allreduce-bench\nworkers: 2\nname: b\n";

TEST(CoordinatorCore, RejectedSpecCreatesNothing) {
  Fixture f;
  EXPECT_THROW(f.core.Submit("kind: train\nworkers: 0\n", {}), Error);
  EXPECT_THROW(f.core.Submit(kBench, {"optimizer.name=adam"}), Error);
  EXPECT_TRUE(f.core.ListJobs().empty());
}

TEST(CoordinatorCore, JobWaitsForEnoughIdleWorkersThenRanksFollowTopology) {
  Fixture f;
  f.Add("hostB", 0);
  v1::Job job = f.core.Submit(kBench, {});
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_NE(job.seed(), 0u) << "a seed is drawn and recorded";
  EXPECT_NE(job.spec_yaml().find("seed:"), std::string::npos);
  f.Add("hostA", 1);
  job = f.core.GetJob(job.id());
  ASSERT_EQ(job.state(), v1::RUNNING);
  ASSERT_EQ(job.ranks_size(), 2);
  EXPECT_EQ(job.ranks(0).host(), "hostA");
  EXPECT_EQ(job.ranks(1).host(), "hostB");
  auto a = f.ch[1]->Assignments();  // hostA's worker
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].rank(), 0);
  EXPECT_EQ(a[0].world_size(), 2);
  EXPECT_EQ(a[0].seed(), job.seed());
  ASSERT_EQ(a[0].peers_size(), 2);
  EXPECT_EQ(a[0].peers(1).ucx_address(), "addr-hostB-0");
}

TEST(CoordinatorCore, FifoQueueStartsJobsInSubmissionOrder) {
  Fixture f;
  v1::Job first = f.core.Submit(kBench, {});
  v1::Job second = f.core.Submit("kind: allreduce-bench\nworkers: 1\n", {});
  f.Add("h", 0);  // one idle worker: the 1-worker job must not jump the queue
  EXPECT_EQ(f.core.GetJob(second.id()).state(), v1::QUEUED);
  f.Add("h", 1);
  EXPECT_EQ(f.core.GetJob(first.id()).state(), v1::RUNNING);
}

TEST(CoordinatorCore, RendezvousAnswersAllRanksOnceAllPublished) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  v1::Job job = f.core.Submit(kBench, {});
  for (int i = 0; i < 2; ++i) {
    v1::WorkerMessage m;
    m.mutable_publish()->set_job_id(job.id());
    m.mutable_publish()->set_key("nccl-id");
    m.mutable_publish()->set_value(i == 0 ? "ID" : "");
    EXPECT_EQ(f.ch[0]->Count(v1::CoordinatorMessage::kRendezvous), 0);
    f.core.OnWorkerMessage(f.ids[i], m);
  }
  for (auto& c : f.ch) ASSERT_EQ(c->Count(v1::CoordinatorMessage::kRendezvous), 1);
}

TEST(CoordinatorCore, SilentWorkerFailsItsJobNamingRankAndHostAndOthersGetAbort) {
  Fixture f;
  f.Add("alpha", 0);
  f.Add("beta", 0);
  v1::Job job = f.core.Submit(kBench, {});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  f.Beat(0);
  const auto beat = std::chrono::steady_clock::now();
  f.core.CheckDeadlines(beat + std::chrono::seconds(30));  // well within the deadline
  EXPECT_EQ(f.core.GetJob(job.id()).state(), v1::RUNNING);
  // 60 s after rank 0's beat less 50 ms: rank 1 (silent 100 ms longer) is over.
  f.core.CheckDeadlines(beat + std::chrono::milliseconds(59950));
  v1::Job failed = f.core.GetJob(job.id());
  ASSERT_EQ(failed.state(), v1::FAILED);
  EXPECT_NE(failed.reason().find("rank 1 (host beta"), std::string::npos) << failed.reason();
  EXPECT_NE(failed.reason().find("no heartbeat"), std::string::npos) << failed.reason();
  EXPECT_EQ(f.ch[0]->Count(v1::CoordinatorMessage::kCommand), 1);
  EXPECT_FALSE(f.ch[1]->closed.empty());
  // The survivor reports back and is idle again; a new job runs on it alone.
  v1::WorkerMessage fin;
  fin.mutable_finished()->set_job_id(job.id());
  fin.mutable_finished()->set_aborted(true);
  f.core.OnWorkerMessage(f.ids[0], fin);
  v1::Job next = f.core.Submit("kind: allreduce-bench\nworkers: 1\n", {});
  EXPECT_EQ(f.core.GetJob(next.id()).state(), v1::RUNNING);
  EXPECT_EQ(f.core.GetJob(job.id()).state(), v1::FAILED) << "a late report changes nothing";
}

TEST(CoordinatorCore, AllRanksFinishingOkSucceedsWithRankZerosResult) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  v1::Job job = f.core.Submit(kBench, {});
  for (int i = 0; i < 2; ++i) {
    v1::WorkerMessage m;
    m.mutable_finished()->set_job_id(job.id());
    m.mutable_finished()->set_ok(true);
    m.mutable_finished()->mutable_bench()->set_world_size(2);
    m.mutable_finished()->mutable_bench()->add_rows()->set_bytes(i == 0 ? 1024 : 7);
    f.core.OnWorkerMessage(f.ids[i], m);
  }
  v1::Job done = f.core.GetJob(job.id());
  EXPECT_EQ(done.state(), v1::SUCCEEDED);
  ASSERT_EQ(done.bench().rows_size(), 1);
  EXPECT_EQ(done.bench().rows(0).bytes(), 1024);
}

TEST(CoordinatorCore, RankFailureFailsJobNamingTheRank) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  v1::Job job = f.core.Submit(kBench, {});
  v1::WorkerMessage m;
  m.mutable_finished()->set_job_id(job.id());
  m.mutable_finished()->set_error("dataset not found");
  f.core.OnWorkerMessage(f.ids[1], m);
  EXPECT_EQ(f.core.GetJob(job.id()).state(), v1::RUNNING) << "held for the grace period";
  f.core.CheckDeadlines(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  v1::Job j = f.core.GetJob(job.id());
  EXPECT_EQ(j.state(), v1::FAILED);
  EXPECT_NE(j.reason().find("rank 1"), std::string::npos);
  EXPECT_NE(j.reason().find("dataset not found"), std::string::npos);
}

TEST(CoordinatorCore, PeerErrorReportedBeforeTheLossStillNamesTheLostRankFirst) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  f.Add("h", 2);
  v1::Job job = f.core.Submit("kind: allreduce-bench\nworkers: 3\n", {});
  v1::WorkerMessage m;  // rank 2 notices rank 1's death first ...
  m.mutable_finished()->set_job_id(job.id());
  m.mutable_finished()->set_error("receive from rank 1 (host h) failed");
  f.core.OnWorkerMessage(f.ids[2], m);
  // ... then the coordinator loses rank 1's stream.
  f.core.OnWorkerDisconnected(f.ids[1], f.ch[1].get(), "stream ended");
  v1::Job j = f.core.GetJob(job.id());
  ASSERT_EQ(j.state(), v1::FAILED);
  EXPECT_EQ(j.reason().rfind("lost rank 1 (host h, worker " + f.ids[1] + ")", 0), 0u) << j.reason();
  EXPECT_NE(j.reason().find("first reported by rank 2"), std::string::npos) << j.reason();
}

TEST(CoordinatorCore, StallInspectorNamesTheRankThatDidNotReachTheCollective) {
  // Stall timeout 0.3 s, heartbeat deadline 60 s; real time, both ranks heartbeating.
  CoordinatorCore core{CoreOptions{60.0, 1.0, 1.0, 0.3}};
  std::vector<std::string> ids;
  for (const char* host : {"alpha", "beta"}) {
    v1::Register reg;
    reg.set_host(host);
    ids.push_back(core.RegisterWorker(reg, std::make_shared<RecordingChannel>()));
  }
  v1::Job job = core.Submit(kBench, {});
  const auto send = [&](int i, int64_t step, int64_t waiting) {
    v1::WorkerMessage m;
    if (step >= 0) {
      m.mutable_progress()->set_job_id(job.id());
      m.mutable_progress()->set_step(step);
    } else {
      m.mutable_heartbeat()->set_job_id(job.id());
      m.mutable_heartbeat()->set_waiting_step(waiting);
    }
    core.OnWorkerMessage(ids[i], m);
  };
  send(0, 3, 0);
  send(1, 3, 0);
  send(0, -1, 4);  // rank 0 waits in step 4's allreduce; rank 1 never arrives
  for (int i = 0; i < 5; ++i) {  // 0.5 s of heartbeats from both
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    send(0, -1, 4);
    send(1, -1, 0);
  }
  core.CheckDeadlines(std::chrono::steady_clock::now());
  v1::Job j = core.GetJob(job.id());
  ASSERT_EQ(j.stalled_size(), 1);
  EXPECT_EQ(j.stalled(0).rank(), 1);
  EXPECT_EQ(j.stalled(0).host(), "beta");
  EXPECT_EQ(j.stalled(0).step(), 3);
  EXPECT_EQ(j.stalled(0).behind_steps(), 1);
  EXPECT_GE(j.stalled(0).seconds(), 0.3);
  EXPECT_EQ(j.state(), v1::RUNNING) << "a stall is reported, not failed";
  send(0, 4, 0);  // rank 1 arrives, both finish step 4
  send(1, 4, 0);
  core.CheckDeadlines(std::chrono::steady_clock::now());
  EXPECT_EQ(core.GetJob(job.id()).stalled_size(), 0);
  // A rank that sends nothing at all is stalled too (wherever it stopped).
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    send(0, -1, 5);
  }
  core.CheckDeadlines(std::chrono::steady_clock::now());
  j = core.GetJob(job.id());
  ASSERT_EQ(j.stalled_size(), 1);
  EXPECT_EQ(j.stalled(0).rank(), 1);
}

TEST(CoordinatorCore, CancelQueuedAndUnknownJobs) {
  Fixture f;
  v1::Job job = f.core.Submit(kBench, {});
  EXPECT_EQ(f.core.Cancel(job.id()).state(), v1::CANCELLED);
  EXPECT_THROW(f.core.Cancel(job.id()), Error);
  try {
    f.core.GetJob("job-999999");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace dtrain::coordinator
