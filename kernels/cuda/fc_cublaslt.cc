// The FC layer on cuBLASLt (contract in fc_cublaslt.h).
#include "kernels/cuda/fc_cublaslt.h"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "common/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/fc_bias.h"

namespace dtrain::cuda {
namespace {

enum class FcOp { kForward, kBackwardData, kBackwardWeights };

const char* OpName(FcOp op) {
  switch (op) {
    case FcOp::kForward: return "Forward";
    case FcOp::kBackwardData: return "BackwardData";
    case FcOp::kBackwardWeights: return "BackwardWeights";
  }
  return "?";
}

std::string Describe(FcOp op, int n, int c, int k) {
  return std::string("CublasLtFc::") + OpName(op) + " (n=" + std::to_string(n) + " c=" + std::to_string(c) +
         " k=" + std::to_string(k) + ")";
}

// Largest power of two <= 256 dividing the address (p is not null).
uint32_t Alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

// One product as cuBLASLt sees it: column-major, every matrix as stored
// (rows × cols, ld = rows), op applied to A and B (see the header's table).
struct GemmSpec {
  cublasOperation_t trans_a, trans_b;
  cudaDataType_t d_type;  // A and B are always fp16
  uint64_t a_rows, a_cols, b_rows, b_cols, d_rows, d_cols;
};

GemmSpec Spec(FcOp op, uint64_t n, uint64_t c, uint64_t k) {
  switch (op) {
    case FcOp::kForward:  // yᵀ (k×n) = op_T(W stored c×k) · (x stored c×n)
      return {CUBLAS_OP_T, CUBLAS_OP_N, CUDA_R_32F, c, k, c, n, k, n};
    case FcOp::kBackwardData:  // dxᵀ (c×n) = (W stored c×k) · (dy stored k×n)
      return {CUBLAS_OP_N, CUBLAS_OP_N, CUDA_R_16F, c, k, k, n, c, n};
    case FcOp::kBackwardWeights:  // dWᵀ (c×k) = (x stored c×n) · op_T(dy stored k×n)
      return {CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16F, c, n, k, n, c, k};
  }
  Fail(ErrorCode::kInternal, "CublasLtFc: unknown op");
}

struct PlanKey {
  FcOp op;
  int n, c, k;
  uint32_t align_a, align_b, align_d, align_bias;  // align_bias: 0 without bias
  bool operator<(const PlanKey& o) const {
    return std::tie(op, n, c, k, align_a, align_b, align_d, align_bias) <
           std::tie(o.op, o.n, o.c, o.k, o.align_a, o.align_b, o.align_d, o.align_bias);
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool bias_epilogue = false;  // kForward: bias added by the epilogue (else: pre-filled, beta = 1)

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // statuses ignored: nothing to do about them in a destructor
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
  }
};

struct PreferenceGuard {
  cublasLtMatmulPreference_t pref = nullptr;
  ~PreferenceGuard() {
    if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
  }
};

template <typename T>
void SetDescAttr(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

template <typename T>
void SetPrefAttr(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
}

// Rethrows a dtrain::Error from f with `what` (op and shape) in front.
template <typename F>
void WithContext(const std::string& what, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    throw Error(e.code(), what + ": " + e.what());
  }
}

void CheckArgs(FcOp op, int n, int c, int k, std::initializer_list<std::pair<const void*, const char*>> ptrs) {
  if (n <= 0 || c <= 0 || k <= 0)
    Fail(ErrorCode::kInvalidArgument, Describe(op, n, c, k) + ": n, c and k must be positive");
  for (const auto& [p, name] : ptrs)
    if (p == nullptr) Fail(ErrorCode::kInvalidArgument, Describe(op, n, c, k) + ": " + name + " is null");
}

}  // namespace

struct CublasLtFc::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;

