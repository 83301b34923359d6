// HOST:PORT parsing for every --listen / --coordinator / --metrics flag.
#pragma once

#include <string>

namespace dtrain {

struct HostPort {
  std::string host;
  int port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
};

// Throws Error(kInvalidArgument) naming `flag` when `text` is not HOST:PORT
// with a port in 0..65535 (0: any free port, for servers).
HostPort ParseHostPort(const std::string& flag, const std::string& text);

// This machine's short host name.
std::string LocalHostName();

}  // namespace dtrain
