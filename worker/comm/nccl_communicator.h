// NCCL backend of Communicator ("nccl"), for workers with a CUDA device.
// Built only when the build has CUDA and finds libnccl (DTRAIN_HAVE_NCCL).
//
// This header needs no CUDA or NCCL headers: cudaStream_t and cudaEvent_t are
// declared below exactly as the CUDA runtime declares them (pointers to opaque
// structs), so plain .cc files can include it.
//
// Bootstrap: rank 0 calls NewNcclUniqueId(); the id travels to every rank
// through the coordinator's rendezvous (worker/job_runner.cc: key "nccl-id",
// rank 0 publishes the id, the others publish ""); then every rank calls
// MakeNcclCommunicator with it, collectively.
//
// Every wait is bounded: the communicator is created non-blocking
// (ncclConfig_t.blocking = 0), and init, each collective and Wait() poll
// ncclCommGetAsyncError / cudaEventQuery against the Deadline and its abort
// flag. On timeout or abort the communicator is ncclCommAbort'ed and the error
// names this rank and host and lists every peer (NCCL cannot tell which peer
// is missing): "NCCL init did not complete within 30.0s on rank 0 (host a);
// peers: rank 0 (host a, worker w-1), rank 1 (host b, worker w-2)". After a
// failure the communicator is broken: later calls throw kAborted.
//
// Numerics: NCCL reduces fp16 in fp16 (not the fp32 accumulation of the host
// backends), and kAvg is ncclAvg, which for floating types multiplies each
// input by 1/world_size before summing, so an fp16 average cannot overflow
// where the sum would.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "worker/comm/communicator.h"

// As in CUDA's driver_types.h (repeating an identical typedef is valid C++).
struct CUstream_st;
struct CUevent_st;
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

namespace dtrain::comm {

constexpr size_t kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

// A fresh ncclUniqueId as raw bytes (kNcclUniqueIdBytes). Called on rank 0
// only: it also starts NCCL's bootstrap root in this process. Throws
// Error(kUnavailable) when NCCL cannot create one.
std::string NewNcclUniqueId();

// Host-pointer collectives (the Communicator interface) are staged through a
// pinned host buffer and a device buffer on the communicator's own stream;
// device-pointer collectives go straight to NCCL.
class NcclCommunicator : public Communicator {
 public:
  ~NcclCommunicator() override;

  const char* backend() const override { return "nccl"; }
  virtual int device() const = 0;  // CUDA device index
  // The communicator's own stream (created non-blocking on device()).
  virtual cudaStream_t stream() const = 0;

  // In place on device memory: runs on `stream` (null: the communicator's
  // own) and returns once the allreduce has completed.
  virtual void AllReduceDevice(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                               cudaStream_t stream, const Deadline& deadline) = 0;

  // Asynchronous, in place on device memory: `stream` (null: the
  // communicator's own) first waits for `ready` (null: no wait), e.g. an event
  // recorded on the compute stream after the bucket's last gradient was
  // written; then the allreduce is enqueued on `stream`. Returns once NCCL has
  // accepted it (bounded by `deadline`), not when it completes: call Wait().
  virtual void EnqueueAllReduce(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                                cudaStream_t stream, cudaEvent_t ready,
                                const Deadline& deadline) = 0;
  // Returns once every allreduce enqueued so far has completed. Polls the
  // CUDA events and NCCL's async error; on timeout, abort or an NCCL error it
  // aborts the communicator and throws.
  virtual void Wait(const Deadline& deadline) = 0;
  // Number of enqueued allreduces Wait() has not yet seen complete.
  virtual size_t Pending() const = 0;

  // Device memory on device() for callers without CUDA headers (the
  // allreduce bench, tests). Alloc throws Error(kUnavailable) when out of
  // memory; Free(nullptr) does nothing. Copies run on the communicator's own
  // stream (after the work already enqueued there) and return once done,
  // bounded by `deadline` like a collective.
  virtual void* DeviceAlloc(size_t bytes) = 0;
  virtual void DeviceFree(void* dev_ptr) noexcept = 0;
  virtual void CopyToDevice(void* dev_dst, const void* host_src, size_t bytes,
                            const Deadline& deadline) = 0;
  virtual void CopyToHost(void* host_dst, const void* dev_src, size_t bytes,
                          const Deadline& deadline) = 0;
};

// Collective: every rank of the job calls it with the same `unique_id_bytes`
// (from rank 0's NewNcclUniqueId) and world size, each with its own rank and
// CUDA device. `peers` lists all ranks in rank order (peers[i].rank == i;
// only rank, host and worker_id are used, for error messages). Throws
// kInvalidArgument on bad arguments, kDeadlineExceeded / kAborted when init
// does not complete in time (the message lists the peers), kUnavailable on an
// NCCL failure, kInternal (kernels/cuda/check.h) when the device cannot be
// set up.
std::unique_ptr<NcclCommunicator> MakeNcclCommunicator(int rank, int world,
                                                       const std::string& unique_id_bytes,
                                                       int device,
                                                       const std::vector<PeerInfo>& peers,
                                                       const Deadline& deadline);

}  // namespace dtrain::comm
