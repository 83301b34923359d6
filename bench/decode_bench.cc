// decode_bench: the CPU cost of ImageNet training input, per image. Reads
// every image file under DIR into memory first (the disk is not measured),
// then on T threads decodes each with a torchvision RandomResizedCrop box
// (scale 0.08-1, ratio 3/4-4/3) and a random horizontal flip into a 224×224
// RGB uint8 crop — the training pipeline's own AugmentTrainImage — with and
// without DCT scaling. Prints
// images/s and images/s per thread (= per core when T <= cores) for T = 1 and
// T = all cores, the share of images DCT scaling applied to (ChooseDctScale
// < 8: JPEG boxes >= 2x the output; none for ImageNet-sized files at 224),
// and machine-readable "RESULT mode threads images seconds images_per_s"
// lines for bench/decode_vs_pillow.sh. No assertions: it reports.
//   usage: decode_bench DIR [--seconds S] [--threads 1,N] [--dct both|on|off] [--size 224] [--seed 1]
// Boxes and flips are a function of (seed, file index, pass), never of timing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "worker/data/image_augment.h"
#include "worker/data/image_decode.h"

namespace {

using namespace dtrain;
using namespace dtrain::data;
namespace fs = std::filesystem;

struct File {
  std::string path;
  std::vector<uint8_t> bytes;
};

bool IsImage(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".jpeg" || e == ".jpg" || e == ".png";
}

std::vector<File> LoadAll(const std::string& dir) {
  if (!fs::is_directory(dir)) Fail(ErrorCode::kNotFound, dir + ": not a directory");
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && IsImage(e.path())) paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) Fail(ErrorCode::kNotFound, dir + ": no .jpeg/.jpg/.png files below it");
  std::vector<File> files;
  files.reserve(paths.size());
  for (auto& p : paths) {
    std::ifstream f(p, std::ios::binary);
    if (!f) Fail(ErrorCode::kNotFound, p + ": cannot open");
    files.push_back({p, std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>())});
  }
  return files;
}

struct Config {
  double seconds = 3.0;
  std::vector<int> threads;
  std::vector<bool> dct = {true, false};
  int size = 224;
  uint64_t seed = 1;
};

ImageAugmentOptions Options(const Config& c, bool dct) {
  ImageAugmentOptions o;
  o.augment.crop = "random-resized";
  o.augment.dct_scaling = dct;
  o.image_size = c.size;
  o.seed = c.seed;
  return o;
}

// One image through the training pipeline's own transform (AugmentTrainImage:
// RandomResizedCrop box and flip from (seed, pass, index), region decode,
// resize); errors name the file.
void DoOne(const File& f, const ImageAugmentOptions& o, uint64_t index, uint64_t pass, std::vector<uint8_t>* out,
           DecodeScratch* scratch) {
  try {
    AugmentTrainImage(f.bytes.data(), f.bytes.size(), o, int64_t(pass), int64_t(index), out->data(), scratch);
  } catch (const Error& e) {
    throw Error(e.code(), f.path + ": " + e.what());
  }
}

// Share of the first pass's crops that decode at a DCT scale below 1 (not timed).
double ScaledShare(const std::vector<File>& files, const ImageAugmentOptions& o) {
  if (!o.augment.dct_scaling || files.empty()) return 0;
  long scaled = 0;
  for (size_t k = 0; k < files.size(); ++k) {
    const ImageInfo info = ReadImageInfo(files[k].bytes.data(), files[k].bytes.size());
    const ResizedCrop rc = DrawResizedCrop(o, info.width, info.height, 0, int64_t(k));
    scaled += info.format == ImageFormat::kJpeg && ChooseDctScale(rc.box.width, rc.box.height, o.image_size,
                                                                  o.image_size) < 8;
  }
  return double(scaled) / double(files.size());
}

struct Result {
  long images = 0;
  double scaled_share = 0;
  double seconds = 0;
};

