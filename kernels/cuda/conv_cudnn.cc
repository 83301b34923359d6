// cuDNN 9 graph-API convolutions with a per-shape plan cache and autotuning
// (contract in conv_cudnn.h). Backend descriptors are owned by Desc (RAII);
// every status goes through CUDNN_CHECK / CUDA_CHECK, with the attribute or
// step and cuDNN's own last error message appended.
#include "kernels/cuda/conv_cudnn.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cudnn_check.h"

namespace dtrain::cuda {
namespace {

// Variant-pack ids of the two inputs and the output, in the operation's
// argument order (Forward: x, w, y; BackwardData: dy, w, dx; BackwardFilter:
// x, dy, dw).
constexpr int64_t kUidA = 1, kUidB = 2, kUidOut = 3;
constexpr int64_t kAlignment = 16;

// cuDNN's explanation of its last failure in this thread (cuDNN 9), as
// " (cuDNN says: ...)" or "".
std::string CudnnDetail() {
  char buf[2048] = {0};
  cudnnGetLastErrorString(buf, sizeof(buf));
  return buf[0] ? std::string(" (cuDNN says: ") + buf + ")" : std::string();
}

std::string StatusString(cudnnStatus_t st) {
  return std::string(cudnnGetErrorString(st)) + " (" + std::to_string(int(st)) + ")" + CudnnDetail();
}

// Owns one backend descriptor.
class Desc {
 public:
  Desc() = default;
  explicit Desc(cudnnBackendDescriptorType_t type) { CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d_)); }
  ~Desc() { Reset(); }
  Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Desc& operator=(Desc&& o) noexcept {
    if (this != &o) {
      Reset();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  void Reset() {
    if (d_ != nullptr) cudnnBackendDestroyDescriptor(d_);  // nothing to do on failure
    d_ = nullptr;
  }
  cudnnBackendDescriptor_t d_ = nullptr;
};

// Runs `f` (which throws via CUDNN_CHECK/CUDA_CHECK); a failure is rethrown
// with `what` appended, and cuDNN's last error message for cuDNN failures.
template <typename F>
void WithContext(const std::string& what, F f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    Fail(e.code(), msg + " [" + what + "]" + (msg.rfind("cuDNN", 0) == 0 ? CudnnDetail() : std::string()));
  }
}

#define DTRAIN_SET_ATTR(desc, name, type, count, values) \
  SetAttr(desc, name, #name, type, count, values)

void SetAttr(const Desc& d, cudnnBackendAttributeName_t name, const char* name_str, cudnnBackendAttributeType_t type,
             int64_t count, const void* values) {
  WithContext(std::string("setting ") + name_str,
              [&] { CUDNN_CHECK(cudnnBackendSetAttribute(d.get(), name, type, count, values)); });
}

void SetDesc(const Desc& d, cudnnBackendAttributeName_t name, const char* name_str, const Desc& value) {
  cudnnBackendDescriptor_t raw = value.get();
  SetAttr(d, name, name_str, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
}
#define DTRAIN_SET_DESC(desc, name, value) SetDesc(desc, name, #name, value)

void Finalize(const Desc& d, const std::string& what) {
  WithContext("finalizing " + what, [&] { CUDNN_CHECK(cudnnBackendFinalize(d.get())); });
}

// A non-virtual fp16 tensor of logical dims [n, c, h, w] stored NHWC (for the
// filter: [k, c, r, s] stored KRSC, the same strides).
Desc MakeTensor(int64_t uid, int64_t n, int64_t c, int64_t h, int64_t w) {
  Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const cudnnDataType_t type = CUDNN_DATA_HALF;
  const int64_t dims[4] = {n, c, h, w};
  const int64_t strides[4] = {h * w * c, 1, w * c, c};
  const bool is_virtual = false;
  DTRAIN_SET_ATTR(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  DTRAIN_SET_ATTR(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
  DTRAIN_SET_ATTR(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
  DTRAIN_SET_ATTR(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  DTRAIN_SET_ATTR(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kAlignment);
  DTRAIN_SET_ATTR(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
  Finalize(t, "tensor " + std::to_string(uid) + " [" + std::to_string(n) + "," + std::to_string(c) + "," +
                  std::to_string(h) + "," + std::to_string(w) + "]");
  return t;
}

Desc MakeConvolution(const cpu::Conv2dShape& s) {
  Desc d(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const int64_t spatial = 2;
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t pads[2] = {s.pad, s.pad}, strides[2] = {s.stride, s.stride}, dilations[2] = {1, 1};
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial);
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilations);
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides);
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  DTRAIN_SET_ATTR(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads);
  Finalize(d, "convolution descriptor");
  return d;
}

// The one-operation graph of `op`; keep holds every descriptor it references.
struct Graph {
  std::vector<Desc> keep;
  Desc graph;
};

Graph MakeGraph(cudnnHandle_t handle, CudnnConvolutions::Op op, const cpu::Conv2dShape& s, bool accumulate) {
  using Op = CudnnConvolutions::Op;
  const int64_t oh = s.out_h(), ow = s.out_w();
  auto image = [&](int64_t uid) { return MakeTensor(uid, s.n, s.c, s.h, s.w); };
  auto filter = [&](int64_t uid) { return MakeTensor(uid, s.k, s.c, s.r, s.s); };
  auto output = [&](int64_t uid) { return MakeTensor(uid, s.n, s.k, oh, ow); };
  Graph g;
  Desc conv = MakeConvolution(s);
  Desc operation, ta, tb, tout;  // the tensors of ids kUidA, kUidB, kUidOut
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;  // float: the compute type is not double
  switch (op) {
    case Op::kForward: {
      Desc x = image(kUidA), w = filter(kUidB), y = output(kUidOut);
      operation = Desc(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, x);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, w);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, y);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv);
      DTRAIN_SET_ATTR(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
      DTRAIN_SET_ATTR(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
      ta = std::move(x); tb = std::move(w); tout = std::move(y);
      break;
    }
    case Op::kBackwardData: {
      Desc dy = output(kUidA), w = filter(kUidB), dx = image(kUidOut);
      operation = Desc(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, dy);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, w);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, dx);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, conv);
      DTRAIN_SET_ATTR(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
      DTRAIN_SET_ATTR(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
      ta = std::move(dy); tb = std::move(w); tout = std::move(dx);
      break;
    }
    case Op::kBackwardFilter: {
      Desc x = image(kUidA), dy = output(kUidB), dw = filter(kUidOut);
      operation = Desc(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, x);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, dy);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, dw);
      DTRAIN_SET_DESC(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, conv);
      DTRAIN_SET_ATTR(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
      DTRAIN_SET_ATTR(operation, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
      ta = std::move(x); tb = std::move(dy); tout = std::move(dw);
      break;
    }
  }
  Finalize(operation, "convolution operation");
  g.graph = Desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  DTRAIN_SET_DESC(g.graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, operation);
  // Deprecated in recent 9.x headers in favour of a device-property
  // descriptor, still accepted, and required by the older 9.x we allow.
  DTRAIN_SET_ATTR(g.graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  Finalize(g.graph, "operation graph");
  for (Desc* d : {&ta, &tb, &tout, &conv, &operation}) g.keep.push_back(std::move(*d));
  return g;
}

const char* ModeName(cudnnBackendHeurMode_t mode) { return mode == CUDNN_HEUR_MODE_A ? "A" : "FALLBACK"; }

// The engine configs heuristics `mode` proposes for the graph, best first;
// empty, with *why set, when the mode rejects the graph.
std::vector<Desc> HeuristicConfigs(const Desc& graph, cudnnBackendHeurMode_t mode, std::string* why) {
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  DTRAIN_SET_DESC(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  DTRAIN_SET_ATTR(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  const cudnnStatus_t st = cudnnBackendFinalize(heur.get());
  if (st != CUDNN_STATUS_SUCCESS) {
    *why = "heuristics did not finalize: " + StatusString(st);
    return {};
  }
  int64_t count = 0;
  WithContext("counting heuristic results", [&] {
    CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                         &count, nullptr));
  });
  std::vector<Desc> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(configs.back().get());
  }
  int64_t got = 0;
  if (count > 0)
    WithContext("reading heuristic results", [&] {
      CUDNN_CHECK(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                           count, &got, raw.data()));
    });
  configs.resize(size_t(std::clamp<int64_t>(got, 0, count)));
  if (configs.empty()) *why = "heuristics returned no engine config";
  return configs;
}

// One engine config with its finalized execution plan.
struct Candidate {
  Desc config, plan;
  size_t workspace = 0;
  int64_t engine = -1;             // global engine index, -1 if unknown
  bool reduced_precision = false;  // CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION
  float ms = -1;                   // tuned time per run; < 0: not timed
  std::string Label() const { return "engine " + std::to_string(engine); }
};

// Engine index and numerical notes of the config. Informational: a failed
// query leaves the defaults rather than rejecting the config.
void DescribeEngine(Candidate* c) {
  Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = engine.get();
  int64_t n = 0;
  if (cudnnBackendGetAttribute(c->config.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                               &raw) != CUDNN_STATUS_SUCCESS)
    return;
  int64_t index = -1;
  if (cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index) ==
      CUDNN_STATUS_SUCCESS)
    c->engine = index;
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes) == CUDNN_STATUS_SUCCESS)
    for (int64_t i = 0; i < std::min<int64_t>(n, CUDNN_NUMERICAL_NOTE_TYPE_COUNT); ++i)
      if (notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION) c->reduced_precision = true;
}

