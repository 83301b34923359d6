// NCCL communicator (worker/comm/nccl_communicator.h) on real GPUs, label gpu.
//
// Every test that touches CUDA runs its ranks in forked child processes (the
// CUDA runtime does not survive a fork, so the parent never initialises it;
// even the device count is probed in a child). Rank 0 creates the NCCL unique
// id and the parent relays it to the other ranks, as the coordinator's
// "nccl-id" rendezvous does in the service. Results are compared with a CPU
// reference: each rank's input is a function of (rank, seed), so every rank
// computes the expected sum of all ranks itself.
//
// World 1 runs on any GPU; world 2 needs 2 GPUs (NCCL does not support two
// ranks of one communicator on one device) and is skipped, with the reason,
// otherwise. Without a GPU every CUDA test skips visibly; the argument checks
// run everywhere (they fail before any CUDA call).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime_api.h>

#include "common/error.h"
#include "common/half.h"
#include "worker/comm/nccl_communicator.h"
#include "../unit/comm_procs.h"

namespace dtrain::comm {
namespace {

// Pipe I/O (WriteAll, ReadAll) and the child-side COMM_CHECK come from the
// comm tests' fork harness; only the NCCL id exchange below is this file's own.
using testing::ReadAll;
using testing::WriteAll;

// Runs body(rank, unique_id) in n forked processes: rank 0 creates the id
// (NewNcclUniqueId) and sends it up; the parent relays it to ranks 1..n-1.
// `ranks_started` < n leaves the remaining ranks out (a peer that never
// joins). Returns each started rank's exit code: the body's value, 3 on an
// exception, 128+signal, or -1 if it was still running at the timeout.
using RankBody = std::function<int(int rank, const std::string& id)>;

std::vector<int> RunRanks(int n, double timeout_s, const RankBody& body, int ranks_started = -1) {
  if (ranks_started < 0) ranks_started = n;
  std::vector<pid_t> pids(ranks_started, -1);
  std::vector<int> up(ranks_started, -1), down(ranks_started, -1);
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < ranks_started; ++r) {
    int u[2], d[2];
    if (pipe(u) != 0 || pipe(d) != 0) std::abort();
    const pid_t pid = fork();
    if (pid == 0) {
      close(u[0]);
      close(d[1]);
      int code = 3;
      try {
        std::string id(kNcclUniqueIdBytes, '\0');
        if (r == 0) {
          id = NewNcclUniqueId();
          if (!WriteAll(u[1], id.data(), id.size())) _exit(4);
        } else if (!ReadAll(d[0], id.data(), id.size(), int(timeout_s * 1000))) {
          _exit(5);
        }
        code = body(r, id);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: uncaught exception: %s\n", r, e.what());
        code = 3;
      }
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(code);
    }
    close(u[1]);
    close(d[0]);
    pids[r] = pid;
    up[r] = u[0];
    down[r] = d[1];
  }
  std::string id(kNcclUniqueIdBytes, '\0');
  if (ReadAll(up[0], id.data(), id.size(), int(timeout_s * 1000))) {
    for (int r = 1; r < ranks_started; ++r) WriteAll(down[r], id.data(), id.size());
  }
  std::vector<int> codes(ranks_started, -1);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int left = ranks_started;
  while (left > 0 && std::chrono::steady_clock::now() < end) {
    for (int r = 0; r < ranks_started; ++r) {
      if (pids[r] < 0) continue;
      int status = 0;
      if (waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        codes[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pids[r] = -1;
        --left;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int r = 0; r < ranks_started; ++r) {
    if (pids[r] > 0) {
      kill(pids[r], SIGKILL);
      waitpid(pids[r], nullptr, 0);
    }
    close(up[r]);
    close(down[r]);
  }
  return codes;
}

// CUDA devices, counted in a child process so the parent stays CUDA-free.
// 0 with `why` set when there is none (any CUDA error means "no GPU").
int DeviceCount(std::string* why) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    char msg[256];
    std::snprintf(msg, sizeof msg, "%d %s", err == cudaSuccess ? n : 0,
                  err == cudaSuccess ? (n == 0 ? "CUDA runtime reports no devices" : "ok")
                                     : (std::string("cudaGetDeviceCount: ") + cudaGetErrorName(err) +
                                        ": " + cudaGetErrorString(err)).c_str());
    WriteAll(fds[1], msg, std::strlen(msg) + 1);
    _exit(0);
  }
  close(fds[1]);
  char buf[256] = {0};
  size_t got = 0;
  while (got < sizeof buf - 1) {
    pollfd pfd{fds[0], POLLIN, 0};
    if (poll(&pfd, 1, 30000) <= 0) break;
    const ssize_t r = read(fds[0], buf + got, sizeof buf - 1 - got);
    if (r <= 0) break;
    got += size_t(r);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int n = 0;
  char text[256] = {0};
  if (std::sscanf(buf, "%d %255[^\n]", &n, text) < 1) {
    if (why) *why = "device probe process failed";
    return 0;
  }
  if (why) *why = text;
  return n;
}

struct Probe {
  int count = 0;
  std::string why;
};
const Probe& Devices() {
  static const Probe probe = [] {
    Probe p;
    p.count = DeviceCount(&p.why);
    return p;
  }();
  return probe;
}

#define SKIP_WITHOUT_DEVICES(k)                                                              \
  do {                                                                                       \
    if (Devices().count == 0) GTEST_SKIP() << "no CUDA device: " << Devices().why;           \
    if (Devices().count < (k))                                                               \
      GTEST_SKIP() << "needs " << (k) << " CUDA devices (NCCL runs one rank per device), "   \
                   << "found " << Devices().count;                                           \
  } while (0)

std::vector<PeerInfo> Peers(int n) {
  std::vector<PeerInfo> peers(n);
  for (int i = 0; i < n; ++i) {
    peers[i].rank = i;
    peers[i].host = "host-" + std::to_string(i);
    peers[i].worker_id = "w-" + std::to_string(i);
  }
  return peers;
}

// ---- reference ---------------------------------------------------------------

// Rank r's input element i, in [-1, 1), representable in fp16.
float Input(int rank, size_t i, uint32_t seed) {
  uint64_t x = (uint64_t(seed) << 32) ^ (uint64_t(rank) * 0x9E3779B97F4A7C15ull) ^ (i * 0xBF58476D1CE4E5B9ull);
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  const int q = int(x % 2048) - 1024;  // multiples of 1/1024: exact in fp16
  return float(q) / 1024.0f;
}

void FillInput(void* buf, size_t count, DType dtype, int rank, uint32_t seed) {
  for (size_t i = 0; i < count; ++i) {
    const float v = Input(rank, i, seed);
    if (dtype == DType::kF32) static_cast<float*>(buf)[i] = v;
    else static_cast<half_bits*>(buf)[i] = FloatToHalf(v);
  }
}

// Compares with the fp64 sum (or average) of all ranks' inputs. fp32: the
// sum of n inputs is exact; fp16: NCCL rounds in fp16 at each step, so allow
// n-1 roundings (plus the pre-multiplication of ncclAvg).
int CheckResult(const void* buf, size_t count, DType dtype, ReduceOp op, int n, uint32_t seed,
                const char* what) {
  for (size_t i = 0; i < count; ++i) {
    double ref = 0;
    for (int r = 0; r < n; ++r) ref += Input(r, i, seed);
    if (op == ReduceOp::kAvg) ref /= n;
    const double got = dtype == DType::kF32 ? static_cast<const float*>(buf)[i]
                                            : HalfToFloat(static_cast<const half_bits*>(buf)[i]);
    const double tol = dtype == DType::kF32 ? 1e-6 * std::max(1.0, std::fabs(ref))
                                            : (n + 1) * std::ldexp(std::max(1.0, std::fabs(ref)), -10);
    COMM_CHECK(std::isfinite(got) && std::fabs(got - ref) <= tol,
                "%s %s %s count %zu: element %zu = %.8g, expected %.8g", what, DTypeName(dtype),
                ReduceOpName(op), count, i, got, ref);
  }
  return 0;
}

// Host-pointer, device-pointer and enqueue/Wait allreduce, broadcast and
// barrier on world `n` (one rank per device).
int CollectivesBody(int rank, const std::string& id, int n) {
  auto comm = MakeNcclCommunicator(rank, n, id, rank, Peers(n), Deadline::AfterSeconds(60));
  COMM_CHECK(comm->rank() == rank && comm->world_size() == n, "rank/world");
  COMM_CHECK(std::string(comm->backend()) == "nccl", "backend %s", comm->backend());
  const auto d = [] { return Deadline::AfterSeconds(60); };
  uint32_t seed = 1;
  for (DType dtype : {DType::kF32, DType::kF16}) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg}) {
      // 0, 1, odd, and more than one 32 MiB staging chunk in fp32.
      for (size_t count : {size_t(0), size_t(1), size_t(1000003), (size_t(9) << 20) + 5}) {
        const size_t bytes = count * DTypeSize(dtype);
        ++seed;
        // Host pointers, staged.
        std::vector<char> host(bytes + 1);
        FillInput(host.data(), count, dtype, rank, seed);
        comm->AllReduce(host.data(), count, dtype, op, d());
        if (CheckResult(host.data(), count, dtype, op, n, seed, "host")) return 1;
        if (count == 0) continue;
        // Device pointers: blocking, then two enqueued on different buffers + Wait.
        void* a = comm->DeviceAlloc(bytes);
        void* b = comm->DeviceAlloc(bytes);
        FillInput(host.data(), count, dtype, rank, seed);
        comm->CopyToDevice(a, host.data(), bytes, d());
        comm->AllReduceDevice(a, count, dtype, op, nullptr, d());
        std::fill(host.begin(), host.end(), 0x7f);
        comm->CopyToHost(host.data(), a, bytes, d());
        if (CheckResult(host.data(), count, dtype, op, n, seed, "device")) return 1;

        FillInput(host.data(), count, dtype, rank, seed);
        comm->CopyToDevice(a, host.data(), bytes, d());
        FillInput(host.data(), count, dtype, rank, seed + 1000);
        comm->CopyToDevice(b, host.data(), bytes, d());
        comm->EnqueueAllReduce(a, count, dtype, op, nullptr, nullptr, d());
        comm->EnqueueAllReduce(b, count, dtype, op, nullptr, nullptr, d());
        COMM_CHECK(comm->Pending() >= 2, "pending %zu", comm->Pending());
        comm->Wait(d());
        COMM_CHECK(comm->Pending() == 0, "pending %zu after Wait", comm->Pending());
        comm->CopyToHost(host.data(), a, bytes, d());
        if (CheckResult(host.data(), count, dtype, op, n, seed, "enqueue a")) return 1;
        comm->CopyToHost(host.data(), b, bytes, d());
        if (CheckResult(host.data(), count, dtype, op, n, seed + 1000, "enqueue b")) return 1;
        comm->DeviceFree(a);
        comm->DeviceFree(b);
      }
    }
  }
  // An event recorded on another stream gates the enqueued allreduce.
  {
    const size_t count = 4096;
    std::vector<float> host(count);
    FillInput(host.data(), count, DType::kF32, rank, 77);
    void* a = comm->DeviceAlloc(count * 4);
    cudaStream_t s = nullptr;
    cudaEvent_t ready = nullptr;
    COMM_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess, "stream");
    COMM_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming) == cudaSuccess, "event");
    COMM_CHECK(cudaMemcpyAsync(a, host.data(), count * 4, cudaMemcpyHostToDevice, s) == cudaSuccess, "copy");
    COMM_CHECK(cudaEventRecord(ready, s) == cudaSuccess, "record");
    comm->EnqueueAllReduce(a, count, DType::kF32, ReduceOp::kSum, nullptr, ready, d());
    comm->Wait(d());
    std::fill(host.begin(), host.end(), -99.0f);
    comm->CopyToHost(host.data(), a, count * 4, d());
    if (CheckResult(host.data(), count, DType::kF32, ReduceOp::kSum, n, 77, "ready event")) return 1;
    comm->DeviceFree(a);
    cudaEventDestroy(ready);
    cudaStreamDestroy(s);
  }
  // fp16 average of values whose sum overflows fp16 (max 65504).
  if (n > 1) {
    const size_t count = 1024;
    std::vector<half_bits> h(count, FloatToHalf(60000.0f));
    comm->AllReduce(h.data(), count, DType::kF16, ReduceOp::kAvg, d());
    for (size_t i = 0; i < count; ++i) {
      COMM_CHECK(HalfToFloat(h[i]) == 60000.0f, "fp16 avg element %zu = %g", i, HalfToFloat(h[i]));
    }
  }
  for (int root = 0; root < n; ++root) {
    for (size_t bytes : {size_t(0), size_t(1), size_t(3000001)}) {
      std::vector<uint8_t> buf(bytes);
      for (size_t i = 0; i < bytes; ++i) buf[i] = rank == root ? uint8_t(i * 31 + root) : 0xEE;
      comm->Broadcast(buf.data(), bytes, root, d());
      for (size_t i = 0; i < bytes; ++i) {
        COMM_CHECK(buf[i] == uint8_t(i * 31 + root), "broadcast root %d byte %zu", root, i);
      }
    }
  }
  for (int i = 0; i < 10; ++i) comm->Barrier(d());
  return 0;
}

