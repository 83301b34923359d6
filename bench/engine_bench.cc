// engine_bench: training images/s of one engine on one device, one rank, on a
// synthetic batch that stays resident on the device (CUDA: uploaded once;
// the bench measures the GPU, not PCIe), with the step split and, with
// --profile, the share of each kernel family (CUDA: cudaEvents around every
// op; CPU: per layer).
//
//   engine_bench [--device cuda|cpu] [--model resnet50] [--batch N|max]
//                [--image-size 224] [--classes 1000] [--steps 40] [--warmup 10]
//                [--optimizer lars|sgd] [--no-autotune] [--profile] [--json FILE]
//
// --batch max: the largest of 1024, 768, 512, 384, 256, 128 that builds and
// runs two steps (without autotuning), then the measured run at that batch.
// Prints a table; --json writes {"device", "model", "batch", "images_per_second",
// "step_ms", "compute_ms", "update_ms", "families": {...}}.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "worker/comm/local_communicator.h"
#include "worker/engine/train_engine.h"
#ifdef DTRAIN_HAVE_CUDA_ENGINE
#include "worker/engine/cuda_engine.h"
#endif

namespace {

using namespace dtrain;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string device = "cuda", model = "resnet50", batch = "256", json, optimizer = "lars";
  int image_size = 224, classes = 1000, steps = 40, warmup = 10;
  bool autotune = true, profile = false;
};

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "engine_bench: %s\nusage: engine_bench [--device cuda|cpu] [--model NAME] [--batch N|max] "
               "[--image-size N] [--classes N] [--steps N] [--warmup N] [--optimizer lars|sgd] [--no-autotune] "
               "[--profile] [--json FILE]\n", why.c_str());
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Usage(k + " needs a value");
      return argv[++i];
    };
    auto num = [&](int lo) {
      const std::string v = val();
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || x < lo) Usage(k + " '" + v + "': an integer >= " + std::to_string(lo));
      return int(x);
    };
    if (k == "--device") a.device = val();
    else if (k == "--model") a.model = val();
    else if (k == "--batch") a.batch = val();
    else if (k == "--image-size") a.image_size = num(1);
    else if (k == "--classes") a.classes = num(1);
    else if (k == "--steps") a.steps = num(1);
    else if (k == "--warmup") a.warmup = num(0);
    else if (k == "--optimizer") a.optimizer = val();
    else if (k == "--json") a.json = val();
    else if (k == "--no-autotune") a.autotune = false;
    else if (k == "--profile") a.profile = true;
    else Usage("unknown argument '" + k + "'");
  }
  if (a.device != "cuda" && a.device != "cpu") Usage("--device '" + a.device + "': allowed cuda, cpu");
  return a;
}

data::Batch Synthetic(int n, int side, int classes) {
  data::Batch b;
  b.size = n;
  b.channels = 3;
  b.height = b.width = side;
  std::mt19937_64 rng(1);
  std::normal_distribution<float> px(0.0f, 1.0f);
  b.images.resize(size_t(n) * 3 * side * side);
  for (float& v : b.images) v = px(rng);
  for (int i = 0; i < n; ++i) b.labels.push_back(int32_t(rng() % classes));
  return b;
}

std::unique_ptr<engine::TrainEngine> Make(const Args& a, comm::Communicator* c, int batch, bool autotune,
                                          bool profile) {
  engine::EngineOptions o;
  o.model_name = a.model;
  o.model.in_channels = 3;
  o.model.num_classes = a.classes;
  o.model.image_size = a.image_size;
  o.model.max_batch = batch;
  o.model.zero_init_residual = true;
  o.seed = 1;
  o.optimizer.name = a.optimizer;
  o.label_smoothing = 0.1;
  o.precision = a.device == "cuda" ? "fp16" : "fp32";
  o.comm = c;
  o.wire = a.device == "cuda" ? comm::DType::kF16 : comm::DType::kF32;
  o.autotune = autotune;
  o.profiling = profile;
  auto e = engine::MakeEngine(a.device, o);
#ifdef DTRAIN_HAVE_CUDA_ENGINE
  if (a.device == "cuda") engine::SetResidentBatch(*e, true);
#endif
  return e;
}

