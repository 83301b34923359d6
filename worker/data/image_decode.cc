// DecodeCropResize and friends: sniffs the format, checks the box, plans the
// DCT scale and the region to decode, and hands the pixels to the resampler
// (resample.cc). Codecs: jpeg_decode.cc, png_decode.cc.
#include "worker/data/image_decode.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/error.h"
#include "worker/data/image_decode_internal.h"

namespace dtrain::data {
namespace {

using detail::IntRect;
using detail::PixelRegion;

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

ImageFormat Sniff(const uint8_t* data, size_t size) {
  if (size == 0) Fail(ErrorCode::kDataLoss, "not an image: 0 bytes");
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::kJpeg;
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) return ImageFormat::kPng;
  char head[64];
  int n = 0;
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i)
    n += std::snprintf(head + n, sizeof(head) - n, "%s%02x", i ? " " : "", data[i]);
  Fail(ErrorCode::kDataLoss, std::string("not a JPEG or PNG image (") + std::to_string(size) + " bytes starting " +
                                 head + "; JPEG starts ff d8 ff, PNG 89 50 4e 47 0d 0a 1a 0a)");
}

std::string BoxText(const BoxF& b) {
  char s[160];
  std::snprintf(s, sizeof(s), "[%g, %g) x [%g, %g)", b.x0, b.x1, b.y0, b.y1);
  return s;
}

void CheckOutput(int out_w, int out_h) {
  if (out_w <= 0 || out_h <= 0)
    Fail(ErrorCode::kInvalidArgument,
         "output size " + std::to_string(out_w) + "x" + std::to_string(out_h) + " must be positive");
}

void CheckBox(const BoxF& b, int width, int height) {
  const bool ok = std::isfinite(b.x0) && std::isfinite(b.x1) && std::isfinite(b.y0) && std::isfinite(b.y1) &&
                  b.x0 >= 0 && b.x0 < b.x1 && b.x1 <= width && b.y0 >= 0 && b.y0 < b.y1 && b.y1 <= height;
  if (!ok)
    Fail(ErrorCode::kInvalidArgument, "crop box " + BoxText(b) + " is not inside the " + std::to_string(width) + "x" +
                                          std::to_string(height) +
                                          " image (need 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height)");
}

// Copies a region's pixel rows into a tightly packed image.
std::vector<uint8_t> Pack(const PixelRegion& r) {
  const size_t row = static_cast<size_t>(r.w) * r.c;
  std::vector<uint8_t> out(row * r.h);
  for (int y = 0; y < r.h; ++y) std::memcpy(out.data() + row * y, r.pixels + r.stride * y, row);
  return out;
}

struct CropPlan {
  const BoxF* box;
  int out_w, out_h;
  bool dct_scaling;
  BoxF scaled_box;  // set by PlanCrop: the box in the decoded image's coordinates
};

detail::JpegRequest PlanCrop(const ImageInfo& info, const void* ctx) {
  auto* plan = const_cast<CropPlan*>(static_cast<const CropPlan*>(ctx));
  const BoxF& b = *plan->box;
  CheckBox(b, info.width, info.height);
  detail::JpegRequest req;
  req.scale_m = plan->dct_scaling ? ChooseDctScale(b.x1 - b.x0, b.y1 - b.y0, plan->out_w, plan->out_h) : 8;
  const double s = req.scale_m / 8.0;  // libjpeg's scaled pixel i covers source [i/s, (i+1)/s)
  plan->scaled_box = BoxF{b.x0 * s, b.y0 * s, b.x1 * s, b.y1 * s, b.crop_first};
  const int sw = detail::ScaledSize(info.width, req.scale_m), sh = detail::ScaledSize(info.height, req.scale_m);
  req.whole = false;
  req.want = detail::FilterFootprint(plan->scaled_box, sw, sh, plan->out_w, plan->out_h);
  return req;
}

detail::JpegRequest PlanWhole(const ImageInfo&, const void*) { return detail::JpegRequest{}; }

}  // namespace

namespace detail {

void RgbToGrey(const uint8_t* src, int pixels, uint8_t* dst) {
  for (int i = 0; i < pixels; ++i) {
    const uint8_t* p = src + 3 * i;
    dst[i] = static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
  }
}

}  // namespace detail

ImageInfo ReadImageInfo(const uint8_t* data, size_t size) {
  return Sniff(data, size) == ImageFormat::kJpeg ? detail::ReadJpegInfo(data, size) : detail::ReadPngInfo(data, size);
}

int ChooseDctScale(double box_w, double box_h, int out_w, int out_h) {
  // Only the scales with SIMD IDCTs in libjpeg-turbo 2.1 (image_decode.h).
  for (int m : {1, 2, 4})
    if (box_w * m / 8 >= out_w && box_h * m / 8 >= out_h) return m;
  return 8;
}

void DecodeCropResize(const uint8_t* data, size_t size, const BoxF& box, int out_w, int out_h, bool flip,
                      ColorMode mode, bool dct_scaling, uint8_t* out, DecodeScratch* scratch) {
  const ImageFormat format = Sniff(data, size);
  CheckOutput(out_w, out_h);
  if (format == ImageFormat::kJpeg) {
    CropPlan plan{&box, out_w, out_h, dct_scaling, {}};
    const PixelRegion r = detail::DecodeJpeg(data, size, mode, PlanCrop, &plan, scratch, nullptr);
    detail::ResampleRegion(r, plan.scaled_box, out_w, out_h, flip, out, scratch);
    return;
  }
  const PixelRegion r = detail::DecodePng(data, size, mode, scratch, nullptr);
  CheckBox(box, r.image_w, r.image_h);
  detail::ResampleRegion(r, box, out_w, out_h, flip, out, scratch);
}

std::vector<uint8_t> DecodeFull(const uint8_t* data, size_t size, ColorMode mode, ImageInfo* info) {
  DecodeScratch scratch;
  if (Sniff(data, size) == ImageFormat::kJpeg)
    return Pack(detail::DecodeJpeg(data, size, mode, PlanWhole, nullptr, &scratch, info));
  return Pack(detail::DecodePng(data, size, mode, &scratch, info));
}

void ResampleBilinear(const uint8_t* src, int width, int height, int c, const BoxF& box, int out_w, int out_h,
                      bool flip, uint8_t* out, DecodeScratch* scratch) {
  if (width <= 0 || height <= 0 || c <= 0)
    Fail(ErrorCode::kInvalidArgument, "ResampleBilinear: image " + std::to_string(width) + "x" +
                                          std::to_string(height) + "x" + std::to_string(c) + " must be non-empty");
  CheckOutput(out_w, out_h);
  CheckBox(box, width, height);
  PixelRegion r;
  r.pixels = src;
  r.stride = static_cast<size_t>(width) * c;
  r.w = r.image_w = width;
  r.h = r.image_h = height;
  r.c = c;
  detail::ResampleRegion(r, box, out_w, out_h, flip, out, scratch);
}

}  // namespace dtrain::data
