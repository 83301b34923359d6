#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>

#include "common/error.h"
#include "kernels/cuda/check.h"

static_assert(NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0),
              "the nccl backend needs NCCL >= 2.14 (ncclAvg, non-blocking communicators)");
static_assert(NCCL_UNIQUE_ID_BYTES == dtrain::comm::kNcclUniqueIdBytes);

namespace dtrain::comm {
namespace {

const char* BaseName(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

std::string NcclText(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) s += std::string(" (") + last + ")";
  return s;
}

ncclDataType_t NcclType(DType dtype) {
  switch (dtype) {
    case DType::kF32: return ncclFloat32;
    case DType::kF16: return ncclFloat16;
  }
  Fail(ErrorCode::kInvalidArgument, "nccl: unknown dtype");
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;  // pre-multiplies by 1/n for float types
  }
  Fail(ErrorCode::kInvalidArgument, "nccl: unknown reduce op");
}

// Host buffers of the host-pointer collectives are staged in chunks of this
// size, so the pinned and device staging buffers stay bounded.
constexpr size_t kStagingChunkBytes = size_t(32) << 20;
// How long the destructor lets outstanding work and ncclCommFinalize take
// before it aborts the communicator instead.
constexpr double kCloseSeconds = 10.0;
// Peers named in an error message, at most.
constexpr int kMaxPeersNamed = 64;

// Busy-polls first (a small allreduce completes in microseconds), then
// yields, then sleeps, so a long wait does not burn a core.
void Backoff(int spins) {
  if (spins < 200) return;
  if (spins < 2000) {
    std::this_thread::yield();
    return;
  }
  std::this_thread::sleep_for(std::chrono::microseconds(200));
}

class NcclComm final : public NcclCommunicator {
 public:
  NcclComm(int rank, int world, int device, std::vector<PeerInfo> peers)
      : rank_(rank), n_(world), device_(device), peers_(std::move(peers)) {}
  ~NcclComm() override;

  void Init(const std::string& unique_id_bytes, const Deadline& deadline);

  int rank() const override { return rank_; }
  int world_size() const override { return n_; }
  int device() const override { return device_; }
  cudaStream_t stream() const override { return stream_; }
  size_t Pending() const override { return pending_.size(); }

  void AllReduce(void* data, size_t count, DType dtype, ReduceOp op,
                 const Deadline& deadline) override;
  void Broadcast(void* data, size_t bytes, int root, const Deadline& deadline) override;
  void Barrier(const Deadline& deadline) override;

  void AllReduceDevice(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                       cudaStream_t stream, const Deadline& deadline) override;
  void EnqueueAllReduce(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                        cudaStream_t stream, cudaEvent_t ready,
                        const Deadline& deadline) override;
  void Wait(const Deadline& deadline) override;

  void* DeviceAlloc(size_t bytes) override;
  void DeviceFree(void* dev_ptr) noexcept override;
  void CopyToDevice(void* dev_dst, const void* host_src, size_t bytes,
                    const Deadline& deadline) override;
  void CopyToHost(void* host_dst, const void* dev_src, size_t bytes,
                  const Deadline& deadline) override;

 private:
  void Begin(const char* what);  // current device; throws kAborted when broken
  void Settle(const char* what, const Deadline& deadline, Clock::time_point t0);
  void CheckAsync(const char* what);
  void CheckDeadline(const char* what, const Deadline& deadline, Clock::time_point t0);
  void RecordPending(cudaStream_t s);
  void WaitPending(const char* what, const Deadline& deadline);
  void EnqueueAllReduceOn(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                          cudaStream_t s, const Deadline& deadline);
  void EnsureStaging(size_t bytes);
  void Cuda(cudaError_t err, const char* expr, const char* what, int line);
  [[noreturn]] void Break(ErrorCode code, const std::string& message);
  std::string Self() const;
  std::string PeerList() const;

