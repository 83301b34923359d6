#!/usr/bin/env bash
# The one script meant to run on the GPU machine (the device tool: one H200,
# 16 cores, no network; PyTorch and NCCL/cuDNN/cuBLAS in its python3's
# site-packages), from the repository root, on the tarball that
# bench/pack_for_device.sh made here. Stages, in this order (STAGES picks):
#   probe    bin/gpu_probe: CUDA, device, kernel, cuDNN, cuBLASLt, NCCL, floors;
#            if it fails nothing else runs (ON_PROBE_FAIL=pytorch|continue)
#   kernels  every GPU test binary in tests/ but engine_parity_test
#   model    engine_parity_test CudaEngineParity.*  (ResNet-50 fp16 vs CPU fp32)
#   curve    engine_parity_test CudaEngineCurve.*   (300 steps resnet20, Fashion-MNIST)
#   e2e      coordinator + one --device cuda worker + `dtrain submit` quickstart job
#   allreduce  (not in the default) allreduce-bench through the service, nccl
#   bench    bin/engine_bench ResNet-50 at batch BATCH, then --batch max
#   pytorch  bench/pytorch_resnet50.py (PYTORCH_VARIANTS, default eager), and
#            the ratio dtrain / PyTorch
# A gtest test that SKIPS counts as a failure here, unless its reason matches
# SKIP_OK_RE (default: "needs N CUDA devices", the world-2 NCCL test on one GPU).
# summary.md in $OUT grows after every stage (a run cut short still returns
# it); results.tar.gz (every log and JSON) and the main JSON files lie beside it.
# Exit: 0 every stage passed; 1 something failed; DRY_RUN=1 always 0.
#
# Usage: bash bench/gpu_device_run.sh [TARBALL]   (default build-pack/dtrain-device.tar.xz)
# Environment: OUT (build-pack/out), STAGES (probe,kernels,model,curve,e2e,bench,pytorch),
#   DRY_RUN (1: run nothing on the device; print each stage's commands and
#   timeouts, check the pack, exit 0), BUDGET_S (540: every stage's timeout
#   shrinks to what is left of it), BATCH (256), PYTORCH_VARIANTS (eager;
#   "compile" in a second run), PYTORCH_STEPS (50), E2E_STEPS (200), E2E_DEVICE
#   (cuda; cpu runs the e2e plumbing with an fp32 CPU worker, here), SKIP_OK_RE,
#   ON_PROBE_FAIL (stop), KEEP_WORK (1: keep the /tmp work folder), PREV_RESULTS (a folder holding an earlier run's
#   engine_bench_*.json / pytorch_resnet50.json for the ratio), PYTHON (python3).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARBALL=${1:-$ROOT/build-pack/dtrain-device.tar.xz}
OUT=${OUT:-$ROOT/build-pack/out}
STAGES=${STAGES:-probe,kernels,model,curve,e2e,bench,pytorch}
DRY_RUN=${DRY_RUN:-0}
BUDGET_S=${BUDGET_S:-540}
BATCH=${BATCH:-256}
PYTORCH_VARIANTS=${PYTORCH_VARIANTS:-eager}
PYTORCH_STEPS=${PYTORCH_STEPS:-50}
E2E_STEPS=${E2E_STEPS:-200}
E2E_DEVICE=${E2E_DEVICE:-cuda}
SKIP_OK_RE=${SKIP_OK_RE-needs [0-9]+ CUDA devices}
ON_PROBE_FAIL=${ON_PROBE_FAIL:-stop}
PREV_RESULTS=${PREV_RESULTS:-}
PY=${PYTHON:-python3}
T_START=$(date +%s)
VCLOCK=0  # dry run: seconds the stages would have taken (each its full timeout)

ORDER=(probe kernels model curve e2e allreduce bench pytorch)
# Per stage: the most it may take, and what it keeps for itself when later
# stages reserve theirs (seconds).
declare -A SMAX=([probe]=60 [kernels]=150 [model]=120 [curve]=150 [e2e]=150 [bench]=200 [pytorch]=150 [allreduce]=120)
declare -A SMIN=([probe]=20 [kernels]=60 [model]=60 [curve]=60 [e2e]=60 [bench]=60 [pytorch]=60 [allreduce]=40)
case ",$PYTORCH_VARIANTS," in *,compile,*) SMAX[pytorch]=330; SMIN[pytorch]=150 ;; esac

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/dtrain-gpu.XXXXXX)
RES="$WORK/results"
PACK="$WORK/dtrain-device"
mkdir -p "$RES"
SUMMARY="$OUT/summary.md"
: >"$SUMMARY"
PIDS=()
VERDICTS=()
FAILED=0

