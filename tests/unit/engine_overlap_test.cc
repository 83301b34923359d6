// Gradient buckets and their overlap with backward: the plan covers every
// tensor once, never mixes the fp16 and fp32 groups, and numbers buckets in
// the order backward completes them; driven by the REAL backward order of the
// CPU model, the overlap scheduler launches each bucket exactly once, right
// after its last tensor is reported, in plan order, and waits once at the end
// (a fake launcher records the calls the CUDA engine makes to NCCL).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/engine/bucket_plan.h"
#include "worker/engine/device_plan.h"
#include "worker/engine/overlap.h"
#include "worker/model/model.h"

namespace dtrain::engine {
namespace {

// The CUDA engine's bucket tensors of a model: device groups and offsets.
std::vector<BucketTensor> DeviceBucketTensors(const model::ResnetArch& a) {
  const DevicePlan p = PlanDeviceTensors(a);
  std::vector<BucketTensor> bt;
  for (const auto& d : p.tensors) bt.push_back({d.offset, d.size, d.group});
  return bt;
}

TEST(BucketPlan, OneGroupKeepsTheReverseLayerOrder) {
  const std::vector<BucketTensor> t = {{0, 100, 0}, {100, 50, 0}, {150, 300, 0}, {450, 10, 0}, {460, 1000, 0}};
  const BucketPlan p = PlanBuckets(t, 300 * 4 / 1048576.0, {4});
  ASSERT_EQ(p.buckets.size(), 3u);
  EXPECT_EQ(p.buckets[0].tensors, (std::vector<int>{4}));
  EXPECT_EQ(p.buckets[1].tensors, (std::vector<int>{3, 2}));
  EXPECT_EQ(p.buckets[2].tensors, (std::vector<int>{1, 0}));
  EXPECT_EQ(p.buckets[1].offset, 150u);
  EXPECT_EQ(p.buckets[1].count, 310u);
}

TEST(BucketPlan, ResNet50GroupsNeverMixAndCoverEveryTensorOnce) {
  const model::ResnetArch a = model::BuildResnetArch("resnet50", 3, 1000, 224);
  const std::vector<BucketTensor> bt = DeviceBucketTensors(a);
  const BucketPlan p = PlanBuckets(bt, 4.0, {2, 4});
  std::set<int> seen;
  int prev_low = int(bt.size());
  for (size_t b = 0; b < p.buckets.size(); ++b) {
    const Bucket& k = p.buckets[b];
    for (int t : k.tensors) {
      EXPECT_EQ(bt[t].group, k.group) << "bucket " << b << " mixes groups";
      EXPECT_TRUE(seen.insert(t).second) << "tensor " << t << " in two buckets";
      EXPECT_GE(bt[t].offset, k.offset);
      EXPECT_LE(bt[t].offset + bt[t].size, k.offset + k.count);
    }
    EXPECT_LT(k.tensors.back(), prev_low) << "buckets must be in backward completion order";
    prev_low = k.tensors.back();
  }
  EXPECT_EQ(seen.size(), bt.size());
  // 48.7 MiB of fp16 weight gradients in >= 4 MiB buckets; the fp32 group is
  // 0.4 MiB: one bucket.
  int half = 0, flt = 0;
  for (const Bucket& k : p.buckets) (k.group == kHalfGrads ? half : flt) += 1;
  EXPECT_GE(half, 8);
  EXPECT_LE(half, 13);
  EXPECT_EQ(flt, 1);
}

TEST(BucketPlan, BadInputIsRefused) {
  EXPECT_THROW(PlanBuckets({}, 4, {4}), Error);
  EXPECT_THROW(PlanBuckets({{0, 10, 0}}, 0, {4}), Error);
  EXPECT_THROW(PlanBuckets({{0, 10, 1}}, 4, {4}), Error);
  EXPECT_THROW(PlanBuckets({{0, 10, 0}, {5, 10, 0}}, 4, {4}), Error);  // overlap
}

// Records what the CUDA engine's NCCL launcher would do, in order.
class RecordingLauncher final : public BucketLauncher {
 public:
  void Launch(int b) override {
    calls.push_back("event+allreduce " + std::to_string(b) + " after " + std::to_string(reported));
  }
  double WaitAll() override {
    calls.push_back("wait");
    return 0.25;
  }
  std::vector<std::string> calls;
  int reported = 0;
};

TEST(OverlapScheduler, RealBackwardOrderLaunchesEachBucketOnceRightAfterItsLastTensor) {
  model::ModelOptions o;
  o.in_channels = 1;
  o.num_classes = 10;
  o.image_size = 12;
  auto m = model::BuildModel<float>("resnet20", o, 5);
  const std::vector<BucketTensor> bt = DeviceBucketTensors(m->arch());
  RecordingLauncher rec;
  OverlapScheduler sched(PlanBuckets(bt, 0.02, {2, 4}), rec);
  const BucketPlan& plan = sched.plan();
  ASSERT_GT(plan.buckets.size(), 3u);

  std::vector<float> x(2 * 12 * 12, 0.5f);
  std::vector<int32_t> y = {1, 7};
  for (int step = 0; step < 2; ++step) {
    rec.calls.clear();
    rec.reported = 0;
    std::vector<int> pending(plan.buckets.size());
    for (size_t b = 0; b < plan.buckets.size(); ++b) pending[b] = int(plan.buckets[b].tensors.size());
    std::vector<std::string> expected;
    sched.BeginStep();
    m->Forward(x.data(), y.data(), 2, true, 0.1);
    m->Backward([&](int t) {
      ++rec.reported;
      const int b = plan.bucket_of[t];
      if (--pending[b] == 0) expected.push_back("event+allreduce " + std::to_string(b) + " after " + std::to_string(rec.reported));
      sched.OnTensorReady(t);
    });
    EXPECT_EQ(sched.EndStep(), 0.25);
    expected.push_back("wait");
    EXPECT_EQ(rec.calls, expected);
    // The real backward completes buckets exactly in plan order.
    for (size_t b = 0; b + 1 < expected.size(); ++b)
      EXPECT_EQ(expected[b].rfind("event+allreduce " + std::to_string(b) + " ", 0), 0u) << expected[b];
  }
}

TEST(OverlapScheduler, AMissingGradientFailsTheStepNamingTheBuckets) {
  RecordingLauncher rec;
  OverlapScheduler sched(PlanBuckets({{0, 10, 0}, {16, 10, 1}}, 4, {2, 4}), rec);
  sched.BeginStep();
  sched.OnTensorReady(1);
  try {
    sched.EndStep();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only 1 of 2 buckets"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sched.OnTensorReady(1), Error);  // reported twice
}

}  // namespace
}  // namespace dtrain::engine
