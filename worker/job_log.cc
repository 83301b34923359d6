#include "worker/job_log.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace dtrain::worker {
namespace {

thread_local const std::string* t_job = nullptr;

// The job a line belongs to: the thread's scope, else a "job <id>:" prefix.
bool JobOf(std::string_view text, std::string* job) {
  if (t_job) {
    *job = *t_job;
    return true;
  }
  if (text.substr(0, 4) != "job ") return false;
  const size_t colon = text.find(':', 4);
  if (colon == std::string_view::npos || colon == 4 || text.substr(4, colon - 4).find(' ') != std::string_view::npos) {
    return false;
  }
  *job = std::string(text.substr(4, colon - 4));
  return true;
}

class StoreSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit StoreSink(JobLogStore* store) : store_(store) {}
  void Detach() {
    std::lock_guard<std::mutex> lock(mutex_);
    store_ = nullptr;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string job;
    if (!store_) return;
    if (!JobOf(std::string_view(msg.payload.data(), msg.payload.size()), &job)) return;
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::string line(buf.data(), buf.size());
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    store_->Append(job, std::move(line));
  }
  void flush_() override {}

 private:
  JobLogStore* store_;
};

// A job id becomes a file name: anything but [A-Za-z0-9._-] is replaced.
std::string FileSafe(const std::string& id) {
  std::string s = id;
  for (char& c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  }
  return s;
}

}  // namespace

JobLogScope::JobLogScope(std::string job_id) : job_id_(std::move(job_id)), previous_(t_job) {
  t_job = &job_id_;
}
JobLogScope::~JobLogScope() { t_job = previous_; }

JobLogStore::JobLogStore(std::string log_dir) : dir_(std::move(log_dir)) {
  sink_ = std::make_shared<StoreSink>(this);
}

JobLogStore::~JobLogStore() {
  static_cast<StoreSink*>(sink_.get())->Detach();  // loggers may keep the sink longer
  for (auto& [id, j] : jobs_) {
    if (j.file) std::fclose(j.file);
  }
}

std::shared_ptr<spdlog::sinks::sink> JobLogStore::Sink() { return sink_; }

std::string JobLogStore::PathOf(const std::string& job_id) const {
  return dir_ + "/" + FileSafe(job_id) + ".log";
}

JobLogStore::Job& JobLogStore::JobLocked(const std::string& job_id) {
  auto [it, fresh] = jobs_.try_emplace(job_id);
  it->second.touched = ++clock_;
  if (fresh) EvictLocked();
  return it->second;
}

// Keeps at most kMemoryJobs jobs in memory: the least recently written ended
// ones go first (their lines stay on disk).
void JobLogStore::EvictLocked() {
  while (jobs_.size() > kMemoryJobs) {
    auto victim = jobs_.end();
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
      if (it->second.ended && (victim == jobs_.end() || it->second.touched < victim->second.touched)) victim = it;
    }
    if (victim == jobs_.end()) return;  // all running: keep them
    if (victim->second.file) std::fclose(victim->second.file);
    jobs_.erase(victim);
  }
}

void JobLogStore::Append(const std::string& job_id, std::string line) {
  std::lock_guard<std::mutex> lock(mu_);
  Job& j = JobLocked(job_id);
  if (!dir_.empty()) {
    const std::string path = PathOf(job_id);
    if (j.file && j.file_bytes >= kFileBytes) {
      std::fclose(j.file);
      j.file = nullptr;
      std::error_code ec;
      std::filesystem::rename(path, path + ".1", ec);
    }
    if (!j.file) {
      std::error_code ec;
      std::filesystem::create_directories(dir_, ec);
      j.file = std::fopen(path.c_str(), "a");
      j.file_bytes = j.file ? size_t(std::filesystem::file_size(path, ec)) : 0;  // a restarted worker appends
    }
    if (j.file) {
      std::fwrite(line.data(), 1, line.size(), j.file);
      std::fputc('\n', j.file);
      std::fflush(j.file);  // a SIGKILLed worker leaves every line it logged
      j.file_bytes += line.size() + 1;
    }
  }
  j.lines.push_back(std::move(line));
  if (j.lines.size() > kMemoryLines) {
    j.lines.pop_front();
    ++j.first;
  }
}

void JobLogStore::MarkEnded(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Job& j = JobLocked(job_id);
  j.ended = true;
  if (j.file) {
    std::fclose(j.file);
    j.file = nullptr;
  }
  EvictLocked();
}

JobLogStore::Slice JobLogStore::Read(const std::string& job_id, uint64_t after, int64_t tail) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return ReadFilesLocked(job_id, tail);
  const Job& j = it->second;
  Slice s;
  s.found = true;
  s.ended = j.ended;
  const uint64_t end = j.first + j.lines.size();
  uint64_t from = std::max(after, j.first);
  if (tail > 0 && end - std::min(end, from) > uint64_t(tail)) from = end - uint64_t(tail);
  for (uint64_t n = from; n < end; ++n) s.lines.push_back(j.lines[n - j.first]);
  s.next = end;
  return s;
}

// A job no longer in memory: the last `tail` lines of <job>.log.1 + <job>.log.
JobLogStore::Slice JobLogStore::ReadFilesLocked(const std::string& job_id, int64_t tail) const {
  Slice s;
  if (dir_.empty()) return s;
  std::deque<std::string> lines;
  for (const std::string& path : {PathOf(job_id) + ".1", PathOf(job_id)}) {
    std::ifstream in(path);
    if (!in) continue;
    s.found = true;
    for (std::string line; std::getline(in, line);) {
      lines.push_back(std::move(line));
      if (tail > 0 && lines.size() > size_t(tail)) lines.pop_front();
    }
  }
  s.lines.assign(lines.begin(), lines.end());
  s.next = ~uint64_t(0);
  s.ended = true;
  return s;
}

}  // namespace dtrain::worker
