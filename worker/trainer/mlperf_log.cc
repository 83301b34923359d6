#include "worker/trainer/mlperf_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"

#ifndef DTRAIN_SOURCE_DIR
#define DTRAIN_SOURCE_DIR ""
#endif

namespace dtrain::trainer {
namespace {

// Key names and values of the MLPerf training rules (mlperf_logging.mllog.constants).
constexpr const char* kPointInTime = "POINT_IN_TIME";
constexpr const char* kIntervalStart = "INTERVAL_START";
constexpr const char* kIntervalEnd = "INTERVAL_END";

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// As Python's json.dumps (ensure_ascii) writes a string.
std::string JsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

// As Python's json.dumps writes a float: shortest round-trip digits, "256.0"
// for an integral value. (Python writes NaN/Infinity, which is not JSON;
// null here.)
std::string JsonDouble(double d) { return nlohmann::json(d).dump(); }

// `as_float`: the "value" field, which mllog passes through float() first.
std::string JsonValue(const MlperfValue& v, bool as_float) {
  struct Visit {
    bool as_float;
    std::string operator()(std::nullptr_t) const { return "null"; }
    std::string operator()(bool b) const {
      if (as_float) return b ? "1.0" : "0.0";
      return b ? "true" : "false";
    }
    std::string operator()(int64_t i) const {
      return as_float ? JsonDouble(double(i)) : std::to_string(i);
    }
    std::string operator()(double d) const { return JsonDouble(d); }
    std::string operator()(const std::string& s) const { return JsonString(s); }
  };
  return std::visit(Visit{as_float}, v);
}

std::string SourceFile(const char* file) {
  std::string f = file;
  const std::string root = DTRAIN_SOURCE_DIR;
  if (!root.empty() && f.compare(0, root.size(), root) == 0) f.erase(0, root.size());
  return f;
}

// "<world>x<CPU model> (...)": what rank 0's host is. The CPU backend trains on
// one CPU socket or host per rank.
std::string Platform(int world_size) {
  std::string cpu;
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) cpu = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  if (cpu.empty()) cpu = "unknown CPU";
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "unknown host");
  return std::to_string(world_size) + "x" + cpu + " (dtrain CPU backend, rank 0 on " + host + ")";
}

}  // namespace

MlperfLogger::MlperfLogger(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) {
    Fail(ErrorCode::kInvalidArgument,
         "cannot open MLPerf log file '" + path + "' for writing: " + std::strerror(errno));
  }
}

MlperfLogger::~MlperfLogger() {
  if (file_) std::fclose(file_);
}

void MlperfLogger::Write(const char* event_type, const std::string& key, const MlperfValue& value,
                         const MlperfMetadata& metadata, const Loc& loc) {
  std::string line = ":::MLLOG {\"namespace\": \"\", \"time_ms\": " + std::to_string(UnixMs()) +
                     ", \"event_type\": \"" + event_type + "\", \"key\": " + JsonString(key) +
                     ", \"value\": " + JsonValue(value, true) +
                     ", \"metadata\": {\"file\": " + JsonString(SourceFile(loc.file_name())) +
                     ", \"lineno\": " + std::to_string(loc.line());
  for (const auto& [name, v] : metadata) line += ", " + JsonString(name) + ": " + JsonValue(v, false);
  line += "}}\n";
  if (std::fputs(line.c_str(), file_) < 0 || std::fflush(file_) != 0) {
    Fail(ErrorCode::kInternal,
         "cannot write MLPerf log file '" + path_ + "': " + std::strerror(errno));
  }
}

void MlperfLogger::Event(const std::string& key, const MlperfValue& value,
                         const MlperfMetadata& metadata, Loc loc) {
  Write(kPointInTime, key, value, metadata, loc);
}

void MlperfLogger::Start(const std::string& key, const MlperfValue& value,
                         const MlperfMetadata& metadata, Loc loc) {
  Write(kIntervalStart, key, value, metadata, loc);
}

void MlperfLogger::End(const std::string& key, const MlperfValue& value,
                       const MlperfMetadata& metadata, Loc loc) {
  Write(kIntervalEnd, key, value, metadata, loc);
}

void MlperfLogger::InitStart(int world_size, Loc loc) {
  Event("submission_benchmark", std::string("resnet"), {}, loc);
  Event("submission_org", std::string("dtrain"), {}, loc);
  Event("submission_division", std::string("closed"), {}, loc);
  Event("submission_status", std::string("onprem"), {}, loc);
  Event("submission_platform", Platform(world_size), {}, loc);
  // dtrain does not drop the OS page cache (that needs root); say so.
  Event("cache_clear", false, {}, loc);
  Start("init_start", nullptr, {}, loc);
}

