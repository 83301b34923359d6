#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, starts a coordinator and
# 2 workers on this machine (one per GPU, at most 2, when nvidia-smi sees GPUs:
# the job then trains on the CUDA engine; else 2 CPU workers), submits the main job with the CLI, follows it
# with `dtrain watch`, prints its status, and stops the daemons.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh

B=build/bin
RUN=$(mktemp -d /tmp/dtrain-quickstart.XXXXXX)
export UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$B/dtrain-coordinator" --listen 127.0.0.1:0 --port-file "$RUN/port" >"$RUN/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$RUN/port" ] && break; sleep 0.1; done
[ -s "$RUN/port" ] || { echo "coordinator did not start; see $RUN/coordinator.log" >&2; exit 1; }
export DTRAIN_COORDINATOR=127.0.0.1:$(cat "$RUN/port")
NGPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  NGPU=$(nvidia-smi -L | grep -c '^GPU' || true)
fi
NW=2
SETS=()
if [ "$NGPU" -ge 1 ]; then
  NW=$((NGPU < 2 ? NGPU : 2))
  SETS=(--set "workers=$NW")
  echo "quickstart: $NGPU GPU(s) found: $NW worker(s), one per GPU (device: auto picks the CUDA engine)"
fi
for r in $(seq 0 $((NW - 1))); do
  "$B/dtrain-worker" --local-rank "$r" --local-workers "$NW" >"$RUN/worker$r.log" 2>&1 &
  pids+=($!)
done
echo "coordinator at $DTRAIN_COORDINATOR; logs in $RUN"
for _ in $(seq 100); do
  [ "$("$B/dtrain" workers --json | grep -c '"IDLE"')" -ge "$NW" ] && break; sleep 0.1
done
"$B/dtrain" workers

SPEC=${1:-deploy/jobs/quickstart.yaml}
shift || true
JOB=$("$B/dtrain" submit "$SPEC" "${SETS[@]}" "$@")
echo "submitted $JOB ($SPEC)"
rc=0
"$B/dtrain" watch "$JOB" || rc=$?
"$B/dtrain" status "$JOB"
exit $rc
