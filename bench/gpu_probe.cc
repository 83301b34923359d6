// gpu_probe: what the GPU machine offers this build, one fact a line, before
// anything heavier runs there (stage "probe" of bench/gpu_device_run.sh).
// In order, stopping at the first hard failure: CUDA runtime and driver
// versions, device count, device 0 (name, compute capability, memory, SMs);
// a pattern kernel of this build written, copied back and checked; cuDNN
// (version, sub-libraries, handle), cuBLASLt (version, handle), NCCL (version,
// floor >= 2.18, a one-rank communicator and allreduce); the engine's version
// floors (dtrain::cuda::CheckDnnVersions).
// Exit status: 0 all good; 1 unexpected error; 2 bad usage; 3 no usable CUDA
// device; 4 the probe kernel failed; 5 cuDNN, cuBLASLt or NCCL failed or is
// not in this build; 6 a version floor is not met. The reason goes to stderr.
//   gpu_probe [--json FILE]   FILE gets the same facts, written on failure too.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/gpu_probe_kernel.h"
#include "common/error.h"
#include "kernels/cuda/check.h"

#if DTRAIN_PROBE_DNN
#include <cublasLt.h>
#include <cudnn.h>

#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/cudnn_check.h"
#include "kernels/cuda/dnn_versions.h"
#endif
#if DTRAIN_PROBE_NCCL
#include <nccl.h>

#include "kernels/cuda/nccl_check.h"
#endif

namespace {

using nlohmann::ordered_json;

enum Exit : int { kOk = 0, kOther = 1, kUsage = 2, kNoDevice = 3, kKernel = 4, kLibrary = 5, kFloor = 6 };

constexpr int kNcclFloor = 21800;  // 2.18.0, in NCCL_VERSION_CODE form

struct ProbeFailure {
  int code;
  std::string message;
};

[[noreturn]] void Stop(int code, const std::string& message) { throw ProbeFailure{code, message}; }

// Runs one stage; a dtrain::Error inside it (a CHECK macro) becomes a failure
// with the stage's exit code, prefixed by what the stage was doing.
template <typename F>
void Stage(int code, const std::string& what, F&& body) {
  try {
    body();
  } catch (const ProbeFailure&) {
    throw;
  } catch (const dtrain::Error& e) {
    Stop(code, what + ": " + e.what());
  }
}

class Report {
 public:
  void Line(const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
    lines_.push_back(text);
  }
  ordered_json& operator[](const char* section) { return json_[section]; }
  // Writes {"probe", "ok", "exit_code", "failure", facts..., "lines"}.
  bool Write(const std::string& path, int code, const std::string& failure) const {
    ordered_json out;
    out["probe"] = "gpu_probe";
    out["ok"] = code == kOk;
    out["exit_code"] = code;
    out["failure"] = failure;
    for (const auto& [key, value] : json_.items()) out[key] = value;
    out["lines"] = lines_;
    std::ofstream f(path);
    f << out.dump(2) << "\n";
    f.close();
    return static_cast<bool>(f);
  }

 private:
  ordered_json json_ = ordered_json::object();
  std::vector<std::string> lines_;
};

std::string CudaErrorText(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + " (" + std::to_string(int(err)) + "): " + cudaGetErrorString(err);
}
// 13000 -> "13.0" (CUDA's major·1000 + minor·10).
std::string CudaVersionText(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }
// major·10000 + minor·100 + patch (cuDNN 9, cuBLASLt, NCCL >= 2.9) -> "M.m.p".
std::string TripleText(long long v) {
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}
std::string GiB(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", double(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

struct StreamDeleter {
  void operator()(CUstream_st* s) const { cudaStreamDestroy(s); }
};
using Stream = std::unique_ptr<CUstream_st, StreamDeleter>;
struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
template <typename T>
std::unique_ptr<T, DeviceFree> DeviceAlloc(size_t n, const char* what) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, n * sizeof(T));
  if (err != cudaSuccess)
    dtrain::Fail(dtrain::ErrorCode::kInternal,
                 std::string("cudaMalloc of ") + std::to_string(n * sizeof(T)) + " bytes (" + what + "): " + CudaErrorText(err));
  return std::unique_ptr<T, DeviceFree>(static_cast<T*>(p));
}
Stream MakeStream() {
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream(s);
}

