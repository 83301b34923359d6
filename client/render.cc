#include "client/render.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "client/exit_code.h"
#include "client/format.h"

namespace dtrain::cli {

namespace {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    throw CliError(kExitServerError, "cannot print " + message.GetTypeName() +
                                         " as JSON: " + std::string(status.message()));
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

template <typename M>
std::string JsonArray(const std::vector<M>& items, std::string (*one)(const M&)) {
  if (items.empty()) return "[]\n";
  std::string out = "[\n";
  for (size_t i = 0; i < items.size(); ++i) {
    out += one(items[i]);
    out += i + 1 < items.size() ? ",\n" : "\n";
  }
  return out + "]\n";
}

std::string WorkerJsonOne(const v1::Worker& w) { return ToJson(w); }
std::string JobJsonOne(const v1::Job& j) {
  std::string s = JobJson(j);
  s.pop_back();  // JobJson ends with '\n'
  return s;
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string StepText(const v1::Job& job) {
  if (job.total_steps() > 0) {
    return std::to_string(job.step()) + "/" + std::to_string(job.total_steps());
  }
  return job.step() > 0 ? std::to_string(job.step()) : "-";
}

std::string DeviceText(const v1::Device& d) {
  std::string s = d.kind() + ":" + std::to_string(d.index());
  if (!d.name().empty()) s += " " + d.name();
  if (d.memory_bytes() > 0) s += " (" + FormatBytes(d.memory_bytes()) + ")";
  return s;
}

}  // namespace

const char* JobStateName(v1::JobState state) {
  switch (state) {
    case v1::QUEUED: return "QUEUED";
    case v1::RUNNING: return "RUNNING";
    case v1::SUCCEEDED: return "SUCCEEDED";
    case v1::FAILED: return "FAILED";
    case v1::CANCELLED: return "CANCELLED";
    default: return "UNSPECIFIED";
  }
}

const char* WorkerStateName(v1::WorkerState state) {
  switch (state) {
    case v1::IDLE: return "IDLE";
    case v1::BUSY: return "BUSY";
    case v1::DEAD: return "DEAD";
    default: return "UNSPECIFIED";
  }
}

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

double JobElapsedSeconds(const v1::Job& job, double now) {
  if (job.start_time() > 0) {
    const double end = job.end_time() > 0 ? job.end_time() : now;
    return end - job.start_time();
  }
  if (job.submit_time() > 0) {
    const double end = job.end_time() > 0 ? job.end_time() : now;
    return end - job.submit_time();
  }
  return -1;
}

std::string JobsTable(const std::vector<v1::Job>& jobs, double now) {
  Table t({"ID", "NAME", "KIND", "STATE", "WORKERS", "STEP", "LOSS", "ACC", "IMG/S",
           "AGE/DURATION"},
          {false, false, false, false, true, true, true, true, true, true});
  for (const auto& j : jobs) {
    t.AddRow({j.id(), OrDash(j.name()), OrDash(j.kind()), JobStateName(j.state()),
              std::to_string(j.world_size()), StepText(j),
              j.step() > 0 ? FormatFixed(j.loss(), 4) : "-", FormatPercent(j.eval_accuracy()),
              j.images_per_second() > 0 ? FormatRate(j.images_per_second()) : "-",
              FormatDuration(JobElapsedSeconds(j, now))});
  }
  return t.Render();
}

std::string WorkersTable(const std::vector<v1::Worker>& workers) {
  Table t({"ID", "HOST", "LOCAL RANK", "DEVICES", "STATE", "JOB", "RANK", "LAST HEARTBEAT"},
          {false, false, true, false, false, false, true, true});
  for (const auto& w : workers) {
    std::string devices;
    for (const auto& d : w.devices()) devices += (devices.empty() ? "" : ", ") + DeviceText(d);
    const bool on_job = !w.job_id().empty();
    t.AddRow({w.id(), OrDash(w.host()), std::to_string(w.local_rank()), OrDash(devices),
              WorkerStateName(w.state()), on_job ? w.job_id() : "-",
              on_job ? std::to_string(w.rank()) : "-",
              FormatDuration(w.last_heartbeat_age_seconds()) + " ago"});
  }
  return t.Render();
}

std::string BenchTable(const v1::BenchResult& b) {
  std::string out = "Allreduce bench: backend " + OrDash(b.backend()) +
                    (b.algorithm().empty() ? "" : " (" + b.algorithm() + ")") + ", dtype " +
                    OrDash(b.dtype()) + ", " + std::to_string(b.world_size()) + " ranks" +
                    (b.hosts() > 0 ? " on " + std::to_string(b.hosts()) + " host(s)" : "") + "\n";
  Table t({"size(B)", "count", "type", "time(us)", "algbw(GB/s)", "busbw(GB/s)", "verified"},
          {true, true, true, true, true, true, true});
  double busbw_sum = 0;
  bool all_ok = true;
  for (const auto& r : b.rows()) {
    t.AddRow({std::to_string(r.bytes()), std::to_string(r.count()), r.dtype(),
              FormatFixed(r.time_us(), 2), FormatFixed(r.algbw_gbps(), 2),
              FormatFixed(r.busbw_gbps(), 2), r.verified() ? "yes" : "NO"});
    busbw_sum += r.busbw_gbps();
    all_ok = all_ok && r.verified();
  }
  out += t.Render("  ");
  if (b.rows_size() > 0) {
    out += "  Avg bus bandwidth: " + FormatFixed(busbw_sum / b.rows_size(), 2) + " GB/s";
    out += all_ok ? ", all sizes verified\n" : ", SOME SIZES FAILED VERIFICATION\n";
  }
  return out;
}

namespace {
// " (top-5 97.12 %), test loss 0.3120"; parts not reported (<= 0: -1, or a
// job stored before they existed) are left out.
std::string EvalExtras(double top5, double loss) {
  std::string out;
  if (top5 > 0) out += " (top-5 " + FormatPercent(top5) + ")";
  if (loss > 0) out += ", test loss " + FormatFixed(loss, 4);
  return out;
}
}  // namespace

std::string TrainSummary(const v1::TrainResult& r) {
  std::string out = "Train result:\n";
  out += "  Steps:          " + std::to_string(r.steps()) + " (" + std::to_string(r.epochs()) +
         " epochs)\n";
  out += "  Final loss:     " + FormatFixed(r.final_loss(), 4) + "\n";
  out += "  Eval accuracy:  " + FormatPercent(r.eval_accuracy()) + EvalExtras(r.eval_top5_accuracy(), r.eval_loss()) +
         (r.reached_target() ? " (target reached)" : "") + "\n";
  out += "  Images/s:       " + FormatRate(r.images_per_second()) + " (global, after warm-up)\n";
  out += "  Run time:       " + FormatDuration(r.seconds()) + "\n";
  return out;
}

std::string JobSummary(const v1::Job& j, double now) {
  std::string out;
  const auto field = [&](const std::string& name, const std::string& value) {
    std::string label = name + ":";
    label.resize(std::max<size_t>(label.size() + 1, 16), ' ');
    out += label + value + "\n";
  };
  field("Job", j.id() + (j.name().empty() ? "" : " (" + j.name() + ")"));
  field("Kind", OrDash(j.kind()));
  field("State", JobStateName(j.state()));
  if (!j.reason().empty()) field("Reason", j.reason());
  if (!j.message().empty()) field("Message", j.message());
  field("World size", std::to_string(j.world_size()));
  if (j.seed() != 0) field("Seed", std::to_string(j.seed()));
  std::string progress = "step " + StepText(j);
  if (j.total_steps() > 0) {
    progress += " (" +
                FormatFixed(100.0 * static_cast<double>(std::min(j.step(), j.total_steps())) /
                                static_cast<double>(j.total_steps()),
                            1) +
                "%)";
  }
  field("Progress", progress + ", epoch " + std::to_string(j.epoch()));
  if (j.step() > 0) field("Loss", FormatFixed(j.loss(), 4));
  field("Accuracy", j.eval_accuracy() >= 0 ? FormatPercent(j.eval_accuracy()) + EvalExtras(j.eval_top5_accuracy(),
                                                                                          j.eval_loss())
                                           : "not evaluated yet");
  if (j.images_per_second() > 0) field("Images/s", FormatRate(j.images_per_second()));
  if (j.scaling_efficiency() > 0) field("Scaling eff.", FormatPercent(j.scaling_efficiency()));
  if (j.bad_records() > 0) field("Bad images", std::to_string(j.bad_records()) + " unreadable, replaced (see the worker logs)");
  for (const auto& s : j.stalled()) {
    field("STALLED", "rank " + std::to_string(s.rank()) + " (host " + s.host() + ", worker " +
                         s.worker_id() + ") stalled after step " + std::to_string(s.step()) +
                         " for " + FormatDuration(s.seconds()) +
                         (s.behind_steps() > 0 ? ": the other ranks wait for it in the next allreduce"
                                               : ": it has sent nothing since"));
  }
  if (!j.mlperf_log().empty()) field("MLPerf log", j.mlperf_log() + " (rank 0's host)");
  if (j.checkpoint_step() > 0) {
    field("Checkpoint", "step " + std::to_string(j.checkpoint_step()) + " in " + j.checkpoint_dir());
  }
  if (j.restarts() > 0 || j.attempt() > 0) {
    field("Restarts", std::to_string(j.restarts()) + " (attempt " + std::to_string(j.attempt()) + ")");
  }
  field("Submitted", FormatTimestamp(j.submit_time()));
  if (j.start_time() > 0) field("Started", FormatTimestamp(j.start_time()));
  if (j.end_time() > 0) field("Ended", FormatTimestamp(j.end_time()));
  if (j.start_time() > 0) {
    field(j.end_time() > 0 ? "Duration" : "Running for",
          FormatDuration(JobElapsedSeconds(j, now)));
  } else if (j.state() == v1::QUEUED && j.submit_time() > 0) {
    field("Queued for", FormatDuration(now - j.submit_time()));
  }
  if (j.events_size() > 0) {  // the journal: restarts, resumes (the newest 10)
    out += "Events:\n";
    for (int i = std::max(0, j.events_size() - 10); i < j.events_size(); ++i) {
      out += "  " + j.events(i) + "\n";
    }
  }
  if (j.ranks_size() > 0) {
    out += "Ranks:\n";
    Table t({"RANK", "WORKER", "HOST", "LOCAL RANK"}, {true, false, false, true});
    for (const auto& r : j.ranks()) {
      t.AddRow({std::to_string(r.rank()), r.worker_id(), OrDash(r.host()),
                std::to_string(r.local_rank())});
    }
    out += t.Render("  ");
  }
  if (j.has_bench() && (j.bench().rows_size() > 0 || j.kind() == "allreduce-bench")) {
    out += BenchTable(j.bench());
  } else if (j.has_train() && (j.train().steps() > 0 || IsTerminal(j.state()))) {
    out += TrainSummary(j.train());
  }
  return out;
}

ProgressView ToProgressView(const v1::Job& j) {
  ProgressView v;
  v.state = JobStateName(j.state());
  v.step = j.step();
  v.total_steps = j.total_steps();
  v.epoch = j.epoch();
  v.loss = j.loss();
  v.eval_accuracy = j.eval_accuracy();
  v.images_per_second = j.images_per_second();
  v.message = j.message();
  // A queued job says why it waits ("waiting for 8 workers, 2 registered, 2 idle").
  if (j.state() == v1::QUEUED && !j.reason().empty()) {
    v.message = j.reason();
    if (j.attempt() > 0) v.message = "attempt " + std::to_string(j.attempt()) + ": " + v.message;
  }
  return v;
}

std::string JobJson(const v1::Job& job) {
  if (job.kind() == "allreduce-bench" && !job.has_bench()) {
    v1::Job copy = job;
    copy.mutable_bench();
    return ToJson(copy) + "\n";
  }
  if (job.kind() == "train" && !job.has_train()) {
    v1::Job copy = job;
    copy.mutable_train();
    return ToJson(copy) + "\n";
  }
  return ToJson(job) + "\n";
}

std::string JobsJson(const std::vector<v1::Job>& jobs) { return JsonArray(jobs, &JobJsonOne); }

std::string WorkersJson(const std::vector<v1::Worker>& workers) {
  return JsonArray(workers, &WorkerJsonOne);
}

}  // namespace dtrain::cli
