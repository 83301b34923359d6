// DecodeCropResize's geometry: the full-resolution path against a plain
// reference (whole decode + Pillow's BILINEAR written out in this file), the
// region + DCT-scaled decode against a whole decode at the same scale, the
// DCT-scaled output against the full-resolution one, flips, and the DCT scale
// choice. Pillow's own numbers for ResampleBilinear are checked in
// data_crop_box_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "tests/unit/data_image_encode.h"
#include "worker/data/image_decode.h"
#include "worker/data/image_decode_internal.h"
#include "worker/data/random.h"

namespace dtrain::data {
namespace {

using testing::EncodeJpeg;
using testing::EncodePng;
using testing::PhotoLike;

// ---- reference: Pillow 9.4's ImagingResample, BILINEAR, written out plainly ----

struct RefAxis {
  std::vector<int> first, count;
  std::vector<std::vector<int>> weights;
};

RefAxis ReferenceAxis(double in0, double in1, int in_size, int out) {
  RefAxis a;
  const double scale = (in1 - in0) / out, filterscale = std::max(scale, 1.0), support = filterscale;
  for (int i = 0; i < out; ++i) {
    const double center = in0 + (i + 0.5) * scale;
    const int lo = std::max(0, int(center - support + 0.5)), hi = std::min(in_size, int(center + support + 0.5));
    std::vector<double> w;
    double sum = 0;
    for (int x = lo; x < hi; ++x) {
      const double t = std::abs((x - center + 0.5) / filterscale);
      w.push_back(t < 1 ? 1 - t : 0);
      sum += w.back();
    }
    std::vector<int> fixed;
    for (double v : w) fixed.push_back(int(std::floor((sum != 0 ? v / sum : v) * (1 << 22) + 0.5)));
    a.first.push_back(lo);
    a.count.push_back(hi - lo);
    a.weights.push_back(fixed);
  }
  return a;
}

uint8_t Clip(int64_t v) { return uint8_t(std::clamp<int64_t>(v >> 22, 0, 255)); }

// img.resize(size, BILINEAR, box), or img.crop(box).resize(size) for crop_first.
std::vector<uint8_t> ReferenceResize(std::vector<uint8_t> img, int w, int h, int c, BoxF box, int ow, int oh,
                                     bool flip) {
  if (box.crop_first) {  // integer boxes only here
    const int x0 = int(box.x0), y0 = int(box.y0), cw = int(box.x1) - x0, ch = int(box.y1) - y0;
    std::vector<uint8_t> crop(size_t(cw) * ch * c);
    for (int y = 0; y < ch; ++y)
      std::copy_n(&img[((size_t(y) + y0) * w + x0) * c], size_t(cw) * c, &crop[size_t(y) * cw * c]);
    return ReferenceResize(crop, cw, ch, c, BoxF{0, 0, double(cw), double(ch)}, ow, oh, flip);
  }
  const RefAxis ax = ReferenceAxis(box.x0, box.x1, w, ow), ay = ReferenceAxis(box.y0, box.y1, h, oh);
  std::vector<uint8_t> tmp(size_t(ow) * h * c), out(size_t(ow) * oh * c);
  for (int y = 0; y < h; ++y)  // horizontal pass (every row: simpler than Pillow's row range, same values)
    for (int x = 0; x < ow; ++x)
      for (int ch = 0; ch < c; ++ch) {
        int64_t s = 1 << 21;
        for (int t = 0; t < ax.count[x]; ++t)
          s += int64_t(img[(size_t(y) * w + ax.first[x] + t) * c + ch]) * ax.weights[x][t];
        tmp[(size_t(y) * ow + x) * c + ch] = Clip(s);
      }
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x)
      for (int ch = 0; ch < c; ++ch) {
        int64_t s = 1 << 21;
        for (int t = 0; t < ay.count[y]; ++t)
          s += int64_t(tmp[((size_t(ay.first[y]) + t) * ow + x) * c + ch]) * ay.weights[y][t];
        out[(size_t(y) * ow + (flip ? ow - 1 - x : x)) * c + ch] = Clip(s);
      }
  return out;
}

struct TestImage {
  const char* name;
  std::vector<uint8_t> file;
};

std::vector<TestImage> Images(int w, int h) {
  const std::vector<uint8_t> rgb = PhotoLike(w, h, 3), grey = PhotoLike(w, h, 1), cmyk = PhotoLike(w, h, 4);
  std::vector<std::vector<uint8_t>> rows(h);
  for (int y = 0; y < h; ++y) rows[y].assign(rgb.begin() + size_t(y) * w * 3, rgb.begin() + size_t(y + 1) * w * 3);
  return {{"4:2:0", EncodeJpeg(rgb, w, h, {})},
          {"4:2:2", EncodeJpeg(rgb, w, h, {.h_samp = 2, .v_samp = 1})},
          {"4:4:4", EncodeJpeg(rgb, w, h, {.h_samp = 1, .v_samp = 1})},
          {"progressive", EncodeJpeg(rgb, w, h, {.progressive = true})},
          {"grey", EncodeJpeg(grey, w, h, {.in_space = JCS_GRAYSCALE})},
          {"cmyk", EncodeJpeg(cmyk, w, h, {.in_space = JCS_CMYK})},
          {"png", EncodePng(rows, w, 8, PNG_COLOR_TYPE_RGB)}};
}

// A random box: integer or fractional corners, either semantics, any output size.
BoxF RandomBox(Rng& rng, int w, int h, bool integer) {
  double bw = 1 + rng.Uniform() * (w - 1), bh = 1 + rng.Uniform() * (h - 1);
  double x0 = rng.Uniform() * (w - bw), y0 = rng.Uniform() * (h - bh);
  if (integer) bw = std::floor(bw), bh = std::floor(bh), x0 = std::floor(x0), y0 = std::floor(y0);
  BoxF b{x0, y0, x0 + bw, y0 + bh};
  b.crop_first = integer && rng.Below(2) == 1;
  return b;
}

std::vector<uint8_t> Crop(const std::vector<uint8_t>& file, const BoxF& box, int ow, int oh, bool flip, ColorMode m,
                          bool dct, DecodeScratch* scratch) {
  std::vector<uint8_t> out(size_t(ow) * oh * (m == ColorMode::kRgb ? 3 : 1));
  DecodeCropResize(file.data(), file.size(), box, ow, oh, flip, m, dct, out.data(), scratch);
  return out;
}

TEST(ImageResampleTest, FullResolutionCropEqualsWholeDecodeThenReferenceResize) {
  // Only the rows and columns the filter reads are decoded (an iMCU of margin
  // keeps fancy upsampling's region edges out of them): the same bytes.
  DecodeScratch scratch;  // reused on purpose: stale contents must not leak
  int cases = 0;
  for (const TestImage& im : Images(211, 163)) {
    for (ColorMode m : {ColorMode::kRgb, ColorMode::kGrey}) {
      ImageInfo info;
      const std::vector<uint8_t> full = DecodeFull(im.file.data(), im.file.size(), m, &info);
      const int c = m == ColorMode::kRgb ? 3 : 1;
      Rng rng(Hash(5, cases));
      for (int k = 0; k < 25; ++k, ++cases) {
        const BoxF box = RandomBox(rng, info.width, info.height, /*integer=*/k % 3 != 0);
        const int ow = 1 + int(rng.Below(120)), oh = 1 + int(rng.Below(120));
        const bool flip = rng.Below(2) == 1;
        ASSERT_EQ(Crop(im.file, box, ow, oh, flip, m, false, &scratch),
                  ReferenceResize(full, info.width, info.height, c, box, ow, oh, flip))
            << im.name << (c == 3 ? " rgb" : " grey") << " box [" << box.x0 << ", " << box.x1 << ") x [" << box.y0
            << ", " << box.y1 << ") crop_first " << box.crop_first << " -> " << ow << "x" << oh << " flip " << flip;
      }
    }
  }
}

TEST(ImageResampleTest, RegionDecodeAtDctScaleEqualsWholeDecodeAtThatScale) {
  DecodeScratch scratch;
  int per_scale[9] = {};
  for (const TestImage& im : Images(331, 247)) {
    if (std::string(im.name) == "png") continue;
    for (ColorMode m : {ColorMode::kRgb, ColorMode::kGrey}) {
      const int c = m == ColorMode::kRgb ? 3 : 1;
      Rng rng(Hash(6, im.file.size(), int(m)));
      for (int k = 0; k < 24; ++k) {
        const ImageInfo info = ReadImageInfo(im.file.data(), im.file.size());
        const BoxF box = RandomBox(rng, info.width, info.height, k % 2 == 0);
        const int ow = 4 + int(rng.Below(60)), oh = 4 + int(rng.Below(60));
        int scale = ChooseDctScale(box.x1 - box.x0, box.y1 - box.y0, ow, oh);
        ++per_scale[scale];
        // The whole image decoded at scale/8, then the box mapped into it.
        detail::PixelRegion whole = detail::DecodeJpeg(
            im.file.data(), im.file.size(), m,
            [](const ImageInfo&, const void* ctx) {
              detail::JpegRequest r;
              r.scale_m = *static_cast<const int*>(ctx);
              return r;
            },
            &scale, &scratch, nullptr);
        std::vector<uint8_t> scaled(size_t(whole.w) * whole.h * c);
        for (int y = 0; y < whole.h; ++y)
          std::copy_n(whole.pixels + whole.stride * y, size_t(whole.w) * c, &scaled[size_t(y) * whole.w * c]);
        const double s = scale / 8.0;
        BoxF sbox{box.x0 * s, box.y0 * s, box.x1 * s, box.y1 * s};
        std::vector<uint8_t> want;
        if (box.crop_first && (sbox.x0 != std::floor(sbox.x0) || sbox.x1 != std::floor(sbox.x1) ||
                               sbox.y0 != std::floor(sbox.y0) || sbox.y1 != std::floor(sbox.y1))) {
          // The reference crops integer boxes only: compare through ResampleBilinear.
          sbox.crop_first = true;
          want.resize(size_t(ow) * oh * c);
          ResampleBilinear(scaled.data(), whole.w, whole.h, c, sbox, ow, oh, false, want.data(), &scratch);
        } else {
          sbox.crop_first = box.crop_first;
          want = ReferenceResize(scaled, whole.w, whole.h, c, sbox, ow, oh, false);
        }
        ASSERT_EQ(Crop(im.file, box, ow, oh, false, m, true, &scratch), want)
            << im.name << " scale " << scale << "/8 box [" << box.x0 << ", " << box.x1 << ") x [" << box.y0 << ", "
            << box.y1 << ") -> " << ow << "x" << oh;
      }
    }
  }
  for (int m : {1, 2, 4, 8}) EXPECT_GT(per_scale[m], 0) << "no box decoded at " << m << "/8";
}

TEST(ImageResampleTest, DctScaledCropStaysCloseToTheFullResolutionCrop) {
  // Bound (measured here, with margin): mean |dct - full| < 2.5 levels, and
  // 99 % of the values within 12. DCT scaling drops the highest frequencies
  // before the antialiasing filter would have; Pillow's draft() does the same.
  const int w = 640, h = 480;
  const std::vector<uint8_t> file = EncodeJpeg(PhotoLike(w, h, 3), w, h, {});
  DecodeScratch scratch;
  Rng rng(Hash(8, 8));
  int scaled = 0;
  for (int k = 0; k < 40; ++k) {
    const double bw = 160 + rng.Uniform() * (w - 160), bh = 160 + rng.Uniform() * (h - 160);
    const double x0 = std::floor(rng.Uniform() * (w - bw)), y0 = std::floor(rng.Uniform() * (h - bh));
    const BoxF box{x0, y0, x0 + std::floor(bw), y0 + std::floor(bh)};
    const int out = 24 + int(rng.Below(100));
    if (ChooseDctScale(box.x1 - box.x0, box.y1 - box.y0, out, out) == 8) continue;
    ++scaled;
    const std::vector<uint8_t> a = Crop(file, box, out, out, false, ColorMode::kRgb, true, &scratch);
    const std::vector<uint8_t> b = Crop(file, box, out, out, false, ColorMode::kRgb, false, &scratch);
    std::vector<int> d(a.size());
    double sum = 0;
    for (size_t i = 0; i < a.size(); ++i) sum += d[i] = std::abs(int(a[i]) - int(b[i]));
    std::sort(d.begin(), d.end());
    EXPECT_LT(sum / a.size(), 2.5) << "box " << box.x1 - box.x0 << "x" << box.y1 - box.y0 << " -> " << out;
    EXPECT_LE(d[d.size() * 99 / 100], 12) << "box " << box.x1 - box.x0 << "x" << box.y1 - box.y0 << " -> " << out;
  }
  EXPECT_GT(scaled, 20);
}

TEST(ImageResampleTest, FlipMirrorsTheColumns) {
  const std::vector<uint8_t> file = EncodeJpeg(PhotoLike(120, 90, 3), 120, 90, {});
  DecodeScratch scratch;
  for (bool dct : {false, true}) {
    const BoxF box{13, 7, 101, 80};
    const std::vector<uint8_t> a = Crop(file, box, 37, 29, false, ColorMode::kRgb, dct, &scratch);
    const std::vector<uint8_t> b = Crop(file, box, 37, 29, true, ColorMode::kRgb, dct, &scratch);
    for (int y = 0; y < 29; ++y)
      for (int x = 0; x < 37; ++x)
        for (int c = 0; c < 3; ++c) ASSERT_EQ(a[(y * 37 + x) * 3 + c], b[(y * 37 + 36 - x) * 3 + c]);
  }
}

TEST(ImageResampleTest, DctScaleIsTheSmallestFastScaleThatKeepsTheBoxAtLeastTheOutput) {
  struct {
    double bw, bh;
    int ow, oh, want;
  } cases[] = {
      {500, 375, 224, 224, 8},    // 375·4/8 < 224 (3/8..7/8 are never chosen: slower in libjpeg-turbo)
      {448, 448, 224, 224, 4},    // equality is enough
      {447.9, 448, 224, 224, 8},  // fractional boxes are not floored
      {700, 600, 224, 224, 4},   {895, 896, 224, 224, 4},   {896, 896, 224, 224, 2},
      {1000, 900, 224, 224, 2},  {1791, 1791, 224, 224, 2}, {1792, 1792, 224, 224, 1},
      {2000, 1800, 224, 224, 1}, {600, 500, 300, 100, 4},  // each axis on its own
      {100, 80, 224, 224, 8},                              // upscaling
      {3000, 100, 224, 224, 8},                            // one axis upscaled
  };
  for (const auto& c : cases)
    EXPECT_EQ(ChooseDctScale(c.bw, c.bh, c.ow, c.oh), c.want) << c.bw << "x" << c.bh << " -> " << c.ow << "x" << c.oh;
}

}  // namespace
}  // namespace dtrain::data
