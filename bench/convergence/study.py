#!/usr/bin/python3
"""The large-batch study (issue 13): does LARS keep a large global batch within
1 point of the small-batch baseline where plain SGD does not? (the paper's claim)

resnet20 on Fashion-MNIST, 2 CPU workers, the same epoch budget for every run:
  baseline   global batch 256, SGD + momentum 0.9, LR 0.1, wd 5e-4, warmup, cosine
  sgd-large  global batch B,   SGD + momentum, linear scaling (LR 0.1 x B/256), wd 5e-4, warmup, cosine
  lars-large global batch B,   LARS (eta 0.001, wd 5e-5, BN/bias unadapted as in MLPerf) + warmup +
                               polynomial decay (power 2), as the paper; LR 3.0 x sqrt(B/256)
The warmup is a quarter of the epochs for every run.
Each run goes through the real service (coordinator, 2 workers, CLI) and evaluates on the 10,000
test images every epoch with precise BN (statistics re-estimated over 4,096 training images per
rank: at 15 steps an epoch the running averages are far behind the weights, and an evaluation
with them measures the lag, not the model); the accuracy curve comes from rank 0's MLPerf log.

Prints a table (batch, optimizer, final test accuracy, epochs to 88 % and 90 %, wall time),
writes OUT/curves.csv and OUT/accuracy.png (gnuplot, Debian's gnuplot-nox).

    bench/convergence/study.py [--epochs 8] [--large-batch 4096] [--out bench/convergence/out]
                               [--warmup-epochs E] [--lars-lr LR] [--precise-bn-images 4096]
                               [--train-limit 0] [--build build]
                               [--only NAME,...]
The default budget (8 epochs x 60,000 images x 3 runs) took 90.6 min on 2 shared cores (bench/README.md).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

SPEC = """
name: {name}
kind: train
workers: 2
seed: 42
model: resnet20
dataset: {{name: fashion-mnist, train_limit: {train_limit}}}
batch_per_worker: {per_worker}
epochs: {epochs}
optimizer: {optimizer}
schedule: {schedule}
label_smoothing: 0.1
precision: fp32
allreduce: {{dtype: fp16, bucket_mb: 1, timeout_seconds: 600}}
eval_every_epochs: 1
bn_recalibration_batches: {recal}
"""


def runs(epochs, large, warm, lars_lr):
    """(name, global batch, optimizer, schedule); LARS first: the riskiest run reports soonest."""
    lr_sgd = 0.1 * large / 256  # Goyal et al.'s linear scaling from 0.1 at 256
    return [
        ("lars-large", large, "{name: lars, momentum: 0.9, weight_decay: 5.0e-5, lars_eta: 0.001}",
         f"{{base_lr: {lars_lr}, warmup_epochs: {warm}, decay: poly, poly_power: 2.0}}"),
        ("sgd-large", large, "{name: sgd, momentum: 0.9, weight_decay: 5.0e-4}",
         f"{{base_lr: {lr_sgd}, warmup_epochs: {warm}, decay: cosine}}"),
        ("baseline", 256, "{name: sgd, momentum: 0.9, weight_decay: 5.0e-4}",
         f"{{base_lr: 0.1, warmup_epochs: {warm}, decay: cosine}}"),
    ]


def curve(mllog):
    """(epoch, accuracy) pairs from an MLPerf log's eval_accuracy events."""
    out = []
    with open(mllog) as f:
        for line in f:
            if '"key": "eval_accuracy"' in line:
                ev = json.loads(line.split(":::MLLOG", 1)[1])
                out.append((int(ev["metadata"]["epoch_num"]), float(ev["value"])))
    return out


