// Failure notices: when a rank's collective fails, it tells the peers it has
// endpoints to why (its own error message, or the one it was told), so a rank
// stuck on a LIVE peer that is itself stuck on the dead one fails at once and
// names the real cause instead of its partner ("rank 1 (host ha) stopped after a
// failure: ... connection to rank 3 (host hb) failed") - the hierarchical
// allreduce's cross-host partners otherwise only see each other.
//
// A notice is a tagged message (UcxTag(job_seq, sender, kNoticeCallSeq)),
// a call sequence no collective uses; it is looked for (probe, no posted
// receive) while a rank waits, and left-over notices of a job are drained
// when its communicator goes. Sending never blocks beyond `flush` (a dead
// peer's endpoint is skipped or its send abandoned).
#pragma once

#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "worker/comm/ucx_worker.h"

namespace dtrain::comm {

constexpr uint32_t kNoticeCallSeq = 0xffffff;  // never a collective's (they skip it)

// Sends `text` to every non-null endpoint in `eps` and progresses the worker
// until the sends complete or `flush` has passed.
void SendFailureNotices(UcxWorker& w, const std::vector<ucp_ep_h>& eps, uint32_t job_seq, int rank,
                        const std::string& text, std::chrono::milliseconds flush);

// A notice of job_seq that has arrived: its sender's rank and text; false if none.
bool TakeFailureNotice(UcxWorker& w, uint32_t job_seq, int* sender, std::string* text);

// Discards every notice of job_seq that has arrived.
void DrainFailureNotices(UcxWorker& w, uint32_t job_seq);

}  // namespace dtrain::comm