log() { echo "[gpu_device_run +$(elapsed)s] $*"; }
note() { printf '%s\n' "$*" >>"$SUMMARY"; }
has_stage() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
elapsed() { echo $(($(date +%s) - T_START + VCLOCK)); }
quote() { printf '%q ' "$@" | sed 's/ $//'; }

# The timeout of stage $1: at most SMAX, leaving every later selected stage
# its SMIN, but never under its own SMIN unless the budget itself is shorter.
stage_timeout() {
  local s=$1 later=0 reserve=0 t left
  for x in "${ORDER[@]}"; do
    [ "$x" = "$s" ] && { later=1; continue; }
    [ "$later" = 1 ] && has_stage "$x" && reserve=$((reserve + SMIN[$x]))
  done
  left=$((BUDGET_S - $(elapsed)))
  t=$((left - reserve))
  [ "$t" -lt "${SMIN[$s]}" ] && t=${SMIN[$s]}
  [ "$t" -gt "$left" ] && t=$left
  [ "$t" -gt "${SMAX[$s]}" ] && t=${SMAX[$s]}
  [ "$t" -lt 0 ] && t=0
  echo "$t"
}
# Seconds left of the current stage, at most $1.
sub_timeout() {
  local l=$((STAGE_DEADLINE - $(elapsed)))
  [ "$l" -gt "$1" ] && l=$1
  [ "$l" -lt 1 ] && l=1
  echo "$l"
}

# Bounded cleanup of what this script started: TERM, up to 5 s, then KILL.
cleanup() {
  local p alive
  [ "${#PIDS[@]}" -gt 0 ] || return 0
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null
      note "cleanup: pid $p ignored TERM for 5 s: killed"
    fi
    wait "$p" 2>/dev/null
  done
  PIDS=()
}
MAIN_JSON=(probe.json "engine_bench_$BATCH.json" engine_bench_max.json pytorch_resnet50.json e2e_status.json)
snapshot() {  # what a run cut short should still return
  local f
  cp "$SUMMARY" "$RES/summary.md"
  tar -C "$WORK" -czf "$OUT/results.tar.gz.part" results 2>/dev/null && mv "$OUT/results.tar.gz.part" "$OUT/results.tar.gz"
  for f in "${MAIN_JSON[@]}"; do [ -f "$RES/$f" ] && cp "$RES/$f" "$OUT/$f"; done
  return 0
}
finish() {
  cleanup
  note ""
  note "## Verdict"
  local v
  for v in "${VERDICTS[@]}"; do note "- $v"; done
  note ""
  note "total: $(($(date +%s) - T_START)) s$([ "$DRY_RUN" = 1 ] && echo " (dry run; the stages' timeouts add up to $VCLOCK s)")"
  snapshot
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
  echo
  echo "================ summary ($OUT/summary.md) ================"
  cat "$SUMMARY"
}
trap finish EXIT
trap 'exit 143' TERM INT

STAGE_T=0
STAGE_DEADLINE=0
STAGE_MISSING=""
stage_begin() {  # status 1 (and a NOT RUN verdict) when the budget is spent
  STAGE_MISSING=""
  STAGE_T=$(stage_timeout "$1")
  STAGE_DEADLINE=$(($(elapsed) + STAGE_T))
  note ""
  note "## $1 (timeout ${STAGE_T} s, at +$(elapsed) s)"
  log "stage $1, timeout $STAGE_T s"
  if [ "$STAGE_T" -lt 10 ]; then
    stage_end "$1" "NOT RUN" "the budget (BUDGET_S=$BUDGET_S) is spent"
    return 1
  fi
}
# stage_end NAME PASS|FAIL|SKIPPED|"NOT RUN" DETAIL
stage_end() {
  local detail=${3:-}
  [ -n "$STAGE_MISSING" ] && detail="${detail:+$detail; }would be NOT RUN: $STAGE_MISSING"
  note "**$1: $2**${detail:+ — $detail}"
  VERDICTS+=("$1: $2${detail:+ — $detail}")
  case "$2" in PASS | "DRY RUN") ;; *) FAILED=1 ;; esac
  [ "$DRY_RUN" = 1 ] && VCLOCK=$((VCLOCK + STAGE_T))
  snapshot
}

