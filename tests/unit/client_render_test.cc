// Unit tests for client/render: jobs and workers as tables, the status
// summary with the nccl-tests-style bench table, and the --json output.
#include <gtest/gtest.h>

#include "client/render.h"

namespace dtrain::cli {
namespace {

v1::Job RunningTrainJob() {
  v1::Job j;
  j.set_id("j-7");
  j.set_name("fmnist");
  j.set_kind("train");
  j.set_state(v1::RUNNING);
  j.set_world_size(2);
  j.set_step(1200);
  j.set_total_steps(4680);
  j.set_epoch(3);
  j.set_loss(0.5);
  j.set_images_per_second(12345);
  j.set_eval_accuracy(-1);
  j.set_submit_time(1000);
  j.set_start_time(1010);
  j.set_scaling_efficiency(0.87);
  auto* r = j.add_ranks();
  r->set_rank(0);
  r->set_worker_id("w-a");
  r->set_host("node1");
  return j;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(ClientRender, StateNames) {
  EXPECT_STREQ(JobStateName(v1::CANCELLED), "CANCELLED");
  EXPECT_STREQ(WorkerStateName(v1::BUSY), "BUSY");
  EXPECT_TRUE(IsTerminal(v1::FAILED));
  EXPECT_FALSE(IsTerminal(v1::QUEUED));
}

TEST(ClientRender, JobsTable) {
  const std::string t = JobsTable({RunningTrainJob()}, 1010 + 185);
  EXPECT_TRUE(Contains(t, "ID   NAME    KIND   STATE    WORKERS       STEP    LOSS  ACC  IMG/S"))
      << t;
  EXPECT_TRUE(Contains(t, "1200/4680")) << t;
  EXPECT_TRUE(Contains(t, "0.5000")) << t;
  EXPECT_TRUE(Contains(t, "12.3k")) << t;
  EXPECT_TRUE(Contains(t, "3m05s")) << t;
}

TEST(ClientRender, WorkersTable) {
  v1::Worker w;
  w.set_id("w-a");
  w.set_host("node1");
  w.set_state(v1::IDLE);
  w.set_last_heartbeat_age_seconds(1.25);
  auto* d = w.add_devices();
  d->set_kind("cuda");
  d->set_name("NVIDIA H100");
  d->set_memory_bytes(int64_t{80} << 30);
  const std::string t = WorkersTable({w});
  EXPECT_TRUE(Contains(t, "LOCAL RANK")) << t;
  EXPECT_TRUE(Contains(t, "cuda:0 NVIDIA H100 (80 GiB)")) << t;
  EXPECT_TRUE(Contains(t, "1.2s ago")) << t;
}

TEST(ClientRender, SummaryOfRunningTrainJob) {
  const std::string s = JobSummary(RunningTrainJob(), 1100);
  EXPECT_TRUE(Contains(s, "State:          RUNNING")) << s;
  EXPECT_TRUE(Contains(s, "step 1200/4680 (25.6%), epoch 3")) << s;
  EXPECT_TRUE(Contains(s, "not evaluated yet")) << s;
  EXPECT_TRUE(Contains(s, "87.00%")) << s;
  EXPECT_TRUE(Contains(s, "node1")) << s;
  EXPECT_TRUE(Contains(s, "Running for:    1m30s")) << s;
}

TEST(ClientRender, SummaryShowsTop5AndTestLossOnlyWhereReported) {
  v1::Job j = RunningTrainJob();
  j.set_eval_accuracy(0.7612);
  j.set_eval_top5_accuracy(0.9301);
  j.set_eval_loss(0.98765);
  EXPECT_TRUE(Contains(JobSummary(j, 1100), "Accuracy:       76.12% (top-5 93.01%), test loss 0.9877\n"))
      << JobSummary(j, 1100);
  j.set_eval_top5_accuracy(-1);  // 10 classes or fewer
  EXPECT_TRUE(Contains(JobSummary(j, 1100), "Accuracy:       76.12%, test loss 0.9877\n")) << JobSummary(j, 1100);
  j.set_eval_loss(0);  // a job stored before losses were reported
  EXPECT_TRUE(Contains(JobSummary(j, 1100), "Accuracy:       76.12%\n")) << JobSummary(j, 1100);
}

TEST(ClientRender, SummaryShowsCheckpointRestartsAndTheJournal) {
  v1::Job j = RunningTrainJob();
  j.set_checkpoint_step(80);
  j.set_checkpoint_dir("/ck/j-7/step-000000080");
  j.set_restarts(1);
  j.set_attempt(1);
  j.add_events("2026-11-26T10:00:00Z restart 1 of 3 after: lost rank 1 (host n2, worker w-b)");
  const std::string s = JobSummary(j, 1100);
  EXPECT_TRUE(Contains(s, "step 80 in /ck/j-7/step-000000080")) << s;
  EXPECT_TRUE(Contains(s, "Restarts:       1 (attempt 1)")) << s;
  EXPECT_TRUE(Contains(s, "Events:\n  2026-11-26T10:00:00Z restart 1 of 3 after: lost rank 1")) << s;
}

TEST(ClientRender, BenchTableLikeNcclTests) {
  v1::BenchResult b;
  b.set_backend("ucx");
  b.set_dtype("fp32");
  b.set_world_size(2);
  auto* r = b.add_rows();
  r->set_bytes(1024);
  r->set_count(256);
  r->set_dtype("fp32");
  r->set_time_us(12.5);
  r->set_algbw_gbps(0.08);
  r->set_busbw_gbps(0.08);
  r->set_verified(true);
  const std::string t = BenchTable(b);
  EXPECT_TRUE(Contains(t, "size(B)  count  type  time(us)  algbw(GB/s)  busbw(GB/s)  verified"))
      << t;
  EXPECT_TRUE(Contains(t, "1024    256  fp32     12.50         0.08         0.08       yes")) << t;
  EXPECT_TRUE(Contains(t, "Avg bus bandwidth: 0.08 GB/s")) << t;
}

TEST(ClientRender, JsonCarriesContractFields) {
  v1::Job j = RunningTrainJob();
  const std::string s = JobJson(j);
  for (const char* key : {"\"id\"", "\"state\": \"RUNNING\"", "\"reason\"", "\"world_size\"",
                          "\"step\"", "\"epoch\"", "\"loss\"", "\"images_per_second\"",
                          "\"eval_accuracy\"", "\"train\""}) {
    EXPECT_TRUE(Contains(s, key)) << key << " missing in " << s;
  }
  j.set_kind("allreduce-bench");
  EXPECT_TRUE(Contains(JobJson(j), "\"bench\"")) << JobJson(j);
  const std::string arr = JobsJson({j, j});
  EXPECT_EQ(arr.front(), '[');
  EXPECT_EQ(JobsJson({}), "[]\n");
  EXPECT_EQ(WorkersJson({}), "[]\n");
}

}  // namespace
}  // namespace dtrain::cli
