// The CUDA engine (TrainEngine on one GPU): NHWC fp16 activations on cuDNN /
// cuBLASLt (cuda_model.h), fp32 master weights and momentum, fp16 weight
// copies and weight gradients, fp32 BN and bias gradients (device_plan.h),
// dynamic loss scaling on the device (kernels/cuda/loss_scale.h), LARS or SGD
// as ONE batched-norm launch and ONE fused update launch per group
// (batched_norms.h, lars_update.h).
//
// Gradient averaging: with an NcclCommunicator, each bucket (bucket_plan.h)
// is handed to NCCL as soon as its last gradient kernel is enqueued: an event
// on the compute stream, the average on NCCL's stream behind it
// (overlap.h); no communication thread. With a host communicator and more
// than one rank (UCX), the buckets are staged through pinned host memory
// after backward (not overlapped). One rank: nothing to average.
//
// Input: the loader's fp32 NCHW batch is copied into a pinned buffer and
// uploaded on a copy stream, then packed to fp16 NHWC with padded channels on
// the device (input_pack.h). Every per-step scalar the kernels use (learning
// rate, loss scale and its inverse) is read from device memory, so the step
// can later be captured in a CUDA graph. Per-step host reads: the mean loss, top-1 count
// and loss-scale state, once, at the end of the step.
//
// precision must be fp16; batch_norm must be true; allreduce.dtype fp16.
// Throws kUnavailable (no device, versions below the floors: dnn_versions.h),
// kInvalidArgument (options), kInternal (CUDA/cuDNN/cuBLAS/NCCL errors).
#pragma once

#include <memory>

#include "worker/engine/train_engine.h"

namespace dtrain::engine {

std::unique_ptr<TrainEngine> MakeCudaEngine(const EngineOptions& options);

// For benches: the engine keeps the first batch it is given on the device and
// trains on it every step without uploading again (synthetic data resident on
// the device, so the bench measures the GPU, not PCIe or the host copy).
void SetResidentBatch(TrainEngine& cuda_engine, bool on);

}  // namespace dtrain::engine
