// Host-side argument checks of every CUDA launcher and of TensorTable's chunk
// builder. They throw before touching the device, so these tests run (and
// pass) on machines without a GPU too.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/batched_norms.h"
#include "kernels/cuda/cast.h"
#include "kernels/cuda/input_norm.h"
#include "kernels/cuda/lars_update.h"
#include "kernels/cuda/loss_scale.h"
#include "kernels/cuda/softmax_xent.h"
#include "kernels/cuda/tensor_table.h"
#include "tests/gpu/gpu_test_util.h"

namespace dtrain::cuda {
namespace {

using gpu_test::ExpectInvalid;

TEST(CudaKernelArgs, TensorTableChunks) {
  std::vector<DeviceTensor> tensors;
  std::vector<TensorChunk> chunks;
  const std::vector<cpu::TensorSlice> table = {
      {.offset = 10, .size = 5, .no_decay = false}, {.offset = 0, .size = 0, .no_decay = true},
      {.offset = 100, .size = 23, .no_decay = true}};
  TensorTable::BuildChunks(table, 10, &tensors, &chunks);
  ASSERT_EQ(tensors.size(), 3u);
  ASSERT_EQ(chunks.size(), 1u + 1u + 3u);  // a size-0 tensor still gets one (empty) chunk
  EXPECT_EQ(tensors[2].first_chunk, 2);
  EXPECT_EQ(tensors[2].num_chunks, 3);
  EXPECT_EQ(tensors[2].no_decay, 1);
  EXPECT_EQ(chunks[1].begin, chunks[1].end);
  EXPECT_EQ(chunks[4].begin, 120);
  EXPECT_EQ(chunks[4].end, 123);
  EXPECT_EQ(chunks[4].tensor, 2);

  ExpectInvalid([&] { TensorTable::BuildChunks(table, 0, &tensors, &chunks); }, "chunk_elems");
  const std::vector<cpu::TensorSlice> overlap = {{.offset = 0, .size = 10}, {.offset = 9, .size = 2}};
  ExpectInvalid([&] { TensorTable::BuildChunks(overlap, 4, &tensors, &chunks); }, "overlap");
  const std::vector<cpu::TensorSlice> negative = {{.offset = -1, .size = 10}};
  ExpectInvalid([&] { TensorTable::BuildChunks(negative, 4, &tensors, &chunks); }, "offset");
}

TEST(CudaKernelArgs, LaunchersRejectBadArguments) {
  const TensorTableView empty;
  float f = 0;
  ExpectInvalid([&] { BatchedTensorNorms(empty, &f, &f, 0.0f, &f, &f, nullptr); }, "grad_scale");
  ExpectInvalid([&] { BatchedTensorNorms(empty, &f, &f, NAN, &f, &f, nullptr); }, "grad_scale");
  TensorTableView broken;
  broken.num_tensors = 2;
  broken.num_chunks = 2;  // but no device arrays
  ExpectInvalid([&] { BatchedTensorNorms(broken, &f, &f, 1.0f, &f, &f, nullptr); }, "tensor table");

  MomentumUpdateParams p;
  p.lr = INFINITY;
  ExpectInvalid([&] { FusedMomentumUpdate(empty, &f, &f, &f, 1.0f, &f, &f, nullptr, nullptr, p, nullptr); }, "lr");
  p.lr = 0.1f;
  ExpectInvalid([&] { FusedMomentumUpdate(empty, &f, &f, &f, -1.0f, &f, &f, nullptr, nullptr, p, nullptr); },
                "grad_scale");

  int32_t label = 0, hits = 0;
  ExpectInvalid([&] { SoftmaxCrossEntropy<float, float>(0, 10, &f, &label, 0.1f, 1.0f, &f, &f, &hits, nullptr); },
                "shape");
  ExpectInvalid([&] { SoftmaxCrossEntropy<float, float>(1, 10, &f, &label, 1.0f, 1.0f, &f, &f, &hits, nullptr); },
                "label_smoothing");
  ExpectInvalid([&] { SoftmaxCrossEntropy<float, float>(1, 10, &f, &label, 0.1f, 0.0f, &f, &f, &hits, nullptr); },
                "loss_scale");
  ExpectInvalid(
      [&] { SoftmaxCrossEntropy<float, float>(1, 10, &f, &label, 0.1f, 1.0f, nullptr, &f, &hits, nullptr); },
      "loss");
  ExpectInvalid([&] { MeanLossAndCorrect(1, &f, nullptr, &f, &hits, nullptr); }, "hits");

  ExpectInvalid([&] { UnscaleAndCheck(&f, &f, 1, 0.0f, &hits, nullptr); }, "inv_scale");
  ExpectInvalid([&] { UnscaleAndCheck(&f, &f, -1, 1.0f, &hits, nullptr); }, "n must be");
  ExpectInvalid([&] { UnscaleAndCheck(&f, &f, 1, 1.0f, nullptr, nullptr); }, "null");

  const float mean = 0, zero = 0, one = 1;
  uint8_t px = 0;
  __half hy;
  const cpu::InputNormShape shape{.n = 1, .c = 1, .h = 1, .w = 1};
  ExpectInvalid([&] { NormalizeToHalfNHWC(shape, &px, 1.0f, &mean, &zero, &hy, nullptr); }, "stddev[0]");
  ExpectInvalid([&] { NormalizeToHalfNHWC(shape, &px, 1.0f, &mean, &one, nullptr, nullptr); }, "null");
  ExpectInvalid([&] { NormalizeToHalfNHWC({.n = 1, .c = 17, .h = 1, .w = 1}, &px, 1.0f, &mean, &one, &hy, nullptr); },
                "channels");

  ExpectInvalid([&] { CastFloatToHalf(&f, &hy, -1, nullptr); }, "size");
  ExpectInvalid([&] { CastHalfToFloat(nullptr, &f, 1, nullptr); }, "null");
  ExpectInvalid([&] { NchwToNhwc<float>(&f, &f, 1, 1, 1, 1, nullptr); }, "alias");
  ExpectInvalid([&] { NhwcToNchw<float>(&f, &f, 1, -1, 1, 1, nullptr); }, "shape");
}

TEST(CudaKernelArgs, EmptyInputsLaunchNothing) {
  // No device needed: nothing to do means no CUDA call at all.
  UnscaleAndCheck(static_cast<const float*>(nullptr), nullptr, 0, 1.0f, nullptr, nullptr);
  CastFloatToHalf(nullptr, nullptr, 0, nullptr);
  NchwToNhwc<float>(nullptr, nullptr, 0, 3, 4, 4, nullptr);
  BatchedTensorNorms(TensorTableView{}, static_cast<const float*>(nullptr), static_cast<const float*>(nullptr),
                     1.0f, nullptr, nullptr, nullptr);
}

}  // namespace
}  // namespace dtrain::cuda
