// ListWorkers' serialized answer (CoordinatorCore::ListWorkersSerialized):
// it parses to the same workers as the copied list, its heartbeat ages are as
// of the call, the cached bytes follow every change to the registry (a job
// starting or ending, a worker lost, dropped or registering), and plain heartbeats,
// readers and registrations running at once leave a consistent registry.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "coordinator/core.h"
#include "recording_channel.h"

namespace dtrain::coordinator {
namespace {

struct Registry {
  explicit Registry(CoreOptions opt = CoreOptions{60.0, 1.0}) : core(opt) {}
  CoordinatorCore core;
  std::vector<std::shared_ptr<RecordingChannel>> ch;
  std::vector<std::string> ids;

  void Add(const std::string& host, int local) {
    v1::Register reg;
    reg.set_host(host);
    reg.set_local_rank(local);
    reg.set_pid(1000 + local);
    reg.set_metrics_address(host + ":9" + std::to_string(local));
    v1::Device* d = reg.add_devices();
    d->set_kind("cuda");
    d->set_index(local);
    d->set_name("NVIDIA H200");
    d->set_memory_bytes(int64_t(141) << 30);
    reg.set_ucx_address(std::string(256, 'u'));
    ch.push_back(std::make_shared<RecordingChannel>());
    ids.push_back(core.RegisterWorker(reg, ch.back()));
  }
  v1::ListWorkersResponse Serialized() {
    v1::ListWorkersResponse resp;
    EXPECT_TRUE(resp.ParseFromString(core.ListWorkersSerialized()));
    return resp;
  }
};

v1::Worker WithoutAge(v1::Worker w) {
  w.clear_last_heartbeat_age_seconds();
  return w;
}

TEST(CoordinatorWorkerList, SerializedAnswerParsesToTheCopiedWorkers) {
  Registry r;
  for (int i = 0; i < 5; ++i) r.Add(std::string("node") + std::to_string(i / 2), i % 2);
  const v1::ListWorkersResponse first = r.Serialized();  // builds the cache
  const v1::ListWorkersResponse resp = r.Serialized();   // served from it
  const std::vector<v1::Worker> copied = r.core.ListWorkers();  // called after: older ages
  ASSERT_EQ(resp.workers_size(), 5);
  ASSERT_EQ(copied.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const v1::Worker& w = resp.workers(i);
    EXPECT_EQ(WithoutAge(w).SerializeAsString(), WithoutAge(copied[i]).SerializeAsString())
        << "worker " << i << ": " << w.ShortDebugString() << " vs " << copied[i].ShortDebugString();
    EXPECT_EQ(w.devices_size(), 1);
    EXPECT_EQ(w.state(), v1::IDLE);
    // Ages are taken at the call, not when the cache was built.
    EXPECT_GE(w.last_heartbeat_age_seconds(), first.workers(i).last_heartbeat_age_seconds());
    EXPECT_LE(w.last_heartbeat_age_seconds(), copied[i].last_heartbeat_age_seconds());
    EXPECT_GE(w.last_heartbeat_age_seconds(), 0.0);
  }
}

TEST(CoordinatorWorkerList, CachedBytesFollowEveryRegistryChange) {
  CoreOptions opt{60.0, 1.0};
  opt.dead_worker_seconds = 5;
  Registry r(opt);
  r.Add("a", 0);
  r.Add("a", 1);
  r.Add("b", 0);
  ASSERT_EQ(r.Serialized().workers_size(), 3);

  const std::string job = r.core.Submit("kind: allreduce-bench\nworkers: 2\n", {}).id();
  v1::ListWorkersResponse resp = r.Serialized();
  int busy = 0;
  for (const v1::Worker& w : resp.workers()) {
    if (w.state() != v1::BUSY) continue;
    ++busy;
    EXPECT_EQ(w.job_id(), job);
    EXPECT_GE(w.rank(), 0);
  }
  EXPECT_EQ(busy, 2) << "the started job's workers are listed BUSY";

  // Progress leaves the workers as they are; the job's end makes them IDLE.
  for (int i = 0; i < 2; ++i) {
    v1::WorkerMessage progress;
    progress.mutable_progress()->set_job_id(job);
    progress.mutable_progress()->set_step(1);
    r.core.OnWorkerMessage(r.ids[i], progress);
  }
  resp = r.Serialized();
  EXPECT_EQ(resp.workers(0).state(), v1::BUSY);  // ranks go to host a first (topology order)
  EXPECT_EQ(resp.workers(1).state(), v1::BUSY);
  for (int i = 0; i < 2; ++i) {
    v1::WorkerMessage fin;
    fin.mutable_finished()->set_job_id(job);
    fin.mutable_finished()->set_ok(true);
    r.core.OnWorkerMessage(r.ids[i], fin);
  }
  resp = r.Serialized();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(resp.workers(i).state(), v1::IDLE) << resp.workers(i).ShortDebugString();
    EXPECT_EQ(resp.workers(i).job_id(), "");
    EXPECT_EQ(resp.workers(i).rank(), -1);
  }

