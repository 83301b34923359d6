#!/usr/bin/env python3
"""Scaling model CLI: predicted step time, exposed communication and scaling efficiency of
data-parallel training at any world size, for flat ring and hierarchical allreduce.

  python3 bench/scaling/model.py --profile P.json --network NAME|FILE \\
      --world 4,8,..,2048 --algorithm ring,hierarchical [--plan fixed:3,21,57,80] [--csv out.csv]
  python3 bench/scaling/model.py --compare measured.csv [--network simcluster] [--profile P.json]

--world takes a list; "a..b" adds the powers of two from a to b. --plan: engine:MB (the CPU
engine's buckets), cuda:MB (the CUDA engine's two groups), fixed:N1,N2,... (tensor counts in
backward order). See README.md for the equations and the --compare format. Exit 2 on bad input.
"""
import argparse
import csv
import os
import sys
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bucket_plan import make_plan  # noqa: E402
from collectives import ALGORITHMS, allreduce_seconds, busbw_Bps  # noqa: E402
from network import Network  # noqa: E402
from overlap import simulate_step  # noqa: E402
from step_profile import DTYPE_BYTES, Profile  # noqa: E402

COLUMNS = ["world", "hosts", "local", "algorithm", "step_ms", "comm_ms", "exposed_ms",
           "images_per_s", "efficiency"]


def parse_worlds(text: str):
    out = []
    for part in text.split(","):
        if ".." in part:
            lo, hi = (int(x) for x in part.split(".."))
            w = lo
            while w <= hi:
                out.append(w)
                w *= 2
        else:
            out.append(int(part))
    return sorted(set(out))


def predict(profile, plan, net, worlds, algorithms):
    buckets = make_plan(profile, plan.spec, plan.wire)
    rows = []
    for w in worlds:
        for a in algorithms:
            p = simulate_step(profile, buckets, net, w, a)
            rows.append({"world": w, "hosts": p.hosts, "local": p.local, "algorithm": a,
                         "step_ms": p.step_s * 1e3, "comm_ms": p.comm_s * 1e3,
                         "exposed_ms": p.exposed_s * 1e3, "images_per_s": p.images_per_s,
                         "efficiency": p.efficiency})
    return buckets, rows


def print_table(rows, columns, out=None):
    out = out or sys.stdout
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)
    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)), file=out)
    for x in cells:
        print("  ".join(v.rjust(w) for v, w in zip(x, widths)), file=out)


def write_csv(path, rows, columns):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _num(row, key, lineno, path, kind=float):
    v = (row.get(key) or "").strip()
    if not v:
        return None
    try:
        return kind(float(v)) if kind is int else kind(v)
    except ValueError:
        raise ValueError(f"{path}:{lineno}: column {key} = {v!r} is not a number")


