#!/usr/bin/env python3
"""allreduce-bench through the service (coordinator + 2 workers + CLI) beside a
plain UCX point-to-point transfer of the same size, on this machine, in one run.

  python3 bench/allreduce_vs_p2p.py [--max-bytes N] [--reps R]

1. Runs the `allreduce-bench` job (fp32, then fp16) on 2 workers through the
   service and reads the rows from `dtrain status --json`.
2. Runs build/bin/ucx_p2p_vs_allreduce (2 processes, same endpoint mode as the
   workers) for the point-to-point bandwidth: the transport's limit here.
3. Prints one table: size, p2p GB/s, busbw of each dtype, and busbw / p2p.
No assertions: it reports (machines are shared and noisy)."""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from cluster import BIN, Cluster  # noqa: E402

SPEC = """name: bench-{dtype}
kind: allreduce-bench
workers: 2
allreduce: {{dtype: {dtype}, timeout_seconds: 120}}
bench: {{min_bytes: 1024, max_bytes: {max_bytes}, iterations: 20, warmup: 3}}
"""


def service_rows(c, dtype, max_bytes):
    path = c.write_spec(f"{dtype}.yaml", SPEC.format(dtype=dtype, max_bytes=max_bytes))
    r = c.cli("submit", path, "--wait", timeout=1800)
    if r.returncode != 0:
        sys.exit(f"allreduce-bench {dtype} failed: {r.stderr}")
    job = c.job(r.stdout.strip())
    return {int(row["bytes"]): row for row in job["bench"]["rows"]}


def p2p_rows(max_bytes, reps):
    mode = os.environ.get("DTRAIN_UCX_SAME_HOST_ERROR_MODE", "none")  # as the workers use
    out = subprocess.run([f"{BIN}/ucx_p2p_vs_allreduce", "1024", str(max_bytes), mode, str(reps)],
                         capture_output=True, text=True, timeout=3600,
                         env=dict(os.environ, UCX_NET_DEVICES="lo"))
    if out.returncode != 0:
        sys.exit(f"ucx_p2p_vs_allreduce failed: {out.stderr}")
    rows, header = {}, ""
    for line in out.stdout.splitlines():
        if line.startswith("same-host error mode"):
            header = line
        f = line.split()
        if len(f) == 8 and f[0].isdigit():  # bytes seg:win p2p fp32 ratio fp16 ratio verified
            rows[int(f[0])] = float(f[2])
    return rows, header


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-bytes", type=int, default=256 << 20)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with Cluster(workers=2, heartbeat_timeout=30) as c:
        f32 = service_rows(c, "fp32", a.max_bytes)
        f16 = service_rows(c, "fp16", a.max_bytes)
    p2p, header = p2p_rows(a.max_bytes, a.reps)
    print(f"\nallreduce-bench through the service, 2 workers on this machine; p2p: {header}")
    print(f"{'bytes':>11} {'p2p GB/s':>9} {'fp32 busbw':>11} {'ratio':>6} {'fp16 busbw':>11} {'ratio':>6}")
    for size in sorted(f32):
        p = p2p.get(size, 0.0)
        b32, b16 = f32[size]["busbw_gbps"], f16[size]["busbw_gbps"]
        r32 = f"{b32 / p:6.2f}" if p else "     -"
        r16 = f"{b16 / p:6.2f}" if p else "     -"
        ok = "" if f32[size]["verified"] and f16[size]["verified"] else "  NOT VERIFIED"
        print(f"{size:>11} {p:9.2f} {b32:11.2f} {r32} {b16:11.2f} {r16}{ok}")


if __name__ == "__main__":
    main()
