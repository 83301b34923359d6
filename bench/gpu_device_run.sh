#!/usr/bin/env bash
# The one script meant to run on the GPU machine (the device tool: one H100,
# 16 cores, no network, no apt, PyTorch in its python3), from the repository
# root, on the tarball that bench/pack_for_device.sh made here:
#   1. nvidia-smi, and where the image keeps NCCL / cuDNN / cuBLAS
#      (site-packages/nvidia/*/lib, found through python3)
#   2. the GPU tests (the ctest -L gpu binaries, run directly,
#      --gtest_output=json)
#   3. our allreduce-bench through a real coordinator + worker on the GPU
#      (backend nccl, fp16 and fp32; and auto, which must pick nccl)
#   4. the PyTorch reference, bench/pytorch_resnet50.py (eager and compile)
# Everything lands in $OUT/results.tar.gz (logs, JSON), with summary.md and the
# main JSON files beside it (the tool returns at most 8 files from $OUT); the
# summary is printed last.
#
# Usage: bash bench/gpu_device_run.sh [TARBALL]   (default build-pack/dtrain-device.tar.xz)
# Environment: OUT (default build-pack/out), STAGES (default
# "smi,tests,allreduce,pytorch"), BATCH (256), PYTORCH_VARIANTS (eager,compile),
# PYTORCH_STEPS (50), BENCH_MAX_BYTES (268435456), PYTHON (python3), WORKER_DEVICE
# (cuda; cpu makes a dry run of the allreduce stage on a machine without a GPU).
# The whole run is planned to end inside the tool's 10-minute limit: each
# stage has its own timeout, later stages shrink theirs to what is left of
# BUDGET_S (570), and summary.md in $OUT is written as the run goes, so a run
# cut short still returns it.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARBALL=${1:-$ROOT/build-pack/dtrain-device.tar.xz}
OUT=${OUT:-$ROOT/build-pack/out}
STAGES=${STAGES:-smi,tests,allreduce,pytorch}
BATCH=${BATCH:-256}
PYTORCH_VARIANTS=${PYTORCH_VARIANTS:-eager,compile}
PYTORCH_STEPS=${PYTORCH_STEPS:-50}
BENCH_MAX_BYTES=${BENCH_MAX_BYTES:-268435456}
PY=${PYTHON:-python3}
WORKER_DEVICE=${WORKER_DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-570}
T_START=$(date +%s)

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dtrain-gpu.XXXXXX)
RES="$WORK/results"
mkdir -p "$RES"
SUMMARY="$OUT/summary.md"
: >"$SUMMARY"
PIDS=()