def compare(path, base_net, profile, plan, measured_compute=False):
    """Rows of measurements -> predicted vs measured (see README: --compare format).
    measured_compute: a step_s row with compute_s is predicted from that measured compute time
    (the profile scaled to it) instead of the network's shared_cores slowdown."""
    rows = []
    with open(path, newline="") as f:
        for lineno, r in enumerate(csv.DictReader(f), start=2):
            hosts = _num(r, "hosts", lineno, path, int)
            local = _num(r, "local_ranks", lineno, path, int)
            gbit = _num(r, "link_gbit", lineno, path)
            lat = _num(r, "link_latency_us", lineno, path)
            algo = (r.get("algorithm") or "").strip()
            if None in (hosts, local, gbit, lat) or algo not in ALGORITHMS:
                raise ValueError(f"{path}:{lineno}: needs hosts, local_ranks, link_gbit, "
                                 f"link_latency_us and algorithm in {ALGORITHMS}")
            net = base_net.with_inter(gbit, lat)
            net = replace(net, gpus_per_node=local)
            world = hosts * local
            base = {"hosts": hosts, "local": local, "gbit": gbit, "lat_us": lat,
                    "algorithm": algo}
            busbw = _num(r, "busbw_GBps", lineno, path)
            size = _num(r, "bytes", lineno, path, int)
            if busbw is not None and size and world > 1:  # one rank: nothing is sent
                if busbw <= 0:
                    raise ValueError(f"{path}:{lineno}: busbw_GBps = {busbw}: must be > 0")
                pred = busbw_Bps(net, algo, world, size) / 1e9
                rows.append({**base, "bytes": size, "quantity": "busbw_GBps",
                             "measured": busbw, "predicted": pred,
                             "error_pct": 100 * (pred - busbw) / busbw})
            step = _num(r, "step_s", lineno, path)
            compute = _num(r, "compute_s", lineno, path)
            if step is not None:
                if profile is None:
                    raise ValueError(f"{path}:{lineno}: a step_s row needs --profile")
                scale = compute / profile.step_s if measured_compute and compute else None
                pred = simulate_step(profile, make_plan(profile, plan.spec, plan.wire), net,
                                     world, algo, scale).step_s
                rows.append({**base, "bytes": profile.grad_bytes(plan.wire), "quantity": "step_s",
                             "measured": step, "predicted": pred,
                             "error_pct": 100 * (pred - step) / step})
            if compute is not None and profile is not None:
                # a rank's forward + backward + update seconds, measured in the same job
                pred = net.compute_slowdown(world) * profile.step_s
                rows.append({**base, "bytes": "", "quantity": "compute_s",
                             "measured": compute, "predicted": pred,
                             "error_pct": 100 * (pred - compute) / compute})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", help="single-worker profile JSON (step_profile.py)")
    ap.add_argument("--network", default="simcluster", help="a name in networks/ or a JSON file")
    ap.add_argument("--world", default="1..2048", help="world sizes: 4,8,16 or 4..2048")
    ap.add_argument("--algorithm", default="ring,hierarchical")
    ap.add_argument("--plan", default="engine:4", dest="spec",
                    help="engine:MB | cuda:MB | fixed:N1,N2,... (default engine:4)")
    ap.add_argument("--wire", choices=sorted(DTYPE_BYTES), help="dtype on the wire "
                    "(engine/fixed plans; default: the profile's grad_dtype)")
    ap.add_argument("--inter-gbit", type=float, help="replace the inter-node rate, Gbit/s per NIC")
    ap.add_argument("--inter-latency-us", type=float, help="replace the inter-node latency")
    ap.add_argument("--buckets", action="store_true", help="print the bucket plan")
    ap.add_argument("--compare", metavar="MEASURED_CSV", help="predicted vs measured rows")
    ap.add_argument("--measured-compute", action="store_true", help="--compare: predict a "
                    "step from the row's measured compute_s, not from shared_cores")
    ap.add_argument("--csv", help="also write the table as CSV")
    a = ap.parse_args(argv)
    try:
        net = Network.load(a.network).with_inter(a.inter_gbit, a.inter_latency_us)
        profile = Profile.load(a.profile) if a.profile else None
        if a.compare:
            rows = compare(a.compare, net, profile, a, a.measured_compute)
            cols = ["hosts", "local", "gbit", "lat_us", "algorithm", "bytes", "quantity",
                    "measured", "predicted", "error_pct"]
            print(f"# network {net.name}, compare {a.compare}")
            print_table(rows, cols)
            for q in sorted({r["quantity"] for r in rows}):
                e = max(abs(r["error_pct"]) for r in rows if r["quantity"] == q)
                print(f"# {q}: max |error| {e:.1f} %")
            if a.csv:
                write_csv(a.csv, rows, cols)
            return 0
        if profile is None:
            raise ValueError("--profile is required (or --compare)")
        algorithms = a.algorithm.split(",")
        for al in algorithms:
            if al not in ALGORITHMS:
                raise ValueError(f"algorithm '{al}'; allowed: {', '.join(ALGORITHMS)}")
        buckets, rows = predict(profile, a, net, parse_worlds(a.world), algorithms)
        print(f"# {profile.model}, batch {profile.batch}/GPU, single-worker step "
              f"{profile.step_s * 1e3:.2f} ms (fwd {profile.forward_s * 1e3:.2f}, bwd "
              f"{profile.backward_s * 1e3:.2f}, opt {profile.optimizer_s * 1e3:.2f}); plan "
              f"{a.spec}: {len(buckets)} buckets, {sum(b.wire_bytes for b in buckets):,} bytes; "
              f"network {net.name}")
        if a.buckets:
            print("# bucket  tensors  wire_bytes  ready_ms  ring@max_world_ms")
            for i, b in enumerate(buckets):
                w = max(parse_worlds(a.world))
                print(f"# {i:6d}  {b.tensors:7d}  {b.wire_bytes:10,d}  {b.ready_s * 1e3:8.3f}  "
                      f"{allreduce_seconds(net, 'ring', w, b.wire_bytes) * 1e3:.3f}")
        print_table(rows, COLUMNS)
        if a.csv:
            write_csv(a.csv, rows, COLUMNS)
    except (ValueError, OSError) as e:
        print(f"model.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
