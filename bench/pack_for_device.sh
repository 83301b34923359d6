#!/usr/bin/env bash
# Builds dtrain here and packs what bench/gpu_device_run.sh needs on the GPU
# machine (no package registry there) into one tarball under 60 MiB:
#   bin/    every executable of BUILD_DIR/bin (stripped)
#   tests/  the GPU test binaries (ctest label gpu; stripped)
#   lib/    the shared libraries they need that the GPU machine's image lacks
#           (gRPC, protobuf, abseil, UCX + its modules in lib/ucx, yaml-cpp,
#           spdlog, fmt, OpenBLAS, prometheus-cpp, ...), found with ldd
#   lib/fallback/  libcudart, libstdc++, libgcc_s: used there only if the
#           image's own are missing (gpu_device_run.sh decides with ldd)
#   data/fashion-mnist/  the four .gz files of Fashion-MNIST (31 MB, already
#           compressed: xz gains nothing on them), for the curve and e2e stages
#   MANIFEST.txt   what is inside, and from which commit
# Left out: glibc, and the CUDA libraries that the image's Python packages
# carry (site-packages/nvidia/*/lib: NCCL, cuDNN, cuBLAS; NCCL alone is ~200 MB).
#
# Usage: bash bench/pack_for_device.sh BUILD_DIR [--out FILE] [--targets "T1 T2"] [--no-build]
#                                      [--no-data] [--data DIR]
#   BUILD_DIR  a build directory of this checkout (configured here if new)
#   --out      the tarball (default build-pack/dtrain-device.tar.xz, an ignored
#              path, so the device tool can `carry` the folder build-pack)
#   --targets  build only these targets (default: everything)
#   --no-build pack what BUILD_DIR already holds
#   --no-data  leave the data set out (the curve and e2e stages then fail)
#   --data     where Fashion-MNIST's .gz files are (default
#              /usr/share/datasets/fashion-mnist)
# Fails, naming the largest parts, when the tarball is over 60 MiB.
# See bench/README.md, "Running on the GPU machine".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIMIT_BYTES=$((60 * 1024 * 1024))  # leave room for the working tree under the 64 MiB carry limit

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

[ $# -ge 1 ] || usage 2
case "$1" in -h|--help) usage 0 ;; esac
BUILD=$1
shift
OUT_FILE="$ROOT/build-pack/dtrain-device.tar.xz"
TARGETS=""
DO_BUILD=1
DATA_DIR=/usr/share/datasets/fashion-mnist
FMNIST_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_FILE=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --no-data) DATA_DIR=""; shift ;;
    --data) DATA_DIR=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "pack_for_device: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
case "$OUT_FILE" in /*) ;; *) OUT_FILE="$PWD/$OUT_FILE" ;; esac
if [ -n "$DATA_DIR" ]; then  # check before a long build
  for f in "${FMNIST_FILES[@]}"; do
    [ -f "$DATA_DIR/$f" ] || { echo "pack_for_device: $DATA_DIR/$f not found (--data DIR, or --no-data)" >&2; exit 1; }
  done
fi

if [ "$DO_BUILD" = 1 ]; then
  echo "pack_for_device: building in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" >/dev/null
  if [ -n "$TARGETS" ]; then
    # shellcheck disable=SC2086  # a list of target names
    cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS
  else
    cmake --build "$BUILD" -j"$(nproc)"
  fi
fi
[ -d "$BUILD/bin" ] || { echo "pack_for_device: $BUILD/bin does not exist: build first" >&2; exit 1; }
if ! grep -q '^DTRAIN_HAVE_NCCL:INTERNAL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "pack_for_device: warning: $BUILD was built without the NCCL backend" >&2
fi

STAGE=$(mktemp -d /tmp/dtrain-pack.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
PACK="$STAGE/dtrain-device"
mkdir -p "$PACK/bin" "$PACK/tests" "$PACK/lib/ucx" "$PACK/lib/fallback"

# ---- executables -------------------------------------------------------------
for f in "$BUILD"/bin/*; do
  [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$PACK/bin/"
done
# GPU tests: the executables of the tests ctest labels gpu.
mapfile -t GPU_TESTS < <(ctest --test-dir "$BUILD" -N -L gpu --show-only=json-v1 2>/dev/null |
  python3 -c '
import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
seen = []
for t in data.get("tests", []):
    cmd = t.get("command") or []
    if cmd and cmd[0] not in seen:
        seen.append(cmd[0])
print("\n".join(seen))')
for t in "${GPU_TESTS[@]}"; do
  [ -n "$t" ] && [ -x "$t" ] && cp "$t" "$PACK/tests/"
done
if [ -z "$(ls -A "$PACK/tests")" ]; then
  echo "pack_for_device: warning: no GPU test binaries found (ctest -L gpu lists none in $BUILD)" >&2
fi
strip --strip-unneeded "$PACK"/bin/* "$PACK"/tests/* 2>/dev/null || true

# ---- shared libraries --------------------------------------------------------
# Never carried: glibc and the loader (the image has its own, newer one).
SKIP_RE='^(linux-vdso|ld-linux|libc\.so|libm\.so|libmvec|libpthread|libdl\.so|librt\.so|libresolv|libutil|libanl|libnsl|libBrokenLocale|libthread_db)'
# From the image's Python packages (nvidia/*/lib) or its driver.
IMAGE_RE='^(libcuda\.so|libnvidia-|libnccl|libcudnn|libcublas|libcublasLt|libnvrtc|libnvJitLink|libcufft|libcurand|libcusparse|libcusolver|libnvToolsExt|libcupti)'
# Small, and present on any image with CUDA 13 and a recent compiler: carried
# only as a fallback.
FALLBACK_RE='^(libcudart\.so|libstdc\+\+\.so|libgcc_s\.so)'

