// dtrain-pack: packs ImageFolder splits (INPUT/<split>/<class>/<image>) into
// dtrain shards (worker/data/shard_format.h) in OUTPUT, keeping the folder's
// record order. Every file is read and checked to be a JPEG or PNG
// (CheckPackableImage) on --threads threads while the shards are written in
// order; a bad file stops the pack (exit 2, naming it) unless --skip-bad,
// which leaves it out and lists it at the end. Shards appear under their final
// names only when the whole split is written (ShardWriter::Commit).
// Exit codes: 0 ok, 2 bad usage or input, 1 anything else (I/O, interrupted).
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <future>
#include <thread>

#include "common/error.h"
#include "worker/data/image_records.h"
#include "worker/data/shard_format.h"
#include "worker/data/thread_pool.h"

namespace dtrain::data {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

struct Flags {
  std::string input, output, splits = "train,val";
  int64_t shard_mb = 256;
  int threads = 0;
  bool skip_bad = false, force = false;
};

struct Skipped {
  std::string what;  // the file and why
};

struct SplitStats {
  std::string split;
  int64_t records = 0, classes = 0;
  size_t shards = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  std::string first_path;
};

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

std::string Size(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  else
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
  return buf;
}
const char* Plural(uint64_t n) { return n == 1 ? "" : "s"; }

std::vector<std::string> ParseSplits(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    const std::string s = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const bool ok =
        !s.empty() && s[0] != '.' &&
        s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
    if (!ok) {
      Fail(ErrorCode::kInvalidArgument,
           "--splits '" + list + "': split '" + s +
               "' is not allowed; give folder "
               "names of INPUT separated by commas (letters, digits, _ . -), e.g. train,val");
    }
    if (std::find(out.begin(), out.end(), s) != out.end())
      Fail(ErrorCode::kInvalidArgument, "--splits '" + list + "': split '" + s + "' is named twice");
    out.push_back(s);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// Names of *.dtshard files in `dir` (any split).
std::vector<std::string> ExistingShards(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > std::strlen(kShardSuffix) && n.ends_with(kShardSuffix) && n[0] != '.') out.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Removes .<split>-NNNNN.dtshard.tmp.<pid> files left by a dtrain-pack that no
// longer runs (killed mid-pack); a live pid's temporaries are left alone.
void RemoveStaleTemporaries(const std::string& dir, const std::string& split) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  const std::string prefix = "." + split + "-", marker = std::string(kShardSuffix) + ".tmp.";
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    const size_t m = n.find(marker);
    if (!n.starts_with(prefix) || m == std::string::npos) continue;
    const std::string pid = n.substr(m + marker.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH) stale.push_back(dir + "/" + n);
  }
  ::closedir(d);
  for (const auto& f : stale)
    if (::unlink(f.c_str()) == 0)
      std::fprintf(stderr, "dtrain-pack: removed %s (left by an interrupted run)\n", f.c_str());
}

struct Item {
  std::vector<uint8_t> bytes;
  bool bad = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string why;
};

SplitStats PackSplit(const ImageRecords& records, const std::string& split, const Flags& f, ThreadPool& pool,
                     std::vector<Skipped>* skipped) {
  const Clock::time_point start = Clock::now();
  SplitStats st;
  st.split = split;
  st.classes = records.classes();
  ShardWriter writer(f.output, split, records.class_names(), static_cast<uint64_t>(f.shard_mb) << 20);
  const int64_t n = records.size();
  const int64_t batch = std::clamp<int64_t>(16 * pool.threads(), 64, 1024);
  // Batch b+1 is read and checked on the pool while batch b is written, in order.
  std::vector<Item> cur(batch), next(batch);
  auto fill = [&](std::vector<Item>* items, int64_t begin) {
    pool.ParallelFor(std::min(batch, n - begin), [&](int64_t k) {
      Item& it = (*items)[k];
      it.bad = false;
      try {
        records.Read(begin + k, &it.bytes);
        CheckPackableImage(it.bytes, records.Describe(begin + k));
      } catch (const Error& e) {
        it.bad = true;
        it.code = e.code();
        it.why = e.what();
      }
    });
  };
  std::future<void> pending = std::async(std::launch::async, fill, &next, 0);
  Clock::time_point last_report = start;
  for (int64_t begin = 0; begin < n; begin += batch) {
    pending.get();
    std::swap(cur, next);
    if (begin + batch < n) pending = std::async(std::launch::async, fill, &next, begin + batch);
    for (int64_t k = 0; k < std::min(batch, n - begin); ++k) {
      Item& it = cur[k];
      if (it.bad) {
        // A file that vanished or is not an image is bad input; an I/O error is not.
        if (!f.skip_bad) Fail(it.code == ErrorCode::kNotFound ? ErrorCode::kInvalidArgument : it.code, it.why);
        skipped->push_back({it.why});
        continue;
      }
      writer.Add(records.label(begin + k), it.bytes);
    }
    if (g_stop) Fail(ErrorCode::kAborted, "interrupted; no shard of split '" + split + "' was written");
    if (Seconds(last_report) >= 10) {
      last_report = Clock::now();
      const int64_t done = std::min(n, begin + batch);
      std::fprintf(stderr, "dtrain-pack: %s: %lld/%lld records (%.0f%%), %s, %.0f MiB/s\n", split.c_str(),
                   static_cast<long long>(done), static_cast<long long>(n), 100.0 * done / n,
                   Size(writer.bytes()).c_str(), writer.bytes() / 1048576.0 / Seconds(start));
    }
  }
  st.records = writer.records();
  st.bytes = writer.bytes();
  const std::vector<std::string> paths = writer.Commit(f.force);
  st.shards = paths.size();
  st.first_path = paths.front();
  st.seconds = Seconds(start);
  return st;
}

