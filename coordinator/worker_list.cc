// ListWorkers of CoordinatorCore: the vector (metrics, tests) and the
// serialized ListWorkersResponse the RPC sends. At 2,048 workers the answer is
// ~250 kB; copying every v1::Worker under the lock for each call was most of
// the coordinator's CPU (bench/README.md, "Control-plane load"). Instead each
// worker's bytes are kept from the last exclusive section, and a call only
// copies them and appends the heartbeat age.
//
// Wire format: an entry is field 1 (LEN) holding the worker's own fields and
// then field 8 (last_heartbeat_age_seconds, fixed64). The stored v1::Worker
// never has field 8 set, and protobuf parsers accept fields in any order, so
// the bytes parse to exactly the message the copy used to build.
#include <bit>

#include "coordinator/core.h"

namespace dtrain::coordinator {
namespace {

constexpr uint8_t kWorkersTag = (1 << 3) | 2;  // ListWorkersResponse.workers: field 1, LEN
constexpr uint8_t kAgeTag = (8 << 3) | 1;      // Worker.last_heartbeat_age_seconds: field 8, I64
constexpr size_t kAgeBytes = 1 + 8;

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void AppendAge(std::string& out, double age) {
  uint64_t bits = std::bit_cast<uint64_t>(age);
  char le[kAgeBytes];
  le[0] = static_cast<char>(kAgeTag);
  for (size_t i = 1; i < kAgeBytes; ++i, bits >>= 8) le[i] = static_cast<char>(bits & 0xff);  // little-endian
  out.append(le, kAgeBytes);
}

}  // namespace

std::vector<v1::Worker> CoordinatorCore::ListWorkers() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::vector<v1::Worker> out;
  out.reserve(workers_.size());
  for (const auto& [id, w] : workers_) {
    out.push_back(w.info);
    out.back().set_last_heartbeat_age_seconds(Seconds(now - w.last_seen.load()));
  }
  return out;
}

std::string CoordinatorCore::ListWorkersSerialized() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> cache(list_mu_);
    if (list_generation_ != registry_generation_) {
      list_rows_.clear();
      list_rows_.reserve(workers_.size());
      list_bytes_ = 0;
      std::string bytes;
      for (const auto& [id, w] : workers_) {
        bytes.clear();
        w.info.AppendToString(&bytes);
        ListRow row{std::string(), &w.last_seen};
        row.entry.reserve(1 + 5 + bytes.size());
        row.entry.push_back(static_cast<char>(kWorkersTag));
        AppendVarint(row.entry, bytes.size() + kAgeBytes);
        row.entry += bytes;
        list_bytes_ += row.entry.size() + kAgeBytes;
        list_rows_.push_back(std::move(row));
      }
      list_generation_ = registry_generation_;
    }
  }
  // Fresh for this generation, which cannot change while mu_ is shared: the
  // rows are read without list_mu_, so concurrent calls do not queue here.
  const auto now = std::chrono::steady_clock::now();
  std::string out;
  out.reserve(list_bytes_);
  for (const ListRow& row : list_rows_) {
    out += row.entry;
    AppendAge(out, Seconds(now - row.last_seen->load()));
  }
  return out;
}

}  // namespace dtrain::coordinator
