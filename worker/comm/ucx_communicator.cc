#include "worker/comm/ucx_communicator.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <span>
#include <string>
#include <utility>

#include "common/error.h"
#include "worker/comm/failure_notice.h"
#include "worker/comm/host_layout.h"
#include "worker/comm/reduce.h"

namespace dtrain::comm {
namespace {

// Segment size and receive window (UcxCommOptions): each ring step moves its
// chunk in segments of seg_bytes_, with up to window_ receives in flight;
// received segments land in a scratch ring and are reduced while the next
// ones arrive.
constexpr int kPollsPerCheck = 64;   // clock/abort/peer checks every N polls
constexpr int kIdlePollsToYield = 32;  // idle polls before yielding the core

struct PeerLink {
  ucp_ep_h ep = nullptr;
  ucs_status_t error = UCS_OK;  // set by UCX's error callback during Progress()
  bool peer_mode = true;        // UCP_ERR_HANDLING_MODE_PEER (else NONE: same host)
};

void OnPeerError(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* link = static_cast<PeerLink*>(arg);
  if (link->error == UCS_OK) link->error = status;
}

struct Pending {
  void* req;
  int peer;
  size_t bytes;
};

// Where in a collective a wait happens, for error messages.
struct Where {
  const char* phase;  // "reduce-scatter", "all-gather", "chain", "round"
  int step;           // 0-based
  int steps;
  const char* level = "";  // hierarchical allreduce: "intra-host " | "inter-host "
};

// One ring over `group` (ranks in ring order, this rank among them) on the
// chunks [bounds[c], bounds[c+1]) of a buffer: steps [t_begin, t_end) of the
// 2(g-1)-step schedule (reduce-scatter steps 0..g-2, then all-gather). The
// last reduce-scatter step scales the sum by last_scale.
struct RingPlan {
  const char* level;
  std::span<const int> group;
  std::vector<size_t> bounds;
  int t_begin;
  int t_end;
  float last_scale;
};

class UcxCommunicator final : public Communicator {
 public:
  UcxCommunicator(UcxWorker& worker, uint32_t job_seq, int rank, std::vector<PeerInfo> peers,
                  const UcxCommOptions& options)
      : w_(worker), job_seq_(job_seq), rank_(rank), n_(int(peers.size())),
        seg_bytes_(options.segment_bytes), window_(options.window),
        algorithm_(options.algorithm), peers_(std::move(peers)), links_(peers_.size()),
        layout_(HostLayout::FromPeers(peers_)), all_ranks_(n_) {
    for (int r = 0; r < n_; ++r) all_ranks_[r] = r;
    // The cross-host rings this rank is in: one per shard it owns.
    const int h = layout_.host_of[rank_];
    for (int s = 0; s < layout_.max_local; ++s) {
      if (layout_.Owner(h, s) != rank_) continue;
      std::vector<int> owners(layout_.num_hosts());
      for (int g = 0; g < layout_.num_hosts(); ++g) owners[g] = layout_.Owner(g, s);
      shard_rings_.emplace_back(s, std::move(owners));
    }
  }