void MlperfLogger::RunStart(const JobSpec& spec, const MlperfRunFacts& facts, Loc loc) {
  if (facts.steps_per_epoch < 1 || facts.total_steps < 1 || facts.eval_every_steps < 1) {
    Fail(ErrorCode::kInvalidArgument, "MlperfLogger::RunStart: steps_per_epoch, total_steps and "
                                      "eval_every_steps must be >= 1");
  }
  facts_ = facts;
  const ScheduleSpec& s = spec.schedule;
  const OptimizerSpec& o = spec.optimizer;
  // LrSchedule: warmup steps W = round(warmup_epochs * steps_per_epoch), then
  // decay over the remaining T - W steps.
  const int64_t warmup_steps = std::min<int64_t>(
      facts.total_steps, std::llround(s.warmup_epochs * double(facts.steps_per_epoch)));
  const int64_t decay_steps = facts.total_steps - warmup_steps;
  Event("global_batch_size", int64_t{facts.world_size} * spec.batch_per_worker, {}, loc);
  Event("opt_name", o.name, {}, loc);
  if (o.name == "lars") {
    Event("lars_opt_base_learning_rate", s.base_lr, {}, loc);
    Event("lars_opt_end_learning_rate", s.end_lr, {}, loc);
    Event("lars_opt_learning_rate_decay_poly_power", s.poly_power, {}, loc);
    Event("lars_opt_learning_rate_decay_steps", decay_steps, {}, loc);
    Event("lars_opt_learning_rate_warmup_epochs", s.warmup_epochs, {}, loc);
    Event("lars_opt_momentum", o.momentum, {}, loc);
    Event("lars_opt_weight_decay", o.weight_decay, {}, loc);
    Event("lars_epsilon", o.lars_epsilon, {}, loc);
  } else {
    Event("sgd_opt_base_learning_rate", s.base_lr, {}, loc);
    Event("sgd_opt_end_learning_rate", s.end_lr, {}, loc);
    Event("sgd_opt_learning_rate_decay_poly_power", s.poly_power, {}, loc);
    Event("sgd_opt_learning_rate_decay_steps", decay_steps, {}, loc);
    Event("sgd_opt_weight_decay", o.weight_decay, {}, loc);
    Event("sgd_opt_momentum", o.momentum, {}, loc);
    Event("opt_learning_rate_warmup_epochs", s.warmup_epochs, {}, loc);
  }
  // The poly_power keys above are the rules'; this says which decay ran.
  Event("opt_learning_rate_decay_schedule", s.decay, {}, loc);
  Event("label_smoothing", spec.label_smoothing, {}, loc);
  Event("model_bn_span", int64_t{spec.batch_per_worker}, {}, loc);  // BN statistics per rank
  Event("gradient_accumulation_steps", int64_t{1}, {}, loc);
  Event("train_samples", facts.train_samples, {}, loc);
  Event("eval_samples", facts.eval_samples, {}, loc);
  // mllog writes every value as a float, exact only below 2^53; the decimal
  // string keeps a 64-bit seed reproducible.
  Event("seed", double(facts.seed), {{"exact", std::to_string(facts.seed)}}, loc);
  End("init_stop", nullptr, {}, loc);
  Start("run_start", nullptr, {}, loc);
  run_started_ = true;
}

void MlperfLogger::StepStart(int64_t step, Loc loc) {
  const int64_t spe = facts_.steps_per_epoch;
  const int64_t epoch = step / spe;
  if (block_first_ < 0) {
    // The block runs to the epoch holding the next evaluation.
    const int64_t every = facts_.eval_every_steps;
    const int64_t next_eval = std::min(facts_.total_steps, (step / every + 1) * every);
    block_first_ = epoch;
    block_last_ = std::max(epoch, (next_eval - 1) / spe);
    Start("block_start", nullptr,
          {{"first_epoch_num", epoch + 1}, {"epoch_count", block_last_ - epoch + 1}}, loc);
  }
  if (epoch_open_ != epoch) {
    Start("epoch_start", nullptr, {{"epoch_num", epoch + 1}}, loc);
    epoch_open_ = epoch;
  }
}

void MlperfLogger::StepEnd(int64_t step, Loc loc) {
  const int64_t spe = facts_.steps_per_epoch;
  const int64_t epoch = step / spe;
  const bool last = step + 1 >= facts_.total_steps;
  if (epoch_open_ == epoch && ((step + 1) % spe == 0 || last)) {
    End("epoch_stop", nullptr, {{"epoch_num", epoch + 1}}, loc);
    epoch_open_ = -1;
    if (block_first_ >= 0 && (epoch >= block_last_ || last)) {
      End("block_stop", nullptr, {{"first_epoch_num", block_first_ + 1}}, loc);
      block_first_ = -1;
    }
  }
}

MlperfValue MlperfLogger::EpochsDone(int64_t steps_done) const {
  const int64_t spe = facts_.steps_per_epoch;
  if (steps_done % spe == 0) return steps_done / spe;
  return double(steps_done) / double(spe);
}

void MlperfLogger::EvalStart(int64_t steps_done, Loc loc) {
  Start("eval_start", nullptr, {{"epoch_num", EpochsDone(steps_done)}}, loc);
}

void MlperfLogger::EvalStop(int64_t steps_done, double accuracy, double loss, double top5, Loc loc) {
  const MlperfValue epochs = EpochsDone(steps_done);
  End("eval_stop", nullptr, {{"epoch_num", epochs}}, loc);
  Event("eval_accuracy", accuracy, {{"epoch_num", epochs}}, loc);
  if (loss >= 0) Event("eval_loss", loss, {{"epoch_num", epochs}}, loc);
  if (top5 >= 0) Event("eval_top5_accuracy", top5, {{"epoch_num", epochs}}, loc);
}

void MlperfLogger::RunStop(bool success, Loc loc) {
  if (run_stopped_) return;
  run_stopped_ = true;
  if (epoch_open_ >= 0) {
    End("epoch_stop", nullptr, {{"epoch_num", epoch_open_ + 1}}, loc);
    epoch_open_ = -1;
  }
  if (block_first_ >= 0) {
    End("block_stop", nullptr, {{"first_epoch_num", block_first_ + 1}}, loc);
    block_first_ = -1;
  }
  End("run_stop", nullptr, {{"status", std::string(success ? "success" : "aborted")}}, loc);
}

}  // namespace dtrain::trainer
