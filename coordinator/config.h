// CoordinatorConfig: the coordinator's one typed configuration, filled once
// from flags (and DTRAIN_* environment defaults), validated in one place and
// logged once at start.
#pragma once

#include <string>

namespace dtrain::coordinator {

struct CoordinatorConfig {
  std::string listen = "127.0.0.1:7070";
  double heartbeat_timeout_seconds = 10.0;
  double heartbeat_interval_seconds = 1.0;
  double stall_timeout_seconds = 30.0;
  std::string metrics;    // HOST:PORT for Prometheus (empty: none)
  std::string log_level = "info";
  std::string port_file;  // written with the bound port once listening (tests, scripts)

  void Validate() const;  // throws Error(kInvalidArgument) naming the flag
  std::string Describe() const;
};

// Parses argv; prints help and exits 0 for --help; throws Error on bad flags.
CoordinatorConfig ParseCoordinatorFlags(int argc, char** argv);

}  // namespace dtrain::coordinator
