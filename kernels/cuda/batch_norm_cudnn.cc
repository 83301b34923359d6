// Batch norm on cuDNN's NHWC fp16 calls (contract in batch_norm_cudnn.h).
#include "kernels/cuda/batch_norm_cudnn.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/error.h"
#include "kernels/cuda/bn_activation.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cudnn_check.h"

// The legacy batch-norm API is CUDNN_DEPRECATED in cuDNN 9 (still what
// PyTorch calls): silence that warning for this file only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace dtrain::cuda {
namespace {

constexpr size_t kAlign = 256;
size_t AlignUp(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

const char* PassName(BnPass pass) {
  switch (pass) {
    case BnPass::kForwardTraining: return "CudnnBatchNorm::ForwardTraining";
    case BnPass::kForwardInference: return "CudnnBatchNorm::ForwardInference";
    case BnPass::kBackward: return "CudnnBatchNorm::Backward";
  }
  return "CudnnBatchNorm";
}

std::string Where(const char* op, const cpu::BatchNormShape& s, BnActivation act) {
  return std::string(op) + " (n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) +
         " hw=" + std::to_string(s.hw) + ", act=" + BnActivationName(act) + ")";
}

[[noreturn]] void Invalid(const char* op, const cpu::BatchNormShape& s, BnActivation act, const std::string& what) {
  Fail(ErrorCode::kInvalidArgument, Where(op, s, act) + ": " + what);
}

// The shape and activation rules of CheckBnArgs (also for ReserveBytes).
void CheckShape(const char* op, const cpu::BatchNormShape& s, BnActivation act, bool training) {
  if (act != BnActivation::kNone && act != BnActivation::kRelu && act != BnActivation::kAddRelu)
    Invalid(op, s, act, "unknown activation " + std::to_string(static_cast<int>(act)));
  if (s.n <= 0 || s.c <= 0 || s.hw <= 0) Invalid(op, s, act, "n, c and hw must be positive");
  const int64_t count = int64_t(s.n) * s.c * s.hw;
  if (count > INT32_MAX)
    Invalid(op, s, act, "n*hw*c = " + std::to_string(count) + " exceeds INT32_MAX (cuDNN tensor descriptors)");
  if (training && int64_t(s.n) * s.hw < 2)
    Invalid(op, s, act, "training needs more than one value per channel (n*hw >= 2)");
}

struct Named {
  const char* name;
  const void* p;
};

// Throws kInternal naming the cuDNN call, the shape and the path taken.
void CheckStatus(cudnnStatus_t st, const char* call, const char* op, const cpu::BatchNormShape& s, BnActivation act,
                 const char* path, const char* file, int line) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  const std::string expr = std::string(call) + " in " + Where(op, s, act) + " [" + path + "]";
  ThrowLibraryError("cuDNN", std::string(cudnnGetErrorString(st)) + " (" + std::to_string(static_cast<int>(st)) + ")",
                    expr.c_str(), file, line);
}
#define DTRAIN_BN_CUDNN(call, args, op, s, act, path) \
  CheckStatus(call args, #call, op, s, act, path, __FILE__, __LINE__)

cudnnBatchNormOps_t FusedOps(BnActivation act) {
  switch (act) {
    case BnActivation::kRelu: return CUDNN_BATCHNORM_OPS_BN_ACTIVATION;
    case BnActivation::kAddRelu: return CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION;
    case BnActivation::kNone: break;
  }
  return CUDNN_BATCHNORM_OPS_BN;
}

const char* PathName(bool persistent, BnActivation act) {
  if (!persistent) return "spatial, bnOps BN + own activation";
  switch (act) {
    case BnActivation::kRelu: return "persistent, bnOps BN_ACTIVATION";
    case BnActivation::kAddRelu: return "persistent, bnOps BN_ADD_ACTIVATION";
    case BnActivation::kNone: break;
  }
  return "persistent, bnOps BN";
}

// h*w = hw with w the largest divisor <= sqrt(hw): 3136 -> 56x56, 49 -> 7x7
// (the NHWC memory is the same for every factoring).
void SpatialDims(int hw, int* h, int* w) {
  int best = 1;
  for (int d = 1; int64_t(d) * d <= hw; ++d)
    if (hw % d == 0) best = d;
  *w = best;
  *h = hw / best;
}

}  // namespace

const char* BnActivationName(BnActivation act) {
  switch (act) {
    case BnActivation::kNone: return "none";
    case BnActivation::kRelu: return "relu";
    case BnActivation::kAddRelu: return "add_relu";
  }
  return "unknown";
}

void CheckBnArgs(const BnArgs& a) {
  const char* op = PassName(a.pass);
  const cpu::BatchNormShape& s = a.shape;
  const bool training = a.pass == BnPass::kForwardTraining;
  CheckShape(op, s, a.act, training);
  if (!std::isfinite(a.epsilon) || a.epsilon < CUDNN_BN_MIN_EPSILON)
    Invalid(op, s, a.act,
            "epsilon must be finite and >= CUDNN_BN_MIN_EPSILON (" + std::to_string(CUDNN_BN_MIN_EPSILON) +
                "), got " + std::to_string(a.epsilon));
  if (training && !(a.momentum >= 0.0 && a.momentum <= 1.0))
    Invalid(op, s, a.act, "momentum must be in [0, 1], got " + std::to_string(a.momentum));

  const bool add = a.act == BnActivation::kAddRelu;
  auto need = [&](const Named& v) {
    if (v.p == nullptr) Invalid(op, s, a.act, std::string(v.name) + " must not be null");
  };
  auto add_only = [&](const Named& v) {
    if (add)
      need(v);
    else if (v.p != nullptr)
      Invalid(op, s, a.act, std::string(v.name) + " must be null unless act=add_relu");
  };
  auto no_alias = [&](const Named& out, std::initializer_list<Named> others) {
    if (out.p == nullptr) return;
    for (const Named& o : others)
      if (o.p == out.p) Invalid(op, s, a.act, std::string(out.name) + " must not alias " + o.name);
  };
  const Named x{"x", a.x}, z{"z", a.z}, y{"y", a.y}, dy{"dy", a.dy}, dx{"dx", a.dx}, dz{"dz", a.dz};
  const Named gamma{"gamma", a.gamma}, beta{"beta", a.beta}, rmean{"running_mean", a.running_mean},
      rvar{"running_var", a.running_var}, smean{"save_mean", a.save_mean}, sinv{"save_inv_std", a.save_inv_std},
      dgamma{"dgamma", a.dgamma}, dbeta{"dbeta", a.dbeta};
  switch (a.pass) {
    case BnPass::kForwardTraining:
      for (const Named& v : {x, y, gamma, beta, rmean, rvar, smean, sinv}) need(v);
      add_only(z);
      no_alias(y, {x, z});
      no_alias(rmean, {rvar, smean, sinv, gamma, beta});
      no_alias(rvar, {smean, sinv, gamma, beta});
      no_alias(smean, {sinv, gamma, beta});
      no_alias(sinv, {gamma, beta});
      break;
    case BnPass::kForwardInference:
      for (const Named& v : {x, y, gamma, beta, rmean, rvar}) need(v);
      add_only(z);
      no_alias(y, {x, z});
      break;
    case BnPass::kBackward:
      for (const Named& v : {x, dy, dx, gamma, beta, smean, sinv, dgamma, dbeta}) need(v);
      if (a.act != BnActivation::kNone) need(y);
      add_only(dz);
      no_alias(dx, {x, y, dy, dz});
      no_alias(dz, {x, y, dy});
      no_alias(dgamma, {dbeta, gamma, beta, smean, sinv});
      no_alias(dbeta, {gamma, beta, smean, sinv});
      break;
  }
}

CudnnBatchNorm::CudnnBatchNorm(cudnnHandle_t handle) : handle_(handle) {
  if (handle == nullptr) Fail(ErrorCode::kInvalidArgument, "CudnnBatchNorm: the cuDNN handle must not be null");
  try {
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&bn_desc_));
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&relu_desc_));
    // PROPAGATE_NAN: an overflow must reach the loss scaler, not vanish in max(NaN, 0).
    CUDNN_CHECK(cudnnSetActivationDescriptor(relu_desc_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  } catch (...) {
    if (relu_desc_) cudnnDestroyActivationDescriptor(relu_desc_);
    if (bn_desc_) cudnnDestroyTensorDescriptor(bn_desc_);
    if (x_desc_) cudnnDestroyTensorDescriptor(x_desc_);
    throw;
  }
}

