// Broadcast and Barrier over UCX with real processes; the local backend; dtype names.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "tests/unit/comm_procs.h"
#include "worker/comm/local_communicator.h"
#include "worker/comm/ucx_communicator.h"

namespace dtrain::comm {
namespace {

using testing::RunRanks;

uint8_t Byte(int root, size_t i) { return uint8_t((i * 31 + size_t(root) * 101 + 7) & 0xff); }

TEST(CommBroadcast, EveryRootAndSizeThreeRanks) {
  const auto codes = RunRanks(3, 60, [](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    auto comm = MakeUcxCommunicator(worker, 1, rank, std::move(peers));
    // 3,000,001 bytes: several pipeline segments and a ragged last one.
    for (size_t bytes : {size_t(0), size_t(1), size_t(1000), size_t(3000001)}) {
      for (int root = 0; root < 3; ++root) {
        std::vector<uint8_t> buf(bytes);
        for (size_t i = 0; i < bytes; ++i) buf[i] = rank == root ? Byte(root, i) : 0xEE;
        comm->Broadcast(buf.data(), bytes, root, Deadline::AfterSeconds(30));
        for (size_t i = 0; i < bytes; ++i) {
          COMM_CHECK(buf[i] == Byte(root, i), "root %d bytes %zu: byte %zu = %d", root, bytes, i, buf[i]);
        }
      }
    }
    try {
      comm->Broadcast(nullptr, 0, 3, Deadline::AfterSeconds(1));
      COMM_CHECK(false, "root 3 of 3 accepted");
    } catch (const Error& e) {
      COMM_CHECK(e.code() == ErrorCode::kInvalidArgument, "%s", e.what());
    }
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0, 0}));
}

// Each rank bumps a shared counter before every barrier; after barrier k every
// rank must see all n bumps of round k. Ranks sleep unevenly to make a broken
// barrier visible.
TEST(CommBarrier, NoRankLeavesEarlyFourRanks) {
  constexpr int kRanks = 4, kRounds = 20;
  auto* counter = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(counter, MAP_FAILED);
  new (counter) std::atomic<int>(0);
  const auto codes = RunRanks(kRanks, 60, [counter](int rank, UcxWorker& worker, std::vector<PeerInfo> peers) {
    auto comm = MakeUcxCommunicator(worker, 2, rank, std::move(peers));
    for (int round = 0; round < kRounds; ++round) {
      if ((round + rank) % kRanks == 0) usleep(20000);
      counter->fetch_add(1);
      comm->Barrier(Deadline::AfterSeconds(30));
      const int seen = counter->load();
      COMM_CHECK(seen >= kRanks * (round + 1), "round %d: saw %d bumps", round, seen);
      comm->Barrier(Deadline::AfterSeconds(30));  // nobody bumps round+1 before all checked
    }
    return 0;
  });
  EXPECT_EQ(codes, (std::vector<int>(kRanks, 0)));
  munmap(counter, 4096);
}

TEST(CommLocal, IdentityAndValidation) {
  auto comm = MakeLocalCommunicator();
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_STREQ(comm->backend(), "local");
  std::vector<float> x = {1.5f, -2.0f, 3.25f};
  comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kAvg, Deadline::AfterSeconds(1));
  comm->AllReduce(x.data(), x.size(), DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(1));
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  comm->Broadcast(x.data(), 12, 0, Deadline::AfterSeconds(1));
  comm->Barrier(Deadline::AfterSeconds(1));
  comm->AllReduce(nullptr, 0, DType::kF16, ReduceOp::kSum, Deadline::AfterSeconds(1));

  EXPECT_THROW(comm->AllReduce(nullptr, 3, DType::kF32, ReduceOp::kSum, Deadline::AfterSeconds(1)), Error);
  EXPECT_THROW(comm->Broadcast(x.data(), 12, 1, Deadline::AfterSeconds(1)), Error);
  std::atomic<bool> abort{true};
  try {
    comm->Barrier(Deadline::AfterSeconds(1, &abort));
    ADD_FAILURE() << "aborted barrier returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAborted);
  }
}

TEST(CommDType, NamesAndSizes) {
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(ParseDType("fp32"), DType::kF32);
  EXPECT_EQ(ParseDType(DTypeName(DType::kF16)), DType::kF16);
  try {
    ParseDType("bf16");
    ADD_FAILURE() << "bf16 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
  }
}

TEST(CommUcx, RejectsBadPeerList) {
  DefaultUcxToLoopback();
  UcxWorker worker;
  EXPECT_FALSE(worker.Address().empty());
  std::vector<PeerInfo> peers(2);
  peers[0].rank = 0;
  peers[1].rank = 0;  // out of order
  peers[1].ucx_address = worker.Address();
  EXPECT_THROW(MakeUcxCommunicator(worker, 1, 0, peers), Error);
  peers[1].rank = 1;
  EXPECT_THROW(MakeUcxCommunicator(worker, 1, 2, peers), Error);  // rank out of range
  peers[1].ucx_address.clear();  // rank 1 without an address
  EXPECT_THROW(MakeUcxCommunicator(worker, 1, 0, peers), Error);
}

}  // namespace
}  // namespace dtrain::comm