# Our binaries' environment: the pack's libraries first, then the image's
# CUDA libraries, then whatever the machine had (the driver's libcuda).
run_bin() {
  LD_LIBRARY_PATH="$BIN_LD" UCX_NET_DEVICES=lo NCCL_DEBUG=INFO \
    NCCL_DEBUG_FILE="$RES/nccl.%h.%p.log" "$@"
}
# runcmd TIMEOUT LOG [VAR=VALUE...] CMD...: runs (or, dry, prints) one of our
# binaries under run_bin's environment, output into LOG; its exit status.
runcmd() {
  local t=$1 logf=$2
  shift 2
  local cmd=(timeout -k 5 "$t")
  case "${1:-}" in [A-Z]*=*) cmd+=(env) ;; esac
  cmd+=("$@")
  if [ "$DRY_RUN" = 1 ]; then
    note "    \$ $(quote "${cmd[@]}")  > $(basename "$logf")"
    return 0
  fi
  log "$(quote "$@") (timeout $t s)"
  run_bin "${cmd[@]}" >"$logf" 2>&1
}
# need FILE...: all present in the pack, else MISSING_WHAT names the missing
# ones and the status is 1 (a dry run records them and goes on: status 0).
need() {
  local f miss=()
  for f in "$@"; do [ -e "$PACK/$f" ] || miss+=("$f"); done
  [ "${#miss[@]}" = 0 ] && return 0
  MISSING_WHAT="missing from the pack: ${miss[*]}"
  [ "$DRY_RUN" = 1 ] || return 1
  note "    ($MISSING_WHAT)"
  STAGE_MISSING="${STAGE_MISSING:+$STAGE_MISSING, }${miss[*]}"
  return 0
}

# gtest_report JSON LOG RC: one summary line (and details) for the summary;
# status 0 only when the binary exited 0, ran >= 1 test, and nothing failed
# or skipped (but for SKIP_OK_RE skips).
gtest_report() {
  "$PY" - "$1" "$2" "$3" "$SKIP_OK_RE" <<'EOF'
import json, os, re, sys
jpath, lpath, rc, skip_ok = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
log = open(lpath, errors="replace").read() if os.path.exists(lpath) else ""
why = {}
for m in re.finditer(r"^\[ RUN      \] (\S+)\n(.*?)^\[  SKIPPED \] \1 \(", log, re.M | re.S):
    lines = [l for l in m.group(2).splitlines() if l.strip() and not re.match(r"^\S+:\d+: Skipped$", l)]
    why[m.group(1)] = " ".join(lines)[:240]
ok, bad, skip_fine, skip_bad = [], [], [], []
try:
    data = json.load(open(jpath))
except Exception:
    data = None
if data:
    for s in data.get("testsuites", []):
        for t in s.get("testsuite", []):
            name = s["name"] + "." + t["name"]
            if t.get("failures"):
                msg = t["failures"][0].get("failure", "").replace("\n", " | ")[:300]
                bad.append(f"{name}: {msg}")
            elif t.get("result") == "SKIPPED":
                r = why.get(name, "(reason not in the log)")
                (skip_fine if skip_ok and re.search(skip_ok, r) else skip_bad).append(f"{name}: {r}")
            else:
                ok.append(name)
else:  # killed or crashed before gtest wrote its JSON: read the log
    for kind, name in re.findall(r"^\[\s+(OK|FAILED|SKIPPED)\s+\] (\S+) \(", log, re.M):
        if kind == "SKIPPED":
            r = why.get(name, "")
            (skip_fine if skip_ok and re.search(skip_ok, r) else skip_bad).append(f"{name}: {r}")
        else:
            (ok if kind == "OK" else bad).append(name)
    run = re.findall(r"^\[ RUN      \] (\S+)$", log, re.M)
    if run and run[-1] not in ok + bad + [x.split(":")[0] for x in skip_fine + skip_bad]:
        bad.append(f"{run[-1]}: did not finish (no gtest JSON; exit {rc})")
total = len(ok) + len(bad) + len(skip_fine) + len(skip_bad)
head = f"exit {rc}{' (timed out)' if rc in (124, 137) else ''}; {len(ok)} passed, {len(bad)} failed"
if skip_bad:
    head += f", {len(skip_bad)} SKIPPED (a skip is a failure on the device)"
if skip_fine:
    head += f", {len(skip_fine)} skipped as expected"
if total == 0:
    head += "; NO TESTS RAN" + ("" if data else " (no gtest JSON)")
print(head)
for x in bad[:8]: print(f"  - FAILED {x}")
for x in skip_bad[:5]: print(f"  - SKIPPED {x}")
for x in skip_fine[:3]: print(f"  - skipped as expected {x}")
sys.exit(0 if rc == 0 and total > 0 and not bad and not skip_bad else 1)
EOF
}
# run_gtest NAME BINARY TIMEOUT [VAR=VALUE...] [ARGS...]: runs one test binary;
# status 0 when gtest_report passes it.
run_gtest() {
  local name=$1 bin=$2 t=$3 rc line
  shift 3
  local envs=() args=()
  for a in "$@"; do case "$a" in [A-Z]*=*) envs+=("$a") ;; *) args+=("$a") ;; esac; done
  runcmd "$t" "$RES/$name.log" "${envs[@]}" "$bin" "${args[@]}" --gtest_output="json:$RES/$name.json"
  rc=$?
  [ "$DRY_RUN" = 1 ] && return 0
  line=$(gtest_report "$RES/$name.json" "$RES/$name.log" "$rc")
  local st=$?
  note "- $name: $line"
  echo "$name: $line"
  return $st
}

