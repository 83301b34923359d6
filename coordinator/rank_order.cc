// Topology order of ranks: each host's workers are contiguous and ordered by
// local rank, so hierarchical allreduce can reduce inside a node first.
#include <algorithm>
#include <cctype>
#include <numeric>

#include "coordinator/core.h"

namespace dtrain::coordinator {
namespace {

// "node2" < "node10": runs of digits compare as numbers.
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::string da = a.substr(i, ie - i), db = b.substr(j, je - j);
      da.erase(0, std::min(da.find_first_not_of('0'), da.size()));
      db.erase(0, std::min(db.find_first_not_of('0'), db.size()));
      if (da.size() != db.size()) return da.size() < db.size();
      if (da != db) return da < db;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

std::vector<size_t> TopologyOrder(const std::vector<v1::Worker>& workers) {
  std::vector<size_t> idx(workers.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) {
    const v1::Worker& a = workers[x];
    const v1::Worker& b = workers[y];
    if (a.host() != b.host()) return NaturalLess(a.host(), b.host());
    if (a.local_rank() != b.local_rank()) return a.local_rank() < b.local_rank();
    return NaturalLess(a.id(), b.id());
  });
  return idx;
}

}  // namespace dtrain::coordinator
