#!/usr/bin/env python3
"""Median of repeated bench/simcluster_bench.py runs, row by row, for model.py --compare.

  python3 bench/scaling/median_rows.py OUT.csv RUN1.csv RUN2.csv ...

Rows are matched on (hosts, local_ranks, link_gbit, algorithm, bytes, kind); a file without
`kind` (the --calibrate CSVs) holds allreduce rows. For busbw_GBps,
step_s and compute_s OUT holds the median over the runs that have the row, with the min and
max beside it (busbw_min/_max, step_min/_max) and `runs`, the number of runs. A row missing
from some runs is kept with fewer runs. Exit 2 on a file without the simcluster columns.
"""
import csv
import statistics
import sys

KEY = ("hosts", "local_ranks", "link_gbit", "algorithm", "bytes", "kind")
FIELDS = ["hosts", "local_ranks", "link_gbit", "link_latency_us", "algorithm", "bytes", "kind",
          "runs", "busbw_GBps", "busbw_min", "busbw_max", "step_s", "step_min", "step_max",
          "compute_s"]


def merge(paths):
    rows, order = {}, []
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [k for k in KEY[:-1] if k not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: lacks column(s) {', '.join(missing)} "
                                 f"(a bench/simcluster_bench.py results CSV is expected)")
            for r in reader:
                k = tuple(r.get(c) or "allreduce" if c == "kind" else r[c] for c in KEY)
                if k not in rows:
                    rows[k] = []
                    order.append(k)
                rows[k].append(r)
    out = []
    for k in order:
        rs = rows[k]
        o = dict(zip(KEY, k), link_latency_us=rs[0].get("link_latency_us", ""), runs=len(rs))
        for col, lo, hi in (("busbw_GBps", "busbw_min", "busbw_max"),
                            ("step_s", "step_min", "step_max"), ("compute_s", None, None)):
            v = [float(r[col]) for r in rs if (r.get(col) or "").strip()]
            if v:
                o[col] = round(statistics.median(v), 4)
                if lo:
                    o[lo], o[hi] = min(v), max(v)
        out.append(o)
    return out


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        rows = merge(argv[2:])
    except (OSError, ValueError) as e:
        print(f"median_rows.py: {e}", file=sys.stderr)
        return 2
    with open(argv[1], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
