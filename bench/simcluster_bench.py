#!/usr/bin/python3
"""Ring vs hierarchical allreduce on the simulated multi-host cluster
(deploy/simcluster.py; needs root). For every topology (hosts x workers per
host) and link (rate/latency of each host's tbf-shaped link) it builds one
cluster and, per algorithm, runs an allreduce-bench job (busbw per size,
fp32) and a short training job (step time = global batch / images/s after the
trainer's warm-up steps). Writes a CSV and prints a table.

  /usr/bin/python3 bench/simcluster_bench.py [--topologies 2x2,4x2] [--links 1gbit/100us,5gbit/50us]
      [--algorithms ring,hierarchical] [--out bench/simcluster/results.csv]
  /usr/bin/python3 bench/simcluster_bench.py --shm-check   # do namespaces bypass the links?
  /usr/bin/python3 bench/simcluster_bench.py --calibrate 7 [--calibrate-layout 2x2]  # unshaped ring

Latency needs the netem qdisc; without it a link's latency is 0 (what the
CSV's link_latency_us says) and the run prints so. The machine is shared:
the CPU snapshot taken before the runs is printed and saved beside the CSV.
"""

import argparse
import csv
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../deploy"))
import simcluster  # noqa: E402

FIELDS = ["hosts", "local_ranks", "link_gbit", "link_latency_us", "algorithm", "bytes", "busbw_GBps",
          "step_s", "images_per_s", "kind", "model", "link_bytes_per_host", "compute_s"]

BENCH = """
name: simbench-{algo}
kind: allreduce-bench
workers: {workers}
allreduce: {{dtype: fp32, timeout_seconds: 300, algorithm: {algo}}}
bench: {{min_bytes: {min_bytes}, max_bytes: {max_bytes}, iterations: {iterations}}}
"""

TRAIN = """
name: simtrain-{algo}
kind: train
workers: {workers}
seed: 3
model: {model}
dataset: {{name: synthetic, classes: 10, channels: 3, image_size: 32, train_size: {train_size}, test_size: 16}}
batch_per_worker: {batch}
epochs: 1
max_steps: {steps}
schedule: {{warmup_epochs: 0}}
allreduce: {{dtype: fp16, timeout_seconds: 300, algorithm: {algo}}}
"""


def cpu_snapshot():
    return subprocess.run(["top", "-bn1"], capture_output=True, text=True).stdout.split("\n")[:12]


def run_job(c, name, spec, timeout):
    """(job, bytes through each host's link during it, error or None)."""
    before = c.link_stats()
    r = c.cli("submit", c.write_spec(name, spec), "--wait", timeout=timeout)
    job_id = r.stdout.strip()
    job = c.job(job_id) if job_id else {}
    after = c.link_stats()
    moved = max((after[h][0] - before[h][0] for h in after), default=0)
    if r.returncode != 0 or job.get("state") != "SUCCEEDED":
        return job, moved, (job.get("reason") or r.stderr.strip()).split("\n")[0]
    c.wait_idle(len(c.workers), timeout=60)
    return job, moved, None


def measure(a, hosts, per_host, rate, delay, algorithms, rows):
    base = dict(hosts=hosts, local_ranks=per_host, link_gbit=rate_gbit(rate), link_latency_us=delay)
    workers = hosts * per_host
    with simcluster.SimCluster(hosts, per_host, rate=rate, delay=f"{delay}us", bin_dir=a.bin_dir) as c:
        for algo in algorithms:
            spec = BENCH.format(algo=algo, workers=workers, min_bytes=a.min_bytes, max_bytes=a.max_bytes,
                                iterations=a.iterations)
            job, moved, err = run_job(c, f"bench-{algo}.yaml", spec, timeout=1200)
            if err:
                print(f"  {hosts}x{per_host} {rate} {algo}: allreduce-bench failed: {err}", flush=True)
                continue
            for r in job["bench"]["rows"]:
                rows.append(dict(base, algorithm=algo, bytes=int(r["bytes"]), busbw_GBps=round(r["busbw_gbps"], 4),
                                 step_s="", images_per_s="", kind="allreduce", model="",
                                 link_bytes_per_host=moved, compute_s=""))
                print(f"  {hosts}x{per_host} {rate:>7} {algo:>12} {int(r['bytes']):>10} B  busbw "
                      f"{r['busbw_gbps']:.3f} GB/s", flush=True)
            spec = TRAIN.format(algo=algo, workers=workers, model=a.model, batch=a.batch, steps=a.steps,
                                train_size=workers * a.batch * a.steps)
            job, moved, err = run_job(c, f"train-{algo}.yaml", spec, timeout=1800)
            if err:
                print(f"  {hosts}x{per_host} {rate} {algo}: train failed: {err}", flush=True)
                continue
            ips = job["train"]["images_per_second"]
            step_s = workers * a.batch / ips
            # scaling_efficiency = img/s over the sum of the ranks' compute-only rates
            # (batch / (forward+backward+update s)), so x step_s = the ranks' (harmonic) mean
            # compute+update seconds per step, measured under the same CPU sharing.
            eff = job.get("scaling_efficiency")
            compute_s = round(eff * step_s, 4) if eff else ""
            rows.append(dict(base, algorithm=algo, bytes="", busbw_GBps="", step_s=round(step_s, 4),
                             images_per_s=round(ips, 2), kind="train", model=a.model, link_bytes_per_host=moved,
                             compute_s=compute_s))
            print(f"  {hosts}x{per_host} {rate:>7} {algo:>12} train {a.model}: step {step_s:.3f} s, "
                  f"{ips:.1f} img/s, {moved / a.steps / 1e6:.1f} MB/step over each link", flush=True)


