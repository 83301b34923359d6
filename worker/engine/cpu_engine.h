// The CPU engine: the ResNet of worker/model (NCHW fp32 over OpenBLAS), the
// fp32 optimizer of worker/optim and the threaded bucketed allreduce of
// grad_allreducer.h, behind TrainEngine. Its canonical state IS its own
// layout. precision must be fp32.
#pragma once

#include <memory>

#include "worker/engine/train_engine.h"

namespace dtrain::engine {

std::unique_ptr<TrainEngine> MakeCpuEngine(const EngineOptions& options);

}  // namespace dtrain::engine