  r.core.OnWorkerDisconnected(r.ids[2], r.ch[2].get(), "test");
  resp = r.Serialized();
  ASSERT_EQ(resp.workers_size(), 3);
  EXPECT_EQ(resp.workers(2).state(), v1::DEAD);

  r.Add("c", 0);
  resp = r.Serialized();
  ASSERT_EQ(resp.workers_size(), 4);
  EXPECT_EQ(resp.workers(3).host(), "c");

  // Dropped after dead_worker_seconds: its row (and its last-seen pointer) goes.
  r.core.CheckDeadlines(std::chrono::steady_clock::now() + std::chrono::seconds(6));
  resp = r.Serialized();
  EXPECT_EQ(resp.workers_size(), 3);
  for (const v1::Worker& w : resp.workers()) EXPECT_NE(w.id(), r.ids[2]);
}

TEST(CoordinatorWorkerList, HeartbeatsReadersAndRegistrationsAtOnceStayConsistent) {
  Registry r;
  for (int i = 0; i < 64; ++i) r.Add(std::string("h") + std::to_string(i / 8), i % 8);
  const std::string job = r.core.Submit("kind: allreduce-bench\nworkers: 4096\n", {}).id();
  const std::vector<std::string> beating = r.ids;  // r.ids grows meanwhile
  std::atomic<bool> stop{false};
  std::atomic<int> bad_parses{0}, shrank{0}, get_job_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {  // plain heartbeats (the shared-lock path)
    threads.emplace_back([&, t] {
      v1::WorkerMessage hb;
      hb.mutable_heartbeat();
      for (int round = 0; round < 200; ++round) {
        for (size_t i = size_t(t); i < beating.size(); i += 4) r.core.OnWorkerMessage(beating[i], hb);
      }
    });
  }
  for (int t = 0; t < 2; ++t) {  // readers
    threads.emplace_back([&] {
      int last = 0;
      while (!stop) {
        v1::ListWorkersResponse resp;
        if (!resp.ParseFromString(r.core.ListWorkersSerialized())) ++bad_parses;
        if (resp.workers_size() < last) ++shrank;
        last = resp.workers_size();
        if (r.core.GetJob(job).state() != v1::QUEUED) ++get_job_errors;
      }
    });
  }
  for (int i = 0; i < 32; ++i) r.Add(std::string("late") + std::to_string(i), 0);  // writers meanwhile
  for (int t = 0; t < 4; ++t) threads[t].join();
  stop = true;
  for (size_t t = 4; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(bad_parses, 0);
  EXPECT_EQ(shrank, 0) << "no worker left the list";
  EXPECT_EQ(get_job_errors, 0);
  r.core.CheckDeadlines(std::chrono::steady_clock::now());
  const v1::ListWorkersResponse resp = r.Serialized();
  ASSERT_EQ(resp.workers_size(), 96);
  for (const v1::Worker& w : resp.workers()) EXPECT_EQ(w.state(), v1::IDLE) << w.id();
}

}  // namespace
}  // namespace dtrain::coordinator
