// PNG decoding with libpng's progressive-free read API, to what Pillow 9.4's
// Image.open(f).convert('RGB') (or 'L') gives: palette expanded, 1/2/4-bit
// grey scaled to 8 bits, 16-bit samples cut to their high byte (Pillow's
// ";16B" raw modes), alpha and tRNS dropped (not composited), no gamma.
// One deliberate difference: Pillow 9.4 opens 16-bit greyscale as mode "I"
// and its I -> RGB conversion clips the 16-bit value to 255 (a white image);
// here it becomes its high byte, like every other 16-bit PNG.
// Greyscale output (kGrey) of a colour PNG uses Pillow's RGB -> L.
// libpng errors (bad CRC in a critical chunk, truncated data, bad header)
// longjmp back here and become Error(kDataLoss, libpng's message).
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/error.h"
#include "worker/data/image_decode_internal.h"

namespace dtrain::data::detail {
namespace {

struct Reader {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  char message[256] = {};
};

void ReadBytes(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) {
    std::snprintf(r->message, sizeof(r->message), "truncated: needs %zu bytes at offset %zu, the file has %zu",
                  static_cast<size_t>(n), r->pos, r->size);
    png_error(png, r->message);
  }
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

[[noreturn]] void OnError(png_structp png, png_const_charp msg) {
  auto* r = static_cast<Reader*>(png_get_error_ptr(png));
  if (msg != r->message) std::snprintf(r->message, sizeof(r->message), "%s", msg);
  png_longjmp(png, 1);
}

void OnWarning(png_structp, png_const_charp) {}  // ancillary-chunk trouble: harmless

struct Job {
  ColorMode mode = ColorMode::kRgb;
  bool header_only = false;
  DecodeScratch* scratch = nullptr;
  ImageInfo info;
  PixelRegion region;
  bool colour = false;  // the decoded rows are RGB (else grey)
};

// Returns false after a libpng error (message in reader->message).
bool RunDecode(Job* job, png_structp png, png_infop info, Reader* reader) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, reader, ReadBytes);
  png_set_user_limits(png, 1u << 16, 1u << 16);
  png_read_info(png, info);
  const png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
  const int color_type = png_get_color_type(png, info);
  const bool colour = (color_type & PNG_COLOR_MASK_COLOR) != 0;  // RGB, RGBA, palette
  job->info.format = ImageFormat::kPng;
  job->info.width = static_cast<int>(width);
  job->info.height = static_cast<int>(height);
  job->info.components = (colour ? 3 : 1) + ((color_type & PNG_COLOR_MASK_ALPHA) != 0 ? 1 : 0);
  if (job->header_only) return true;
  if (int64_t{width} * height > kMaxImagePixels) {
    std::snprintf(reader->message, sizeof(reader->message), "%ux%u image exceeds the limit of %lld pixels", width,
                  height, static_cast<long long>(kMaxImagePixels));
    return false;
  }

  png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);
  if (job->mode == ColorMode::kRgb && !colour) png_set_gray_to_rgb(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  const size_t stride = png_get_rowbytes(png, info);
  job->scratch->pixels.resize(stride * height + kPixelSlack);
  uint8_t* base = job->scratch->pixels.data();
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < height; ++y) png_read_row(png, base + stride * y, nullptr);
  png_read_end(png, nullptr);
  job->colour = channels == 3;
  job->region.pixels = base;
  job->region.stride = stride;
  job->region.w = job->region.image_w = static_cast<int>(width);
  job->region.h = job->region.image_h = static_cast<int>(height);
  job->region.c = channels;
  job->region.slack = kPixelSlack;
  return true;
}

void Run(const uint8_t* data, size_t size, Job* job) {
  Reader reader;
  reader.data = data;
  reader.size = size;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, OnError, OnWarning);
  if (png == nullptr) Fail(ErrorCode::kInternal, "PNG: png_create_read_struct failed");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    Fail(ErrorCode::kInternal, "PNG: png_create_info_struct failed");
  }
  bool ok = false;
  try {
    ok = RunDecode(job, png, info, &reader);
  } catch (...) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  if (!ok) Fail(ErrorCode::kDataLoss, std::string("PNG: ") + reader.message);
}

}  // namespace

ImageInfo ReadPngInfo(const uint8_t* data, size_t size) {
  Job job;
  job.header_only = true;
  Run(data, size, &job);
  return job.info;
}

PixelRegion DecodePng(const uint8_t* data, size_t size, ColorMode mode, DecodeScratch* scratch, ImageInfo* info) {
  Job job;
  job.mode = mode;
  job.scratch = scratch;
  Run(data, size, &job);
  if (info != nullptr) *info = job.info;
  PixelRegion r = job.region;
  if (mode == ColorMode::kGrey && job.colour) {
    for (int y = 0; y < r.h; ++y) {
      uint8_t* row = scratch->pixels.data() + static_cast<size_t>(y) * r.stride;
      RgbToGrey(row, r.w, row);
    }
    r.c = 1;
  }
  return r;
}

}  // namespace dtrain::data::detail
