"""Network descriptions and allreduce cost, simulated step by step (alpha + bytes/beta per step).

Network JSON (bench/scaling/networks/*.json):
  {"name": str, "gpus_per_node": L, "nics_per_node": int,
   "intra": {"alpha_s": s, "bandwidth_Bps": B/s},   one GPU's link to its ring neighbour in the
                                                     node, one direction (NVLink, shared memory)
   "inter": {"alpha_s": s, "bandwidth_Bps": B/s,    ONE NIC, one direction
             "latencies_per_step": k (default 1), "overhead_s": o (default 0)}
              --inter-latency-us d replaces alpha_s by k*d + o (k: one-way latencies a step
              waits, e.g. a rendezvous handshake before the data; o: software per step)
   "reduce_Bps": B/s or null,   memory-bound sum of a received chunk (CPU reductions); null:
                                reduction is free (fused on the GPU, hidden behind the transfer)
   "flow_max_nics": int (default nics_per_node): NICs one flow can stripe over,
   "shared_cores": int or null,    the simulated cluster only: all ranks are processes on ONE
                                machine with this many cores, so a rank computes max(1, world /
                                cores) times slower than the profile, and (with the next field)
                                its communication work is slowed the same way
   "tcp_cpu_s_per_byte": s/B or null, the simulated cluster only: CPU seconds a rank spends per
                                byte it sends, and again per byte it receives, over TCP (an edge
                                that leaves its node); collectives.py turns it into a step bound
   "comm_overlaps_compute": bool (default true): false where communication makes no progress
                                during backward (the simulated cluster: the allreduces start
                                when backward ends; overlap.py)}
Flows leaving a node at the same time share its NICs equally: each gets
min(nics_per_node / flows, flow_max_nics) x inter bandwidth. Real networks leave the last
three fields out (null, null, true).

collectives.py turns a network into allreduce times.
"""
import json
import os
from dataclasses import dataclass, replace
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Link:
    alpha_s: float
    bandwidth_Bps: float
    latencies_per_step: float = 1.0
    overhead_s: float = 0.0


@dataclass(frozen=True)
class Network:
    name: str
    gpus_per_node: int
    nics_per_node: int
    intra: Link
    inter: Link
    reduce_Bps: Optional[float] = None
    flow_max_nics: Optional[int] = None
    shared_cores: Optional[int] = None
    tcp_cpu_s_per_byte: Optional[float] = None
    comm_overlaps_compute: bool = True

    def compute_slowdown(self, world: int) -> float:
        """How much slower a rank computes than the single-worker profile (shared_cores)."""
        return max(1.0, world / self.shared_cores) if self.shared_cores else 1.0

    def flow_bandwidth(self, flows_out_of_node: int) -> float:
        cap = self.flow_max_nics or self.nics_per_node
        return min(self.nics_per_node / flows_out_of_node, cap) * self.inter.bandwidth_Bps

    @staticmethod
    def from_dict(d: dict, where: str = "network") -> "Network":
        try:
            net = Network(name=d.get("name", where), gpus_per_node=int(d["gpus_per_node"]),
                          nics_per_node=int(d["nics_per_node"]),
                          intra=Link(float(d["intra"]["alpha_s"]), float(d["intra"]["bandwidth_Bps"])),
                          inter=Link(float(d["inter"]["alpha_s"]), float(d["inter"]["bandwidth_Bps"]),
                                     float(d["inter"].get("latencies_per_step", 1.0)),
                                     float(d["inter"].get("overhead_s", 0.0))),
                          reduce_Bps=None if d.get("reduce_Bps") is None else float(d["reduce_Bps"]),
                          flow_max_nics=d.get("flow_max_nics"),
                          tcp_cpu_s_per_byte=(None if d.get("tcp_cpu_s_per_byte") is None
                                              else float(d["tcp_cpu_s_per_byte"])),
                          shared_cores=(None if d.get("shared_cores") is None
                                        else int(d["shared_cores"])),
                          comm_overlaps_compute=bool(d.get("comm_overlaps_compute", True)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: needs gpus_per_node, nics_per_node, intra/inter "
                             f"{{alpha_s, bandwidth_Bps}} ({e!r})") from e
        if (net.gpus_per_node < 1 or net.nics_per_node < 1 or min(net.intra.bandwidth_Bps,
                net.inter.bandwidth_Bps) <= 0 or min(net.intra.alpha_s, net.inter.alpha_s) < 0
                or (net.reduce_Bps is not None and net.reduce_Bps <= 0)
                or (net.tcp_cpu_s_per_byte is not None and net.tcp_cpu_s_per_byte < 0)
                or (net.shared_cores is not None and net.shared_cores < 1)):
            raise ValueError(f"{where}: counts (and shared_cores) must be >= 1, bandwidths > 0, "
                             f"alphas and tcp_cpu_s_per_byte >= 0")
        return net

    @staticmethod
    def load(name_or_path: str) -> "Network":
        path = name_or_path
        if not os.path.exists(path):
            path = os.path.join(HERE, "networks", name_or_path + ".json")
        if not os.path.exists(path):
            names = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "networks")))
            raise ValueError(f"network '{name_or_path}': no such file; built in: {', '.join(names)}")
        with open(path) as f:
            return Network.from_dict(json.load(f), path)

    def with_inter(self, gbit: float = None, latency_us: float = None) -> "Network":
        """The same network with the inter-node link's rate (Gbit/s per NIC) or alpha replaced.
        gbit 0 means an unshaped link: no rate bound (only the CPU bound, if any, limits)."""
        inter = self.inter
        if gbit is not None:
            if gbit < 0:
                raise ValueError(f"inter link rate {gbit} Gbit/s: must be > 0, or 0 for unshaped")
            inter = replace(inter, bandwidth_Bps=gbit * 1e9 / 8 if gbit > 0 else float("inf"))
        if latency_us is not None:
            inter = replace(inter, alpha_s=inter.latencies_per_step * latency_us * 1e-6
                            + inter.overhead_s)
        return replace(self, inter=inter)