int Run(const Flags& f) {
  const std::vector<std::string> splits = ParseSplits(f.splits);
  if (f.shard_mb < 1 || f.shard_mb > 1048576)
    Fail(ErrorCode::kInvalidArgument, "--shard-mb " + std::to_string(f.shard_mb) + ": allowed 1 .. 1048576 (MiB)");
  if (f.threads < 0 || f.threads > 1024)
    Fail(ErrorCode::kInvalidArgument, "--threads " + std::to_string(f.threads) + ": allowed 0 (all cores) .. 1024");
  struct stat st;
  if (::stat(f.input.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    Fail(ErrorCode::kInvalidArgument, "--input " + f.input + ": not a folder; give the folder holding the splits (" +
                                          f.splits +
                                          ") as ImageFolders, e.g. imagenet/ with imagenet/train/n01440764/"
                                          "n01440764_10026.JPEG");
  }
  if (::stat(f.output.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    Fail(ErrorCode::kInvalidArgument, "--output " + f.output + ": exists and is not a folder");
  const std::vector<std::string> existing = ExistingShards(f.output);
  if (!existing.empty() && !f.force) {
    Fail(ErrorCode::kInvalidArgument, "--output " + f.output + " already holds " + std::to_string(existing.size()) +
                                          " shard files (e.g. " + existing.front() +
                                          "); choose an empty folder, or pass --force to replace the shards of the "
                                          "splits being packed");
  }
  // List every split first, so a missing or malformed one fails before hours of packing.
  std::vector<std::unique_ptr<ImageRecords>> folders;
  for (const auto& s : splits) {
    try {
      folders.push_back(OpenImageFolder(f.input + "/" + s));
    } catch (const Error& e) {
      Fail(e.code() == ErrorCode::kNotFound ? ErrorCode::kInvalidArgument : e.code(), "split '" + s + "': " + e.what());
    }
    std::printf("%s: %lld images in %d classes\n", s.c_str(), static_cast<long long>(folders.back()->size()),
                folders.back()->classes());
  }
  std::fflush(stdout);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  const int threads = f.threads > 0 ? f.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  const Clock::time_point start = Clock::now();
  std::vector<Skipped> skipped;
  std::vector<SplitStats> stats;
  for (size_t k = 0; k < splits.size(); ++k) {
    RemoveStaleTemporaries(f.output, splits[k]);
    stats.push_back(PackSplit(*folders[k], splits[k], f, pool, &skipped));
    const SplitStats& s = stats.back();
    std::printf("%s: %lld records, %lld classes, %zu shard%s, %s, %.1f s (%.0f MiB/s): %s ...\n", s.split.c_str(),
                static_cast<long long>(s.records), static_cast<long long>(s.classes), s.shards, Plural(s.shards),
                Size(s.bytes).c_str(), s.seconds, s.bytes / 1048576.0 / std::max(s.seconds, 1e-3),
                s.first_path.c_str());
    std::fflush(stdout);
  }
  int64_t records = 0;
  size_t shards = 0;
  uint64_t bytes = 0;
  for (const auto& s : stats) {
    records += s.records;
    shards += s.shards;
    bytes += s.bytes;
  }
  std::printf("packed %zu split%s into %s: %lld records, %zu shard%s, %s, %.1f s\n", stats.size(), Plural(stats.size()),
              f.output.c_str(), static_cast<long long>(records), shards, Plural(shards), Size(bytes).c_str(),
              Seconds(start));
  if (!skipped.empty()) {
    std::printf("skipped %zu file%s (--skip-bad):\n", skipped.size(), Plural(skipped.size()));
    for (const auto& s : skipped) std::printf("  %s\n", s.what.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace dtrain::data

int main(int argc, char** argv) {
  using namespace dtrain;
  data::Flags f;
  CLI::App app{
      "dtrain-pack: packs ImageFolder splits (INPUT/<split>/<class>/<image>) into dtrain shards "
      "(OUTPUT/<split>-NNNNN-of-MMMMM.dtshard) for the ImageNet input pipeline"};
  app.add_option("--input", f.input, "folder holding the splits as ImageFolders")->required();
  app.add_option("--output", f.output, "folder for the shards (created if missing)")->required();
  app.add_option("--splits", f.splits, "comma-separated split folders of --input")->capture_default_str();
  app.add_option("--shard-mb", f.shard_mb, "shard size in MiB (a shard ends before it would grow past it)")
      ->capture_default_str();
  app.add_option("--threads", f.threads, "threads reading and checking files (0: one per core)")->capture_default_str();
  app.add_flag("--skip-bad", f.skip_bad, "leave out files that are not JPEG/PNG images and list them at the end");
  app.add_flag("--force", f.force, "replace the shards of these splits already in --output");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help (rc 0) or the error
    return rc == 0 ? 0 : 2;
  }
  try {
    return data::Run(f);
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dtrain-pack: %s\n", e.what());
    return e.code() == ErrorCode::kInvalidArgument || e.code() == ErrorCode::kNotFound ? 2 : 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "dtrain-pack: %s\n", e.what());
    return 1;
  }
}
