#include "bench/load/sim_workers.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

namespace dtrain::load {

namespace v1 = ::dtrain::v1;

namespace {
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
}  // namespace

// One simulated worker: its stream's reactor. A read is always outstanding
// until the stream ends; at most one write is in flight (out_).
class SimFleet::Worker final : public grpc::ClientBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  Worker(SimFleet& fleet, int idx, v1::Register reg) : fleet_(fleet), idx_(idx), reg_(std::move(reg)) {}

  void Start(v1::Coordinator::Stub& stub, const std::string& join_token) {
    if (!join_token.empty()) ctx_.AddMetadata("authorization", "Bearer " + join_token);
    stub.async()->WorkerSession(&ctx_, this);
    std::lock_guard<std::mutex> l(mu_);
    *out_.mutable_register_() = reg_;
    writing_ = true;
    heartbeat_in_flight_ = false;
    sent_at_ = Clock::now();
    StartWrite(&out_);
    StartRead(&in_);
    AddHold();  // released when the read side ends: no OnDone while the timer may write
    StartCall();
  }

  // The timer's call: a heartbeat is due now. False when the stream ended.
  bool Heartbeat(Clock::time_point due) {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return false;
    if (writing_) {  // the previous write has not finished: this one waits behind it
      if (pending_) fleet_.OnCoalesced();  // ...and the one already waiting is dropped
      pending_ = true;
      pending_due_ = due;
      return true;
    }
    StartHeartbeatLocked(due);
    return true;
  }

  void Cancel() { ctx_.TryCancel(); }
  std::string id() const {
    std::lock_guard<std::mutex> l(mu_);
    return id_;
  }

  void OnWriteDone(bool ok) override {
    const auto now = Clock::now();
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (heartbeat_in_flight_) fleet_.OnHeartbeatWritten(std::chrono::duration<double>(now - due_).count(), ok);
    heartbeat_in_flight_ = false;
    if (!ok) {
      closed_ = true;  // the read fails too and ends the stream
      pending_ = false;
      return;
    }
    if (pending_ && !closed_) {
      pending_ = false;
      StartHeartbeatLocked(pending_due_);
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        std::lock_guard<std::mutex> l(mu_);
        closed_ = true;
        pending_ = false;
      }
      RemoveHold();
      return;
    }
    if (in_.msg_case() == v1::CoordinatorMessage::kRegistered) {
      double reg_ms;
      {
        std::lock_guard<std::mutex> l(mu_);
        id_ = in_.registered().worker_id();
        reg_ms = Ms(Clock::now() - sent_at_);
      }
      // The real worker: max(0.05, heartbeat_interval_seconds).
      fleet_.OnRegistered(idx_, std::max(0.05, in_.registered().heartbeat_interval_seconds()), reg_ms);
    } else {
      fleet_.OnUnexpected();
    }
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& status) override { fleet_.OnStreamDone(status); }

 private:
  void StartHeartbeatLocked(Clock::time_point due) {
    out_.Clear();
    // Exactly what an idle real worker sends.
    out_.mutable_heartbeat()->set_job_id("");
    out_.mutable_heartbeat()->set_waiting_step(0);
    writing_ = true;
    heartbeat_in_flight_ = true;
    due_ = due;
    StartWrite(&out_);
  }

  SimFleet& fleet_;
  const int idx_;
  const v1::Register reg_;
  grpc::ClientContext ctx_;
  v1::CoordinatorMessage in_;

  mutable std::mutex mu_;  // guards the rest
  v1::WorkerMessage out_;  // in flight while writing_
  bool writing_ = false;
  bool heartbeat_in_flight_ = false;
  bool closed_ = false;
  bool pending_ = false;
  Clock::time_point due_, pending_due_, sent_at_;
  std::string id_;
};

