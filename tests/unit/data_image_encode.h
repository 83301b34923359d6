// Test helpers for the image decoder tests: JPEG and PNG encoders (libjpeg,
// libpng) writing to memory, and a synthetic photo-like test image.
#pragma once

#include <jpeglib.h>
#include <png.h>

#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>  // before jpeglib.h, which needs FILE
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace dtrain::data::testing {

// Smooth gradients, a sine texture and hard edges, c channels, HWC.
inline std::vector<uint8_t> PhotoLike(int w, int h, int c, int seed = 0) {
  std::vector<uint8_t> img(size_t(w) * h * c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < c; ++ch) {
        double v = 128 + 55 * std::sin(x * 0.071 + ch * 1.3 + seed) + 45 * std::cos(y * 0.053 - ch * 0.7) +
                   ((x / 23 + y / 17 + ch) % 2 ? 18 : -18) + 12 * std::sin((x + 2 * y) * 0.9 + ch);
        img[(size_t(y) * w + x) * c + ch] = static_cast<uint8_t>(std::lround(std::fmin(255, std::fmax(0, v))));
      }
  return img;
}

struct JpegOptions {
  int quality = 90;
  int h_samp = 2, v_samp = 2;  // luma sampling factors: 2,2 = 4:2:0; 2,1 = 4:2:2; 1,1 = 4:4:4
  bool progressive = false;
  J_COLOR_SPACE in_space = JCS_RGB;        // JCS_GRAYSCALE (1 byte), JCS_RGB (3), JCS_CMYK (4)
  J_COLOR_SPACE file_space = JCS_UNKNOWN;  // JCS_UNKNOWN: libjpeg's default for in_space; or e.g. JCS_YCCK
};

inline std::vector<uint8_t> EncodeJpeg(const std::vector<uint8_t>& px, int w, int h, const JpegOptions& o) {
  struct ErrorManager {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
  } err;
  jpeg_compress_struct cinfo;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = [](j_common_ptr c) { std::longjmp(reinterpret_cast<ErrorManager*>(c->err)->jump, 1); };
  unsigned char* mem = nullptr;
  unsigned long mem_size = 0;
  if (setjmp(err.jump)) {
    char message[JMSG_LENGTH_MAX];
    (*cinfo.err->format_message)(reinterpret_cast<j_common_ptr>(&cinfo), message);
    jpeg_destroy_compress(&cinfo);
    std::free(mem);
    throw std::runtime_error(std::string("EncodeJpeg: ") + message);
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &mem, &mem_size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.in_color_space = o.in_space;
  cinfo.input_components = o.in_space == JCS_GRAYSCALE ? 1 : o.in_space == JCS_CMYK ? 4 : 3;
  jpeg_set_defaults(&cinfo);
  if (o.file_space != JCS_UNKNOWN) jpeg_set_colorspace(&cinfo, o.file_space);
  jpeg_set_quality(&cinfo, o.quality, TRUE);
  const bool ycc = cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_YCCK;
  for (int i = 0; i < cinfo.num_components; ++i) {  // Y and K at h_samp × v_samp; chroma, RGB, CMYK at 1 × 1
    const bool subsampled_luma = ycc && (i == 0 || i == 3);
    cinfo.comp_info[i].h_samp_factor = subsampled_luma ? o.h_samp : 1;
    cinfo.comp_info[i].v_samp_factor = subsampled_luma ? o.v_samp : 1;
  }
  if (o.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = size_t(w) * cinfo.input_components;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(px.data() + stride * cinfo.next_scanline);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(mem, mem + mem_size);
  jpeg_destroy_compress(&cinfo);
  std::free(mem);
  return out;
}

// PNG from rows already in the file's sample layout (big-endian 16-bit
// samples, sub-byte depths packed), `palette` for PNG_COLOR_TYPE_PALETTE.
inline std::vector<uint8_t> EncodePng(const std::vector<std::vector<uint8_t>>& rows, int w, int bit_depth,
                                      int color_type, bool interlace = false,
                                      const std::vector<png_color>& palette = {},
                                      const std::vector<uint8_t>& trns = {}) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<uint8_t> out;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("EncodePng: libpng error");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(rows.size()), bit_depth, color_type,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!trns.empty()) png_set_tRNS(png, info, trns.data(), static_cast<int>(trns.size()), nullptr);
  png_write_info(png, info);
  std::vector<png_bytep> ptrs;
  for (const auto& r : rows) ptrs.push_back(const_cast<png_bytep>(r.data()));
  png_write_image(png, ptrs.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

}  // namespace dtrain::data::testing
