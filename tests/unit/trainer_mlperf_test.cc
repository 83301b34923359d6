// MLPerf logging: real short training runs on the local communicator write a
// log whose every line is an mllog line (":::MLLOG " + JSON, fields in mllog's
// order), with the submission keys and hyperparameters before init_stop,
// init_stop before run_start, epochs nested in blocks, eval_accuracy carrying
// epoch_num, and run_stop last with "success" (target reached) or "aborted"
// (no target, or an abort); a path that cannot be opened is a clear error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/job_spec.h"
#include "worker/comm/local_communicator.h"
#include "worker/trainer/mlperf_log.h"
#include "worker/trainer/trainer.h"

namespace dtrain::trainer {
namespace {

using Json = nlohmann::ordered_json;

// A small, fast job on the synthetic data set: 4 steps per epoch.
JobSpec SmallSpec(const std::vector<std::string>& sets = {}) {
  std::vector<std::string> all = {
      "model=resnet20",       "dataset.name=synthetic", "dataset.image_size=12",
      "dataset.channels=1",   "dataset.classes=4",      "dataset.train_size=64",
      "dataset.test_size=32", "batch_per_worker=16",    "epochs=3",
      "optimizer.name=lars",  "schedule.base_lr=1.0",   "schedule.warmup_epochs=1",
      "allreduce.dtype=fp32", "eval_every_epochs=2",
  };
  all.insert(all.end(), sets.begin(), sets.end());
  return ParseJobSpec("kind: train\n", all);
}

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/mlperf_" + name + "_" + std::to_string(getpid()) + ".log";
}

// Trains `spec` on one rank writing the MLPerf log to `path`; the abort flag
// is set after `abort_after` steps (0: never).
TrainOutcome TrainWithLog(const JobSpec& spec, const std::string& path, int64_t abort_after = 0) {
  auto comm = comm::MakeLocalCommunicator();
  std::atomic<bool> abort{false};
  TrainEnv env;
  env.seed = 11;
  env.comm = comm.get();
  env.abort = &abort;
  env.mlperf_log_path = path;
  env.on_progress = [&](const TrainProgress& p) {
    if (abort_after > 0 && p.step >= abort_after) abort = true;
  };
  return RunTraining(spec, env);
}

// Reads the log; every line must be an mllog line with mllog's field order.
std::vector<Json> ReadLog(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<Json> out;
  int64_t last_time = 0;
  for (std::string line; std::getline(in, line);) {
    const std::string token = ":::MLLOG ";
    EXPECT_EQ(line.rfind(token, 0), 0u) << line;
    Json j;
    EXPECT_NO_THROW(j = Json::parse(line.substr(token.size()))) << line;
    std::vector<std::string> fields;
    for (auto it = j.begin(); it != j.end(); ++it) fields.push_back(it.key());
    EXPECT_EQ(fields, (std::vector<std::string>{"namespace", "time_ms", "event_type", "key",
                                                "value", "metadata"}))
        << line;
    EXPECT_EQ(j["namespace"], "");
    EXPECT_GE(j["time_ms"].get<int64_t>(), last_time) << line;
    last_time = j["time_ms"].get<int64_t>();
    const auto& md = j["metadata"];
    EXPECT_EQ(md.begin().key(), "file") << line;
    EXPECT_TRUE(md.contains("lineno")) << line;
    EXPECT_EQ(md["file"], "worker/trainer/trainer.cc") << line;
    out.push_back(j);
  }
  return out;
}

std::vector<std::string> Keys(const std::vector<Json>& log) {
  std::vector<std::string> k;
  for (const auto& j : log) k.push_back(j["key"]);
  return k;
}

size_t IndexOf(const std::vector<std::string>& keys, const std::string& key) {
  return size_t(std::find(keys.begin(), keys.end(), key) - keys.begin());
}

// The structure the MLPerf compliance checker and a reader expect; returns the
// run_stop status.
std::string CheckStructure(const std::vector<Json>& log) {
  const std::vector<std::string> keys = Keys(log);
  const std::vector<std::string> before_init_stop = {
      "submission_benchmark", "submission_org", "submission_division", "submission_status",
      "submission_platform", "cache_clear", "init_start", "global_batch_size", "opt_name",
      "label_smoothing", "model_bn_span", "gradient_accumulation_steps", "train_samples",
      "eval_samples", "seed"};
  const size_t init_stop = IndexOf(keys, "init_stop");
  const size_t run_start = IndexOf(keys, "run_start");
  EXPECT_LT(init_stop, keys.size());
  EXPECT_EQ(run_start, init_stop + 1);
  size_t prev = 0;
  for (size_t i = 0; i < before_init_stop.size(); ++i) {
    const size_t at = IndexOf(keys, before_init_stop[i]);
    EXPECT_LT(at, init_stop) << before_init_stop[i];
    if (i > 0) {
      EXPECT_GT(at, prev) << before_init_stop[i] << " out of order";
    }
    prev = at;
  }
  for (const char* once : {"init_start", "init_stop", "run_start", "run_stop", "global_batch_size"}) {
    EXPECT_EQ(std::count(keys.begin(), keys.end(), once), 1) << once;
  }
  EXPECT_EQ(keys.back(), "run_stop");

  // Epochs inside blocks, evaluations outside epochs that they do not split,
  // numbers that match.
  int block_first = -1, epoch = -1, last_epoch = 0;
  bool in_eval = false;
  for (size_t i = run_start + 1; i + 1 < log.size(); ++i) {
    const Json& j = log[i];
    const std::string key = j["key"];
    const Json& md = j["metadata"];
    SCOPED_TRACE(j.dump());
    if (key == "block_start") {
      EXPECT_EQ(j["event_type"], "INTERVAL_START");
      EXPECT_EQ(block_first, -1);
      EXPECT_GT(md["epoch_count"].get<int>(), 0);
      block_first = md["first_epoch_num"];
      EXPECT_EQ(block_first, last_epoch + 1);
    } else if (key == "block_stop") {
      EXPECT_EQ(j["event_type"], "INTERVAL_END");
      EXPECT_EQ(epoch, -1) << "block closed inside an epoch";
      EXPECT_EQ(md["first_epoch_num"].get<int>(), block_first);
      block_first = -1;
    } else if (key == "epoch_start") {
      EXPECT_NE(block_first, -1) << "epoch outside a block";
      EXPECT_EQ(epoch, -1);
      epoch = md["epoch_num"];
      EXPECT_EQ(epoch, last_epoch + 1);
    } else if (key == "epoch_stop") {
      EXPECT_EQ(md["epoch_num"].get<int>(), epoch);
      last_epoch = epoch;
      epoch = -1;
    } else if (key == "eval_start") {
      EXPECT_FALSE(in_eval);
      EXPECT_TRUE(md.contains("epoch_num"));
      in_eval = true;
    } else if (key == "eval_stop") {
      EXPECT_TRUE(in_eval);
      in_eval = false;
    } else if (key == "eval_accuracy" || key == "eval_top5_accuracy") {
      EXPECT_FALSE(in_eval);
      EXPECT_TRUE(md.contains("epoch_num"));
      EXPECT_GE(j["value"].get<double>(), 0.0);
      EXPECT_LE(j["value"].get<double>(), 1.0);
    } else if (key == "eval_loss") {
      EXPECT_FALSE(in_eval);
      EXPECT_TRUE(md.contains("epoch_num"));
      EXPECT_GT(j["value"].get<double>(), 0.0);
    } else {
      ADD_FAILURE() << "unexpected key after run_start: " << key;
    }
  }
  EXPECT_EQ(block_first, -1) << "a block left open";
  EXPECT_EQ(epoch, -1) << "an epoch left open";
  EXPECT_FALSE(in_eval);
  const Json& stop = log.back();
  EXPECT_EQ(stop["event_type"], "INTERVAL_END");
  return stop["metadata"].value("status", std::string("(none)"));
}

std::map<std::string, Json> Values(const std::vector<Json>& log) {
  std::map<std::string, Json> v;
  for (const auto& j : log) v[j["key"]] = j["value"];
  return v;
}

TEST(MlperfLog, FullRunLogsTheMlperfSequence) {
  const std::string path = TempPath("full");
  const TrainOutcome o = TrainWithLog(SmallSpec(), path);
  EXPECT_EQ(o.steps, 12);
  const std::vector<Json> log = ReadLog(path);
  EXPECT_EQ(CheckStructure(log), "aborted") << "no target: MLPerf calls that aborted";

  const std::vector<std::string> keys = Keys(log);
  const std::vector<std::string> expect = {
      "submission_benchmark", "submission_org", "submission_division", "submission_status",
      "submission_platform", "cache_clear", "init_start", "global_batch_size", "opt_name",
      "lars_opt_base_learning_rate", "lars_opt_end_learning_rate",
      "lars_opt_learning_rate_decay_poly_power", "lars_opt_learning_rate_decay_steps",
      "lars_opt_learning_rate_warmup_epochs", "lars_opt_momentum", "lars_opt_weight_decay",
      "lars_epsilon", "opt_learning_rate_decay_schedule", "label_smoothing", "model_bn_span",
      "gradient_accumulation_steps", "train_samples", "eval_samples", "seed", "init_stop",
      "run_start",
      // 3 epochs, evaluation every 2: a block of 2 epochs, then one of 1.
      "block_start", "epoch_start", "epoch_stop", "epoch_start", "epoch_stop", "block_stop",
      "eval_start", "eval_stop", "eval_accuracy", "eval_loss",
      "block_start", "epoch_start", "epoch_stop", "block_stop",
      "eval_start", "eval_stop", "eval_accuracy", "eval_loss", "run_stop"};
  EXPECT_EQ(keys, expect);

  const auto v = Values(log);
  EXPECT_EQ(v.at("submission_benchmark"), "resnet");
  EXPECT_EQ(v.at("submission_division"), "closed");
  EXPECT_EQ(v.at("submission_status"), "onprem");
  EXPECT_EQ(v.at("opt_name"), "lars");
  EXPECT_DOUBLE_EQ(v.at("global_batch_size").get<double>(), 16.0);
  EXPECT_DOUBLE_EQ(v.at("model_bn_span").get<double>(), 16.0);
  EXPECT_DOUBLE_EQ(v.at("lars_opt_base_learning_rate").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(v.at("lars_opt_learning_rate_decay_steps").get<double>(), 8.0);  // 12 - 4 warmup
  EXPECT_DOUBLE_EQ(v.at("train_samples").get<double>(), 64.0);
  EXPECT_DOUBLE_EQ(v.at("eval_samples").get<double>(), 32.0);
  EXPECT_DOUBLE_EQ(v.at("seed").get<double>(), 11.0);
  for (const auto& j : log) {
    if (j["key"] == "seed") {
      EXPECT_EQ(j["metadata"]["exact"], "11");
    }
  }
  EXPECT_DOUBLE_EQ(v.at("label_smoothing").get<double>(), 0.1);

  // Blocks say which epochs they hold; evaluations say how many epochs ran.
  std::vector<std::pair<int, int>> blocks;
  std::vector<double> eval_epochs;
  for (const auto& j : log) {
    if (j["key"] == "block_start") {
      blocks.emplace_back(j["metadata"]["first_epoch_num"], j["metadata"]["epoch_count"]);
    }
    if (j["key"] == "eval_accuracy") eval_epochs.push_back(j["metadata"]["epoch_num"]);
  }
  EXPECT_EQ(blocks, (std::vector<std::pair<int, int>>{{1, 2}, {3, 1}}));
  EXPECT_EQ(eval_epochs, (std::vector<double>{2, 3}));
  std::remove(path.c_str());
}

TEST(MlperfLog, SgdLogsTheSgdKeys) {
  const std::string path = TempPath("sgd");
  TrainWithLog(SmallSpec({"optimizer.name=sgd", "epochs=1", "schedule.base_lr=0.05"}), path);
  const std::vector<Json> log = ReadLog(path);
  CheckStructure(log);
  const auto v = Values(log);
  EXPECT_EQ(v.at("opt_name"), "sgd");
  for (const char* k : {"sgd_opt_base_learning_rate", "sgd_opt_end_learning_rate",
                        "sgd_opt_learning_rate_decay_poly_power",
                        "sgd_opt_learning_rate_decay_steps", "sgd_opt_weight_decay",
                        "sgd_opt_momentum", "opt_learning_rate_warmup_epochs"}) {
    EXPECT_TRUE(v.count(k)) << k;
  }
  EXPECT_FALSE(v.count("lars_opt_base_learning_rate"));
  std::remove(path.c_str());
}

TEST(MlperfLog, MoreThanTenClassesLogTop5BesideTop1AndLossAsTheRunReportsThem) {
  const std::string path = TempPath("top5");
  const TrainOutcome o = TrainWithLog(SmallSpec({"dataset.classes=12", "bn_recalibration_batches=2"}), path);
  const std::vector<Json> log = ReadLog(path);
  EXPECT_EQ(CheckStructure(log), "aborted");
  std::vector<std::string> evals;
  for (const auto& j : log) {
    const std::string k = j["key"];
    if (k == "eval_accuracy" || k == "eval_loss" || k == "eval_top5_accuracy") evals.push_back(k);
  }
  EXPECT_EQ(evals, (std::vector<std::string>{"eval_accuracy", "eval_loss", "eval_top5_accuracy", "eval_accuracy",
                                             "eval_loss", "eval_top5_accuracy"}));
  const auto v = Values(log);  // the last evaluation's
  EXPECT_EQ(v.at("eval_accuracy").get<double>(), o.eval_accuracy);
  EXPECT_EQ(v.at("eval_top5_accuracy").get<double>(), o.eval_top5_accuracy);
  EXPECT_EQ(v.at("eval_loss").get<double>(), o.eval_loss);
  EXPECT_GE(o.eval_top5_accuracy, o.eval_accuracy);
  std::remove(path.c_str());
}

TEST(MlperfLog, ReachingTheTargetIsSuccessEvenMidEpoch) {
  const std::string path = TempPath("target");
  const TrainOutcome o = TrainWithLog(SmallSpec({"eval_every_epochs=0.5", "target_accuracy=0.01"}), path);
  ASSERT_TRUE(o.reached_target);
  const std::vector<Json> log = ReadLog(path);
  EXPECT_EQ(CheckStructure(log), "success");
  // Stopped after 2 of 4 steps: the evaluation ran at half an epoch.
  for (const auto& j : log) {
    if (j["key"] == "eval_accuracy") {
      EXPECT_DOUBLE_EQ(j["metadata"]["epoch_num"].get<double>(), 0.5);
    }
  }
  std::remove(path.c_str());
}

TEST(MlperfLog, AnAbortedRunEndsWithRunStopAborted) {
  const std::string path = TempPath("abort");
  try {
    TrainWithLog(SmallSpec(), path, /*abort_after=*/5);
    FAIL() << "the run was not aborted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAborted) << e.what();
  }
  const std::vector<Json> log = ReadLog(path);
  EXPECT_EQ(CheckStructure(log), "aborted");
  const std::vector<std::string> keys = Keys(log);
  // 5 steps: epoch 1 done, epoch 2 open when the abort came; closed at run_stop.
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "epoch_start"), 2);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "eval_accuracy"), 0);
  std::remove(path.c_str());
}

