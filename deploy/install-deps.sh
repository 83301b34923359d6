#!/usr/bin/env bash
# Idempotent: installs (apt) everything dtrain's build, tests and quickstart need on Debian 12.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git ca-certificates python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev prometheus-cpp-dev
  libucx-dev ucx-utils
  libopenblas-dev libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev
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
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
