// UcxWorker: the worker daemon's one UCP context + worker, created at start and
// kept for the daemon's life; its address is published to the coordinator at
// registration. Jobs run one after another over it: each job's messages carry
// its job_seq in the tag (UcxTag), so jobs never match each other's messages.
// Thread mode SERIALIZED: one thread at a time uses it (any thread), and only
// one job's communicator is active at a time.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/deadline.h"

namespace dtrain::comm {

// 64-bit tag = job_seq (24 bits) | source rank (16 bits) | call sequence (24 bits).
// Receives match on the whole tag; within one tag, UCX keeps send order.
constexpr int kMaxUcxRanks = 1 << 16;
constexpr ucp_tag_t kUcxFullTagMask = ~ucp_tag_t{0};
inline ucp_tag_t UcxTag(uint32_t job_seq, int src_rank, uint32_t call_seq) {
  return (ucp_tag_t(job_seq & 0xffffff) << 40) | (ucp_tag_t(uint32_t(src_rank) & 0xffff) << 24) |
         ucp_tag_t(call_seq & 0xffffff);
}

// Error handling mode of an endpoint.
// kPeer: UCP_ERR_HANDLING_MODE_PEER, so a dead peer fails the wait at once
// ("connection to rank 2 (host h2) failed"). UCX 1.13 has no shared-memory or
// CMA transport that supports it (UCX_MM_ERROR_HANDLING is off by default):
// ranks on one host then talk over TCP loopback (measured: allreduce busbw
// ~0.4 of the same host's shm/CMA p2p bandwidth).
// kNone: UCP_ERR_HANDLING_MODE_NONE allows shared memory (sysv) for eager
// messages and CMA for rendezvous. A dead peer is then never reported by UCX:
// the wait ends at the deadline (kDeadlineExceeded naming the silent rank) or,
// in the service, within milliseconds through the abort flag that the
// coordinator's ABORT sets (kAborted). Neither hangs nor crashes a survivor
// (tests/unit/comm_dead_peer_test.cc kills a rank in a 64 MiB allreduce).
//
// Endpoints to peers on OTHER hosts always use kPeer. Endpoints to peers on
// the SAME host (PeerInfo.host equal to this rank's) use the worker's
// same-host mode: by default the environment variable
//   DTRAIN_UCX_SAME_HOST_ERROR_MODE=none|peer   (unset: none)
// read when the UcxWorker is created. Every daemon of a cluster must agree on
// it (both ends of a connection must pick the same mode). UCX 1.13 keys its
// endpoint configuration (lanes, transports) by error mode, so endpoints of
// both modes coexist on one worker.
enum class UcxErrorMode { kPeer, kNone };

const char* UcxErrorModeName(UcxErrorMode mode);  // "peer" | "none"
// DTRAIN_UCX_SAME_HOST_ERROR_MODE, kNone when unset or empty; throws
// Error(kInvalidArgument) on any other value than "peer" or "none".
UcxErrorMode SameHostErrorModeFromEnv();

class UcxWorker {
 public:
  // Throws Error(kUnavailable) when UCX cannot start, Error(kInvalidArgument)
  // on a bad DTRAIN_UCX_SAME_HOST_ERROR_MODE.
  UcxWorker() : UcxWorker(SameHostErrorModeFromEnv()) {}
  explicit UcxWorker(UcxErrorMode same_host_mode);
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  const std::string& Address() const { return address_; }  // raw bytes
  ucp_worker_h worker() const { return worker_; }
  unsigned Progress() { return ucp_worker_progress(worker_); }

  UcxErrorMode same_host_mode() const { return same_host_mode_; }
  UcxErrorMode ModeFor(bool same_host) const {
    return same_host ? same_host_mode_ : UcxErrorMode::kPeer;
  }

  // Endpoint to a peer's worker address, in ModeFor(same_host). In kPeer mode
  // a dead peer makes `on_error(arg, ep, status)` fire from Progress() instead
  // of a hang; in kNone mode it never fires.
  ucp_ep_h Connect(const std::string& address, bool same_host, ucp_err_handler_cb_t on_error,
                   void* arg);
  // Closes endpoints (null entries skipped) all at once: flush (graceful)
  // unless `force`; stops waiting at the deadline and leaves what is left to
  // UCX. Never throws.
  void Close(const std::vector<ucp_ep_h>& eps, bool force, const Deadline& deadline);

  // "tag(sysv/memory cma/memory)": the transports UCX chose for `ep`.
  static std::string Transports(ucp_ep_h ep);

 private:
  UcxErrorMode same_host_mode_;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::string address_;
};

// Tests and benches on one machine: UCX_NET_DEVICES=lo unless already set.
void DefaultUcxToLoopback();

}  // namespace dtrain::comm