declare -A SEEN=()
EXCLUDED=()
collect() {  # collect FILE...: the libraries the files need, recursively
  local f name path
  for f in "$@"; do
    while read -r name path; do
      [ -n "$name" ] || continue
      [ -n "${SEEN[$name]:-}" ] && continue
      SEEN[$name]=1
      if [[ $name =~ $SKIP_RE ]]; then continue; fi
      if [[ $name =~ $IMAGE_RE ]]; then EXCLUDED+=("$name"); continue; fi
      if [ "$path" = "not" ] || [ ! -e "$path" ]; then
        echo "pack_for_device: warning: $f needs $name, not found here" >&2
        continue
      fi
      if [[ $name =~ $FALLBACK_RE ]]; then
        cp -L "$path" "$PACK/lib/fallback/$name"
      else
        cp -L "$path" "$PACK/lib/$name"
        collect "$path"
      fi
    done < <(ldd "$f" 2>/dev/null | awk '/=>/ { print $1, $3 }')
  done
}
collect "$PACK"/bin/* "$PACK"/tests/*

# UCX loads its transport modules from <dir of libucs>/ucx: carry the ones
# whose own needs are met (CMA for same-host rendezvous; not ib/rdmacm).
UCX_MODDIR=""
if [ -e "$PACK/lib/libucs.so.0" ]; then
  UCX_MODDIR=$(dirname "$(ldd "$PACK/bin/dtrain-worker" | awk '$1 == "libucs.so.0" { print $3 }')")/ucx
fi
if [ -n "$UCX_MODDIR" ] && [ -d "$UCX_MODDIR" ]; then
  m="$UCX_MODDIR/libuct_cma.so.0"
  if [ -e "$m" ]; then
    cp -L "$m" "$PACK/lib/ucx/$(basename "$m")"
    collect "$m"
  fi
fi
strip --strip-unneeded "$PACK"/lib/*.so* "$PACK"/lib/ucx/*.so* 2>/dev/null || true

# ---- data ----------------------------------------------------------------------
if [ -n "$DATA_DIR" ]; then
  mkdir -p "$PACK/data/fashion-mnist"
  for f in "${FMNIST_FILES[@]}"; do cp "$DATA_DIR/$f" "$PACK/data/fashion-mnist/"; done
fi

# ---- manifest and tarball ----------------------------------------------------
{
  echo "dtrain device pack"
  echo "built:   $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(uname -m), $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"'))"
  echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' + local changes')"
  echo "build:   $BUILD"
  echo "left out (from the image's site-packages/nvidia/*/lib or driver): ${EXCLUDED[*]:-none}"
  echo
  (cd "$PACK" && find . -type f -printf '%10s  %P\n' | sort -k2)
} >"$PACK/MANIFEST.txt"

mkdir -p "$(dirname "$OUT_FILE")"
echo "pack_for_device: compressing ($(du -sh "$PACK" | cut -f1) unpacked)"
tar -C "$STAGE" -cf - dtrain-device | xz -T0 -6 >"$OUT_FILE"
SIZE=$(stat -c %s "$OUT_FILE")
echo "pack_for_device: $OUT_FILE: $((SIZE / 1024)) KiB ($(find "$PACK/bin" -type f | wc -l) binaries, $(find "$PACK/tests" -type f | wc -l) GPU tests, $(find "$PACK/lib" -type f | wc -l) libraries, data: $([ -d "$PACK/data" ] && du -sh "$PACK/data" | cut -f1 || echo none))"
echo "pack_for_device: bin: $(cd "$PACK/bin" && ls | tr '\n' ' ')"
echo "pack_for_device: tests: $(cd "$PACK/tests" && ls | tr '\n' ' ')"
if [ "$SIZE" -gt "$LIMIT_BYTES" ]; then
  echo "pack_for_device: error: $((SIZE / 1048576)) MiB is over the $((LIMIT_BYTES / 1048576)) MiB budget (the device tool carries 64 MiB with the working tree)" >&2
  echo "pack_for_device: the largest parts (unpacked):" >&2
  (cd "$PACK" && find . -type f -printf '%s %P\n' | sort -rn | head -6 | awk '{ printf "  %6.1f MiB  %s\n", $1 / 1048576, $2 }') >&2
  if [ -d "$PACK/data" ]; then
    echo "pack_for_device: the data set is $(du -sh "$PACK/data" | cut -f1) of it, already compressed: --no-data leaves it out (the curve and e2e stages then cannot run)" >&2
  fi
  rm -f "$OUT_FILE"
  exit 1
fi
