// JPEG decoding with libjpeg-turbo's libjpeg API: DCT-domain scaling
// (scale_num / 8), jpeg_crop_scanline for the needed columns,
// jpeg_skip_scanlines for the rows above, and stopping after the last needed
// row. Settings are Pillow 9.4's: JDCT_ISLOW, fancy upsampling.
//
// Errors: libjpeg's error_exit longjmps back here and becomes
// Error(kDataLoss, libjpeg's message). Warnings that mean pixel data is
// missing or was decoded from garbage (premature end of file, premature end
// of a data segment, bad Huffman/arithmetic code, resync, bad scan
// parameters or progression) are errors too: libjpeg would otherwise return a
// partly grey or smeared image as if it were fine. Harmless warnings are
// ignored: extraneous bytes between segments (the scan data itself decoded
// completely; Pillow reads such files), unknown JFIF revision, unknown Adobe
// transform, bad ICC marker.
// A decode that stops before the last row cannot see a truncation further on;
// for sequential files it then requires an end-of-image marker after the data
// read so far (progressive files are read whole by jpeg_start_decompress).
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

// clang-format off
#include <jpeglib.h>  // first: jerror.h's message numbering depends on jconfig.h
#include <jerror.h>
// clang-format on

#include "common/error.h"
#include "worker/data/image_decode_internal.h"

namespace dtrain::data::detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void ErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

bool IsDataLossWarning(int code) {
  switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
    case JWRN_TOO_MUCH_DATA:
      return true;
    default:
      return false;
  }
}

void EmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  cinfo->err->num_warnings++;
  if (IsDataLossWarning(cinfo->err->msg_code)) ErrorExit(cinfo);
}

// What one decode asks for and gets back. Plain data: RunDecode may longjmp
// out of libjpeg back into itself, so nothing here needs a destructor.
struct Job {
  const uint8_t* data = nullptr;
  size_t size = 0;
  ColorMode mode = ColorMode::kRgb;
  JpegPlanner plan = nullptr;  // nullptr: header only
  const void* plan_ctx = nullptr;
  DecodeScratch* scratch = nullptr;
  ImageInfo info;
  PixelRegion region;
  bool cmyk = false;  // region holds Adobe (inverted) CMYK, 4 bytes per pixel
};

bool HasEoiMarker(const uint8_t* from, const uint8_t* end) {
  // Entropy-coded data never holds 0xFF 0xD9 (0xFF is stuffed as 0xFF 0x00).
  for (const uint8_t* p = from; p + 1 < end; ++p) {
    p = static_cast<const uint8_t*>(std::memchr(p, 0xFF, static_cast<size_t>(end - p - 1)));
    if (p == nullptr) return false;
    if (p[1] == 0xD9) return true;
  }
  return false;
}

