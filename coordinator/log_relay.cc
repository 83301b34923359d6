#include "coordinator/log_relay.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <vector>

#include "common/error.h"

namespace dtrain::coordinator {

// One client call: batches from the workers are coalesced while a write is in
// flight; the call finishes once every asked rank is done and the last batch
// is written. `r` is cleared when gRPC is done with the reactor.
struct LogRelay::Stream {
  class Reactor;
  std::mutex mu;
  Reactor* r = nullptr;
};

class LogRelay::Stream::Reactor final : public grpc::ServerWriteReactor<v1::JobLogsChunk> {
 public:
  Reactor(LogRelay& relay, std::shared_ptr<Stream> stream) : relay_(relay), stream_(std::move(stream)) {}

  // Called with stream_->mu held.
  void AddLocked(int rank, const std::string& host, const v1::LogLines* lines, const std::string& note,
                 bool rank_done) {
    if (finished_) return;
    if (lines) {
      for (const std::string& text : lines->lines()) {
        v1::LogLine* l = pending_.add_lines();
        l->set_rank(rank);
        l->set_host(host);
        l->set_text(text);
      }
    }
    if (!note.empty()) pending_.add_notes(note);
    if (rank_done) --open_;
    PumpLocked();
  }
  void StartLocked(int open) {
    open_ = open;
    PumpLocked();
  }
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(stream_->mu);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    PumpLocked();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(stream_->mu);
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(stream_->mu);
      stream_->r = nullptr;
    }
    relay_.Forget(stream_.get());
    delete this;
  }

 private:
  void PumpLocked() {
    if (finished_ || writing_) return;
    if (pending_.lines_size() > 0 || pending_.notes_size() > 0) {
      out_ = std::move(pending_);
      pending_.Clear();
      writing_ = true;
      StartWrite(&out_);
    } else if (open_ <= 0) {
      FinishLocked(grpc::Status::OK);
    }
  }

  LogRelay& relay_;
  std::shared_ptr<Stream> stream_;
  v1::JobLogsChunk pending_, out_;
  int open_ = 1 << 30;  // set by StartLocked
  bool writing_ = false;
  bool finished_ = false;
};

LogRelay::LogRelay(CoordinatorCore& core) : core_(core) {
  core_.SetLogLinesHandler(
      [this](const std::string& worker_id, const v1::LogLines& lines) { OnLines(worker_id, lines); });
  ticker_ = std::thread([this] {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      Tick();
    }
  });
}

LogRelay::~LogRelay() {
  stop_ = true;
  ticker_.join();
  core_.SetLogLinesHandler(nullptr);
}

grpc::ServerWriteReactor<v1::JobLogsChunk>* LogRelay::Open(const v1::GetJobLogsRequest& req) {
  auto stream = std::make_shared<Stream>();
  auto* reactor = new Stream::Reactor(*this, stream);
  std::lock_guard<std::mutex> slock(stream->mu);
  stream->r = reactor;
  std::vector<CoordinatorCore::LogSource> sources;
  std::string state;
  try {
    sources = core_.LogSources(req.job_id(), &state);
    if (sources.empty()) {
      reactor->AddLocked(-1, "", nullptr, "job " + req.job_id() + " is " + state + " and has no ranks yet", false);
      reactor->StartLocked(0);
      return reactor;
    }
    if (req.rank() < -1 || req.rank() >= int(sources.size())) {
      Fail(ErrorCode::kInvalidArgument,
           "--rank " + std::to_string(req.rank()) + ": job " + req.job_id() + " has " +
               std::to_string(sources.size()) + " rank(s) (0.." + std::to_string(int(sources.size()) - 1) + ")");
    }
  } catch (const Error& e) {
    reactor->FinishLocked(grpc::Status(e.code() == ErrorCode::kNotFound ? grpc::StatusCode::NOT_FOUND
                                                                        : grpc::StatusCode::INVALID_ARGUMENT,
                                       e.what()));
    return reactor;
  }
  int open = 0;
  const auto answer_by = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(kAnswerSeconds));
  std::lock_guard<std::mutex> lock(mu_);
  for (const CoordinatorCore::LogSource& s : sources) {
    if (req.rank() >= 0 && s.rank != req.rank()) continue;
    if (!s.channel) {
      reactor->AddLocked(s.rank, s.host, nullptr, s.unavailable, false);
      continue;
    }
    const uint64_t id = next_id_++;
    pending_[id] = Pending{stream, s.rank, s.host, s.worker_id, s.channel, answer_by, false};
    v1::CoordinatorMessage m;
    v1::LogRequest* lr = m.mutable_log_request();
    lr->set_request_id(id);
    lr->set_job_id(req.job_id());
    lr->set_tail(req.tail());
    lr->set_follow(req.follow());
    s.channel->Send(m);
    ++open;
  }
  reactor->StartLocked(open);
  return reactor;
}

void LogRelay::OnLines(const std::string& worker_id, const v1::LogLines& lines) {
  std::shared_ptr<Stream> stream;
  int rank = 0;
  std::string host;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(lines.request_id());
    if (it == pending_.end() || it->second.worker_id != worker_id) return;  // cancelled, or not ours
    it->second.answered = true;
    stream = it->second.stream;
    rank = it->second.rank;
    host = it->second.host;
    if (lines.done()) pending_.erase(it);
  }
  std::lock_guard<std::mutex> slock(stream->mu);
  if (!stream->r) return;
  const std::string note = lines.error().empty() ? "" : "rank " + std::to_string(rank) + ": " + lines.error();
  stream->r->AddLocked(rank, host, &lines, note, lines.done());
}

// Ranks that did not answer in time, or whose worker went away while
// following, are closed with a note saying what is known.
void LogRelay::Tick() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::pair<Pending, std::string>> closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      const Pending& p = it->second;
      std::string why;
      if (!p.answered && now > p.answer_by) {
        why = "worker " + p.worker_id + " on host " + p.host + " did not answer within " +
              std::to_string(int(kAnswerSeconds)) + " s";
      } else if (!core_.WorkerConnected(p.worker_id, p.channel.get())) {
        why = "worker " + p.worker_id + " on host " + p.host + " went away: " +
              core_.WorkerSummary(p.worker_id);
      }
      if (why.empty()) {
        ++it;
        continue;
      }
      closed.emplace_back(p, why);
      it = pending_.erase(it);
    }
  }
  for (auto& [p, why] : closed) {
    std::lock_guard<std::mutex> slock(p.stream->mu);
    if (p.stream->r) p.stream->r->AddLocked(p.rank, p.host, nullptr, "rank " + std::to_string(p.rank) + ": " + why, true);
  }
}

void LogRelay::Forget(const Stream* stream) {
  std::vector<std::pair<uint64_t, std::shared_ptr<WorkerChannel>>> cancel;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.stream.get() == stream) {
        cancel.emplace_back(it->first, it->second.channel);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [id, channel] : cancel) {
    v1::CoordinatorMessage m;
    m.mutable_log_request()->set_request_id(id);
    m.mutable_log_request()->set_cancel(true);
    channel->Send(m);
  }
}

}  // namespace dtrain::coordinator
