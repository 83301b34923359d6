// The device-side tensor table of the multi-tensor kernels (batched norms,
// fused optimizer update). All parameters live in ONE flat buffer (grads and
// momentum share its layout); tensor t is [offset, offset + size). Each
// tensor is cut into chunks of at most chunk_elems elements (a tensor of size
// 0 still gets one, empty, chunk); a multi-tensor kernel runs one block per
// chunk. Built and uploaded by TensorTable (tensor_table.h); kernels take the
// plain view below by value. C++17-clean: included by .cu files.
#pragma once

#include <cstdint>

namespace dtrain::cuda {

constexpr int64_t kDefaultChunkElems = 16384;

struct DeviceTensor {
  int64_t offset = 0;  // first element in the flat buffers
  int64_t size = 0;    // elements
  int32_t first_chunk = 0;
  int32_t num_chunks = 0;
  int32_t no_decay = 0;  // 1: no weight decay, no LARS trust ratio (BN, biases)
  int32_t reserved = 0;
};

struct TensorChunk {
  int64_t begin = 0;  // absolute element range [begin, end) in the flat buffers
  int64_t end = 0;
  int32_t tensor = 0;  // index into the tensor array
  int32_t reserved = 0;
};

// Device pointers owned by a TensorTable. partials (2 doubles per chunk) and
// counters (one per tensor, zero between launches) are the workspace of the
// batched norm kernel: at most one norm launch per table may be in flight.
struct TensorTableView {
  const DeviceTensor* tensors = nullptr;
  const TensorChunk* chunks = nullptr;
  double* partials = nullptr;
  unsigned int* counters = nullptr;
  int32_t num_tensors = 0;
  int32_t num_chunks = 0;
};

}  // namespace dtrain::cuda
