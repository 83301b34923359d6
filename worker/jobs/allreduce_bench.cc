#include "worker/jobs/allreduce_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "common/error.h"
#include "common/half.h"
#ifdef DTRAIN_HAVE_NCCL
#include "worker/comm/nccl_communicator.h"  // no CUDA or NCCL headers
#endif

namespace dtrain::jobs {
namespace {

using comm::DType;

// Bytes moved per size at most, to bound a sweep's time (warmup and timed).
constexpr int64_t kTimedBytesBudget = int64_t(1) << 30;
constexpr int64_t kWarmupBytesBudget = int64_t(256) << 20;

// Rank r's element i is ((i * 13 + r * 7) mod k): small integers whose sum over
// n ranks is at most (k-1) * n <= 2048, exact in fp16. The pattern repeats with
// period k, so the reference is a table of k sums.
int PatternPeriod(int n) { return std::clamp(2048 / std::max(n, 1), 2, 16); }
int Pattern(int64_t i, int r, int k) { return int((i * 13 + int64_t(r) * 7) % k); }

void Fill(void* buf, int64_t count, DType dtype, int rank, int k) {
  if (dtype == DType::kF32) {
    auto* p = static_cast<float*>(buf);
    for (int64_t i = 0; i < count; ++i) p[i] = float(Pattern(i, rank, k));
  } else {
    auto* p = static_cast<half_bits*>(buf);
    for (int64_t i = 0; i < count; ++i) p[i] = FloatToHalf(float(Pattern(i, rank, k)));
  }
}

int64_t CountMismatches(const void* buf, int64_t count, DType dtype, int n, int k) {
  std::vector<float> expect(k, 0.0f);
  for (int j = 0; j < k; ++j) {
    for (int r = 0; r < n; ++r) expect[j] += float(Pattern(j, r, k));
  }
  int64_t bad = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float e = expect[i % k];
    const float got = dtype == DType::kF32 ? static_cast<const float*>(buf)[i]
                                           : HalfToFloat(static_cast<const half_bits*>(buf)[i]);
    if (got != e) ++bad;
  }
  return bad;
}

std::string HumanBytes(int64_t b) {
  char s[32];
  if (b >= (int64_t(1) << 20)) std::snprintf(s, sizeof s, "%lld MiB", (long long)(b >> 20));
  else if (b >= 1024) std::snprintf(s, sizeof s, "%lld KiB", (long long)(b >> 10));
  else std::snprintf(s, sizeof s, "%lld B", (long long)b);
  return s;
}

// Where the swept buffer lives. Fill and verification always work on the
// host view; Load/Store move it to and from the buffer the collective runs on.
class SweepBuffer {
 public:
  virtual ~SweepBuffer() = default;
  virtual void* host() = 0;
  virtual void Load(size_t bytes) = 0;   // host view -> buffer
  virtual void Store(size_t bytes) = 0;  // buffer -> host view
  // `times` in-place sum-allreduces of the first `count` elements, back to
  // back; returns once all have completed.
  virtual void AllReduce(size_t count, DType dtype, int times) = 0;
};

// Host memory reduced by comm.AllReduce (UCX, local, ...).
class HostSweepBuffer final : public SweepBuffer {
 public:
  HostSweepBuffer(comm::Communicator& c, size_t bytes, std::function<Deadline()> deadline)
      : comm_(c), deadline_(std::move(deadline)),
        buf_(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096), &std::free) {
    if (!buf_) Fail(ErrorCode::kInternal, "bench: out of memory for " + HumanBytes(int64_t(bytes)));
  }
  void* host() override { return buf_.get(); }
  void Load(size_t) override {}
  void Store(size_t) override {}
  void AllReduce(size_t count, DType dtype, int times) override {
    for (int i = 0; i < times; ++i) {
      comm_.AllReduce(buf_.get(), count, dtype, comm::ReduceOp::kSum, deadline_());
    }
  }

 private:
  comm::Communicator& comm_;
  std::function<Deadline()> deadline_;
  std::unique_ptr<void, decltype(&std::free)> buf_;
};

#ifdef DTRAIN_HAVE_NCCL
// Device memory (cudaMalloc) reduced on the GPU by NCCL: the timed
// iterations are enqueued back to back and waited for once, as nccl-tests
// does; one deadline covers the batch.
class NcclSweepBuffer final : public SweepBuffer {
 public:
  NcclSweepBuffer(comm::NcclCommunicator& c, size_t bytes, std::function<Deadline()> deadline)
      : comm_(c), deadline_(std::move(deadline)), host_(bytes) {
    dev_ = comm_.DeviceAlloc(bytes);
  }
  ~NcclSweepBuffer() override { comm_.DeviceFree(dev_); }
  void* host() override { return host_.data(); }
  void Load(size_t bytes) override { comm_.CopyToDevice(dev_, host_.data(), bytes, deadline_()); }
  void Store(size_t bytes) override { comm_.CopyToHost(host_.data(), dev_, bytes, deadline_()); }
  void AllReduce(size_t count, DType dtype, int times) override {
    const Deadline d = deadline_();
    for (int i = 0; i < times; ++i) {
      comm_.EnqueueAllReduce(dev_, count, dtype, comm::ReduceOp::kSum, nullptr, nullptr, d);
    }
    comm_.Wait(d);
  }

