// The allreduce-bench job body with real processes: every size is verified on
// every rank, all ranks report the same rows, and a bad spec is rejected.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/local_communicator.h"
#include "worker/comm/ucx_communicator.h"
#include "worker/jobs/allreduce_bench.h"

namespace dtrain::comm {
namespace {

using testing::RunRanks;

int BenchBody(int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
  const int n = int(peers.size());
  auto comm = MakeUcxCommunicator(worker, 3, rank, std::move(peers));
  BenchSpec spec;
  spec.min_bytes = 1000;  // not a power of two nor a multiple of n: rounded to the element
  spec.max_bytes = 4 << 20;
  spec.iterations = 5;
  spec.warmup = 1;
  for (DType dtype : {DType::kF32, DType::kF16}) {
    int calls = 0;
    const auto rows = jobs::RunAllreduceBench(
        *comm, spec, dtype, 30, nullptr,
        [&](const std::string& msg, int done, int total) {
          ++calls;
          if (rank == 0) std::fprintf(stderr, "[%d/%d] %s\n", done, total, msg.c_str());
        });
    COMM_CHECK(rows.size() == 13, "%zu rows", rows.size());  // 1000 B .. 4096000 B, doubling
    COMM_CHECK(calls == 13, "%d progress calls", calls);
    for (const auto& r : rows) {
      COMM_CHECK(r.verified, "%s %lld bytes not verified", r.dtype.c_str(), (long long)r.bytes);
      COMM_CHECK(r.dtype == DTypeName(dtype), "dtype %s", r.dtype.c_str());
      COMM_CHECK(r.bytes == r.count * int64_t(DTypeSize(dtype)), "bytes %lld", (long long)r.bytes);
      COMM_CHECK(r.time_us > 0 && r.iterations >= 2, "time %g iterations %d", r.time_us, r.iterations);
      COMM_CHECK(std::fabs(r.busbw_gbps - r.algbw_gbps * 2.0 * (n - 1) / n) < 1e-9 * (1 + r.busbw_gbps),
                 "busbw %g algbw %g", r.busbw_gbps, r.algbw_gbps);
    }
  }
  return 0;
}

TEST(CommBench, VerifiesTwoRanks) {
  EXPECT_EQ(RunRanks(2, 90, BenchBody), (std::vector<int>{0, 0}));
}

TEST(CommBench, VerifiesThreeRanks) {
  EXPECT_EQ(RunRanks(3, 90, BenchBody), (std::vector<int>{0, 0, 0}));
}

TEST(CommBench, LocalBackendAndBadSpec) {
  auto comm = MakeLocalCommunicator();
  BenchSpec spec;
  spec.min_bytes = 1024;
  spec.max_bytes = 8192;
  const auto rows = jobs::RunAllreduceBench(*comm, spec, DType::kF16, 10, nullptr, nullptr);
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& r : rows) EXPECT_TRUE(r.verified) << r.bytes;
  EXPECT_EQ(rows[3].bytes, 8192);
  EXPECT_EQ(rows[3].count, 4096);

  spec.min_bytes = 0;
  EXPECT_THROW(jobs::RunAllreduceBench(*comm, spec, DType::kF32, 10, nullptr, nullptr), Error);
  spec.min_bytes = 4096;
  spec.max_bytes = 1024;
  EXPECT_THROW(jobs::RunAllreduceBench(*comm, spec, DType::kF32, 10, nullptr, nullptr), Error);
}

}  // namespace
}  // namespace dtrain::comm
