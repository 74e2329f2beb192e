#!/usr/bin/env bash
# bench/run_slowfast.sh BUILD: SlowFast. (1) Activation memory of SlowFast-R50 and -R101, vanilla
# vs reversible, at 32, 64 and 128 frames of 224x224 (the planner: the arenas' exact sizes, see
# `re2tal plan --measure`). (2) One SlowFast-R101 training step (forward + backward) on a clip of
# BENCH_SF_FRAMES (32) frames at BENCH_SF_SIZE (224) against PyTorch CPU, in BENCH_SF_ROUNDS (2)
# alternating rounds (ours, theirs), BENCH_SF_STEPS (1) timed steps after one warm-up each,
# wall and process CPU time. PyTorch: the pinned PyPI set in build/venv (scripts/install-deps.sh
# --dev; BENCH_PEER_PYTHON overrides), else Debian's python3-torch. Threads: RE2TAL_THREADS
# (default 2).
set -uo pipefail
build="$(cd "${1:-build}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$build/app/re2tal"
threads="${RE2TAL_THREADS:-2}"
frames="${BENCH_SF_FRAMES:-32}"
size="${BENCH_SF_SIZE:-224}"
rounds="${BENCH_SF_ROUNDS:-2}"
steps="${BENCH_SF_STEPS:-1}"
source "$here/peers.sh"
py="$(peer_python "$build")"

echo "# activation memory (MiB, planned = measured arena peaks), 224x224, batch 1"
echo "| model | frames | vanilla | reversible | vanilla / reversible |"
echo "|---|---|---|---|---|"
for f in 32 64 128; do
  for m in slowfast_r50 slowfast_r101; do
    v="$("$bin" plan "$m" --frames "$f" --size 224 --json | sed -n '/"vanilla"/p')"
    r="$("$bin" plan "$m" --frames "$f" --size 224 --json | sed -n '/"reversible"/p')"
    num() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
    va="$(num peak_activation_bytes <<< "$v")"
    ra="$(num peak_activation_bytes <<< "$r")"
    awk -v m="$m" -v f="$f" -v a="$va" -v b="$ra" 'BEGIN {
      printf "| %s | %d | %.1f | %.1f | %.2fx |\n", m, f, a / 1048576, b / 1048576, a / b }'
  done
done

torch_version="$("$py" -c 'import torch; print(torch.__version__)')"
echo "# SlowFast-R101 training step, 1x3x${frames}x${size}x${size}, threads $threads," \
     "torch $torch_version"
wall=() cpu=()
for round in $(seq "$rounds"); do
  ours="$("$bin" --threads "$threads" bench backbone --preset slowfast_r101 --mode vanilla \
          --frames "$frames" --size "$size" --steps "$steps")" || exit 1
  echo "$ours"
  theirs="$("$py" "$here/slowfast_torch.py" "$threads" "$frames" "$size" "$steps")" || exit 1
  echo "$theirs"
  o="$(json_num best_step_ms <<< "$ours")" oc="$(json_num best_step_cpu_ms <<< "$ours")"
  t="$(json_num pytorch_best_ms <<< "$theirs")" tc="$(json_num pytorch_best_cpu_ms <<< "$theirs")"
  wall+=("$(ratio "$t" "$o")") cpu+=("$(ratio "$tc" "$oc")")
  echo "round $round (load $(load_average)): ours $o ms, PyTorch $t ms: ${wall[-1]}x (wall);" \
       "CPU $oc vs $tc ms: ${cpu[-1]}x"
done
awk -v w="$(median "${wall[@]}")" -v c="$(median "${cpu[@]}")" -v v="$torch_version" 'BEGIN {
  printf "SlowFast-R101 step: re2tal %s PyTorch %s by %.2fx in CPU time (%.2fx wall; medians)\n",
         (c >= 1 ? "beats" : "loses to"), v, (c >= 1 ? c : 1 / c), w }'
