// LrSchedule: warmup, poly, cosine, step and none at known steps.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "common/error.h"
#include "worker/optim/lr_schedule.h"

namespace dtrain::optim {
namespace {

ScheduleSpec Spec(const std::string& decay, double warmup_epochs = 2.0) {
  ScheduleSpec s;
  s.base_lr = 2.0;
  s.warmup_epochs = warmup_epochs;
  s.decay = decay;
  s.poly_power = 2.0;
  s.end_lr = 0.0;
  return s;
}

// 10 steps per epoch, 10 epochs: 20 warmup steps, 100 steps in all.
constexpr int64_t kSpe = 10, kTotal = 100, kWarmup = 20;

TEST(LrScheduleTest, LinearWarmup) {
  LrSchedule s(Spec("poly"));
  EXPECT_DOUBLE_EQ(s.lr(0, kSpe, kTotal), 2.0 / 20);  // starts near 0
  EXPECT_DOUBLE_EQ(s.lr(9, kSpe, kTotal), 1.0);       // halfway
  EXPECT_DOUBLE_EQ(s.lr(19, kSpe, kTotal), 2.0);      // base at the last warmup step
  for (int64_t step = 1; step < kWarmup; ++step) EXPECT_GT(s.lr(step, kSpe, kTotal), s.lr(step - 1, kSpe, kTotal));
  // Fractional warmup: 0.5 epochs of 10 steps = 5 steps.
  LrSchedule half(Spec("none", 0.5));
  EXPECT_DOUBLE_EQ(half.lr(0, kSpe, kTotal), 0.4);
  EXPECT_DOUBLE_EQ(half.lr(4, kSpe, kTotal), 2.0);
  // No warmup: base from step 0.
  EXPECT_DOUBLE_EQ(LrSchedule(Spec("none", 0.0)).lr(0, kSpe, kTotal), 2.0);
}

TEST(LrScheduleTest, PolyDecay) {
  ScheduleSpec spec = Spec("poly");
  spec.poly_power = 2.2;
  spec.end_lr = 0.0325;
  LrSchedule s(spec);
  // Midpoint of the decay: 40 of its 80 steps done.
  const int64_t mid = kWarmup + 40 - 1;
  EXPECT_NEAR(s.lr(mid, kSpe, kTotal), 0.0325 + (2.0 - 0.0325) * std::pow(0.5, 2.2), 1e-12);
  EXPECT_NEAR(s.lr(kTotal - 1, kSpe, kTotal), 0.0325, 1e-12);  // end_lr at the last step
  EXPECT_NEAR(s.lr(kTotal + 50, kSpe, kTotal), 0.0325, 1e-12);  // and after it
  for (int64_t step = kWarmup; step < kTotal; ++step)
    EXPECT_LT(s.lr(step, kSpe, kTotal), s.lr(step - 1, kSpe, kTotal)) << step;
}

TEST(LrScheduleTest, CosineDecay) {
  ScheduleSpec spec = Spec("cosine");
  spec.end_lr = 0.1;
  LrSchedule s(spec);
  EXPECT_NEAR(s.lr(kWarmup + 40 - 1, kSpe, kTotal), (2.0 + 0.1) / 2, 1e-12);  // cos(π/2) = 0
  EXPECT_NEAR(s.lr(kWarmup + 20 - 1, kSpe, kTotal), 0.1 + 1.9 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(s.lr(kTotal - 1, kSpe, kTotal), 0.1, 1e-12);
}

TEST(LrScheduleTest, StepDecay) {
  ScheduleSpec spec = Spec("step");
  spec.step_epochs = {3, 6};
  spec.step_gamma = 0.1;
  LrSchedule s(spec);
  EXPECT_DOUBLE_EQ(s.lr(29, kSpe, kTotal), 2.0);
  EXPECT_NEAR(s.lr(30, kSpe, kTotal), 0.2, 1e-15);
  EXPECT_NEAR(s.lr(59, kSpe, kTotal), 0.2, 1e-15);
  EXPECT_NEAR(s.lr(60, kSpe, kTotal), 0.02, 1e-15);
  EXPECT_NEAR(s.lr(99, kSpe, kTotal), 0.02, 1e-15);
}

TEST(LrScheduleTest, NoneKeepsBase) {
  LrSchedule s(Spec("none"));
  for (int64_t step = kWarmup - 1; step < kTotal; ++step) EXPECT_DOUBLE_EQ(s.lr(step, kSpe, kTotal), 2.0);
}

TEST(LrScheduleTest, WarmupLongerThanRun) {
  LrSchedule s(Spec("poly", 20.0));  // 200 warmup steps in a 100-step run
  EXPECT_DOUBLE_EQ(s.lr(99, kSpe, kTotal), 2.0 * 100 / 200);
}

TEST(LrScheduleTest, BadInputIsRejected) {
  EXPECT_THROW(LrSchedule(Spec("exponential")), Error);
  ScheduleSpec negative = Spec("poly");
  negative.base_lr = -1;
  EXPECT_THROW(LrSchedule{negative}, Error);
  LrSchedule s(Spec("poly"));
  EXPECT_THROW(s.lr(0, 0, kTotal), Error);
  EXPECT_THROW(s.lr(0, kSpe, 0), Error);
}

}  // namespace
}  // namespace dtrain::optim
