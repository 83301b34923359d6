#!/usr/bin/env bash
# dtrain's CPU training throughput beside PyTorch DDP on the same job, in one run:
# resnet20 on Fashion-MNIST, batch 128 per worker, 1 and 2 worker processes, the same
# thread count per worker. Alternates dtrain (train_bench) and PyTorch
# (bench/pytorch_ddp_bench.py, Debian's python3-torch, gloo) --repeats times, so a
# drift of the machine hits both, then prints the markdown table
#   | | 1 worker img/s | 2 workers img/s per worker | scaling |
# with one figure per repeat, the ratios dtrain / PyTorch per worker, and the machine.
#
#   bash bench/cpu_vs_pytorch.sh [--repeats 2] [--steps 40] [--threads 1] [--out DIR]
#
# BUILD (default build, relative to the repository root) holds bin/train_bench;
# PYTHON (default /usr/bin/python3) needs torch. The raw outputs stay in DIR
# (default a new /tmp/dtrain-cpu-vs-pytorch-XXXXXX). Timings are reported, never asserted.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) build=$BUILD ;; *) build=$repo/$BUILD ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
repeats=2 steps=40 threads=1 out=""

usage() { echo "usage: bash bench/cpu_vs_pytorch.sh [--repeats N] [--steps N] [--threads T] [--out DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
for v in "$repeats" "$steps" "$threads"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "cpu_vs_pytorch: --repeats, --steps, --threads must be positive integers, got '$v'" >&2; exit 2; }
done
bench=$build/bin/train_bench
[ -x "$bench" ] || { echo "cpu_vs_pytorch: $bench not found: build it (cmake --build $build --target train_bench) or set BUILD" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "cpu_vs_pytorch: $PYTHON cannot import torch (apt install python3-torch, or set PYTHON)" >&2; exit 1; }
if [ -z "$out" ]; then out=$(mktemp -d /tmp/dtrain-cpu-vs-pytorch-XXXXXX); else mkdir -p "$out"; fi

# train_bench's table: after the line starting with "workers", rows of 9 columns
# (workers, global img/s, img/s/worker, ..., scaling%). Prints "W per_worker".
parse_dtrain() {
  awk '$1 == "workers" { t = 1; next } t && NF == 9 && $1 ~ /^[0-9]+$/ { print $1, $3 }' "$1"
}
# pytorch_ddp_bench.py's JSON lines. Prints "W per_worker".
parse_torch() {
  "$PYTHON" -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        print(r["workers"], r["img_s_per_worker"])' "$1"
}
# "W per_worker" lines -> "one two" (per worker at 1 and at 2 workers); fails if one is missing.
pick() {
  awk '$1 == 1 { a = $2 } $1 == 2 { b = $2 } END { if (a == "" || b == "") exit 1; print a, b }'
}

d1=() d2=() t1=() t2=()
for ((r = 1; r <= repeats; r++)); do
  echo "cpu_vs_pytorch: repeat $r/$repeats: dtrain train_bench" >&2
  "$bench" --workers 1,2 --steps "$steps" --blas-threads "$threads" >"$out/dtrain_$r.txt" 2>"$out/dtrain_$r.err" ||
    { echo "cpu_vs_pytorch: train_bench failed, see $out/dtrain_$r.err" >&2; exit 1; }
  read -r a b < <(parse_dtrain "$out/dtrain_$r.txt" | pick) ||
    { echo "cpu_vs_pytorch: no 1- and 2-worker rows in $out/dtrain_$r.txt" >&2; exit 1; }
  d1+=("$a") d2+=("$b")
  echo "cpu_vs_pytorch: repeat $r/$repeats: PyTorch DDP" >&2
  "$PYTHON" "$repo/bench/pytorch_ddp_bench.py" --workers 1,2 --steps "$steps" --threads "$threads" \
    --batch 128 --json "$out/pytorch_$r.json" >"$out/pytorch_$r.txt" 2>"$out/pytorch_$r.err" ||
    { echo "cpu_vs_pytorch: pytorch_ddp_bench.py failed, see $out/pytorch_$r.err" >&2; exit 1; }
  read -r a b < <(parse_torch "$out/pytorch_$r.txt" | pick) ||
    { echo "cpu_vs_pytorch: no 1- and 2-worker results in $out/pytorch_$r.txt" >&2; exit 1; }
  t1+=("$a") t2+=("$b")
done

# join "fmt" values...: the values formatted and separated by " / "
join() { local fmt=$1; shift; local s="" v; for v in "$@"; do s+="${s:+ / }$(awk -v v="$v" "BEGIN { printf \"$fmt\", v }")"; done; echo "$s"; }
# scaling per repeat: per worker at 2 / per worker at 1, in percent
scal() { local -n one=$1 two=$2; local i s=(); for i in "${!one[@]}"; do s+=("$(awk -v a="${one[$i]}" -v b="${two[$i]}" 'BEGIN { print 100 * b / a }')"); done; join "%.1f %%" "${s[@]}"; }
ratio() { local -n x=$1 y=$2; local i s=(); for i in "${!x[@]}"; do s+=("$(awk -v a="${x[$i]}" -v b="${y[$i]}" 'BEGIN { print a / b }')"); done; join "%.2f×" "${s[@]}"; }

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit+=" (with uncommitted changes)"
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)')

echo
echo "resnet20 on Fashion-MNIST, batch 128 per worker, $threads thread(s) per worker, $steps steps; one figure per repeat ($repeats), run alternately"
echo
echo "| | 1 worker img/s | 2 workers img/s per worker | scaling |"
echo "|---|---|---|---|"
echo "| dtrain (\`train_bench\`) | $(join "%.1f" "${d1[@]}") | $(join "%.1f" "${d2[@]}") | $(scal d1 d2) |"
echo "| PyTorch DDP | $(join "%.1f" "${t1[@]}") | $(join "%.1f" "${t2[@]}") | $(scal t1 t2) |"
echo
echo "dtrain / PyTorch per worker: 1 worker $(ratio d1 t1); 2 workers $(ratio d2 t2)"
echo
echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}; torch $torch_version ($PYTHON, gloo); dtrain $commit (train_bench in $build)"
echo "raw outputs: $out"
