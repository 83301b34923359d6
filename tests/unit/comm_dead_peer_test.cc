// A rank on the SAME host is SIGKILLed in the middle of a 64 MiB allreduce
// (same-host endpoints in UCP_ERR_HANDLING_MODE_NONE: shared memory + CMA
// rendezvous, so UCX never reports the death). The survivors must neither hang
// nor crash: with the abort flag set ~100 ms after the kill (what the
// coordinator's ABORT does in the service) they throw kAborted; with no abort
// flag they throw kDeadlineExceeded naming the silent rank. Either way they
// exit normally, and the same UcxWorker then runs a new job with the
// survivors. Also: which transports each endpoint mode gets.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/ucx_communicator.h"

namespace dtrain::comm {
namespace {

using testing::RunOptions;
using testing::RunRanks;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// Shared between the parent and the forked ranks (MAP_SHARED, lock-free atomics).
struct Shared {
  std::atomic<int> calls[4];      // per rank: timed allreduce calls started
  std::atomic<int64_t> call_ns;   // rank 0: duration of its first timed call
  std::atomic<int64_t> kill_ns;   // steady clock when the parent sent SIGKILL
  std::atomic<int> abort;         // the "coordinator's ABORT"
};

Shared* MapShared() {
  void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) Shared{};
}

class CommDeadPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE");  // the default: none
    sh_ = MapShared();
  }
  void TearDown() override { munmap(sh_, sizeof(Shared)); }
  void KillMidAllreduce(bool abort_flag);
  Shared* sh_ = nullptr;
};

constexpr int kVictim = 1;
constexpr size_t kCount = size_t(16) << 20;  // 64 MiB of fp32

void CommDeadPeer::KillMidAllreduce(bool abort_flag) {
  Shared* sh = sh_;
  const double deadline_s = abort_flag ? 30.0 : 3.0;
  RunOptions opt;
  opt.one_host = true;
  opt.parent = [sh, abort_flag](const std::vector<pid_t>& pids) {
    // Wait until every rank is in its second timed allreduce, then kill the
    // victim partway into it.
    const auto give_up = Clock::now() + std::chrono::seconds(30);
    auto all_in = [&] {
      for (int r = 0; r < 3; ++r)
        if (sh->calls[r] < 2) return false;
      return true;
    };
    while (!all_in() && Clock::now() < give_up) std::this_thread::sleep_for(std::chrono::microseconds(200));
    const int64_t call_ns = sh->call_ns;
    std::this_thread::sleep_for(std::chrono::nanoseconds(call_ns / 3));
    sh->kill_ns = NowNs();
    kill(pids[kVictim], SIGKILL);
    std::fprintf(stderr, "parent: one allreduce took %.0f ms; SIGKILL rank %d %.0f ms into the call%s\n",
                 call_ns / 1e6, kVictim, call_ns / 3e6, abort_flag ? "; abort flag in 100 ms" : "");
    if (abort_flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      sh->abort = 1;
    }
  };
  const auto codes = RunRanks(3, 60, [sh, abort_flag, deadline_s](int rank, UcxWorker& worker,
                                                                  std::vector<PeerInfo> peers) {
    COMM_CHECK(worker.same_host_mode() == UcxErrorMode::kNone, "same-host mode %s",
               UcxErrorModeName(worker.same_host_mode()));
    std::vector<float> x(kCount, 1.0f);
    {
      auto comm = MakeUcxCommunicator(worker, 20, rank, peers);
      comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(30));
      COMM_CHECK(x[0] == 3.0f && x[kCount - 1] == 3.0f, "warm-up gave %g %g", x[0], x[kCount - 1]);

      // The thread that turns the coordinator's ABORT into the abort flag.
      std::atomic<bool> abort{false}, stop{false};
      std::thread watcher([&] {
        while (!stop) {
          if (sh->abort) abort = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
      struct Join {
        std::atomic<bool>& stop;
        std::thread& t;
        ~Join() { stop = true; t.join(); }
      } join{stop, watcher};

      bool failed = false;
      for (int call = 1; call <= 50 && !failed; ++call) {
        sh->calls[rank] = call;
        const auto t0 = Clock::now();
        try {
          comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kAvg,
                          Deadline::AfterSeconds(deadline_s, &abort));
          if (rank == 0 && call == 1) sh->call_ns = (Clock::now() - t0).count();
        } catch (const Error& e) {
          failed = true;
          const double after_kill = (NowNs() - sh->kill_ns) / 1e9;
          std::fprintf(stderr, "rank %d, call %d, %.3f s after the kill: [%s] %s\n", rank, call,
                       after_kill, ErrorCodeName(e.code()), e.what());
          COMM_CHECK(sh->kill_ns != 0, "failed before the kill");
          // The rank that receives from the dead one usually sees its CMA
          // read fail within milliseconds ("receive from rank 1 (host h0)
          // failed: Input/output error", or UCX's error callback: "connection
          // to rank 1 (host h0) failed (Connection reset by remote peer)"):
          // kUnavailable naming it.
          // Rank 0 may instead see rank 2 fail first: rank 2 abandons its
          // endpoints once it has failed itself (a cascade, named as such).
          const bool cma_failed = e.code() == ErrorCode::kUnavailable &&
                                  (Has(e.what(), "rank 1 (host h0)") ||
                                   (rank == 0 && Has(e.what(), "rank 2 (host h0)")));
          if (abort_flag) {
            COMM_CHECK(e.code() == ErrorCode::kAborted || cma_failed, "%s", ErrorCodeName(e.code()));
            COMM_CHECK(after_kill < 0.1 + 1.5, "abort took %.3f s after the kill", after_kill);
          } else {
            COMM_CHECK(e.code() == ErrorCode::kDeadlineExceeded || cma_failed, "%s",
                       ErrorCodeName(e.code()));
            COMM_CHECK(after_kill < deadline_s + 2.0, "deadline took %.3f s after the kill", after_kill);
            // Rank 2 receives from the dead rank; rank 0 sends to it (and
            // receives from rank 2, which is stuck on it).
            COMM_CHECK(Has(e.what(), "rank 1 (host h0)") || (rank == 0 && Has(e.what(), "rank 2")),
                       "message names neither the silent rank nor its neighbour: %s", e.what());
            if (rank == 2) COMM_CHECK(Has(e.what(), "rank 1 (host h0)"), "%s", e.what());
          }
        }
      }
      COMM_CHECK(failed, "rank %d: 50 allreduce calls returned although rank %d was killed", rank, kVictim);
      COMM_CHECK(rank != kVictim, "the victim survived");
    }

    // The daemon lives on: the same worker runs a new job with the survivors.
    std::vector<PeerInfo> survivors;
    for (PeerInfo p : peers) {
      if (p.rank == kVictim) continue;
      p.rank = int(survivors.size());
      survivors.push_back(std::move(p));
    }
    const int new_rank = rank < kVictim ? rank : rank - 1;
    auto comm = MakeUcxCommunicator(worker, 21, new_rank, survivors);
    for (float& v : x) v = float(new_rank + 1);
    comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(30));
    for (size_t i = 0; i < kCount; i += 4099) COMM_CHECK(x[i] == 3.0f, "new job x[%zu]=%g", i, x[i]);
    COMM_CHECK(x[kCount - 1] == 3.0f, "new job x[last]=%g", x[kCount - 1]);
    comm->Barrier(Deadline::AfterSeconds(30));
    return 0;
  }, opt);
  EXPECT_EQ(codes, (std::vector<int>{0, 128 + SIGKILL, 0}));
}

