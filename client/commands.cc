#include "client/commands.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/exit_code.h"
#include "client/follow.h"
#include "client/render.h"
#include "client/rpc.h"

namespace dtrain::cli {

namespace {

double UnixNow() { return static_cast<double>(std::time(nullptr)); }

int OutcomeCode(const v1::Job& job) { return job.state() == v1::SUCCEEDED ? kExitOk : kExitJobFailed; }

void CheckJobId(const std::string& id) {
  if (id.empty()) throw CliError(kExitUsage, "JOB must not be empty; see `dtrain list` for job ids");
}

// Offset of the first byte that is not UTF-8 text (a NUL or control byte
// other than tab/CR/LF, or a malformed UTF-8 sequence), npos when all is text.
size_t FirstNonText(const std::string& t) {
  size_t i = 0;
  while (i < t.size()) {
    const auto c = static_cast<unsigned char>(t[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
      ++i;
      continue;
    }
    // Lead byte of a 2-, 3- or 4-byte sequence (no overlong 0xC0/0xC1, nothing past U+10FFFF).
    const size_t n = (c >= 0xC2 && c <= 0xDF) ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c >= 0xF0 && c <= 0xF4) ? 3 : 0;
    if (n == 0 || i + n >= t.size()) return i;  // not a lead byte, or cut off at the end
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(t[i + k]) & 0xC0) != 0x80) return i;
    }
    i += n + 1;
  }
  return std::string::npos;
}

}  // namespace

std::string ReadSpecFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw CliError(kExitUsage, "cannot read job spec '" + path + "': it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw CliError(kExitUsage, "cannot read job spec '" + path + "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw CliError(kExitUsage, "cannot read job spec '" + path + "': " + std::strerror(errno));
  }
  if (text.str().find_first_not_of(" \t\r\n") == std::string::npos) {
    throw CliError(kExitUsage, "job spec '" + path + "' is empty");
  }
  const size_t bad = FirstNonText(text.str());
  if (bad != std::string::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(text.str()[bad]));
    throw CliError(kExitUsage, "job spec '" + path + "' is not a YAML text file: byte " + byte + " at offset " +
                                   std::to_string(bad) + " is not UTF-8 text");
  }
  return text.str();
}

void CheckSetItems(const std::vector<std::string>& sets) {
  for (const auto& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw CliError(kExitUsage, "--set '" + s + "': expected dotted.key=value, e.g. --set epochs=5");
    }
  }
}

int RunSubmit(const GlobalOptions& g, const std::string& spec_path,
              const std::vector<std::string>& sets, bool wait) {
  const std::string spec = ReadSpecFile(spec_path);
  CheckSetItems(sets);
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  const v1::Job job = client.SubmitJob(spec, sets);
  std::printf("%s\n", job.id().c_str());
  std::fflush(stdout);
  if (!wait) return kExitOk;
  return OutcomeCode(FollowJob(client, job.id(), stderr));
}

int RunList(const GlobalOptions& g, bool json) {
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  const auto jobs = client.ListJobs();
  if (json) {
    std::fputs(JobsJson(jobs).c_str(), stdout);
  } else if (jobs.empty()) {
    std::fprintf(stderr, "no jobs (submit one with `dtrain submit SPEC.yaml`)\n");
  } else {
    std::fputs(JobsTable(jobs, UnixNow()).c_str(), stdout);
  }
  return kExitOk;
}

int RunWorkers(const GlobalOptions& g, bool json) {
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  const auto workers = client.ListWorkers();
  if (json) {
    std::fputs(WorkersJson(workers).c_str(), stdout);
  } else if (workers.empty()) {
    std::fprintf(stderr, "no workers registered (start dtrain-worker --coordinator %s)\n",
                 g.coordinator.c_str());
  } else {
    std::fputs(WorkersTable(workers).c_str(), stdout);
  }
  return kExitOk;
}

int RunStatus(const GlobalOptions& g, const std::string& job_id, bool json) {
  CheckJobId(job_id);
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  const v1::Job job = client.GetJob(job_id);
  std::fputs((json ? JobJson(job) : JobSummary(job, UnixNow())).c_str(), stdout);
  return kExitOk;
}

int RunWatch(const GlobalOptions& g, const std::string& job_id) {
  CheckJobId(job_id);
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  return OutcomeCode(FollowJob(client, job_id, stdout));
}

int RunCancel(const GlobalOptions& g, const std::string& job_id) {
  CheckJobId(job_id);
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  // A job that has ended is not an error to cancel: say so and exit 0.
  const v1::Job before = client.GetJob(job_id);
  if (IsTerminal(before.state())) {
    std::printf("nothing to cancel: job %s already %s\n", job_id.c_str(),
                JobStateName(before.state()));
    return kExitOk;
  }
  const v1::Job job = client.CancelJob(job_id);
  const char* id = job.id().empty() ? job_id.c_str() : job.id().c_str();
  switch (job.state()) {
    case v1::CANCELLED:
      std::printf("job %s cancelled\n", id);
      break;
    case v1::SUCCEEDED:  // it ended meanwhile
    case v1::FAILED:
      std::printf("nothing to cancel: job %s already %s\n", id, JobStateName(job.state()));
      break;
    default:
      std::printf("job %s: cancel requested (now %s; `dtrain watch %s` to follow)\n", id,
                  JobStateName(job.state()), id);
  }
  return kExitOk;
}

}  // namespace dtrain::cli
