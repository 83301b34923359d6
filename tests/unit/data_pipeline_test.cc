// The record pipeline (pipeline.h, image_stream.h, thread_pool.h): a data set
// stored as lossless PNG records and streamed through the data threads gives
// EXACTLY the in-memory loader's batches (order, labels, pad-crop + flip,
// normalisation); bad records are counted once and replaced the same way on
// every run; evaluation covers every record once; the pool runs every item
// once and passes errors on.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/error.h"
#include "tests/unit/data_image_encode.h"
#include "worker/data/augment.h"
#include "worker/data/image_augment.h"
#include "worker/data/image_stream.h"
#include "worker/data/loader.h"
#include "worker/data/thread_pool.h"

namespace dtrain::data {
namespace {

// Image i of an in-memory set (CHW) as an 8-bit PNG file (HWC rows).
std::vector<uint8_t> EncodePng(const Dataset& set, int64_t i) {
  const int c = set.channels, h = set.height, w = set.width;
  std::vector<std::vector<uint8_t>> rows(h, std::vector<uint8_t>(size_t(w) * c));
  for (int ch = 0; ch < c; ++ch)
    for (int p = 0; p < h * w; ++p) rows[p / w][size_t(p % w) * c + ch] = set.image(i)[size_t(ch) * h * w + p];
  return testing::EncodePng(rows, w, 8, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB);
}

class MemoryRecords final : public ImageRecords {
 public:
  MemoryRecords(const Dataset& set, int classes) {
    for (int k = 0; k < classes; ++k) names_.push_back("class" + std::to_string(k));
    for (int64_t i = 0; i < set.size; ++i) {
      files_.push_back(EncodePng(set, i));
      labels_.push_back(set.labels[i]);
    }
  }
  int64_t size() const override { return int64_t(files_.size()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  int32_t label(int64_t i) const override { return labels_.at(i); }
  void Read(int64_t i, std::vector<uint8_t>* out) const override {
    reads_.fetch_add(1);
    *out = files_.at(i);
  }
  std::string Describe(int64_t i) const override { return "memory record " + std::to_string(i); }
  std::vector<std::vector<uint8_t>> files_;
  mutable std::atomic<int64_t> reads_{0};

 private:
  std::vector<std::string> names_;
  std::vector<int32_t> labels_;
};

RecordSourceOptions Options(const Dataset& set, const AugmentSpec& augment, uint64_t seed, int threads) {
  RecordSourceOptions o;
  o.image.augment = augment;
  o.image.image_size = set.height;
  o.image.color = set.channels == 1 ? ColorMode::kGrey : ColorMode::kRgb;
  o.image.seed = seed;
  o.mean = set.mean;
  o.std = set.std;
  o.threads = threads;
  o.description = "test";
  return o;
}

TEST(RecordPipeline, PngRecordsGiveTheInMemoryLoadersBatchesBitForBit) {
  for (int channels : {1, 3}) {
    SCOPED_TRACE("channels " + std::to_string(channels));
    TrainTest sets = MakeSynthetic(11, channels, 12, 5, 240, 30);
    auto train = std::make_shared<const Dataset>(sets.train);
    const AugmentSpec augment{.crop = "pad", .crop_padding = 3, .flip = true};
    auto source = MakeRecordSource(std::make_shared<MemoryRecords>(sets.train, 5),
                                   std::make_shared<MemoryRecords>(sets.test, 5), Options(sets.train, augment, 9, 3));
    EXPECT_EQ(source->info().channels, channels);
    EXPECT_EQ(source->info().image_size, 12);
    const LoaderOptions lo{.world_size = 2, .rank = 1, .batch_per_rank = 16, .seed = 9, .augment = augment,
                           .start_epoch = 1, .start_step = 3};
    auto stream = source->Train(lo);
    BatchLoader memory(train, lo);
    ASSERT_EQ(stream->steps_per_epoch(), memory.steps_per_epoch());
    std::vector<float> scratch;
    for (int k = 0; k < 2 * memory.steps_per_epoch(); ++k) {
      const Batch want = memory.Next(Deadline::AfterSeconds(30));
      const Batch got = stream->Next(Deadline::AfterSeconds(30));
      ASSERT_EQ(got.epoch, want.epoch);
      ASSERT_EQ(got.step, want.step);
      ASSERT_EQ(got.indices, want.indices);
      ASSERT_EQ(got.labels, want.labels);
      ASSERT_TRUE(got.images.empty());
      ASSERT_EQ(got.pixels.size(), want.images.size());
      const float* x = NormalizedNchw(got, &scratch);
      ASSERT_TRUE(std::equal(want.images.begin(), want.images.end(), x)) << "batch " << k;
    }
    EXPECT_EQ(source->bad_records(), 0);
  }
}

TEST(RecordPipeline, EvaluationCoversEveryRecordOnceWithItsLabel) {
  TrainTest sets = MakeSynthetic(3, 1, 8, 4, 64, 37);
  auto source = MakeRecordSource(std::make_shared<MemoryRecords>(sets.train, 4),
                                 std::make_shared<MemoryRecords>(sets.test, 4), Options(sets.train, {}, 1, 2));
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    auto eval = source->Eval(3, rank, 5);
    Batch b;
    int64_t n = 0;
    while (eval->Next(&b)) {
      for (int64_t i = 0; i < b.size; ++i) {
        seen.insert(b.indices[i]);
        EXPECT_EQ(b.labels[i], sets.test.labels[b.indices[i]]);
        // Evaluation: the image itself (no crop, no flip).
        EXPECT_TRUE(std::equal(b.pixels.begin() + i * 64, b.pixels.begin() + (i + 1) * 64, sets.test.image(b.indices[i])));
      }
      n += b.size;
    }
    EXPECT_EQ(n, eval->size());
  }
  ASSERT_EQ(seen.size(), 37u);
  for (int64_t i = 0; i < 37; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
}

TEST(RecordPipeline, BadRecordsAreCountedOnceAndReplacedTheSameWayEveryRun) {
  TrainTest sets = MakeSynthetic(5, 1, 8, 4, 96, 8);
  auto first = [&] {
    auto recs = std::make_shared<MemoryRecords>(sets.train, 4);
    recs->files_[7] = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
    recs->files_[20].resize(recs->files_[20].size() / 2);  // truncated PNG
    return recs;
  };
  std::vector<Batch> runs[2];
  int64_t bad[2];
  for (int run = 0; run < 2; ++run) {
    auto source = MakeRecordSource(first(), std::make_shared<MemoryRecords>(sets.test, 4),
                                   Options(sets.train, {.crop = "pad", .crop_padding = 0, .flip = false}, 2, 2));
    auto stream = source->Train({.world_size = 1, .rank = 0, .batch_per_rank = 32, .seed = 2, .augment = {}});
    for (int k = 0; k < 6; ++k) runs[run].push_back(stream->Next(Deadline::AfterSeconds(30)));  // two epochs
    bad[run] = source->bad_records();
  }
  EXPECT_EQ(bad[0], 2) << "each bad record counted once, not once per epoch";
  EXPECT_EQ(bad[1], 2);
  int replaced = 0;
  for (size_t k = 0; k < runs[0].size(); ++k) {
    EXPECT_EQ(runs[0][k].pixels, runs[1][k].pixels) << "batch " << k;
    EXPECT_EQ(runs[0][k].labels, runs[1][k].labels);
    for (int64_t i = 0; i < runs[0][k].size; ++i) {
      const int64_t index = runs[0][k].indices[i];
      const uint8_t* got = runs[0][k].pixels.data() + i * 64;
      if (index == 7 || index == 20) {
        ++replaced;  // another record's image with that record's own label
        bool found = false;
        for (int64_t j = 0; j < sets.train.size && !found; ++j)
          found = std::equal(got, got + 64, sets.train.image(j)) && runs[0][k].labels[i] == sets.train.labels[j];
        EXPECT_TRUE(found) << "replacement of " << index;
      } else {
        EXPECT_TRUE(std::equal(got, got + 64, sets.train.image(index)));
        EXPECT_EQ(runs[0][k].labels[i], sets.train.labels[index]);
      }
    }
  }
  EXPECT_EQ(replaced, 4) << "both bad records, in both epochs";
}

TEST(RecordPipeline, ResizedCropDrawIsAPureFunctionInsideTheImage) {
  ImageAugmentOptions o;
  o.augment.crop = "random-resized";
  o.seed = 42;
  for (int64_t index = 0; index < 500; ++index) {
    const ResizedCrop a = DrawResizedCrop(o, 500, 375, 3, index), b = DrawResizedCrop(o, 500, 375, 3, index);
    EXPECT_EQ(a.box, b.box);
    EXPECT_EQ(a.flip, b.flip);
    EXPECT_GE(a.box.top, 0);
    EXPECT_GE(a.box.left, 0);
    EXPECT_LE(a.box.top + a.box.height, 375);
    EXPECT_LE(a.box.left + a.box.width, 500);
    EXPECT_GT(a.box.width * a.box.height, 0);
  }
  EXPECT_FALSE(DrawResizedCrop(o, 500, 375, 3, 1).box == DrawResizedCrop(o, 500, 375, 4, 1).box)
      << "another epoch, another crop";
}

TEST(ThreadPool, RunsEveryItemOnceAndRethrowsTheFirstError) {
  ThreadPool pool(4);
  for (int64_t n : {0, 1, 3, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, [&](int64_t i) { hits[i].fetch_add(1); });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << i;
  }
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.ParallelFor(50,
                                [&](int64_t i) {
                                  ran.fetch_add(1);
                                  if (i == 17) Fail(ErrorCode::kDataLoss, "item 17");
                                }),
               Error);
  EXPECT_EQ(ran.load(), 50) << "the other items still ran";
  // Two callers at once take turns; each gets all its items.
  std::atomic<int64_t> sum_a{0}, sum_b{0};
  std::thread t([&] { pool.ParallelFor(500, [&](int64_t i) { sum_a += i; }); });
  pool.ParallelFor(700, [&](int64_t i) { sum_b += i; });
  t.join();
  EXPECT_EQ(sum_a.load(), 500 * 499 / 2);
  EXPECT_EQ(sum_b.load(), 700 * 699 / 2);
}

}  // namespace
}  // namespace dtrain::data
