#include "worker/control_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "proto/dtrain.grpc.pb.h"

namespace dtrain::worker {

struct ControlClient::Impl {
  WorkerConfig cfg;
  v1::Register reg;
  Handlers handlers;

  std::atomic<bool> stop{false};
  mutable std::mutex mu;  // guards everything below
  std::condition_variable cv;
  grpc::ClientContext* ctx = nullptr;
  grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>* stream = nullptr;
  bool connected = false;
  std::string worker_id;
  double heartbeat_interval = 1.0;
  std::string waiting_job;
  int64_t waiting_step = 0;
  struct Slot {
    bool done = false;
    v1::RendezvousResult result;
  };
  std::map<std::pair<std::string, std::string>, Slot> rendezvous;
  std::mutex write_mu;  // one writer at a time on the stream
  grpc::Status last_refusal;  // the status of the last session that did not register

  bool Send(const v1::WorkerMessage& msg) {
    std::lock_guard<std::mutex> wl(write_mu);
    grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>* s;
    {
      std::lock_guard<std::mutex> l(mu);
      if (!connected) return false;
      s = stream;
    }
    return s->Write(msg);
  }

  void Dispatch(const v1::CoordinatorMessage& msg) {
    switch (msg.msg_case()) {
      case v1::CoordinatorMessage::kAssignment:
        handlers.on_assignment(msg.assignment());
        break;
      case v1::CoordinatorMessage::kCommand:
        if (msg.command().kind() == v1::Command::ABORT) {
          handlers.on_abort(msg.command().job_id(), msg.command().reason());
        }
        break;
      case v1::CoordinatorMessage::kLogRequest:
        if (handlers.on_log_request) handlers.on_log_request(msg.log_request());
        break;
      case v1::CoordinatorMessage::kRendezvous: {
        std::lock_guard<std::mutex> l(mu);
        auto it = rendezvous.find({msg.rendezvous().job_id(), msg.rendezvous().key()});
        if (it != rendezvous.end()) {
          it->second.done = true;
          it->second.result = msg.rendezvous();
        }
        cv.notify_all();
        break;
      }
      default:
        break;
    }
  }

  // One session: returns when the stream ends. True if it registered.
  bool Session(const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = v1::Coordinator::NewStub(channel);
    grpc::ClientContext context;
    if (!cfg.join_token.empty()) context.AddMetadata("authorization", "Bearer " + cfg.join_token);
    auto s = stub->WorkerSession(&context);
    {
      std::lock_guard<std::mutex> l(mu);
      ctx = &context;
      reg.set_worker_id(worker_id);
    }
    v1::WorkerMessage hello;
    *hello.mutable_register_() = reg;
    v1::CoordinatorMessage first;
    const bool answered = s->Write(hello) && s->Read(&first);
    const bool registered = answered && first.has_registered();
    std::thread heartbeat;
    if (registered) {
      std::string previous;
      {
        std::lock_guard<std::mutex> l(mu);
        previous = worker_id;
        worker_id = first.registered().worker_id();
        heartbeat_interval = std::max(0.05, first.registered().heartbeat_interval_seconds());
        stream = s.get();
        connected = true;
      }
      if (previous.empty() || previous == first.registered().worker_id()) {
        spdlog::info("registered with {} as worker {}{}", cfg.coordinator,
                     first.registered().worker_id(), previous.empty() ? "" : " (kept its id)");
      } else {
        spdlog::warn("registered with {} as worker {}: it did not keep this worker's id {} (its "
                     "log says why: e.g. it restarted without its --state-dir, or dropped this "
                     "worker after --dead-worker-seconds)",
                     cfg.coordinator, first.registered().worker_id(), previous);
      }
      heartbeat = std::thread([this] {
        std::unique_lock<std::mutex> l(mu);
        while (connected) {
          cv.wait_for(l, std::chrono::duration<double>(heartbeat_interval));
          if (!connected) break;
          v1::WorkerMessage hb;
          hb.mutable_heartbeat()->set_job_id(waiting_job);
          hb.mutable_heartbeat()->set_waiting_step(waiting_step);
          l.unlock();
          Send(hb);
          l.lock();
        }
      });
      for (v1::CoordinatorMessage msg; s->Read(&msg);) Dispatch(msg);
    }
    {
      std::lock_guard<std::mutex> l(mu);
      connected = false;
      ctx = nullptr;
    }
    cv.notify_all();
    // Not answered: the coordinator ended the stream (e.g. UNAUTHENTICATED);
    // keep its status for the log rather than cancelling over it.
    if (answered) context.TryCancel();
    if (heartbeat.joinable()) heartbeat.join();
    {
      std::lock_guard<std::mutex> wl(write_mu);  // no writer still inside the stream
      std::lock_guard<std::mutex> l(mu);
      stream = nullptr;
    }
    const grpc::Status st = s->Finish();
    if (!registered) last_refusal = st;
    if (registered && !stop) {
      spdlog::warn("stream to the coordinator ended: {}", st.error_message());
      handlers.on_disconnect(st.error_message().empty() ? "stream ended" : st.error_message());
    }
    return registered;
  }
};

ControlClient::ControlClient(const WorkerConfig& cfg, v1::Register reg, Handlers handlers)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = cfg;
  impl_->reg = std::move(reg);
  impl_->handlers = std::move(handlers);
}