// ---- tests -------------------------------------------------------------------

TEST(NcclCommunicator, ArgumentsAreCheckedBeforeTheDevice) {
  const std::string id(kNcclUniqueIdBytes, '\0');
  const auto expect_invalid = [](const std::function<void()>& f, const char* needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const Deadline d = Deadline::AfterSeconds(1);
  expect_invalid([&] { MakeNcclCommunicator(0, 2, "short", 0, Peers(2), d); }, "unique id");
  expect_invalid([&] { MakeNcclCommunicator(2, 2, id, 0, Peers(2), d); }, "out of range");
  expect_invalid([&] { MakeNcclCommunicator(0, 3, id, 0, Peers(2), d); }, "peers");
  expect_invalid([&] { MakeNcclCommunicator(0, 2, id, -1, Peers(2), d); }, "device");
  auto shuffled = Peers(2);
  std::swap(shuffled[0], shuffled[1]);
  expect_invalid([&] { MakeNcclCommunicator(0, 2, id, 0, shuffled, d); }, "rank order");
}

TEST(NcclCommunicator, WorldOneCollectivesMatchCpuReference) {
  SKIP_WITHOUT_DEVICES(1);
  const auto codes = RunRanks(1, 300, [](int rank, const std::string& id) {
    return CollectivesBody(rank, id, 1);
  });
  EXPECT_EQ(codes, (std::vector<int>{0}));
}

TEST(NcclCommunicator, WorldTwoCollectivesMatchCpuReference) {
  SKIP_WITHOUT_DEVICES(2);
  const auto codes = RunRanks(2, 300, [](int rank, const std::string& id) {
    return CollectivesBody(rank, id, 2);
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
}

// Rank 1 of a world of 2 never joins: rank 0's init must end at its deadline
// with kDeadlineExceeded, naming itself and listing rank 1, and leave the
// process able to exit (ncclCommAbort).
TEST(NcclCommunicator, InitTimesOutNamingThePeers) {
  SKIP_WITHOUT_DEVICES(1);
  const auto codes = RunRanks(2, 120, [](int rank, const std::string& id) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      MakeNcclCommunicator(rank, 2, id, 0, Peers(2), Deadline::AfterSeconds(3));
      COMM_CHECK(false, "init of a world of 2 with rank 1 missing succeeded");
    } catch (const Error& e) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const std::string m = e.what();
      std::fprintf(stderr, "rank 0 got, after %.1f s: %s\n", s, e.what());
      COMM_CHECK(e.code() == ErrorCode::kDeadlineExceeded, "code %s: %s", ErrorCodeName(e.code()), e.what());
      COMM_CHECK(m.find("did not complete within") != std::string::npos, "%s", e.what());
      COMM_CHECK(m.find("on rank 0 (host host-0") != std::string::npos, "%s", e.what());
      COMM_CHECK(m.find("rank 1 (host host-1, worker w-1)") != std::string::npos, "%s", e.what());
      COMM_CHECK(s >= 2.5 && s < 30, "took %.1f s for a 3 s deadline", s);
    }
    return 0;
  }, /*ranks_started=*/1);
  EXPECT_EQ(codes, (std::vector<int>{0}));
}

// The job's abort flag cuts a hanging init short with kAborted.
TEST(NcclCommunicator, AbortFlagEndsInit) {
  SKIP_WITHOUT_DEVICES(1);
  const auto codes = RunRanks(2, 120, [](int rank, const std::string& id) {
    std::atomic<bool> abort{false};
    std::thread setter([&] {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      abort.store(true);
    });
    int code = 0;
    try {
      MakeNcclCommunicator(rank, 2, id, 0, Peers(2), Deadline::AfterSeconds(60, &abort));
      std::fprintf(stderr, "init with rank 1 missing succeeded\n");
      code = 1;
    } catch (const Error& e) {
      std::fprintf(stderr, "rank 0 got: %s\n", e.what());
      if (e.code() != ErrorCode::kAborted || std::string(e.what()).find("rank 1") == std::string::npos) {
        code = 1;
      }
    }
    setter.join();
    return code;
  }, /*ranks_started=*/1);
  EXPECT_EQ(codes, (std::vector<int>{0}));
}

}  // namespace
}  // namespace dtrain::comm