CudnnBatchNorm::~CudnnBatchNorm() {
  cudnnDestroyActivationDescriptor(relu_desc_);
  cudnnDestroyTensorDescriptor(bn_desc_);
  cudnnDestroyTensorDescriptor(x_desc_);
  if (workspace_ != nullptr) cudaFree(workspace_);  // waits for the work that uses it
}

void CudnnBatchNorm::SetDescriptors(const cpu::BatchNormShape& s, BnActivation act, bool persistent) {
  int h = 0, w = 0;
  SpatialDims(s.hw, &h, &w);
  const char* path = PathName(persistent, act);
  DTRAIN_BN_CUDNN(cudnnSetTensor4dDescriptor, (x_desc_, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, s.n, s.c, h, w),
                  "CudnnBatchNorm", s, act, path);
  DTRAIN_BN_CUDNN(cudnnDeriveBNTensorDescriptor,
                  (bn_desc_, x_desc_, persistent ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL),
                  "CudnnBatchNorm", s, act, path);
}

CudnnBatchNorm::Plan CudnnBatchNorm::PlanFor(const cpu::BatchNormShape& s, BnActivation act) {
  for (const Plan& p : plans_)
    if (p.n == s.n && p.c == s.c && p.hw == s.hw && p.act == act) return p;
  Plan p{s.n, s.c, s.hw, act, false, 0, 0, 0, 0, 0};
  // The fused ops need NHWC fp16 with c % 4 == 0 (cuDNN; TF checks the same);
  // beyond that, trust cuDNN's size queries to refuse what it cannot run.
  if (s.c % 4 == 0) {
    SetDescriptors(s, act, true);
    const cudnnBatchNormOps_t ops = FusedOps(act);
    const cudnnActivationDescriptor_t relu = act == BnActivation::kNone ? nullptr : relu_desc_;
    const cudnnTensorDescriptor_t z_desc = act == BnActivation::kAddRelu ? x_desc_ : nullptr;
    const cudnnBatchNormMode_t mode = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
    cudnnStatus_t st = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
        handle_, mode, ops, x_desc_, z_desc, x_desc_, bn_desc_, relu, &p.forward_ws);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationBackwardExWorkspaceSize(handle_, mode, ops, x_desc_, x_desc_, x_desc_, z_desc,
                                                             x_desc_, bn_desc_, relu, &p.backward_ws);
    if (st == CUDNN_STATUS_SUCCESS)
      st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(handle_, mode, ops, relu, x_desc_, &p.reserve);
    p.persistent = st == CUDNN_STATUS_SUCCESS;
    p.refused_status = static_cast<int>(st);
    // "Not supported" or "bad parameter" for this configuration: fall back.
    // Anything else (not initialised, internal error) is a real failure.
    const int category = CUDNN_STATUS_CATEGORY(static_cast<int>(st));
    if (!p.persistent && category != CUDNN_STATUS_NOT_SUPPORTED && category != CUDNN_STATUS_BAD_PARAM)
      CheckStatus(st, "the persistent size queries", "CudnnBatchNorm", s, act, PathName(true, act), __FILE__,
                  __LINE__);
  }
  if (!p.persistent) {
    SetDescriptors(s, act, false);
    const cudnnBatchNormMode_t mode = CUDNN_BATCHNORM_SPATIAL;
    const cudnnBatchNormOps_t ops = CUDNN_BATCHNORM_OPS_BN;
    const char* path = PathName(false, act);
    DTRAIN_BN_CUDNN(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize,
                    (handle_, mode, ops, x_desc_, nullptr, x_desc_, bn_desc_, nullptr, &p.forward_ws),
                    "CudnnBatchNorm", s, act, path);
    DTRAIN_BN_CUDNN(cudnnGetBatchNormalizationBackwardExWorkspaceSize,
                    (handle_, mode, ops, x_desc_, x_desc_, x_desc_, nullptr, x_desc_, bn_desc_, nullptr,
                     &p.backward_ws),
                    "CudnnBatchNorm", s, act, path);
    DTRAIN_BN_CUDNN(cudnnGetBatchNormalizationTrainingExReserveSpaceSize,
                    (handle_, mode, ops, nullptr, x_desc_, &p.reserve), "CudnnBatchNorm", s, act, path);
    if (act == BnActivation::kRelu) p.backward_scratch = size_t(s.n) * s.hw * s.c * sizeof(__half);
  }
  plans_.push_back(p);
  return p;
}

