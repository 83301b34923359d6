// image_probe: a command-line window onto worker/data/image_decode.h and
// crop_box.h, so the Python reference tests (tests/integration/
// test_image_reference.py) can compare our decoder and crop boxes with Pillow
// and torchvision on the same files and draws.
//   image_probe info FILE                      -> "jpeg|png W H COMPONENTS"
//   image_probe decode FILE rgb|grey OUT.raw   -> "W H C", OUT = H·W·C bytes, HWC
//   image_probe crop FILE x0 y0 x1 y1 OUT_W OUT_H flip(0|1) dct(0|1) rgb|grey OUT.raw [crop_first(0|1)]
//                                              -> "OUT_W OUT_H C", OUT as above (BoxF::crop_first, default 0)
//   image_probe rrc W H scale_min scale_max ratio_min ratio_max u1 u2 ...
//                                              -> "top left h w" (u: the U[0,1) draws in order)
//   image_probe rrc -                          -> the same for every stdin line "W H smin smax rmin rmax u1 u2 ..."
//   image_probe evalbox W H resize crop        -> "x0 y0 x1 y1" (%.17g)
//   image_probe dctscale BOX_W BOX_H OUT_W OUT_H -> "M"
// Errors (bad usage, unreadable file, a decode error): the message on stderr, exit 1.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/data/crop_box.h"
#include "worker/data/image_decode.h"

namespace {

using namespace dtrain;
using namespace dtrain::data;

const char kUsage[] =
    "usage: image_probe info FILE\n"
    "       image_probe decode FILE rgb|grey OUT.raw\n"
    "       image_probe crop FILE x0 y0 x1 y1 OUT_W OUT_H flip(0|1) dct(0|1) rgb|grey OUT.raw [crop_first(0|1)]\n"
    "       image_probe rrc W H scale_min scale_max ratio_min ratio_max u1 u2 ...\n"
    "       image_probe rrc -    (one case per stdin line: W H scale_min scale_max ratio_min ratio_max u1 u2 ...)\n"
    "       image_probe evalbox W H resize crop\n"
    "       image_probe dctscale BOX_W BOX_H OUT_W OUT_H";

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) Fail(ErrorCode::kNotFound, path + ": cannot open");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) Fail(ErrorCode::kInternal, path + ": cannot write " + std::to_string(bytes.size()) + " bytes");
}

double Num(const char* s, const char* what) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s || *end != '\0') Fail(ErrorCode::kInvalidArgument, std::string(what) + ": '" + s + "' is not a number");
  return v;
}

int Int(const char* s, const char* what) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0')
    Fail(ErrorCode::kInvalidArgument, std::string(what) + ": '" + s + "' is not an integer");
  return static_cast<int>(v);
}

ColorMode Mode(const std::string& s) {
  if (s == "rgb") return ColorMode::kRgb;
  if (s == "grey") return ColorMode::kGrey;
  Fail(ErrorCode::kInvalidArgument, "mode '" + s + "': rgb or grey");
}

bool Flag(const char* s, const char* what) {
  std::string v = s;
  if (v == "0" || v == "1") return v == "1";
  Fail(ErrorCode::kInvalidArgument, std::string(what) + " '" + v + "': 0 or 1");
}

// args: W H scale_min scale_max ratio_min ratio_max u1 u2 ...; prints "top left h w".
void PrintRrc(const std::vector<const char*>& a) {
  if (a.size() < 6) Fail(ErrorCode::kInvalidArgument, "rrc needs W H scale_min scale_max ratio_min ratio_max u...");
  int w = Int(a[0], "W"), h = Int(a[1], "H");
  RrcParams p{Num(a[2], "scale_min"), Num(a[3], "scale_max"), Num(a[4], "ratio_min"), Num(a[5], "ratio_max")};
  size_t next = 6;
  IntBox b = RandomResizedCropBox(w, h, p, [&]() -> double {
    if (next >= a.size())
      Fail(ErrorCode::kInvalidArgument, "rrc used more than the " + std::to_string(a.size() - 6) + " draws given");
    return Num(a[next++], "u");
  });
  std::printf("%d %d %d %d\n", b.top, b.left, b.height, b.width);
}

