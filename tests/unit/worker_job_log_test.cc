// JobLogStore: lines are routed to their job by the thread's scope or a
// "job <id>:" prefix, read back by tail and by "newer than", kept on disk and
// readable from there once the job left memory (or after a restart), and the
// file rotates at its size bound.
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <string>
#include <thread>

#include "worker/job_log.h"

namespace dtrain::worker {
namespace {

std::string TempDir() {
  std::string d = std::filesystem::temp_directory_path() / ("job-log-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  return d;
}

TEST(JobLogStore, RoutesLinesByScopeOrPrefixAndReadsTailAndNewer) {
  const std::string dir = TempDir();
  JobLogStore store(dir);
  auto logger = std::make_shared<spdlog::logger>("t", store.Sink());
  logger->set_pattern("%v");
  logger->info("not a job line");
  logger->info("job job-7: from another thread of job 7");
  {
    JobLogScope scope("job-3");
    for (int i = 0; i < 5; ++i) logger->info("step {}", i);
  }
  logger->info("after the scope: nobody's");

  JobLogStore::Slice s = store.Read("job-3", 0, 0);
  ASSERT_TRUE(s.found);
  EXPECT_EQ(s.lines, (std::vector<std::string>{"step 0", "step 1", "step 2", "step 3", "step 4"}));
  EXPECT_FALSE(s.ended);
  EXPECT_EQ(store.Read("job-3", 0, 2).lines, (std::vector<std::string>{"step 3", "step 4"}));
  EXPECT_EQ(store.Read("job-7", 0, 0).lines,
            (std::vector<std::string>{"job job-7: from another thread of job 7"}));

  const uint64_t next = s.next;
  {
    JobLogScope scope("job-3");
    logger->info("step 5");
  }
  store.MarkEnded("job-3");
  s = store.Read("job-3", next, 0);
  EXPECT_EQ(s.lines, (std::vector<std::string>{"step 5"}));
  EXPECT_TRUE(s.ended);
  EXPECT_FALSE(store.Read("job-99", 0, 0).found);

  // A new store on the same folder (a restarted worker) reads the file.
  JobLogStore again(dir);
  s = again.Read("job-3", 0, 3);
  ASSERT_TRUE(s.found);
  EXPECT_EQ(s.lines, (std::vector<std::string>{"step 3", "step 4", "step 5"}));
  EXPECT_TRUE(s.ended);
  std::filesystem::remove_all(dir);
}

TEST(JobLogStore, KeepsTheLastLinesInMemoryAndRotatesTheFileAtItsBound) {
  const std::string dir = TempDir();
  JobLogStore store(dir);
  const std::string big(1000, 'x');
  const size_t n = JobLogStore::kFileBytes / 1001 + 10;  // crosses the bound once
  for (size_t i = 0; i < n; ++i) store.Append("job-1", std::to_string(i) + big);
  EXPECT_TRUE(std::filesystem::exists(store.PathOf("job-1") + ".1"));
  EXPECT_LT(std::filesystem::file_size(store.PathOf("job-1")), JobLogStore::kFileBytes);
  JobLogStore::Slice s = store.Read("job-1", 0, 0);
  ASSERT_EQ(s.lines.size(), std::min(n, JobLogStore::kMemoryLines));
  EXPECT_EQ(s.lines.back(), std::to_string(n - 1) + big);
  EXPECT_EQ(s.next, n);
  // Nine more ended jobs push job-1 out of memory; its files still answer.
  store.MarkEnded("job-1");
  for (int j = 2; j <= 10; ++j) {
    store.Append("job-" + std::to_string(j), "x");
    store.MarkEnded("job-" + std::to_string(j));
  }
  s = store.Read("job-1", 0, 1);
  ASSERT_TRUE(s.found);
  EXPECT_EQ(s.lines, (std::vector<std::string>{std::to_string(n - 1) + big}));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dtrain::worker