  ~UcxCommunicator() override {
    DrainFailureNotices(w_, job_seq_);
    std::vector<ucp_ep_h> eps;
    for (auto& l : links_) eps.push_back(l.ep);
    w_.Close(eps, /*force=*/broken_, Deadline::After(std::chrono::seconds(2)));
    std::free(scratch_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return n_; }
  const char* backend() const override { return "ucx"; }
  const char* algorithm() const override { return AllreduceAlgorithmName(algorithm_); }

  void AllReduce(void* data, size_t count, DType dtype, ReduceOp op,
                 const Deadline& deadline) override;
  void Broadcast(void* data, size_t bytes, int root, const Deadline& deadline) override;
  void Barrier(const Deadline& deadline) override;

 private:
  void Ring(const RingPlan& plan, char* base, DType dtype);
  void Hierarchical(char* base, size_t count, DType dtype, float scale);
  void Begin(const char* name, const Deadline& deadline);
  ucp_ep_h Ep(int peer);
  void PostSend(int peer, const void* buf, size_t bytes, const Where& where);
  void PostRecv(int src, void* buf, size_t bytes, const Where& where);
  void WaitFrontRecv(const Where& where);
  void ReapSends(const Where& where);
  void WaitAllSends(const Where& where);
  void Poll();
  void Check(const Where& where, int waiting_on);
  [[noreturn]] void FailCall(ErrorCode code, const Where& where, const std::string& what);
  void Abandon();
  std::string Who(int peer) const;
  char* Scratch(size_t bytes);

  UcxWorker& w_;
  const uint32_t job_seq_;
  const int rank_;
  const int n_;
  const size_t seg_bytes_;
  const int window_;
  const AllreduceAlgorithm algorithm_;
  const std::vector<PeerInfo> peers_;
  std::vector<PeerLink> links_;  // sized once: error callbacks hold pointers
  const HostLayout layout_;
  std::vector<int> all_ranks_;                              // the flat ring: 0 .. n-1
  std::vector<std::pair<int, std::vector<int>>> shard_rings_;  // (shard, its owners by host)

  // The current call.
  const char* call_name_ = "";
  uint32_t call_seq_ = 0;
  Clock::time_point call_start_;
  const Deadline* deadline_ = nullptr;
  int polls_ = 0;
  int idle_ = 0;
  std::deque<Pending> recvs_;  // posted, completed in order
  std::deque<Pending> sends_;

  bool broken_ = false;
  std::string broken_reason_;
  std::string told_;  // the first failure, when a peer's notice reported it
  char* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  char token_ = 1;
  char sink_ = 0;
};

std::string UcxCommunicator::Who(int peer) const {
  return "rank " + std::to_string(peer) + " (host " + peers_[peer].host + ")";
}

char* UcxCommunicator::Scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    std::free(scratch_);
    scratch_bytes_ = (bytes + 4095) / 4096 * 4096;
    scratch_ = static_cast<char*>(std::aligned_alloc(4096, scratch_bytes_));
    if (!scratch_) Fail(ErrorCode::kInternal, "ucx communicator: out of memory for scratch");
  }
  return scratch_;
}

void UcxCommunicator::Begin(const char* name, const Deadline& deadline) {
  if (broken_) {
    Fail(ErrorCode::kAborted, std::string(name) + ": communicator unusable after an earlier failure: " +
                                  broken_reason_);
  }
  call_name_ = name;
  if ((++call_seq_ & 0xffffff) == kNoticeCallSeq) ++call_seq_;  // that one is for notices
  call_start_ = Clock::now();
  deadline_ = &deadline;
  polls_ = 0;
}

ucp_ep_h UcxCommunicator::Ep(int peer) {
  PeerLink& l = links_[peer];
  if (!l.ep) {
    const bool same_host = peers_[peer].host == peers_[rank_].host;
    l.peer_mode = w_.ModeFor(same_host) == UcxErrorMode::kPeer;
    l.ep = w_.Connect(peers_[peer].ucx_address, same_host, &OnPeerError, &l);
  }
  return l.ep;
}

void UcxCommunicator::PostSend(int peer, const void* buf, size_t bytes, const Where& where) {
  ucp_request_param_t p{};
  void* req = ucp_tag_send_nbx(Ep(peer), buf, bytes, UcxTag(job_seq_, rank_, call_seq_), &p);
  if (UCS_PTR_IS_ERR(req)) {
    FailCall(ErrorCode::kUnavailable, where,
             "cannot send to " + Who(peer) + ": " + ucs_status_string(UCS_PTR_STATUS(req)));
  }
  if (req) sends_.push_back({req, peer, bytes});
}

void UcxCommunicator::PostRecv(int src, void* buf, size_t bytes, const Where& where) {
  ucp_request_param_t p{};
  void* req = ucp_tag_recv_nbx(w_.worker(), buf, bytes, UcxTag(job_seq_, src, call_seq_),
                               kUcxFullTagMask, &p);
  if (UCS_PTR_IS_ERR(req)) {
    FailCall(ErrorCode::kInternal, where,
             "cannot post receive from " + Who(src) + ": " + ucs_status_string(UCS_PTR_STATUS(req)));
  }
  recvs_.push_back({req, src, bytes});
}

void UcxCommunicator::Poll() {
  if (w_.Progress() == 0) {
    if (++idle_ >= kIdlePollsToYield) {
      idle_ = 0;
      sched_yield();  // oversubscribed cores: let the peer run
    }
  } else {
    idle_ = 0;
  }
}

void UcxCommunicator::WaitFrontRecv(const Where& where) {
  Pending& r = recvs_.front();
  ucp_tag_recv_info_t info{};
  ucs_status_t st = UCS_OK;
  if (r.req) {
    while ((st = ucp_tag_recv_request_test(r.req, &info)) == UCS_INPROGRESS) {
      Poll();
      if (++polls_ >= kPollsPerCheck) {
        polls_ = 0;
        Check(where, r.peer);
      }
    }
  } else {
    info.length = r.bytes;
  }
  if (st != UCS_OK) {
    FailCall(ErrorCode::kUnavailable, where,
             "receive from " + Who(r.peer) + " failed: " + ucs_status_string(st) +
                 (st == UCS_ERR_MESSAGE_TRUNCATED ? " (ranks disagree on count, dtype or root)"
                  : st == UCS_ERR_CANCELED        ? ""
                                                  : " (that process probably died)"));
  }
  if (info.length != r.bytes) {
    FailCall(ErrorCode::kInternal, where,
             Who(r.peer) + " sent " + std::to_string(info.length) + " bytes, expected " +
                 std::to_string(r.bytes) + " (ranks disagree on count, dtype or root)");
  }
  if (r.req) ucp_request_free(r.req);
  recvs_.pop_front();
}

void UcxCommunicator::ReapSends(const Where& where) {
  while (!sends_.empty()) {
    ucs_status_t st = ucp_request_check_status(sends_.front().req);
    if (st == UCS_INPROGRESS) return;
    if (st != UCS_OK) {
      FailCall(ErrorCode::kUnavailable, where,
               "send to " + Who(sends_.front().peer) + " failed: " + ucs_status_string(st));
    }
    ucp_request_free(sends_.front().req);
    sends_.pop_front();
  }
}

void UcxCommunicator::WaitAllSends(const Where& where) {
  for (;;) {
    ReapSends(where);
    if (sends_.empty()) return;
    Poll();
    if (++polls_ >= kPollsPerCheck) {
      polls_ = 0;
      Check(where, -1);
    }
  }
}

void UcxCommunicator::Check(const Where& where, int waiting_on) {
  int sender = -1;
  std::string why;
  if (TakeFailureNotice(w_, job_seq_, &sender, &why)) {
    told_ = why;
    FailCall(ErrorCode::kUnavailable, where,
             (sender >= 0 && sender < n_ ? Who(sender) : "rank " + std::to_string(sender)) +
                 " stopped after a failure: " + why);
  }
  if (deadline_->Aborted()) {
    FailCall(ErrorCode::kAborted, where,
             "aborted (job cancelled or a peer failed)" +
                 (waiting_on >= 0 ? " while waiting for data from " + Who(waiting_on) : std::string()));
  }
  auto failed = [&](int peer) {
    FailCall(ErrorCode::kUnavailable, where,
             "connection to " + Who(peer) + " failed (" + ucs_status_string(links_[peer].error) +
                 "): that process probably died or its host is unreachable");
  };
  if (waiting_on >= 0 && links_[waiting_on].error != UCS_OK) failed(waiting_on);
  for (const Pending& s : sends_) {
    if (links_[s.peer].error != UCS_OK) failed(s.peer);
  }
  if (!deadline_->Expired()) return;

  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f s",
                std::chrono::duration<double>(Clock::now() - call_start_).count());
  std::string what;
  if (waiting_on >= 0) what = "no data from " + Who(waiting_on);
  std::vector<int> slow;
  for (const Pending& s : sends_) {
    if (std::find(slow.begin(), slow.end(), s.peer) == slow.end()) slow.push_back(s.peer);
  }
  for (int peer : slow) {
    if (!what.empty()) what += "; ";
    what += Who(peer) + " has not taken the data sent to it";
  }
  FailCall(ErrorCode::kDeadlineExceeded, where, what + " within " + secs);
}

