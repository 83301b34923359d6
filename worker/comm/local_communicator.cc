#include "worker/comm/local_communicator.h"

#include <string>

#include "common/error.h"

namespace dtrain::comm {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const char* backend() const override { return "local"; }

  void AllReduce(void* data, size_t count, DType dtype, ReduceOp op,
                 const Deadline& deadline) override {
    if (!data && count > 0) Fail(ErrorCode::kInvalidArgument, "allreduce: null buffer");
    if (dtype != DType::kF32 && dtype != DType::kF16) {
      Fail(ErrorCode::kInvalidArgument, "allreduce: unknown dtype");
    }
    if (op != ReduceOp::kSum && op != ReduceOp::kAvg) {
      Fail(ErrorCode::kInvalidArgument, "allreduce: unknown reduce op");
    }
    CheckAbort("allreduce", deadline);
  }

  void Broadcast(void* data, size_t bytes, int root, const Deadline& deadline) override {
    if (root != 0) {
      Fail(ErrorCode::kInvalidArgument,
           "broadcast: root " + std::to_string(root) + " out of range [0, 1)");
    }
    if (!data && bytes > 0) Fail(ErrorCode::kInvalidArgument, "broadcast: null buffer");
    CheckAbort("broadcast", deadline);
  }

  void Barrier(const Deadline& deadline) override { CheckAbort("barrier", deadline); }

 private:
  static void CheckAbort(const char* what, const Deadline& deadline) {
    if (deadline.Aborted()) Fail(ErrorCode::kAborted, std::string(what) + ": aborted");
  }
};

}  // namespace

std::unique_ptr<Communicator> MakeLocalCommunicator() {
  return std::make_unique<LocalCommunicator>();
}

}  // namespace dtrain::comm
