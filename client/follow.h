// Following a job until it ends, for `dtrain watch` and `submit --wait`.
// Reads the WatchJob stream; when the stream breaks or the server closes it,
// polls GetJob once a second and reopens the stream every few seconds. Gives
// up (CliError, exit 3) only after the coordinator has been unreachable for
// 60 s in a row; NOT_FOUND and other permanent errors are thrown at once.
// Progress goes to `out`: on a terminal, one line redrawn in place (bar, step,
// epoch, loss, accuracy, images/s, ETA); otherwise plain timestamped lines, at
// most one a second plus every state change. Ends with a one-line outcome.
#pragma once

#include <cstdio>
#include <string>

#include "client/rpc.h"

namespace dtrain::cli {

// Returns the job in its terminal state.
v1::Job FollowJob(CoordinatorClient& client, const std::string& job_id, std::FILE* out);

}  // namespace dtrain::cli
