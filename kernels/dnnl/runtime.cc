#include "kernels/dnnl/runtime.h"

#include <omp.h>

#include <cstdlib>
#include <utility>

#include "common/error.h"

namespace dtrain::onednn {
namespace {

struct Runtime {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};
Runtime& Rt() {
  static Runtime rt;
  return rt;
}

}  // namespace

dnnl::engine& Engine() { return Rt().engine; }
dnnl::stream& Stream() { return Rt().stream; }

Desc Nchw(int n, int c, int h, int w) {
  return Desc({n, c, h, w}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nchw);
}

std::string RuntimeInfo() {
  const dnnl_version_t* v = dnnl::version();
  const char* rt = v->cpu_runtime == DNNL_RUNTIME_OMP          ? "OMP"
                   : v->cpu_runtime == DNNL_RUNTIME_SEQ        ? "SEQ"
                   : v->cpu_runtime == DNNL_RUNTIME_TBB        ? "TBB"
                   : v->cpu_runtime == DNNL_RUNTIME_THREADPOOL ? "THREADPOOL"
                                                               : "other";
  const char* isa = "sse41 or older";
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " (cpu runtime " + rt + ", isa " + isa + ")";
}

dnnl::memory Mem(const Desc& d, const void* p) {
  return dnnl::memory(d, Engine(), const_cast<void*>(p));
}

void Execute(dnnl::primitive& p, std::unordered_map<int, dnnl::memory> args,
             const Desc& scratch_d, Buffer& scratch) {
  if (scratch_d.get_size() > 0)
    args.emplace(DNNL_ARG_SCRATCHPAD, Mem(scratch_d, scratch.Get(scratch_d.get_size())));
  p.execute(Stream(), args);
  Stream().wait();
}

ThreadScope::ThreadScope(int n) : prev_(omp_get_max_threads()), n_(n) {
  if (prev_ != n_) omp_set_num_threads(n_);
}

ThreadScope::~ThreadScope() {
  if (prev_ != n_) omp_set_num_threads(prev_);
}

Buffer::~Buffer() { std::free(p_); }

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(bytes_, o.bytes_);
  return *this;
}

float* Buffer::Get(size_t bytes) {
  if (bytes > bytes_) {
    std::free(p_);
    p_ = nullptr;
    bytes_ = 0;
    const size_t want = (bytes + 63) / 64 * 64;
    p_ = std::aligned_alloc(64, want);
    if (!p_)
      Fail(ErrorCode::kInternal,
           "onednn: out of memory for a " + std::to_string(want) + "-byte buffer");
    bytes_ = want;
  }
  return static_cast<float*>(p_);
}

int CheckedThreads(const char* op, int threads) {
  if (threads < 1)
    Fail(ErrorCode::kInvalidArgument,
         std::string(op) + ": threads must be >= 1, got " + std::to_string(threads));
  return threads;
}

dnnl::primitive_attr ScratchpadAttr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

}  // namespace dtrain::onednn
