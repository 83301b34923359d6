// dtrain.v1.Coordinator on gRPC's callback API. Each handler turns a request
// into a CoordinatorCore call and a dtrain::Error into a gRPC status; the
// worker session and WatchJob are reactors that queue writes so that at most
// one is in flight.
#include "coordinator/service.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <thread>

#include "common/error.h"
#include "coordinator/auth.h"
#include "coordinator/log_relay.h"
#include "proto/dtrain.grpc.pb.h"

namespace dtrain::coordinator {
namespace {

grpc::Status ToStatus(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidArgument: return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    case ErrorCode::kNotFound: return {grpc::StatusCode::NOT_FOUND, e.what()};
    case ErrorCode::kDeadlineExceeded: return {grpc::StatusCode::DEADLINE_EXCEEDED, e.what()};
    case ErrorCode::kUnavailable: return {grpc::StatusCode::UNAVAILABLE, e.what()};
    case ErrorCode::kAborted: return {grpc::StatusCode::ABORTED, e.what()};
    case ErrorCode::kDataLoss: return {grpc::StatusCode::DATA_LOSS, e.what()};
    case ErrorCode::kInternal: return {grpc::StatusCode::INTERNAL, e.what()};
    case ErrorCode::kPermissionDenied: return {grpc::StatusCode::PERMISSION_DENIED, e.what()};
  }
  return {grpc::StatusCode::UNKNOWN, e.what()};
}

// The bearer-token check every Coordinator RPC runs before it touches the
// core (auth.h). The message names the role and the RPC, never a token.
grpc::Status Authorize(const Authorizer& auth, grpc::CallbackServerContext* ctx, Role role,
                       const char* rpc) {
  const auto& md = ctx->client_metadata();
  const auto it = md.find("authorization");
  const std::string_view value =
      it == md.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
  const AuthResult r = auth.Check(value, role, rpc);
  if (r.ok()) return grpc::Status::OK;
  spdlog::warn("rejected {} from {}: {}", rpc, ctx->peer(), r.message);
  return {r.code == AuthResult::kPermissionDenied ? grpc::StatusCode::PERMISSION_DENIED
                                                  : grpc::StatusCode::UNAUTHENTICATED,
          r.message};
}

// A stream refused by Authorize: finished at once.
template <class Reactor>
class Rejected final : public Reactor {
 public:
  explicit Rejected(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// Runs `fn` (unless `auth` failed) and finishes the unary reactor with its outcome.
template <class Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const grpc::Status& auth, Fn&& fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  grpc::Status status;
  try {
    fn();
  } catch (const Error& e) {
    status = ToStatus(e);
  } catch (const std::exception& e) {
    status = grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
  reactor->Finish(status);
  return reactor;
}

// One worker's long-lived stream. The first message must be Register.
class WorkerSessionReactor final
    : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  WorkerSessionReactor(CoordinatorCore& core, std::string peer) : core_(core), peer_(std::move(peer)) {
    channel_ = std::make_shared<Channel>(this);
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (!worker_id_.empty()) core_.OnWorkerDisconnected(worker_id_, channel_.get(), "stream ended");
      channel_->Close("stream ended");
      return;
    }
    if (worker_id_.empty()) {
      if (in_.msg_case() != v1::WorkerMessage::kRegister) {
        channel_->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "the first message of a worker session must be Register"));
        return;
      }
      worker_id_ = core_.RegisterWorker(in_.register_(), channel_);
    } else {
      core_.OnWorkerMessage(worker_id_, in_);
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override { channel_->WriteDone(ok); }

  void OnDone() override {
    channel_->Detach();
    delete this;
  }

 private:
  // The WorkerChannel the core holds; outlives the reactor safely.
  class Channel final : public WorkerChannel {
   public:
    explicit Channel(WorkerSessionReactor* r) : r_(r) {}
    void Send(const v1::CoordinatorMessage& msg) override {
      std::lock_guard<std::mutex> lock(mu_);
      if (!r_ || finishing_) return;
      queue_.push_back(msg);
      if (!writing_) StartNextLocked();
    }
    void Close(const std::string& reason) override {
      Finish(grpc::Status(grpc::StatusCode::ABORTED, reason));
    }
    void Finish(const grpc::Status& status) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!r_ || finishing_) return;
      finishing_ = true;
      status_ = status;
      queue_.clear();
      if (!writing_) r_->Finish(status_);
    }
    void WriteDone(bool ok) {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      queue_.pop_front();
      if (!r_) return;
      if (finishing_) {
        r_->Finish(status_);
      } else if (!queue_.empty() && ok) {
        StartNextLocked();
      }
    }
    void Detach() {
      std::lock_guard<std::mutex> lock(mu_);
      r_ = nullptr;
    }

   private:
    void StartNextLocked() {
      writing_ = true;
      r_->StartWrite(&queue_.front());
    }
    std::mutex mu_;
    WorkerSessionReactor* r_;
    std::deque<v1::CoordinatorMessage> queue_;  // front is in flight while writing_
    bool writing_ = false;
    bool finishing_ = false;
    grpc::Status status_;
  };

  CoordinatorCore& core_;
  std::string peer_;
  std::shared_ptr<Channel> channel_;
  std::string worker_id_;
  v1::WorkerMessage in_;
};

