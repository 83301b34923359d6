#!/usr/bin/env bash
# ImageNet input cost per core: dtrain's decoder (bench/decode_bench, with and
# without DCT scaling) against what a PyTorch user runs (Pillow + torchvision
# RandomResizedCrop(224) + RandomHorizontalFlip, without and with draft()), on
# the same files in one run. Prints one table of images/s per core and the
# answer: how many cores one H200 needs at 3,000 and 7,000 images/s of
# ResNet-50 training, and whether a 16-core device host can feed it.
#
# Usage: bash bench/decode_vs_pillow.sh [DIR] [--build BUILD_DIR] [--seconds S] [--reps R] [--plain]
#   DIR        an image folder (default: a fresh tests/data/make_photo_folder.py
#              folder of 3,500 ImageNet-sized photographs in a temporary directory,
#              made with --grain 5 --quality-range 92,98 so that files have
#              ImageNet's ~100 KB density: entropy decoding costs per byte)
#   --plain    the default folder without grain (~30 KB per file: optimistic)
#   --build    the build directory holding bin/decode_bench (default
#              $DTRAIN_BUILD_DIR, else build/); build it with
#              cmake --build BUILD_DIR --target decode_bench
#   --seconds  measuring time per configuration (default 3)
#   --reps     rounds (default 3): each round runs dtrain then Pillow at 1 worker,
#              then both at all cores, so load from other processes hits both
#              sides alike; the best round of each configuration is kept
# No assertions: it reports. Cores = what nproc says (hardware threads).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
DIR=""
BUILD=${DTRAIN_BUILD_DIR:-$ROOT/build}
SECONDS_PER=3
REPS=3
DENSE=(--grain 5 --quality-range 92,98)
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --plain) DENSE=(); shift ;;
    --reps) REPS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "decode_vs_pillow.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) DIR=$1; shift ;;
  esac
done
BENCH=$BUILD/bin/decode_bench
if [ ! -x "$BENCH" ]; then
  echo "decode_vs_pillow.sh: $BENCH missing: cmake --build $BUILD --target decode_bench" >&2
  exit 2
fi

TMP=$(mktemp -d /tmp/dtrain-decode-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [ -z "$DIR" ]; then
  DIR=$TMP/photos
  "$PY" "$ROOT/tests/data/make_photo_folder.py" "$DIR" ${DENSE[@]+"${DENSE[@]}"}
fi

CORES=$(nproc)
WORKERS=1
[ "$CORES" -gt 1 ] && WORKERS="1 $CORES"
for rep in $(seq 1 "$REPS"); do
  for n in $WORKERS; do
    echo "== round $rep, $n worker(s)"
    "$BENCH" "$DIR" --seconds "$SECONDS_PER" --threads "$n" | tee -a "$TMP/dtrain.txt"
    "$PY" "$ROOT/bench/decode_vs_pillow.py" "$DIR" --seconds "$SECONDS_PER" --procs "$n" | tee -a "$TMP/pillow.txt"
  done
done

"$PY" - "$TMP/dtrain.txt" "$TMP/pillow.txt" <<'EOF'
import os, sys
rate, rounds = {}, {}  # (mode, workers) -> best images/s over the rounds, all of them
for path in sys.argv[1:]:
    for line in open(path):
        if line.startswith("RESULT "):
            _, mode, n, images, secs, ips = line.split()
            rounds.setdefault((mode, int(n)), []).append(float(ips))
            rate[(mode, int(n))] = max(rounds[(mode, int(n))])
cores = max(n for _, n in rate)
kb = ""
for line in open(sys.argv[1]):
    if line.startswith("decode_bench:"):
        kb = line.split("(")[1].split(")")[0]  # "NN.N KB/file"
modes = [("dct", "dtrain, DCT scaling"), ("no-dct", "dtrain, full resolution"),
         ("pillow", "Pillow + torchvision"), ("pillow-draft", "Pillow draft() + torchvision")]
print()
print(f"images/s per core: decode + RandomResizedCrop + flip -> 224x224 RGB, {kb}, {cores} cores here, "
      f"best of {max(len(v) for v in rounds.values())} rounds")
print(f"| {'pipeline':<30} | {'1 core':>8} | {'vs Pillow':>9} | {f'{cores} cores, per core':>18} | {'vs Pillow':>9} |")
print(f"|{'-' * 32}|{'-' * 10}|{'-' * 11}|{'-' * 20}|{'-' * 11}|")
for m, name in modes:
    one, many = rate.get((m, 1)), rate.get((m, cores), rate.get((m, 1)) * cores)
    r1 = one / rate[("pillow", 1)]
    rn = many / rate.get(("pillow", cores), rate[("pillow", 1)] * cores)
    print(f"| {name:<30} | {one:>8.0f} | {r1:>8.2f}x | {many / cores:>18.0f} | {rn:>8.2f}x |")
print("spread over the rounds (images/s, all workers): " + "; ".join(
    f"{m} x{n} {min(v):.0f}-{max(v):.0f}" for (m, n), v in sorted(rounds.items())))
best = max(("dct", "no-dct"), key=lambda m: rate[(m, cores)] if (m, cores) in rate else rate[(m, 1)])
ideal = rate[(best, 1)]                                     # one core to itself
loaded = rate.get((best, cores), ideal * cores) / cores      # every core busy (shared caches, turbo, SMT)
pil_ideal = rate[("pillow", 1)]
pil_loaded = rate.get(("pillow", cores), pil_ideal * cores) / cores
print()
host, reserved = 16, 2  # the device host's cores; 2 left to the worker's own threads (engine, comm, loader)
print(f"Cores per H200 (dtrain {best}; range = 1-core rate .. all-cores rate; a {host}-core host keeps "
      f"{reserved} for the worker, {host - reserved} decode):")
for need in (3000, 7000):
    lo, hi = need / ideal, need / loaded
    plo, phi = need / pil_ideal, need / pil_loaded
    feed = (host - reserved) * loaded
    verdict = "yes" if feed >= need else ("only at the 1-core rate" if (host - reserved) * ideal >= need else "no")
    print(f"  {need:>5} images/s: dtrain {lo:4.1f}-{hi:4.1f} cores, Pillow {plo:4.1f}-{phi:4.1f}; "
          f"16-core host feeds it: {verdict} ({host - reserved} cores x {loaded:.0f} = {feed:.0f} images/s)")
print("(measured on this machine's cores; the device host's may be faster or slower per core)")
EOF
