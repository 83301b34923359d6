"""One training step at world size n: backward overlapped with bucketed allreduces.

Backward makes bucket b ready at ready_b (seconds after backward starts); the allreduces run
one at a time, in bucket order, on one communication stream:
    start_b = max(ready_b, end_{b-1}),  end_b = start_b + T(bytes_b)
    step    = forward + max(backward, end_last) + optimizer
    exposed = step - (forward + backward + optimizer)
Weak scaling (same per-GPU batch): efficiency = step(1) / step(n), images/s = n * batch / step.
Compute is assumed not to slow down while communication runs.
"""
from dataclasses import dataclass
from typing import List

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
                  algorithm: str) -> StepPrediction:
    hosts, local = layout(world, net.gpus_per_node)
    end = 0.0
    busy = 0.0
    for b in buckets:
        t = allreduce_seconds(net, algorithm, world, b.wire_bytes)
        end = max(b.ready_s, end) + t
        busy += t
    compute = profile.step_s
    step = profile.forward_s + max(profile.backward_s, end) + profile.optimizer_s
    return StepPrediction(world, hosts, local, algorithm, step, busy, step - compute,
                          world * profile.batch / step, compute / step)
