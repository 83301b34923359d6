"""Allreduce buckets: which tensors each collective carries, in the order backward completes them.

plan_buckets() is worker/engine/bucket_plan.cc's PlanBuckets line for line (tensors in FORWARD
order, each (offset, size, group) in elements; elem_bytes per group). Walking from the last
tensor to the first, a group's open bucket closes once it holds >= bucket_mb MiB; buckets are
then sorted by their lowest member index, highest first (bucket 0 completes first).

Plans of a Profile (make_plan), each bucket with its wire bytes and ready time:
  engine:MB   the CPU engine's GradAllreducer: one fp32 group, contiguous offsets; the wire
              dtype (--wire) sets the bytes sent.
  cuda:MB     the CUDA engine: group 0 (conv/FC weights, fp16 grads), group 1 (no_decay: BN
              gamma/beta and biases, fp32 grads), offsets aligned to 16 elements in each group
              (device_plan.h; the stem's input-channel padding is not modelled).
  fixed:a,b,.. fixed groups of a, b, ... tensors in backward order (the paper: 3,21,57,80).
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from step_profile import DTYPE_BYTES, Profile

MIB = 1048576.0


@dataclass
class Bucket:
    group: int
    tensors: List[int]  # member indices (forward order), decreasing
    offset: int = 0
    count: int = 0  # elements from offset to the end of the last member (gaps included)


def plan_buckets(tensors: Sequence[Tuple[int, int, int]], bucket_mb: float,
                 elem_bytes: Sequence[int]) -> List[Bucket]:
    """tensors: (offset, size, group) in forward order. Returns buckets in completion order."""
    if not tensors:
        raise ValueError("bucket plan: no gradient tensors")
    if not bucket_mb > 0:
        raise ValueError(f"bucket plan: bucket_mb must be > 0, got {bucket_mb}")
    groups = len(elem_bytes)
    last_end = [-1] * groups
    for i, (off, size, g) in enumerate(tensors):
        if g < 0 or g >= groups or elem_bytes[g] == 0:
            raise ValueError(f"bucket plan: tensor {i} is in group {g}; groups are 0..{groups - 1}")
        if off < last_end[g]:
            raise ValueError(f"bucket plan: tensor {i} (offset {off}) overlaps or precedes the "
                             f"tensor before it in group {g}")
        last_end[g] = off + size
    open_ = [Bucket(g, []) for g in range(groups)]
    open_count = [0] * groups
    closed: List[Bucket] = []

    def close(g):
        b = open_[g]
        lo, hi = tensors[b.tensors[-1]], tensors[b.tensors[0]]
        b.offset = lo[0]
        b.count = hi[0] + hi[1] - lo[0]
        closed.append(b)
        open_[g] = Bucket(g, [])
        open_count[g] = 0

    for i in range(len(tensors) - 1, -1, -1):
        g = tensors[i][2]
        limit = max(1, int(bucket_mb * MIB / float(elem_bytes[g])))  # size_t cast truncates
        open_[g].tensors.append(i)
        open_count[g] += tensors[i][1]
        if open_count[g] >= limit:
            close(g)
    for g in range(groups):
        if open_[g].tensors:
            close(g)
    closed.sort(key=lambda b: -b.tensors[-1])  # stable, like std::stable_sort
    return closed


@dataclass
class PlannedBucket:
    tensors: int      # member count
    wire_bytes: int   # bytes one allreduce of this bucket carries
    ready_s: float    # after backward starts: when its last tensor's gradient is final
    group: int = 0    # cuda plans: 0 fp16 weights, 1 fp32 BN/bias


def _aligned_offsets(sizes: Sequence[int], align: int) -> List[int]:
    offs, at = [], 0
    for s in sizes:
        offs.append(at)
        at = (at + s + align - 1) // align * align
    return offs


def make_plan(profile: Profile, plan: str, wire: str = None) -> List[PlannedBucket]:
    """plan: 'engine:MB' | 'cuda:MB' | 'fixed:a,b,...'; wire: dtype sent (engine/fixed)."""
    wire_bytes = DTYPE_BYTES[wire or profile.grad_dtype]
    fwd = profile.tensors_forward
    kind, _, arg = plan.partition(":")
    if kind == "fixed":
        try:
            counts = [int(x) for x in arg.split(",")]
        except ValueError:
            raise ValueError(f"plan '{plan}': fixed:N1,N2,... (tensor counts in backward order)")
        if sum(counts) != len(fwd) or min(counts) < 1:
            raise ValueError(f"plan '{plan}': counts must be >= 1 and sum to the profile's "
                             f"{len(fwd)} tensors (sum {sum(counts)})")
        out, at = [], 0
        bwd = profile.tensors_backward
        for c in counts:
            members = bwd[at:at + c]
            at += c
            out.append(PlannedBucket(c, sum(t.elems for t in members) * wire_bytes,
                                     max(t.ready_s for t in members)))
        return out
    try:
        mb = float(arg)
    except ValueError:
        raise ValueError(f"plan '{plan}': engine:MB, cuda:MB or fixed:N1,N2,...")
    if kind == "engine":
        offs = _aligned_offsets([t.elems for t in fwd], 1)
        buckets = plan_buckets([(o, t.elems, 0) for o, t in zip(offs, fwd)], mb, [4])
        per_group_bytes = [wire_bytes]
    elif kind == "cuda":
        groups = [1 if t.no_decay else 0 for t in fwd]
        offs = [0] * len(fwd)
        for g in (0, 1):
            idx = [i for i, gi in enumerate(groups) if gi == g]
            for i, o in zip(idx, _aligned_offsets([fwd[i].elems for i in idx], 16)):
                offs[i] = o
        buckets = plan_buckets([(offs[i], fwd[i].elems, groups[i]) for i in range(len(fwd))],
                               mb, [2, 4])
        per_group_bytes = [2, 4]
    else:
        raise ValueError(f"plan '{plan}': engine:MB, cuda:MB or fixed:N1,N2,...")
    return [PlannedBucket(len(b.tensors), b.count * per_group_bytes[b.group],
                          fwd[b.tensors[-1]].ready_s, b.group) for b in buckets]
