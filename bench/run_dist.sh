#!/usr/bin/env bash
# bench/run_dist.sh BUILD_DIR: data-parallel ranks over MPI (needs mpirun and an MPI build).
#  1. training samples/s: 2 ranks x 1 thread (batch 1 each) against 1 rank x 2 threads (batch 2),
#     the demo's model on synthetic videos, the same global samples; goal ratio >= 0.9;
#  2. what overlapping the gradient all-reduce with the backward buys: a Swin-T backbone (28 M
#     parameters) on tiny clips, 2 ranks, overlap on / off, plain and deterministic sums;
#  3. the all-reduce of Swin-T's gradient (28 M floats) over loopback TCP for N = 2, 3, 4 ranks
#     against the ring model 2(N-1)/N x bytes / link bandwidth (measured in the same run), and
#     over shared memory for N = 2.
# Rates come from two run lengths (U1 and U2 updates): (U2 - U1) x global batch / (t2 - t1), so
# start-up (model, data, MPI) cancels; the training rates are the best of DIST_ROUNDS rounds that
# alternate the two layouts (other work on the machine only ever slows a run down).
# Environment: DIST_UPDATES="U1 U2", DIST_ROUNDS (3), DIST_REPS (5), DIST_PARTS ("1 2 3"),
# DIST_SPIN (1).
set -euo pipefail
build="$(cd "${1:-build}" && pwd)"
bin="$build/app/re2tal"
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v mpirun > /dev/null || ! "$bin" version | grep -q 'MPI: yes'; then
  echo "dist: skipped (needs mpirun and a build with MPI: scripts/install-deps.sh)"
  exit 0
fi
[[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
read -r u1 u2 <<< "${DIST_UPDATES:-4 12}"
reps="${DIST_REPS:-5}"
rounds="${DIST_ROUNDS:-3}"
parts="${DIST_PARTS:-1 2 3}"
spin="${DIST_SPIN:-1}" # 0: leave out 1 rank x 2 threads with OpenMP's default (spinning) wait
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" --threads 2 synth --out data --videos 32 --classes 4 --size 64 --min-len 16 --max-len 24 \
  --val-fraction 0.1 --quiet
data="--set data.annotations=data/annotations.json --set data.videos=data/videos"
mpi="mpirun --oversubscribe --bind-to none"

# wall seconds of a training run of $1 updates per epoch (1 epoch); the rest of the args: command
timed() {
  local updates="$1"; shift
  local t0 t1
  rm -rf run
  t0=$(date +%s.%N)
  "$@" $data --set train.out_dir=run --set optim.epochs=1 --set train.eval_every=0 \
    --set train.max_steps_per_epoch="$updates" --set train.checkpoint_every=0 --quiet \
    2> run.err || { cat run.err; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}'
}

# samples/s from the two lengths; $1: global batch, the rest: the command
rate() {
  local batch="$1"; shift
  local ta tb
  ta=$(timed "$u1" "$@")
  tb=$(timed "$u2" "$@")
  awk -v a="$ta" -v b="$tb" -v n=$(( (u2 - u1) * batch )) 'BEGIN {print n / (b - a)}'
}

# mean reduce_wait_ms of the last run's log (rank 0)
wait_ms() {
  grep -o '"reduce_wait_ms": [0-9.]*' run/log.jsonl | awk '{s += $2} END {printf "%.1f", s / NR}'
}

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "machine: $(nproc) cores, $cpu, $(mpirun --version | head -1), load $(cut -d' ' -f1-3 /proc/loadavg)"
demo="$here/../configs/demo.json"
if [[ " $parts " == *" 1 "* ]]; then
echo "-- 1. training: 2 ranks x 1 thread vs 1 rank x 2 threads (demo model, global batch 2, runs of $u2 updates)"
# 1 rank x 2 threads twice: OpenMP's default wait policy spins at barriers, which collapses
# when other processes hold the cores; PASSIVE sleeps instead. Rates of whole runs of U2 updates
# (start-up included: it counts against the ranks, whose MPI start is the slower), median of the
# rounds: two-length differences blow up when one run of a pair is slowed by other work.
whole() { # samples/s of one run of $u2 updates; $1: global batch, the rest: the command
  local batch="$1"; shift
  awk -v t="$(timed "$u2" "$@")" -v n=$((u2 * batch)) 'BEGIN {print n / t}'
}
ones=() passive=() twos=()
for ((i = 0; i < rounds; i++)); do
  [[ "$spin" == 1 ]] && ones+=("$(whole 2 "$bin" --threads 2 train "$demo" --set optim.batch_size=2)")
  passive+=("$(OMP_WAIT_POLICY=PASSIVE whole 2 "$bin" --threads 2 train "$demo" \
               --set optim.batch_size=2)")
  twos+=("$(whole 2 $mpi -np 2 "$bin" --threads 1 train "$demo" --set optim.batch_size=1)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
one=0
[[ ${#ones[@]} -gt 0 ]] && one=$(median "${ones[@]}")
pas=$(median "${passive[@]}") two=$(median "${twos[@]}")
base=$(awk -v a="${one:-0}" -v b="$pas" 'BEGIN {print (a > b ? a : b)}')
list() { local IFS=,; echo "$*"; }
printf '{"bench": "dist_train", "updates": %d, "one_rank_2_threads_sps": [%s], ' "$u2" \
  "$(list "${ones[@]}")"
printf '"passive_wait_sps": [%s], "two_ranks_1_thread_sps": [%s], ' "$(list "${passive[@]}")" \
  "$(list "${twos[@]}")"
printf '"median_ratio": %.3f, "goal": 0.9}\n' "$(awk "BEGIN {print $two / $base}")"
fi

if [[ " $parts " == *" 2 "* ]]; then
echo "-- 2. overlap: Swin-T backbone (28 M parameters), clips [3, 16, 64, 64], 2 ranks x 1 thread"
swin=(train "$demo" --set backbone.preset=swin_t --set backbone.window=[8,7,7]
      --set data.frames=16 --set data.resize_len=32 --set data.crop=64 --set optim.batch_size=1)
for mode in "1 1" "1 0" "0 1" "1 1" "1 0"; do # deterministic, overlap; the first two again
  read -r det overlap <<< "$mode"
  r=$(rate 2 $mpi -np 2 "$bin" --threads 1 "${swin[@]}" --set train.overlap_reduce="$overlap" \
      --set train.deterministic_reduce="$det")
  printf '{"bench": "dist_overlap", "deterministic": %d, "overlap": %d, "sps": %.3f, "step_s": %.3f, "reduce_wait_ms": %s}\n' \
    "$det" "$overlap" "$r" "$(awk "BEGIN {print 2 / $r}")" "$(wait_ms)"
done
fi

[[ " $parts " == *" 3 "* ]] || exit 0
echo "-- 3. all-reduce of 28 M floats (Swin-T's gradient), buckets of 25 MB"
for n in 2 3 4; do
  $mpi -np "$n" --mca btl tcp,self "$bin" --threads 1 bench allreduce --reps "$reps" 2> /dev/null |
    sed 's/^{/{"link": "loopback TCP", /'
done
$mpi -np 2 "$bin" --threads 1 bench allreduce --reps "$reps" 2> /dev/null |
  sed 's/^{/{"link": "shared memory", /'