// Returns false after a libjpeg error (message in err->message); the caller
// destroys the decompressor.
bool RunDecode(Job* job, jpeg_decompress_struct* cinfo, ErrorManager* err) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, job->data, static_cast<unsigned long>(job->size));
  jpeg_read_header(cinfo, TRUE);
  job->info.format = ImageFormat::kJpeg;
  job->info.width = static_cast<int>(cinfo->image_width);
  job->info.height = static_cast<int>(cinfo->image_height);
  job->info.components = cinfo->num_components;
  if (job->plan == nullptr) return true;
  if (int64_t{job->info.width} * job->info.height > kMaxImagePixels) {
    std::snprintf(err->message, sizeof(err->message), "%dx%d image exceeds the limit of %lld pixels", job->info.width,
                  job->info.height, static_cast<long long>(kMaxImagePixels));
    return false;
  }
  const JpegRequest request = job->plan(job->info, job->plan_ctx);  // may throw: nothing to unwind in libjpeg

  const bool grey_out = job->mode == ColorMode::kGrey;
  switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
      cinfo->out_color_space = grey_out ? JCS_GRAYSCALE : JCS_RGB;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      cinfo->out_color_space = JCS_CMYK;
      job->cmyk = true;
      break;
    default:
      std::snprintf(err->message, sizeof(err->message),
                    "unsupported JPEG colour space (%d components); supported: greyscale, YCbCr, RGB, CMYK, YCCK",
                    cinfo->num_components);
      return false;
  }
  cinfo->scale_num = static_cast<unsigned>(request.scale_m);
  cinfo->scale_denom = 8;
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->do_fancy_upsampling = TRUE;
  jpeg_start_decompress(cinfo);

  const int full_w = static_cast<int>(cinfo->output_width), full_h = static_cast<int>(cinfo->output_height);
  int x0 = 0, x1 = full_w, y0 = 0, y1 = full_h;
  if (!request.whole) {
    // One iMCU of margin: fancy upsampling treats the edges of a cropped
    // region like image edges, so the outermost decoded pixels may differ
    // from a full decode; the pixels the filter reads must not.
    const int mx = cinfo->max_h_samp_factor * cinfo->min_DCT_scaled_size;
    const int my = cinfo->max_v_samp_factor * cinfo->min_DCT_scaled_size;
    x0 = request.want.x0 - mx > 0 ? request.want.x0 - mx : 0;
    x1 = request.want.x1 + mx < full_w ? request.want.x1 + mx : full_w;
    y0 = request.want.y0 - my > 0 ? request.want.y0 - my : 0;
    y1 = request.want.y1 + my < full_h ? request.want.y1 + my : full_h;
  }
  if (x0 > 0 || x1 < full_w) {
    JDIMENSION xoff = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
    jpeg_crop_scanline(cinfo, &xoff, &width);  // moves xoff left to an iMCU boundary
    x0 = static_cast<int>(xoff);
    x1 = x0 + static_cast<int>(width);
  }
  const int comps = cinfo->output_components;
  const size_t stride = static_cast<size_t>(cinfo->output_width) * comps;
  job->scratch->pixels.resize(stride * static_cast<size_t>(y1 - y0) + kPixelSlack);
  if (y0 > 0) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(y0));
  uint8_t* base = job->scratch->pixels.data();
  while (static_cast<int>(cinfo->output_scanline) < y1) {
    JSAMPROW rows[16];
    const int at = static_cast<int>(cinfo->output_scanline);
    const int n = y1 - at < 16 ? y1 - at : 16;
    for (int i = 0; i < n; ++i) rows[i] = base + static_cast<size_t>(at - y0 + i) * stride;
    if (jpeg_read_scanlines(cinfo, rows, static_cast<JDIMENSION>(n)) == 0) {
      std::snprintf(err->message, sizeof(err->message), "libjpeg returned no scanline at row %d", at);
      return false;
    }
  }
  if (y1 == full_h && x1 - x0 == full_w) {
    jpeg_finish_decompress(cinfo);  // reads up to the end-of-image marker
  } else {
    // The entropy decoder may already have read the marker after the scan.
    const uint8_t* pos = cinfo->src->next_input_byte;
    const uint8_t* end = job->data + job->size;
    const bool in_data = pos >= job->data && pos <= end;  // else libjpeg's own fake EOI buffer
    const bool eoi = cinfo->unread_marker == 0xD9 || (in_data && HasEoiMarker(pos, end));
    if (!jpeg_has_multiple_scans(cinfo) && !eoi) {
      std::snprintf(err->message, sizeof(err->message),
                    "Premature end of JPEG file (no end-of-image marker after byte %zu of %zu)",
                    in_data ? static_cast<size_t>(pos - job->data) : job->size, job->size);
      return false;
    }
    jpeg_abort_decompress(cinfo);
  }
  job->region.pixels = base;
  job->region.stride = stride;
  job->region.x0 = x0;
  job->region.y0 = y0;
  job->region.w = x1 - x0;
  job->region.h = y1 - y0;
  job->region.c = comps;
  job->region.image_w = full_w;
  job->region.image_h = full_h;
  job->region.slack = kPixelSlack;
  return true;
}

// Owns the decompressor for one decode (destroyed on every path, exceptions included).
struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  Decompressor() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = ErrorExit;
    err.pub.emit_message = EmitMessage;
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
};

void Run(Job* job) {
  Decompressor d;
  if (!RunDecode(job, &d.cinfo, &d.err)) Fail(ErrorCode::kDataLoss, std::string("JPEG: ") + d.err.message);
}

// Adobe CMYK as libjpeg returns it is inverted (Pillow's "CMYK;I" rawmode);
// then Pillow's cmyk2rgb: nk = 255 - K, out = nk - C·nk/255 (rounded), in place.
void InvertedCmykToRgb(uint8_t* px, int pixels) {
  auto muldiv255 = [](int a, int b) {
    const int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (int i = 0; i < pixels; ++i) {
    const uint8_t* in = px + 4 * i;
    const int c = 255 - in[0], m = 255 - in[1], y = 255 - in[2], nk = in[3];
    uint8_t* out = px + 3 * i;
    const int r = nk - muldiv255(c, nk), g = nk - muldiv255(m, nk), b = nk - muldiv255(y, nk);
    out[0] = static_cast<uint8_t>(r < 0 ? 0 : r);
    out[1] = static_cast<uint8_t>(g < 0 ? 0 : g);
    out[2] = static_cast<uint8_t>(b < 0 ? 0 : b);
  }
}

}  // namespace

ImageInfo ReadJpegInfo(const uint8_t* data, size_t size) {
  Job job;
  job.data = data;
  job.size = size;
  Run(&job);
  return job.info;
}

PixelRegion DecodeJpeg(const uint8_t* data, size_t size, ColorMode mode, JpegPlanner plan, const void* plan_ctx,
                       DecodeScratch* scratch, ImageInfo* info) {
  Job job;
  job.data = data;
  job.size = size;
  job.mode = mode;
  job.plan = plan;
  job.plan_ctx = plan_ctx;
  job.scratch = scratch;
  Run(&job);
  if (info != nullptr) *info = job.info;
  PixelRegion r = job.region;
  if (job.cmyk) {
    for (int y = 0; y < r.h; ++y) {
      uint8_t* row = scratch->pixels.data() + static_cast<size_t>(y) * r.stride;
      InvertedCmykToRgb(row, r.w);
      if (mode == ColorMode::kGrey) RgbToGrey(row, r.w, row);
    }
    r.c = mode == ColorMode::kGrey ? 1 : 3;
  }
  return r;
}

}  // namespace dtrain::data::detail
