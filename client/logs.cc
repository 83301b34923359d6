// dtrain logs JOB [--rank R] [--tail N] [--follow]: one GetJobLogs stream.
// The coordinator asks each rank's worker for its lines and relays them; a
// rank whose worker is gone (or has none of the job's lines) comes back as a
// note saying what is known, which goes to stderr so stdout stays the log.
#include <cstdio>

#include "client/commands.h"
#include "client/exit_code.h"

namespace dtrain::cli {
namespace {

constexpr double kFollowSeconds = 7 * 24 * 3600.0;  // --follow: until the job ends
constexpr double kGatherSeconds = 10.0;             // the coordinator's wait for workers, plus margin

}  // namespace

int RunLogs(const GlobalOptions& g, const std::string& job_id, int rank, int64_t tail, bool follow) {
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  v1::GetJobLogsRequest req;
  req.set_job_id(job_id);
  req.set_rank(rank);
  req.set_tail(tail);
  req.set_follow(follow);
  const bool complete = client.GetJobLogs(
      req, follow ? kFollowSeconds : g.timeout_seconds + kGatherSeconds, [&](const v1::JobLogsChunk& c) {
        for (const v1::LogLine& l : c.lines()) {
          std::printf("[rank %d %s] %s\n", l.rank(), l.host().c_str(), l.text().c_str());
        }
        std::fflush(stdout);
        for (const std::string& n : c.notes()) {
          std::fprintf(stderr, "dtrain logs: %s\n", n.c_str());
        }
      });
  if (!complete) {
    std::fprintf(stderr, "dtrain logs: the stream from %s ended at its deadline\n", g.coordinator.c_str());
    return kExitServerError;
  }
  return kExitOk;
}

}  // namespace dtrain::cli
