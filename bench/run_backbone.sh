#!/usr/bin/env bash
# bench/run_backbone.sh BUILD: training-step time and peak memory of one Swin stage, vanilla vs
# reversible (Re2TAL), over depth (2, 6, 12, 24 blocks) and clip length (8..64 frames) at the
# Swin-T stage-1 shape (dim 96, 3 heads, window 8x7x7) (BENCH_BACKBONE_SWEEPS=0 skips them);
# then one Swin-T stage-1 block (1x8x56x56 tokens) and the whole Swin-T (16x224x224) forward +
# backward against PyTorch 2.x CPU (bench/swin_torch.py in build/venv: eager at its best
# settings, and torch.compile) in the same run, alternating rounds. Threads: RE2TAL_THREADS
# (default 2).
set -uo pipefail
build="$(cd "${1:-build}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/peers.sh"
bin="$build/app/re2tal"
threads="${RE2TAL_THREADS:-2}"
size="${BENCH_BACKBONE_SIZE:-112}"   # 112 -> 28x28 tokens per frame pair (fits 24 GiB)
bench=("$bin" --threads "$threads" bench backbone)

if [[ "${BENCH_BACKBONE_SWEEPS:-1}" != 0 ]]; then
echo "# depth sweep: frames 16, size $size, threads $threads"
for blocks in 2 6 12 24; do
  for mode in vanilla reversible; do
    "${bench[@]}" --mode $mode --blocks $blocks --frames 16 --size "$size" --steps 2 || exit 1
  done
done
echo "# length sweep: 12 blocks, size $size"
for frames in 8 16 32 64; do
  for mode in vanilla reversible; do
    "${bench[@]}" --mode $mode --blocks 12 --frames $frames --size "$size" --steps 2 || exit 1
  done
done
fi

py="$(peer_python "$build")"
torch_version="$([[ -n "$py" ]] && peer_version "$py" torch)"
if [[ -z "$torch_version" ]]; then
  echo "(no Python with torch: PyTorch peers skipped; scripts/install-deps.sh --dev makes them)"
  exit 0
fi
rounds="${BENCH_ROUNDS:-2}"
# Threads pinned for both sides (one OpenMP thread per core, in order), waiting passively at
# barriers unless OMP_WAIT_POLICY says otherwise: on a loaded machine the default spinning made
# both sides 2-4x slower at 2 threads than at 1 (bench/RESULTS.md "peers").
pin=(env OMP_PROC_BIND=close OMP_PLACES=cores OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}")
peer=("${pin[@]}" "$py" "$here/swin_torch.py")
ours_bench() {
  "${pin[@]}" "$bin" --threads "$1" bench backbone --mode vanilla --drop-path 0 "${@:2}"
}

# PyTorch's allocator and backend settings: each tried once on the block at 1 thread (process
# CPU time, which counts the page faults an allocator causes); the best is the "eager" peer.
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
glibc_keep="MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=100000000000"
glibc_keep+=" MALLOC_TOP_PAD_=1073741824"
je_conf="oversize_threshold:1,background_thread:false,metadata_thp:auto,dirty_decay_ms:-1"
je_conf+=",muzzy_decay_ms:-1"  # Intel's recommended jemalloc settings for PyTorch
settings=("default|" "glibc-keep-freed|$glibc_keep")
[[ -e "$jemalloc" ]] && settings+=("jemalloc|LD_PRELOAD=$jemalloc MALLOC_CONF=$je_conf")
[[ -e "$tcmalloc" ]] && settings+=("tcmalloc|LD_PRELOAD=$tcmalloc")
echo "# PyTorch $torch_version ($py) settings for the block, 1 thread, 3 steps (best CPU ms;"
echo "# load average $(load_average))"
best_label="" best_env="" best_cpu="" best_flag=""
for entry in "${settings[@]}"; do
  label="${entry%%|*}" envs="${entry#*|}"
  # BENCH_PEER_SETTINGS="default jemalloc" tries only those (a short dry run)
  [[ -n "${BENCH_PEER_SETTINGS:-}" && " $BENCH_PEER_SETTINGS " != *" $label "* ]] && continue
  for flag in "" --no-mkldnn; do
    line="$(env $envs "${peer[@]}" block 1 3 $flag --label "$label")" || continue
    echo "$line"
    c="$(json_num best_cpu_ms <<< "$line")"
    if [[ -z "$best_cpu" ]] || awk -v a="$c" -v b="$best_cpu" 'BEGIN { exit !(a < b) }'; then
      best_cpu="$c" best_label="$label" best_env="$envs" best_flag="$flag"
    fi
  done