  const int rank_;
  const int n_;
  const int device_;
  const std::vector<PeerInfo> peers_;
  const std::string name_ = "dtrain";
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::deque<cudaEvent_t> pending_;  // recorded after enqueued work, oldest first
  std::vector<cudaEvent_t> free_events_;
  void* dev_staging_ = nullptr;  // device side of the host-pointer collectives
  void* host_staging_ = nullptr;  // pinned
  size_t staging_bytes_ = 0;
  bool broken_ = false;
  std::string broken_reason_;
};

// Checks a CUDA call inside a collective: a failure breaks the communicator.
#define NCCL_COMM_STEP(expr, what) Cuda((expr), #expr, (what), __LINE__)

std::string NcclComm::Self() const {
  return "rank " + std::to_string(rank_) + " (host " + peers_[rank_].host + ", cuda:" +
         std::to_string(device_) + ")";
}

std::string NcclComm::PeerList() const {
  std::string s;
  const int shown = std::min(n_, kMaxPeersNamed);
  for (int i = 0; i < shown; ++i) {
    if (i) s += ", ";
    s += "rank " + std::to_string(i) + " (host " + peers_[i].host;
    if (!peers_[i].worker_id.empty()) s += ", worker " + peers_[i].worker_id;
    s += ")";
  }
  if (shown < n_) s += ", and " + std::to_string(n_ - shown) + " more";
  return s;
}

void NcclComm::Break(ErrorCode code, const std::string& message) {
  if (!broken_) {
    broken_ = true;
    broken_reason_ = message;
    if (comm_) {
      // Stops NCCL's kernels and proxy threads; frees the communicator.
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    for (cudaEvent_t e : pending_) free_events_.push_back(e);
    pending_.clear();
  }
  Fail(code, message);
}

void NcclComm::Cuda(cudaError_t err, const char* expr, const char* what, int line) {
  if (err == cudaSuccess) return;
  Break(ErrorCode::kUnavailable,
        std::string("NCCL ") + what + " on " + Self() + ": CUDA error at " +
            BaseName(__FILE__) + ":" + std::to_string(line) + ": " + expr + ": " +
            cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

void NcclComm::Begin(const char* what) {
  if (broken_) {
    Fail(ErrorCode::kAborted, std::string("nccl ") + what +
                                  ": communicator unusable after an earlier failure: " +
                                  broken_reason_);
  }
  NCCL_COMM_STEP(cudaSetDevice(device_), what);
}

void NcclComm::CheckAsync(const char* what) {
  ncclResult_t state = ncclSuccess;
  const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
  if (r != ncclSuccess) {
    Break(ErrorCode::kUnavailable, std::string("NCCL ") + what + " on " + Self() +
                                       ": ncclCommGetAsyncError failed: " + NcclText(r, comm_));
  }
  if (state != ncclSuccess && state != ncclInProgress) {
    Break(ErrorCode::kUnavailable, std::string("NCCL ") + what + " failed on " + Self() + ": " +
                                       NcclText(state, comm_) + "; peers: " + PeerList());
  }
}

void NcclComm::CheckDeadline(const char* what, const Deadline& deadline, Clock::time_point t0) {
  const bool aborted = deadline.Aborted();
  if (!aborted && !deadline.Expired()) return;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1fs",
                std::chrono::duration<double>(Clock::now() - t0).count());
  if (aborted) {
    Break(ErrorCode::kAborted, std::string("NCCL ") + what + " aborted after " + secs + " on " +
                                   Self() + " (job aborted); peers: " + PeerList());
  }
  // NCCL cannot say which peer is missing: name them all.
  Break(ErrorCode::kDeadlineExceeded, std::string("NCCL ") + what + " did not complete within " +
                                          secs + " on " + Self() + "; peers: " + PeerList());
}

// Waits until NCCL's state for comm_ leaves ncclInProgress (init, or a call
// of a non-blocking communicator that returned ncclInProgress).
void NcclComm::Settle(const char* what, const Deadline& deadline, Clock::time_point t0) {
  for (int spins = 0;; ++spins) {
    ncclResult_t state = ncclInProgress;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess) {
      Break(ErrorCode::kUnavailable, std::string("NCCL ") + what + " on " + Self() +
                                         ": ncclCommGetAsyncError failed: " + NcclText(r, comm_));
    }
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) {
      Break(ErrorCode::kUnavailable, std::string("NCCL ") + what + " failed on " + Self() +
                                         ": " + NcclText(state, comm_) + "; peers: " + PeerList());
    }
    CheckDeadline(what, deadline, t0);
    Backoff(spins);
  }
}

void NcclComm::Init(const std::string& unique_id_bytes, const Deadline& deadline) {
  const auto t0 = Clock::now();
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id_bytes.data(), NCCL_UNIQUE_ID_BYTES);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every call returns at once; we poll under the deadline
  config.commName = name_.c_str();
  const ncclResult_t r = ncclCommInitRankConfig(&comm_, n_, id, rank_, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    Break(ErrorCode::kUnavailable, "NCCL init failed on " + Self() + ": " + NcclText(r, comm_) +
                                       "; peers: " + PeerList());
  }
  if (!comm_) Break(ErrorCode::kInternal, "NCCL init on " + Self() + " returned no communicator");
  Settle("init", deadline, t0);
}

