#!/usr/bin/env bash
# bench/run_cuda.sh BUILD OUT [--smoke]: re2tal's Swin-T training step on the GPU against PyTorch
# 2.x eager on the same card in the same run (issue 14), the goals checked, the input pipeline's
# frames/s beside the step's. Called by scripts/device_check.sh; every line also lands in
# OUT/cuda_bench.jsonl and the table in OUT/cuda_bench.md.
#
# One clip [1, 3, T, 224, 224], T = 128 and 512, forward + backward (the mean of the features as
# the loss, no optimiser), re2tal `bench backbone --preset swin_t --mode reversible --precision
# bf16 --drop-path 0` against bench/cuda_swin_torch.py's Swin-T under bf16 autocast: reversible
# (custom autograd Function) and vanilla (stored activations); torch.compile beside eager at 128
# frames when time is left; then `re2tal bench decode` on synthetic H.264 (320x240 and 720p):
# the training path's frames/s (decode, resize, normalise) of one decoder with FFmpeg's threads
# (the trainer's background thread: the goal) and of nproc single-threaded decoders at once
# (this machine's ceiling), against the step's frames/s. Runs in that order (most
# important first), each under `timeout`, all within CUDA_BENCH_BUDGET seconds (default 200):
# a run that would not fit is skipped and reported, never left hanging.
#
#   --smoke   the same on the CPU at 8 frames of 64x64 (no GPU, no goals, no compile): tests
#             the script's plumbing where there is no GPU
#
# Environment: PYTHON (python3 with torch; on the GPU image its PyTorch 2.x), FFMPEG (ffmpeg with
# libx264, for the decode videos; default: on the PATH), CUDA_BENCH_BUDGET, CUDA_BENCH_ROUNDS
# (default 1: rounds of ours / PyTorch reversible alternating, best of each).
set -uo pipefail
build=$(cd "${1:?usage: run_cuda.sh BUILD OUT [--smoke]}" && pwd)
out=${2:?usage: run_cuda.sh BUILD OUT [--smoke]}
smoke=0
[[ ${3:-} == --smoke ]] && smoke=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/app/re2tal
py=${PYTHON:-python3}
torch_py=$here/cuda_swin_torch.py
ffmpeg=${FFMPEG:-ffmpeg}
budget=${CUDA_BENCH_BUDGET:-200}
rounds=${CUDA_BENCH_ROUNDS:-1}
jsonl=$out/cuda_bench.jsonl
videos=$out/decode_videos
: > "$jsonl"
t_start=$(date +%s)
left() { echo $((budget - ($(date +%s) - t_start))); }

if ((smoke)); then
  device=cpu frames_list=(8) size=64 steps=1 prec=fp32 tprec=fp32
else
  device=cuda frames_list=(128 512) size=224 steps=3 prec=bf16 tprec=bf16
fi

# run NAME NEED_S MAX_S CMD...: runs CMD under timeout (at most MAX_S, and only if NEED_S are
# left), appends its JSON line(s) to the jsonl tagged with the run's name, or a failure line.
run() {
  local name=$1 need=$2 max=$3
  shift 3
  local l
  l=$(left)
  if ((l < need)); then
    echo "{\"run\": \"$name\", \"status\": \"skipped\", \"message\": \"$l s left of the budget\"}" \
      | tee -a "$jsonl"
    return
  fi
  ((max > l)) && max=$l
  local t0 res rc
  t0=$(date +%s)
  # timeout signals its whole process group: the python or re2tal below bash goes too
  res=$(timeout -k 5 "$max" bash -c '"$@"' run "$@" 2> "$out/$name.err")
  rc=$?
  local secs=$(($(date +%s) - t0))
  local line
  line=$(grep '^{' <<< "$res" | tail -1)
  if ((rc == 0)) && [[ -n $line ]]; then
    echo "{\"run\": \"$name\", \"seconds\": $secs, ${line#\{}" | tee -a "$jsonl"
  else
    local why="exit $rc"
    ((rc == 124 || rc == 137)) && why="timed out after $max s"
    local msg
    msg=$(grep -v '^[[:space:]]*$' "$out/$name.err" | tail -1 | tr '"\\\t' "'/ " | cut -c1-300)
    echo "{\"run\": \"$name\", \"seconds\": $secs, \"status\": \"failed\"," \
      "\"message\": \"$why: $msg\"}" | tee -a "$jsonl"
  fi
}

