// What every oneDNN op of the CPU engine shares: the process's one CPU engine
// and in-order stream, the per-call OpenMP thread count, 64-byte aligned
// buffers, and the plain layouts at the model's edges.
//
// Threads: Debian builds oneDNN with the OpenMP runtime; an op object runs
// each call with its `threads` OpenMP threads on the calling thread
// (ThreadScope sets the count for the call and restores it after). Op objects
// are not safe for concurrent calls (one per engine thread).
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>

#include <oneapi/dnnl/dnnl.hpp>

namespace dtrain::onednn {

using Desc = dnnl::memory::desc;

dnnl::engine& Engine();
dnnl::stream& Stream();

// Plain fp32 NCHW layout of [n, c, h, w].
Desc Nchw(int n, int c, int h, int w);
// "oneDNN 2.6.3 (cpu runtime OMP, isa avx2)": what this process runs on.
std::string RuntimeInfo();

// A memory object over caller-owned storage (no copy).
dnnl::memory Mem(const Desc& d, const void* p);
// Executes p with args (plus a user scratchpad of scratch_d from scratch)
// and waits for it.
class Buffer;
void Execute(dnnl::primitive& p, std::unordered_map<int, dnnl::memory> args,
             const Desc& scratch_d, Buffer& scratch);

// Runs the calling thread's OpenMP regions (oneDNN's) on n threads for a scope.
class ThreadScope {
 public:
  explicit ThreadScope(int n);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int prev_, n_;
};

// A grow-only, 64-byte aligned buffer (oneDNN's blocked kernels like it).
// Get(bytes) keeps the contents when no growth is needed.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept;
  float* Get(size_t bytes);
  float* data() const { return static_cast<float*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// threads, or kInvalidArgument naming `op` when it is below 1 (op constructors).
int CheckedThreads(const char* op, int threads);

// Attributes every op uses: a user-provided scratchpad.
dnnl::primitive_attr ScratchpadAttr();

}  // namespace dtrain::onednn