TEST_F(CommDeadPeer, KilledMidAllreduceAbortFlagEndsWait) { KillMidAllreduce(true); }

TEST_F(CommDeadPeer, KilledMidAllreduceDeadlineNamesSilentRank) { KillMidAllreduce(false); }

// Same-host endpoints (default mode none) get shared memory + CMA; endpoints
// to another host keep peer-failure mode (TCP on loopback); the env var
// switches the same-host mode; both modes coexist on one worker.
TEST(CommModes, SameHostNoneOtherHostPeer) {
  unsetenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE");
  const auto codes = RunRanks(2, 30, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    {
      // Both ranks connect alike, so that UCX pairs the endpoints by their
      // creation order (conn_sn) as it does for communicators.
      const auto noop = [](void*, ucp_ep_h, ucs_status_t) {};
      const std::string& addr = peers[1 - rank].ucx_address;
      ucp_ep_h same = worker.Connect(addr, /*same_host=*/true, noop, nullptr);
      ucp_ep_h other = worker.Connect(addr, /*same_host=*/false, noop, nullptr);
      const std::string ts = UcxWorker::Transports(same), to = UcxWorker::Transports(other);
      if (rank == 0) std::fprintf(stderr, "same host (none): %s\nother host (peer): %s\n", ts.c_str(), to.c_str());
      worker.Close({same, other}, /*force=*/false, Deadline::AfterSeconds(2));
      COMM_CHECK(!Has(ts, "tcp") && (Has(ts, "sysv") || Has(ts, "posix") || Has(ts, "cma")),
                 "same-host endpoint not on shared memory: %s", ts.c_str());
      COMM_CHECK(Has(to, "tcp") && !Has(to, "sysv") && !Has(to, "cma"),
                 "other-host endpoint not on TCP: %s", to.c_str());
    }
    // A mixed world on one worker: rank 1 is "on another host" for job 30's
    // peers, then on the same host for job 31.
    for (uint32_t job : {30u, 31u}) {
      std::vector<PeerInfo> p = peers;
      p[1].host = job == 30 ? "h1" : "h0";
      auto comm = MakeUcxCommunicator(worker, job, rank, p);
      std::vector<float> x(size_t(1) << 20, float(rank + 1));
      comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(20));
      COMM_CHECK(x[0] == 3.0f && x.back() == 3.0f, "job %u: %g", job, x[0]);
    }
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));

  setenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE", "peer", 1);
  EXPECT_EQ(SameHostErrorModeFromEnv(), UcxErrorMode::kPeer);
  setenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE", "none", 1);
  EXPECT_EQ(SameHostErrorModeFromEnv(), UcxErrorMode::kNone);
  setenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE", "fast", 1);
  EXPECT_THROW(SameHostErrorModeFromEnv(), Error);
  unsetenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE");
  EXPECT_EQ(SameHostErrorModeFromEnv(), UcxErrorMode::kNone);
}

}  // namespace
}  // namespace dtrain::comm
