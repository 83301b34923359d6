// JobStore: the coordinator's durable state, one SQLite database
// (STATE_DIR/coordinator.db, WAL mode) under --state-dir. It holds every job
// as its v1::Job record (spec, state, reason, result, restart count, last
// checkpoint, journal), a few counters (next worker id, next job sequence),
// and the worker ids it issued that are still in use (id, host, pid, local
// rank), so a worker that registers again after a restart keeps its id. Each Put is one transaction: once it returns, the row survives a
// kill -9 of the coordinator (synchronous=NORMAL: a power loss may lose the
// last transactions, never corrupt the file). Not thread-safe: the core calls
// it under its own mutex. Errors throw dtrain::Error naming the database file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/dtrain.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace dtrain::coordinator {

class JobStore {
 public:
  // Creates the directory and the schema when missing. kInvalidArgument when
  // the directory cannot be created or the file is not a dtrain database,
  // kDataLoss when SQLite finds it corrupt.
  explicit JobStore(const std::string& state_dir);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  void PutJob(const v1::Job& job);        // insert or replace, by id
  std::vector<v1::Job> LoadJobs() const;  // every job, in id order
  void PutCounter(const std::string& name, uint64_t value);
  uint64_t GetCounter(const std::string& name, uint64_t fallback) const;

  // Worker ids issued by this store and not yet dropped.
  struct WorkerRecord {
    std::string id;
    std::string host;
    int32_t pid = 0;
    int32_t local_rank = 0;
  };
  void PutWorker(const WorkerRecord& w);        // insert or replace, by id
  void DeleteWorker(const std::string& id);     // no-op when absent
  std::vector<WorkerRecord> LoadWorkers() const;  // in id order

  const std::string& path() const { return path_; }

 private:
  void Exec(const char* sql) const;
  [[noreturn]] void Throw(const std::string& what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_job_ = nullptr;
  sqlite3_stmt* put_counter_ = nullptr;
  sqlite3_stmt* put_worker_ = nullptr;
  sqlite3_stmt* delete_worker_ = nullptr;
};

}  // namespace dtrain::coordinator
