// TensorBoard event files (worker/trainer/tensorboard_log.h): a written file
// reads back record by record with a reader of our own (TFRecord lengths and
// both masked CRCs checked against an independent bit-at-a-time CRC32C; each
// Event parsed with the generated proto): the file-version event first, then
// every scalar with its tag, step, value and wall time. A directory that
// cannot be created fails naming it; a second log in the same second gets its
// own file; a one-rank training run writes the train and eval series at the
// steps the spec asks for.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "common/error.h"
#include "common/job_spec.h"
#include "proto/tensorboard_event.pb.h"
#include "worker/comm/local_communicator.h"
#include "worker/trainer/tensorboard_log.h"
#include "worker/trainer/trainer.h"

namespace dtrain::trainer {
namespace {

namespace fs = std::filesystem;

std::string TempDir() {
  char tmpl[] = "/tmp/dtrain-tb-XXXXXX";
  return mkdtemp(tmpl);
}

// CRC32C one bit at a time (reflected polynomial 0x82F63B78), independent of
// common/crc32c's slice-by-8 tables.
uint32_t BitwiseCrc32c(const uint8_t* p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t Masked(const uint8_t* p, size_t n) {
  const uint32_t crc = BitwiseCrc32c(p, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t Le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

// Every record of a TFRecord file, each framing field checked; fails the test
// (and returns what it read so far) at the first bad one.
std::vector<tensorboard::Event> ReadEvents(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto* b = reinterpret_cast<const uint8_t*>(bytes.data());
  std::vector<tensorboard::Event> events;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) {
      ADD_FAILURE() << path << ": " << bytes.size() - at << " bytes left at offset " << at << ", short of a header";
      break;
    }
    const uint64_t len = Le(b + at, 8);
    EXPECT_EQ(Le(b + at + 8, 4), Masked(b + at, 8)) << "length CRC of the record at offset " << at;
    if (bytes.size() - at - 12 < len + 4) {
      ADD_FAILURE() << path << ": record at offset " << at << " of length " << len << " is truncated";
      break;
    }
    EXPECT_EQ(Le(b + at + 12 + len, 4), Masked(b + at + 12, len)) << "data CRC of the record at offset " << at;
    tensorboard::Event e;
    EXPECT_TRUE(e.ParseFromArray(b + at + 12, int(len))) << "record at offset " << at;
    events.push_back(e);
    at += 12 + len + 4;
  }
  return events;
}

std::vector<std::string> EventFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TensorboardLog, FileReadsBackRecordByRecordWithCheckedCrcs) {
  const std::string dir = TempDir() + "/run/job-1";  // parents are created
  std::string path;
  {
    TensorboardLog log(dir, "testhost");
    path = log.path();
    log.Scalar("train/loss", 4, 2.25, 1700000000.5);
    log.Scalar("eval/accuracy", 8, 0.8125, 1700000001.25);
    log.Scalar("time/comm_seconds", 8, 0.0, 1700000002.0);  // 0.0 is written, not dropped
    log.Scalar("train/learning_rate", 12, 0.1, 1700000003.0);
  }
  EXPECT_EQ(fs::path(path).parent_path(), fs::path(dir));
  const std::string name = fs::path(path).filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_TRUE(name.ends_with(".testhost")) << name;

  const std::vector<tensorboard::Event> ev = ReadEvents(path);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0].file_version(), "brain.Event:2");
  EXPECT_GT(ev[0].wall_time(), 1.5e9);  // now, in unix seconds
  struct Want {
    const char* tag;
    int64_t step;
    float value;
    double wall_time;
  };
  const Want want[] = {{"train/loss", 4, 2.25f, 1700000000.5},
                       {"eval/accuracy", 8, 0.8125f, 1700000001.25},
                       {"time/comm_seconds", 8, 0.0f, 1700000002.0},
                       {"train/learning_rate", 12, float(0.1), 1700000003.0}};
  for (size_t i = 0; i < 4; ++i) {
    const tensorboard::Event& e = ev[i + 1];
    ASSERT_TRUE(e.has_summary()) << i;
    ASSERT_EQ(e.summary().value_size(), 1);
    const tensorboard::Summary::Value& v = e.summary().value(0);
    EXPECT_EQ(v.tag(), want[i].tag);
    EXPECT_EQ(e.step(), want[i].step);
    EXPECT_DOUBLE_EQ(e.wall_time(), want[i].wall_time);
    ASSERT_TRUE(v.has_simple_value()) << v.tag();
    EXPECT_EQ(v.simple_value(), want[i].value) << v.tag();
  }
}