echo "# machine: $(nproc) cores, $(uname -srm)"
if ((!smoke)); then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    || echo "nvidia-smi failed"
fi
"$py" -c 'import torch, sys; print("# torch", torch.__version__, "cuda", torch.version.cuda,
  "gpu", torch.cuda.is_available())' || { echo "run_cuda: $py has no torch" >&2; exit 1; }

# The reference first: its reversible gradients equal its stored ones (CPU, fp64, seconds).
run torch-check 20 60 "$py" "$torch_py" --check

ours() { # frames mode
  "$bin" --threads "$(nproc)" bench backbone --device "$device" --precision "$prec" \
    --preset swin_t --mode "$2" --frames "$1" --size "$size" --steps "$steps" --drop-path 0
}
theirs() { # frames mode [extra]
  local f=$1 m=$2
  shift 2
  "$py" "$torch_py" --device "$device" --precision "$tprec" --mode "$m" --frames "$f" \
    --size "$size" --steps "$steps" --warmup 1 "$@"
}

export bin py torch_py device prec tprec size steps videos
export -f ours theirs

for f in "${frames_list[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    run "ours-reversible-$f-r$r" 15 120 ours "$f" reversible
    run "torch-reversible-$f-r$r" 15 120 theirs "$f" reversible
  done
  run "torch-vanilla-$f-eager" 15 120 theirs "$f" vanilla
done

# The input pipeline: what the decoder sustains on this machine's cores.

mkdir -p "$videos"
decode_run() { # name video threads copies
  local name=$1 v=$2 threads=$3 copies=$4 k
  for ((k = 0; k < copies; k++)); do
    "$bin" bench decode "$v" --size 224 --threads "$threads" --clips 3 --repeat 1 \
      > "$videos/$name.$k.json" &
  done
  wait
  cat "$videos/$name".*.json | "$py" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
print(json.dumps({"decode_fps": sum(r["fps"] for r in rows), "decoders": len(rows),
                  "threads_each": int(sys.argv[1]), "frames_each": rows[0]["frames"] if rows
                  else 0}))' "$threads"
}
export -f decode_run
for spec in 320x240 1280x720; do
  v=$videos/h264_$spec.mp4
  if (($(left) < 20)); then
    echo "{\"run\": \"decode-$spec-all\", \"status\": \"skipped\"," \
      "\"message\": \"$(left) s left\"}" | tee -a "$jsonl"
    continue
  fi
  if [[ ! -s $v ]] && ! timeout 60 "$ffmpeg" -v error -y -f lavfi -i "testsrc2=s=$spec:r=30:d=10" \
    -c:v libx264 -pix_fmt yuv420p "$v"; then
    echo "{\"run\": \"decode-$spec\", \"status\": \"failed\", \"message\": \"no $ffmpeg\"}" \
      | tee -a "$jsonl"
    continue
  fi
  run "decode-$spec-one" 10 60 decode_run "one-$spec" "$v" 0 1
  run "decode-$spec-all" 10 60 decode_run "all-$spec" "$v" 1 "$(nproc)"
done

# torch.compile beside eager, at the first length, time-boxed (it compiles for minutes at worst)
if ((!smoke)); then
  f=${frames_list[0]}
  run "torch-vanilla-$f-compile" 100 150 theirs "$f" vanilla --compile
  run "torch-reversible-$f-compile" 100 150 theirs "$f" reversible --compile
fi

"$py" "$here/cuda_bench_table.py" "$jsonl" "$smoke" "${frames_list[@]}" | tee "$out/cuda_bench.md"
echo "run_cuda: $(($(date +%s) - t_start)) s"
