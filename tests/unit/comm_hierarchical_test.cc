// Hierarchical allreduce over UCX with real processes on simulated host
// layouts (peers' host names): it equals the flat ring's result (fp32 exactly
// for sums of small integers, fp16 within rounding) for 1x4, 2x2, 2x3, 3x2 and
// uneven 2+1 (and 3+1+2) hosts at counts 0, 1, 7 and 1,000,003; `auto` agrees too; a dead
// rank on another host fails every rank by its deadline, naming a rank and
// host. Also the pure parts: the shard plan and the cost model's choice.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/allreduce_algorithm.h"
#include "worker/comm/host_layout.h"
#include "worker/comm/ucx_communicator.h"

namespace dtrain::comm {
namespace {

using testing::RunOptions;
using testing::RunRanks;

std::vector<PeerInfo> PeersOn(const std::vector<std::string>& hosts) {
  std::vector<PeerInfo> p(hosts.size());
  for (size_t r = 0; r < hosts.size(); ++r) {
    p[r].rank = int(r);
    p[r].host = hosts[r];
  }
  return p;
}

TEST(HostLayout, EveryShardHasExactlyOneOwnerPerHostInsideItsIntraChunk) {
  for (const auto& hosts : std::vector<std::vector<std::string>>{
           {"a", "a", "b", "b"}, {"a", "a", "b"}, {"a", "b", "a", "c", "c", "c"}, {"x"},
           {"a", "a", "a", "b", "c", "c"}}) {
    const HostLayout l = HostLayout::FromPeers(PeersOn(hosts));
    for (size_t count : {size_t(0), size_t(1), size_t(5), size_t(1001)}) {
      const auto shards = HostLayout::Split(count, l.max_local);
      ASSERT_EQ(shards.front(), 0u);
      ASSERT_EQ(shards.back(), count);
      for (int h = 0; h < l.num_hosts(); ++h) {
        const auto intra = l.IntraChunks(h, shards);
        const int L = int(l.hosts[h].size());
        ASSERT_EQ(int(intra.size()), L + 1);
        EXPECT_EQ(intra.front(), 0u);
        EXPECT_EQ(intra.back(), count);
        for (int s = 0; s < l.max_local; ++s) {
          const int owner = l.Owner(h, s);
          ASSERT_EQ(l.host_of[owner], h);
          // The ring reduce-scatter leaves position p with chunk (p + 1) % L.
          const int chunk = (l.local_of[owner] + 1) % L;
          EXPECT_LE(intra[chunk], shards[s]) << "host " << h << " shard " << s;
          EXPECT_GE(intra[chunk + 1], shards[s + 1]) << "host " << h << " shard " << s;
        }
      }
    }
  }
  const HostLayout l = HostLayout::FromPeers(PeersOn({"a", "b", "a"}));  // not contiguous
  EXPECT_EQ(l.hosts, (std::vector<std::vector<int>>{{0, 2}, {1}}));
  EXPECT_EQ(l.local_of, (std::vector<int>{0, 0, 1}));
}

TEST(AllreduceAlgorithm, AutoFollowsTheAlphaBetaCosts) {
  const NetworkCost net{{1e-6, 10e9}, {100e-6, 1e9}};
  // Ring on 2x2 crossing hosts: 6 steps of 100 us + (S/4)/1e9.
  EXPECT_NEAR(RingSeconds(4000000, 2, 4, net), 6 * (100e-6 + 1e6 / 1e9), 1e-12);
  // Hierarchical 2x2: 2 intra steps of 1 us + (S/2)/10e9, 2 inter steps of 100 us + (S/4)/(1e9/2).
  EXPECT_NEAR(HierarchicalSeconds(4000000, 2, 2, net),
              2 * (1e-6 + 2e6 / 10e9) + 2 * (100e-6 + 1e6 / 0.5e9), 1e-12);
  EXPECT_EQ(ChooseAllreduceAlgorithm(4000000, 2, 4, 2, net), AllreduceAlgorithm::kHierarchical);
  EXPECT_EQ(ChooseAllreduceAlgorithm(4000000, 1, 4, 4, net), AllreduceAlgorithm::kRing);
  EXPECT_EQ(ChooseAllreduceAlgorithm(4000000, 4, 4, 1, net), AllreduceAlgorithm::kRing);
  // Shared memory no faster than the network: the extra intra-host steps lose.
  const NetworkCost flat{{100e-6, 1e9}, {100e-6, 1e9}};
  EXPECT_EQ(ChooseAllreduceAlgorithm(4000000, 2, 4, 2, flat), AllreduceAlgorithm::kRing);
  EXPECT_EQ(ParseAllreduceAlgorithm("hierarchical"), AllreduceAlgorithm::kHierarchical);
  EXPECT_THROW(ParseAllreduceAlgorithm("tree"), Error);
}

// Small integers: every partial sum is exact in fp32, so any order agrees.
float IntValue(int rank, size_t i) { return float(int((rank * 7 + i * 13) % 17) - 8); }

using testing::Value;

int CheckLayout(int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
  const int n = int(peers.size());
  UcxCommOptions ring_o, hier_o, auto_o;
  hier_o.algorithm = AllreduceAlgorithm::kHierarchical;
  hier_o.segment_bytes = 64 << 10;  // many segments per chunk: the pipelining runs
  auto_o.algorithm = AllreduceAlgorithm::kAuto;
  auto ring = MakeUcxCommunicator(worker, 1, rank, peers, ring_o);
  auto hier = MakeUcxCommunicator(worker, 2, rank, peers, hier_o);
  auto autoc = MakeUcxCommunicator(worker, 3, rank, peers, auto_o);
  const Deadline d = Deadline::AfterSeconds(60);
  for (size_t count : {size_t(0), size_t(1), size_t(7), size_t(1000003)}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
      // fp32, small integers: ring, hierarchical and auto all exact.
      std::vector<float> a(count), b(count), c(count);
      for (size_t i = 0; i < count; ++i) a[i] = b[i] = c[i] = IntValue(rank, i);
      ring->AllReduce(a.data(), count, DType::kF32, op, d);
      hier->AllReduce(b.data(), count, DType::kF32, op, d);
      autoc->AllReduce(c.data(), count, DType::kF32, op, d);
      for (size_t i = 0; i < count; ++i) {
        float want = 0;
        for (int r = 0; r < n; ++r) want += IntValue(r, i);
        if (op == ReduceOp::kAvg) want *= 1.0f / float(n);
        COMM_CHECK(a[i] == want && b[i] == want && c[i] == want,
                   "fp32 %s count %zu [%zu]: ring %g hierarchical %g auto %g want %g",
                   ReduceOpName(op), count, i, a[i], b[i], c[i], want);
      }
      // fp16: both within the rounding of their own order of additions.
      std::vector<half_bits> ha(count), hb(count);
      for (size_t i = 0; i < count; ++i) ha[i] = hb[i] = FloatToHalf(float(Value(rank, i)));
      ring->AllReduce(ha.data(), count, DType::kF16, op, d);
      hier->AllReduce(hb.data(), count, DType::kF16, op, d);
      const double tol = n * n * std::ldexp(1.0, -11);
      for (size_t i = 0; i < count; ++i) {
        double want = 0;
        for (int r = 0; r < n; ++r) want += double(HalfToFloat(FloatToHalf(float(Value(r, i)))));
        if (op == ReduceOp::kAvg) want /= n;
        const double x = HalfToFloat(ha[i]), y = HalfToFloat(hb[i]);
        COMM_CHECK(std::fabs(x - want) <= tol && std::fabs(y - want) <= tol,
                   "fp16 %s count %zu [%zu]: ring %g hierarchical %g want %g (tol %g)",
                   ReduceOpName(op), count, i, x, y, want, tol);
      }
    }
  }
  return 0;
}

struct Layout {
  const char* name;
  std::vector<std::string> hosts;
};

class HierarchicalAllreduce : public ::testing::TestWithParam<Layout> {};

TEST_P(HierarchicalAllreduce, EqualsTheFlatRing) {
  RunOptions o;
  o.hosts = GetParam().hosts;
  const int n = int(o.hosts.size());
  EXPECT_EQ(RunRanks(n, 240, CheckLayout, o), std::vector<int>(size_t(n), 0));
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, HierarchicalAllreduce,
    ::testing::Values(Layout{"1x4", {"a", "a", "a", "a"}}, Layout{"2x2", {"a", "a", "b", "b"}},
                      Layout{"2x3", {"a", "a", "a", "b", "b", "b"}},
                      Layout{"3x2", {"a", "a", "b", "b", "c", "c"}},
                      Layout{"uneven_2plus1", {"a", "a", "b"}},
                      Layout{"uneven_3plus1plus2", {"a", "a", "a", "b", "c", "c"}}),
    [](const ::testing::TestParamInfo<Layout>& p) { return std::string(p.param.name); });

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(HierarchicalAllreduceFailure, DeadRankOnAnotherHostFailsEveryRankAtOnceNamingIt) {
  RunOptions o;
  o.hosts = {"ha", "ha", "hb", "hb"};
  const auto codes = RunRanks(4, 60, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    UcxCommOptions opt;
    opt.algorithm = AllreduceAlgorithm::kHierarchical;
    auto comm = MakeUcxCommunicator(worker, 7, rank, std::move(peers), opt);
    std::vector<float> x(100003, 1.0f);
    comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(20));
    COMM_CHECK(x[0] == 4.0f, "warm-up allreduce gave %g", x[0]);
    if (rank == 3) {
      testing::DieSilently(worker);
    }
    const auto t0 = Clock::now();
    try {
      comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(4));
      COMM_CHECK(false, "allreduce with a dead rank returned");
    } catch (const Error& e) {
      const double took = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(stderr, "rank %d after %.2f s: [%s] %s\n", rank, took, ErrorCodeName(e.code()), e.what());
      COMM_CHECK(took < 4.0 + 2.0, "failure took %.2f s", took);
      COMM_CHECK(e.code() == ErrorCode::kDeadlineExceeded || e.code() == ErrorCode::kUnavailable,
                 "%s", ErrorCodeName(e.code()));
      // Rank 1 owns the same shard as rank 3 and rings with it across hosts:
      // its endpoint fails at once. Rank 2 (rank 3's host) waits on it inside
      // the host, rank 0 on rank 2 across hosts: without more, rank 0 would
      // name its live partner. The failure notices carry rank 1's message to
      // rank 0 and on to rank 2, so EVERY rank names rank 3, well before the
      // deadline. Every message says which level and step.
      COMM_CHECK(Has(e.what(), "rank 3 (host hb)"), "message does not name rank 3: %s", e.what());
      COMM_CHECK(took < 2.0, "rank %d failed after %.2f s, not at once", rank, took);
      COMM_CHECK(Has(e.what(), "intra-host") || Has(e.what(), "inter-host"),
                 "message does not say the level: %s", e.what());
    }
    return 0;
  }, o);
  EXPECT_EQ(codes, (std::vector<int>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace dtrain::comm
