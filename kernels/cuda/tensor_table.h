// TensorTable: uploads a tensor table (kernels/cpu/optimizer_update.h's
// TensorSlice list, the same one the CPU update uses) to the device, cut into
// chunks (tensor_chunks.h), with the batched norm kernel's workspace. Build it
// once per model: the constructor allocates and copies synchronously. Tensors
// must not overlap (the fused update writes in place); offsets and sizes must
// be non-negative; chunk_elems in [1, 2^30]. Bad tables throw
// kInvalidArgument; CUDA failures throw kInternal.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/optimizer_update.h"
#include "kernels/cuda/tensor_chunks.h"

namespace dtrain::cuda {

class TensorTable {
 public:
  explicit TensorTable(std::span<const cpu::TensorSlice> tensors, int64_t chunk_elems = kDefaultChunkElems);
  ~TensorTable();
  TensorTable(const TensorTable&) = delete;
  TensorTable& operator=(const TensorTable&) = delete;

  const TensorTableView& view() const { return view_; }
  int num_tensors() const { return view_.num_tensors; }
  int num_chunks() const { return view_.num_chunks; }
  // Elements the flat buffers need: max(offset + size).
  int64_t buffer_elems() const { return buffer_elems_; }
  // Host copies of what was uploaded (for tests and diagnostics).
  const std::vector<DeviceTensor>& host_tensors() const { return tensors_; }
  const std::vector<TensorChunk>& host_chunks() const { return chunks_; }

  // Host-side construction of the chunk list (no CUDA); throws as above.
  static void BuildChunks(std::span<const cpu::TensorSlice> tensors, int64_t chunk_elems,
                          std::vector<DeviceTensor>* out_tensors, std::vector<TensorChunk>* out_chunks);

 private:
  void Release();

  std::vector<DeviceTensor> tensors_;
  std::vector<TensorChunk> chunks_;
  int64_t buffer_elems_ = 0;
  TensorTableView view_;
};

}  // namespace dtrain::cuda
