#!/usr/bin/env bash
# Installs what is missing (apt) and builds dtrain into build/ (binaries in build/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