void UcxCommunicator::FailCall(ErrorCode code, const Where& where, const std::string& what) {
  std::string msg = std::string(call_name_) + " " + where.level + where.phase + " step " +
                    std::to_string(where.step + 1) + "/" + std::to_string(where.steps) +
                    " [job " + std::to_string(job_seq_) + ", rank " + std::to_string(rank_) +
                    " of " + std::to_string(n_) + "]: " + what;
  // Tell the live peers, so ranks waiting on them do not wait for their
  // deadline and name the first failure, not their partner.
  std::vector<ucp_ep_h> live;
  for (const PeerLink& l : links_)
    if (l.ep && l.error == UCS_OK) live.push_back(l.ep);
  SendFailureNotices(w_, live, job_seq_, rank_, told_.empty() ? msg : told_,
                     std::chrono::milliseconds(100));
  Abandon();
  broken_ = true;
  broken_reason_ = msg;
  Fail(code, msg);
}

// Gives up on everything in flight: the user's buffer must not be written by
// UCX after the failing call returns, so receives are cancelled and waited for
// (a rendezvous receive already under way finishes, or fails at once when its
// sender died). PEER-mode endpoints are force-closed, which completes their
// sends with an error. NONE-mode (same-host) endpoints must not be: ucp.h
// requires PEER mode on both sides for UCP_EP_CLOSE_FLAG_FORCE, and with NONE
// it leaves the live peer's endpoint broken (seen: its next ucp_ep_create to
// this worker failed with "Endpoint timeout"). They are closed gracefully
// without waiting, and their sends released unwaited: a flush or send to a
// dead peer never completes (UCX then keeps those few objects), and no
// transport writes to a send buffer.
void UcxCommunicator::Abandon() {
  for (const Pending& r : recvs_) {
    if (r.req) ucp_request_cancel(w_.worker(), r.req);
  }
  std::vector<ucp_ep_h> forced, graceful;
  for (auto& l : links_) {
    (l.peer_mode ? forced : graceful).push_back(l.ep);
    l.ep = nullptr;
  }
  const Deadline grace = Deadline::After(std::chrono::seconds(1));
  w_.Close(graceful, /*force=*/false, Deadline::After(std::chrono::seconds(0)));
  w_.Close(forced, /*force=*/true, grace);
  for (const Pending& r : recvs_) {
    if (!r.req) continue;
    while (ucp_request_check_status(r.req) == UCS_INPROGRESS && !grace.Expired()) w_.Progress();
    ucp_request_free(r.req);
  }
  recvs_.clear();
  for (const Pending& s : sends_) {
    if (!s.req) continue;
    if (links_[s.peer].peer_mode) {
      while (ucp_request_check_status(s.req) == UCS_INPROGRESS && !grace.Expired()) w_.Progress();
    }
    ucp_request_free(s.req);
  }
  sends_.clear();
}

