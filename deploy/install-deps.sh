#!/usr/bin/env bash
# Idempotent: installs (apt) everything dtrain's build, tests and quickstart need on Debian 12.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git ca-certificates python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev prometheus-cpp-dev
  libucx-dev ucx-utils
  libopenblas-dev libdnnl-dev ocl-icd-opencl-dev libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist mate-backgrounds
  python3-pil python3-numpy python3-torchvision gnuplot-nox
  python3-grpcio prometheus slurm-wlm munge iproute2 procps openssl
  clang libclang-rt-14-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# TensorBoard, for tests/integration/test_tensorboard.py (PyPI only; not in Debian), into
# <repo>/.pydeps, which the test appends to sys.path AFTER Debian's packages. --no-deps: pip
# --target would otherwise also pull protobuf 7, grpcio and numpy 2 (tensorboard >= 2.21 needs
# protobuf >= 6.31), shadowing Debian's; 2.20.0 runs on Debian's protobuf 4.21, grpcio 1.51,
# numpy 1.24 and Pillow 9.4, so only its pure-Python dependencies (and the data server) come from PyPI.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# safetensors: the reference implementation checkpoint_safetensors_test compares ours with (also PyPI only).
PYPI=()
[ -d "$REPO/.pydeps/tensorboard" ] || PYPI+=(tensorboard==2.20.0 tensorboard-data-server==0.7.2 absl-py==2.5.1
  markdown==3.11.3 werkzeug==3.1.9 markupsafe==3.0.4 packaging==26.4)
[ -d "$REPO/.pydeps/safetensors" ] || PYPI+=(safetensors==0.8.0)
if [ ${#PYPI[@]} -gt 0 ]; then
  if ! dpkg-query -W -f='${Status}' python3-pip 2>/dev/null | grep -q "ok installed"; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip
  fi
  /usr/bin/python3 -m pip install -q --no-deps --target "$REPO/.pydeps" "${PYPI[@]}"
else
  echo "install-deps: tensorboard and safetensors present in $REPO/.pydeps"
fi
