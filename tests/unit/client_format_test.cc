// Unit tests for client/format, client/progress and client/exit_code: pure
// text and mapping code of the dtrain CLI.
#include <gtest/gtest.h>

#include <cmath>

#include "client/exit_code.h"
#include "client/format.h"
#include "client/progress.h"

namespace dtrain::cli {
namespace {

TEST(ClientFormat, Duration) {
  EXPECT_EQ(FormatDuration(0.42), "0.4s");
  EXPECT_EQ(FormatDuration(9.96), "10.0s");
  EXPECT_EQ(FormatDuration(59.4), "59s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(2 * 3600 + 7 * 60 + 10), "2h07m");
  EXPECT_EQ(FormatDuration(3 * 86400 + 4 * 3600), "3d04h");
  EXPECT_EQ(FormatDuration(-1), "-");
  EXPECT_EQ(FormatDuration(std::nan("")), "-");
}

TEST(ClientFormat, Bytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1024), "1 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(268435456), "256 MiB");
  EXPECT_EQ(FormatBytes(int64_t{80} << 30), "80 GiB");
  EXPECT_EQ(FormatBytes(-5), "-");
}

TEST(ClientFormat, RatePercentFixedTimestamp) {
  EXPECT_EQ(FormatRate(950.34), "950.3");
  EXPECT_EQ(FormatRate(12345), "12.3k");
  EXPECT_EQ(FormatRate(1730000), "1.73M");
  EXPECT_EQ(FormatRate(-1), "-");
  EXPECT_EQ(FormatPercent(0.9123), "91.23%");
  EXPECT_EQ(FormatPercent(-1), "-");
  EXPECT_EQ(FormatFixed(0.123456, 4), "0.1235");
  EXPECT_EQ(FormatTimestamp(0), "-");
  EXPECT_EQ(FormatTimestamp(1700000000).size(), std::string("2023-11-14 22:13:20").size());
}

TEST(ClientFormat, TableAlignsColumnsAndTrimsTrailingSpaces) {
  Table t({"ID", "STATE", "STEP"}, {false, false, true});
  t.AddRow({"j-1", "RUNNING", "5"});
  t.AddRow({"job-22", "QUEUED"});  // missing cell prints empty
  EXPECT_EQ(t.Render(),
            "ID      STATE    STEP\n"
            "j-1     RUNNING     5\n"
            "job-22  QUEUED\n");
  EXPECT_EQ(t.Render("  ").substr(0, 4), "  ID");
}

TEST(ClientProgress, Bar) {
  EXPECT_EQ(RenderProgressBar(0, 10, 12), "[>         ]");
  EXPECT_EQ(RenderProgressBar(5, 10, 12), "[=====>    ]");
  EXPECT_EQ(RenderProgressBar(10, 10, 12), "[==========]");
  EXPECT_EQ(RenderProgressBar(99, 10, 12), "[==========]");
  EXPECT_EQ(RenderProgressBar(3, 0, 6), "[    ]");
}

TEST(ClientProgress, LineShowsEveryFigure) {
  ProgressView v;
  v.state = "RUNNING";
  v.step = 1200;
  v.total_steps = 4680;
  v.epoch = 3;
  v.loss = 0.43214;
  v.eval_accuracy = 0.8812;
  v.images_per_second = 12345;
  v.eta_seconds = 252;
  EXPECT_EQ(RenderProgressLine(v, false),
            "RUNNING step 1200/4680 25.6% | epoch 3 | loss 0.4321 | acc 88.12% | 12.3k img/s | "
            "ETA 4m12s");
  const std::string with_bar = RenderProgressLine(v, true);
  EXPECT_NE(with_bar.find("[=====>"), std::string::npos) << with_bar;
  EXPECT_EQ(RenderProgressLine(v, true, 30).size(), 30u);
}

TEST(ClientProgress, LineBeforeFirstStepShowsMessage) {
  ProgressView v;
  v.state = "QUEUED";
  v.message = "waiting for 4 workers";
  EXPECT_EQ(RenderProgressLine(v, true), "QUEUED waiting for 4 workers");
  v.eval_accuracy = -1;
  v.state = "RUNNING";
  v.total_steps = 100;
  v.message = "";
  EXPECT_EQ(RenderProgressLine(v, false), "RUNNING step 0/100 0.0% | epoch 0");
}

TEST(ClientProgress, EtaFromObservedRate) {
  EtaEstimator eta;
  EXPECT_LT(eta.SecondsLeft(100), 0);
  eta.Observe(10.0, 10);
  EXPECT_LT(eta.SecondsLeft(100), 0);  // one point: no rate yet
  eta.Observe(20.0, 30);               // 2 steps/s
  EXPECT_DOUBLE_EQ(eta.SecondsLeft(100), 35.0);
  eta.Observe(21.0, 5);  // step went back (restart): start over
  EXPECT_LT(eta.SecondsLeft(100), 0);
}

TEST(ClientProgress, ThrottleOneLinePerSecondPlusStateChanges) {
  LineThrottle th(1.0);
  EXPECT_TRUE(th.Allow(0.0, "QUEUED"));
  EXPECT_TRUE(th.Allow(0.1, "RUNNING"));   // state change
  EXPECT_FALSE(th.Allow(0.5, "RUNNING"));
  EXPECT_FALSE(th.Allow(1.05, "RUNNING"));
  EXPECT_TRUE(th.Allow(1.2, "RUNNING"));
  EXPECT_TRUE(th.Allow(1.3, "SUCCEEDED"));
}

TEST(ClientExitCode, FromGrpcStatus) {
  using grpc::StatusCode;
  EXPECT_EQ(ExitCodeForStatus(StatusCode::OK, true), kExitOk);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::INVALID_ARGUMENT, true), kExitUsage);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNAVAILABLE, false), kExitUnreachable);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::DEADLINE_EXCEEDED, false), kExitUnreachable);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::DEADLINE_EXCEEDED, true), kExitServerError);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::NOT_FOUND, true), kExitNotFound);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::INTERNAL, true), kExitServerError);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNIMPLEMENTED, true), kExitServerError);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNAUTHENTICATED, true), kExitUnauthorized);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::PERMISSION_DENIED, true), kExitUnauthorized);
  EXPECT_EQ(kExitUnauthorized, 6);
  EXPECT_FALSE(IsTransient(StatusCode::UNAUTHENTICATED));
  EXPECT_TRUE(IsTransient(StatusCode::UNAVAILABLE));
  EXPECT_FALSE(IsTransient(StatusCode::NOT_FOUND));
  EXPECT_NE(std::string(ExitCodeHelp()).find("4  not found"), std::string::npos);
  EXPECT_NE(std::string(ExitCodeHelp()).find("6  not authorized"), std::string::npos);
}

}  // namespace
}  // namespace dtrain::cli
