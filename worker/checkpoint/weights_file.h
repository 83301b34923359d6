// Trained weights out of dtrain and back in, as a safetensors file
// (safetensors.h) under torchvision's tensor names and shapes:
//   * every parameter of the architecture (resnet_arch.h: "conv1.weight",
//     "layer1.0.bn1.bias", "fc.weight" ...), fp32, PyTorch's shapes (conv
//     weights [k, c, r, s]);
//   * every BN's "X.running_mean" and "X.running_var", fp32 [c], and
//     "X.num_batches_tracked", int64 [] (the step), so the key set is exactly
//     a torchvision model's state_dict() and load_state_dict(strict=True)
//     takes it;
//   * __metadata__: format "pt", producer "dtrain", model, step, in_channels,
//     num_classes, image_size, plus what the caller adds (job id, accuracy).
// Reading back (a job's `init_from`) checks the file tensor by tensor: a
// missing tensor, an extra one, another shape or a non-float dtype is an
// Error(kInvalidArgument) naming the file, the tensor and both shapes; tensors
// under an `init_from_skip` prefix keep their seeded initial values (e.g. a
// new FC layer for another class count).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "worker/checkpoint/safetensors.h"
#include "worker/model/resnet_arch.h"

namespace dtrain::ckpt {

// The safetensors form of canonical params / BN buffers of `arch` at `step`.
SafetensorsFile WeightsToSafetensors(const model::ResnetArch& arch, const std::vector<float>& params,
                                     const std::vector<float>& bn_running, int64_t step,
                                     const std::map<std::string, std::string>& extra_metadata);

// The weights of a training checkpoint's model.ckpt (trainer/checkpointing.h)
// as above. Error(kDataLoss) naming the file when it lacks the architecture
// (in_channels, num_classes, image_size: older checkpoints lack them) or its
// sizes do not match that architecture.
SafetensorsFile ModelCheckpointToSafetensors(const std::string& model_ckpt_path,
                                             const std::map<std::string, std::string>& extra_metadata);

// Overwrites `params` / `bn_running` (canonical layout of `arch`, already
// holding the seeded initial values) with the file's tensors. `path` names the
// file in errors. A skip entry "fc" covers "fc" and every name under "fc.";
// one that covers no tensor of the architecture is an error too (a typo
// would otherwise load everything silently).
void ApplySafetensors(const SafetensorsFile& file, const std::string& path, const model::ResnetArch& arch,
                      const std::vector<std::string>& skip, std::vector<float>* params,
                      std::vector<float>* bn_running);

}  // namespace dtrain::ckpt
