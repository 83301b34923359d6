#include "kernels/cuda/tensor_table.h"

#include <algorithm>
#include <limits>
#include <string>

#include "common/error.h"
#include "kernels/cuda/check.h"

namespace dtrain::cuda {
namespace {

template <typename T>
T* DeviceAlloc(size_t count) {
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
  return static_cast<T*>(p);
}

}  // namespace

void TensorTable::BuildChunks(std::span<const cpu::TensorSlice> tensors, int64_t chunk_elems,
                              std::vector<DeviceTensor>* out_tensors, std::vector<TensorChunk>* out_chunks) {
  if (chunk_elems < 1 || chunk_elems > (int64_t{1} << 30))
    Fail(ErrorCode::kInvalidArgument, "tensor table: chunk_elems must be in [1, 2^30], got " +
                                          std::to_string(chunk_elems));
  if (tensors.size() > size_t(std::numeric_limits<int32_t>::max()))
    Fail(ErrorCode::kInvalidArgument, "tensor table: too many tensors");
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [offset, end) of non-empty tensors
  out_tensors->clear();
  out_chunks->clear();
  for (size_t t = 0; t < tensors.size(); ++t) {
    const cpu::TensorSlice& s = tensors[t];
    if (s.offset < 0 || s.size < 0 || s.size > std::numeric_limits<int64_t>::max() - s.offset)
      Fail(ErrorCode::kInvalidArgument, "tensor table: tensor " + std::to_string(t) + " has offset " +
                                            std::to_string(s.offset) + " and size " + std::to_string(s.size) +
                                            " (both must be >= 0)");
    DeviceTensor d;
    d.offset = s.offset;
    d.size = s.size;
    d.no_decay = s.no_decay ? 1 : 0;
    d.first_chunk = static_cast<int32_t>(out_chunks->size());
    const int64_t n = std::max<int64_t>(1, (s.size + chunk_elems - 1) / chunk_elems);
    if (int64_t(out_chunks->size()) + n > std::numeric_limits<int32_t>::max())
      Fail(ErrorCode::kInvalidArgument, "tensor table: more than 2^31 chunks; raise chunk_elems");
    d.num_chunks = static_cast<int32_t>(n);
    for (int64_t k = 0; k < n; ++k) {
      TensorChunk c;
      c.begin = s.offset + k * chunk_elems;
      c.end = std::min(c.begin + chunk_elems, s.offset + s.size);
      if (s.size == 0) c.end = c.begin;
      c.tensor = static_cast<int32_t>(t);
      out_chunks->push_back(c);
    }
    out_tensors->push_back(d);
    if (s.size > 0) ranges.emplace_back(s.offset, s.offset + s.size);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      Fail(ErrorCode::kInvalidArgument, "tensor table: tensors overlap at element " +
                                            std::to_string(ranges[i].first));
}

TensorTable::TensorTable(std::span<const cpu::TensorSlice> tensors, int64_t chunk_elems) {
  BuildChunks(tensors, chunk_elems, &tensors_, &chunks_);
  for (const DeviceTensor& t : tensors_) buffer_elems_ = std::max(buffer_elems_, t.offset + t.size);
  view_.num_tensors = static_cast<int32_t>(tensors_.size());
  view_.num_chunks = static_cast<int32_t>(chunks_.size());
  if (tensors_.empty()) return;
  try {
    DeviceTensor* dt = DeviceAlloc<DeviceTensor>(tensors_.size());
    view_.tensors = dt;
    TensorChunk* dc = DeviceAlloc<TensorChunk>(chunks_.size());
    view_.chunks = dc;
    view_.partials = DeviceAlloc<double>(chunks_.size() * 2);
    view_.counters = DeviceAlloc<unsigned int>(tensors_.size());
    CUDA_CHECK(cudaMemcpy(dt, tensors_.data(), tensors_.size() * sizeof(DeviceTensor), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dc, chunks_.data(), chunks_.size() * sizeof(TensorChunk), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(view_.counters, 0, tensors_.size() * sizeof(unsigned int)));
  } catch (...) {
    Release();
    throw;
  }
}

TensorTable::~TensorTable() { Release(); }

void TensorTable::Release() {
  // Errors on free are ignored: this runs in destructors and unwinding.
  cudaFree(const_cast<DeviceTensor*>(view_.tensors));
  cudaFree(const_cast<TensorChunk*>(view_.chunks));
  cudaFree(view_.partials);
  cudaFree(view_.counters);
  view_.tensors = nullptr;
  view_.chunks = nullptr;
  view_.partials = nullptr;
  view_.counters = nullptr;
}

}  // namespace dtrain::cuda