// Finalizes the config's execution plan; false with *why if cuDNN refuses.
bool FinalizePlan(cudnnHandle_t handle, Candidate* c, std::string* why) {
  c->plan = Desc(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  DTRAIN_SET_ATTR(c->plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  DTRAIN_SET_DESC(c->plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, c->config);
  const cudnnStatus_t st = cudnnBackendFinalize(c->plan.get());
  if (st != CUDNN_STATUS_SUCCESS) {
    *why = "plan did not finalize: " + StatusString(st);
    return false;
  }
  int64_t n = 0, bytes = 0;
  WithContext("reading the plan's workspace size", [&] {
    CUDNN_CHECK(cudnnBackendGetAttribute(c->plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                         &n, &bytes));
  });
  c->workspace = size_t(std::max<int64_t>(bytes, 0));
  return true;
}

// The variant pack binding (a, b) -> out and the workspace.
Desc MakeVariantPack(const void* a, const void* b, void* out, void* workspace) {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t uids[3] = {kUidA, kUidB, kUidOut};
  void* ptrs[3] = {const_cast<void*>(a), const_cast<void*>(b), out};
  DTRAIN_SET_ATTR(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  DTRAIN_SET_ATTR(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
  DTRAIN_SET_ATTR(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  Finalize(pack, "variant pack");
  return pack;
}

// Enqueues the plan once on the handle's stream; returns cuDNN's status.
cudnnStatus_t Execute(cudnnHandle_t handle, const Desc& plan, const Desc& pack) {
  return cudnnBackendExecute(handle, plan.get(), pack.get());
}

// Device memory for the duration of autotuning (a dx that must not be
// accumulated into while candidates are timed).
class Scratch {
 public:
  explicit Scratch(size_t bytes, cudaStream_t stream) {
    CUDA_CHECK(cudaMalloc(&p_, bytes));
    CUDA_CHECK(cudaMemsetAsync(p_, 0, bytes, stream));
  }
  ~Scratch() { cudaFree(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

class EventPair {
 public:
  EventPair() {
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  cudaEvent_t start = nullptr, stop = nullptr;
};

std::string MiB(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB", double(bytes) / (1 << 20));
  return buf;
}

}  // namespace

struct CudnnConvolutions::Plan {
  Graph graph;
  Candidate chosen;
  const char* mode = "";  // heuristics mode that proposed it
  int usable = 0;         // configs that finalized within the workspace limit
  int rejected = 0;       // configs rejected (finalize, workspace, execution)
};

CudnnConvolutions::CudnnConvolutions(cudnnHandle_t handle, size_t workspace_limit_bytes)
    : handle_(handle), workspace_limit_(workspace_limit_bytes) {
  if (handle_ == nullptr) Fail(ErrorCode::kInvalidArgument, "CudnnConvolutions: the cuDNN handle is null");
}

CudnnConvolutions::~CudnnConvolutions() {
  // Work enqueued by any call may still use the plans and the workspace;
  // nothing to do about failures here.
  if (!plans_.empty() || workspace_ != nullptr) cudaDeviceSynchronize();
  plans_.clear();
  if (workspace_ != nullptr) cudaFree(workspace_);
}

const char* CudnnConvolutions::OpName(Op op) {
  switch (op) {
    case Op::kForward: return "Forward";
    case Op::kBackwardData: return "BackwardData";
    case Op::kBackwardFilter: return "BackwardFilter";
  }
  return "?";
}

std::string CudnnConvolutions::ShapeString(const cpu::Conv2dShape& s) {
  return "n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " h=" + std::to_string(s.h) +
         " w=" + std::to_string(s.w) + " k=" + std::to_string(s.k) + " r=" + std::to_string(s.r) +
         " s=" + std::to_string(s.s) + " stride=" + std::to_string(s.stride) + " pad=" + std::to_string(s.pad);
}

void CudnnConvolutions::CheckCall(Op op, const cpu::Conv2dShape& s, const void* a, const void* b, const void* out) {
  const std::string where = std::string("CudnnConvolutions::") + OpName(op) + " (" + ShapeString(s) + "): ";
  try {
    s.Check();
  } catch (const Error& e) {
    Fail(ErrorCode::kInvalidArgument, where + e.what());
  }
  static const char* const kNames[3][3] = {{"x", "w", "y"}, {"dy", "w", "dx"}, {"x", "dy", "dw"}};
  const void* ptrs[3] = {a, b, out};
  for (int i = 0; i < 3; ++i) {
    const char* name = kNames[int(op)][i];
    if (ptrs[i] == nullptr) Fail(ErrorCode::kInvalidArgument, where + name + " is null");
    if (reinterpret_cast<uintptr_t>(ptrs[i]) % kAlignment != 0) {
      char addr[32];
      std::snprintf(addr, sizeof(addr), "%p", ptrs[i]);
      Fail(ErrorCode::kInvalidArgument, where + name + " (" + addr + ") is not 16-byte aligned");
    }
  }
}

void CudnnConvolutions::Forward(const cpu::Conv2dShape& s, const __half* x, const __half* w, __half* y,
                                cudaStream_t stream) {
  CheckCall(Op::kForward, s, x, w, y);
  Run(Op::kForward, s, false, x, w, y, stream);
}

void CudnnConvolutions::BackwardData(const cpu::Conv2dShape& s, const __half* dy, const __half* w, __half* dx,
                                     bool accumulate, cudaStream_t stream) {
  CheckCall(Op::kBackwardData, s, dy, w, dx);
  Run(Op::kBackwardData, s, accumulate, dy, w, dx, stream);
}

void CudnnConvolutions::BackwardFilter(const cpu::Conv2dShape& s, const __half* x, const __half* dy, __half* dw,
                                       cudaStream_t stream) {
  CheckCall(Op::kBackwardFilter, s, x, dy, dw);
  Run(Op::kBackwardFilter, s, false, x, dy, dw, stream);
}

void CudnnConvolutions::Run(Op op, const cpu::Conv2dShape& s, bool accumulate, const void* a, const void* b,
                            void* out, cudaStream_t stream) {
  try {
    CUDNN_CHECK(cudnnSetStream(handle_, stream));
    Plan& p = GetPlan(op, s, accumulate, a, b, out, stream);
    GrowWorkspace(p.chosen.workspace, stream);
    const Desc pack = MakeVariantPack(a, b, out, workspace_);
    WithContext("executing " + p.chosen.Label(), [&] { CUDNN_CHECK(Execute(handle_, p.chosen.plan, pack)); });
  } catch (const Error& e) {
    Fail(e.code(), std::string("CudnnConvolutions::") + OpName(op) + " (" + ShapeString(s) +
                       (accumulate ? ", accumulate" : "") + "): " + e.what());
  }
}

CudnnConvolutions::Plan& CudnnConvolutions::GetPlan(Op op, const cpu::Conv2dShape& s, bool accumulate,
                                                    const void* a, const void* b, void* out, cudaStream_t stream) {
  const Key key{op, s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.stride, s.pad, accumulate};
  auto it = plans_.find(key);
  if (it == plans_.end()) it = plans_.emplace(key, BuildPlan(op, s, accumulate, a, b, out, stream)).first;
  return *it->second;
}

std::unique_ptr<CudnnConvolutions::Plan> CudnnConvolutions::BuildPlan(Op op, const cpu::Conv2dShape& s,
                                                                      bool accumulate, const void* a, const void* b,
                                                                      void* out, cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone)
    Fail(ErrorCode::kInvalidArgument,
         "first use of this shape while the stream is being captured into a CUDA graph: plans are built (and "
         "timed) on first use, so run every shape once before capturing");
  auto plan = std::make_unique<Plan>();
  plan->graph = MakeGraph(handle_, op, s, accumulate);

  std::vector<std::string> rejected;
  std::vector<Candidate> usable;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::string why;
    std::vector<Desc> configs = HeuristicConfigs(plan->graph.graph, mode, &why);
    if (configs.empty()) rejected.push_back(std::string("mode ") + ModeName(mode) + ": " + why);
    for (Desc& config : configs) {
      if (int(usable.size()) >= kMaxTunedConfigs) break;
      Candidate c;
      c.config = std::move(config);
      DescribeEngine(&c);
      const std::string label = std::string("mode ") + ModeName(mode) + " " + c.Label() + ": ";
      try {
        if (!FinalizePlan(handle_, &c, &why)) {
          rejected.push_back(label + why);
          continue;
        }
      } catch (const Error& e) {
        rejected.push_back(label + e.what());
        continue;
      }
      if (c.workspace > workspace_limit_) {
        rejected.push_back(label + "workspace " + MiB(c.workspace) + " over the limit " + MiB(workspace_limit_));
        continue;
      }
      usable.push_back(std::move(c));
      if (!autotune_ && !usable.back().reduced_precision) break;
    }
    if (!usable.empty()) {
      plan->mode = ModeName(mode);
      break;  // FALLBACK only when A gave nothing usable
    }
  }
  // Reduced-precision reductions only when nothing else runs.
  if (std::any_of(usable.begin(), usable.end(), [](const Candidate& c) { return !c.reduced_precision; }))
    usable.erase(std::remove_if(usable.begin(), usable.end(), [](const Candidate& c) { return c.reduced_precision; }),
                 usable.end());
  auto reasons = [&] {
    std::string r;
    for (size_t i = 0; i < rejected.size() && i < 16; ++i) r += (i ? "; " : "") + rejected[i];
    if (rejected.size() > 16) r += "; ... (" + std::to_string(rejected.size() - 16) + " more)";
    return r;
  };
  if (usable.empty()) Fail(ErrorCode::kInternal, "no usable cuDNN engine config: " + reasons());
  plan->usable = int(usable.size());

  size_t best = 0;
  if (autotune_ && usable.size() > 1) {
    size_t max_workspace = 0;
    for (const Candidate& c : usable) max_workspace = std::max(max_workspace, c.workspace);
    GrowWorkspace(max_workspace, stream);
    // Timing runs write `out` only where the call overwrites it anyway.
    std::unique_ptr<Scratch> scratch;
    if (accumulate) scratch = std::make_unique<Scratch>(s.in_size() * sizeof(__half), stream);
    void* target = accumulate ? scratch->get() : out;
    const Desc pack = MakeVariantPack(a, b, target, workspace_);
    EventPair events;
    bool found = false;
    for (size_t i = 0; i < usable.size(); ++i) {
      Candidate& c = usable[i];
      cudnnStatus_t st = Execute(handle_, c.plan, pack);  // warm-up
      CUDA_CHECK(cudaEventRecord(events.start, stream));
      for (int run = 0; run < kTuneRuns && st == CUDNN_STATUS_SUCCESS; ++run) st = Execute(handle_, c.plan, pack);
      CUDA_CHECK(cudaEventRecord(events.stop, stream));
      CUDA_CHECK(cudaEventSynchronize(events.stop));
      if (st != CUDNN_STATUS_SUCCESS) {
        rejected.push_back(c.Label() + ": execution failed: " + StatusString(st));
        continue;
      }
      CUDA_CHECK(cudaEventElapsedTime(&c.ms, events.start, events.stop));
      c.ms /= kTuneRuns;
      if (!found || c.ms < usable[best].ms) best = i;
      found = true;
    }
    if (!found) Fail(ErrorCode::kInternal, "every usable cuDNN engine config failed to execute: " + reasons());
  }
  plan->chosen = std::move(usable[best]);
  plan->rejected = int(rejected.size());
  return plan;
}

void CudnnConvolutions::GrowWorkspace(size_t bytes, cudaStream_t stream) {
  if (bytes <= workspace_bytes_) return;
  const size_t rounded = (bytes + (size_t(1) << 20) - 1) & ~((size_t(1) << 20) - 1);
  WithContext("growing the workspace from " + MiB(workspace_bytes_) + " to " + MiB(rounded), [&] {
    CUDA_CHECK(cudaStreamSynchronize(stream));  // earlier work may still use the old one
    if (workspace_ != nullptr) CUDA_CHECK(cudaFree(workspace_));
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    CUDA_CHECK(cudaMalloc(&workspace_, rounded));
    workspace_bytes_ = rounded;
  });
}

std::string CudnnConvolutions::DescribePlans() const {
  std::string out;
  for (const auto& [key, p] : plans_) {
    cpu::Conv2dShape s;
    s.n = key.n, s.c = key.c, s.h = key.h, s.w = key.w, s.k = key.k, s.r = key.r, s.s = key.s;
    s.stride = key.stride, s.pad = key.pad;
    char ms[32] = "untimed";
    if (p->chosen.ms >= 0) std::snprintf(ms, sizeof(ms), "%.4f ms", double(p->chosen.ms));
    out += std::string(OpName(key.op)) + " (" + ShapeString(s) + (key.accumulate ? ", accumulate" : "") +
           "): " + p->chosen.Label() + " from heuristics mode " + p->mode + ", workspace " +
           MiB(p->chosen.workspace) + ", " + ms + " (" + std::to_string(p->usable) + " usable, " +
           std::to_string(p->rejected) + " rejected)" + (p->chosen.reduced_precision ? ", reduced precision" : "") +
           "\n";
  }
  return out;
}

}  // namespace dtrain::cuda