// The library reports what is wrong; the tool adds the file, as callers must.
template <typename F>
auto WithPath(const std::string& path, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

int Run(int argc, char** argv) {
  if (argc < 2) Fail(ErrorCode::kInvalidArgument, kUsage);
  const std::string cmd = argv[1];
  if (cmd == "info" && argc == 3) {
    auto bytes = ReadFile(argv[2]);
    ImageInfo info = WithPath(argv[2], [&] { return ReadImageInfo(bytes.data(), bytes.size()); });
    std::printf("%s %d %d %d\n", info.format == ImageFormat::kJpeg ? "jpeg" : "png", info.width, info.height,
                info.components);
    return 0;
  }
  if (cmd == "decode" && argc == 5) {
    auto bytes = ReadFile(argv[2]);
    ColorMode mode = Mode(argv[3]);
    ImageInfo info;
    auto pixels = WithPath(argv[2], [&] { return DecodeFull(bytes.data(), bytes.size(), mode, &info); });
    WriteFile(argv[4], pixels);
    std::printf("%d %d %d\n", info.width, info.height, mode == ColorMode::kRgb ? 3 : 1);
    return 0;
  }
  if (cmd == "crop" && (argc == 13 || argc == 14)) {
    auto bytes = ReadFile(argv[2]);
    BoxF box{Num(argv[3], "x0"), Num(argv[4], "y0"), Num(argv[5], "x1"), Num(argv[6], "y1")};
    box.crop_first = argc == 14 && Flag(argv[13], "crop_first");
    int ow = Int(argv[7], "OUT_W"), oh = Int(argv[8], "OUT_H");
    if (ow <= 0 || oh <= 0 || ow > 65536 || oh > 65536)
      Fail(ErrorCode::kInvalidArgument, "OUT_W x OUT_H must be in 1..65536");
    bool flip = Flag(argv[9], "flip"), dct = Flag(argv[10], "dct");
    ColorMode mode = Mode(argv[11]);
    int c = mode == ColorMode::kRgb ? 3 : 1;
    std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * c);
    DecodeScratch scratch;
    WithPath(argv[2], [&] {
      DecodeCropResize(bytes.data(), bytes.size(), box, ow, oh, flip, mode, dct, out.data(), &scratch);
      return 0;
    });
    WriteFile(argv[12], out);
    std::printf("%d %d %d\n", ow, oh, c);
    return 0;
  }
  if (cmd == "rrc" && argc == 3 && std::string(argv[2]) == "-") {
    std::string line;
    for (int n = 1; std::getline(std::cin, line); ++n) {
      std::istringstream ss(line);
      std::vector<std::string> words{std::istream_iterator<std::string>(ss), std::istream_iterator<std::string>()};
      if (words.empty()) continue;
      std::vector<const char*> args;
      for (auto& w : words) args.push_back(w.c_str());
      try {
        PrintRrc(args);
      } catch (const Error& e) {
        throw Error(e.code(), "stdin line " + std::to_string(n) + ": " + e.what());
      }
    }
    return 0;
  }
  if (cmd == "rrc" && argc >= 8) {
    PrintRrc(std::vector<const char*>(argv + 2, argv + argc));
    return 0;
  }
  if (cmd == "evalbox" && argc == 6) {
    BoxF b = EvalBox(Int(argv[2], "W"), Int(argv[3], "H"), Int(argv[4], "resize"), Int(argv[5], "crop"));
    std::printf("%.17g %.17g %.17g %.17g\n", b.x0, b.y0, b.x1, b.y1);
    return 0;
  }
  if (cmd == "dctscale" && argc == 6) {
    std::printf("%d\n", ChooseDctScale(Num(argv[2], "BOX_W"), Num(argv[3], "BOX_H"), Int(argv[4], "OUT_W"),
                                       Int(argv[5], "OUT_H")));
    return 0;
  }
  Fail(ErrorCode::kInvalidArgument, kUsage);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "image_probe: %s\n", e.what());
    return 1;
  }
}
