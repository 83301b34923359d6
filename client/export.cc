// dtrain export: a job's trained weights as a safetensors file under
// torchvision's names (worker/checkpoint/weights_file.h).
//
// Where the checkpoint is: the coordinator says (GetJob: the job's last
// complete checkpoint directory) and this process reads it directly, so
// export runs where the job's checkpoint.dir is mounted — a shared file
// system, as restarts on another node need anyway. A directory this machine
// cannot see fails with that said; nothing is written then, and the output
// file is written atomically (temp + rename) or not at all.
#include <cstdio>
#include <filesystem>

#include "client/commands.h"
#include "client/exit_code.h"
#include "client/render.h"
#include "client/rpc.h"
#include "common/error.h"
#include "common/job_spec.h"
#include "worker/checkpoint/checkpoint_dirs.h"
#include "worker/checkpoint/weights_file.h"

namespace dtrain::cli {
namespace {

namespace fs = std::filesystem;

// The step directory of checkpoint `step` among the job's (names "step-N").
fs::path FindStep(const fs::path& job_dir, int64_t step, const std::string& job_id) {
  std::string have;
  for (const auto& [n, path] : ckpt::ListStepDirs(job_dir.string())) {
    if (n == step) return path;
    have += (have.empty() ? "" : ", ") + std::to_string(n);
  }
  throw CliError(kExitNotFound, "job " + job_id + " has no checkpoint of step " + std::to_string(step) + " in " +
                                    job_dir.string() + " (kept: " + (have.empty() ? "none" : have) +
                                    "; checkpoint.keep says how many are kept)");
}

}  // namespace

int RunExport(const GlobalOptions& g, const std::string& job_id, int64_t step, const std::string& out) {
  if (job_id.empty()) throw CliError(kExitUsage, "JOB must not be empty; see `dtrain list` for job ids");
  if (out.empty()) throw CliError(kExitUsage, "-o FILE.safetensors is required");
  if (fs::is_directory(out)) throw CliError(kExitUsage, "-o " + out + " is a directory; name the file to write");
  CoordinatorClient client(g.coordinator, g.timeout_seconds, g.connect);
  const v1::Job job = client.GetJob(job_id);
  if (job.kind() != "train") {
    throw CliError(kExitUsage, "job " + job_id + " is a " + job.kind() + " job; only train jobs have weights");
  }
  if (job.checkpoint_dir().empty()) {
    const JobSpec spec = ParseJobSpec(job.spec_yaml());
    throw CliError(kExitNotFound,
                   "job " + job_id + " has no checkpoint to export: " +
                       (spec.checkpoint.dir.empty()
                            ? std::string("its spec has no checkpoint.dir (add checkpoint: {dir: /shared/path} "
                                          "and train again; the final weights are always saved then)")
                            : std::string("none was complete yet (state ") + JobStateName(job.state()) + ")"));
  }
  fs::path dir = job.checkpoint_dir();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw CliError(kExitNotFound, "checkpoint directory " + dir.string() +
                                      " is not on this machine: dtrain export reads the job's checkpoints "
                                      "directly, so run it on a host that mounts the job's checkpoint.dir");
  }
  if (step > 0) dir = FindStep(dir.parent_path(), step, job_id);
  const int64_t ckpt_step = step > 0 ? step : job.checkpoint_step();
  std::map<std::string, std::string> meta = {{"job_id", job.id()}, {"job_name", job.name()}};
  // The job's accuracy belongs to these weights when its last evaluation ran at
  // this step: the final step always evaluates, and BN statistics are averaged
  // before both (trainer.h).
  if (ckpt_step == job.step() && job.eval_accuracy() >= 0) {
    char acc[32];
    std::snprintf(acc, sizeof(acc), "%.6f", job.eval_accuracy());
    meta["eval_accuracy"] = acc;
  }
  const ckpt::SafetensorsFile f = ckpt::ModelCheckpointToSafetensors((dir / "model.ckpt").string(), meta);
  try {
    ckpt::WriteSafetensorsFile(out, f);
  } catch (const Error& e) {
    throw CliError(kExitUsage, std::string("cannot write ") + out + ": " + e.what());
  }
  size_t values = 0;
  for (const auto& [name, t] : f.tensors) values += size_t(t.numel());
  std::printf("%s: %s step %lld of job %s, %zu tensors, %zu values%s\n", out.c_str(),
              f.metadata.at("model").c_str(), static_cast<long long>(ckpt_step), job_id.c_str(), f.tensors.size(),
              values, meta.count("eval_accuracy") ? (", eval accuracy " + meta["eval_accuracy"]).c_str() : "");
  return kExitOk;
}

}  // namespace dtrain::cli
