// Communicator: the collectives a data-parallel trainer needs, over host
// memory. One object per job and rank; every rank of the job calls the same
// collectives in the same order. Methods are called by one thread at a time,
// not necessarily the thread that created the object. Every call takes a
// Deadline (with its optional abort flag); on timeout, abort or a failed peer
// it throws dtrain::Error naming the ranks and hosts not heard from, and the
// communicator is broken: later calls throw kAborted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/deadline.h"

namespace dtrain::comm {

enum class DType { kF32, kF16 };  // fp16 elements are IEEE half bits (uint16_t)
enum class ReduceOp { kSum, kAvg };

size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);           // "fp32" | "fp16"
DType ParseDType(const std::string& name);    // throws kInvalidArgument otherwise
const char* ReduceOpName(ReduceOp op);        // "sum" | "avg"

struct PeerInfo {
  int rank = 0;
  std::string host;
  std::string worker_id;
  std::string ucx_address;  // raw bytes of the peer's UCP worker address
};

class Communicator {
 public:
  virtual ~Communicator();
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* backend() const = 0;
  // The allreduce schedule ("ring" | "hierarchical" | "auto"); "" where the
  // library picks its own (NCCL) or there is none (local).
  virtual const char* algorithm() const { return ""; }

  // In place, host memory, any count >= 0. fp16 is accumulated in fp32 and
  // rounded once per reduction step; kAvg divides by world_size.
  virtual void AllReduce(void* data, size_t count, DType dtype, ReduceOp op,
                         const Deadline& deadline) = 0;
  // Every rank ends with root's `bytes` bytes in `data`.
  virtual void Broadcast(void* data, size_t bytes, int root, const Deadline& deadline) = 0;
  // Returns once every rank has entered the barrier.
  virtual void Barrier(const Deadline& deadline) = 0;
};

}  // namespace dtrain::comm