void ProbeCuda(Report& r) {
  int runtime = 0, driver = 0;
  cudaError_t err = cudaRuntimeGetVersion(&runtime);
  if (err != cudaSuccess) Stop(kNoDevice, "no usable CUDA device: cudaRuntimeGetVersion: " + CudaErrorText(err));
  err = cudaDriverGetVersion(&driver);
  if (err != cudaSuccess) Stop(kNoDevice, "no usable CUDA device: cudaDriverGetVersion: " + CudaErrorText(err));
  r["cuda"]["runtime"] = runtime;
  r["cuda"]["driver"] = driver;
  r.Line("cuda runtime: " + CudaVersionText(runtime) + " (" + std::to_string(runtime) + ")");
  r.Line("cuda driver: " + (driver == 0 ? std::string("none (no CUDA driver is loaded)")
                                        : CudaVersionText(driver) + " (" + std::to_string(driver) + ")"));
  if (driver != 0 && driver < runtime)
    r.Line("warning: the driver supports CUDA " + CudaVersionText(driver) + ", older than the runtime " +
           CudaVersionText(runtime) + " this build uses");

  int count = 0;
  err = cudaGetDeviceCount(&count);
  r["cuda"]["device_count"] = count;
  if (err != cudaSuccess)
    Stop(kNoDevice, std::string("no usable CUDA device: ") +
                        (driver == 0 ? "no CUDA driver is loaded (libcuda.so.1 missing or no GPU); " : "") +
                        "cudaGetDeviceCount: " + CudaErrorText(err));
  r.Line("devices: " + std::to_string(count));
  if (count == 0) Stop(kNoDevice, "no usable CUDA device: cudaGetDeviceCount found 0 devices");

  err = cudaSetDevice(0);
  if (err != cudaSuccess) Stop(kNoDevice, "no usable CUDA device: cudaSetDevice(0): " + CudaErrorText(err));
  cudaDeviceProp p{};
  err = cudaGetDeviceProperties(&p, 0);
  if (err != cudaSuccess) Stop(kNoDevice, "no usable CUDA device: cudaGetDeviceProperties(0): " + CudaErrorText(err));
  size_t free_bytes = 0, total_bytes = 0;
  err = cudaMemGetInfo(&free_bytes, &total_bytes);  // creates the context
  if (err != cudaSuccess) Stop(kNoDevice, "no usable CUDA device: cudaMemGetInfo on device 0: " + CudaErrorText(err));
  char pci[32];
  std::snprintf(pci, sizeof pci, "%04x:%02x:%02x", p.pciDomainID, p.pciBusID, p.pciDeviceID);
  ordered_json& d = r["device"];
  d["index"] = 0;
  d["name"] = p.name;
  d["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
  d["sm_count"] = p.multiProcessorCount;
  d["memory_bytes"] = p.totalGlobalMem;
  d["free_bytes"] = free_bytes;
  d["l2_bytes"] = p.l2CacheSize;
  d["shared_memory_per_block_optin"] = p.sharedMemPerBlockOptin;
  d["pci"] = pci;
  r.Line(std::string("device 0: ") + p.name + ", compute capability " + std::to_string(p.major) + "." +
         std::to_string(p.minor) + ", " + std::to_string(p.multiProcessorCount) + " SMs");
  r.Line("device 0 memory: " + GiB(p.totalGlobalMem) + " (" + GiB(free_bytes) + " free), L2 " +
         std::to_string(p.l2CacheSize >> 20) + " MiB, shared memory per block up to " +
         std::to_string(p.sharedMemPerBlockOptin >> 10) + " KiB, pci " + pci);
}

void ProbeKernel(Report& r) {
  int binary = 0;
  try {
    binary = dtrain::bench::ProbeKernelBinaryVersion();
  } catch (const dtrain::Error& e) {
    Stop(kKernel, std::string("this build has no kernel image for device 0 (built for CMAKE_CUDA_ARCHITECTURES; "
                              "see the device's compute capability above): ") + e.what());
  }
  r["kernel"]["binary_version"] = binary;
  constexpr int64_t kN = int64_t(1) << 22;  // 16 MiB
  constexpr uint32_t kSeed = 0x5EED1234u;
  Stream stream = MakeStream();
  auto buf = DeviceAlloc<uint32_t>(kN, "probe pattern");
  CUDA_CHECK(cudaMemsetAsync(buf.get(), 0xFF, kN * sizeof(uint32_t), stream.get()));  // poison
  dtrain::bench::FillProbePattern(buf.get(), kN, kSeed, stream.get());
  std::vector<uint32_t> host(kN, 0);
  CUDA_CHECK(cudaMemcpyAsync(host.data(), buf.get(), kN * sizeof(uint32_t), cudaMemcpyDeviceToHost, stream.get()));
  CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < kN; ++i) {
    if (host[i] != dtrain::bench::ProbePattern(kSeed, uint32_t(i))) {
      if (first < 0) first = i;
      ++bad;
    }
  }
  r["kernel"]["elements"] = kN;
  r["kernel"]["wrong"] = bad;
  if (bad != 0) {
    char msg[200];
    std::snprintf(msg, sizeof msg, "probe kernel wrote %lld of %lld elements wrong; first at %lld: got 0x%08x, want 0x%08x",
                  (long long)bad, (long long)kN, (long long)first, host[first],
                  dtrain::bench::ProbePattern(kSeed, uint32_t(first)));
    Stop(kKernel, msg);
  }
  r.Line("kernel: sm_" + std::to_string(binary) + " image ran; " + std::to_string(kN) +
         " elements written, copied back and checked");
}

