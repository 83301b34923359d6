// UCX backend of Communicator, over the daemon's long-lived UcxWorker.
// AllReduce: ring reduce-scatter + all-gather, each step cut into segments that
// are pipelined across steps (a segment is forwarded as soon as it is reduced),
// with a small window of receives in flight so transfer overlaps reduction;
// sends go straight from the user buffer and all-gather receives land in it.
// Hierarchical (UcxCommOptions.algorithm): the same ring reduce-scatter among
// the ranks of each host (peers' host names), a ring allreduce of each shard
// across hosts among its owners (one ring per local rank, so every host link
// is busy), and the ring all-gather inside each host; any count, uneven hosts
// (HostLayout). kAuto picks per call by size and layout (allreduce_algorithm.h).
// Broadcast: pipelined chain from the root. Barrier: dissemination.
// Messages are tagged (job_seq, source rank, call sequence): see UcxTag.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "worker/comm/allreduce_algorithm.h"
#include "worker/comm/communicator.h"
#include "worker/comm/ucx_worker.h"

namespace dtrain::comm {

// Pipelining knobs (tuned on one host over shm/CMA, see the bench
// ucx_p2p_vs_allreduce); defaults serve every size. segment_bytes >= 4 KiB,
// window >= 1, else kInvalidArgument.
struct UcxCommOptions {
  size_t segment_bytes = size_t(512) << 10;
  int window = 4;
  AllreduceAlgorithm algorithm = AllreduceAlgorithm::kRing;
};

// `peers` lists all ranks in rank order (peers[i].rank == i); peers[rank] is
// this process. Throws kInvalidArgument on an inconsistent peer list.
std::unique_ptr<Communicator> MakeUcxCommunicator(UcxWorker& worker, uint32_t job_seq,
                                                  int rank, std::vector<PeerInfo> peers,
                                                  UcxCommOptions options = {});

}  // namespace dtrain::comm
