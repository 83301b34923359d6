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

// kPeer: endpoints use UCP_ERR_HANDLING_MODE_PEER, so a dead peer fails the
// wait at once ("connection to rank 2 (host h2) failed"). UCX 1.13 has no
// shared-memory or CMA transport that supports it: ranks on one host then talk
// over TCP loopback (~2.5x slower allreduce there). kNone allows shared memory
// and CMA; a dead peer is then caught by the deadline (or the abort flag).
enum class UcxErrorMode { kPeer, kNone };

class UcxWorker {
 public:
  // Throws Error(kUnavailable) when UCX cannot start.
  explicit UcxWorker(UcxErrorMode mode = UcxErrorMode::kPeer);
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  const std::string& Address() const { return address_; }  // raw bytes
  ucp_worker_h worker() const { return worker_; }
  unsigned Progress() { return ucp_worker_progress(worker_); }

  // Endpoint to a peer's worker address. In kPeer mode a dead peer makes
  // `on_error(arg, ep, status)` fire from Progress() instead of a hang.
  ucp_ep_h Connect(const std::string& address, ucp_err_handler_cb_t on_error, void* arg);
  // Closes endpoints (null entries skipped) all at once: flush (graceful)
  // unless `force`; stops waiting at the deadline and leaves what is left to
  // UCX. Never throws.
  void Close(const std::vector<ucp_ep_h>& eps, bool force, const Deadline& deadline);

 private:
  UcxErrorMode mode_;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::string address_;
};

// Tests and benches on one machine: UCX_NET_DEVICES=lo unless already set.
void DefaultUcxToLoopback();

}  // namespace dtrain::comm
