// SimFleet: N simulated dtrain workers, each on its own WorkerSession bidi
// stream (gRPC callback API, no thread per worker), multiplexed over a few
// channels that are really separate TCP connections. Each worker registers
// with the contents a real worker sends (host, local rank, one device, a UCX
// address, metrics address, pid), then heartbeats at the interval the
// coordinator answers in Registered, like worker/control_client.cc, with the
// same message (idle: empty job id, waiting_step 0). One timer thread drives
// every heartbeat; a heartbeat whose write is still not done when the next
// is due is coalesced (never sent), as a blocked real worker would.
//
// The coordinator sends nothing back per heartbeat, so what the fleet can
// measure is the heartbeat's lateness: from the moment it was due to the
// moment gRPC finished the write (the message left for the socket).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "proto/dtrain.grpc.pb.h"

namespace dtrain::load {

using Clock = std::chrono::steady_clock;

struct FleetOptions {
  std::string target;               // coordinator HOST:PORT
  int workers = 2048;
  int streams_per_channel = 64;     // channels = ceil(workers / this)
  int workers_per_host = 8;         // simulated hosts "loadgen-h0000", local ranks 0..7
  int ucx_address_bytes = 256;      // size of the (random) UCX address in Register
  double late_seconds = 1.0;        // a heartbeat written later than this is lost
  uint64_t seed = 1;
  std::string join_token;           // "authorization: Bearer" on each stream (empty: none)
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: insecure
  std::string tls_server_name;      // certificate name override (empty: the target's host)
};

struct FleetStats {
  int workers = 0;
  int channels = 0;
  int registered = 0;                // got their Registered answer
  double registration_seconds = 0;   // first stream opened -> last Registered
  double heartbeat_interval = 0;     // as the coordinator told the workers
  std::vector<double> register_ms;   // per worker: Register written -> Registered read
  std::vector<double> heartbeat_ms;  // per heartbeat: due -> write done
  int64_t heartbeats_written = 0;
  int64_t heartbeats_late = 0;       // written more than late_seconds after due
  int64_t heartbeats_coalesced = 0;  // due while the previous one was still not written
  int64_t heartbeats_unsent = 0;     // due on a stream that had ended
  int64_t write_failures = 0;
  double max_timer_lag_ms = 0;       // the tool's own timer delay (its share of lateness)
  int streams_ended = 0;             // ended while the tool had not asked them to
  std::string first_end_reason;
  int64_t unexpected_messages = 0;   // assignments, commands: a simulated worker runs nothing
};

class SimFleet {
 public:
  explicit SimFleet(FleetOptions options);
  ~SimFleet();
  SimFleet(const SimFleet&) = delete;
  SimFleet& operator=(const SimFleet&) = delete;

  // Connects the channels, opens every stream at once, sends Register on each
  // and waits until all are registered (or `timeout_seconds`). Heartbeats of
  // each worker start at its registration, after a random phase within one
  // interval. False when some did not register in time.
  bool Register(double timeout_seconds);
  // Cancels every stream and waits for them to end.
  void Stop(double timeout_seconds = 10.0);

  FleetStats Stats() const;
  std::vector<std::string> WorkerIds() const;
  int channels() const { return static_cast<int>(stubs_.size()); }

 private:
  class Worker;
  friend class Worker;
  struct Due {
    Clock::time_point at;
    int idx;
    bool operator>(const Due& o) const { return at > o.at; }
  };

  void Timer();
  void OnRegistered(int idx, double interval_seconds, double register_ms);
  void OnHeartbeatWritten(double lateness_seconds, bool ok);
  void OnCoalesced();
  void OnUnexpected();
  void OnStreamDone(const grpc::Status& status);

  const FleetOptions opt_;
  std::vector<std::unique_ptr<dtrain::v1::Coordinator::Stub>> stubs_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;  // guards stats_ and done_
  std::condition_variable cv_;
  FleetStats stats_;
  Clock::time_point start_;
  int done_ = 0;

  std::mutex timer_mu_;  // guards heap_
  std::condition_variable timer_cv_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> heap_;
  std::vector<double> interval_;  // by worker, seconds
  std::thread timer_;
};

}  // namespace dtrain::load