NcclComm::~NcclComm() {
  cudaSetDevice(device_);
  if (comm_ && !broken_) {
    // Graceful: let enqueued work finish, then finalize; abort if either hangs.
    try {
      const Deadline close = Deadline::AfterSeconds(kCloseSeconds);
      WaitPending("close", close);
      ncclResult_t r = ncclCommFinalize(comm_);
      if (r == ncclInProgress) {
        Settle("finalize", close, Clock::now());
        r = ncclSuccess;
      }
      if (r == ncclSuccess) {
        ncclCommDestroy(comm_);
        comm_ = nullptr;
      }
    } catch (const std::exception&) {
      // Break() has aborted the communicator.
    }
  }
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
  for (cudaEvent_t e : pending_) cudaEventDestroy(e);
  for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
  if (dev_staging_) cudaFree(dev_staging_);
  if (host_staging_) cudaFreeHost(host_staging_);
  if (stream_) cudaStreamDestroy(stream_);
}

void NcclComm::RecordPending(cudaStream_t s) {
  cudaEvent_t ev = nullptr;
  if (!free_events_.empty()) {
    ev = free_events_.back();
    free_events_.pop_back();
  } else {
    NCCL_COMM_STEP(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "event");
  }
  const cudaError_t err = cudaEventRecord(ev, s);
  if (err != cudaSuccess) free_events_.push_back(ev);
  NCCL_COMM_STEP(err, "event");
  pending_.push_back(ev);
}

// The watchdog: polls the oldest pending event and NCCL's async error until
// all pending work is done, the deadline passes or the job is aborted.
void NcclComm::WaitPending(const char* what, const Deadline& deadline) {
  const auto t0 = Clock::now();
  int spins = 0;
  while (!pending_.empty()) {
    const cudaError_t q = cudaEventQuery(pending_.front());
    if (q == cudaSuccess) {
      free_events_.push_back(pending_.front());
      pending_.pop_front();
      spins = 0;
      continue;
    }
    if (q != cudaErrorNotReady) NCCL_COMM_STEP(q, what);
    if (spins % 16 == 0) {
      CheckAsync(what);
      CheckDeadline(what, deadline, t0);
    }
    Backoff(spins++);
  }
  if (comm_) CheckAsync(what);
}

void NcclComm::Wait(const Deadline& deadline) {
  Begin("allreduce");
  WaitPending("allreduce", deadline);
}

void NcclComm::EnqueueAllReduceOn(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                                  cudaStream_t s, const Deadline& deadline) {
  const auto t0 = Clock::now();
  const ncclResult_t r =
      ncclAllReduce(dev_ptr, dev_ptr, count, NcclType(dtype), NcclOp(op), comm_, s);
  if (r == ncclInProgress) {
    // Non-blocking: the kernel is launched only once the state settles.
    Settle("allreduce", deadline, t0);
  } else if (r != ncclSuccess) {
    Break(ErrorCode::kUnavailable,
          "NCCL allreduce failed on " + Self() + ": " + NcclText(r, comm_) + "; peers: " + PeerList());
  }
  RecordPending(s);
}

void NcclComm::EnqueueAllReduce(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                                cudaStream_t stream, cudaEvent_t ready,
                                const Deadline& deadline) {
  if (!dev_ptr && count > 0) Fail(ErrorCode::kInvalidArgument, "allreduce: null buffer");
  NcclType(dtype);
  NcclOp(op);
  Begin("allreduce");
  CheckDeadline("allreduce", deadline, Clock::now());
  if (count == 0) return;
  cudaStream_t s = stream ? stream : stream_;
  if (ready) NCCL_COMM_STEP(cudaStreamWaitEvent(s, ready, 0), "allreduce");
  EnqueueAllReduceOn(dev_ptr, count, dtype, op, s, deadline);
}

