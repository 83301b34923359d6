// Ring allreduce over UCX with real processes: world sizes 2, 3, 4 x counts
// 1, 7, 1,000,003 x fp32/fp16 x sum/avg, against a serial reference in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/ucx_communicator.h"

namespace dtrain::comm {
namespace {

using testing::RunRanks;

using testing::Value;

// The value a rank actually contributes (rounded to fp16 for fp16).
double Input(int rank, size_t i, DType dtype) {
  const double v = Value(rank, i);
  return dtype == DType::kF16 ? double(HalfToFloat(FloatToHalf(float(v)))) : double(float(v));
}

int CheckOne(Communicator& comm, size_t count, DType dtype, ReduceOp op) {
  const int n = comm.world_size(), rank = comm.rank();
  std::vector<float> f32;
  std::vector<half_bits> f16;
  void* data;
  if (dtype == DType::kF32) {
    f32.resize(count);
    for (size_t i = 0; i < count; ++i) f32[i] = float(Value(rank, i));
    data = f32.data();
  } else {
    f16.resize(count);
    for (size_t i = 0; i < count; ++i) f16[i] = FloatToHalf(float(Value(rank, i)));
    data = f16.data();
  }
  comm.AllReduce(data, count, dtype, op, Deadline::AfterSeconds(60));

  // fp32: a few ulps per addition. fp16: each of the n-1 ring steps rounds a
  // partial sum of magnitude <= n to half precision (2^-11 relative).
  const double tol = dtype == DType::kF32 ? 1e-6 * n : n * n * std::ldexp(1.0, -11);
  int bad = 0;
  for (size_t i = 0; i < count; ++i) {
    double want = 0;
    for (int r = 0; r < n; ++r) want += Input(r, i, dtype);
    if (op == ReduceOp::kAvg) want /= n;
    const double got = dtype == DType::kF32 ? double(f32[i]) : double(HalfToFloat(f16[i]));
    if (!(std::fabs(got - want) <= tol)) {
      if (bad++ < 3) {
        std::fprintf(stderr, "rank %d: %s %s count %zu: element %zu = %.7g, want %.7g\n", rank,
                     DTypeName(dtype), ReduceOpName(op), count, i, got, want);
      }
    }
  }
  return bad == 0 ? 0 : 1;
}

int AllCases(int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
  auto comm = MakeUcxCommunicator(worker, /*job_seq=*/7, rank, std::move(peers));
  int failures = 0;
  for (size_t count : {size_t(1), size_t(7), size_t(1000003)}) {
    for (DType dtype : {DType::kF32, DType::kF16}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) failures += CheckOne(*comm, count, dtype, op);
    }
  }
  // count 0 is a no-op that keeps ranks in step.
  comm->AllReduce(nullptr, 0, DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(60));
  failures += CheckOne(*comm, 5, DType::kF32, ReduceOp::kSum);
  return failures == 0 ? 0 : 1;
}

void ExpectAllPass(int n) {
  const auto codes = RunRanks(n, 90, AllCases);
  for (int r = 0; r < n; ++r) EXPECT_EQ(codes[r], 0) << "rank " << r << " of " << n;
}

TEST(CommAllReduce, TwoRanks) { ExpectAllPass(2); }
TEST(CommAllReduce, ThreeRanks) { ExpectAllPass(3); }
TEST(CommAllReduce, FourRanks) { ExpectAllPass(4); }

// Jobs run one after another on the same long-lived workers. Rank 1's job 100
// fails (rank 0 never joins it) after its data went out; job 101 must not
// match those stale messages, although its call sequence and sizes are equal.
TEST(CommAllReduce, JobsOnOneWorkerDoNotMix) {
  const auto codes = RunRanks(2, 60, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    if (rank == 1) {
      auto stale = MakeUcxCommunicator(worker, 100, rank, peers);
      std::vector<float> junk(1000, -1000.0f);
      try {
        stale->AllReduce(junk.data(), junk.size(), DType::kF32, ReduceOp::kSum,
                         Deadline::AfterSeconds(1));
        COMM_CHECK(false, "job 100 allreduce without rank 0 should have failed");
      } catch (const Error& e) {
        COMM_CHECK(e.code() == ErrorCode::kDeadlineExceeded, "%s", e.what());
      }
    }
    auto comm = MakeUcxCommunicator(worker, 101, rank, peers);
    std::vector<float> x(1000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i + 10 * rank);
    comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(30));
    for (size_t i = 0; i < x.size(); ++i) COMM_CHECK(x[i] == float(2 * i + 10), "x[%zu]=%g", i, x[i]);
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

}  // namespace
}  // namespace dtrain::comm