def rate_gbit(rate):
    bps = simcluster.parse_rate(rate)
    return 0 if bps is None else bps / 1e9


def shm_check(a):
    """Does inter-namespace traffic cross the shaped links? busbw and link bytes of a
    2-rank allreduce-bench in 4 layouts; see the printed verdict."""
    cases = [("2 hosts x 1, 1gbit", 2, 1, "1gbit", []),
             ("2 hosts x 1, 200mbit", 2, 1, "200mbit", []),
             ("2 hosts x 1, unshaped", 2, 1, "none", []),
             ("1 host x 2 (same namespace), 200mbit", 1, 2, "200mbit", []),
             ("2 namespaces x 1 claiming ONE host name (--host same), 200mbit", 2, 1, "200mbit",
              ["--host", "same"])]
    spec = BENCH.replace(", algorithm: {algo}", "").format(
        algo="", workers=2, min_bytes=1 << 20, max_bytes=64 << 20, iterations=a.iterations)
    out = []
    for label, hosts, per_host, rate, wargs in cases:
        with simcluster.SimCluster(hosts, per_host, rate=rate, bin_dir=a.bin_dir, worker_args=wargs) as c:
            job, moved, err = run_job(c, "check.yaml", spec, timeout=1200)
            if err:
                print(f"{label}: FAILED {err}")
                continue
            big = {int(r["bytes"]): r["busbw_gbps"] for r in job["bench"]["rows"]}
            line = (f"{label:66} busbw 16 MiB {big[16 << 20]:.3f}, 64 MiB {big[64 << 20]:.3f} GB/s; "
                    f"{moved / 1e6:.1f} MB through the busiest link")
            print(line, flush=True)
            out.append(line)
    return out