void UcxCommunicator::AllReduce(void* data, size_t count, DType dtype, ReduceOp op,
                                const Deadline& deadline) {
  if (!data && count > 0) Fail(ErrorCode::kInvalidArgument, "allreduce: null buffer");
  Begin("allreduce", deadline);
  if (count == 0 || n_ == 1) return;

  char* base = static_cast<char*>(data);
  const float scale = op == ReduceOp::kAvg ? 1.0f / float(n_) : 1.0f;
  AllreduceAlgorithm algo = algorithm_;
  if (algo == AllreduceAlgorithm::kAuto) {
    algo = ChooseAllreduceAlgorithm(count * DTypeSize(dtype), layout_.num_hosts(), n_,
                                    layout_.max_local);
  }
  if (algo == AllreduceAlgorithm::kHierarchical && layout_.num_hosts() > 1 && layout_.max_local > 1) {
    Hierarchical(base, count, dtype, scale);
    return;
  }
  Ring({"", all_ranks_, HostLayout::Split(count, n_), 0, 2 * (n_ - 1), scale}, base, dtype);
}

// Reduce-scatter inside each host, one ring per shard across hosts among the
// shard's owners (HostLayout), all-gather inside each host. Every rank walks
// its shards in increasing order, so the cross-host rings cannot wait on each
// other in a cycle.
void UcxCommunicator::Hierarchical(char* base, size_t count, DType dtype, float scale) {
  const HostLayout& l = layout_;
  const int h = l.host_of[rank_], lh = int(l.hosts[h].size()), nh = l.num_hosts();
  const std::vector<size_t> shards = HostLayout::Split(count, l.max_local);
  const std::vector<size_t> intra = l.IntraChunks(h, shards);
  Ring({"intra-host ", l.hosts[h], intra, 0, lh - 1, 1.0f}, base, dtype);
  for (const auto& [s, owners] : shard_rings_) {  // in increasing shard order
    std::vector<size_t> bounds = HostLayout::Split(shards[s + 1] - shards[s], nh);
    for (size_t& b : bounds) b += shards[s];
    Ring({"inter-host ", owners, std::move(bounds), 0, 2 * (nh - 1), scale}, base, dtype);
  }
  Ring({"intra-host ", l.hosts[h], intra, lh - 1, 2 * (lh - 1), 1.0f}, base, dtype);
}