def first_epoch(points, target):
    return next((e for e, a in points if a >= target), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--large-batch", type=int, default=4096)
    ap.add_argument("--warmup-epochs", type=float, default=0, help="default: a quarter of the epochs")
    ap.add_argument("--lars-lr", type=float, default=0,
                    help="LARS base LR (default: the quickstart's 3.0 at 256, scaled by sqrt(batch/256))")
    ap.add_argument("--precise-bn-images", type=int, default=4096,
                    help="per rank, re-estimate BN statistics over this many training images before each "
                         "evaluation (bn_recalibration_batches; 0: evaluate with the running statistics)")
    ap.add_argument("--train-limit", type=int, default=0, help="use the first N training images (0: all 60,000)")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--build", default=os.environ.get("DTRAIN_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--only", default="", help="comma-separated run names (default: all three)")
    args = ap.parse_args()
    os.environ["DTRAIN_BIN"] = os.path.join(args.build, "bin")
    import cluster  # after DTRAIN_BIN is set
    os.makedirs(args.out, exist_ok=True)
    log_dir = os.path.join(args.out, "mllogs")
    os.makedirs(log_dir, exist_ok=True)
    warm = args.warmup_epochs or args.epochs / 4
    lars_lr = args.lars_lr or round(3.0 * (args.large_batch / 256) ** 0.5, 3)
    wanted = set(filter(None, args.only.split(",")))
    results = []
    t_all = time.monotonic()
    with cluster.Cluster(workers=2, heartbeat_timeout=60.0, worker_args=["--log-dir", log_dir]) as c:
        for name, batch, optimizer, schedule in runs(args.epochs, args.large_batch, warm, lars_lr):
            if wanted and name not in wanted:
                continue
            per_worker = batch // 2
            recal = -(-args.precise_bn_images // per_worker) if args.precise_bn_images > 0 else 0
            text = SPEC.format(name=name, train_limit=args.train_limit, per_worker=per_worker, epochs=args.epochs,
                               optimizer=optimizer, schedule=schedule, recal=recal)
            path = c.write_spec(f"{name}.yaml", text)
            t0 = time.monotonic()
            r = c.cli("submit", path, "--wait", timeout=24 * 3600)
            wall = time.monotonic() - t0
            job = c.job(r.stdout.strip())
            if job["state"] != "SUCCEEDED":
                sys.exit(f"{name}: {job['state']}: {job.get('reason')}")
            points = curve(os.path.join(log_dir, f"{job['id']}.mllog"))
            results.append((name, batch, optimizer.split(",")[0].split()[-1], points, wall))
            print(f"{name}: {points[-1][1]:.4f} after {args.epochs} epochs in {wall / 60:.1f} min", flush=True)
            c.wait_idle(2)
    total = time.monotonic() - t_all

    with open(os.path.join(args.out, "curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "global_batch", "optimizer", "epoch", "test_accuracy"])
        for name, batch, opt, points, _ in results:
            for e, a in points:
                w.writerow([name, batch, opt, e, f"{a:.4f}"])
    print(f"\n| run | global batch | optimizer | final test accuracy | epochs to 88 % | epochs to 90 % | wall |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, batch, opt, points, wall in results:
        to = [first_epoch(points, t) for t in (0.88, 0.90)]
        print(f"| {name} | {batch} | {opt} | {100 * points[-1][1]:.2f} % | {to[0] or '—'} | {to[1] or '—'} | "
              f"{wall / 60:.1f} min |")
    print(f"\nwhole study: {total / 60:.1f} min ({args.epochs} epochs per run, train_limit {args.train_limit})")

    plot = os.path.join(args.out, "accuracy.png")
    series = ", ".join(f"'{os.path.join(args.out, 'curves.csv')}' using 4:(strcol(1) eq '{n}' ? $5 : 1/0) "
                       f"with linespoints title '{n} (batch {b})'" for n, b, _, _, _ in results)
    script = (f"set terminal png size 900,560; set output '{plot}'; set datafile separator ',';"
              f"set key bottom right; set xlabel 'epoch'; set ylabel 'test accuracy'; set grid;"
              f"set title 'resnet20 on Fashion-MNIST, 2 workers: large batch with SGD vs LARS';"
              f"plot {series}")
    subprocess.run(["gnuplot", "-e", script], check=True)
    print(f"curves: {os.path.join(args.out, 'curves.csv')}, plot: {plot}")


if __name__ == "__main__":
    main()