void* CudnnBatchNorm::Workspace(size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return nullptr;
  if (bytes > workspace_bytes_) {
    // Earlier calls on `stream` may still be using the old buffer.
    CUDA_CHECK(cudaStreamSynchronize(stream));
    if (workspace_ != nullptr) CUDA_CHECK(cudaFree(workspace_));
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    const size_t grown = AlignUp(bytes);
    const cudaError_t err = cudaMalloc(&workspace_, grown);
    if (err != cudaSuccess) {
      workspace_ = nullptr;
      ThrowCudaError(err, ("cudaMalloc of the CudnnBatchNorm workspace (" + std::to_string(grown) + " bytes)").c_str(),
                     __FILE__, __LINE__);
    }
    workspace_bytes_ = grown;
  }
  return workspace_;
}

size_t CudnnBatchNorm::ReserveBytes(const cpu::BatchNormShape& s, BnActivation act) {
  CheckShape("CudnnBatchNorm::ReserveBytes", s, act, true);
  return PlanFor(s, act).reserve;
}

bool CudnnBatchNorm::UsesPersistentPath(const cpu::BatchNormShape& s, BnActivation act) {
  CheckShape("CudnnBatchNorm::UsesPersistentPath", s, act, true);
  return PlanFor(s, act).persistent;
}

