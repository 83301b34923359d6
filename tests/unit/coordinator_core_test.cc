// The coordinator core: ranks in topology order, FIFO start on N idle
// workers, a rejected spec creates nothing, the heartbeat deadline fails the
// job naming the lost rank and host, rendezvous answers all ranks at once.
// The queue: a waiting job says why (`reason`), a smaller job backfills only
// while the one ahead has fewer workers registered than it asks for (never a
// job that only waits for busy workers, nor a restarted one), and
// queue_timeout_seconds fails a job with that reason. Cancelling an ended job
// changes nothing. (The real gRPC path is covered by tests/integration.)
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
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
  void Finish(size_t i, const std::string& job) {
    v1::WorkerMessage m;
    m.mutable_finished()->set_job_id(job);
    m.mutable_finished()->set_ok(true);
    core.OnWorkerMessage(ids[i], m);
  }
  // The worker (index into ids) that runs rank `rank` of `job`.
  size_t RankWorker(const std::string& job, int rank) {
    const std::string id = core.GetJob(job).ranks(rank).worker_id();
    return size_t(std::find(ids.begin(), ids.end(), id) - ids.begin());
  }
  v1::JobState State(const std::string& job) { return core.GetJob(job).state(); }
  std::string Reason(const std::string& job) { return core.GetJob(job).reason(); }
};

std::string Bench(int workers) {
  return "kind: allreduce-bench\nworkers: " + std::to_string(workers) + "\n";
}

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
  f.Add("h", 0);
  f.Add("h", 1);
  const std::string a = f.core.Submit(Bench(1), {}).id();
  const std::string first = f.core.Submit(Bench(2), {}).id();  // waits for a's worker
  const std::string second = f.core.Submit(Bench(1), {}).id();
  // One idle worker, but the 2-worker job has enough registered workers: the
  // 1-worker job must not jump the queue.
  EXPECT_EQ(f.State(first), v1::QUEUED);
  EXPECT_EQ(f.State(second), v1::QUEUED);
  EXPECT_EQ(f.Reason(first), "waiting for 2 workers, 2 registered, 1 idle");
  EXPECT_EQ(f.Reason(second), "waiting behind " + first + ", first in line for 2 workers");
  f.Finish(f.RankWorker(a, 0), a);
  EXPECT_EQ(f.State(first), v1::RUNNING);
  EXPECT_EQ(f.Reason(first), "") << "a started job has no reason to wait any more";
  EXPECT_EQ(f.State(second), v1::QUEUED);
  EXPECT_EQ(f.Reason(second), "waiting for 1 worker, 2 registered, 0 idle");
}

TEST(CoordinatorCore, OversizedJobSaysWhyAndASmallerJobBehindItRuns) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  const v1::Job big = f.core.Submit(Bench(8), {});
  EXPECT_EQ(big.state(), v1::QUEUED);
  EXPECT_EQ(big.reason(), "waiting for 8 workers, 2 registered, 2 idle") << "Submit's answer says why";
  const std::string small = f.core.Submit(Bench(1), {}).id();
  EXPECT_EQ(f.State(small), v1::RUNNING) << "the 8-worker job cannot start anyway: backfill";
  EXPECT_EQ(f.Reason(big.id()), "waiting for 8 workers, 2 registered, 1 idle");
  const std::string two = f.core.Submit(Bench(2), {}).id();  // does not fit in 1 idle worker
  EXPECT_EQ(f.State(two), v1::QUEUED);
  EXPECT_EQ(f.Reason(two), "waiting for 2 workers, 2 registered, 1 idle");
  const std::string after = f.core.Submit(Bench(1), {}).id();
  EXPECT_EQ(f.State(after), v1::QUEUED) << "the 2-worker job has its workers registered: it holds the line";
  EXPECT_EQ(f.Reason(after), "waiting behind " + two + ", first in line for 2 workers");
  f.Finish(f.RankWorker(small, 0), small);
  EXPECT_EQ(f.State(two), v1::RUNNING);
  EXPECT_EQ(f.State(big.id()), v1::QUEUED);
  EXPECT_EQ(f.Reason(big.id()), "waiting for 8 workers, 2 registered, 0 idle");
}

TEST(CoordinatorCore, BigJobIsNotStarvedOnceEnoughWorkersAreRegistered) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  const std::string big = f.core.Submit(Bench(3), {}).id();
  const std::string small = f.core.Submit(Bench(1), {}).id();
  ASSERT_EQ(f.State(small), v1::RUNNING);  // backfilled: 2 registered < 3
  f.Add("h", 2);  // now 3 registered: the big job only waits for the small one
  EXPECT_EQ(f.State(big), v1::QUEUED);
  EXPECT_EQ(f.Reason(big), "waiting for 3 workers, 3 registered, 2 idle");
  const std::string late = f.core.Submit(Bench(1), {}).id();
  EXPECT_EQ(f.State(late), v1::QUEUED) << "no more backfill: 2 idle workers stay free for the big job";
  EXPECT_EQ(f.Reason(late), "waiting behind " + big + ", first in line for 3 workers");
  f.Finish(f.RankWorker(small, 0), small);
  EXPECT_EQ(f.State(big), v1::RUNNING);
  EXPECT_EQ(f.State(late), v1::QUEUED);
}

