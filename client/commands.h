// The dtrain subcommands. Each returns the process exit code (exit_code.h) or
// throws CliError; main() parses flags and dispatches here.
// Output contract: results on stdout (submit: the job id alone), diagnostics
// and submit --wait progress on stderr.
#pragma once

#include <string>
#include <vector>

#include "client/rpc.h"

namespace dtrain::cli {

struct GlobalOptions {
  std::string coordinator;  // HOST:PORT, validated
  double timeout_seconds = 10;
  ConnectOptions connect;   // TLS CA and token (--ca, --token-file)
};

int RunSubmit(const GlobalOptions& g, const std::string& spec_path,
              const std::vector<std::string>& sets, bool wait);
int RunList(const GlobalOptions& g, bool json);
int RunWorkers(const GlobalOptions& g, bool json);
int RunStatus(const GlobalOptions& g, const std::string& job_id, bool json);
int RunWatch(const GlobalOptions& g, const std::string& job_id);
int RunCancel(const GlobalOptions& g, const std::string& job_id);
// export.cc: the job's checkpoint of `step` (0: its last) as safetensors.
int RunExport(const GlobalOptions& g, const std::string& job_id, int64_t step, const std::string& out);

// logs.cc: each rank's job log lines ("[rank R host] line" on stdout; what
// is known of a rank whose lines cannot be read on stderr). rank -1: all.
int RunLogs(const GlobalOptions& g, const std::string& job_id, int rank, int64_t tail, bool follow);

// Reads the spec file; throws CliError(kExitUsage) naming the file when it is
// missing, a directory, unreadable or empty.
std::string ReadSpecFile(const std::string& path);

// Checks every --set item is "dotted.key=value" with a non-empty key; throws
// CliError(kExitUsage) naming the bad item.
void CheckSetItems(const std::vector<std::string>& sets);

}  // namespace dtrain::cli