note "# dtrain on the GPU machine, $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$DRY_RUN" = 1 ] && echo " — DRY RUN (nothing ran on a device)")"
note ""
note "stages: $STAGES; budget ${BUDGET_S} s; batch $BATCH; PyTorch variants $PYTORCH_VARIANTS"
[ "$DRY_RUN" = 1 ] && note "(dry run: each stage's start and timeout below are the plan if every stage before it ran out its full timeout)"

# ---- the image's CUDA libraries, and the pack ----------------------------------
# Every site-packages/nvidia/<pkg>/lib with shared objects (nvidia/cu13/lib
# too), then the toolkit's lib64.
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
  echo "LD_LIBRARY_PATH (on entry): ${LD_LIBRARY_PATH:-<unset>}"
  [ "$DRY_RUN" = 1 ] || timeout 60 "$PY" -c 'import torch; v = torch.cuda.nccl.version(); print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", ".".join(map(str, v)) if isinstance(v, tuple) else v, "cudnn", torch.backends.cudnn.version())' 2>&1
  echo "image CUDA library dirs:"
  echo "$NV_LIBS" | tr ':' '\n' | sed 's/^/  /'
  for d in $(echo "$NV_LIBS" | tr ':' ' '); do ls "$d"; done 2>/dev/null | grep -E '^lib(nccl|cudnn|cublas|cudart)' | sort -u | sed 's/^/  /'
} >"$RES/environment.txt" 2>&1
note "python: $(grep -m1 -E '^torch ' "$RES/environment.txt" || echo "torch not queried (dry run, or see environment.txt)")"

if [ -f "$TARBALL" ]; then
  if ! tar -C "$WORK" -xf "$TARBALL" 2>"$RES/untar.err"; then
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$TARBALL" "$WORK"
  fi
  note "pack: $TARBALL ($(($(stat -c %s "$TARBALL") / 1024)) KiB)"
  sed -n '2,4p' "$PACK/MANIFEST.txt" 2>/dev/null | sed 's/^/    /' >>"$SUMMARY"
else
  note "pack: MISSING ($TARBALL): run bench/pack_for_device.sh here first and carry build-pack"
  log "no pack at $TARBALL"
fi
mkdir -p "$PACK/bin" "$PACK/tests" "$PACK/lib"

