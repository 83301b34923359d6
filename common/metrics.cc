#include "common/metrics.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/net.h"

namespace dtrain {
namespace {

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

std::string Response(const std::string& status, const std::string& type, const std::string& body) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

}  // namespace

MetricsServer::MetricsServer(const std::string& flag, const std::string& host_port,
                             std::shared_ptr<prometheus::Collectable> collector)
    : collector_(std::move(collector)) {
  const HostPort hp = ParseHostPort(flag, host_port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string host = hp.host == "*" ? "0.0.0.0" : hp.host;
  if (getaddrinfo(host.c_str(), std::to_string(hp.port).c_str(), &hints, &res) != 0 || !res) {
    Fail(ErrorCode::kInvalidArgument, flag + " " + host_port + ": cannot resolve '" + host + "'");
  }
  fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool ok = fd_ >= 0 && bind(fd_, res->ai_addr, res->ai_addrlen) == 0 && listen(fd_, 16) == 0;
  freeaddrinfo(res);
  if (!ok) {
    const std::string why = std::strerror(errno);
    if (fd_ >= 0) close(fd_);
    Fail(ErrorCode::kUnavailable, flag + " " + host_port + ": cannot serve metrics there (" + why + ")");
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  thread_ = std::thread([this] { Serve(); });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

void MetricsServer::Serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string req;
    char buf[2048];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
      const ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      req.append(buf, size_t(n));
    }
    if (req.rfind("GET /metrics", 0) == 0) {
      std::string body;
      try {
        body = prometheus::TextSerializer().Serialize(collector_->Collect());
        SendAll(c, Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body));
      } catch (const std::exception& e) {
        SendAll(c, Response("500 Internal Server Error", "text/plain", e.what()));
      }
    } else {
      SendAll(c, Response("404 Not Found", "text/plain", "only GET /metrics is served here\n"));
    }
    close(c);
  }
}

FamilyBuilder& FamilyBuilder::Gauge(const std::string& name, const std::string& help) {
  families_.push_back({name, help, prometheus::MetricType::Gauge, {}});
  return *this;
}

FamilyBuilder& FamilyBuilder::Counter(const std::string& name, const std::string& help) {
  families_.push_back({name, help, prometheus::MetricType::Counter, {}});
  return *this;
}

FamilyBuilder& FamilyBuilder::Add(const Labels& labels, double value) {
  if (families_.empty()) Fail(ErrorCode::kInternal, "FamilyBuilder::Add before a family");
  prometheus::MetricFamily& f = families_.back();
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  if (f.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return *this;
}

std::vector<prometheus::MetricFamily> FamilyBuilder::Take() { return std::move(families_); }

}  // namespace dtrain
