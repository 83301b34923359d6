// HostLayout: which ranks share a host, from the peers' host names (ranks need
// not be contiguous per host; hosts are numbered in order of first rank), and
// the shard plan hierarchical allreduce follows on uneven hosts.
//
// The buffer is cut into S = max ranks per host "shards" (even split, the
// first count % S one element longer). On a host with L ranks, the ring
// reduce-scatter among them leaves local position p holding intra-host chunk
// (p + 1) % L, and chunk c is the contiguous run of shards s with
// floor(s * L / S) == c. So every shard has exactly one owner per host, and
// the owners of shard s (one per host, in host order) allreduce it across
// hosts. With equal hosts each rank owns exactly one shard.
#pragma once

#include <cstddef>
#include <vector>

#include "worker/comm/communicator.h"

namespace dtrain::comm {

struct HostLayout {
  std::vector<std::vector<int>> hosts;  // hosts[h] = its ranks, ascending
  std::vector<int> host_of;             // rank -> h
  std::vector<int> local_of;            // rank -> position within hosts[h]
  int max_local = 0;                    // S: the most ranks on one host

  static HostLayout FromPeers(const std::vector<PeerInfo>& peers);
  int num_hosts() const { return int(hosts.size()); }
  // Element offsets of `parts` near-equal pieces of `count` (size parts + 1).
  static std::vector<size_t> Split(size_t count, int parts);
  // Element bounds (size L + 1) of the intra-host chunks on host h, given the
  // shard bounds (size S + 1).
  std::vector<size_t> IntraChunks(int h, const std::vector<size_t>& shard_bounds) const;
  // The rank on host h that owns shard s after the intra-host reduce-scatter.
  int Owner(int h, int s) const;
};

}  // namespace dtrain::comm