TEST(MlperfLog, AnUnwritablePathIsAClearError) {
  const std::string path = "/nonexistent-dtrain-dir/sub/mlperf.log";
  try {
    TrainWithLog(SmallSpec(), path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(MlperfLogger{path}, Error);
}

// The exact bytes mllog prints: field order, separators, values through float().
TEST(MlperfLog, LinesAreExactlyWhatMllogPrints) {
  const std::string path = TempPath("format");
  int line_a = 0, line_b = 0;
  {
    MlperfLogger log(path);
    line_a = __LINE__ + 1;
    log.Event("global_batch_size", int64_t{256});
    line_b = __LINE__ + 1;
    log.End("epoch_stop", nullptr, {{"epoch_num", int64_t{3}}, {"note", std::string("a\"é")}});
    log.Event("lars_opt_weight_decay", 5e-5);
    log.Event("cache_clear", true);
  }
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(std::regex_replace(
      l, std::regex("\"time_ms\": [0-9]+"), "\"time_ms\": T"));
  ASSERT_EQ(lines.size(), 4u);
  const std::string file = "\"file\": \"tests/unit/trainer_mlperf_test.cc\"";
  EXPECT_EQ(lines[0], ":::MLLOG {\"namespace\": \"\", \"time_ms\": T, \"event_type\": "
                      "\"POINT_IN_TIME\", \"key\": \"global_batch_size\", \"value\": 256.0, "
                      "\"metadata\": {" + file + ", \"lineno\": " + std::to_string(line_a) + "}}");
  EXPECT_EQ(lines[1], ":::MLLOG {\"namespace\": \"\", \"time_ms\": T, \"event_type\": "
                      "\"INTERVAL_END\", \"key\": \"epoch_stop\", \"value\": null, "
                      "\"metadata\": {" + file + ", \"lineno\": " + std::to_string(line_b) +
                      ", \"epoch_num\": 3, \"note\": \"a\\\"\\u00e9\"}}");
  EXPECT_NE(lines[2].find("\"value\": 5e-05,"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("\"value\": 1.0,"), std::string::npos) << lines[3];
  std::remove(path.c_str());
}

}  // namespace
}  // namespace dtrain::trainer
