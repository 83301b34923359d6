"""Allreduce time, simulated step by step: alpha + bytes/bandwidth per step, per step the
slowest edge.

Ranks are placed host-contiguously (rank r on host r // L). A collective is a list of phases;
a phase is `steps` synchronous steps in which every edge of every ring running in the phase
moves chunk = S * frac bytes. The steps of a phase are identical (same edges, same chunk),
so the phase costs steps x (its slowest edge's alpha + chunk / bandwidth [+ chunk /
reduce_Bps in reduce-scatter steps]). An edge inside a node uses the intra link; an edge
leaving a node shares the node's NICs with the other edges leaving it in the same step
(Network.flow_bandwidth).
Where the network has tcp_cpu_s_per_byte and shared_cores (the simulated cluster: every rank
a process on one machine's cores), each rank's own CPU work also bounds a step. Per chunk byte
a rank spends k = tcp_cpu_s_per_byte for each TCP side it has in the step (sending over an edge
that leaves its node, receiving over one) and 1/B_intra for a shared-memory receive (the copy;
the intra link was measured with a core per process), and the ranks share the cores, so
  step >= f x max over ranks (tcp_sides x k + shm_receives / B_intra) x chunk,
  f = max(1, world / shared_cores); the reduction (reduce-scatter) is then also f times slower.
  ring, n ranks:    2(n-1) steps of S/n (n-1 of them reduce); one ring over all ranks.
  hierarchical, H hosts x L: intra reduce-scatter (H rings of L) L-1 steps of S/L; then L
    rings across hosts (local rank l of each host) allreduce S/L: 2(H-1) steps of S/(L*H),
    L flows leave every node; then intra all-gather, L-1 steps of S/L.
  With L = 1 hierarchical is the ring; with H = 1 both are the intra-node ring.
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

from network import Network

ALGORITHMS = ("ring", "hierarchical")


@dataclass(frozen=True)
class Phase:
    name: str
    steps: int
    frac: float       # chunk per step = frac * S
    reduce: bool      # a reduce-scatter step sums what it receives
    edges: Tuple[Tuple[bool, int], ...]  # distinct (crosses_node, flows leaving that node)
    loads: Tuple[Tuple[int, int], ...]  # distinct per-rank (TCP sides, shm receives)
    world: int        # ranks in the collective (they all run this step's rings at once)


def layout(world: int, gpus_per_node: int) -> Tuple[int, int]:
    """(hosts, ranks per host) for host-contiguous placement; uneven hosts are refused."""
    if world < 1:
        raise ValueError(f"world must be >= 1, got {world}")
    local = min(world, gpus_per_node)
    if world % local:
        raise ValueError(f"world {world} does not fill nodes of {gpus_per_node} GPUs evenly")
    return world // local, local


def _edges(rings: Sequence[Sequence[int]], local: int):
    """Every edge of every ring of one step: the distinct classes (does it leave its node, how
    many edges leave that node in the same step), and the distinct per-rank loads (TCP sides:
    sends and receives over node-leaving edges; shared-memory receives)."""
    out: Dict[int, int] = {}
    edges: List[Tuple[bool, int]] = []
    load: Dict[int, List[int]] = {}
    for ring in rings:
        for i, r in enumerate(ring):
            nxt = ring[(i + 1) % len(ring)]
            if len(ring) < 2:
                continue
            cross = r // local != nxt // local
            if cross:
                out[r // local] = out.get(r // local, 0) + 1
                load.setdefault(r, [0, 0])[0] += 1
                load.setdefault(nxt, [0, 0])[0] += 1
            else:
                load.setdefault(nxt, [0, 0])[1] += 1
            edges.append((cross, r // local))
    classes = tuple(sorted({(cross, out[node] if cross else 0) for cross, node in edges}))
    return classes, tuple(sorted({tuple(v) for v in load.values()}))


@lru_cache(maxsize=None)
def phases(algorithm: str, world: int, gpus_per_node: int) -> Tuple[Phase, ...]:
    hosts, local = layout(world, gpus_per_node)
    if world == 1:
        return ()
    if algorithm == "ring":
        e, x = _edges([list(range(world))], local)
        return (Phase("reduce-scatter", world - 1, 1 / world, True, e, x, world),
                Phase("all-gather", world - 1, 1 / world, False, e, x, world))
    if algorithm != "hierarchical":
        raise ValueError(f"algorithm '{algorithm}'; allowed: {', '.join(ALGORITHMS)}")
    out = []
    intra, xi = _edges([[h * local + l for l in range(local)] for h in range(hosts)], local)
    inter, x = _edges([[h * local + l for h in range(hosts)] for l in range(local)], local)
    if local > 1:
        out.append(Phase("intra reduce-scatter", local - 1, 1 / local, True, intra, xi, world))
    if hosts > 1:
        out.append(Phase("inter reduce-scatter", hosts - 1, 1 / (local * hosts), True, inter, x,
                         world))
        out.append(Phase("inter all-gather", hosts - 1, 1 / (local * hosts), False, inter, x,
                         world))
    if local > 1:
        out.append(Phase("intra all-gather", local - 1, 1 / local, False, intra, xi, world))
    return tuple(out)


def step_seconds(net: Network, phase: Phase, size_bytes: float) -> float:
    chunk = size_bytes * phase.frac
    worst = 0.0
    for cross, flows in phase.edges:
        if cross:
            t = net.inter.alpha_s + chunk / net.flow_bandwidth(flows)
        else:
            t = net.intra.alpha_s + chunk / net.intra.bandwidth_Bps
        worst = max(worst, t)
    f = 1.0
    if net.tcp_cpu_s_per_byte is not None and net.shared_cores:
        f = net.compute_slowdown(phase.world)
        cpu = max(tcp * net.tcp_cpu_s_per_byte + shm / net.intra.bandwidth_Bps
                  for tcp, shm in phase.loads)
        worst = max(worst, f * cpu * chunk)
    if phase.reduce and net.reduce_Bps:
        worst += f * chunk / net.reduce_Bps
    return worst


def allreduce_seconds(net: Network, algorithm: str, world: int, size_bytes: float) -> float:
    return sum(p.steps * step_seconds(net, p, size_bytes)
               for p in phases(algorithm, world, net.gpus_per_node))


def busbw_Bps(net: Network, algorithm: str, world: int, size_bytes: float) -> float:
    """nccl-tests' bus bandwidth: bytes / time * 2(n-1)/n."""
    t = allreduce_seconds(net, algorithm, world, size_bytes)
    return size_bytes / t * 2 * (world - 1) / world if t > 0 else float("inf")
