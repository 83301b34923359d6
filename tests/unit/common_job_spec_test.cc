// The job spec is validated in one place: every bad field is rejected with a
// message naming the field and what is allowed, and a valid spec round-trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "common/job_spec.h"

namespace dtrain {
namespace {

const char* kGood = R"(
name: fmnist-resnet20
kind: train
workers: 2
seed: 42
model: resnet20
dataset: {name: fashion-mnist, path: /usr/share/datasets/fashion-mnist}
batch_per_worker: 128
epochs: 10
optimizer: {name: lars, momentum: 0.9, weight_decay: 5.0e-5, lars_eta: 0.001}
schedule: {base_lr: 2.0, warmup_epochs: 2, decay: poly, poly_power: 2.0}
label_smoothing: 0.1
precision: fp32
allreduce: {backend: auto, dtype: fp16, bucket_mb: 4}
eval_every_epochs: 1
target_accuracy: 0.90
bench: {min_bytes: 1024, max_bytes: 268435456}
)";

std::string ErrorOf(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    ParseJobSpec(yaml, sets);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(JobSpec, DesignExampleParsesWithItsValues) {
  JobSpec s = ParseJobSpec(kGood);
  EXPECT_EQ(s.name, "fmnist-resnet20");
  EXPECT_EQ(s.workers, 2);
  ASSERT_TRUE(s.seed.has_value());
  EXPECT_EQ(*s.seed, 42u);
  EXPECT_EQ(s.optimizer.name, "lars");
  EXPECT_DOUBLE_EQ(s.optimizer.weight_decay, 5e-5);
  EXPECT_DOUBLE_EQ(s.schedule.base_lr, 2.0);
  EXPECT_EQ(s.allreduce.dtype, "fp16");
  EXPECT_DOUBLE_EQ(s.target_accuracy, 0.9);
  EXPECT_EQ(s.bench.max_bytes, 268435456);
  EXPECT_EQ(s.tensorboard.every_steps, 10);  // the default: TensorBoard scalars every 10 steps
}

TEST(JobSpec, OmittedSeedStaysUnsetSoTheCoordinatorDrawsOne) {
  JobSpec s = ParseJobSpec("kind: train\nmodel: resnet20\n");
  EXPECT_FALSE(s.seed.has_value());
}

TEST(JobSpec, ResolvedYamlRoundTrips) {
  JobSpec s = ParseJobSpec(kGood, {"schedule.decay=step", "schedule.step_epochs=[3, 6]",
                                   "optimizer.nesterov=true", "allreduce.bucket_mb=0.5",
                                   "bn_recalibration_batches=20", "init_from=/w/a.safetensors",
                                   "init_from_skip=[fc, layer4.2]", "tensorboard.every_steps=25",
                                   "allreduce.algorithm=hierarchical"});
  JobSpec t = ParseJobSpec(JobSpecToYaml(s));
  EXPECT_EQ(t.tensorboard.every_steps, 25);
  EXPECT_EQ(t.bn_recalibration_batches, 20);
  EXPECT_EQ(t.init_from, "/w/a.safetensors");
  EXPECT_EQ(t.init_from_skip, (std::vector<std::string>{"fc", "layer4.2"}));
  EXPECT_EQ(JobSpecToYaml(s), JobSpecToYaml(t));
  EXPECT_EQ(t.schedule.step_epochs, (std::vector<double>{3, 6}));
  EXPECT_TRUE(t.optimizer.nesterov);
  EXPECT_DOUBLE_EQ(t.allreduce.bucket_mb, 0.5);
  EXPECT_EQ(t.allreduce.algorithm, "hierarchical");
  EXPECT_EQ(*t.seed, 42u);
}

TEST(JobSpec, HierarchicalWithNcclIsRejectedSayingNcclPicksItsOwnAlgorithm) {
  const std::string msg = ErrorOf(kGood, {"allreduce.backend=nccl", "allreduce.algorithm=hierarchical"});
  EXPECT_NE(msg.find("`allreduce.algorithm`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NCCL chooses ring, tree or NVLS itself"), std::string::npos) << msg;
  EXPECT_EQ(ParseJobSpec(kGood, {"allreduce.backend=ucx", "allreduce.algorithm=hierarchical"})
                .allreduce.algorithm,
            "hierarchical");
}

TEST(JobSpec, SetOverridesApplyInOrderAndCreateMaps) {
  JobSpec s = ParseJobSpec("kind: train\nmodel: resnet20\n", {"workers=3", "workers=4", "bench.min_bytes=4096"});
  EXPECT_EQ(s.workers, 4);
  EXPECT_EQ(s.bench.min_bytes, 4096);
}

struct BadCase {
  const char* set;
  const char* field;
  const char* allowed;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << "--set " << c.set; }

class JobSpecBadField : public ::testing::TestWithParam<BadCase> {};

TEST_P(JobSpecBadField, IsRejectedNamingTheFieldAndWhatIsAllowed) {
  const BadCase c = GetParam();
  const std::string msg = ErrorOf(kGood, {c.set});
  ASSERT_FALSE(msg.empty()) << c.set << " was accepted";
  EXPECT_NE(msg.find(std::string("`") + c.field + "`"), std::string::npos) << msg;
  EXPECT_NE(msg.find(c.allowed), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    EveryField, JobSpecBadField,
    ::testing::Values(
        BadCase{"name=has space", "name", "A-Z"}, BadCase{"name=", "name", "has no value"}, BadCase{"name=\"\"", "name", "A-Z"},
        BadCase{"kind=inference", "kind", "train, allreduce-bench"},
        BadCase{"workers=0", "workers", "1 .. 4096"}, BadCase{"workers=two", "workers", "an integer"},
        BadCase{"workers=2.5", "workers", "an integer"},
        BadCase{"seed=-1", "seed", "unsigned"}, BadCase{"seed=abc", "seed", "unsigned"},
        BadCase{"model=vgg16", "model", "resnet50"},
        BadCase{"dataset.name=cifar", "dataset.name", "fashion-mnist, synthetic"},
        BadCase{"dataset.path=", "dataset.path", "has no value"},
        BadCase{"dataset.path=\"\"", "dataset.path", "folder"},
        BadCase{"dataset.train_limit=-5", "dataset.train_limit", "0 .."},
        BadCase{"dataset.test_limit=-1", "dataset.test_limit", "0 .."},
        BadCase{"dataset.image_size=4", "dataset.image_size", "8 .. 512"},
        BadCase{"dataset.channels=5", "dataset.channels", "1 .. 4"},
        BadCase{"dataset.classes=1", "dataset.classes", "2 .."},
        BadCase{"dataset.train_size=0", "dataset.train_size", "1 .."},
        BadCase{"dataset.test_size=-1", "dataset.test_size", "0 .."},
        BadCase{"dataset.colour=red", "dataset.colour", "unknown field"},
        BadCase{"dataset=5", "dataset", "not a map"},
        BadCase{"batch_per_worker=0", "batch_per_worker", "1 .. 65536"},
        BadCase{"epochs=0", "epochs", "1 .. 10000"},
        BadCase{"max_steps=-1", "max_steps", "0 .."},
        BadCase{"optimizer.name=adam", "optimizer.name", "sgd, lars"},
        BadCase{"optimizer.momentum=1.5", "optimizer.momentum", "0 .."},
        BadCase{"optimizer.weight_decay=-1", "optimizer.weight_decay", "0 .. 0.1"},
        BadCase{"optimizer.lars_eta=0", "optimizer.lars_eta", ".. 1"},
        BadCase{"optimizer.lars_epsilon=-1", "optimizer.lars_epsilon", "0 .. 1"},
        BadCase{"optimizer.nesterov=maybe", "optimizer.nesterov", "true or false"},
        BadCase{"schedule.base_lr=0", "schedule.base_lr", ".. 1000"},
        BadCase{"schedule.warmup_epochs=11", "schedule.warmup_epochs", "(epochs)"},
        BadCase{"schedule.decay=exp", "schedule.decay", "poly, cosine, step, none"},
        BadCase{"schedule.poly_power=0", "schedule.poly_power", ".. 100"},
        BadCase{"schedule.end_lr=3", "schedule.end_lr", "(base_lr)"},
        BadCase{"schedule.step_epochs=[5, 2]", "schedule.step_epochs", "increasing"},
        BadCase{"schedule.step_gamma=2", "schedule.step_gamma", ".. 1"},
        BadCase{"label_smoothing=1", "label_smoothing", "0 .. 0.999"},
        BadCase{"precision=bf16", "precision", "fp32, fp16"},
        BadCase{"allreduce.backend=mpi", "allreduce.backend", "auto, ucx, nccl, local"},
        BadCase{"allreduce.backend=local", "allreduce.backend", "workers: 1"},
        BadCase{"allreduce.dtype=int8", "allreduce.dtype", "fp16, fp32"},
        BadCase{"allreduce.algorithm=tree", "allreduce.algorithm", "auto, ring, hierarchical"},
        BadCase{"allreduce.bucket_mb=0", "allreduce.bucket_mb", "MiB"},
        BadCase{"allreduce.timeout_seconds=0", "allreduce.timeout_seconds", " s)"},
        BadCase{"eval_every_epochs=0", "eval_every_epochs", ".. 10000"},
        BadCase{"target_accuracy=1.5", "target_accuracy", "0 .. 1"},
        BadCase{"bn_momentum=1", "bn_momentum", "0 .."},
        BadCase{"bn_epsilon=0", "bn_epsilon", ".. 1"},
        BadCase{"init_from=weights.safetensors", "init_from", "absolute path"},
        BadCase{"init_from_skip=[fc]", "init_from_skip", "only meaningful with init_from"},
        BadCase{"bn_recalibration_batches=-1", "bn_recalibration_batches", "0 .. 100000"},
        BadCase{"bn_recalibration_batches=2.5", "bn_recalibration_batches", "an integer"},
        BadCase{"zero_init_residual=3", "zero_init_residual", "true or false"},
        BadCase{"batch_norm=sometimes", "batch_norm", "true or false"},
        BadCase{"augment.crop_padding=100", "augment.crop_padding", "0 .. 64"},
        BadCase{"augment.flip=sideways", "augment.flip", "true or false"},
        BadCase{"device=tpu", "device", "auto, cpu, cuda"},
        BadCase{"bench.min_bytes=2", "bench.min_bytes", "4 .."},
        BadCase{"bench.max_bytes=100", "bench.max_bytes", "bench.min_bytes"},
        BadCase{"bench.iterations=0", "bench.iterations", "1 .."},
        BadCase{"bench.warmup=-1", "bench.warmup", "0 .."},
        BadCase{"tensorboard.every_steps=-1", "tensorboard.every_steps", "0 .. 1000000000"},
        BadCase{"tensorboard.every_steps=often", "tensorboard.every_steps", "an integer"},
        BadCase{"tensorboard.dir=/tmp", "tensorboard.dir", "unknown field"},
        BadCase{"learning_rate=0.1", "learning_rate", "unknown field"},
        BadCase{"workers=0x2", "workers", "an integer"}, BadCase{"workers=1_0", "workers", "an integer"},
        BadCase{"dataset.name=imagenet", "dataset.name", "imagenet-folder, shards"},
        BadCase{"augment.crop=random-resized", "augment.crop", "needs a record data set"},
        BadCase{"augment.crop=center", "augment.crop", "pad, random-resized"},
        BadCase{"dataset.color=sepia", "dataset.color", "rgb, grey"},
        BadCase{"dataset.mean=[0.5]", "dataset.mean", "imagenet-folder and shards only"},
        BadCase{"augment.scale_min=0", "augment.scale_min", "0.0001 .. 1"},
        BadCase{"augment.ratio_max=0.5", "augment.ratio_max", "ratio_min"}));

// Every spec the project ships (deploy/jobs/*.yaml) is valid as it stands.
TEST(JobSpec, EveryShippedSpecParses) {
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(std::string(DTRAIN_SOURCE_DIR) + "/deploy/jobs")) {
    if (f.path().extension() != ".yaml") continue;
    std::ifstream in(f.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NO_THROW(ParseJobSpec(text)) << f.path();
    ++n;
  }
  EXPECT_GE(n, 5);
  std::ifstream in(std::string(DTRAIN_SOURCE_DIR) + "/deploy/jobs/imagenet-resnet50.yaml");
  const JobSpec s = ParseJobSpec(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  EXPECT_EQ(s.workers, 2048);
  EXPECT_EQ(s.batch_per_worker, 42);
  EXPECT_EQ(s.dataset.name, "shards");
  EXPECT_EQ(s.augment.crop, "random-resized");
}

// A record data set defaults to ImageNet's geometry (224 crops, random-resized)
// unless the spec says otherwise, and the resolved spec round-trips.
TEST(JobSpec, RecordDataSetsDefaultToImagenetGeometry) {
  JobSpec s = ParseJobSpec(kGood, {"dataset.name=imagenet-folder", "dataset.path=/data/imagenet"});
  EXPECT_EQ(s.dataset.image_size, 224);
  EXPECT_EQ(s.augment.crop, "random-resized");
  EXPECT_EQ(s.augment.eval_resize, 256);
  EXPECT_EQ(JobSpecToYaml(ParseJobSpec(JobSpecToYaml(s))), JobSpecToYaml(s));
  JobSpec g = ParseJobSpec(kGood, {"dataset.name=shards", "dataset.path=/d", "dataset.image_size=28",
                                   "dataset.color=grey", "dataset.mean=[0.286]", "dataset.std=[0.353]",
                                   "augment.crop=pad"});
  EXPECT_EQ(g.dataset.image_size, 28);
  EXPECT_EQ(g.augment.crop, "pad");
  EXPECT_EQ(g.dataset.mean, std::vector<double>{0.286});
  EXPECT_EQ(JobSpecToYaml(ParseJobSpec(JobSpecToYaml(g))), JobSpecToYaml(g));
  // Three channel values for a grey data set: refused, naming the count.
  const std::string msg = ErrorOf(kGood, {"dataset.name=shards", "dataset.color=grey", "dataset.mean=[0.4, 0.4, 0.4]"});
  EXPECT_NE(msg.find("3 values for 1 channels"), std::string::npos) << msg;
}

TEST(JobSpec, AllBadFieldsAreReportedAtOnce) {
  const std::string msg = ErrorOf(kGood, {"workers=0", "precision=int4"});
  EXPECT_NE(msg.find("`workers`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("`precision`"), std::string::npos) << msg;
}

TEST(JobSpec, TypeRangeAndNameErrorsComeTogether) {
  const std::string msg = ErrorOf(kGood, {"workers=abc", "epochs=0", "model=vgg"});
  EXPECT_NE(msg.find("`workers`: 'abc' is not an integer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("`epochs`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("`model`"), std::string::npos) << msg;
}

TEST(JobSpec, ASpecWithoutKindOrModelIsRefusedNotRunWithDefaults) {
  for (const char* text : {"# only a comment\n", "---\n", "{}\n", "name: x\n"}) {
    const std::string msg = ErrorOf(text);
    EXPECT_NE(msg.find("`kind`: is missing"), std::string::npos) << text << ": " << msg;
  }
  EXPECT_NE(ErrorOf("kind: train\n").find("`model`: is missing"), std::string::npos);
  EXPECT_NO_THROW(ParseJobSpec("kind: allreduce-bench\n"));  // no model needed
}

TEST(JobSpec, DuplicateKeysAreAnErrorNotFirstWins) {
  const std::string msg = ErrorOf("kind: train\nmodel: resnet20\nworkers: 2\nworkers: 3\n"
                                  "optimizer: {name: sgd, name: lars}\n");
  EXPECT_NE(msg.find("`workers`: appears more than once"), std::string::npos) << msg;
  EXPECT_NE(msg.find("`optimizer.name`: appears more than once"), std::string::npos) << msg;
}

TEST(JobSpec, RangesNeverNameAnEmptyInterval) {
  const std::string msg = ErrorOf(kGood, {"workers=-1", "min_workers=2"});
  EXPECT_NE(msg.find("`workers`"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(".. -1"), std::string::npos) << msg;
}

TEST(JobSpec, ShortRunsSayTheWarmupDefaultAndHowToChangeIt) {
  const std::string msg = ErrorOf("kind: train\nmodel: resnet20\n", {"epochs=1"});
  EXPECT_NE(msg.find("2 is the default"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--set schedule.warmup_epochs="), std::string::npos) << msg;
}

TEST(JobSpec, SyntaxErrorsNameTheLine) {
  const std::string msg = ErrorOf("name: a\nworkers: [1, 2\n");
  EXPECT_NE(msg.find("line"), std::string::npos) << msg;
}

TEST(JobSpec, TopLevelMustBeAMap) {
  EXPECT_NE(ErrorOf("- 1\n- 2\n").find("top level"), std::string::npos);
}

TEST(JobSpec, MalformedSetIsRejected) {
  EXPECT_NE(ErrorOf(kGood, {"workers"}).find("key=value"), std::string::npos);
  EXPECT_NE(ErrorOf(kGood, {"workers.count=3"}).find("not a map"), std::string::npos);
}

}  // namespace
}  // namespace dtrain