SimFleet::SimFleet(FleetOptions options) : opt_(std::move(options)) {
  stats_.workers = opt_.workers;
  const int per = std::max(1, opt_.streams_per_channel);
  const int n_channels = (opt_.workers + per - 1) / per;
  for (int c = 0; c < n_channels; ++c) {
    grpc::ChannelArguments args;
    // As worker/control_client.cc.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // Channels with equal arguments would share one subchannel (one TCP
    // connection) through the global pool: make each its own.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("dtrain.loadgen.channel", c);
    if (!opt_.tls_server_name.empty()) args.SetSslTargetNameOverride(opt_.tls_server_name);
    channels_.push_back(grpc::CreateCustomChannel(
        opt_.target, opt_.credentials ? opt_.credentials : grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(v1::Coordinator::NewStub(channels_.back()));
  }
  std::mt19937_64 rng(opt_.seed);
  const int per_host = std::max(1, opt_.workers_per_host);
  for (int i = 0; i < opt_.workers; ++i) {
    v1::Register reg;
    char host[32];
    std::snprintf(host, sizeof(host), "loadgen-h%04d", i / per_host);
    reg.set_host(host);
    reg.set_local_rank(i % per_host);
    reg.set_pid(static_cast<int>(getpid()));
    reg.set_metrics_address(std::string(host) + ":" + std::to_string(9400 + i % per_host));
    std::string ucx(static_cast<size_t>(std::max(0, opt_.ucx_address_bytes)), '\0');
    for (auto& ch : ucx) ch = static_cast<char>(rng());
    reg.set_ucx_address(ucx);
    v1::Device* d = reg.add_devices();
    d->set_kind("cuda");
    d->set_index(i % per_host);
    d->set_name("NVIDIA H100 80GB HBM3");
    d->set_memory_bytes(int64_t(85520809984));
    workers_.push_back(std::make_unique<Worker>(*this, i, std::move(reg)));
  }
  interval_.assign(opt_.workers, 1.0);
  stats_.channels = n_channels;
  timer_ = std::thread([this] { Timer(); });
}

SimFleet::~SimFleet() {
  Stop();
  {
    std::lock_guard<std::mutex> l(timer_mu_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

bool SimFleet::Register(double timeout_seconds) {
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::duration<double>(timeout_seconds));
  for (auto& ch : channels_) {  // as a real worker: connect, then open the session
    if (!ch->WaitForConnected(deadline)) return false;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    start_ = Clock::now();
  }
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->Start(*stubs_[i % stubs_.size()], opt_.join_token);
  }
  std::unique_lock<std::mutex> l(mu_);
  // Also returns once every stream that will not register has ended (refused).
  cv_.wait_until(l, deadline, [&] { return stats_.registered + stats_.streams_ended >= opt_.workers; });
  return stats_.registered == opt_.workers;
}

void SimFleet::OnRegistered(int idx, double interval_seconds, double register_ms) {
  const auto now = Clock::now();
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.registered;
    stats_.register_ms.push_back(register_ms);
    stats_.registration_seconds = std::chrono::duration<double>(now - start_).count();
    stats_.heartbeat_interval = interval_seconds;
    if (stats_.registered == opt_.workers) cv_.notify_all();
  }
  // First heartbeat: one interval after registration in the real worker;
  // here a random phase within the first interval spreads the fleet.
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> phase(0.0, interval_seconds);
  {
    std::lock_guard<std::mutex> l(timer_mu_);
    interval_[idx] = interval_seconds;
    heap_.push({now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(phase(rng))), idx});
  }
  timer_cv_.notify_one();
}

void SimFleet::Timer() {
  std::unique_lock<std::mutex> l(timer_mu_);
  std::vector<Due> batch;
  while (!stopping_) {
    if (heap_.empty()) {
      timer_cv_.wait_for(l, std::chrono::milliseconds(100));
      continue;
    }
    const auto next = heap_.top().at;
    if (Clock::now() < next) {
      timer_cv_.wait_until(l, next);
      continue;
    }
    const auto now = Clock::now();
    batch.clear();
    while (!heap_.empty() && heap_.top().at <= now) {
      batch.push_back(heap_.top());
      heap_.pop();
    }
    l.unlock();
    double lag = 0;
    std::vector<Due> again;
    int64_t unsent = 0;
    for (const Due& d : batch) {
      lag = std::max(lag, Ms(Clock::now() - d.at));
      if (workers_[d.idx]->Heartbeat(d.at)) {
        again.push_back(d);
      } else if (!stopping_) {
        ++unsent;
      }
    }
    {
      std::lock_guard<std::mutex> sl(mu_);
      stats_.max_timer_lag_ms = std::max(stats_.max_timer_lag_ms, lag);
      stats_.heartbeats_unsent += unsent;
    }
    l.lock();
    for (Due d : again) {  // fixed rate: due times do not drift with the tool's lag
      d.at += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_[d.idx]));
      heap_.push(d);
    }
  }
}

void SimFleet::OnHeartbeatWritten(double lateness_seconds, bool ok) {
  std::lock_guard<std::mutex> l(mu_);
  if (!ok) {
    ++stats_.write_failures;
    return;
  }
  ++stats_.heartbeats_written;
  stats_.heartbeat_ms.push_back(lateness_seconds * 1e3);
  if (lateness_seconds > opt_.late_seconds) ++stats_.heartbeats_late;
}

void SimFleet::OnCoalesced() {
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.heartbeats_coalesced;
}

void SimFleet::OnUnexpected() {
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.unexpected_messages;
}

void SimFleet::OnStreamDone(const grpc::Status& status) {
  std::lock_guard<std::mutex> l(mu_);
  ++done_;
  if (!stopping_) {
    ++stats_.streams_ended;
    if (stats_.first_end_reason.empty()) {
      stats_.first_end_reason = "code " + std::to_string(status.error_code()) + ": " + status.error_message();
    }
  }
  cv_.notify_all();
}

void SimFleet::Stop(double timeout_seconds) {
  if (stopping_.exchange(true)) return;
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  int started;
  {
    std::lock_guard<std::mutex> l(mu_);
    started = start_ == Clock::time_point() ? 0 : opt_.workers;
  }
  if (started == 0) return;
  for (auto& w : workers_) w->Cancel();
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, std::chrono::duration<double>(timeout_seconds), [&] { return done_ == started; })) {
    // A stream that never ended still refers to its reactor: keep them alive.
    for (auto& w : workers_) w.release();
    std::fprintf(stderr, "loadgen: %d of %d streams did not end after cancel\n", started - done_, started);
  }
}

FleetStats SimFleet::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

std::vector<std::string> SimFleet::WorkerIds() const {
  std::vector<std::string> ids;
  for (const auto& w : workers_) {
    if (!w) continue;
    std::string id = w->id();
    if (!id.empty()) ids.push_back(std::move(id));  // empty: never registered
  }
  return ids;
}

}  // namespace dtrain::load