#if DTRAIN_PROBE_DNN
void ProbeCudnn(Report& r) {
  const size_t version = cudnnGetVersion();
  const size_t cudart = cudnnGetCudartVersion();
  r["cudnn"]["version"] = version;
  r["cudnn"]["compiled"] = CUDNN_VERSION;
  r["cudnn"]["cudart"] = cudart;
  r.Line("cudnn: " + TripleText(version) + " (" + std::to_string(version) + "; built against " +
         TripleText(CUDNN_VERSION) + "; its cudart " + CudaVersionText(int(cudart)) + ")");
  // Each loads its sub-library (libcudnn_graph/_ops/_cnn.so.9) and compares versions.
  CUDNN_CHECK(cudnnGraphVersionCheck());
  CUDNN_CHECK(cudnnOpsVersionCheck());
  CUDNN_CHECK(cudnnCnnVersionCheck());
  cudnnHandle_t handle = nullptr;
  CUDNN_CHECK(cudnnCreate(&handle));
  CUDNN_CHECK(cudnnDestroy(handle));
  r["cudnn"]["handle"] = true;
  r.Line("cudnn: graph, ops and cnn sub-libraries loaded; handle created and destroyed");
}

void ProbeCublasLt(Report& r) {
  const size_t version = cublasLtGetVersion();
  const size_t cudart = cublasLtGetCudartVersion();
  r["cublaslt"]["version"] = version;
  r["cublaslt"]["cudart"] = cudart;
  r.Line("cublaslt: " + TripleText(version) + " (" + std::to_string(version) + "; its cudart " +
         CudaVersionText(int(cudart)) + ")");
  cublasLtHandle_t handle = nullptr;
  CUBLAS_CHECK(cublasLtCreate(&handle));
  CUBLAS_CHECK(cublasLtDestroy(handle));
  r["cublaslt"]["handle"] = true;
  r.Line("cublaslt: handle created and destroyed");
}

void ProbeFloors(Report& r) {
  const dtrain::cuda::DnnVersions v = dtrain::cuda::QueryDnnVersions();
  const std::string text = dtrain::cuda::DescribeDnnVersions(v);
  r["floors"]["dnn"] = text;
  r.Line("dnn versions: " + text);
  try {
    dtrain::cuda::CheckDnnVersions(v);
  } catch (const dtrain::Error& e) {
    r["floors"]["ok"] = false;
    Stop(kFloor, std::string("version floor not met: ") + e.what());
  }
  r["floors"]["ok"] = true;
  r.Line("version floors: met (cuDNN, cuBLASLt, CUDA runtime and driver; NCCL >= " + TripleText(kNcclFloor) + ")");
}
#endif

