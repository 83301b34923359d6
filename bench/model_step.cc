// bench_model_step: forward+backward throughput of a ResNet on the CPU kernels
// and a per-layer time breakdown of one step.
//   bench_model_step [--model resnet20] [--batch 128] [--image 28]
//                    [--channels 1] [--classes 10] [--steps 5] [--threads 1,2]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/model/model.h"

using dtrain::model::BuildModel;
using dtrain::model::ModelOptions;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double CpuNow() {  // CPU seconds of the whole process (all BLAS threads)
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

std::string Kind(const std::string& layer) {
  if (layer.find("add_relu") != std::string::npos) return "add+relu";
  if (layer.find("downsample.0") != std::string::npos || layer.find("conv") != std::string::npos)
    return "conv";
  if (layer.find("downsample.1") != std::string::npos || layer.find("bn") != std::string::npos)
    return "bn(+relu)";
  return layer;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "resnet20";
  int batch = 128, image = 28, channels = 1, classes = 10, steps = 5;
  std::vector<int> threads = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--batch") batch = std::atoi(v.c_str());
    else if (k == "--image") image = std::atoi(v.c_str());
    else if (k == "--channels") channels = std::atoi(v.c_str());
    else if (k == "--classes") classes = std::atoi(v.c_str());
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--threads") {
      threads.clear();
      for (const char* p = v.c_str(); *p;) {
        threads.push_back(std::atoi(p));
        p = std::strchr(p, ',') ? std::strchr(p, ',') + 1 : p + std::strlen(p);
      }
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  try {
    ModelOptions opt;
    opt.in_channels = channels;
    opt.num_classes = classes;
    opt.image_size = image;
    opt.max_batch = batch;
    auto m = BuildModel<float>(model, opt, 1);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(size_t(batch) * channels * image * image);
    for (auto& v : x) v = nd(rng);
    std::vector<int32_t> y(batch);
    for (int i = 0; i < batch; ++i) y[i] = i % classes;
    std::printf("%s, %d x %d x %d, %d classes, batch %d, %zu params\n", model.c_str(), channels,
                image, image, classes, batch, m->num_params());
    std::printf("%-8s %10s %10s %10s %14s\n", "threads", "step_ms", "fwd_ms", "images/s",
                "images/cpu_s");
    for (int t : threads) {
      openblas_set_num_threads(t);
      for (int i = 0; i < 2; ++i) {  // warm-up
        m->Forward(x.data(), y.data(), batch, true, 0.1);
        m->Backward();
      }
      double fwd = 0;
      const double t0 = Now(), c0 = CpuNow();
      for (int i = 0; i < steps; ++i) {
        const double f0 = Now();
        m->Forward(x.data(), y.data(), batch, true, 0.1);
        fwd += Now() - f0;
        m->Backward();
      }
      const double step = (Now() - t0) / steps, cpu = (CpuNow() - c0) / steps;
      std::printf("%-8d %10.1f %10.1f %10.1f %14.1f\n", t, step * 1e3, fwd / steps * 1e3,
                  batch / step, batch / cpu);
    }

    // Per-layer breakdown, single BLAS thread, averaged over the steps.
    openblas_set_num_threads(1);
    m->set_profiling(true);
    m->ResetProfile();
    for (int i = 0; i < steps; ++i) {
      m->Forward(x.data(), y.data(), batch, true, 0.1);
      m->Backward();
    }
    double total = 0;
    std::map<std::string, std::pair<double, double>> kinds;
    for (const auto& p : m->profile()) {
      total += p.forward_s + p.backward_s;
      auto& k = kinds[Kind(p.name)];
      k.first += p.forward_s / steps;
      k.second += p.backward_s / steps;
    }
    total /= steps;
    std::printf("\nper-layer time, 1 BLAS thread, ms per step (total %.1f ms)\n", total * 1e3);
    std::printf("%-28s %9s %9s %7s\n", "layer", "fwd_ms", "bwd_ms", "share");
    for (const auto& p : m->profile())
      std::printf("%-28s %9.2f %9.2f %6.1f%%\n", p.name.c_str(), p.forward_s / steps * 1e3,
                  p.backward_s / steps * 1e3,
                  100 * (p.forward_s + p.backward_s) / steps / total);
    std::printf("\n%-28s %9s %9s %7s\n", "op kind", "fwd_ms", "bwd_ms", "share");
    for (const auto& [k, v] : kinds)
      std::printf("%-28s %9.2f %9.2f %6.1f%%\n", k.c_str(), v.first * 1e3, v.second * 1e3,
                  100 * (v.first + v.second) / total);
  } catch (const dtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
