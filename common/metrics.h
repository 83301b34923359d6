// Prometheus helpers shared by the daemons (prometheus-cpp). Both daemons
// export through scrape-time collectors: each scrape reads the current state,
// so no metric value is stored twice. Names follow Prometheus conventions:
// dtrain_ prefix, base units (_seconds, _bytes), _total for counters.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace dtrain {

// Serves GET /metrics (Prometheus text format) on HOST:PORT from one
// collector, on a thread of its own. (Not prometheus-cpp's civetweb exposer:
// its threads have ~100 KB fixed stacks, and OpenBLAS's 60 KB of static TLS,
// which glibc carves out of every thread's stack, leaves too little.) One
// connection at a time, each with a 5 s I/O deadline. Throws
// Error(kUnavailable) naming `flag` when it cannot listen.
class MetricsServer {
 public:
  MetricsServer(const std::string& flag, const std::string& host_port,
                std::shared_ptr<prometheus::Collectable> collector);
  ~MetricsServer();
  int port() const { return port_; }  // the bound port (HOST:0 picks one)

 private:
  void Serve();
  std::shared_ptr<prometheus::Collectable> collector_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Builds MetricFamily lists for a Collectable::Collect().
class FamilyBuilder {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // Starts a family; Add() appends samples to the last one started.
  FamilyBuilder& Gauge(const std::string& name, const std::string& help);
  FamilyBuilder& Counter(const std::string& name, const std::string& help);
  FamilyBuilder& Add(const Labels& labels, double value);
  std::vector<prometheus::MetricFamily> Take();

 private:
  std::vector<prometheus::MetricFamily> families_;
};

}  // namespace dtrain