// WatchJob: writes the latest snapshot whenever the job changes, coalescing
// updates that arrive while a write is in flight; finishes after a terminal one.
// The core's callback holds only the shared Guard, never the reactor itself.
class WatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(CoordinatorCore& core, const std::string& job_id)
      : guard_(std::make_shared<Guard>()) {
    guard_->r = this;
    try {
      token_ = core.Watch(job_id, [g = guard_](const v1::Job& job) {
        std::lock_guard<std::mutex> lock(g->mu);
        if (g->r) g->r->UpdateLocked(job);
      });
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(guard_->mu);
      done_ = true;
      Finish(ToStatus(e));
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(guard_->mu);
    writing_ = false;
    if (!ok) {
      if (!done_) Finish(grpc::Status::OK);
      done_ = true;
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(guard_->mu);
    if (!done_ && !writing_) Finish(grpc::Status::CANCELLED);
    done_ = true;
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(guard_->mu);
      guard_->r = nullptr;
    }
    token_.reset();
    delete this;
  }

 private:
  struct Guard {
    std::mutex mu;
    WatchReactor* r = nullptr;
  };

  void UpdateLocked(const v1::Job& job) {
    if (done_ || saw_terminal_) return;
    *pending_.mutable_job() = job;
    has_pending_ = true;
    if (IsTerminal(job.state())) saw_terminal_ = true;
    if (!writing_) PumpLocked();
  }
  void PumpLocked() {
    if (done_) return;
    if (has_pending_) {
      out_ = pending_;
      has_pending_ = false;
      writing_ = true;
      StartWrite(&out_);
    } else if (saw_terminal_) {
      done_ = true;
      Finish(grpc::Status::OK);
    }
  }

  std::shared_ptr<Guard> guard_;
  std::shared_ptr<void> token_;
  v1::JobEvent pending_, out_;
  bool has_pending_ = false, writing_ = false, saw_terminal_ = false, done_ = false;
};

// The serialized answer handed to gRPC without a copy: the slice owns the string.
grpc::ByteBuffer ToByteBuffer(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); },
                    owned);
  return grpc::ByteBuffer(&slice, 1);
}

// ListWorkers is registered raw (ByteBuffer in and out): the core serializes
// its answer itself (CoordinatorCore::ListWorkersSerialized), and the request
// (ListWorkersRequest, no fields) is not parsed.
using ServiceBase = v1::Coordinator::WithRawCallbackMethod_ListWorkers<v1::Coordinator::CallbackService>;

class CoordinatorService final : public ServiceBase {
 public:
  CoordinatorService(CoordinatorCore& core, const Authorizer& auth)
      : core_(core), auth_(auth), logs_(core) {}

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* req,
                                      v1::SubmitJobResponse* resp) override {
    return Unary(ctx, Client(ctx, "SubmitJob"), [&] {
      std::vector<std::string> sets(req->set().begin(), req->set().end());
      *resp->mutable_job() = core_.Submit(req->spec_yaml(), sets);
    });
  }
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::Job* resp) override {
    return Unary(ctx, Client(ctx, "GetJob"), [&] { *resp = core_.GetJob(req->job_id()); });
  }
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx, const v1::ListJobsRequest*,
                                     v1::ListJobsResponse* resp) override {
    return Unary(ctx, Client(ctx, "ListJobs"), [&] {
      for (auto& j : core_.ListJobs()) *resp->add_jobs() = std::move(j);
    });
  }
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* req, v1::Job* resp) override {
    return Unary(ctx, Client(ctx, "CancelJob"), [&] { *resp = core_.Cancel(req->job_id()); });
  }
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer*,
                                        grpc::ByteBuffer* resp) override {
    return Unary(ctx, Client(ctx, "ListWorkers"),
                 [&] { *resp = ToByteBuffer(core_.ListWorkersSerialized()); });
  }
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchJobRequest* req) override {
    if (grpc::Status st = Client(ctx, "WatchJob"); !st.ok()) {
      return new Rejected<grpc::ServerWriteReactor<v1::JobEvent>>(st);
    }
    return new WatchReactor(core_, req->job_id());
  }
  grpc::ServerWriteReactor<v1::JobLogsChunk>* GetJobLogs(grpc::CallbackServerContext* ctx,
                                                         const v1::GetJobLogsRequest* req) override {
    if (grpc::Status st = Client(ctx, "GetJobLogs"); !st.ok()) {
      return new Rejected<grpc::ServerWriteReactor<v1::JobLogsChunk>>(st);
    }
    return logs_.Open(*req);
  }
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* WorkerSession(
      grpc::CallbackServerContext* ctx) override {
    if (grpc::Status st = Authorize(auth_, ctx, Role::kWorker, "WorkerSession"); !st.ok()) {
      return new Rejected<grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>>(st);
    }
    return new WorkerSessionReactor(core_, ctx->peer());
  }

 private:
  grpc::Status Client(grpc::CallbackServerContext* ctx, const char* rpc) const {
    return Authorize(auth_, ctx, Role::kClient, rpc);
  }

  CoordinatorCore& core_;
  const Authorizer& auth_;
  LogRelay logs_;
};

}  // namespace

void RunServer(CoordinatorCore& core, const std::string& listen, const std::atomic<bool>& stop,
               const std::function<void(int port)>& on_ready, const ServerSecurity& security) {
  grpc::EnableDefaultHealthCheckService(true);
  const Authorizer auth(security.client_token, security.join_token);
  CoordinatorService service(core, auth);
  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!security.tls_cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({security.tls_key_pem, security.tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  }
  // gRPC sets SO_REUSEPORT by default: a second coordinator on the same port
  // would start and share the traffic with the first. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, creds, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  // Keepalive so a vanished peer's stream is noticed even when it sends nothing.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    Fail(ErrorCode::kUnavailable,
         "cannot listen on " + listen + ": address already in use (another coordinator?), or not an address of this host" +
             (security.tls_cert_pem.empty() ? "" : ", or --tls-cert and --tls-key do not match"));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  on_ready(port);
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  spdlog::info("shutting down");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace dtrain::coordinator