# Library path for OUR binaries only (never exported: PyTorch keeps its own).
BIN_LD="$PACK/lib${NV_LIBS:+:$NV_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
missing_libs() {  # the unresolved libraries and symbols of every packed binary
  local f
  for f in "$PACK"/bin/* "$PACK"/tests/*; do
    [ -f "$f" ] || continue
    LD_LIBRARY_PATH="$1" ldd -r "$f" 2>&1 | grep -E 'not found|undefined symbol' | sed "s|^|$(basename "$f"): |"
  done
}
MISSING=$(missing_libs "$BIN_LD")
if [ -n "$MISSING" ]; then
  echo "$MISSING" >"$RES/ldd-missing-before-fallback.txt"
  BIN_LD="$BIN_LD:$PACK/lib/fallback"
  MISSING=$(missing_libs "$BIN_LD")
  note "libraries: added the pack's fallback (libcudart/libstdc++/libgcc_s): see ldd-missing-before-fallback.txt"
fi
if [ -n "$MISSING" ]; then
  echo "$MISSING" >"$RES/ldd-missing.txt"
  note "libraries: STILL MISSING (ldd -r; a library older than the one we built against lacks symbols): $(echo "$MISSING" | tr -s ' \t' ' ' | sort -u | head -8 | tr '\n' ';')"
else
  note "libraries: all resolved"
fi
for f in "$PACK"/bin/* "$PACK"/tests/*; do
  [ -f "$f" ] && { echo "== $f"; LD_LIBRARY_PATH="$BIN_LD" ldd "$f"; }
done >"$RES/ldd.txt" 2>&1
note "our binaries run with LD_LIBRARY_PATH=$BIN_LD"
note "NCCL_DEBUG=INFO, NCCL_DEBUG_FILE=results/nccl.<host>.<pid>.log"

# What the stages need, present or not.
present() { local f out=""; for f in "$@"; do if [ -e "$PACK/$f" ]; then out+=" $f"; else out+=" $f(MISSING)"; fi; done; echo "${out# }"; }
note "pack bin: $(present bin/gpu_probe bin/dtrain-coordinator bin/dtrain-worker bin/dtrain bin/engine_bench)"
note "pack tests: $(present tests/kernels_cuda_parity_test tests/kernels_conv_test tests/kernels_bn_test tests/kernels_pool_fc_test tests/cuda_check_test tests/nccl_communicator_test tests/engine_parity_test); all: $(cd "$PACK/tests" && ls | tr '\n' ' ')"
note "pack data: $(present data/fashion-mnist/train-images-idx3-ubyte.gz data/fashion-mnist/train-labels-idx1-ubyte.gz data/fashion-mnist/t10k-images-idx3-ubyte.gz data/fashion-mnist/t10k-labels-idx1-ubyte.gz)"
snapshot

# ---- probe ---------------------------------------------------------------------
STOP_ALL=0
if has_stage probe && stage_begin probe; then
  if ! need bin/gpu_probe; then
    stage_end probe "NOT RUN" "$MISSING_WHAT"
    STOP_ALL=1
  else
    if [ "$DRY_RUN" = 1 ]; then
      note "    \$ nvidia-smi; nvidia-smi --query-gpu=... --format=csv"
    else
      timeout 20 nvidia-smi >"$RES/nvidia-smi.txt" 2>&1
      timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
        --format=csv >>"$RES/nvidia-smi.txt" 2>&1
      note "gpu: $(command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1 || echo "nvidia-smi not found"); cpu: $(nproc) cores; $(uname -r)"
    fi
    t=$(sub_timeout 60)
    runcmd "$t" "$RES/probe.log" "$PACK/bin/gpu_probe" --json "$RES/probe.json"
    rc=$?
    if [ "$DRY_RUN" = 1 ]; then
      stage_end probe "DRY RUN"
    else
      { echo '```'; cat "$RES/probe.log"; echo '```'; } >>"$SUMMARY"
      cat "$RES/probe.log"
      case $rc in
        0) stage_end probe PASS ;;
        127) stage_end probe FAIL "exit 127: the loader could not start gpu_probe (see ldd.txt and the lines above)" ;;
        124 | 137) stage_end probe FAIL "timed out after $t s" ;;
        *) stage_end probe FAIL "exit $rc: $(grep -m1 '^gpu_probe: ' "$RES/probe.log" | sed 's/^gpu_probe: //; s/ (exit [0-9]*)$//')" ;;
      esac
      [ "$rc" = 0 ] || STOP_ALL=1
    fi
  fi
  if [ "$STOP_ALL" = 1 ]; then
    case "$ON_PROBE_FAIL" in
      continue) STOP_ALL=0; note "ON_PROBE_FAIL=continue: running the other stages anyway" ;;
      pytorch) STAGES=$(has_stage pytorch && echo pytorch); note "ON_PROBE_FAIL=pytorch: only the PyTorch stage runs" ;;
      *) STAGES=""; note "**the probe failed: no other stage runs** (ON_PROBE_FAIL=pytorch or continue to change that)" ;;
    esac
  fi
fi

# ---- kernels: every GPU test binary but the engine's ------------------------------
if has_stage kernels && stage_begin kernels; then
  n=0
  bad=()
  for t in "$PACK"/tests/*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    name=$(basename "$t")
    [ "$name" = engine_parity_test ] && continue
    [ $((STAGE_DEADLINE - $(elapsed))) -lt 5 ] && { bad+=("$name(not run: the stage's time is spent)"); continue; }
    n=$((n + 1))
    run_gtest "$name" "$t" "$(sub_timeout 120)" || bad+=("$name")
  done
  if [ "$DRY_RUN" = 1 ]; then
    stage_end kernels "DRY RUN" "$n test binaries"
  elif [ "$n" = 0 ]; then
    stage_end kernels FAIL "no GPU test binaries in the pack"
  elif [ "${#bad[@]}" = 0 ]; then
    stage_end kernels PASS "$n test binaries"
  else
    stage_end kernels FAIL "${bad[*]}"
  fi
fi

# ---- model and curve: the CUDA engine against the CPU one --------------------------
engine_test() {  # engine_test STAGE FILTER [VAR=VALUE...]
  local s=$1 filter=$2
  shift 2
  stage_begin "$s" || return 0
  if ! need tests/engine_parity_test; then
    stage_end "$s" "NOT RUN" "$MISSING_WHAT"
    return
  fi
  if [ "$s" = curve ] && ! need data/fashion-mnist/train-images-idx3-ubyte.gz; then
    note "warning: $MISSING_WHAT (packed with --no-data?): the curve test cannot read Fashion-MNIST"
  fi
  run_gtest "engine_parity_$s" "$PACK/tests/engine_parity_test" "$(sub_timeout 100000)" "$@" \
    --gtest_filter="$filter"
  local st=$?
  if [ "$DRY_RUN" = 1 ]; then stage_end "$s" "DRY RUN"
  elif [ "$st" = 0 ]; then stage_end "$s" PASS
  else stage_end "$s" FAIL "see engine_parity_$s.log"
  fi
}
has_stage model && engine_test model 'CudaEngineParity.*'
has_stage curve && engine_test curve 'CudaEngineCurve.*' "DTRAIN_FMNIST_DIR=$PACK/data/fashion-mnist"

# ---- e2e (and allreduce): coordinator + one worker + the CLI ------------------------
ADDR=""
run_bg() {  # run_bg LOG CMD...: one of our binaries in the background; its pid in PIDS
  local logf=$1
  shift
  (export LD_LIBRARY_PATH="$BIN_LD" UCX_NET_DEVICES=lo NCCL_DEBUG=INFO NCCL_DEBUG_FILE="$RES/nccl.%h.%p.log"
   exec "$@") >"$logf" 2>&1 &
  PIDS+=($!)
}
cli() { run_bin "$PACK/bin/dtrain" --coordinator "$ADDR" "$@"; }
service_up() {  # status 0 once the E2E_DEVICE worker is IDLE (waits <= 60 s)
  local B="$PACK/bin" wpid until wait_s
  if [ "$DRY_RUN" = 1 ]; then
    note "    \$ $(quote "$B/dtrain-coordinator" --listen 127.0.0.1:0 --port-file "$WORK/port" --heartbeat-timeout 60) &"
    note "    \$ $(quote "$B/dtrain-worker" --coordinator 127.0.0.1:PORT --device "$E2E_DEVICE" --log-dir "$RES/mllog") &"
    note "    (wait up to 60 s for \`dtrain workers --json\` to show IDLE)"
    ADDR=127.0.0.1:PORT
    return 0
  fi
  rm -f "$WORK/port"
  run_bg "$RES/coordinator.log" "$B/dtrain-coordinator" --listen 127.0.0.1:0 --port-file "$WORK/port" --heartbeat-timeout 60
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  [ -s "$WORK/port" ] || { note "coordinator wrote no port in 10 s: $(tail -1 "$RES/coordinator.log")"; return 1; }
  ADDR="127.0.0.1:$(cat "$WORK/port")"
  run_bg "$RES/worker0.log" "$B/dtrain-worker" --coordinator "$ADDR" --device "$E2E_DEVICE" --log-dir "$RES/mllog"
  wpid=${PIDS[-1]}
  wait_s=$(sub_timeout 60)
  until=$(($(elapsed) + wait_s))
  while [ "$(elapsed)" -lt "$until" ]; do
    kill -0 "$wpid" 2>/dev/null || { note "worker exited: $(tail -2 "$RES/worker0.log" | tr '\n' ' ')"; return 1; }
    cli workers --json 2>/dev/null | grep -q '"IDLE"' && { cli workers >"$RES/workers.txt" 2>&1; return 0; }
    sleep 0.2
  done
  note "worker not IDLE after $wait_s s: $(tail -2 "$RES/worker0.log" | tr '\n' ' ')"
  return 1
}
# submit_job TAG TIMEOUT SPEC --set...: `dtrain submit --wait`, then status
# (table and JSON) into results; a job still running at the timeout is cancelled.
submit_job() {
  local tag=$1 t=$2 job rc
  shift 2
  if [ "$DRY_RUN" = 1 ]; then
    note "    \$ timeout -k 5 $t $(quote "$PACK/bin/dtrain" --coordinator "$ADDR" submit "$@" --wait)"
    note "    \$ $(quote "$PACK/bin/dtrain" --coordinator "$ADDR" status JOB --json) > $tag.json"
    return 0
  fi
  log "submit $tag (timeout $t s)"
  run_bin timeout -k 5 "$t" "$PACK/bin/dtrain" --coordinator "$ADDR" submit "$@" --wait \
    >"$RES/$tag.submit.out" 2>"$RES/$tag.submit.err"
  rc=$?
  job=$(head -1 "$RES/$tag.submit.out")
  [ -n "$job" ] || { note "- $tag: submit exit $rc, no job id: $(tail -2 "$RES/$tag.submit.err" | tr '\n' ' ')"; return 1; }
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    note "- $tag: still running after $t s: cancelled"
    cli cancel "$job" >/dev/null 2>&1
  fi
  cli status "$job" >"$RES/$tag.txt" 2>&1
  cli status "$job" --json >"$RES/$tag.json" 2>>"$RES/$tag.submit.err"
  return "$rc"
}
if has_stage e2e && stage_begin e2e; then
  if ! need bin/dtrain-coordinator bin/dtrain-worker bin/dtrain data/fashion-mnist/train-images-idx3-ubyte.gz; then
    stage_end e2e "NOT RUN" "$MISSING_WHAT"
  elif ! service_up; then
    stage_end e2e FAIL "the --device $E2E_DEVICE worker did not become idle (worker0.log)"
  else
    submit_job e2e_status "$(sub_timeout 100000)" "$ROOT/deploy/jobs/quickstart.yaml" --set workers=1 \
      --set device="$E2E_DEVICE" --set precision="$([ "$E2E_DEVICE" = cuda ] && echo fp16 || echo fp32)" --set dataset.path="$PACK/data/fashion-mnist" \
      --set max_steps="$E2E_STEPS"
    rc=$?
    if [ "$DRY_RUN" = 1 ]; then
      stage_end e2e "DRY RUN"
    else
      line=$("$PY" - "$RES/e2e_status.json" "$E2E_STEPS" <<'EOF' 2>&1
import json, sys
j = json.load(open(sys.argv[1]))
tr = j.get("train") or {}
ips = tr.get("images_per_second") or j.get("images_per_second") or 0
acc = tr.get("eval_accuracy") if tr.get("steps") else j.get("eval_accuracy")
fmt = lambda x, d: "-" if x is None else f"{float(x):.{d}f}"
print(f"state {j.get('state')}, steps {j.get('step')}/{j.get('total_steps')}, {float(ips):.0f} images/s, "
      f"eval_accuracy {fmt(acc, 4)}, final loss {fmt(tr.get('final_loss'), 4)}" + (f"; reason: {j['reason']}" if j.get("reason") else ""))
sys.exit(0 if j.get("state") == "SUCCEEDED" and int(j.get("step", 0)) >= int(sys.argv[2]) else 1)
EOF
)
      st=$?
      note "- $line"
      if [ "$rc" = 0 ] && [ "$st" = 0 ]; then stage_end e2e PASS "$line"
      else stage_end e2e FAIL "submit exit $rc; ${line:-no status}; see worker0.log"
      fi
    fi
  fi
  has_stage allreduce || cleanup  # allreduce reuses the service
fi
if has_stage allreduce && stage_begin allreduce; then  # NCCL allreduce-bench through the service (world 1)
  if ! need bin/dtrain-coordinator bin/dtrain-worker bin/dtrain; then
    stage_end allreduce "NOT RUN" "$MISSING_WHAT"
  elif [ -z "$ADDR" ] && ! service_up; then
    stage_end allreduce FAIL "the --device $E2E_DEVICE worker did not become idle (worker0.log)"
  else
    ok=1
    for dtype in fp16 fp32; do
      submit_job "allreduce_nccl_$dtype" "$(sub_timeout 90)" "$ROOT/deploy/jobs/allreduce-bench.yaml" \
        --set workers=1 --set allreduce.backend=nccl --set allreduce.dtype="$dtype" \
        --set bench.max_bytes=268435456 || ok=0
      [ "$DRY_RUN" = 1 ] || { echo '```'; tail -14 "$RES/allreduce_nccl_$dtype.txt"; echo '```'; } >>"$SUMMARY"
    done
    if [ "$DRY_RUN" = 1 ]; then stage_end allreduce "DRY RUN"
    elif [ "$ok" = 1 ]; then stage_end allreduce PASS "tables in allreduce_nccl_*.txt"
    else stage_end allreduce FAIL "see allreduce_nccl_*.submit.err"
    fi
  fi
  cleanup
fi

# ---- bench: the engine's ResNet-50 training throughput ------------------------------
table_of() {  # the table an engine_bench / pytorch log printed, else its tail
  if grep -qE '^\|' "$1" 2>/dev/null; then grep -E '^\|' "$1"; else echo '```'; tail -15 "$1" 2>/dev/null; echo '```'; fi
}
if has_stage bench && stage_begin bench; then
  if ! need bin/engine_bench; then
    stage_end bench "NOT RUN" "$MISSING_WHAT"
  else
    [ "$DRY_RUN" = 1 ] || note "gpu before: $(timeout 20 nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,temperature.gpu,power.draw,memory.used --format=csv,noheader 2>&1 | head -1)"
    bad=()
    for b in "$BATCH" max; do
      if [ "$b" = max ]; then t=$(sub_timeout 100000); else t=$(sub_timeout $((STAGE_T * 45 / 100))); fi
      runcmd "$t" "$RES/engine_bench_$b.log" "$PACK/bin/engine_bench" --device cuda --model resnet50 \
        --batch "$b" --steps 40 --warmup 10 --json "$RES/engine_bench_$b.json"
      rc=$?
      [ "$DRY_RUN" = 1 ] && continue
      note "batch $b: exit $rc$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo " (timed out after $t s)")"
      table_of "$RES/engine_bench_$b.log" >>"$SUMMARY"
      { [ "$rc" = 0 ] && [ -s "$RES/engine_bench_$b.json" ]; } || bad+=("batch $b: exit $rc")
    done
    if [ "$DRY_RUN" = 1 ]; then stage_end bench "DRY RUN"
    elif [ "${#bad[@]}" = 0 ]; then stage_end bench PASS
    else stage_end bench FAIL "${bad[*]}"
    fi
  fi
fi

# ---- pytorch: the reference, and the ratio ------------------------------------------
if has_stage pytorch && stage_begin pytorch; then
  note "torchvision ResNet-50, batch $BATCH, AMP fp16, channels_last, variants $PYTORCH_VARIANTS"
  t=$(sub_timeout 100000)
  cmd=("$PY" "$ROOT/bench/pytorch_resnet50.py" --batch "$BATCH" --steps "$PYTORCH_STEPS"
       --variants "$PYTORCH_VARIANTS" --json "$RES/pytorch_resnet50.json")
  if [ "$DRY_RUN" = 1 ]; then
    note "    \$ PYTHONUNBUFFERED=1 timeout $t $(quote "${cmd[@]}")  (the image's own LD_LIBRARY_PATH)"
    stage_end pytorch "DRY RUN"
  else
    log "pytorch_resnet50 variants=$PYTORCH_VARIANTS batch=$BATCH (timeout $t s)"
    PYTHONUNBUFFERED=1 timeout -k 5 "$t" "${cmd[@]}" >"$RES/pytorch_resnet50.log" 2>&1
    rc=$?
    tail -8 "$RES/pytorch_resnet50.log"
    table_of "$RES/pytorch_resnet50.log" >>"$SUMMARY"
    if [ "$rc" = 0 ]; then stage_end pytorch PASS
    else stage_end pytorch FAIL "exit $rc$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo " (timed out after $t s)"); see pytorch_resnet50.log"
    fi
  fi
fi
if [ "$DRY_RUN" != 1 ] && { has_stage bench || has_stage pytorch; }; then
  ratio=$("$PY" - "$RES" "$PREV_RESULTS" "$BATCH" <<'EOF' 2>&1
import json, os, sys
res, prev, batch = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    for d, tag in ((res, ""), (prev, " (from PREV_RESULTS)")):
        p = os.path.join(d, name) if d else ""
        if p and os.path.exists(p):
            try:
                return json.load(open(p)), tag
            except ValueError:
                pass
    return None, ""
rows, ours, theirs = [], {}, {}
for b in (batch, "max"):
    j, tag = load(f"engine_bench_{b}.json")
    if j and j.get("images_per_second"):
        ours[b] = float(j["images_per_second"])
        rows.append(f"| dtrain batch {j.get('batch', b)}{tag} | {ours[b]:,.0f} |")
for d, tag in ((res, ""), (prev, " (from PREV_RESULTS)")):  # variants of both runs
    try:
        j = json.load(open(os.path.join(d, "pytorch_resnet50.json"))) if d else {}
    except (OSError, ValueError):
        j = {}
    for r in j.get("results", []):
        if r.get("images_per_second") and r["variant"] not in theirs:
            theirs[r["variant"]] = float(r["images_per_second"])
            rows.append(f"| PyTorch {r['variant']} batch {r.get('batch')}{tag} | {theirs[r['variant']]:,.0f} |")
if not rows:
    sys.exit(0)
print("| ResNet-50 training | images/s |\n| --- | ---: |\n" + "\n".join(rows))
if batch in ours and "eager" in theirs:
    print(f"\n**ratio dtrain / PyTorch eager at batch {batch}: {ours[batch] / theirs['eager']:.2f}x** (target >= 1.0x)")
if ours and theirs:
    print(f"best dtrain / best PyTorch: {max(ours.values()) / max(theirs.values()):.2f}x "
          f"(goal >= 1.5x; ~7,900 img/s per H200)")
EOF
)
  if [ -n "$ratio" ]; then
    note ""
    note "## dtrain vs PyTorch"
    note "$ratio"
  fi
fi
[ "$DRY_RUN" = 1 ] && exit 0
exit $((FAILED != 0))
