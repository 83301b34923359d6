#!/bin/bash
# bench/tensorboard/screenshot.sh: the README's TensorBoard screenshot. One short 2-worker
# Fashion-MNIST job writes event files (tensorboard.every_steps 4) into /tmp/tbshot/logs; then
# tensorboard (from .pydeps, deploy/install-deps.sh) serves them and headless Chromium (apt:
# chromium) saves the Time Series page to bench/tensorboard/scalars.png. Needs a built tree (build/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p /tmp/tbshot
cd "$ROOT/tests/integration"
export DTRAIN_BIN=$ROOT/build/bin UCX_NET_DEVICES=lo
/usr/bin/python3 - <<'PY'
import os, shutil
from cluster import Cluster
logdir = "/tmp/tbshot/logs"
shutil.rmtree(logdir, ignore_errors=True)
spec = """
name: fmnist-tensorboard
kind: train
workers: 2
seed: 42
model: resnet20
dataset: {name: fashion-mnist, train_limit: 16384}
batch_per_worker: 128
epochs: 3
optimizer: {name: lars, momentum: 0.9, weight_decay: 5.0e-5, lars_eta: 0.001}
schedule: {base_lr: 3.0, warmup_epochs: 0.5, decay: poly, poly_power: 2.0}
eval_every_epochs: 0.5
bn_recalibration_batches: 8
tensorboard: {every_steps: 4}
"""
with Cluster(workers=2, worker_args=["--log-dir", logdir]) as c:
    r = c.cli("submit", c.write_spec("tb.yaml", spec), "--wait", timeout=1200)
    print(r.stdout, r.stderr[-300:])
PY
PYTHONPATH=$ROOT/.pydeps /usr/bin/python3 -m tensorboard.main --logdir /tmp/tbshot/logs --port 6123 \
  --bind_all >/tmp/tbshot/tb.log 2>&1 &
TB=$!
trap 'kill $TB' EXIT
sleep 8
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1500,1100 \
  --virtual-time-budget=20000 --screenshot=$ROOT/bench/tensorboard/scalars.png "http://127.0.0.1:6123/#timeseries" \
  >/tmp/tbshot/chromium.log 2>&1
ls -la $ROOT/bench/tensorboard/scalars.png