int FindMaxBatch(const Args& a, comm::Communicator* c) {
  for (int b : {1024, 768, 512, 384, 256, 128}) {
    try {
      auto e = Make(a, c, b, false, false);
      const data::Batch batch = Synthetic(b, a.image_size, a.classes);
      e->Step(batch, 0.1);
      e->Step(batch, 0.1);
      std::printf("batch %d fits\n", b);
      return b;
    } catch (const std::exception& ex) {
      std::printf("batch %d does not fit: %.200s\n", b, ex.what());
    }
  }
  Fail(ErrorCode::kUnavailable, "not even batch 128 fits");
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  try {
    auto comm = comm::MakeLocalCommunicator();
    int batch = 0;
    if (a.batch == "max") {
      batch = FindMaxBatch(a, comm.get());
    } else {
      batch = std::atoi(a.batch.c_str());
      if (batch <= 0) Usage("--batch '" + a.batch + "': a positive integer or max");
    }
    const data::Batch b = Synthetic(batch, a.image_size, a.classes);
    auto e = Make(a, comm.get(), batch, a.autotune, false);
    std::printf("engine: %s\nmodel %s, batch %d, %dx%d, %d classes, %s\n", e->describe().c_str(), a.model.c_str(),
                batch, a.image_size, a.image_size, a.classes, a.optimizer.c_str());
    const auto t_w = Clock::now();
    for (int i = 0; i < a.warmup; ++i) e->Step(b, 0.1);
    std::printf("warm-up: %d steps in %.1f s (plans built and tuned)\n", a.warmup,
                std::chrono::duration<double>(Clock::now() - t_w).count());
    double compute = 0, update = 0;
    int skipped = 0;
    const auto t0 = Clock::now();
    for (int i = 0; i < a.steps; ++i) {
      const engine::StepStats s = e->Step(b, 0.1);
      compute += s.compute_seconds;
      update += s.update_seconds;
      skipped += s.skipped;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double ips = double(batch) * a.steps / secs;
    const double step_ms = 1e3 * secs / a.steps;
    std::printf("\n| device | model | batch | images/s | step ms | fwd+bwd ms | update ms | other ms |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|\n| %s | %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f |\n",
                a.device.c_str(), a.model.c_str(), batch, ips, step_ms, 1e3 * compute / a.steps,
                1e3 * update / a.steps, step_ms - 1e3 * (compute + update) / a.steps);
    if (skipped) std::printf("(%d of %d steps skipped on an fp16 overflow)\n", skipped, a.steps);
    nlohmann::json j = {{"device", a.device}, {"engine", e->describe()}, {"model", a.model}, {"batch", batch},
                        {"images_per_second", ips}, {"step_ms", step_ms}, {"compute_ms", 1e3 * compute / a.steps},
                        {"update_ms", 1e3 * update / a.steps}, {"steps", a.steps}, {"skipped", skipped}};
    if (a.profile) {
      e.reset();
      auto p = Make(a, comm.get(), batch, a.autotune, true);
      const int n = std::min(a.steps, 10);
      for (int i = 0; i < 3; ++i) p->Step(b, 0.1);
      p->TakeProfile();
      for (int i = 0; i < n; ++i) p->Step(b, 0.1);
      const auto prof = p->TakeProfile();
      double total = 0;
      for (const auto& l : prof) total += l.forward_s + l.backward_s;
      std::printf("\n| kernel family / layer | ms per step | share |\n|---|---:|---:|\n");
      nlohmann::json fam = nlohmann::json::object();
      for (const auto& l : prof) {
        const double s = l.forward_s + l.backward_s;
        if (s <= 0) continue;
        std::printf("| %s | %.3f | %.1f %% |\n", l.name.c_str(), 1e3 * s / n, 100 * s / total);
        fam[l.name] = 1e3 * s / n;
      }
      j["families_ms"] = fam;
    }
    if (!a.json.empty()) std::ofstream(a.json) << j.dump(2) << "\n";
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "engine_bench: %s\n", ex.what());
    return 1;
  }
}