def calibrate(a):
    """For the scaling model's tcp_cpu_s_per_byte: `a.calibrate` ring allreduce-bench jobs of
    a.calibrate_layout (H hosts x L workers) on UNSHAPED links (one cluster), so only the
    2 cores bound them. Prints H x busbw per size (median, min, max): the TCP bytes per second
    the machine moves over all host links; bench/scaling/README.md turns it into the model's
    per-byte CPU cost."""
    rows = []
    hosts, per_host = (int(x) for x in a.calibrate_layout.lower().split("x"))
    spec = BENCH.format(algo="ring", workers=hosts * per_host, min_bytes=a.min_bytes,
                        max_bytes=a.max_bytes, iterations=a.iterations)
    with simcluster.SimCluster(hosts, per_host, rate="none", bin_dir=a.bin_dir) as c:
        for i in range(a.calibrate):
            job, moved, err = run_job(c, f"calib-{i}.yaml", spec, timeout=1200)
            if err:
                print(f"  repeat {i}: FAILED {err}", flush=True)
                continue
            for r in job["bench"]["rows"]:
                rows.append(dict(repeat=i, hosts=hosts, local_ranks=per_host, link_gbit=0, link_latency_us=0,
                                 algorithm="ring", bytes=int(r["bytes"]),
                                 busbw_GBps=round(r["busbw_gbps"], 4), link_bytes_per_host=moved))
            big = {int(r["bytes"]): r["busbw_gbps"] for r in job["bench"]["rows"]}
            print(f"  repeat {i}: busbw " + ", ".join(f"{b >> 20} MiB {v:.3f}" for b, v in sorted(big.items()))
                  + " GB/s", flush=True)
    out = []
    for size in sorted({r["bytes"] for r in rows}):
        v = sorted(r["busbw_GBps"] for r in rows if r["bytes"] == size)
        med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
        out.append(f"{size >> 20:>3} MiB: busbw median {med:.3f} GB/s (min {v[0]:.3f}, max {v[-1]:.3f}, "
                   f"{len(v)} repeats) -> H x busbw = {hosts} x median = {hosts * med:.3f} GB/s")
        print(out[-1], flush=True)
    return rows, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topologies", default="2x2,4x2", help="HOSTSxWORKERS, comma-separated")
    ap.add_argument("--links", default="1gbit/100us,5gbit/50us", help="RATE/LATENCY, comma-separated")
    ap.add_argument("--algorithms", default="ring,hierarchical")
    ap.add_argument("--min-bytes", type=int, default=1 << 20)
    ap.add_argument("--max-bytes", type=int, default=64 << 20)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--model", default="resnet18", help="train job's model (synthetic 32x32 images)")
    ap.add_argument("--batch", type=int, default=8, help="train job's batch per worker")
    ap.add_argument("--steps", type=int, default=10, help="train job's steps (the first 3 are warm-up)")
    ap.add_argument("--bin-dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "simcluster/results.csv"))
    ap.add_argument("--shm-check", action="store_true", help="only the shared-memory bypass check")
    ap.add_argument("--calibrate", type=int, default=0, metavar="N",
                    help="only N repeats of --calibrate-layout on unshaped links (the model's tcp_cpu_s_per_byte)")
    ap.add_argument("--calibrate-layout", default="2x2", help="HOSTSxWORKERS for --calibrate")
    a = ap.parse_args()
    reason = simcluster.unavailable_reason()
    if reason:
        sys.exit(f"simcluster_bench: {reason}")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    snap = cpu_snapshot()
    print("CPU before the runs (top -bn1):\n" + "\n".join(snap), flush=True)
    notes = [f"{time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}", *snap]
    if a.shm_check:
        notes += shm_check(a)
        with open(os.path.splitext(a.out)[0] + "-shm-check.txt", "w") as f:
            f.write("\n".join(notes) + "\n")
        return
    if a.calibrate:
        rows, lines = calibrate(a)
        base = os.path.splitext(a.out)[0] + "-calibration-" + a.calibrate_layout
        with open(base + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["repeat", *FIELDS[:7], "link_bytes_per_host"])
            w.writeheader()
            w.writerows(rows)
        notes += lines + [f"end {time.strftime('%Y-%m-%d %H:%M:%S')}; CPU after:", *cpu_snapshot()]
        with open(base + ".txt", "w") as f:
            f.write("\n".join(notes) + "\n")
        return
    netem = simcluster.qdisc_available("netem")
    if not netem:
        msg = "no netem qdisc in this kernel: links get their rate but latency 0 (link_latency_us = 0)"
        print(msg)
        notes.append(msg)
    rows = []
    for topo in a.topologies.split(","):
        hosts, per_host = (int(x) for x in topo.lower().split("x"))
        for link in a.links.split(","):
            rate, _, lat = link.partition("/")
            delay = simcluster.parse_delay(lat or "0") if netem else 0.0
            print(f"{hosts} hosts x {per_host} workers, link {rate} {delay:g} us", flush=True)
            busy = [f"{f[11]} {f[8]}%" for f in (l.split() for l in cpu_snapshot()[7:]) if len(f) > 11 and f[8] != "0.0"]
            notes.append(f"{topo} {link} at {time.strftime('%H:%M:%S')}: other processes {', '.join(busy) or 'idle'}")
            measure(a, hosts, per_host, rate, delay, a.algorithms.split(","), rows)
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    notes.append(f"end {time.strftime('%Y-%m-%d %H:%M:%S')}; CPU after:")
    notes += cpu_snapshot()
    with open(os.path.splitext(a.out)[0] + "-machine.txt", "w") as f:
        f.write("\n".join(notes) + "\n")
    print(f"\n{'hosts':>5} {'local':>5} {'Gbit':>5} {'us':>5} {'algorithm':>12} {'bytes':>10} "
          f"{'busbw GB/s':>10} {'step s':>8} {'img/s':>8}")
    for r in rows:
        print(f"{r['hosts']:>5} {r['local_ranks']:>5} {r['link_gbit']:>5g} {r['link_latency_us']:>5g} "
              f"{r['algorithm']:>12} {str(r['bytes']):>10} {str(r['busbw_GBps']):>10} {str(r['step_s']):>8} "
              f"{str(r['images_per_s']):>8}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
