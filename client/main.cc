// dtrain: the command-line client of dtrain-coordinator. Parses flags with
// CLI11, validates the coordinator address and dispatches to commands.h.
// Every failure ends here: its message goes to stderr and the process exits
// with one of the codes in exit_code.h (listed in `dtrain --help`).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>

#include "client/commands.h"
#include "client/exit_code.h"
#include "common/error.h"
#include "common/net.h"
#include "common/secrets.h"

namespace {

using namespace dtrain::cli;

constexpr const char* kDefaultCoordinator = "127.0.0.1:7070";

// HOST:PORT as gRPC wants it (IPv6 hosts in brackets); throws on bad input.
std::string CoordinatorTarget(const std::string& text) {
  const dtrain::HostPort hp = dtrain::ParseHostPort("--coordinator", text);
  if (hp.port == 0) {
    throw CliError(kExitUsage, "--coordinator '" + text + "': port 0 is not a coordinator's port");
  }
  return hp.host.find(':') != std::string::npos ? "[" + hp.host + "]:" + std::to_string(hp.port)
                                                : hp.str();
}

int Run(int argc, char** argv) {
  CLI::App app{"dtrain: submit and follow jobs on a dtrain-coordinator"};
  app.name("dtrain");
  app.footer(ExitCodeHelp());
  app.require_subcommand(1);
  app.fallthrough();  // --coordinator / --timeout also accepted after the subcommand

  std::string coordinator = kDefaultCoordinator;
  double timeout = 10;
  app.add_option("--coordinator", coordinator, "coordinator address HOST:PORT")
      ->envname("DTRAIN_COORDINATOR")
      ->capture_default_str();
  app.add_option("--timeout", timeout, "deadline of each call to the coordinator, seconds")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  std::string ca_file, token_file;
  app.add_option("--ca", ca_file,
                 "PEM CA certificate(s) to verify the coordinator's TLS certificate; without it "
                 "the connection is plaintext")
      ->envname("DTRAIN_CA");
  app.add_option("--token-file", token_file,
                 "file holding the client bearer token (else env DTRAIN_CLIENT_TOKEN)");

  std::string spec_path, job_id;
  std::vector<std::string> sets;
  bool wait = false, json = false;

  auto* submit = app.add_subcommand("submit", "submit a job spec; prints the job id");
  submit->add_option("SPEC", spec_path, "job spec file (YAML)")->required();
  submit->add_option("--set", sets, "override a spec field: dotted.key=value (repeatable)")
      ->allow_extra_args();
  submit->add_flag("--wait", wait,
                   "follow the job (progress on stderr); exit 0 only if it SUCCEEDED");

  auto* list = app.add_subcommand("list", "list jobs");
  list->add_flag("--json", json, "print a JSON array of jobs");
  auto* workers = app.add_subcommand("workers", "list workers");
  workers->add_flag("--json", json, "print a JSON array of workers");

  auto* status = app.add_subcommand("status", "show one job, with its result");
  status->add_option("JOB", job_id, "job id")->required();
  status->add_flag("--json", json, "print the job as JSON");

  auto* watch = app.add_subcommand("watch", "follow a job's progress until it ends");
  watch->add_option("JOB", job_id, "job id")->required();

  auto* cancel = app.add_subcommand("cancel", "cancel a queued or running job");
  cancel->add_option("JOB", job_id, "job id")->required();

  auto* exp = app.add_subcommand("export", "write a job's trained weights as safetensors (torchvision names)");
  exp->add_option("JOB", job_id, "job id")->required();
  int64_t export_step = 0;
  std::string export_out;
  exp->add_option("--checkpoint", export_step, "the checkpoint of this step (default: the job's last)")
      ->check(CLI::PositiveNumber);
  exp->add_option("-o,--output", export_out, "the .safetensors file to write")->required();

  auto* logs = app.add_subcommand("logs", "print a job's log lines from its workers");
  logs->add_option("JOB", job_id, "job id")->required();
  int logs_rank = -1;
  int64_t logs_tail = 100;
  bool logs_follow = false;
  logs->add_option("--rank", logs_rank, "only this rank (default: every rank)")->check(CLI::NonNegativeNumber);
  logs->add_option("--tail", logs_tail, "the last N lines of each rank (0: all the worker keeps)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  logs->add_flag("-f,--follow", logs_follow, "then print new lines as they come, until the job ends");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the error with a hint
    return code == 0 ? kExitOk : kExitUsage;
  }

  GlobalOptions g;
  g.coordinator = CoordinatorTarget(coordinator);
  g.timeout_seconds = timeout;
  if (!ca_file.empty()) g.connect.ca_pem = dtrain::ReadPemFile("--ca", ca_file);
  // The client token has one name everywhere: DTRAIN_CLIENT_TOKEN (as the
  // coordinator's); DTRAIN_TOKEN is still read when it is not set.
  g.connect.token = dtrain::LoadToken("--token-file", token_file,
                                      std::getenv("DTRAIN_CLIENT_TOKEN") ? "DTRAIN_CLIENT_TOKEN" : "DTRAIN_TOKEN")
                        .token;

  if (submit->parsed()) return RunSubmit(g, spec_path, sets, wait);
  if (list->parsed()) return RunList(g, json);
  if (workers->parsed()) return RunWorkers(g, json);
  if (status->parsed()) return RunStatus(g, job_id, json);
  if (watch->parsed()) return RunWatch(g, job_id);
  if (cancel->parsed()) return RunCancel(g, job_id);
  if (exp->parsed()) return RunExport(g, job_id, export_step, export_out);
  if (logs->parsed()) return RunLogs(g, job_id, logs_rank, logs_tail, logs_follow);
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const CliError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return e.code();
  } catch (const dtrain::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    switch (e.code()) {
      case dtrain::ErrorCode::kInvalidArgument: return kExitUsage;
      case dtrain::ErrorCode::kNotFound: return kExitNotFound;
      case dtrain::ErrorCode::kUnavailable: return kExitUnreachable;
      default: return kExitServerError;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dtrain: internal error: %s\n", e.what());
    return kExitServerError;
  }
}
