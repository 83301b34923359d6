// JobLogStore: each job's log lines on this worker, for `dtrain logs`. A line
// belongs to a job when it is logged on a thread inside that job's JobLogScope
// or its text starts "job <id>:". Per job the store keeps the last
// kMemoryLines lines in memory (for the 8 most recent jobs) and appends every
// line to <log-dir>/<job>.log, renamed to <job>.log.1 when it reaches
// kFileBytes, so the disk holds at most twice that per job. Read() serves a
// job from memory, or from its files once it has left memory (a restarted
// worker still answers for the jobs it ran). Thread-safe.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dtrain::worker {

class JobLogStore {
 public:
  static constexpr size_t kMemoryLines = 10000;
  static constexpr size_t kMemoryJobs = 8;
  static constexpr size_t kFileBytes = size_t(8) << 20;

  explicit JobLogStore(std::string log_dir);
  ~JobLogStore();

  // The sink to add to the default logger: it hands every line to Append.
  std::shared_ptr<spdlog::sinks::sink> Sink();

  void Append(const std::string& job_id, std::string line);  // line without '\n'
  void MarkEnded(const std::string& job_id);                 // the job left this worker

  struct Slice {
    bool found = false;       // this worker has lines of the job (memory or disk)
    std::vector<std::string> lines;
    uint64_t next = 0;        // pass as `after` to read only newer lines
    bool ended = false;       // no more lines will come
  };
  // Lines numbered >= after (0: from the start), at most the last `tail`
  // of them (tail <= 0: all that are kept).
  Slice Read(const std::string& job_id, uint64_t after, int64_t tail) const;

  std::string PathOf(const std::string& job_id) const;

 private:
  struct Job {
    std::deque<std::string> lines;
    uint64_t first = 0;  // number of lines.front()
    bool ended = false;
    std::FILE* file = nullptr;
    size_t file_bytes = 0;
    uint64_t touched = 0;
  };
  Job& JobLocked(const std::string& job_id);
  void EvictLocked();
  Slice ReadFilesLocked(const std::string& job_id, int64_t tail) const;

  const std::string dir_;
  mutable std::mutex mu_;
  std::map<std::string, Job> jobs_;
  uint64_t clock_ = 0;
  std::shared_ptr<spdlog::sinks::sink> sink_;
};

// Marks the current thread's log lines as the job's while alive.
class JobLogScope {
 public:
  explicit JobLogScope(std::string job_id);
  ~JobLogScope();
  JobLogScope(const JobLogScope&) = delete;
  JobLogScope& operator=(const JobLogScope&) = delete;

 private:
  std::string job_id_;
  const std::string* previous_;
};

}  // namespace dtrain::worker
