#include "client/rpc.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>

#include "client/exit_code.h"
#include "proto/dtrain.grpc.pb.h"

namespace dtrain::cli {

namespace {

constexpr double kMaxConnectSeconds = 5.0;
constexpr int kMaxMessageBytes = 256 << 20;  // ListJobs with many large jobs

std::chrono::system_clock::time_point After(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds));
}

std::string SecondsText(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", s);
  return buf;
}

}  // namespace

struct CoordinatorClient::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Coordinator::Stub> stub;
  double timeout = 10;
  bool connect_checked = false;
  bool tls = false;
  std::string authorization;  // "Bearer <token>", or empty

  std::string Unreachable(const std::string& address, const std::string& detail) const {
    return "cannot reach the coordinator at " + address + ": " + detail +
           "; is dtrain-coordinator running? (set --coordinator or DTRAIN_COORDINATOR" +
           (tls ? "; TLS: does --ca hold the CA that signed its certificate?)"
                : "; if it serves TLS, give --ca FILE or DTRAIN_CA)");
  }

  void Authorize(grpc::ClientContext& ctx) const {
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
  }

  // Waits (at most min(timeout, 5 s)) for the channel to leave CONNECTING, so a
  // black-holed address fails fast. A refused connection goes to
  // TRANSIENT_FAILURE at once; the call that follows then fails with the
  // detail gRPC gives (fail-fast calls).
  void CheckConnect(const std::string& address) {
    if (connect_checked) return;
    connect_checked = true;
    const auto deadline = After(std::min(timeout, kMaxConnectSeconds));
    auto state = channel->GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
           state != GRPC_CHANNEL_SHUTDOWN) {
      if (!channel->WaitForStateChange(state, deadline)) {
        throw CliError(kExitUnreachable,
                       Unreachable(address, "no connection within " +
                                                SecondsText(std::min(timeout, kMaxConnectSeconds)) +
                                                " s"),
                       /*transient=*/true);
      }
      state = channel->GetState(false);
    }
  }

  // Converts a failed status into the CliError main() reports.
  [[noreturn]] void Throw(const grpc::Status& status, const std::string& address,
                          const std::string& what, double deadline_seconds) const {
    const bool connected = channel->GetState(false) == GRPC_CHANNEL_READY;
    const ExitCode code = ExitCodeForStatus(status.error_code(), connected);
    const bool transient = IsTransient(status.error_code());
    std::string message = status.error_message();
    switch (status.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        message = Unreachable(address, message.empty() ? "unavailable" : message);
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        message = connected
                      ? "the coordinator at " + address + " did not answer " + what + " within " +
                            SecondsText(deadline_seconds) + " s (raise --timeout if it is busy)"
                      : Unreachable(address, "no answer within " + SecondsText(deadline_seconds) +
                                                 " s");
        break;
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::NOT_FOUND:
        if (message.empty()) message = what + ": " + std::to_string(status.error_code());
        break;  // the coordinator's message, as is: it names the field or the id
      case grpc::StatusCode::UNAUTHENTICATED:
      case grpc::StatusCode::PERMISSION_DENIED:
        message = "not authorized: the coordinator at " + address + " refused " + what + ": " +
                  message +
                  (authorization.empty() ? " (no token given: use --token-file FILE or DTRAIN_CLIENT_TOKEN)"
                                         : " (check the token in --token-file or DTRAIN_CLIENT_TOKEN)");
        break;
      case grpc::StatusCode::UNIMPLEMENTED:
        message = "the coordinator at " + address + " does not implement " + what +
                  " (is it an older version?): " + message;
        break;
      default:
        message = "the coordinator at " + address + " failed " + what + " (gRPC code " +
                  std::to_string(status.error_code()) + "): " + message;
    }
    throw CliError(code, message, transient);
  }

  // Runs one unary call with the deadline and throws on failure.
  template <typename Req, typename Resp, typename Method>
  Resp Call(const std::string& address, const char* what, Method method, const Req& req) {
    CheckConnect(address);
    grpc::ClientContext ctx;
    ctx.set_deadline(After(timeout));
    Authorize(ctx);
    Resp resp;
    const grpc::Status status = (stub.get()->*method)(&ctx, req, &resp);
    if (!status.ok()) Throw(status, address, what, timeout);
    return resp;
  }
};

