// The allreduce-bench job body, in the spirit of nccl-tests: for sizes doubling
// from spec.min_bytes to spec.max_bytes (rounded to the element size) every
// rank runs warmup + timed allreduces (fewer for big sizes), then re-fills its
// buffer and VERIFIES every element against the serial reference. Values are
// small integers, so sums are exact in fp16 too. time_us is the mean
// per-iteration time of the slowest rank; algbw = bytes / time (1 GB = 1e9 B),
// busbw = algbw * 2(n-1)/n. All ranks must call it with the same arguments;
// all ranks return the same rows. Throws dtrain::Error (kInvalidArgument for a
// bad spec; the communicator's errors otherwise). No gRPC here.
// With an NCCL communicator the swept buffer is device memory (cudaMalloc on
// its GPU) and each size's timed iterations are enqueued back to back and
// waited for once (as nccl-tests does); otherwise host memory, one
// comm.AllReduce after another. Same rows and figures either way.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "worker/comm/communicator.h"

namespace dtrain::jobs {

struct BenchRowResult {
  int64_t bytes = 0;
  int64_t count = 0;   // elements
  std::string dtype;   // "fp32" | "fp16"
  double time_us = 0;  // mean per iteration, slowest rank
  double algbw_gbps = 0;
  double busbw_gbps = 0;
  bool verified = false;  // every element on every rank matched the reference
  int iterations = 0;     // timed iterations actually run
};

// progress(message, done_sizes, total_sizes) after each size (may be empty).
std::vector<BenchRowResult> RunAllreduceBench(
    comm::Communicator& comm, const BenchSpec& spec, comm::DType dtype, double timeout_seconds,
    const std::atomic<bool>* abort,
    const std::function<void(const std::string& message, int done_sizes, int total_sizes)>&
        progress);

}  // namespace dtrain::jobs
