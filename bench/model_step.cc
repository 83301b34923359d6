// bench_model_step: forward+backward throughput of a ResNet on the CPU kernels
// and a per-layer time breakdown of one step.
//   bench_model_step [--model resnet20] [--batch 128] [--image 28]
//                    [--channels 1] [--classes 10] [--steps 5] [--threads 1,2]
//                    [--kernels auto|onednn|reference] [--profile-json FILE]
// --threads: OpenBLAS's threads (reference) or oneDNN's (onednn).
// --profile-json writes the per-layer breakdown (1 BLAS thread, mean over the
// steps) as the scaling model's profile (bench/scaling/README.md): layers in
// BACKWARD order, each with its forward/backward seconds, forward MACs per
// image and the parameter tensors whose gradients it makes ready (fp32 bytes).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/model/model.h"

using dtrain::model::BuildModel;
using dtrain::model::ModelOptions;
using dtrain::model::ResolveKernels;

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

// The profile layer that produces a tensor's gradient: "X.weight"/"X.bias"
// come from layer "X"; the FC's from the head ("gap_fc_loss").
std::string LayerOfTensor(const std::string& tensor) {
  const std::string layer = tensor.substr(0, tensor.rfind('.'));
  return layer == "fc" ? "gap_fc_loss" : layer;
}

std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

// Forward multiply-accumulates per image of every conv and the FC, by layer name.
std::map<std::string, double> MacsPerImage(const dtrain::model::ResnetArch& a) {
  std::map<std::string, double> macs;
  auto conv = [&](const dtrain::model::ArchConv& c) {
    macs[c.name] = double(c.shape.weight_size()) * c.shape.out_h() * c.shape.out_w();
  };
  conv(a.stem_conv);
  for (const auto& b : a.blocks) {
    for (int i = 0; i < b.nconv; ++i) conv(b.conv[i]);
    if (b.proj) conv(b.pconv);
  }
  macs["gap_fc_loss"] = double(a.feat_c) * a.num_classes;
  return macs;
}

// Writes the scaling model's profile (see the header comment).
void WriteProfileJson(const std::string& path, const dtrain::model::Model<float>& m,
                      int batch, int steps) {
  const auto& prof = m.profile();
  const auto& tensors = m.tensors();
  const auto macs = MacsPerImage(m.arch());
  std::map<std::string, std::vector<int>> tensors_of;  // layer -> tensor indices, decreasing
  for (int t = int(tensors.size()) - 1; t >= 0; --t) tensors_of[LayerOfTensor(tensors[t].name)].push_back(t);
  size_t matched = 0;
  double fwd = 0, bwd = 0;
  for (const auto& p : prof) {
    fwd += p.forward_s / steps;
    bwd += p.backward_s / steps;
  }
  std::ofstream f(path);
  if (!f) dtrain::Fail(dtrain::ErrorCode::kInvalidArgument, "--profile-json: cannot write " + path);
  char num[64];
  auto D = [&](double v) {
    std::snprintf(num, sizeof num, "%.9g", v);
    return std::string(num);
  };
  f << "{\n  \"model\": " << JsonString(m.name()) << ",\n  \"source\": "
    << JsonString("bench_model_step: CPU kernels, 1 BLAS thread, mean of " + std::to_string(steps) + " steps")
    << ",\n  \"batch\": " << batch << ",\n  \"image_size\": " << m.options().image_size
    << ",\n  \"grad_dtype\": \"fp32\",\n  \"forward_s\": " << D(fwd) << ",\n  \"backward_s\": " << D(bwd)
    << ",\n  \"optimizer_s\": 0,\n  \"layers\": [";
  // Backward runs the profile entries in exactly the reverse of their order.
  for (int i = int(prof.size()) - 1; i >= 0; --i) {
    const auto& p = prof[i];
    const auto it = tensors_of.find(p.name);
    size_t bytes = 0;
    std::string tj;
    if (it != tensors_of.end()) {
      for (int t : it->second) {
        bytes += tensors[t].size * sizeof(float);
        tj += std::string(tj.empty() ? "" : ", ") + "{\"name\": " + JsonString(tensors[t].name) +
              ", \"elems\": " + std::to_string(tensors[t].size) +
              ", \"no_decay\": " + (tensors[t].no_decay ? "true" : "false") + "}";
        ++matched;
      }
    }
    const auto mc = macs.find(p.name);
    f << (i + 1 == int(prof.size()) ? "\n" : ",\n") << "    {\"name\": " << JsonString(p.name)
      << ", \"forward_s\": " << D(p.forward_s / steps) << ", \"backward_s\": " << D(p.backward_s / steps)
      << ", \"macs_per_image\": " << D(mc == macs.end() ? 0 : mc->second) << ", \"grad_bytes\": " << bytes
      << ", \"tensors\": [" << tj << "]}";
  }
  f << "\n  ]\n}\n";
  if (matched != tensors.size()) {
    dtrain::Fail(dtrain::ErrorCode::kInternal, "--profile-json: " + std::to_string(tensors.size() - matched) +
                                                   " parameter tensors match no profiled layer");
  }
  if (!f) dtrain::Fail(dtrain::ErrorCode::kInvalidArgument, "--profile-json: writing " + path + " failed");
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "resnet20";
  int batch = 128, image = 28, channels = 1, classes = 10, steps = 5;
  std::vector<int> threads = {1, 2};
  std::string profile_json, kernels = "auto";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--batch") batch = std::atoi(v.c_str());
    else if (k == "--image") image = std::atoi(v.c_str());
    else if (k == "--channels") channels = std::atoi(v.c_str());
    else if (k == "--classes") classes = std::atoi(v.c_str());
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--profile-json") profile_json = v;
    else if (k == "--kernels") kernels = v;
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
    opt.kernels = ResolveKernels(kernels, opt.batch_norm);
    auto m = BuildModel<float>(model, opt, 1);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(size_t(batch) * channels * image * image);
    for (auto& v : x) v = nd(rng);
    std::vector<int32_t> y(batch);
    for (int i = 0; i < batch; ++i) y[i] = i % classes;
    std::printf("%s, %d x %d x %d, %d classes, batch %d, %zu params, %s kernels\n", model.c_str(),
                channels, image, image, classes, batch, m->num_params(), opt.kernels.c_str());
    std::printf("%-8s %10s %10s %10s %14s\n", "threads", "step_ms", "fwd_ms", "images/s",
                "images/cpu_s");
    for (int t : threads) {
      openblas_set_num_threads(t);
      if (opt.kernels == "onednn") {  // oneDNN's thread count is the model's
        opt.threads = t;
        m = BuildModel<float>(model, opt, 1);
      }
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

    // Per-layer breakdown, single thread, averaged over the steps.
    openblas_set_num_threads(1);
    if (opt.kernels == "onednn" && opt.threads != 1) {
      opt.threads = 1;
      m = BuildModel<float>(model, opt, 1);
    }
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
    if (!profile_json.empty()) WriteProfileJson(profile_json, *m, batch, steps);
    std::printf("\nper-layer time, 1 thread, ms per step (total %.1f ms)\n", total * 1e3);
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
