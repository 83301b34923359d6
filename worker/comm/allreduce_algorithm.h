// Which allreduce schedule the UCX communicator runs, and the alpha-beta cost
// model `auto` chooses by (the same per-step model as bench/scaling):
//   ring:         2(n-1) steps, each alpha_net + (S/n)/beta_net when the ring
//                 crosses hosts (every edge carries S/n per step);
//   hierarchical: intra-host reduce-scatter and all-gather, 2(L-1) steps of
//                 alpha_shm + (S/L)/beta_shm, plus one cross-host ring per
//                 local rank on S/L, 2(H-1) steps of alpha_net + (S/(L·H))/
//                 (beta_net/L) (the L rings share the host's link).
// On one host both are the same ring; `auto` then says ring.
#pragma once

#include <cstddef>
#include <string>

namespace dtrain::comm {

enum class AllreduceAlgorithm { kRing, kHierarchical, kAuto };

const char* AllreduceAlgorithmName(AllreduceAlgorithm a);  // "ring" | "hierarchical" | "auto"
AllreduceAlgorithm ParseAllreduceAlgorithm(const std::string& name);  // throws kInvalidArgument

struct LinkCost {
  double alpha_s;      // per-message latency
  double bytes_per_s;  // bandwidth
};

// Defaults: shared memory (a few µs, a few GB/s for a CPU copy + reduce) and
// a 10 Gbit/s, 50 µs Ethernet link, the slow end of what clusters have.
struct NetworkCost {
  LinkCost intra{3e-6, 4e9};
  LinkCost inter{50e-6, 1.25e9};
};

double RingSeconds(size_t bytes, int hosts, int ranks, const NetworkCost& net);
double HierarchicalSeconds(size_t bytes, int hosts, int max_local, const NetworkCost& net);

// kRing or kHierarchical for `bytes` on this layout (one host, or one rank per
// host, is always kRing: the schedules coincide).
AllreduceAlgorithm ChooseAllreduceAlgorithm(size_t bytes, int hosts, int ranks, int max_local,
                                            const NetworkCost& net = {});

}  // namespace dtrain::comm
