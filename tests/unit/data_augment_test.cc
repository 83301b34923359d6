// Augmentation: determinism from (seed, epoch, index), the crop/flip geometry
// against a straightforward pad-then-crop implementation, and normalisation.
#include <gtest/gtest.h>

#include <set>

#include "worker/data/augment.h"
#include "worker/data/dataset.h"

namespace dtrain::data {
namespace {

// Straightforward reference: build the zero-padded image, cut the window, flip it.
std::vector<float> ReferenceAugment(const Dataset& set, int64_t index, int p, const CropFlip& cf) {
  const int h = set.height, w = set.width, ph = h + 2 * p, pw = w + 2 * p;
  std::vector<float> out(set.image_bytes());
  for (int c = 0; c < set.channels; ++c) {
    std::vector<int> padded(ph * pw, 0);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) padded[(y + p) * pw + x + p] = set.image(index)[(c * h + y) * w + x];
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        int v = padded[(y + cf.dy) * pw + x + cf.dx];
        int ox = cf.flip ? w - 1 - x : x;
        out[(c * h + y) * w + ox] = static_cast<float>((v / 255.0 - set.mean[c]) / set.std[c]);
      }
  }
  return out;
}

TEST(AugmentTest, MatchesPadCropFlipReference) {
  TrainTest d = MakeSynthetic(3, 3, 12, 5, 40, 4);
  AugmentSpec spec{.crop_padding = 3, .flip = true};
  std::vector<float> got(d.train.image_bytes());
  int flips = 0;
  for (int64_t i = 0; i < d.train.size; ++i) {
    CropFlip cf = DrawCropFlip(spec, 9, 1, i);
    flips += cf.flip;
    AugmentImage(d.train, i, spec, cf, got.data());
    std::vector<float> want = ReferenceAugment(d.train, i, 3, cf);
    for (size_t k = 0; k < got.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-5) << "image " << i << " element " << k;
  }
  EXPECT_GT(flips, 0);
  EXPECT_LT(flips, d.train.size);
}

TEST(AugmentTest, DeterministicFromSeedEpochIndex) {
  TrainTest d = MakeSynthetic(4, 1, 10, 4, 64, 4);
  AugmentSpec spec{.crop_padding = 2, .flip = true};
  const int64_t bytes = d.train.image_bytes();
  auto run = [&](uint64_t seed, int64_t epoch) {
    std::vector<float> out(d.train.size * bytes);
    for (int64_t i = 0; i < d.train.size; ++i)
      AugmentImage(d.train, i, spec, DrawCropFlip(spec, seed, epoch, i), out.data() + i * bytes);
    return out;
  };
  std::vector<float> a = run(1, 0);
  EXPECT_EQ(a, run(1, 0));  // same bytes, every time
  EXPECT_NE(a, run(1, 1));  // another epoch draws other crops
  EXPECT_NE(a, run(2, 0));  // another seed too
}

TEST(AugmentTest, DrawsCoverTheRange) {
  AugmentSpec spec{.crop_padding = 4, .flip = true};
  std::set<int> dys, dxs;
  int flips = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    CropFlip cf = DrawCropFlip(spec, 5, 0, i);
    ASSERT_GE(cf.dy, 0);
    ASSERT_LE(cf.dy, 8);
    ASSERT_GE(cf.dx, 0);
    ASSERT_LE(cf.dx, 8);
    dys.insert(cf.dy);
    dxs.insert(cf.dx);
    flips += cf.flip;
  }
  EXPECT_EQ(dys.size(), 9u);
  EXPECT_EQ(dxs.size(), 9u);
  EXPECT_NEAR(flips / double(n), 0.5, 0.02);
  AugmentSpec off{.crop_padding = 0, .flip = false};
  CropFlip cf = DrawCropFlip(off, 5, 0, 17);
  EXPECT_EQ(cf.dy, 0);
  EXPECT_EQ(cf.dx, 0);
  EXPECT_FALSE(cf.flip);
}

TEST(AugmentTest, NoAugmentationIsPlainNormalisation) {
  TrainTest d = MakeSynthetic(6, 2, 9, 3, 8, 4);
  AugmentSpec off{.crop_padding = 0, .flip = false};
  std::vector<float> a(d.train.image_bytes()), b(d.train.image_bytes());
  for (int64_t i = 0; i < d.train.size; ++i) {
    AugmentImage(d.train, i, off, DrawCropFlip(off, 1, 0, i), a.data());
    NormalizeImage(d.train, i, b.data());
    EXPECT_EQ(a, b);
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 81; ++k) {
        const double x = d.train.image(i)[c * 81 + k];
        ASSERT_NEAR(b[c * 81 + k], (x / 255.0 - d.train.mean[c]) / d.train.std[c], 1e-5);
      }
  }
}

}  // namespace
}  // namespace dtrain::data
