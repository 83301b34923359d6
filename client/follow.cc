#include "client/follow.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <thread>

#include "client/exit_code.h"
#include "client/format.h"
#include "client/progress.h"
#include "client/render.h"

namespace dtrain::cli {

namespace {

constexpr double kStreamSegmentSeconds = 300;  // a stream's deadline; then it is reopened
constexpr int kPollsBeforeStreamRetry = 5;     // after a broken stream: 5 polls, 1 s apart
constexpr double kGiveUpSeconds = 60;          // coordinator unreachable this long: exit 3
constexpr double kRedrawSeconds = 0.1;         // terminal redraw at most 10 times a second

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string WallClock() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
  return buf;
}

class Printer {
 public:
  Printer(std::FILE* out, std::string job_id)
      : out_(out), job_id_(std::move(job_id)), tty_(isatty(fileno(out)) != 0) {}

  void Update(const v1::Job& job) {
    const double now = Now();
    // A queued job's new reason is shown at once, like a new state.
    const std::string key =
        JobStateName(job.state()) + (job.state() == v1::QUEUED ? "|" + job.reason() : "");
    if (job.state() == v1::RUNNING && job.step() > 0) eta_.Observe(now, job.step());
    ProgressView view = ToProgressView(job);
    if (job.state() == v1::RUNNING) view.eta_seconds = eta_.SecondsLeft(job.total_steps());
    if (tty_) {
      const bool changed = key != last_key_;
      if (!changed && !IsTerminal(job.state()) && now - last_draw_ < kRedrawSeconds) return;
      std::fprintf(out_, "\r\033[K%s %s", job_id_.c_str(),
                   RenderProgressLine(view, true, Width() - 2 - static_cast<int>(job_id_.size()))
                       .c_str());
      line_open_ = true;
      last_draw_ = now;
    } else if (throttle_.Allow(now, key)) {
      std::fprintf(out_, "%s %s %s\n", WallClock().c_str(), job_id_.c_str(),
                   RenderProgressLine(view, false).c_str());
    }
    last_key_ = key;
    std::fflush(out_);
  }

  // A line about the connection ("stream lost, polling"), between updates.
  void Note(const std::string& text) {
    CloseLine();
    std::fprintf(out_, "%s%s\n", tty_ ? "" : (WallClock() + " ").c_str(), text.c_str());
    std::fflush(out_);
  }

  void Finish(const v1::Job& job, double now_unix) {
    CloseLine();
    std::string line = "job " + job.id() + " " + JobStateName(job.state());
    const double elapsed = JobElapsedSeconds(job, now_unix);
    if (elapsed >= 0) line += " after " + FormatDuration(elapsed);
    if (!job.reason().empty()) line += ": " + job.reason();
    if (job.state() == v1::SUCCEEDED && job.has_train() && job.train().steps() > 0) {
      line += ": loss " + FormatFixed(job.train().final_loss(), 4) + ", accuracy " +
              FormatPercent(job.train().eval_accuracy()) + ", " +
              FormatRate(job.train().images_per_second()) + " img/s";
    }
    line += " (details: dtrain status " + job.id() + ")";
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }

 private:
  void CloseLine() {
    if (line_open_) std::fputc('\n', out_);
    line_open_ = false;
  }
  int Width() const {
    winsize ws{};
    if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
    return 100;
  }

  std::FILE* out_;
  std::string job_id_;
  bool tty_;
  bool line_open_ = false;
  double last_draw_ = 0;
  std::string last_key_;  // state, and a queued job's reason
  EtaEstimator eta_;
  LineThrottle throttle_;
};

}  // namespace

v1::Job FollowJob(CoordinatorClient& client, const std::string& job_id, std::FILE* out) {
  Printer printer(out, job_id);
  v1::Job job = client.GetJob(job_id);  // unknown id or no coordinator: fail now
  printer.Update(job);

  std::optional<double> down_since;  // first failure of the current outage
  bool stream_failure_noted = false;
  const auto on_failure = [&](const CliError& e) {
    if (!e.transient()) throw e;
    const double now = Now();
    if (!down_since) {
      down_since = now;
      printer.Note("lost the coordinator: " + std::string(e.what()) + "; retrying for " +
                   FormatDuration(kGiveUpSeconds));
    } else if (now - *down_since > kGiveUpSeconds) {
      throw e;
    }
  };
  const auto on_success = [&] {
    if (down_since) printer.Note("reconnected to the coordinator at " + client.address());
    down_since.reset();
  };

  while (!IsTerminal(job.state())) {
    try {
      const auto end = client.WatchJob(job_id, kStreamSegmentSeconds, [&](const v1::Job& j) {
        on_success();
        job = j;
        printer.Update(job);
        return !IsTerminal(job.state());
      });
      if (end == CoordinatorClient::WatchEnd::kExpired) continue;  // reopen at once
      if (IsTerminal(job.state())) break;
      // kClosed before the end: fall through to polling, then reopen.
    } catch (const CliError& e) {
      if (e.code() == kExitNotFound || e.code() == kExitUsage || e.code() == kExitUnauthorized) throw;
      if (e.transient()) {
        on_failure(e);
      } else if (!stream_failure_noted) {
        stream_failure_noted = true;
        printer.Note("watch stream failed (" + std::string(e.what()) + "); polling instead");
      }
    }
    for (int i = 0; i < kPollsBeforeStreamRetry && !IsTerminal(job.state()); ++i) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      try {
        job = client.GetJob(job_id);
        on_success();
        printer.Update(job);
      } catch (const CliError& e) {
        on_failure(e);
      }
    }
  }
  printer.Finish(job, static_cast<double>(std::time(nullptr)));
  return job;
}

}  // namespace dtrain::cli
