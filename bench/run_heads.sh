#!/usr/bin/env bash
# bench/run_heads.sh BUILD: forward+backward of the ActionFormer head at the THUMOS e2e shape
# (768 -> 512 channels, T 512, 6 levels, global attention, 20 classes, batch 2) in re2tal
# against the `actionformer` package from PyPI on PyTorch 2.x (bench/actionformer_torch.py, in
# build/venv from scripts/install-deps.sh --dev), alternating rounds at 1 thread (process CPU
# time) and RE2TAL_THREADS (default 2; wall time). BENCH_HEADS_B batch (2), BENCH_ROUNDS (2),
# BENCH_COMPILE=1 adds the package's model through torch.compile.
set -uo pipefail
build="$(cd "${1:-build}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/peers.sh"
threads="${RE2TAL_THREADS:-2}"
B="${BENCH_HEADS_B:-2}"
rounds="${BENCH_ROUNDS:-2}"
py="$(peer_python "$build")"
af_version="$([[ -n "$py" ]] && peer_version "$py" actionformer)"
torch_version="$([[ -n "$py" ]] && peer_version "$py" torch)"
# pinned, passive waits (as bench/run_backbone.sh)
pin=(env OMP_PROC_BIND=close OMP_PLACES=cores OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}")
for t in 1 "$threads"; do
  key=best_ms ours_key=re2tal_best_ms
  (( t == 1 )) && key=best_cpu_ms ours_key=re2tal_best_cpu_ms
  ratios=() cratios=()
  for round in $(seq "$rounds"); do
    ours="$("${pin[@]}" "$build/bench/bench_heads_fwdbwd" "$B" 3 "$t")" || exit 1
    echo "$ours"
    o="$(json_num "$ours_key" <<< "$ours")"
    if [[ -z "$af_version" ]]; then
      echo "(no actionformer package: scripts/install-deps.sh --dev installs the peers)"
      continue
    fi
    theirs="$("${pin[@]}" "$py" "$here/actionformer_torch.py" "$t" "$B" 3 2>/dev/null)" || exit 1
    echo "$theirs"
    ratios+=("$(ratio "$(json_num "$key" <<< "$theirs")" "$o")")
    extra=""
    if [[ "${BENCH_COMPILE:-0}" != 0 ]]; then
      theirs="$("${pin[@]}" "$py" "$here/actionformer_torch.py" "$t" "$B" 3 --compile \
                2>/dev/null)" || theirs='{"best_ms": 0, "best_cpu_ms": 0}'
      echo "$theirs"
      cratios+=("$(ratio "$(json_num "$key" <<< "$theirs")" "$o")")
      extra=", torch.compile ${cratios[-1]}x"
    fi
    echo "round $round ($t thread(s), $key, load $(load_average)): actionformer eager /" \
         "re2tal ${ratios[-1]}x$extra"
  done
  (( ${#ratios[@]} )) || continue
  m="$(median "${ratios[@]}")"
  awk -v m="$m" -v t="$t" -v v="actionformer $af_version on torch $torch_version" 'BEGIN {
    printf "head, %d thread(s): re2tal %s %s (eager) by %.2fx (median of rounds)\n", t,
           (m >= 1 ? "beats" : "loses to"), v, (m >= 1 ? m : 1 / m) }'
  if (( ${#cratios[@]} )); then
    m="$(median "${cratios[@]}")"
    echo "head, $t thread(s): against its torch.compile: ${m}x (median)"
  fi
done