std::string CudnnBatchNorm::PathDescription(const cpu::BatchNormShape& s, BnActivation act) {
  CheckShape("CudnnBatchNorm::PathDescription", s, act, true);
  const Plan p = PlanFor(s, act);
  std::string d = PathName(p.persistent, act);
  if (!p.persistent)
    d += s.c % 4 != 0 ? " (c % 4 != 0)"
                      : " (persistent refused: " +
                            std::string(cudnnGetErrorString(static_cast<cudnnStatus_t>(p.refused_status))) + ")";
  return d + "; workspace forward " + std::to_string(p.forward_ws) + " B, backward " +
         std::to_string(p.backward_ws + p.backward_scratch) + " B; reserve " + std::to_string(p.reserve) + " B";
}

void CudnnBatchNorm::ForwardTraining(const cpu::BatchNormShape& s, BnActivation act, const __half* x,
                                     const __half* z, const float* gamma, const float* beta, double epsilon,
                                     double momentum, float* running_mean, float* running_var, float* save_mean,
                                     float* save_inv_std, void* reserve, __half* y, cudaStream_t stream) {
  const char* op = PassName(BnPass::kForwardTraining);
  BnArgs a;
  a.pass = BnPass::kForwardTraining;
  a.shape = s;
  a.act = act;
  a.epsilon = epsilon;
  a.momentum = momentum;
  a.x = x, a.z = z, a.y = y, a.gamma = gamma, a.beta = beta;
  a.running_mean = running_mean, a.running_var = running_var, a.save_mean = save_mean, a.save_inv_std = save_inv_std;
  CheckBnArgs(a);
  const Plan p = PlanFor(s, act);
  if (p.reserve > 0 && reserve == nullptr)
    Invalid(op, s, act, "reserve must not be null (ReserveBytes = " + std::to_string(p.reserve) + ")");
  const char* path = PathName(p.persistent, act);
  CUDNN_CHECK(cudnnSetStream(handle_, stream));
  SetDescriptors(s, act, p.persistent);
  void* ws = Workspace(p.forward_ws, stream);
  const bool fuse_act = p.persistent && act != BnActivation::kNone;
  const bool fuse_add = p.persistent && act == BnActivation::kAddRelu;
  const float one = 1.0f, zero = 0.0f;  // y = 1*result + 0*y: y is overwritten, not read
  DTRAIN_BN_CUDNN(cudnnBatchNormalizationForwardTrainingEx,
                  (handle_, p.persistent ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL,
                   p.persistent ? FusedOps(act) : CUDNN_BATCHNORM_OPS_BN, &one, &zero, x_desc_, x,
                   fuse_add ? x_desc_ : nullptr, fuse_add ? z : nullptr, x_desc_, y, bn_desc_, gamma, beta,
                   1.0 - momentum, running_mean, running_var, epsilon, save_mean, save_inv_std,
                   fuse_act ? relu_desc_ : nullptr, ws, p.forward_ws, p.reserve > 0 ? reserve : nullptr, p.reserve),
                  op, s, act, path);
  if (!p.persistent && act != BnActivation::kNone)
    AddReluInPlace(act == BnActivation::kAddRelu ? z : nullptr, y, int64_t(s.n) * s.hw * s.c, stream);
}

