// Replays every file under tests/fuzz/regressions/<target>/ (inputs that once
// crashed a libFuzzer target, plus the seeds) through the same entry points as
// tests/fuzz/fuzz_<target>.cc: each must be accepted or rejected with
// dtrain::Error — never another exception, a sanitizer report or a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/fuzz/fuzz_entry.h"

namespace dtrain::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Feeds each regular file of regressions/<target>/ to `entry`; returns how many.
template <class Entry>
size_t Replay(const std::string& target, Entry entry) {
  const fs::path dir = fs::path(DTRAIN_FUZZ_REGRESSIONS_DIR) / target;
  EXPECT_TRUE(fs::is_directory(dir)) << dir;
  if (!fs::is_directory(dir)) return 0;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  size_t accepted = 0;
  for (const fs::path& f : files) {
    SCOPED_TRACE(f.string());
    const std::vector<uint8_t> bytes = ReadBytes(f);
    try {
      accepted += entry(bytes) > 0;
    } catch (const std::exception& e) {
      ADD_FAILURE() << f << ": " << e.what();
    } catch (...) {
      ADD_FAILURE() << f << ": a non-standard exception";
    }
  }
  std::printf("[ replayed ] %s: %zu inputs, %zu accepted by at least one parse\n", target.c_str(), files.size(),
              accepted);
  return files.size();
}

TEST(FuzzRegressions, JobSpec) { EXPECT_GT(Replay("job_spec", JobSpecInput), 0u); }
TEST(FuzzRegressions, IdxReader) { EXPECT_GT(Replay("idx_reader", IdxInput), 0u); }
TEST(FuzzRegressions, Checkpoint) { EXPECT_GT(Replay("checkpoint", CheckpointInput), 0u); }
TEST(FuzzRegressions, ShardIndex) { EXPECT_GT(Replay("shard_index", ShardInput), 0u); }
TEST(FuzzRegressions, Safetensors) { EXPECT_GT(Replay("safetensors", SafetensorsInput), 0u); }

}  // namespace
}  // namespace dtrain::fuzz