TEST(CoordinatorCore, RestartedJobHoldsTheLineWhileItWaitsForAReplacement) {
  Fixture f;
  f.Add("a", 0);
  f.Add("b", 0);
  const std::string job = f.core.Submit("kind: train\nmodel: resnet20\nworkers: 2\nmax_restarts: 1\n", {}).id();
  ASSERT_EQ(f.State(job), v1::RUNNING);
  const size_t survivor = f.RankWorker(job, 0) == 0 ? 0 : 1;
  f.core.OnWorkerDisconnected(f.ids[1 - survivor], f.ch[1 - survivor].get(), "killed");
  ASSERT_EQ(f.State(job), v1::QUEUED);
  v1::WorkerMessage fin;  // the survivor has stopped: 1 registered, 1 idle
  fin.mutable_finished()->set_job_id(job);
  fin.mutable_finished()->set_aborted(true);
  f.core.OnWorkerMessage(f.ids[survivor], fin);
  EXPECT_EQ(f.Reason(job), "waiting for 2 workers, 1 registered, 1 idle");
  const std::string small = f.core.Submit(Bench(1), {}).id();
  EXPECT_EQ(f.State(small), v1::QUEUED) << "a restarted job's replacement is about to register";
  f.Add("c", 0);
  EXPECT_EQ(f.State(job), v1::RUNNING);
  EXPECT_EQ(f.State(small), v1::QUEUED);
}

TEST(CoordinatorCore, QueueTimeoutFailsTheJobWithTheReasonAndUnblocksTheQueue) {
  Fixture f;
  f.Add("h", 0);
  f.Add("h", 1);
  const std::string a = f.core.Submit(Bench(1), {}).id();
  const std::string b = f.core.Submit(Bench(2), {"queue_timeout_seconds=0.2"}).id();
  const std::string c = f.core.Submit(Bench(1), {}).id();
  const std::string d = f.core.Submit(Bench(8), {"queue_timeout_seconds=0.2"}).id();
  EXPECT_EQ(f.State(b), v1::QUEUED);
  EXPECT_EQ(f.State(c), v1::QUEUED) << "behind b, which has its workers registered";
  f.core.CheckDeadlines(std::chrono::steady_clock::now());  // the tick: not yet
  EXPECT_EQ(f.State(b), v1::QUEUED);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The health thread's tick may get there first; either way, after this one:
  f.core.CheckDeadlines(std::chrono::steady_clock::now());
  const v1::Job failed = f.core.GetJob(b);
  ASSERT_EQ(failed.state(), v1::FAILED);
  EXPECT_EQ(failed.reason().rfind("queued for 0.", 0), 0u) << failed.reason();
  EXPECT_NE(failed.reason().find(" s (queue_timeout_seconds 0.2): waiting for 2 workers, 2 "
                                 "registered, 1 idle"),
            std::string::npos)
      << failed.reason();
  EXPECT_GT(failed.end_time(), 0);
  EXPECT_EQ(f.State(c), v1::RUNNING) << "the job behind the timed-out one starts";
  const v1::Job big = f.core.GetJob(d);
  ASSERT_EQ(big.state(), v1::FAILED);
  EXPECT_NE(big.reason().find("waiting for 8 workers, 2 registered"), std::string::npos) << big.reason();
  EXPECT_EQ(f.State(a), v1::RUNNING) << "a running job has no queue timeout";
}

TEST(CoordinatorCore, QueueTimeoutIsValidatedAndKeptInTheResolvedSpec) {
  Fixture f;
  try {
    f.core.Submit(Bench(1), {"queue_timeout_seconds=-1"});
    FAIL() << "a negative queue_timeout_seconds was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("`queue_timeout_seconds`"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0 for no timeout"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.core.Submit(Bench(1), {"queue_timeout_seconds=soon"}), Error);
  EXPECT_TRUE(f.core.ListJobs().empty());
  const v1::Job job = f.core.Submit(Bench(1), {"queue_timeout_seconds=90"});
  EXPECT_NE(job.spec_yaml().find("queue_timeout_seconds: 90"), std::string::npos) << job.spec_yaml();
  EXPECT_DOUBLE_EQ(ParseJobSpec(job.spec_yaml()).queue_timeout_seconds, 90.0);
  EXPECT_DOUBLE_EQ(ParseJobSpec(Bench(1)).queue_timeout_seconds, 0.0) << "default: no timeout";
}

TEST(CoordinatorCore, WaitingReasonReachesWatchersOncePerChange) {
  Fixture f;
  f.Add("h", 0);
  const std::string big = f.core.Submit(Bench(3), {}).id();
  std::mutex mu;
  std::vector<std::string> seen;
  auto token = f.core.Watch(big, [&](const v1::Job& j) {
    std::lock_guard<std::mutex> l(mu);
    seen.push_back(v1::JobState_Name(j.state()) + " " + j.reason());
  });
  for (int i = 0; i < 5; ++i) f.core.CheckDeadlines(std::chrono::steady_clock::now());
  f.Add("h", 1);
  for (int i = 0; i < 5; ++i) f.core.CheckDeadlines(std::chrono::steady_clock::now());
  f.Add("h", 2);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"QUEUED waiting for 3 workers, 1 registered, 1 idle",
                                            "QUEUED waiting for 3 workers, 2 registered, 2 idle",
                                            "RUNNING "}));
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
  const v1::Job cancelled = f.core.Cancel(job.id());
  EXPECT_EQ(cancelled.state(), v1::CANCELLED);
  EXPECT_EQ(cancelled.reason(), "cancelled by the user");
  // Cancelling an ended job changes nothing and is no error (the CLI says so).
  const v1::Job again = f.core.Cancel(job.id());
  EXPECT_EQ(again.state(), v1::CANCELLED);
  EXPECT_EQ(again.end_time(), cancelled.end_time());
  f.Add("h", 0);
  const std::string done = f.core.Submit(Bench(1), {}).id();
  f.Finish(0, done);
  ASSERT_EQ(f.State(done), v1::SUCCEEDED);
  EXPECT_EQ(f.core.Cancel(done).state(), v1::SUCCEEDED);
  EXPECT_EQ(f.State(done), v1::SUCCEEDED);
  try {
    f.core.GetJob("job-999999");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace dtrain::coordinator
