// Failures with real processes: a dead peer is named within the deadline, the
// abort flag cuts a wait short, ranks that disagree on the count fail instead
// of hanging, and a failed communicator stays failed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/ucx_communicator.h"

namespace dtrain::comm {
namespace {

using testing::RunRanks;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(CommFailure, DeadPeerIsNamedWithinDeadline) {
  const auto codes = RunRanks(3, 40, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    auto comm = MakeUcxCommunicator(worker, 9, rank, std::move(peers));
    std::vector<float> x(1000003, 1.0f);
    comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(20));
    COMM_CHECK(x[0] == 3.0f, "warm-up allreduce gave %g", x[0]);
    if (rank == 2) {
      testing::DieSilently(worker);
    }

    const auto t0 = Clock::now();
    try {
      comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(4));
      COMM_CHECK(false, "allreduce with a dead rank returned");
    } catch (const Error& e) {
      const double took = Since(t0);
      std::fprintf(stderr, "rank %d after %.2f s: [%s] %s\n", rank, took, ErrorCodeName(e.code()), e.what());
      COMM_CHECK(took < 4.0 + 2.0, "failure took %.2f s", took);
      COMM_CHECK(e.code() == ErrorCode::kDeadlineExceeded || e.code() == ErrorCode::kUnavailable,
                 "%s", ErrorCodeName(e.code()));
      // Rank 0 receives from rank 2 and always names it. Rank 1 sends to rank 2,
      // but rank 0 abandoning its endpoints after its own failure may reach rank 1
      // first, so rank 1 names rank 2 or rank 0 (the coordinator's job reason
      // names the lost rank either way: it learns of the death itself).
      if (rank == 0) {
        COMM_CHECK(Has(e.what(), "rank 2 (host h2)"), "message does not name rank 2: %s", e.what());
      } else {
        COMM_CHECK(Has(e.what(), "rank 2 (host h2)") || Has(e.what(), "rank 0 (host h0)"),
                   "message names no failed peer: %s", e.what());
      }
    }
    try {
      comm->Barrier(Deadline::AfterSeconds(4));
      COMM_CHECK(false, "a failed communicator ran a barrier");
    } catch (const Error& e) {
      COMM_CHECK(e.code() == ErrorCode::kAborted, "%s", e.what());
    }
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0, 0}));
}

TEST(CommFailure, AbortFlagCutsWaitShort) {
  const auto codes = RunRanks(2, 30, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    auto comm = MakeUcxCommunicator(worker, 10, rank, std::move(peers));
    if (rank == 1) {  // alive but never joins
      sleep(3);
      return 0;
    }
    std::atomic<bool> abort{false};
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      abort = true;
    });
    const auto t0 = Clock::now();
    int rc = 0;
    try {
      std::vector<uint16_t> x(4096, 0x3c00);
      comm->AllReduce(x.data(), x.size(), DType::kF16, ReduceOp::kAvg, Deadline::AfterSeconds(60, &abort));
      std::fprintf(stderr, "aborted allreduce returned\n");
      rc = 1;
    } catch (const Error& e) {
      const double took = Since(t0);
      std::fprintf(stderr, "rank 0 after %.2f s: %s\n", took, e.what());
      if (e.code() != ErrorCode::kAborted || took > 2.0 || !Has(e.what(), "rank 1 (host h1)")) rc = 1;
    }
    canceller.join();
    return rc;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

TEST(CommFailure, RanksDisagreeingOnCountFail) {
  const auto codes = RunRanks(2, 30, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    auto comm = MakeUcxCommunicator(worker, 11, rank, std::move(peers));
    std::vector<float> x(rank == 0 ? 1000 : 3000, 1.0f);
    try {
      comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(3));
    } catch (const Error& e) {
      std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
      return Has(e.what(), "disagree") || e.code() == ErrorCode::kDeadlineExceeded ? 0 : 1;
    }
    std::fprintf(stderr, "rank %d: mismatched allreduce returned\n", rank);
    return 1;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

}  // namespace
}  // namespace dtrain::comm
