"""One training step at world size n: backward overlapped with bucketed allreduces.

Backward makes bucket b ready at ready_b (seconds after backward starts); the allreduces run
one at a time, in bucket order, on one communication stream:
    start_b = max(ready_b, end_{b-1}),  end_b = start_b + T(bytes_b)
    step    = forward + max(backward, end_last) + optimizer
    exposed = step - (forward + backward + optimizer)
Weak scaling (same per-GPU batch): efficiency = step(1) / step(n), images/s = n * batch / step.
Compute is assumed not to slow down while communication runs. Where the network has
shared_cores (the simulated cluster: every rank on one machine), every compute time (forward,
the ready times, backward, optimizer) is multiplied by f = max(1, world / shared_cores);
exposed is then step - f x (forward + backward + optimizer), and efficiency stays
step(1) / step(n) against the lone single worker. `compute_scale` replaces f (e.g. a compute
time measured under the same sharing). Where the network says comm_overlaps_compute = false,
every bucket is ready only when backward ends: step = f x (fwd + bwd + opt) + sum of T(bytes_b).
"""
from dataclasses import dataclass
from typing import List, Optional

from bucket_plan import PlannedBucket
from collectives import allreduce_seconds, layout
from network import Network
from step_profile import Profile


@dataclass
class StepPrediction:
    world: int
    hosts: int
    local: int
    algorithm: str
    step_s: float
    comm_s: float      # sum of the allreduce times (busy time of the comm stream)
    exposed_s: float
    images_per_s: float
    efficiency: float


def simulate_step(profile: Profile, buckets: List[PlannedBucket], net: Network, world: int,
                  algorithm: str, compute_scale: Optional[float] = None) -> StepPrediction:
    hosts, local = layout(world, net.gpus_per_node)
    f = net.compute_slowdown(world) if compute_scale is None else compute_scale
    end = 0.0
    busy = 0.0
    for b in buckets:
        t = allreduce_seconds(net, algorithm, world, b.wire_bytes)
        ready = b.ready_s if net.comm_overlaps_compute else profile.backward_s
        end = max(f * ready, end) + t
        busy += t
    step = f * profile.forward_s + max(f * profile.backward_s, end) + f * profile.optimizer_s
    return StepPrediction(world, hosts, local, algorithm, step, busy, step - f * profile.step_s,
                          world * profile.batch / step, profile.step_s / step)