// T threads take the next image from a shared counter until S seconds have
// passed (checked per image); the images done are counted.
Result Measure(const std::vector<File>& files, const Config& c, int threads, bool dct) {
  std::atomic<long> next{0};
  std::atomic<bool> stop{false};
  std::vector<long> done(threads, 0);
  const ImageAugmentOptions o = Options(c, dct);
  std::vector<std::string> errors(threads);
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + std::chrono::duration<double>(c.seconds);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<uint8_t> out(size_t(c.size) * c.size * 3);
      DecodeScratch scratch;
      try {
        while (!stop.load(std::memory_order_relaxed)) {
          long k = next.fetch_add(1, std::memory_order_relaxed);
          DoOne(files[k % files.size()], o, k % files.size(), k / files.size(), &out, &scratch);
          ++done[t];
          if (std::chrono::steady_clock::now() >= deadline) stop = true;
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        stop = true;
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (!e.empty()) Fail(ErrorCode::kDataLoss, e);
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int t = 0; t < threads; ++t) r.images += done[t];
  r.scaled_share = ScaledShare(files, o);
  return r;
}

Config Parse(int argc, char** argv, std::string* dir) {
  Config c;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  c.threads = {1};
  if (cores > 1) c.threads.push_back(cores);
  auto need = [&](int i) {
    if (i + 1 >= argc) Fail(ErrorCode::kInvalidArgument, std::string(argv[i]) + " needs a value");
    return std::string(argv[i + 1]);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds") {
      c.seconds = std::atof(need(i).c_str()), ++i;
      if (!(c.seconds > 0)) Fail(ErrorCode::kInvalidArgument, "--seconds must be > 0");
    } else if (a == "--threads") {
      c.threads.clear();
      std::stringstream ss(need(i));
      ++i;
      for (std::string t; std::getline(ss, t, ',');) {
        int n = std::atoi(t.c_str());
        if (n < 1 || n > 1024) Fail(ErrorCode::kInvalidArgument, "--threads: '" + t + "' is not in 1..1024");
        c.threads.push_back(n);
      }
    } else if (a == "--dct") {
      std::string v = need(i);
      ++i;
      if (v == "both") c.dct = {true, false};
      else if (v == "on") c.dct = {true};
      else if (v == "off") c.dct = {false};
      else Fail(ErrorCode::kInvalidArgument, "--dct '" + v + "': both, on or off");
    } else if (a == "--size") {
      c.size = std::atoi(need(i).c_str()), ++i;
      if (c.size < 1 || c.size > 4096) Fail(ErrorCode::kInvalidArgument, "--size must be in 1..4096");
    } else if (a == "--seed") {
      c.seed = std::strtoull(need(i).c_str(), nullptr, 10), ++i;
    } else if (dir->empty() && a[0] != '-') {
      *dir = a;
    } else {
      Fail(ErrorCode::kInvalidArgument,
           "usage: decode_bench DIR [--seconds S] [--threads 1,N] [--dct both|on|off] [--size 224] [--seed 1]");
    }
  }
  if (dir->empty()) Fail(ErrorCode::kInvalidArgument, "decode_bench: DIR (an image folder) is required");
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dir;
    Config c = Parse(argc, argv, &dir);
    std::vector<File> files = LoadAll(dir);
    size_t bytes = 0;
    for (auto& f : files) bytes += f.bytes.size();
    std::printf("decode_bench: %zu files, %.1f MB (%.1f KB/file) from %s, %u hardware threads, %dx%d RGB output\n",
                files.size(), bytes / 1e6, bytes / 1e3 / files.size(), dir.c_str(),
                std::thread::hardware_concurrency(), c.size, c.size);
    {  // warm-up: page in the code and the scratch buffers, and fail early on a bad file
      Config w = c;
      w.seconds = 0.2;
      Measure(files, w, 1, true);
    }
    std::printf("%-8s %7s %8s %8s %10s %15s %12s\n", "mode", "threads", "images", "seconds", "images/s",
                "images/s/thread", "DCT-scaled");
    std::vector<std::string> machine;
    for (int t : c.threads) {
      for (bool dct : c.dct) {
        Result r = Measure(files, c, t, dct);
        double ips = r.images / r.seconds;
        const char* mode = dct ? "dct" : "no-dct";
        std::printf("%-8s %7d %8ld %8.2f %10.1f %15.1f %11.1f%%\n", mode, t, r.images, r.seconds, ips, ips / t,
                    100.0 * r.scaled_share);
        std::fflush(stdout);
        char line[160];
        std::snprintf(line, sizeof line, "RESULT %s %d %ld %.3f %.1f", mode, t, r.images, r.seconds, ips);
        machine.push_back(line);
      }
    }
    for (auto& l : machine) std::printf("%s\n", l.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_bench: %s\n", e.what());
    return 1;
  }
}
