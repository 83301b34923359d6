// Batched per-tensor weight and gradient L2 norms in one launch (contract in
// batched_norms.h).
#include "kernels/cuda/batched_norms.h"

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/check.h"
#include "kernels/cuda/multi_tensor.cuh"

namespace dtrain::cuda {
namespace {

using detail::BlockSum;
using detail::kMultiTensorThreads;
using detail::LoadFloat;

// The scale is grad_scale_dev ? *grad_scale_dev : grad_scale.
template <typename G>
__global__ void __launch_bounds__(kMultiTensorThreads)
    TensorNormsKernel(TensorTableView table, const float* __restrict__ params, const G* __restrict__ grads,
                      float grad_scale, const float* __restrict__ grad_scale_dev, float* __restrict__ weight_norms,
                      float* __restrict__ grad_norms) {
  __shared__ double scratch[32];
  __shared__ bool last_block;
  const TensorChunk chunk = table.chunks[blockIdx.x];
  const DeviceTensor tensor = table.tensors[chunk.tensor];
  const float s = grad_scale_dev != nullptr ? *grad_scale_dev : grad_scale;

  // 1. This chunk: per-thread double sums in a fixed order, then the block.
  double ww = 0, gg = 0;
  for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x) {
    const double w = params[i];
    const double g = __fmul_rn(LoadFloat(grads, i), s);
    ww += w * w;
    gg += g * g;
  }
  ww = BlockSum(ww, scratch);
  gg = BlockSum(gg, scratch);

  if (tensor.num_chunks == 1) {
    if (threadIdx.x == 0) {
      weight_norms[chunk.tensor] = static_cast<float>(sqrt(ww));
      grad_norms[chunk.tensor] = static_cast<float>(sqrt(gg));
    }
    return;
  }

  // 2. Publish the chunk's sums; the tensor's last block to arrive combines.
  if (threadIdx.x == 0) {
    table.partials[2 * int64_t(blockIdx.x)] = ww;
    table.partials[2 * int64_t(blockIdx.x) + 1] = gg;
    __threadfence();  // the sums are visible device-wide before the count
    const unsigned int arrived = atomicAdd(&table.counters[chunk.tensor], 1u);
    last_block = arrived == unsigned(tensor.num_chunks - 1);
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();

  // 3. Combine the tensor's chunk sums in chunk order (independent of which
  //    block came last). __ldcg reads L2, never a stale L1 line.
  double pw = 0, pg = 0;
  for (int k = threadIdx.x; k < tensor.num_chunks; k += blockDim.x) {
    const int64_t c = int64_t(tensor.first_chunk) + k;
    pw += __ldcg(&table.partials[2 * c]);
    pg += __ldcg(&table.partials[2 * c + 1]);
  }
  pw = BlockSum(pw, scratch);
  pg = BlockSum(pg, scratch);
  if (threadIdx.x == 0) {
    weight_norms[chunk.tensor] = static_cast<float>(sqrt(pw));
    grad_norms[chunk.tensor] = static_cast<float>(sqrt(pg));
    table.counters[chunk.tensor] = 0;  // ready for the next launch (stream order)
  }
}

// Every public overload; grad_scale_dev null: the scale is grad_scale.
template <typename G>
void Launch(const TensorTableView& table, const float* params, const G* grads, float grad_scale,
            const float* grad_scale_dev, float* weight_norms, float* grad_norms, cudaStream_t stream) {
  const char* op = "BatchedTensorNorms";
  detail::CheckTable(op, table);
  if (grad_scale_dev == nullptr) detail::CheckGradScale(op, grad_scale);
  if (table.num_tensors == 0) return;
  detail::CheckPointer(op, params, "params");
  detail::CheckPointer(op, grads, "grads");
  detail::CheckPointer(op, weight_norms, "weight_norms");
  detail::CheckPointer(op, grad_norms, "grad_norms");
  TensorNormsKernel<G><<<table.num_chunks, kMultiTensorThreads, 0, stream>>>(
      table, params, grads, grad_scale, grad_scale_dev, weight_norms, grad_norms);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void BatchedTensorNorms(const TensorTableView& table, const float* params, const float* grads,
                        float grad_scale, float* weight_norms, float* grad_norms, cudaStream_t stream) {
  Launch(table, params, grads, grad_scale, nullptr, weight_norms, grad_norms, stream);
}

void BatchedTensorNorms(const TensorTableView& table, const float* params, const __half* grads,
                        float grad_scale, float* weight_norms, float* grad_norms, cudaStream_t stream) {
  Launch(table, params, grads, grad_scale, nullptr, weight_norms, grad_norms, stream);
}

void BatchedTensorNorms(const TensorTableView& table, const float* params, const float* grads,
                        const float* grad_scale_dev, float* weight_norms, float* grad_norms, cudaStream_t stream) {
  detail::CheckPointer("BatchedTensorNorms", grad_scale_dev, "grad_scale_dev");
  Launch(table, params, grads, 0.0f, grad_scale_dev, weight_norms, grad_norms, stream);
}

void BatchedTensorNorms(const TensorTableView& table, const float* params, const __half* grads,
                        const float* grad_scale_dev, float* weight_norms, float* grad_norms, cudaStream_t stream) {
  detail::CheckPointer("BatchedTensorNorms", grad_scale_dev, "grad_scale_dev");
  Launch(table, params, grads, 0.0f, grad_scale_dev, weight_norms, grad_norms, stream);
}

}  // namespace dtrain::cuda
