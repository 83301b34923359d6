// The coordinator's gRPC server: the dtrain.v1.Coordinator service on the
// callback API plus grpc.health.v1. RunServer blocks until `stop` is set.
#pragma once

#include <atomic>
#include <string>

#include "coordinator/core.h"

namespace dtrain::coordinator {

// TLS and bearer tokens for the control plane (grpc.health.v1 stays open).
struct ServerSecurity {
  std::string tls_cert_pem, tls_key_pem;  // empty: plaintext
  std::string client_token, join_token;   // empty: that role is open (auth.h)
};

// Binds `listen` (HOST:PORT; port 0 picks a free one) and serves until *stop.
// `on_ready(port)` is called once the server listens. Throws Error on failure
// to bind.
void RunServer(CoordinatorCore& core, const std::string& listen, const std::atomic<bool>& stop,
               const std::function<void(int port)>& on_ready,
               const ServerSecurity& security = {});

}  // namespace dtrain::coordinator
