#include "worker/engine/train_engine.h"

#include "common/error.h"
#include "worker/engine/cpu_engine.h"
#ifdef DTRAIN_HAVE_CUDA_ENGINE
#include "worker/engine/cuda_engine.h"
#endif

namespace dtrain::engine {

uint64_t TrainEngine::Checksum() {
  EngineState s;
  ExportState(&s);
  const uint64_t h1 = model::Fnv1a64(s.params.data(), s.params.size() * sizeof(float));
  const uint64_t h2 = model::Fnv1a64(s.bn_running.data(), s.bn_running.size() * sizeof(float));
  return h1 ^ (h2 * 0x9E3779B97F4A7C15ull);
}

uint64_t TrainEngine::ParamsChecksum() {
  EngineState s;
  ExportState(&s);
  return model::Fnv1a64(s.params.data(), s.params.size() * sizeof(float));
}

void CheckStateSizes(const EngineState& s, const model::ResnetArch& arch, size_t momentum_size) {
  auto check = [](const char* what, size_t have, size_t want) {
    if (have != want) {
      Fail(ErrorCode::kInvalidArgument, std::string("engine state: ") + what + " holds " + std::to_string(have) +
                                            " values; this model needs " + std::to_string(want));
    }
  };
  check("params", s.params.size(), arch.num_params);
  check("momentum", s.momentum.size(), momentum_size);
  check("bn_running", s.bn_running.size(), arch.num_buffers);
  if (!(s.loss_scale > 0)) Fail(ErrorCode::kInvalidArgument, "engine state: loss scale must be > 0");
}

void CheckBnSize(const std::vector<float>& bn_running, const model::ResnetArch& arch) {
  if (bn_running.size() != arch.num_buffers)
    Fail(ErrorCode::kInvalidArgument, "BN running statistics: " + std::to_string(bn_running.size()) +
                                          " values; this model has " + std::to_string(arch.num_buffers));
}

void CheckBnFactor(double factor) {
  if (!(factor > 0 && factor <= 1))
    Fail(ErrorCode::kInvalidArgument,
         "BN statistics factor " + std::to_string(factor) + " outside (0, 1] (1/i for the i-th batch)");
}

bool HaveCudaEngine(std::string* why) {
#ifdef DTRAIN_HAVE_CUDA_ENGINE
  (void)why;
  return true;
#else
  if (why) *why = "this dtrain was built without the CUDA engine (no nvcc, cuDNN or NCCL at build time)";
  return false;
#endif
}

std::unique_ptr<TrainEngine> MakeEngine(const std::string& device, const EngineOptions& o) {
  if (device == "cpu") return MakeCpuEngine(o);
  if (device == "cuda") {
#ifdef DTRAIN_HAVE_CUDA_ENGINE
    return MakeCudaEngine(o);
#else
    std::string why;
    HaveCudaEngine(&why);
    Fail(ErrorCode::kUnavailable, "device cuda: " + why);
#endif
  }
  Fail(ErrorCode::kInvalidArgument, "engine device '" + device + "': allowed cpu, cuda");
}

}  // namespace dtrain::engine