void NcclComm::AllReduceDevice(void* dev_ptr, size_t count, DType dtype, ReduceOp op,
                               cudaStream_t stream, const Deadline& deadline) {
  EnqueueAllReduce(dev_ptr, count, dtype, op, stream, nullptr, deadline);
  WaitPending("allreduce", deadline);
}

void NcclComm::EnsureStaging(size_t bytes) {
  if (bytes <= staging_bytes_) return;
  if (dev_staging_) cudaFree(dev_staging_);
  if (host_staging_) cudaFreeHost(host_staging_);
  dev_staging_ = host_staging_ = nullptr;
  staging_bytes_ = 0;
  const size_t want = std::max<size_t>(bytes, 4096);
  NCCL_COMM_STEP(cudaMalloc(&dev_staging_, want), "staging");
  NCCL_COMM_STEP(cudaMallocHost(&host_staging_, want), "staging");
  staging_bytes_ = want;
}

void NcclComm::AllReduce(void* data, size_t count, DType dtype, ReduceOp op,
                         const Deadline& deadline) {
  if (!data && count > 0) Fail(ErrorCode::kInvalidArgument, "allreduce: null buffer");
  NcclType(dtype);
  NcclOp(op);
  Begin("allreduce");
  CheckDeadline("allreduce", deadline, Clock::now());
  const size_t es = DTypeSize(dtype);
  const size_t chunk_count = kStagingChunkBytes / es;
  auto* p = static_cast<char*>(data);
  for (size_t done = 0; done < count;) {
    const size_t n = std::min(chunk_count, count - done);
    const size_t bytes = n * es;
    EnsureStaging(bytes);
    std::memcpy(host_staging_, p + done * es, bytes);
    NCCL_COMM_STEP(cudaMemcpyAsync(dev_staging_, host_staging_, bytes, cudaMemcpyHostToDevice, stream_),
                   "allreduce");
    EnqueueAllReduceOn(dev_staging_, n, dtype, op, stream_, deadline);
    NCCL_COMM_STEP(cudaMemcpyAsync(host_staging_, dev_staging_, bytes, cudaMemcpyDeviceToHost, stream_),
                   "allreduce");
    RecordPending(stream_);
    WaitPending("allreduce", deadline);
    std::memcpy(p + done * es, host_staging_, bytes);
    done += n;
  }
}

void NcclComm::Broadcast(void* data, size_t bytes, int root, const Deadline& deadline) {
  if (root < 0 || root >= n_) {
    Fail(ErrorCode::kInvalidArgument, "broadcast: root " + std::to_string(root) +
                                          " out of range [0, " + std::to_string(n_) + ")");
  }
  if (!data && bytes > 0) Fail(ErrorCode::kInvalidArgument, "broadcast: null buffer");
  Begin("broadcast");
  CheckDeadline("broadcast", deadline, Clock::now());
  auto* p = static_cast<char*>(data);
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(kStagingChunkBytes, bytes - done);
    EnsureStaging(n);
    if (rank_ == root) {
      std::memcpy(host_staging_, p + done, n);
      NCCL_COMM_STEP(cudaMemcpyAsync(dev_staging_, host_staging_, n, cudaMemcpyHostToDevice, stream_),
                     "broadcast");
    }
    const auto t0 = Clock::now();
    const ncclResult_t r = ncclBroadcast(dev_staging_, dev_staging_, n, ncclUint8, root, comm_, stream_);
    if (r == ncclInProgress) {
      Settle("broadcast", deadline, t0);
    } else if (r != ncclSuccess) {
      Break(ErrorCode::kUnavailable, "NCCL broadcast failed on " + Self() + ": " +
                                         NcclText(r, comm_) + "; peers: " + PeerList());
    }
    NCCL_COMM_STEP(cudaMemcpyAsync(host_staging_, dev_staging_, n, cudaMemcpyDeviceToHost, stream_),
                   "broadcast");
    RecordPending(stream_);
    WaitPending("broadcast", deadline);
    std::memcpy(p + done, host_staging_, n);
    done += n;
  }
}

