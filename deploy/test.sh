#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test
# (unit, integration with real processes on loopback; GPU tests skip visibly
# without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
export UCX_NET_DEVICES=lo
ctest --test-dir build --output-on-failure --timeout 900 "$@"
