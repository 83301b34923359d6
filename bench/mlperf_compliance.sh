#!/usr/bin/env bash
# mlperf_compliance.sh LOGFILE: checks an MLPerf-format log written by dtrain
# (TrainEnv::mlperf_log_path, worker/trainer/mlperf_log.h) with the official
# compliance checker of the mlperf-logging package, training rules 4.0.0
# (common.yaml, closed_common.yaml, closed_resnet.yaml and the
# closed_resnet_{lars,sgd}.yaml that it enqueues).
#
# The package is installed from PyPI into a virtual environment on first use.
# Environment:
#   MLPERF_VENV              the venv (default /tmp/dtrain-mlperf-logging-venv)
#   MLPERF_LOGGING_VERSION   the package version (default 4.1.68, the one checked;
#                            "latest": whatever pip picks)
#   MLPERF_RULESET           the training ruleset (default 4.0.0)
# Exit status: the checker's (0: compliant, 1: not), 2: bad usage.
set -euo pipefail

if [[ $# -ne 1 || ! -f "$1" ]]; then
  echo "usage: $0 LOGFILE   (an MLPerf log file that exists)" >&2
  exit 2
fi
log=$(realpath "$1")
venv=${MLPERF_VENV:-/tmp/dtrain-mlperf-logging-venv}
version=${MLPERF_LOGGING_VERSION:-4.1.68}
ruleset=${MLPERF_RULESET:-4.0.0}

if ! "$venv/bin/python" -c 'import mlperf_logging' 2>/dev/null; then
  echo "installing mlperf-logging $version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  if [[ "$version" == latest ]]; then
    "$venv/bin/pip" install --quiet mlperf-logging >&2
  else
    "$venv/bin/pip" install --quiet "mlperf-logging==$version" >&2
  fi
fi

# The checker also writes its messages to --log_output; keep that next to the log.
exec "$venv/bin/python" -m mlperf_logging.compliance_checker \
  --usage training --ruleset "$ruleset" \
  --log_output "${log%.*}.compliance.txt" "$log"