log() { echo "[gpu_device_run +$(($(date +%s) - T_START))s] $*"; }
note() { echo "$*" >>"$SUMMARY"; }
has_stage() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
left() {  # seconds left of the budget, at most $1
  local l=$((BUDGET_S - ($(date +%s) - T_START)))
  [ "$l" -gt "$1" ] && l=$1
  [ "$l" -lt 1 ] && l=1
  echo "$l"
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
finish() {
  cleanup
  note ""
  note "total: $(($(date +%s) - T_START)) s"
  cp "$SUMMARY" "$RES/summary.md"
  tar -C "$WORK" -czf "$OUT/results.tar.gz" results
  for f in pytorch_resnet50.json allreduce_nccl_fp16.json allreduce_nccl_fp32.json; do
    [ -f "$RES/$f" ] && cp "$RES/$f" "$OUT/$f"
  done
  echo
  echo "================ summary ($OUT/summary.md) ================"
  cat "$SUMMARY"
}
trap finish EXIT
trap 'exit 143' TERM INT

note "# dtrain on the GPU machine, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note ""

# ---- 1. the machine ----------------------------------------------------------
if has_stage smi; then
  log "nvidia-smi"
  nvidia-smi 2>&1 | tee "$RES/nvidia-smi.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem \
    --format=csv 2>&1 | tee -a "$RES/nvidia-smi.txt"
  note "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
  note "cpu: $(nproc) cores; $(uname -r)"
fi

# The image's CUDA libraries: every site-packages/nvidia/<pkg>/lib (and
# nvidia/cu13/lib) with shared objects in it, then the toolkit's lib64.
NV_LIBS=$("$PY" - 2>"$RES/nvidia-libs.err" <<'EOF'
import glob, os
dirs = []
try:
    import nvidia
    for base in list(nvidia.__path__):
        for d in sorted(glob.glob(os.path.join(base, "*", "lib"))):
            if glob.glob(os.path.join(d, "*.so*")):
                dirs.append(d)
except Exception as e:
    print("no nvidia package:", e, file=__import__("sys").stderr)
for d in ("/usr/local/cuda/lib64",):
    if os.path.isdir(d):
        dirs.append(d)
print(":".join(dict.fromkeys(dirs)))
EOF
)
{
  echo "python: $(command -v "$PY") $("$PY" --version 2>&1)"
  "$PY" -c 'import torch; v = torch.cuda.nccl.version(); print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", ".".join(map(str, v)) if isinstance(v, tuple) else v, "cudnn", torch.backends.cudnn.version())' 2>&1
  echo "image CUDA library dirs:"
  echo "$NV_LIBS" | tr ':' '\n' | sed 's/^/  /'
  for d in $(echo "$NV_LIBS" | tr ':' ' '); do ls "$d"; done 2>/dev/null | grep -E '^lib(nccl|cudnn|cublas|cudart)' | sort -u | sed 's/^/  /'
} >"$RES/environment.txt" 2>&1
cat "$RES/environment.txt"
note "python: $(grep -m1 -E '^torch ' "$RES/environment.txt" || echo "no torch: see environment.txt")"

# ---- our binaries ------------------------------------------------------------
PACK="$WORK/dtrain-device"
if [ ! -f "$TARBALL" ]; then
  log "no pack at $TARBALL: run bench/pack_for_device.sh here first and carry build-pack"
  note "pack: MISSING ($TARBALL); only the PyTorch stage can run"
  STAGES=$(echo ",$STAGES," | sed 's/,tests,/,/; s/,allreduce,/,/')
else
  if ! tar -C "$WORK" -xf "$TARBALL" 2>"$RES/untar.err"; then
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$TARBALL" "$WORK"
  fi
  head -4 "$PACK/MANIFEST.txt" | tee -a "$SUMMARY"
fi

# Library path for OUR binaries only (never exported: PyTorch keeps its own).
BIN_LD="$PACK/lib${NV_LIBS:+:$NV_LIBS}"
missing_libs() {  # prints the unresolved libraries of every packed binary
  local f
  for f in "$PACK"/bin/* "$PACK"/tests/*; do
    [ -f "$f" ] || continue
    LD_LIBRARY_PATH="$1" ldd "$f" 2>&1 | grep -E 'not found' | sed "s|^|$(basename "$f"): |"
  done
}
if [ -d "$PACK" ]; then
  MISSING=$(missing_libs "$BIN_LD")
  if [ -n "$MISSING" ]; then
    echo "$MISSING" >"$RES/ldd-missing-before-fallback.txt"
    BIN_LD="$BIN_LD:$PACK/lib/fallback"
    MISSING=$(missing_libs "$BIN_LD")
    note "libraries: used the pack's fallback (libcudart/libstdc++/libgcc_s): see ldd-missing-before-fallback.txt"
  fi
  if [ -n "$MISSING" ]; then
    echo "$MISSING" | tee "$RES/ldd-missing.txt"
    note "libraries: STILL MISSING: $(echo "$MISSING" | awk '{print $2}' | sort -u | tr '\n' ' ')"
  else
    note "libraries: all resolved"
  fi
  for f in "$PACK/bin/dtrain-worker" "$PACK"/tests/*; do
    [ -f "$f" ] && { echo "== $f"; LD_LIBRARY_PATH="$BIN_LD" ldd "$f"; }
  done >"$RES/ldd.txt" 2>&1
fi
run_bin() { LD_LIBRARY_PATH="$BIN_LD" UCX_NET_DEVICES=lo "$@"; }

# ---- 2. GPU tests --------------------------------------------------------------
if has_stage tests; then
  note ""
  note "## GPU tests"
  for t in "$PACK"/tests/*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log "test $name"
    run_bin timeout "$(left 180)" "$t" --gtest_output="json:$RES/$name.json" >"$RES/$name.log" 2>&1
    rc=$?
    tail -25 "$RES/$name.log"
    counts=$("$PY" - "$RES/$name.json" <<'EOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
p = f = s = 0
bad = []
for suite in d.get("testsuites", []):
    for t in suite.get("testsuite", []):
        if t.get("failures"):
            f += 1; bad.append(suite["name"] + "." + t["name"])
        elif t.get("result") == "SKIPPED":
            s += 1
        else:
            p += 1
print(f"{p} passed, {f} failed, {s} skipped" + (": " + ", ".join(bad) if bad else ""))
EOF
)
    note "- $name: exit $rc; ${counts:-no JSON written}"
  done
fi

# ---- 3. allreduce-bench through the service ----------------------------------
if has_stage allreduce; then
  note ""
  note "## allreduce-bench (coordinator + 1 worker, --device $WORKER_DEVICE)"
  B="$PACK/bin"
  run_bin "$B/dtrain-coordinator" --listen 127.0.0.1:0 --port-file "$WORK/port" \
    --heartbeat-timeout 60 >"$RES/coordinator.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  ADDR="127.0.0.1:$(cat "$WORK/port" 2>/dev/null)"
  run_bin "$B/dtrain-worker" --coordinator "$ADDR" --device "$WORKER_DEVICE" --log-dir "$WORK/mllog" \
    >"$RES/worker0.log" 2>&1 &
  WPID=$!
  PIDS+=("$WPID")
  idle=0
  for _ in $(seq 150); do
    kill -0 "$WPID" 2>/dev/null || break  # the worker exited (e.g. no usable GPU)
    if run_bin "$B/dtrain" --coordinator "$ADDR" workers --json 2>/dev/null | grep -q '"IDLE"'; then
      idle=1
      break
    fi
    sleep 0.2
  done
  run_bin "$B/dtrain" --coordinator "$ADDR" workers >"$RES/workers.txt" 2>&1
  if [ "$idle" = 0 ]; then
    note "worker did not become idle: $(tail -1 "$RES/worker0.log")"
    tail -20 "$RES/worker0.log"
  else
    head -5 "$RES/workers.txt"
    for v in "nccl fp16 $BENCH_MAX_BYTES" "nccl fp32 $BENCH_MAX_BYTES" "auto fp16 16777216"; do
      read -r backend dtype maxb <<<"$v"
      tag="allreduce_${backend}_${dtype}"
      log "allreduce-bench backend=$backend dtype=$dtype max_bytes=$maxb"
      job=$(run_bin timeout "$(left 120)" "$B/dtrain" --coordinator "$ADDR" submit \
        "$ROOT/deploy/jobs/allreduce-bench.yaml" --set workers=1 \
        --set allreduce.backend="$backend" --set allreduce.dtype="$dtype" \
        --set bench.max_bytes="$maxb" --wait 2>"$RES/$tag.submit.err")
      rc=$?
      if [ -n "$job" ]; then
        run_bin "$B/dtrain" --coordinator "$ADDR" status "$job" | tee "$RES/$tag.txt"
        run_bin "$B/dtrain" --coordinator "$ADDR" status "$job" --json >"$RES/$tag.json"
      fi
      line=$("$PY" - "$RES/$tag.json" <<'EOF' 2>/dev/null
import json, sys
j = json.load(open(sys.argv[1]))
b = j.get("bench") or {}
rows = b.get("rows") or []
ok = all(r.get("verified") for r in rows) and bool(rows)
big = max(rows, key=lambda r: int(r.get("bytes", 0))) if rows else {}
print(f"state {j.get('state')}, backend {b.get('backend')}, world {b.get('world_size')}, "
      f"{len(rows)} sizes {'all verified' if ok else 'NOT all verified'}; "
      f"largest {int(big.get('bytes', 0)) >> 20} MiB: {float(big.get('timeUs', big.get('time_us', 0))):.1f} us, "
      f"algbw {float(big.get('algbwGbps', big.get('algbw_gbps', 0))):.1f} GB/s"
      + (f"; reason: {j.get('reason')}" if j.get('reason') else ""))
EOF
)
      note "- $backend $dtype: submit exit $rc; ${line:-no status (see $tag.submit.err)}"
    done
  fi
  cleanup
  PIDS=()
fi

# ---- 4. PyTorch reference -----------------------------------------------------
if has_stage pytorch; then
  note ""
  note "## PyTorch ResNet-50 reference (batch $BATCH, AMP fp16, channels_last)"
  log "pytorch_resnet50 variants=$PYTORCH_VARIANTS batch=$BATCH"
  PYTHONUNBUFFERED=1 timeout "$(left 330)" "$PY" "$ROOT/bench/pytorch_resnet50.py" --batch "$BATCH" \
    --steps "$PYTORCH_STEPS" --variants "$PYTORCH_VARIANTS" --json "$RES/pytorch_resnet50.json" \
    2>&1 | tee "$RES/pytorch_resnet50.log"
  rc=${PIPESTATUS[0]}
  note "exit $rc"
  grep -E '^\|' "$RES/pytorch_resnet50.log" >>"$SUMMARY" || note "(no table: see pytorch_resnet50.log)"
fi