void UcxCommunicator::Ring(const RingPlan& rp, char* base, DType dtype) {
  const int g = int(rp.group.size());
  if (g <= 1 || rp.t_begin >= rp.t_end) return;
  const int p = int(std::find(rp.group.begin(), rp.group.end(), rank_) - rp.group.begin());
  const size_t es = DTypeSize(dtype);
  auto len = [&](int c) { return rp.bounds[c + 1] - rp.bounds[c]; };
  const size_t seg = std::max<size_t>(1, seg_bytes_ / es);  // elements per segment
  auto nseg = [&](int c) { return (len(c) + seg - 1) / seg; };
  auto seg_ptr = [&](int c, size_t k) { return base + (rp.bounds[c] + k * seg) * es; };
  auto seg_bytes = [&](int c, size_t k) { return std::min(seg, len(c) - k * seg) * es; };

  const int right = rp.group[(p + 1) % g], left = rp.group[(p + g - 1) % g];
  const int steps = 2 * (g - 1), end = rp.t_end;  // g-1 reduce-scatter steps, then g-1 all-gather
  auto send_chunk = [&](int t) { return ((p - t) % g + g) % g; };
  auto recv_chunk = [&](int t) { return ((p - t - 1) % g + g) % g; };
  auto where = [&](int t) {
    return Where{t < g - 1 ? "reduce-scatter" : "all-gather", t, steps, rp.level};
  };
  // Receive cursor over (step, segment), skipping empty chunks.
  auto skip = [&](int& t, size_t& k) {
    while (t < end && k >= nseg(recv_chunk(t))) { ++t; k = 0; }
  };
  char* scratch = Scratch(size_t(window_) * seg * es);
  Ep(left);
  Ep(right);

  // The first step's sends come straight from the buffer; every later send is
  // posted as soon as the segment it forwards has been received and reduced.
  for (size_t k = 0, c = send_chunk(rp.t_begin); k < nseg(c); ++k)
    PostSend(right, seg_ptr(c, k), seg_bytes(c, k), where(rp.t_begin));

  int pt = rp.t_begin, dt = rp.t_begin;  // next (step, segment) to post / to complete
  size_t pk = 0, dk = 0;
  uint64_t posted = 0, done = 0;
  skip(pt, pk);
  skip(dt, dk);
  while (dt < end) {
    while (pt < end && posted - done < uint64_t(window_)) {
      const int c = recv_chunk(pt);
      char* dst = pt < g - 1 ? scratch + (posted % window_) * seg * es : seg_ptr(c, pk);
      PostRecv(left, dst, seg_bytes(c, pk), where(pt));
      ++posted;
      ++pk;
      skip(pt, pk);
    }
    WaitFrontRecv(where(dt));
    const int c = recv_chunk(dt);
    if (dt < g - 1) {
      ReduceInto(seg_ptr(c, dk), scratch + (done % window_) * seg * es, seg_bytes(c, dk) / es,
                 dtype, dt == g - 2 ? rp.last_scale : 1.0f);
    }
    ++done;
    if (dt + 1 < end) PostSend(right, seg_ptr(c, dk), seg_bytes(c, dk), where(dt + 1));
    ReapSends(where(dt));
    ++dk;
    skip(dt, dk);
  }
  WaitAllSends(where(end - 1));
}

