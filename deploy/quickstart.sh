#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, starts a coordinator and
# 2 workers on this machine, submits the main job with the CLI, follows it
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
for r in 0 1; do
  "$B/dtrain-worker" --local-rank "$r" --local-workers 2 >"$RUN/worker$r.log" 2>&1 &
  pids+=($!)
done
echo "coordinator at $DTRAIN_COORDINATOR; logs in $RUN"
for _ in $(seq 100); do
  [ "$("$B/dtrain" workers --json | grep -c '"IDLE"')" -ge 2 ] && break; sleep 0.1
done
"$B/dtrain" workers

SPEC=${1:-deploy/jobs/quickstart.yaml}
shift || true
JOB=$("$B/dtrain" submit "$SPEC" "$@")
echo "submitted $JOB ($SPEC)"
rc=0
"$B/dtrain" watch "$JOB" || rc=$?
"$B/dtrain" status "$JOB"
exit $rc
