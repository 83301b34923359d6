// Decoding one encoded image into a resampled uint8 crop, as the ImageNet
// input pipeline needs it (one call per image, on a data thread).
//
//  * Formats: baseline and progressive JPEG (libjpeg-turbo's libjpeg API, so a
//    region of the image can be decoded at a DCT-domain scale, skipping most
//    of the IDCT and colour conversion), greyscale, RGB, CMYK and YCCK JPEGs
//    (Adobe inverted CMYK, converted to RGB as Pillow does); PNG (libpng; any
//    bit depth, palette, alpha dropped), which ImageNet has disguised as .JPEG.
//    The format is sniffed from the bytes, never from the file name.
//  * Output: out_w × out_h × C uint8, HWC (C = 3 for kRgb, 1 for kGrey).
//  * Resampling: the source box [x0, x1) × [y0, y1) (full-resolution pixel
//    coordinates, fractional allowed) is resampled to out_w × out_h with
//    Pillow's BILINEAR filter (a triangle filter whose support grows with the
//    shrink factor, i.e. antialiased when shrinking; the same definition as
//    PIL.Image.resize(size, BILINEAR, box)), then flipped horizontally if asked.
//    BoxF::crop_first selects PIL img.crop(box).resize(size) instead.
//  * DCT scaling (dct_scaling = true): the JPEG is decoded at the smallest
//    scale M/8 (M = 1, 2, 4, 8) that still leaves the box at least
//    out_w × out_h (ChooseDctScale); the box is mapped into the scaled image.
//    Either way only the rows and columns the filter reads are decoded. With
//    dct_scaling = false the full-resolution decode is resampled, which is
//    what Pillow without draft() computes: the same bytes for integer boxes
//    (the decode itself is bit-identical to Pillow's convert('RGB')), within
//    ±1 for fractional ones (Pillow rounds the box to float32; here it stays
//    double, which makes EvalBox reproduce torchvision's Resize + CenterCrop
//    exactly).
//  * Greyscale (kGrey) of a colour JPEG is libjpeg's luma, the same bytes as
//    Pillow's draft('L'); Pillow's convert('L') of the RGB decode differs by
//    up to ~14 at sharp colour edges (chroma upsampling). PNG, CMYK: Pillow's
//    convert('L').
// Errors: Error(kDataLoss) with what is wrong (truncated data, not an image,
// corrupt scan data, unsupported colour space, zero size); the caller adds
// the path or shard offset. Never a partial output that looks valid. A crop
// that stops decoding early still fails on a truncated file (it looks for the
// end-of-image marker). Tolerated: libjpeg's "extraneous bytes before marker"
// (the scan decoded completely; Pillow reads such files too).
// Thread safety: any number of concurrent calls, one DecodeScratch each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dtrain::data {

enum class ImageFormat { kJpeg, kPng };
enum class ColorMode { kRgb, kGrey };

struct ImageInfo {
  ImageFormat format = ImageFormat::kJpeg;
  int width = 0, height = 0;
  int components = 0;  // in the file: 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK (PNG: after expansion)
};

struct BoxF {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) × [y0, y1), in source pixels
  // false: PIL img.resize(size, BILINEAR, box): the filter also reads the
  //   pixels just outside the box (what torchvision's Resize + CenterCrop
  //   computes; EvalBox's boxes).
  // true: PIL img.crop(box).resize(size, BILINEAR): only the pixels inside the
  //   box, [floor(x0), ceil(x1)) (torchvision's RandomResizedCrop crops, then
  //   resizes; CropBoxF). On a real photo the two differ by up to ~30 levels in
  //   the outermost output rows and columns.
  bool crop_first = false;
};

// Reads only the header. Error(kDataLoss) if the bytes are neither JPEG nor PNG
// or the header is corrupt.
ImageInfo ReadImageInfo(const uint8_t* data, size_t size);

// The DCT scale numerator M (scale M/8, M in {1, 2, 4, 8}): the smallest M
// with floor-free box size box_w·M/8 >= out_w and box_h·M/8 >= out_h; 8 when
// no smaller one qualifies (upscaling included). 3/8 and 5/8..7/8 are left
// out on purpose: libjpeg-turbo has no SIMD IDCT for them, so they gain
// little or lose against 8/8 (500x375 photos, whole decode: 3/8 takes 0.9x
// the 8/8 time, 5/8 1.3-1.5x, 6/8 1.5-1.7x, 7/8 1.9-2.4x; 4/8 0.75x, 2/8
// 0.6x).
int ChooseDctScale(double box_w, double box_h, int out_w, int out_h);

// Reusable per-thread buffers (decoded rows, resampling coefficients and
// accumulators; `tmp` is unused).
struct DecodeScratch {
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> rows;
  std::vector<float> tmp;
  std::vector<double> coeffs;
  std::vector<int> bounds;
};

// Decodes `data`, resamples `box` to out_w × out_h × C and writes it to `out`
// (out_w·out_h·C bytes), mirrored left-right when `flip`. `box` must lie
// inside the image (Error(kInvalidArgument) otherwise).
void DecodeCropResize(const uint8_t* data, size_t size, const BoxF& box, int out_w, int out_h, bool flip,
                      ColorMode mode, bool dct_scaling, uint8_t* out, DecodeScratch* scratch);

// The whole image at full resolution, width × height × C (tests, tools).
std::vector<uint8_t> DecodeFull(const uint8_t* data, size_t size, ColorMode mode, ImageInfo* info);

// Pillow's BILINEAR resample of `box` of a width × height × c uint8 HWC image
// to out_w × out_h × c (exposed for tests and for in-memory data sets).
void ResampleBilinear(const uint8_t* src, int width, int height, int c, const BoxF& box, int out_w, int out_h,
                      bool flip, uint8_t* out, DecodeScratch* scratch);

}  // namespace dtrain::data