#if DTRAIN_PROBE_NCCL
void ProbeNccl(Report& r) {
  int version = 0;
  NCCL_CHECK(ncclGetVersion(&version));
  r["nccl"]["version"] = version;
  r["nccl"]["compiled"] = NCCL_VERSION_CODE;
  r.Line("nccl: " + TripleText(version) + " (" + std::to_string(version) + "; built against " +
         TripleText(NCCL_VERSION_CODE) + ")");
  if (version < kNcclFloor)
    Stop(kFloor, "version floor not met: NCCL " + TripleText(version) + " is older than " + TripleText(kNcclFloor) +
                     " (ncclCommInitRankConfig, ncclCommAbort semantics the communicator relies on)");
  // A one-rank communicator on device 0 and a sum allreduce, which must copy.
  constexpr int kCount = 1024;
  std::vector<float> in(kCount), out(kCount, -1.0f);
  for (int i = 0; i < kCount; ++i) in[i] = float(i) * 0.5f - 100.0f;
  Stream stream = MakeStream();
  auto send = DeviceAlloc<float>(kCount, "nccl send");
  auto recv = DeviceAlloc<float>(kCount, "nccl recv");
  CUDA_CHECK(cudaMemcpy(send.get(), in.data(), kCount * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemset(recv.get(), 0xFF, kCount * sizeof(float)));
  ncclComm_t comm = nullptr;
  int device = 0;
  NCCL_CHECK(ncclCommInitAll(&comm, 1, &device));
  try {
    NCCL_CHECK(ncclAllReduce(send.get(), recv.get(), kCount, ncclFloat32, ncclSum, comm, stream.get()));
    CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  } catch (...) {
    ncclCommAbort(comm);
    throw;
  }
  NCCL_CHECK(ncclCommDestroy(comm));
  CUDA_CHECK(cudaMemcpy(out.data(), recv.get(), kCount * sizeof(float), cudaMemcpyDeviceToHost));
  for (int i = 0; i < kCount; ++i) {
    if (out[i] != in[i])
      Stop(kLibrary, "nccl: one-rank allreduce (sum, fp32, " + std::to_string(kCount) + " elements) wrong at " +
                         std::to_string(i) + ": got " + std::to_string(out[i]) + ", want " + std::to_string(in[i]));
  }
  r["nccl"]["allreduce_ok"] = true;
  r.Line("nccl: one-rank communicator on device 0 created; allreduce of " + std::to_string(kCount) +
         " floats checked; destroyed");
}
#endif

void RunProbe(Report& r) {
  ProbeCuda(r);  // stops with kNoDevice itself
  Stage(kKernel, "probe kernel", [&] { ProbeKernel(r); });
#if DTRAIN_PROBE_DNN
  Stage(kLibrary, "cuDNN", [&] { ProbeCudnn(r); });
  Stage(kLibrary, "cuBLASLt", [&] { ProbeCublasLt(r); });
#else
  Stop(kLibrary, "this build has no cuDNN/cuBLASLt ops (DTRAIN_HAVE_CUDNN was OFF when it was configured)");
#endif
#if DTRAIN_PROBE_NCCL
  Stage(kLibrary, "NCCL", [&] { ProbeNccl(r); });
#else
  Stop(kLibrary, "this build has no NCCL (libnccl was not found next to CUDA when it was configured)");
#endif
#if DTRAIN_PROBE_DNN
  Stage(kFloor, "version floors", [&] { ProbeFloors(r); });
#endif
}

int Usage(std::FILE* to, int code) {
  std::fprintf(to,
               "usage: gpu_probe [--json FILE]\n"
               "Prints the CUDA, device, cuDNN, cuBLASLt and NCCL facts this build sees, one a line.\n"
               "Exit: 0 ok, 1 unexpected error, 2 usage, 3 no usable CUDA device, 4 probe kernel failed,\n"
               "5 cuDNN/cuBLASLt/NCCL failed or missing, 6 a version floor not met.\n");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a.rfind("--json=", 0) == 0) {
      json_path = a.substr(7);
    } else if (a == "-h" || a == "--help") {
      return Usage(stdout, kOk);
    } else {
      std::fprintf(stderr, "gpu_probe: unknown argument '%s'\n", a.c_str());
      return Usage(stderr, kUsage);
    }
  }

  Report report;
  int code = kOk;
  std::string failure;
  try {
    RunProbe(report);
    report.Line("probe: ok");
  } catch (const ProbeFailure& f) {
    code = f.code;
    failure = f.message;
  } catch (const std::exception& e) {
    code = kOther;
    failure = std::string("unexpected error: ") + e.what();
  }
  if (code != kOk) std::fprintf(stderr, "gpu_probe: %s (exit %d)\n", failure.c_str(), code);
  if (!json_path.empty() && !report.Write(json_path, code, failure)) {
    std::fprintf(stderr, "gpu_probe: cannot write %s\n", json_path.c_str());
    if (code == kOk) code = kOther;
  }
  return code;
}