done
echo "# best eager settings: $best_label ${best_flag:-(mkldnn on)}"

# compare WHAT THREADS STEPS OURS_ARGS...: alternating rounds (ours, eager, torch.compile);
# at 1 thread by process CPU time, at more threads by wall time; per-round ratios and medians.
compare() {
  local what="$1" t="$2" steps="$3"; shift 3
  local key=best_ms ours_key=best_step_ms
  (( t == 1 )) && key=best_cpu_ms ours_key=best_step_cpu_ms
  [[ "$what" == block && $t -gt 1 ]] && ours_key=best_blocks_ms
  local r_eager=() r_comp=() o e c line rc
  for round in $(seq "$rounds"); do
    line="$(ours_bench "$t" "$@" --steps "$steps")" || return 1
    echo "$line"
    o="$(json_num "$ours_key" <<< "$line")"
    line="$(env $best_env "${peer[@]}" "$what" "$t" "$steps" $best_flag --label "$best_label")"
    echo "$line"
    e="$(json_num "$key" <<< "$line")"
    r_eager+=("$(ratio "$e" "$o")")
    c="n/a" rc="n/a"
    if [[ "${BENCH_COMPILE:-1}" != 0 ]]; then
      # Inductor with its own defaults (mkldnn on) and the best allocator
      line="$(env $best_env "${peer[@]}" "$what" "$t" "$steps" --compile default \
              --label "$best_label" 2>/dev/null)" || line='{"best_ms": 0, "best_cpu_ms": 0}'
      echo "$line"
      c="$(json_num "$key" <<< "$line")"
      rc="$(ratio "$c" "$o")"
      r_comp+=("$rc")
    fi
    echo "round $round ($what, $t thread(s), $key, load $(load_average)): ours $o ms," \
         "eager $e ms (${r_eager[-1]}x), compile $c ms (${rc}x)"
  done
  local me mc
  me="$(median "${r_eager[@]}")"
  mc="$( ((${#r_comp[@]})) && median "${r_comp[@]}")"
  for pair in "pytorch $torch_version eager ($best_label ${best_flag:-mkldnn on})|$me" \
              "pytorch $torch_version torch.compile ($best_label)|${mc:-nan}"; do
    awk -v p="${pair%%|*}" -v r="${pair#*|}" -v w="$what" -v t="$t" 'BEGIN {
      if (r == "nan" || r == 0) { printf "%s, %d thread(s): %s did not run\n", w, t, p; exit }
      printf "%s, %d thread(s): re2tal %s %s by %.2fx (median of rounds)\n", w, t,
             (r >= 1 ? "beats" : "loses to"), p, (r >= 1 ? r : 1 / r) }'
  done
}

echo "# one Swin-T stage-1 block, 1x8x56x56x96 tokens (16 frames at 224), fwd+bwd, no drop-path"
echo "# (ours: best_step_cpu_ms includes the patch embedding and pooling around the block)"
for t in 1 "$threads"; do
  compare block "$t" 4 --blocks 1 --frames 16 --size 224
done
echo "# full Swin-T, one clip 16x224x224, fwd+bwd"
for t in 1 "$threads"; do
  compare swin_t "$t" 2 --preset swin_t --frames 16 --size 224
done