ControlClient::~ControlClient() = default;

void ControlClient::Run() {
  Impl& m = *impl_;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!m.cfg.ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = m.cfg.ca_pem;
    creds = grpc::SslCredentials(ssl);
  }
  double backoff = 0.1;
  int failures = 0;
  int refusals = 0;  // consecutive refusals of this worker's token
  constexpr int kMaxRefusals = 5;
  while (!m.stop) {
    auto channel = grpc::CreateCustomChannel(m.cfg.coordinator, creds, args);
    m.last_refusal = grpc::Status::OK;
    const auto connect_deadline =
        std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::duration<double>(m.cfg.rpc_timeout_seconds));
    bool ok = false;
    if (channel->WaitForConnected(connect_deadline)) ok = m.Session(channel);
    if (m.stop) break;
    const auto code = m.last_refusal.error_code();
    const bool refused = !ok && (code == grpc::StatusCode::UNAUTHENTICATED ||
                                 code == grpc::StatusCode::PERMISSION_DENIED);
    refusals = refused ? refusals + 1 : 0;
    if (refusals >= kMaxRefusals) {  // a wrong token does not fix itself: stop, do not retry forever
      Fail(ErrorCode::kPermissionDenied,
           "the coordinator at " + m.cfg.coordinator + " refused this worker " + std::to_string(refusals) +
               " times in a row: " + m.last_refusal.error_message() +
               "; give its join token with --join-token-file or DTRAIN_JOIN_TOKEN");
    }
    if (ok) {
      backoff = 0.1;
      failures = 0;
    } else if (++failures == 1 || failures % 10 == 0 || refused) {
      if (refused) {
        spdlog::error("the coordinator at {} refused this worker (attempt {} of {}): {}; give its join "
                      "token with --join-token-file or DTRAIN_JOIN_TOKEN",
                      m.cfg.coordinator, refusals, kMaxRefusals, m.last_refusal.error_message());
      } else {
        spdlog::warn("cannot reach the coordinator at {} (attempt {}{}); retrying with backoff up to "
                     "{:.1f} s{}",
                     m.cfg.coordinator, failures,
                     m.last_refusal.ok() ? "" : ": " + m.last_refusal.error_message(),
                     m.cfg.reconnect_max_seconds,
                     m.cfg.ca_pem.empty()
                         ? " (if it serves TLS, give --ca)"
                         : " (TLS: does --ca hold the CA that signed its certificate?)");
      }
    }
    std::unique_lock<std::mutex> l(m.mu);
    m.cv.wait_for(l, std::chrono::duration<double>(backoff), [&] { return m.stop.load(); });
    backoff = std::min(backoff * 2, m.cfg.reconnect_max_seconds);
  }
}

void ControlClient::Shutdown() {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->stop = true;
  if (impl_->ctx) impl_->ctx->TryCancel();
  impl_->cv.notify_all();
}

bool ControlClient::Send(const v1::WorkerMessage& msg) { return impl_->Send(msg); }

void ControlClient::SetWaiting(const std::string& job_id, int64_t step) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->waiting_job = job_id;
  impl_->waiting_step = step;
}

std::string ControlClient::worker_id() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->worker_id;
}

std::vector<std::string> ControlClient::Rendezvous(const std::string& job_id, const std::string& key,
                                                   const std::string& value, const Deadline& deadline) {
  Impl& m = *impl_;
  const auto slot_key = std::make_pair(job_id, key);
  {
    std::lock_guard<std::mutex> l(m.mu);
    m.rendezvous[slot_key] = Impl::Slot();
  }
  v1::WorkerMessage msg;
  v1::RendezvousPublish* pub = msg.mutable_publish();
  pub->set_job_id(job_id);
  pub->set_key(key);
  pub->set_value(value);
  pub->set_timeout_seconds(std::max(0.1, deadline.SecondsLeft()));
  if (!Send(msg)) {
    std::lock_guard<std::mutex> l(m.mu);
    m.rendezvous.erase(slot_key);
    Fail(ErrorCode::kUnavailable, "rendezvous '" + key + "': not connected to the coordinator");
  }
  std::unique_lock<std::mutex> l(m.mu);
  for (;;) {
    Impl::Slot& slot = m.rendezvous[slot_key];
    if (slot.done) {
      v1::RendezvousResult res = slot.result;
      m.rendezvous.erase(slot_key);
      if (!res.ok()) Fail(ErrorCode::kAborted, res.error());
      return {res.values().begin(), res.values().end()};
    }
    std::string why;
    if (deadline.Aborted()) why = "job aborted";
    else if (deadline.Expired()) why = "no answer from the coordinator before the deadline";
    else if (!m.connected) why = "lost the connection to the coordinator";
    if (!why.empty()) {
      m.rendezvous.erase(slot_key);
      Fail(deadline.Aborted() ? ErrorCode::kAborted : ErrorCode::kDeadlineExceeded,
           "rendezvous '" + key + "': " + why);
    }
    m.cv.wait_for(l, std::chrono::milliseconds(50));
  }
}

}  // namespace dtrain::worker