CoordinatorClient::CoordinatorClient(const std::string& address, double timeout_seconds,
                                     const ConnectOptions& connect)
    : address_(address), impl_(std::make_unique<Impl>()) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!connect.ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = connect.ca_pem;
    creds = grpc::SslCredentials(ssl);
    impl_->tls = true;
  }
  if (!connect.token.empty()) impl_->authorization = "Bearer " + connect.token;
  impl_->channel = grpc::CreateCustomChannel(address, creds, args);
  impl_->stub = v1::Coordinator::NewStub(impl_->channel);
  impl_->timeout = timeout_seconds;
}

CoordinatorClient::~CoordinatorClient() = default;

v1::Job CoordinatorClient::SubmitJob(const std::string& spec_yaml,
                                     const std::vector<std::string>& sets) {
  v1::SubmitJobRequest req;
  req.set_spec_yaml(spec_yaml);
  for (const auto& s : sets) req.add_set(s);
  return impl_
      ->Call<v1::SubmitJobRequest, v1::SubmitJobResponse>(address_, "SubmitJob",
                                                           &v1::Coordinator::Stub::SubmitJob, req)
      .job();
}

v1::Job CoordinatorClient::GetJob(const std::string& job_id) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  return impl_->Call<v1::GetJobRequest, v1::Job>(address_, "GetJob",
                                                 &v1::Coordinator::Stub::GetJob, req);
}

std::vector<v1::Job> CoordinatorClient::ListJobs() {
  const auto resp = impl_->Call<v1::ListJobsRequest, v1::ListJobsResponse>(
      address_, "ListJobs", &v1::Coordinator::Stub::ListJobs, v1::ListJobsRequest());
  return {resp.jobs().begin(), resp.jobs().end()};
}

v1::Job CoordinatorClient::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  return impl_->Call<v1::CancelJobRequest, v1::Job>(address_, "CancelJob",
                                                    &v1::Coordinator::Stub::CancelJob, req);
}

std::vector<v1::Worker> CoordinatorClient::ListWorkers() {
  const auto resp = impl_->Call<v1::ListWorkersRequest, v1::ListWorkersResponse>(
      address_, "ListWorkers", &v1::Coordinator::Stub::ListWorkers, v1::ListWorkersRequest());
  return {resp.workers().begin(), resp.workers().end()};
}

CoordinatorClient::WatchEnd CoordinatorClient::WatchJob(
    const std::string& job_id, double max_seconds,
    const std::function<bool(const v1::Job&)>& on_event) {
  impl_->CheckConnect(address_);
  grpc::ClientContext ctx;
  ctx.set_deadline(After(max_seconds));
  impl_->Authorize(ctx);
  v1::WatchJobRequest req;
  req.set_job_id(job_id);
  auto reader = impl_->stub->WatchJob(&ctx, req);
  v1::JobEvent event;
  bool stopped = false;
  while (reader->Read(&event)) {
    if (!on_event(event.job())) {
      stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (stopped) return WatchEnd::kStopped;
  if (status.ok()) return WatchEnd::kClosed;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      impl_->channel->GetState(false) == GRPC_CHANNEL_READY) {
    return WatchEnd::kExpired;
  }
  impl_->Throw(status, address_, "WatchJob", max_seconds);
}

bool CoordinatorClient::GetJobLogs(const v1::GetJobLogsRequest& req, double max_seconds,
                                   const std::function<void(const v1::JobLogsChunk&)>& on_chunk) {
  impl_->CheckConnect(address_);
  grpc::ClientContext ctx;
  ctx.set_deadline(After(max_seconds));
  impl_->Authorize(ctx);
  auto reader = impl_->stub->GetJobLogs(&ctx, req);
  v1::JobLogsChunk chunk;
  while (reader->Read(&chunk)) on_chunk(chunk);
  const grpc::Status status = reader->Finish();
  if (status.ok()) return true;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      impl_->channel->GetState(false) == GRPC_CHANNEL_READY) {
    return false;
  }
  impl_->Throw(status, address_, "GetJobLogs", max_seconds);
}

}  // namespace dtrain::cli
