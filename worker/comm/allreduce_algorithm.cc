#include "worker/comm/allreduce_algorithm.h"

#include "common/error.h"

namespace dtrain::comm {

const char* AllreduceAlgorithmName(AllreduceAlgorithm a) {
  switch (a) {
    case AllreduceAlgorithm::kRing: return "ring";
    case AllreduceAlgorithm::kHierarchical: return "hierarchical";
    case AllreduceAlgorithm::kAuto: return "auto";
  }
  return "?";
}

AllreduceAlgorithm ParseAllreduceAlgorithm(const std::string& name) {
  if (name == "ring") return AllreduceAlgorithm::kRing;
  if (name == "hierarchical") return AllreduceAlgorithm::kHierarchical;
  if (name == "auto") return AllreduceAlgorithm::kAuto;
  Fail(ErrorCode::kInvalidArgument,
       "unknown allreduce algorithm '" + name + "': allowed are ring, hierarchical, auto");
}

double RingSeconds(size_t bytes, int hosts, int ranks, const NetworkCost& net) {
  if (ranks <= 1) return 0;
  const LinkCost& link = hosts > 1 ? net.inter : net.intra;  // the slowest edge paces every step
  return 2.0 * (ranks - 1) * (link.alpha_s + double(bytes) / ranks / link.bytes_per_s);
}

double HierarchicalSeconds(size_t bytes, int hosts, int max_local, const NetworkCost& net) {
  const double L = max_local, H = hosts, S = double(bytes);
  double t = 2.0 * (L - 1) * (net.intra.alpha_s + S / L / net.intra.bytes_per_s);
  if (hosts > 1) {
    t += 2.0 * (H - 1) * (net.inter.alpha_s + S / (L * H) / (net.inter.bytes_per_s / L));
  }
  return t;
}

AllreduceAlgorithm ChooseAllreduceAlgorithm(size_t bytes, int hosts, int ranks, int max_local,
                                            const NetworkCost& net) {
  if (hosts <= 1 || max_local <= 1) return AllreduceAlgorithm::kRing;
  return HierarchicalSeconds(bytes, hosts, max_local, net) < RingSeconds(bytes, hosts, ranks, net)
             ? AllreduceAlgorithm::kHierarchical
             : AllreduceAlgorithm::kRing;
}

}  // namespace dtrain::comm