  // Asks the heuristic for the best algorithm for `plan` as configured:
  // CUBLAS_STATUS_SUCCESS (plan.algo set), CUBLAS_STATUS_NOT_SUPPORTED (none
  // offered) or the failing status of the query itself. Throws only when
  // setting up the query fails.
  cublasStatus_t FindAlgo(Plan& plan, const PlanKey& key) {
    PreferenceGuard g;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&g.pref));
    SetPrefAttr(g.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(workspace_bytes));
    SetPrefAttr(g.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a);
    SetPrefAttr(g.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b);
    SetPrefAttr(g.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d);  // C is D
    SetPrefAttr(g.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d);
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.a, plan.b, plan.d, plan.d,
                                                             g.pref, 1, &result, &returned);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (returned < 1 || result.state != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;
    plan.algo = result.algo;
    return CUBLAS_STATUS_SUCCESS;
  }

  // The cached plan for key, built on first use. bias: the Forward's bias
  // pointer (its address decides the epilogue's alignment), else null.
  const Plan& GetPlan(const PlanKey& key, const void* bias) {
    auto it = plans.find(key);
    if (it != plans.end()) return *it->second;
    const GemmSpec s = Spec(key.op, uint64_t(key.n), uint64_t(key.c), uint64_t(key.k));
    auto plan = std::make_unique<Plan>();
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    SetDescAttr(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, int32_t(s.trans_a));
    SetDescAttr(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, int32_t(s.trans_b));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16F, s.a_rows, s.a_cols, int64_t(s.a_rows)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16F, s.b_rows, s.b_cols, int64_t(s.b_rows)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, s.d_type, s.d_rows, s.d_cols, int64_t(s.d_rows)));
    cublasStatus_t st = CUBLAS_STATUS_NOT_SUPPORTED;
    if (key.op == FcOp::kForward) {
      SetDescAttr(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_BIAS));
      SetDescAttr(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
      // Any refusal of the epilogue (none offered, or the query rejecting the
      // configuration) falls back to the pre-filled bias with beta = 1.
      st = FindAlgo(*plan, key);
      plan->bias_epilogue = st == CUBLAS_STATUS_SUCCESS;
      if (!plan->bias_epilogue) {
        SetDescAttr(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_DEFAULT));
        SetDescAttr(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(nullptr));
      }
    }
    if (!plan->bias_epilogue) st = FindAlgo(*plan, key);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED)
      Fail(ErrorCode::kInternal,
           "cuBLASLt heuristic found no algorithm (fp16 A/B, " +
               std::string(s.d_type == CUDA_R_32F ? "fp32" : "fp16") + " C/D, COMPUTE_32F; alignments A=" +
               std::to_string(key.align_a) + " B=" + std::to_string(key.align_b) + " D=" +
               std::to_string(key.align_d) + " bytes; workspace " + std::to_string(workspace_bytes) + " bytes)");
    if (st != CUBLAS_STATUS_SUCCESS)  // the query itself failed
      ThrowLibraryError("cuBLASLt", std::string(cublasGetStatusName(st)) + " (" + std::to_string(int(st)) + ")",
                        "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
    return *plans.emplace(key, std::move(plan)).first->second;
  }

  void Run(const Plan& plan, const void* a, const void* b, float beta, void* d, cudaStream_t stream) {
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasLtMatmul(handle, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d, plan.d, d, plan.d,
                                &plan.algo, workspace, workspace_bytes, stream));
  }
};

CublasLtFc::CublasLtFc(cublasLtHandle_t handle, size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  if (handle == nullptr) Fail(ErrorCode::kInvalidArgument, "CublasLtFc: cuBLASLt handle is null");
  impl_->handle = handle;
  if (workspace_bytes > 0) {
    WithContext("CublasLtFc: allocating a " + std::to_string(workspace_bytes) + "-byte workspace",
                [&] { CUDA_CHECK(cudaMalloc(&impl_->workspace, workspace_bytes)); });
    impl_->workspace_bytes = workspace_bytes;
  }
}

CublasLtFc::~CublasLtFc() {
  if (impl_ == nullptr) return;
  impl_->plans.clear();
  if (impl_->workspace != nullptr) cudaFree(impl_->workspace);  // synchronises; status ignored
}

void CublasLtFc::Forward(int n, int c, int k, const __half* x, const __half* w, const float* bias, float* y,
                         cudaStream_t stream) {
  CheckArgs(FcOp::kForward, n, c, k, {{x, "x"}, {w, "w"}, {bias, "bias"}, {y, "y"}});
  WithContext(Describe(FcOp::kForward, n, c, k), [&] {
    // A = W, B = x, D = y.
    const PlanKey key{FcOp::kForward, n, c, k, Alignment(w), Alignment(x), Alignment(y), Alignment(bias)};
    const Plan& plan = impl_->GetPlan(key, bias);
    if (plan.bias_epilogue) {
      SetDescAttr(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(bias));
      impl_->Run(plan, w, x, 0.0f, y, stream);
    } else {
      BroadcastBiasRows(n, k, bias, y, stream);
      impl_->Run(plan, w, x, 1.0f, y, stream);
    }
    last_forward_used_bias_epilogue_ = plan.bias_epilogue;
  });
}

void CublasLtFc::BackwardData(int n, int c, int k, const __half* dy, const __half* w, __half* dx,
                              cudaStream_t stream) {
  CheckArgs(FcOp::kBackwardData, n, c, k, {{dy, "dy"}, {w, "w"}, {dx, "dx"}});
  WithContext(Describe(FcOp::kBackwardData, n, c, k), [&] {
    // A = W, B = dy, D = dx.
    const PlanKey key{FcOp::kBackwardData, n, c, k, Alignment(w), Alignment(dy), Alignment(dx), 0};
    impl_->Run(impl_->GetPlan(key, nullptr), w, dy, 0.0f, dx, stream);
  });
}

void CublasLtFc::BackwardWeights(int n, int c, int k, const __half* x, const __half* dy, __half* dw,
                                 float* dbias, cudaStream_t stream) {
  CheckArgs(FcOp::kBackwardWeights, n, c, k, {{x, "x"}, {dy, "dy"}, {dw, "dw"}, {dbias, "dbias"}});
  WithContext(Describe(FcOp::kBackwardWeights, n, c, k), [&] {
    // A = x, B = dy, D = dW.
    const PlanKey key{FcOp::kBackwardWeights, n, c, k, Alignment(x), Alignment(dy), Alignment(dw), 0};
    impl_->Run(impl_->GetPlan(key, nullptr), x, dy, 0.0f, dw, stream);
    ColumnSum(n, k, dy, dbias, stream);  // dbias[j] = Σ_i dy[i][j]
  });
}

}  // namespace dtrain::cuda