// NCCL has no barrier: a one-element allreduce on the device completes on a
// rank only once every rank has entered it.
void NcclComm::Barrier(const Deadline& deadline) {
  Begin("barrier");
  CheckDeadline("barrier", deadline, Clock::now());
  EnsureStaging(sizeof(float));
  const auto t0 = Clock::now();
  const ncclResult_t r = ncclAllReduce(dev_staging_, dev_staging_, 1, ncclFloat32, ncclSum, comm_, stream_);
  if (r == ncclInProgress) {
    Settle("barrier", deadline, t0);
  } else if (r != ncclSuccess) {
    Break(ErrorCode::kUnavailable,
          "NCCL barrier failed on " + Self() + ": " + NcclText(r, comm_) + "; peers: " + PeerList());
  }
  RecordPending(stream_);
  WaitPending("barrier", deadline);
}

void* NcclComm::DeviceAlloc(size_t bytes) {
  Begin("alloc");
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (err != cudaSuccess) {
    cudaGetLastError();  // reset the last-error state so later checks don't see it
    Fail(ErrorCode::kUnavailable, "cudaMalloc of " + std::to_string(bytes) + " bytes on cuda:" +
                                      std::to_string(device_) + ": " + cudaGetErrorString(err));
  }
  return p;
}

void NcclComm::DeviceFree(void* dev_ptr) noexcept {
  if (!dev_ptr) return;
  cudaSetDevice(device_);
  cudaFree(dev_ptr);
}

void NcclComm::CopyToDevice(void* dev_dst, const void* host_src, size_t bytes,
                            const Deadline& deadline) {
  Begin("copy");
  if (bytes == 0) return;
  NCCL_COMM_STEP(cudaMemcpyAsync(dev_dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "copy");
  RecordPending(stream_);
  WaitPending("copy", deadline);
}

void NcclComm::CopyToHost(void* host_dst, const void* dev_src, size_t bytes,
                          const Deadline& deadline) {
  Begin("copy");
  if (bytes == 0) return;
  NCCL_COMM_STEP(cudaMemcpyAsync(host_dst, dev_src, bytes, cudaMemcpyDeviceToHost, stream_), "copy");
  RecordPending(stream_);
  WaitPending("copy", deadline);
}

}  // namespace

NcclCommunicator::~NcclCommunicator() = default;

std::string NewNcclUniqueId() {
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) {
    Fail(ErrorCode::kUnavailable, "ncclGetUniqueId failed: " + NcclText(r, nullptr));
  }
  return std::string(id.internal, NCCL_UNIQUE_ID_BYTES);
}

std::unique_ptr<NcclCommunicator> MakeNcclCommunicator(int rank, int world,
                                                       const std::string& unique_id_bytes,
                                                       int device,
                                                       const std::vector<PeerInfo>& peers,
                                                       const Deadline& deadline) {
  if (world < 1 || rank < 0 || rank >= world) {
    Fail(ErrorCode::kInvalidArgument, "nccl: rank " + std::to_string(rank) +
                                          " out of range for world size " + std::to_string(world));
  }
  if (unique_id_bytes.size() != NCCL_UNIQUE_ID_BYTES) {
    Fail(ErrorCode::kInvalidArgument,
         "nccl: unique id has " + std::to_string(unique_id_bytes.size()) + " bytes, expected " +
             std::to_string(NCCL_UNIQUE_ID_BYTES) + " (rank 0 publishes it under rendezvous key nccl-id)");
  }
  if (int(peers.size()) != world) {
    Fail(ErrorCode::kInvalidArgument, "nccl: " + std::to_string(peers.size()) +
                                          " peers listed for world size " + std::to_string(world));
  }
  for (int i = 0; i < world; ++i) {
    if (peers[i].rank != i) {
      Fail(ErrorCode::kInvalidArgument, "nccl: peers[" + std::to_string(i) + "] has rank " +
                                            std::to_string(peers[i].rank) + " (need rank order)");
    }
  }
  if (device < 0) Fail(ErrorCode::kInvalidArgument, "nccl: bad CUDA device " + std::to_string(device));
  auto comm = std::make_unique<NcclComm>(rank, world, device, peers);
  comm->Init(unique_id_bytes, deadline);
  return comm;
}

}  // namespace dtrain::comm
