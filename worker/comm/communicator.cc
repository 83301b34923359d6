#include "worker/comm/communicator.h"

#include "common/error.h"

namespace dtrain::comm {

Communicator::~Communicator() = default;

size_t DTypeSize(DType dtype) { return dtype == DType::kF16 ? 2 : 4; }

const char* DTypeName(DType dtype) { return dtype == DType::kF16 ? "fp16" : "fp32"; }

const char* ReduceOpName(ReduceOp op) { return op == ReduceOp::kAvg ? "avg" : "sum"; }

DType ParseDType(const std::string& name) {
  if (name == "fp32") return DType::kF32;
  if (name == "fp16") return DType::kF16;
  Fail(ErrorCode::kInvalidArgument,
       "unknown allreduce dtype '" + name + "': allowed are fp32, fp16");
}

}  // namespace dtrain::comm
