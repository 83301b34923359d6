// The coordinator's gRPC server: the dtrain.v1.Coordinator service on the
// callback API plus grpc.health.v1. RunServer blocks until `stop` is set.
#pragma once

#include <atomic>
#include <string>

#include "coordinator/core.h"

namespace dtrain::coordinator {

// Binds `listen` (HOST:PORT; port 0 picks a free one) and serves until *stop.
// `on_ready(port)` is called once the server listens. Throws Error on failure
// to bind.
void RunServer(CoordinatorCore& core, const std::string& listen, const std::atomic<bool>& stop,
               const std::function<void(int port)>& on_ready);

}  // namespace dtrain::coordinator
