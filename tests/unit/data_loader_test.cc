// BatchLoader and EvalIterator: the prefetched batches equal Sampler +
// augmentation computed directly; deadlines, abort, shutdown mid-epoch.
#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "worker/data/augment.h"
#include "worker/data/loader.h"

namespace dtrain::data {
namespace {

std::shared_ptr<const Dataset> Train(uint64_t seed, int channels, int size, int64_t n) {
  return std::make_shared<const Dataset>(MakeSynthetic(seed, channels, size, 10, n, 10).train);
}

TEST(LoaderTest, YieldsSamplerPlusAugmentInOrder) {
  auto data = Train(1, 2, 10, 500);
  LoaderOptions opt{.world_size = 3, .rank = 1, .batch_per_rank = 16, .seed = 77,
                    .augment = {.crop_padding = 2, .flip = true}, .prefetch_depth = 2};
  BatchLoader loader(data, opt);
  Sampler sampler(500, 3, 1, 16, 77);
  ASSERT_EQ(loader.steps_per_epoch(), 10);  // floor(500 / 48)
  const int64_t bytes = data->image_bytes();
  std::vector<float> want(bytes);
  for (int64_t epoch = 0; epoch < 3; ++epoch)
    for (int64_t step = 0; step < loader.steps_per_epoch(); ++step) {
      Batch b = loader.Next(Deadline::AfterSeconds(30));
      ASSERT_EQ(b.epoch, epoch);
      ASSERT_EQ(b.step, step);
      ASSERT_EQ(b.size, 16);
      ASSERT_EQ(b.indices, sampler.Batch(epoch, step));
      ASSERT_EQ(b.images.size(), size_t(16 * bytes));
      for (int64_t i = 0; i < 16; ++i) {
        ASSERT_EQ(b.labels[i], data->labels[b.indices[i]]);
        AugmentImage(*data, b.indices[i], opt.augment, DrawCropFlip(opt.augment, 77, epoch, b.indices[i]),
                     want.data());
        ASSERT_TRUE(std::equal(want.begin(), want.end(), b.images.begin() + i * bytes))
            << "epoch " << epoch << " step " << step << " image " << i;
      }
    }
}

TEST(LoaderTest, ResumesAtEpochAndStep) {
  auto data = Train(2, 1, 6, 300);
  LoaderOptions opt{.world_size = 2, .rank = 0, .batch_per_rank = 10, .seed = 5, .augment = {},
                    .start_epoch = 4, .start_step = 13};
  BatchLoader loader(data, opt);
  Sampler sampler(300, 2, 0, 10, 5);
  ASSERT_EQ(loader.steps_per_epoch(), 15);
  Batch b = loader.Next(Deadline::AfterSeconds(30));
  EXPECT_EQ(b.epoch, 4);
  EXPECT_EQ(b.step, 13);
  EXPECT_EQ(b.indices, sampler.Batch(4, 13));
  loader.Next(Deadline::AfterSeconds(30));
  b = loader.Next(Deadline::AfterSeconds(30));
  EXPECT_EQ(b.epoch, 5);
  EXPECT_EQ(b.step, 0);
  EXPECT_EQ(b.indices, sampler.Batch(5, 0));
}

TEST(LoaderTest, ShutdownMidEpoch) {
  auto data = Train(3, 3, 32, 4096);
  LoaderOptions opt{.batch_per_rank = 256, .seed = 1, .augment = {}, .prefetch_depth = 4};
  {
    BatchLoader loader(data, opt);  // destroyed while the thread is producing
  }
  {
    BatchLoader loader(data, opt);
    loader.Next(Deadline::AfterSeconds(30));
    loader.Next(Deadline::AfterSeconds(30));
  }  // destroyed mid-epoch, with the thread filling or blocked on a full queue
  SUCCEED() << "both loaders shut down";
}

TEST(LoaderTest, DeadlineAndAbort) {
  // A batch this large takes the thread far longer than the (expired)
  // deadline, so the queue is still empty when Next() looks.
  auto data = Train(4, 3, 64, 2048);
  LoaderOptions opt{.batch_per_rank = 2048, .seed = 1, .augment = {.crop_padding = 4, .flip = true}};
  BatchLoader loader(data, opt);
  try {
    loader.Next(Deadline::After(std::chrono::milliseconds(0)));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDeadlineExceeded) << e.what();
  }
  // The loader is still usable; the missed batch is the next one.
  Batch b = loader.Next(Deadline::AfterSeconds(60));
  EXPECT_EQ(b.step, 0);

  BatchLoader second(data, opt);
  std::atomic<bool> abort{true};
  try {
    second.Next(Deadline::AfterSeconds(60, &abort));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAborted) << e.what();
  }
}

TEST(LoaderTest, RejectsTooSmallDataSet) {
  auto data = Train(5, 1, 6, 50);
  LoaderOptions four{.world_size = 4, .rank = 0, .batch_per_rank = 16, .augment = {}};
  EXPECT_THROW(BatchLoader(data, four), Error);  // 50 images < 4 × 16
  EXPECT_THROW(BatchLoader(data, LoaderOptions{.batch_per_rank = 8, .augment = {}, .prefetch_depth = 0}), Error);
}

TEST(EvalIteratorTest, SharesCoverTheTestSetOnce) {
  auto test = std::make_shared<const Dataset>(MakeSynthetic(6, 2, 7, 5, 10, 103).test);
  const int world = 3;
  std::map<int64_t, int> seen;
  int64_t total = 0;
  std::vector<float> want(test->image_bytes());
  for (int r = 0; r < world; ++r) {
    EvalIterator it(test, world, r, 8);
    total += it.size();
    Batch b;
    int64_t images = 0;
    while (it.Next(&b)) {
      ASSERT_LE(b.size, 8);
      images += b.size;
      for (int64_t i = 0; i < b.size; ++i) {
        ++seen[b.indices[i]];
        EXPECT_EQ(b.labels[i], test->labels[b.indices[i]]);
        NormalizeImage(*test, b.indices[i], want.data());
        EXPECT_TRUE(std::equal(want.begin(), want.end(), b.images.begin() + i * test->image_bytes()));
      }
    }
    EXPECT_EQ(images, it.size());
  }
  EXPECT_EQ(total, 103);
  ASSERT_EQ(seen.size(), 103u);
  for (auto [index, count] : seen) EXPECT_EQ(count, 1) << index;
}

}  // namespace
}  // namespace dtrain::data