void UcxCommunicator::Broadcast(void* data, size_t bytes, int root, const Deadline& deadline) {
  if (root < 0 || root >= n_) {
    Fail(ErrorCode::kInvalidArgument, "broadcast: root " + std::to_string(root) +
                                          " out of range [0, " + std::to_string(n_) + ")");
  }
  if (!data && bytes > 0) Fail(ErrorCode::kInvalidArgument, "broadcast: null buffer");
  Begin("broadcast", deadline);
  if (bytes == 0 || n_ == 1) return;

  // Pipelined chain root -> root+1 -> ... ; each segment is forwarded on arrival.
  char* base = static_cast<char*>(data);
  const int pos = (rank_ - root + n_) % n_;
  const int next = (rank_ + 1) % n_, prev = (rank_ + n_ - 1) % n_;
  const bool forward = pos < n_ - 1;
  const size_t nseg = (bytes + seg_bytes_ - 1) / seg_bytes_;
  auto len = [&](size_t k) { return std::min(seg_bytes_, bytes - k * seg_bytes_); };
  const Where where{"chain", pos, n_};
  if (forward) Ep(next);
  if (pos == 0) {
    for (size_t k = 0; k < nseg; ++k) PostSend(next, base + k * seg_bytes_, len(k), where);
  } else {
    Ep(prev);
    size_t posted = 0;
    for (size_t k = 0; k < nseg; ++k) {
      while (posted < nseg && posted - k < size_t(window_)) {
        PostRecv(prev, base + posted * seg_bytes_, len(posted), where);
        ++posted;
      }
      WaitFrontRecv(where);
      if (forward) PostSend(next, base + k * seg_bytes_, len(k), where);
      ReapSends(where);
    }
  }
  WaitAllSends(where);
}

void UcxCommunicator::Barrier(const Deadline& deadline) {
  Begin("barrier", deadline);
  if (n_ == 1) return;
  // Dissemination: in round i, signal rank+2^i and hear from rank-2^i.
  int rounds = 0;
  for (int d = 1; d < n_; d <<= 1) ++rounds;
  int round = 0;
  for (int d = 1; d < n_; d <<= 1, ++round) {
    const Where where{"round", round, rounds};
    const int to = (rank_ + d) % n_, from = (rank_ - d + n_) % n_;
    Ep(from);
    PostRecv(from, &sink_, 1, where);
    PostSend(to, &token_, 1, where);
    WaitFrontRecv(where);
  }
  WaitAllSends(Where{"round", rounds - 1, rounds});
}

}  // namespace

std::unique_ptr<Communicator> MakeUcxCommunicator(UcxWorker& worker, uint32_t job_seq, int rank,
                                                  std::vector<PeerInfo> peers,
                                                  UcxCommOptions options) {
  const int n = int(peers.size());
  if (options.algorithm != AllreduceAlgorithm::kRing &&
      options.algorithm != AllreduceAlgorithm::kHierarchical &&
      options.algorithm != AllreduceAlgorithm::kAuto) {
    Fail(ErrorCode::kInvalidArgument, "ucx communicator: unknown allreduce algorithm");
  }
  if (options.segment_bytes < 4096 || options.window < 1) {
    Fail(ErrorCode::kInvalidArgument, "ucx communicator: segment_bytes " +
                                          std::to_string(options.segment_bytes) + " < 4096 or window " +
                                          std::to_string(options.window) + " < 1");
  }
  if (n < 1 || n > kMaxUcxRanks) {
    Fail(ErrorCode::kInvalidArgument, "ucx communicator: world size " + std::to_string(n) +
                                          " out of range [1, " + std::to_string(kMaxUcxRanks) + "]");
  }
  if (rank < 0 || rank >= n) {
    Fail(ErrorCode::kInvalidArgument, "ucx communicator: rank " + std::to_string(rank) +
                                          " out of range [0, " + std::to_string(n) + ")");
  }
  for (int i = 0; i < n; ++i) {
    if (peers[i].rank != i) {
      Fail(ErrorCode::kInvalidArgument, "ucx communicator: peers must be in rank order; entry " +
                                            std::to_string(i) + " has rank " +
                                            std::to_string(peers[i].rank));
    }
    if (i != rank && peers[i].ucx_address.empty()) {
      Fail(ErrorCode::kInvalidArgument, "ucx communicator: rank " + std::to_string(i) + " (host " +
                                            peers[i].host + ") has no UCX address");
    }
  }
  return std::make_unique<UcxCommunicator>(worker, job_seq, rank, std::move(peers), options);
}

}  // namespace dtrain::comm