void CudnnBatchNorm::ForwardInference(const cpu::BatchNormShape& s, BnActivation act, const __half* x,
                                      const __half* z, const float* gamma, const float* beta,
                                      const float* running_mean, const float* running_var, double epsilon,
                                      __half* y, cudaStream_t stream) {
  const char* op = PassName(BnPass::kForwardInference);
  BnArgs a;
  a.pass = BnPass::kForwardInference;
  a.shape = s;
  a.act = act;
  a.epsilon = epsilon;
  a.x = x, a.z = z, a.y = y, a.gamma = gamma, a.beta = beta;
  a.running_mean = running_mean, a.running_var = running_var;
  CheckBnArgs(a);
  const char* path = "spatial inference + own activation";
  CUDNN_CHECK(cudnnSetStream(handle_, stream));
  SetDescriptors(s, act, false);
  const float one = 1.0f, zero = 0.0f;
  DTRAIN_BN_CUDNN(cudnnBatchNormalizationForwardInference,
                  (handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc_, x, x_desc_, y, bn_desc_, gamma, beta,
                   running_mean, running_var, epsilon),
                  op, s, act, path);
  if (act != BnActivation::kNone)
    AddReluInPlace(act == BnActivation::kAddRelu ? z : nullptr, y, int64_t(s.n) * s.hw * s.c, stream);
}

void CudnnBatchNorm::Backward(const cpu::BatchNormShape& s, BnActivation act, const __half* x, const __half* y,
                              const __half* dy, const float* gamma, const float* beta, const float* save_mean,
                              const float* save_inv_std, double epsilon, void* reserve, __half* dx, __half* dz,
                              float* dgamma, float* dbeta, cudaStream_t stream) {
  const char* op = PassName(BnPass::kBackward);
  BnArgs a;
  a.pass = BnPass::kBackward;
  a.shape = s;
  a.act = act;
  a.epsilon = epsilon;
  a.x = x, a.y = y, a.dy = dy, a.dx = dx, a.dz = dz, a.gamma = gamma, a.beta = beta;
  a.save_mean = save_mean, a.save_inv_std = save_inv_std, a.dgamma = dgamma, a.dbeta = dbeta;
  CheckBnArgs(a);
  const Plan p = PlanFor(s, act);
  if (p.reserve > 0 && reserve == nullptr)
    Invalid(op, s, act, "reserve must not be null (ReserveBytes = " + std::to_string(p.reserve) + ")");
  const char* path = PathName(p.persistent, act);
  const int64_t count = int64_t(s.n) * s.hw * s.c;
  CUDNN_CHECK(cudnnSetStream(handle_, stream));
  SetDescriptors(s, act, p.persistent);
  char* ws = static_cast<char*>(Workspace(AlignUp(p.backward_ws) + p.backward_scratch, stream));
  // The gradient reaching BN: dy itself when cuDNN fuses the activation;
  // on the fallback, dy masked by y > 0 (into dz for add+ReLU, where it is
  // exactly dz, else into the scratch after cuDNN's workspace).
  const __half* bn_dy = dy;
  if (!p.persistent && act == BnActivation::kAddRelu) {
    ReluBackwardMask(y, dy, dz, count, stream);
    bn_dy = dz;
  } else if (!p.persistent && act == BnActivation::kRelu) {
    __half* scratch = reinterpret_cast<__half*>(ws + AlignUp(p.backward_ws));
    ReluBackwardMask(y, dy, scratch, count, stream);
    bn_dy = scratch;
  }
  const bool fuse_act = p.persistent && act != BnActivation::kNone;
  const bool fuse_add = p.persistent && act == BnActivation::kAddRelu;
  const float one = 1.0f, zero = 0.0f;  // dx, dgamma, dbeta overwritten, not accumulated
  DTRAIN_BN_CUDNN(cudnnBatchNormalizationBackwardEx,
                  (handle_, p.persistent ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL,
                   p.persistent ? FusedOps(act) : CUDNN_BATCHNORM_OPS_BN, &one, &zero, &one, &zero, x_desc_, x,
                   x_desc_, y, x_desc_, bn_dy, fuse_add ? x_desc_ : nullptr, fuse_add ? dz : nullptr, x_desc_, dx,
                   bn_desc_, gamma, beta, dgamma, dbeta, epsilon, save_mean, save_inv_std,
                   fuse_act ? relu_desc_ : nullptr, p.backward_ws > 0 ? ws : nullptr, p.backward_ws,
                   p.reserve > 0 ? reserve : nullptr, p.reserve),
                  op, s, act, path);
}

}  // namespace dtrain::cuda

#undef DTRAIN_BN_CUDNN
#pragma GCC diagnostic pop
