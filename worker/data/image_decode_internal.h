// Internal to image_decode.cc, jpeg_decode.cc, png_decode.cc and
// resample.cc: a decoded rectangle of pixels and the codec entry points that
// fill one. Not for use outside worker/data.
#pragma once

#include <cstddef>
#include <cstdint>

#include "worker/data/image_decode.h"

namespace dtrain::data::detail {

// Pixels [x0, x0 + w) × [y0, y0 + h) of an image_w × image_h image (c bytes per
// pixel, rows `stride` bytes apart). The image may be a DCT-scaled version of
// the file's image.
struct PixelRegion {
  const uint8_t* pixels = nullptr;
  size_t stride = 0;
  int x0 = 0, y0 = 0, w = 0, h = 0, c = 0;
  int image_w = 0, image_h = 0;
  size_t slack = 0;  // readable bytes after the last row's last pixel
};

// Decoders allocate this many readable bytes after their pixels (PixelRegion::slack).
constexpr size_t kPixelSlack = 16;

// Larger images are refused (kDataLoss) before any pixel buffer is
// allocated: Pillow's decompression-bomb error threshold (2 × MAX_IMAGE_PIXELS).
constexpr int64_t kMaxImagePixels = 178956970;

// Integer pixel rectangle [x0, x1) × [y0, y1).
struct IntRect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

// The source pixels Pillow's BILINEAR filter reads to resample `box` of an
// image_w × image_h image to out_w × out_h (clamped to the image, or to the
// box's own pixels when box.crop_first).
IntRect FilterFootprint(const BoxF& box, int image_w, int image_h, int out_w, int out_h);

// Resamples `box` (coordinates of the region's image) to out_w × out_h; the
// region must hold FilterFootprint(box, ...).
void ResampleRegion(const PixelRegion& src, const BoxF& box, int out_w, int out_h, bool flip, uint8_t* out,
                    DecodeScratch* scratch);

// JPEG (libjpeg-turbo). After the header is read, `plan` (given the file's
// ImageInfo; it may throw) says at which DCT scale M/8 to decode and which
// pixels of the scaled image are needed; the decoded region covers them and
// may be larger. Pixels are written to scratch->pixels.
struct JpegRequest {
  int scale_m = 8;
  bool whole = true;  // false: only `want` (scaled-image coordinates)
  IntRect want;
};
using JpegPlanner = JpegRequest (*)(const ImageInfo& info, const void* ctx);
ImageInfo ReadJpegInfo(const uint8_t* data, size_t size);
PixelRegion DecodeJpeg(const uint8_t* data, size_t size, ColorMode mode, JpegPlanner plan, const void* plan_ctx,
                       DecodeScratch* scratch, ImageInfo* info);
// Size of the image DecodeJpeg produces at scale M/8 (libjpeg's rounding up).
inline int ScaledSize(int size, int scale_m) { return (size * scale_m + 7) / 8; }

// PNG (libpng): the whole image, 8-bit RGB or grey, written to scratch->pixels.
ImageInfo ReadPngInfo(const uint8_t* data, size_t size);
PixelRegion DecodePng(const uint8_t* data, size_t size, ColorMode mode, DecodeScratch* scratch, ImageInfo* info);

// Pillow's RGB -> L (ITU-R 601-2 luma, 16-bit fixed point), in place safe
// when dst <= src.
void RgbToGrey(const uint8_t* src, int pixels, uint8_t* dst);

}  // namespace dtrain::data::detail
