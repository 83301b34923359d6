#include "worker/comm/host_layout.h"

#include <algorithm>
#include <map>
#include <string>

namespace dtrain::comm {

HostLayout HostLayout::FromPeers(const std::vector<PeerInfo>& peers) {
  HostLayout l;
  std::map<std::string, int> index;
  l.host_of.resize(peers.size());
  l.local_of.resize(peers.size());
  for (size_t r = 0; r < peers.size(); ++r) {
    auto [it, fresh] = index.emplace(peers[r].host, int(l.hosts.size()));
    if (fresh) l.hosts.emplace_back();
    l.host_of[r] = it->second;
    l.local_of[r] = int(l.hosts[it->second].size());
    l.hosts[it->second].push_back(int(r));
  }
  for (const auto& h : l.hosts) l.max_local = std::max(l.max_local, int(h.size()));
  return l;
}

std::vector<size_t> HostLayout::Split(size_t count, int parts) {
  std::vector<size_t> b(size_t(parts) + 1);
  const size_t per = count / size_t(parts), extra = count % size_t(parts);
  for (int c = 0; c <= parts; ++c) b[c] = size_t(c) * per + std::min<size_t>(size_t(c), extra);
  return b;
}

// Chunk c holds shards [ceil(c*S/L), ceil((c+1)*S/L)): exactly those with
// floor(s*L/S) == c.
std::vector<size_t> HostLayout::IntraChunks(int h, const std::vector<size_t>& shard_bounds) const {
  const int L = int(hosts[h].size()), S = max_local;
  std::vector<size_t> b(size_t(L) + 1);
  for (int c = 0; c <= L; ++c) b[c] = shard_bounds[(c * S + L - 1) / L];
  return b;
}

int HostLayout::Owner(int h, int s) const {
  const int L = int(hosts[h].size());
  const int chunk = s * L / max_local;
  return hosts[h][(chunk + L - 1) % L];  // position p holds chunk (p + 1) % L
}

}  // namespace dtrain::comm
