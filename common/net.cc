#include "common/net.h"

#include <unistd.h>

#include <cstdlib>

#include "common/error.h"

namespace dtrain {

HostPort ParseHostPort(const std::string& flag, const std::string& text) {
  const auto bad = [&](const std::string& why) {
    Fail(ErrorCode::kInvalidArgument,
         flag + " '" + text + "': " + why + "; expected HOST:PORT, e.g. 127.0.0.1:7070");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) bad("missing host or port");
  HostPort hp;
  hp.host = text.substr(0, colon);
  if (hp.host.size() > 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    bad("port is not a number");
  }
  hp.port = std::atoi(port.c_str());
  if (hp.port > 65535) bad("port out of range 0..65535");
  return hp;
}

std::string LocalHostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  std::string h(buf);
  const auto dot = h.find('.');
  return dot == std::string::npos ? h : h.substr(0, dot);
}

}  // namespace dtrain