TEST(TensorboardLog, EveryPointIsOnDiskBeforeTheLogCloses) {
  const std::string dir = TempDir();
  TensorboardLog log(dir, "h");
  log.Scalar("train/loss", 1, 1.5, 1.0);
  const std::vector<tensorboard::Event> ev = ReadEvents(log.path());  // still open
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].summary().value(0).simple_value(), 1.5f);
}

TEST(TensorboardLog, ASecondLogInTheSameDirectoryGetsItsOwnFile) {
  const std::string dir = TempDir();
  TensorboardLog a(dir, "h");
  TensorboardLog b(dir, "h");  // most likely the same second: a suffix, never an overwrite
  a.Scalar("x", 1, 1, 1);
  b.Scalar("x", 2, 2, 2);
  EXPECT_NE(a.path(), b.path());
  EXPECT_EQ(ReadEvents(a.path())[1].step(), 1);
  EXPECT_EQ(ReadEvents(b.path())[1].step(), 2);
}

TEST(TensorboardLog, MaskMatchesTheTfRecordDefinition) {
  // TensorBoard's own masked_crc32c(b"123456789") (tensorboard 2.20,
  // tensorboard/compat/tensorflow_stub/pywrap_tensorflow.py) is 0xC78AB0E5;
  // its crc32c is 0xE3069283.
  EXPECT_EQ(BitwiseCrc32c(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xE3069283u);
  EXPECT_EQ(TensorboardLog::MaskCrc(0xE3069283u), 0xC78AB0E5u);
}

TEST(TensorboardLog, ADirectoryThatCannotBeCreatedIsNamedInTheError) {
  const std::string base = TempDir();
  std::ofstream(base + "/file") << "not a directory";
  const std::string dir = base + "/file/tb";
  try {
    TensorboardLog log(dir, "h");
    FAIL() << "a log under a regular file was created";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
  }
}

TEST(TensorboardLog, TrainingWritesEverySeriesAtTheStepsTheSpecAsksFor) {
  const std::string dir = TempDir() + "/job";
  // 256 / 16 = 16 steps per epoch, 2 epochs = 32 steps; evaluation every
  // half epoch (steps 8, 16, 24, 32); points every 5 steps and at the last.
  const JobSpec spec = ParseJobSpec(
      "kind: train\n", {"model=resnet20", "dataset.name=synthetic", "dataset.image_size=12",
                        "dataset.channels=1", "dataset.classes=4", "dataset.train_size=256",
                        "dataset.test_size=32", "batch_per_worker=16", "epochs=2", "schedule.base_lr=0.5",
                        "schedule.warmup_epochs=0.5", "optimizer.name=lars", "allreduce.dtype=fp32",
                        "eval_every_epochs=0.5", "tensorboard.every_steps=5"});
  auto comm = comm::MakeLocalCommunicator();
  std::map<int64_t, double> loss_at, eval_at;
  TrainEnv env;
  env.seed = 3;
  env.comm = comm.get();
  env.tensorboard_dir = dir;
  env.on_progress = [&](const TrainProgress& p) {
    loss_at[p.step] = p.loss;
    eval_at[p.step] = p.eval_accuracy;
  };
  RunTraining(spec, env);

  const std::vector<std::string> files = EventFiles(dir);
  ASSERT_EQ(files.size(), 1u);
  std::map<std::string, std::vector<std::pair<int64_t, float>>> series;
  for (const tensorboard::Event& e : ReadEvents(files[0])) {
    for (const auto& v : e.summary().value()) series[v.tag()].push_back({e.step(), v.simple_value()});
  }
  const std::set<std::string> train_tags = {"train/loss",         "train/learning_rate",   "train/images_per_second",
                                            "time/data_seconds",  "time/compute_seconds", "time/comm_seconds",
                                            "time/update_seconds"};
  const std::vector<int64_t> train_steps = {5, 10, 15, 20, 25, 30, 32};
  const std::vector<int64_t> eval_steps = {8, 16, 24, 32};
  std::set<std::string> tags;
  for (const auto& [tag, points] : series) {
    tags.insert(tag);
    std::vector<int64_t> steps;
    for (const auto& pt : points) steps.push_back(pt.first);
    EXPECT_EQ(steps, train_tags.count(tag) ? train_steps : eval_steps) << tag;
  }
  std::set<std::string> want = train_tags;
  want.insert({"eval/accuracy", "eval/loss"});  // 4 classes: no top-5
  EXPECT_EQ(tags, want);
  for (const auto& [step, v] : series["train/loss"]) EXPECT_EQ(v, float(loss_at[step])) << step;
  for (const auto& [step, v] : series["eval/accuracy"]) EXPECT_EQ(v, float(eval_at[step])) << step;
}

}  // namespace
}  // namespace dtrain::trainer
