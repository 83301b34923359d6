// ucx_p2p_vs_allreduce: 2 processes on this machine. For sizes 1 KiB .. 256 MiB
// it measures (a) plain UCX point-to-point one-way bandwidth of one message of
// that size (ping of S bytes, 1-byte ack: the transport's limit), (b) and (c)
// allreduce bus bandwidth of the UCX communicator in fp32 and fp16 (verified
// by the allreduce-bench job body), and prints busbw/p2p per size.
// The machine is shared, so every size is measured `reps` times with p2p,
// fp32 and fp16 interleaved, and the best of each is kept. Runs once per
// same-host UCX error mode (UcxWorker's, see ucx_worker.h; both ranks are on
// host "local", so the p2p endpoint and the communicator's get the same mode
// and transports, printed): peer = UCP_ERR_HANDLING_MODE_PEER, TCP only on one
// host with UCX 1.13; none (the service default) = shared memory + CMA.
// `variants` compares allreduce pipelining settings (UcxCommOptions) in the
// same run, interleaved: a comma list of segment:window, sizes with K/M, e.g.
// "512K:4,1M:4,2M:2". No assertions: it reports. UCX_NET_DEVICES defaults to lo.
//   usage: ucx_p2p_vs_allreduce [min_bytes [max_bytes [peer|none|both [reps [variants]]]]]
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/comm/ucx_communicator.h"
#include "worker/comm/ucx_worker.h"
#include "worker/jobs/allreduce_bench.h"

namespace {

using namespace dtrain;
using namespace dtrain::comm;

constexpr uint32_t kP2pJob = 0xfffffe;  // job_seq reserved for the raw transfers
constexpr uint32_t kArJob = 1;

void WaitReq(UcxWorker& w, void* req) {
  if (UCS_PTR_IS_ERR(req)) Fail(ErrorCode::kUnavailable, ucs_status_string(UCS_PTR_STATUS(req)));
  if (!req) return;
  ucs_status_t st;
  int idle = 0;  // same polling policy as the communicator
  while ((st = ucp_request_check_status(req)) == UCS_INPROGRESS) {
    if (w.Progress() == 0 && ++idle >= 32) {
      idle = 0;
      sched_yield();
    }
  }
  ucp_request_free(req);
  if (st != UCS_OK) Fail(ErrorCode::kUnavailable, ucs_status_string(st));
}

// One-way bandwidth 0 -> 1 in GB/s, seen by rank 0 (0 on rank 1).
double P2p(UcxWorker& w, ucp_ep_h ep, int rank, char* buf, size_t bytes, int iters, int warmup) {
  ucp_request_param_t p{};
  char ack = 0;
  const ucp_tag_t t0 = UcxTag(kP2pJob, 0, 0), t1 = UcxTag(kP2pJob, 1, 0);
  auto one = [&] {
    if (rank == 0) {
      WaitReq(w, ucp_tag_send_nbx(ep, buf, bytes, t0, &p));
      WaitReq(w, ucp_tag_recv_nbx(w.worker(), &ack, 1, t1, kUcxFullTagMask, &p));
    } else {
      WaitReq(w, ucp_tag_recv_nbx(w.worker(), buf, bytes, t0, kUcxFullTagMask, &p));
      WaitReq(w, ucp_tag_send_nbx(ep, &ack, 1, t1, &p));
    }
  };
  for (int i = 0; i < warmup; ++i) one();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) one();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rank == 0 ? double(bytes) * iters / s / 1e9 : 0.0;
}

struct Variant {
  UcxCommOptions opt;
  std::string name;
};

std::vector<Variant> ParseVariants(const std::string& text) {
  std::vector<Variant> out;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    char* rest = nullptr;
    double seg = std::strtod(item.c_str(), &rest);
    if (*rest == 'K' || *rest == 'k') seg *= 1024, ++rest;
    if (*rest == 'M' || *rest == 'm') seg *= 1024 * 1024, ++rest;
    Variant v;
    v.opt.segment_bytes = size_t(seg);
    if (*rest == ':') v.opt.window = std::atoi(rest + 1);
    v.name = item;
    out.push_back(v);
    pos = end + 1;
  }
  if (out.empty()) out.push_back({UcxCommOptions{}, "default"});
  return out;
}

