#include "coordinator/store.h"

#include <sqlite3.h>

#include <filesystem>

#include "common/error.h"

namespace dtrain::coordinator {
namespace {

constexpr int kSchemaVersion = 1;

// Finalizes a statement on every path out of a read.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

JobStore::JobStore(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    Fail(ErrorCode::kInvalidArgument,
         "--state-dir " + state_dir + ": cannot create the directory: " + ec.message());
  }
  path_ = (std::filesystem::path(state_dir) / "coordinator.db").string();
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    Fail(ErrorCode::kInvalidArgument, "state database " + path_ + ": cannot open: " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    Exec("PRAGMA journal_mode=WAL");
    Exec("PRAGMA synchronous=NORMAL");
    Exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    Exec("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state INTEGER NOT NULL, "
         "record BLOB NOT NULL, updated REAL NOT NULL)");
    // Added after schema 1 shipped; an older database just gains the table
    // (its workers get new ids once, as before).
    Exec("CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, "
         "pid INTEGER NOT NULL, local_rank INTEGER NOT NULL)");
    if (sqlite3_prepare_v2(db_,
                           "INSERT OR REPLACE INTO jobs (id, state, record, updated) "
                           "VALUES (?1, ?2, ?3, julianday('now'))",
                           -1, &put_job_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", -1,
                           &put_counter_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_,
                           "INSERT OR REPLACE INTO workers (id, host, pid, local_rank) "
                           "VALUES (?1, ?2, ?3, ?4)",
                           -1, &put_worker_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_, "DELETE FROM workers WHERE id = ?1", -1, &delete_worker_,
                           nullptr) != SQLITE_OK) {
      Throw("prepare");
    }
    const uint64_t version = GetCounter("schema_version", 0);
    if (version == 0) {
      PutCounter("schema_version", kSchemaVersion);
    } else if (version != kSchemaVersion) {
      Fail(ErrorCode::kInvalidArgument, "state database " + path_ + " has schema version " +
                                            std::to_string(version) + "; this coordinator reads version " +
                                            std::to_string(kSchemaVersion));
    }
  } catch (...) {
    sqlite3_finalize(put_job_);
    sqlite3_finalize(put_counter_);
    sqlite3_finalize(put_worker_);
    sqlite3_finalize(delete_worker_);
    sqlite3_close(db_);
    throw;
  }
}

JobStore::~JobStore() {
  sqlite3_finalize(put_job_);
  sqlite3_finalize(put_counter_);
  sqlite3_finalize(put_worker_);
  sqlite3_finalize(delete_worker_);
  sqlite3_close(db_);
}

void JobStore::Throw(const std::string& what) const {
  const int code = sqlite3_errcode(db_);
  const bool corrupt = code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
  Fail(corrupt ? ErrorCode::kDataLoss : ErrorCode::kUnavailable,
       "state database " + path_ + ": " + what + ": " + sqlite3_errmsg(db_) +
           (corrupt ? " (the file is damaged or not a dtrain state database; move it aside to "
                      "start with an empty state)"
                    : ""));
}

void JobStore::Exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);
    Throw(sql);
  }
}

void JobStore::PutJob(const v1::Job& job) {
  const std::string record = job.SerializeAsString();
  sqlite3_reset(put_job_);
  sqlite3_bind_text(put_job_, 1, job.id().data(), int(job.id().size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(put_job_, 2, int(job.state()));
  sqlite3_bind_blob(put_job_, 3, record.data(), int(record.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(put_job_) != SQLITE_DONE) Throw("saving job " + job.id());
}

std::vector<v1::Job> JobStore::LoadJobs() const {
  Stmt q;
  if (sqlite3_prepare_v2(db_, "SELECT id, record FROM jobs ORDER BY id", -1, &q.s, nullptr) !=
      SQLITE_OK) {
    Throw("reading jobs");
  }
  std::vector<v1::Job> jobs;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0));
    const void* blob = sqlite3_column_blob(q.s, 1);
    const int bytes = sqlite3_column_bytes(q.s, 1);
    v1::Job job;
    if (!job.ParseFromArray(blob, bytes) || job.id() != (id ? id : "")) {
      Fail(ErrorCode::kDataLoss, "state database " + path_ + ": the record of job '" +
                                     std::string(id ? id : "") + "' (" + std::to_string(bytes) +
                                     " bytes) does not parse as a dtrain.v1.Job");
    }
    jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE) Throw("reading jobs");
  return jobs;
}

void JobStore::PutCounter(const std::string& name, uint64_t value) {
  sqlite3_reset(put_counter_);
  sqlite3_bind_text(put_counter_, 1, name.data(), int(name.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(put_counter_, 2, sqlite3_int64(value));
  if (sqlite3_step(put_counter_) != SQLITE_DONE) Throw("saving counter " + name);
}

uint64_t JobStore::GetCounter(const std::string& name, uint64_t fallback) const {
  Stmt q;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key = ?1", -1, &q.s, nullptr) != SQLITE_OK) {
    Throw("reading counter " + name);
  }
  sqlite3_bind_text(q.s, 1, name.data(), int(name.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(q.s);
  if (rc == SQLITE_ROW) return uint64_t(sqlite3_column_int64(q.s, 0));
  if (rc != SQLITE_DONE) Throw("reading counter " + name);
  return fallback;
}

void JobStore::PutWorker(const WorkerRecord& w) {
  sqlite3_reset(put_worker_);
  sqlite3_bind_text(put_worker_, 1, w.id.data(), int(w.id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(put_worker_, 2, w.host.data(), int(w.host.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(put_worker_, 3, w.pid);
  sqlite3_bind_int(put_worker_, 4, w.local_rank);
  if (sqlite3_step(put_worker_) != SQLITE_DONE) Throw("saving worker " + w.id);
}

void JobStore::DeleteWorker(const std::string& id) {
  sqlite3_reset(delete_worker_);
  sqlite3_bind_text(delete_worker_, 1, id.data(), int(id.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(delete_worker_) != SQLITE_DONE) Throw("dropping worker " + id);
}

std::vector<JobStore::WorkerRecord> JobStore::LoadWorkers() const {
  Stmt q;
  if (sqlite3_prepare_v2(db_, "SELECT id, host, pid, local_rank FROM workers ORDER BY id", -1,
                         &q.s, nullptr) != SQLITE_OK) {
    Throw("reading workers");
  }
  std::vector<WorkerRecord> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    WorkerRecord w;
    const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0));
    const auto* host = reinterpret_cast<const char*>(sqlite3_column_text(q.s, 1));
    w.id = id ? id : "";
    w.host = host ? host : "";
    w.pid = sqlite3_column_int(q.s, 2);
    w.local_rank = sqlite3_column_int(q.s, 3);
    out.push_back(std::move(w));
  }
  if (rc != SQLITE_DONE) Throw("reading workers");
  return out;
}

}  // namespace dtrain::coordinator
