// How the CLI shows jobs and workers: tables for `list` / `workers`, the
// readable summary of `status` (with the allreduce-bench table in the style
// of nccl-tests, or the train result), the progress view for `watch`, and
// JSON for --json (protobuf's JSON mapping with proto field names and every
// primitive field printed; note int64 fields are JSON strings there).
// Uses the generated messages only, no gRPC. `now` is unix seconds.
#pragma once

#include <string>
#include <vector>

#include "client/progress.h"
#include "proto/dtrain.pb.h"

namespace dtrain::cli {

const char* JobStateName(v1::JobState state);    // "RUNNING"; unknown: "UNSPECIFIED"
const char* WorkerStateName(v1::WorkerState state);
bool IsTerminal(v1::JobState state);              // SUCCEEDED, FAILED, CANCELLED

// ID NAME KIND STATE WORKERS STEP LOSS ACC IMG/S AGE/DURATION
std::string JobsTable(const std::vector<v1::Job>& jobs, double now);
// ID HOST LOCAL RANK DEVICES STATE JOB RANK LAST HEARTBEAT
std::string WorkersTable(const std::vector<v1::Worker>& workers);

// The `status` text: state, reason, ranks, progress, times, then the result.
std::string JobSummary(const v1::Job& job, double now);
// size count type time(us) algbw(GB/s) busbw(GB/s) verified, + average busbw.
std::string BenchTable(const v1::BenchResult& bench);
std::string TrainSummary(const v1::TrainResult& train);

// Time the job has run (running: until now), or waited (queued).
double JobElapsedSeconds(const v1::Job& job, double now);

// The progress line's view; a QUEUED job's message is why it waits (`reason`).
ProgressView ToProgressView(const v1::Job& job);

// JSON of one job (the kind's result always present: `bench` for
// allreduce-bench, `train` for train), and JSON arrays of jobs / workers.
std::string JobJson(const v1::Job& job);
std::string JobsJson(const std::vector<v1::Job>& jobs);
std::string WorkersJson(const std::vector<v1::Worker>& workers);

}  // namespace dtrain::cli