 private:
  comm::NcclCommunicator& comm_;
  std::function<Deadline()> deadline_;
  std::vector<char> host_;
  void* dev_ = nullptr;
};
#endif

std::unique_ptr<SweepBuffer> MakeSweepBuffer(comm::Communicator& c, size_t bytes,
                                             std::function<Deadline()> deadline) {
#ifdef DTRAIN_HAVE_NCCL
  if (auto* nccl = dynamic_cast<comm::NcclCommunicator*>(&c)) {
    return std::make_unique<NcclSweepBuffer>(*nccl, bytes, std::move(deadline));
  }
#endif
  return std::make_unique<HostSweepBuffer>(c, bytes, std::move(deadline));
}

}  // namespace

std::vector<BenchRowResult> RunAllreduceBench(
    comm::Communicator& comm, const BenchSpec& spec, DType dtype, double timeout_seconds,
    const std::atomic<bool>* abort,
    const std::function<void(const std::string&, int, int)>& progress) {
  const int64_t es = int64_t(comm::DTypeSize(dtype));
  if (spec.min_bytes < 1 || spec.max_bytes < spec.min_bytes) {
    Fail(ErrorCode::kInvalidArgument,
         "bench: need 1 <= min_bytes <= max_bytes, got min_bytes=" +
             std::to_string(spec.min_bytes) + " max_bytes=" + std::to_string(spec.max_bytes));
  }
  if (spec.iterations < 1 || spec.warmup < 0) {
    Fail(ErrorCode::kInvalidArgument, "bench: need iterations >= 1 and warmup >= 0, got " +
                                          std::to_string(spec.iterations) + " and " +
                                          std::to_string(spec.warmup));
  }
  if (timeout_seconds <= 0) Fail(ErrorCode::kInvalidArgument, "bench: timeout must be > 0");

  std::vector<int64_t> sizes;
  for (int64_t b = spec.min_bytes; b <= spec.max_bytes; b *= 2) {
    const int64_t rounded = std::max(es, b / es * es);
    if (sizes.empty() || sizes.back() != rounded) sizes.push_back(rounded);
  }

  const int n = comm.world_size(), rank = comm.rank();
  const int k = PatternPeriod(n);
  auto deadline = [timeout_seconds, abort] { return Deadline::AfterSeconds(timeout_seconds, abort); };
  // Host memory, or device memory when the communicator is NCCL.
  const std::unique_ptr<SweepBuffer> buf = MakeSweepBuffer(comm, size_t(sizes.back()), deadline);

  std::vector<BenchRowResult> rows;
  std::vector<float> shared(2 * n);
  for (size_t s = 0; s < sizes.size(); ++s) {
    const int64_t bytes = sizes[s], count = bytes / es;
    const int iters =
        int(std::min<int64_t>(spec.iterations, std::max<int64_t>(2, kTimedBytesBudget / bytes)));
    const int warmup = int(std::min<int64_t>(spec.warmup, std::max<int64_t>(1, kWarmupBytesBudget / bytes)));

    Fill(buf->host(), count, dtype, rank, k);
    buf->Load(size_t(bytes));
    buf->AllReduce(size_t(count), dtype, warmup);
    comm.Barrier(deadline());
    const auto t0 = std::chrono::steady_clock::now();
    buf->AllReduce(size_t(count), dtype, iters);
    const double my_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;

    Fill(buf->host(), count, dtype, rank, k);
    buf->Load(size_t(bytes));
    buf->AllReduce(size_t(count), dtype, 1);
    buf->Store(size_t(bytes));
    const int64_t bad = CountMismatches(buf->host(), count, dtype, n, k);

    // Slot r holds rank r's time, slot n + r its mismatch count: one sum-allreduce.
    std::fill(shared.begin(), shared.end(), 0.0f);
    shared[rank] = float(my_us);
    shared[n + rank] = float(bad);
    comm.AllReduce(shared.data(), shared.size(), DType::kF32, comm::ReduceOp::kSum, deadline());

    BenchRowResult row;
    row.bytes = bytes;
    row.count = count;
    row.dtype = comm::DTypeName(dtype);
    row.iterations = iters;
    row.time_us = *std::max_element(shared.begin(), shared.begin() + n);
    row.algbw_gbps = row.time_us > 0 ? double(bytes) / (row.time_us * 1e3) : 0.0;
    row.busbw_gbps = row.algbw_gbps * 2.0 * (n - 1) / n;  // nccl-tests: 0 for n = 1
    row.verified = std::all_of(shared.begin() + n, shared.end(), [](float f) { return f == 0; });
    rows.push_back(row);

    if (progress) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "%s %s: %.1f us, algbw %.2f GB/s, busbw %.2f GB/s, %s",
                    row.dtype.c_str(), HumanBytes(bytes).c_str(), row.time_us, row.algbw_gbps,
                    row.busbw_gbps, row.verified ? "verified" : "WRONG RESULT");
      progress(msg, int(s + 1), int(sizes.size()));
    }
  }
  return rows;
}

}  // namespace dtrain::jobs
