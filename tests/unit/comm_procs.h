// Test harness for the comm unit tests: runs a body in N real forked
// processes. Each child creates its own UcxWorker after fork (loopback
// devices), sends its address to the parent through a pipe and receives
// everyone's; then it runs body(rank, worker, peers) and exits with the body's
// return value (3 on an exception, printed to stderr). The parent never hangs:
// children still running at the timeout are killed (their code is then -1).
// Peers are named host "h<rank>" (so endpoints use UCX peer-failure mode), or
// all host "h0" with RunOptions.one_host (the worker's same-host mode, by
// default NONE: shared memory + CMA), or RunOptions.hosts[rank] when given
// (a simulated multi-host layout); worker "w<rank>". RunOptions.parent runs
// in the parent once every child has its peers, while they run (to kill one).
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "worker/comm/communicator.h"
#include "worker/comm/ucx_worker.h"

namespace dtrain::comm::testing {

using RankBody = std::function<int(int rank, UcxWorker& worker, std::vector<PeerInfo> peers)>;

struct RunOptions {
  bool one_host = false;
  std::vector<std::string> hosts;  // per rank; overrides one_host when not empty
  std::function<void(const std::vector<pid_t>& pids)> parent;
};

inline bool WriteAll(int fd, const void* p, size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) return false;
    c += w;
    n -= size_t(w);
  }
  return true;
}

// Reads exactly n bytes, giving up after timeout_ms in total.
inline bool ReadAll(int fd, void* p, size_t n, int timeout_ms) {
  auto* c = static_cast<char*>(p);
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (n > 0) {
    int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                       end - std::chrono::steady_clock::now()).count());
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, left) <= 0) return false;
    ssize_t r = read(fd, c, n);
    if (r <= 0) return false;
    c += r;
    n -= size_t(r);
  }
  return true;
}

inline bool SendString(int fd, const std::string& s) {
  uint32_t len = uint32_t(s.size());
  return WriteAll(fd, &len, 4) && WriteAll(fd, s.data(), s.size());
}

inline bool RecvString(int fd, std::string* s, int timeout_ms) {
  uint32_t len = 0;
  if (!ReadAll(fd, &len, 4, timeout_ms)) return false;
  s->resize(len);
  return ReadAll(fd, s->data(), len, timeout_ms);
}

[[noreturn]] inline void ChildMain(int rank, int n, int up, int down, const RankBody& body,
                                   const RunOptions& options) {
  int code = 3;
  try {
    DefaultUcxToLoopback();
    UcxWorker worker;
    if (!SendString(up, worker.Address())) _exit(4);
    std::vector<PeerInfo> peers(n);
    for (int i = 0; i < n; ++i) {
      peers[i].rank = i;
      peers[i].host = !options.hosts.empty() ? options.hosts[i]
                                             : "h" + std::to_string(options.one_host ? 0 : i);
      peers[i].worker_id = "w" + std::to_string(i);
      if (!RecvString(down, &peers[i].ucx_address, 30000)) _exit(5);
    }
    code = body(rank, worker, std::move(peers));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: uncaught exception: %s\n", rank, e.what());
    code = 3;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}

// Returns each rank's exit code: the body's return value, 128+signal if it was
// killed by a signal, -1 if it was still running at the timeout.
inline std::vector<int> RunRanks(int n, double timeout_s, const RankBody& body,
                                 const RunOptions& options = {}) {
  std::vector<pid_t> pids(n, -1);
  std::vector<int> up(n, -1), down(n, -1);
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < n; ++r) {
    int u[2], d[2];
    if (pipe(u) != 0 || pipe(d) != 0) std::abort();
    pid_t pid = fork();
    if (pid == 0) {
      close(u[0]);
      close(d[1]);
      for (int i = 0; i < r; ++i) { close(up[i]); close(down[i]); }
      ChildMain(r, n, u[1], d[0], body, options);
    }
    close(u[1]);
    close(d[0]);
    pids[r] = pid;
    up[r] = u[0];
    down[r] = d[1];
  }
  std::vector<std::string> addrs(n);
  bool ok = true;
  for (int r = 0; r < n && ok; ++r) ok = RecvString(up[r], &addrs[r], 30000);
  for (int r = 0; r < n && ok; ++r) {
    for (int i = 0; i < n && ok; ++i) ok = SendString(down[r], addrs[i]);
  }
  if (!ok) std::fprintf(stderr, "RunRanks: address exchange failed\n");
  for (int r = 0; r < n; ++r) { close(up[r]); close(down[r]); }
  if (ok && options.parent) options.parent(pids);

  std::vector<int> codes(n, -1);
  int left = n;
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(ok ? timeout_s : 0.0));
  while (left > 0 && std::chrono::steady_clock::now() < end) {
    for (int r = 0; r < n; ++r) {
      if (pids[r] < 0) continue;
      int st = 0;
      if (waitpid(pids[r], &st, WNOHANG) == pids[r]) {
        codes[r] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        pids[r] = -1;
        --left;
      }
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int r = 0; r < n; ++r) {
    if (pids[r] < 0) continue;
    std::fprintf(stderr, "RunRanks: rank %d still running after %.1f s: killed\n", r, timeout_s);
    kill(pids[r], SIGKILL);
    waitpid(pids[r], nullptr, 0);
  }
  return codes;
}

// Ends this rank's process without a word, UCX objects and all, after
// letting UCX flush its last acknowledgments for 200 ms (a peer's rendezvous
// send completes only when they arrive): a dead peer, as the tests need one.
[[noreturn]] inline void DieSilently(UcxWorker& worker) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (std::chrono::steady_clock::now() < until) worker.Progress();
  _exit(0);
}

// Deterministic test value in [-1, 1) from (rank, index).
inline double Value(int rank, size_t i) {
  uint64_t x = (uint64_t(rank) + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t(i) * 0xBF58476D1CE4E5B9ull);
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return double(x >> 11) / double(1ull << 53) * 2.0 - 1.0;
}

// Child-side check: prints and returns false when `cond` does not hold.
#define COMM_CHECK(cond, ...)                                        \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                             \
      std::fprintf(stderr, "\n");                                    \
      return 1;                                                      \
    }                                                                \
  } while (0)

}  // namespace dtrain::comm::testing