int RankMain(int rank, int up, int down, UcxErrorMode mode, int64_t min_bytes,
             int64_t max_bytes, int reps, const std::vector<Variant>& variants) {
  UcxWorker w(mode);
  const std::string& mine = w.Address();
  uint32_t len = uint32_t(mine.size());
  if (write(up, &len, 4) != 4 || write(up, mine.data(), len) != ssize_t(len)) return 2;
  std::vector<PeerInfo> peers(2);
  for (int i = 0; i < 2; ++i) {
    peers[i].rank = i;
    peers[i].host = "local";
    uint32_t l = 0;
    if (read(down, &l, 4) != 4) return 2;
    peers[i].ucx_address.resize(l);
    for (size_t got = 0; got < l;) {
      ssize_t r = read(down, peers[i].ucx_address.data() + got, l - got);
      if (r <= 0) return 2;
      got += size_t(r);
    }
  }
  // Same host as the communicator's endpoints, hence the same mode.
  ucp_ep_h ep = w.Connect(peers[1 - rank].ucx_address, /*same_host=*/true,
                          [](void*, ucp_ep_h, ucs_status_t) {}, nullptr);
  const std::string transports = UcxWorker::Transports(ep);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (size_t i = 0; i < variants.size(); ++i)
    comms.push_back(MakeUcxCommunicator(w, kArJob + uint32_t(i), rank, peers, variants[i].opt));
  char* buf = static_cast<char*>(std::aligned_alloc(4096, size_t((max_bytes + 4095) / 4096 * 4096)));
  std::memset(buf, 1, size_t(max_bytes));

  struct Row { int64_t bytes; size_t v; double p2p = 0, f32 = 0, f16 = 0; bool ok = true; };
  std::vector<Row> rows;
  for (int64_t b = min_bytes; b <= max_bytes; b *= 2) {
    const size_t first = rows.size();
    for (size_t v = 0; v < variants.size(); ++v) rows.push_back(Row{b, v});
    double p2p = 0;
    const int iters = int(std::min<int64_t>(20, std::max<int64_t>(3, (int64_t(512) << 20) / b)));
    BenchSpec spec;
    spec.min_bytes = spec.max_bytes = b;
    spec.iterations = 20;
    spec.warmup = 2;
    for (int rep = 0; rep < reps; ++rep) {
      p2p = std::max(p2p, P2p(w, ep, rank, buf, size_t(b), iters, 2));
      for (size_t v = 0; v < variants.size(); ++v) {
        Row& row = rows[first + v];
        for (DType dt : {DType::kF32, DType::kF16}) {
          const auto r = jobs::RunAllreduceBench(*comms[v], spec, dt, 120, nullptr, nullptr).at(0);
          double& best = dt == DType::kF32 ? row.f32 : row.f16;
          best = std::max(best, r.busbw_gbps);
          row.ok = row.ok && r.verified;
        }
      }
    }
    for (size_t v = 0; v < variants.size(); ++v) rows[first + v].p2p = p2p;
  }
  std::free(buf);
  comms.clear();
  w.Close({ep}, false, Deadline::AfterSeconds(2));
  if (rank != 0) return 0;

  const char* tls = std::getenv("UCX_TLS");
  std::printf("\nsame-host error mode %s (endpoints: %s), UCX_TLS=%s, UCX_NET_DEVICES=%s, "
              "2 ranks (busbw = algbw), best of %d, interleaved\n",
              UcxErrorModeName(mode), transports.c_str(), tls ? tls : "(default)",
              std::getenv("UCX_NET_DEVICES"), reps);
  std::printf("%12s %10s %10s %12s %8s %12s %8s %s\n", "bytes", "seg:win", "p2p GB/s", "fp32 busbw",
              "ratio", "fp16 busbw", "ratio", "verified");
  for (const Row& r : rows) {
    std::printf("%12lld %10s %10.2f %12.2f %8.2f %12.2f %8.2f %s\n", (long long)r.bytes,
                variants[r.v].name.c_str(), r.p2p, r.f32, r.f32 / r.p2p, r.f16, r.f16 / r.p2p,
                r.ok ? "yes" : "NO");
  }
  for (const Row& r : rows) {
    if (r.bytes != (int64_t(64) << 20)) continue;
    std::printf("64 MiB (mode %s, %s): p2p %.2f GB/s; allreduce busbw fp32 %.2f GB/s (%.2f of p2p), "
                "fp16 %.2f GB/s (%.2f of p2p)\n",
                UcxErrorModeName(mode), variants[r.v].name.c_str(), r.p2p, r.f32, r.f32 / r.p2p,
                r.f16, r.f16 / r.p2p);
  }
  std::fflush(stdout);
  return 0;
}

int RunPair(UcxErrorMode mode, int64_t min_bytes, int64_t max_bytes, int reps,
            const std::vector<Variant>& variants) {
  int up[2][2], down[2][2];
  pid_t pids[2];
  std::fflush(stdout);
  for (int r = 0; r < 2; ++r) {
    if (pipe(up[r]) != 0 || pipe(down[r]) != 0) return 1;
    pids[r] = fork();
    if (pids[r] == 0) {
      int rc = 1;
      try {
        rc = RankMain(r, up[r][1], down[r][0], mode, min_bytes, max_bytes, reps, variants);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      _exit(rc);
    }
  }
  std::string addr[2];
  for (int r = 0; r < 2; ++r) {
    uint32_t l = 0;
    if (read(up[r][0], &l, 4) != 4) return 1;
    addr[r].resize(l);
    for (size_t got = 0; got < l;) {
      ssize_t n = read(up[r][0], addr[r].data() + got, l - got);
      if (n <= 0) return 1;
      got += size_t(n);
    }
  }
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 2; ++i) {
      uint32_t l = uint32_t(addr[i].size());
      if (write(down[r][1], &l, 4) != 4 || write(down[r][1], addr[i].data(), l) != ssize_t(l)) return 1;
    }
    close(up[r][0]);
    close(down[r][1]);
  }
  int rc = 0;
  for (int r = 0; r < 2; ++r) {
    int st = 0;
    waitpid(pids[r], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t min_bytes = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int64_t max_bytes = argc > 2 ? std::atoll(argv[2]) : int64_t(256) << 20;
  const std::string modes = argc > 3 ? argv[3] : "both";
  const int reps = argc > 4 ? std::max(1, std::atoi(argv[4])) : 3;
  const auto variants = ParseVariants(argc > 5 ? argv[5] : "");
  DefaultUcxToLoopback();
  int rc = 0;
  for (const auto& v : variants) {
    if (v.opt.segment_bytes < 4096 || v.opt.window < 1) {
      std::fprintf(stderr, "bad variant %s: want segment:window, segment >= 4K, window >= 1\n",
                   v.name.c_str());
      return 2;
    }
  }
  if (modes == "peer" || modes == "both") rc |= RunPair(UcxErrorMode::kPeer, min_bytes, max_bytes, reps, variants);
  if (modes == "none" || modes == "both") rc |= RunPair(UcxErrorMode::kNone, min_bytes, max_bytes, reps, variants);
  return rc;
}
