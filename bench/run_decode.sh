#!/usr/bin/env bash
# bench/run_decode.sh BUILD_DIR: frames/s of re2tal's reader (decode + resize to short side 224 +
# normalise to float CHW, the training path) and the latency of random 16-frame clips, against
# torchcodec's CPU decoder, decord and PyAV (bench/decode_peers.py, build/venv from
# scripts/install-deps.sh --dev) on the same files, in BENCH_ROUNDS (2) alternating rounds, at 1
# and 2 threads, on a 720p H.264 60 s file and a 320x240 one; the ffmpeg CLI (scale + rgb24)
# once for scale; then 1,000 open/read/close cycles under valgrind (RUN_VALGRIND=0 skips that;
# it takes minutes). BENCH_DECODE_VIDEOS="h264_320x240_60s.mp4" limits the files.
set -euo pipefail
build="$(cd "$1" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/peers.sh"
re2tal="${RE2TAL:-$build/app/re2tal}"
videos="$build/bench_videos"
mkdir -p "$videos"

make_video() { # name size: 60 s of testsrc2 at 30 fps, H.264 (x264 medium: B-frames, GOP 250)
  [[ -s "$videos/$1" ]] || ffmpeg -v error -y -f lavfi -i "testsrc2=s=$2:r=30:d=60" \
    -c:v libx264 -preset medium -pix_fmt yuv420p "$videos/$1"
}
make_video h264_720p_60s.mp4 1280x720
make_video h264_320x240_60s.mp4 320x240

now() { date +%s.%N; }
py="$(peer_python "$build")"
peers=()
for p in torchcodec decord av; do
  v="$([[ -n "$py" ]] && peer_version "$py" $p)"
  if [[ -n "$v" ]]; then peers+=("${p/av/pyav}|$v"); else echo "($p not importable: skipped)"; fi
done
rounds="${BENCH_ROUNDS:-2}"

# Training path (frames/s, wall and CPU time) and random 16-frame clips (median ms, wall and
# CPU), re2tal and each peer in alternating rounds; ratio = re2tal's speed / the peer's, per
# round, then the median of the rounds. The ffmpeg CLI (scale + rgb24, no float) once, for scale.
echo "| video | threads | load | re2tal fps (CPU fps) | peer | peer fps (CPU fps) |" \
     "re2tal / peer fps, wall (CPU) | clip ms re2tal / peer (CPU) |" \
     "peer clip / re2tal clip, wall (CPU) |"
echo "|---|---|---|---|---|---|---|---|---|"
summary=()
for v in ${BENCH_DECODE_VIDEOS:-h264_720p_60s.mp4 h264_320x240_60s.mp4}; do
  for t in 1 2; do
    declare -A fr=() cr=() fcr=() ccr=() line=()
    for round in $(seq "$rounds"); do
      json="$("$re2tal" bench decode "$videos/$v" --size 224 --threads "$t" --repeat 2 | head -1)"
      o_fps="$(json_num fps <<< "$json")" o_cfps="$(json_num fps_cpu <<< "$json")"
      o_clip="$(json_num clip_ms <<< "$json")" o_cclip="$(json_num clip_cpu_ms <<< "$json")"
      for entry in "${peers[@]}"; do
        p="${entry%%|*}"
        pj="$("$py" "$here/decode_peers.py" "$p" "$videos/$v" "$t" --repeat 2 2>/dev/null)" || {
          echo "| $v | $t | | | $p failed | | | | |"; continue; }
        p_fps="$(json_num fps <<< "$pj")" p_cfps="$(json_num fps_cpu <<< "$pj")"
        p_clip="$(json_num clip_ms <<< "$pj")" p_cclip="$(json_num clip_cpu_ms <<< "$pj")"
        fr[$p]+=" $(ratio "$o_fps" "$p_fps")" cr[$p]+=" $(ratio "$p_clip" "$o_clip")"
        fcr[$p]+=" $(ratio "$o_cfps" "$p_cfps")" ccr[$p]+=" $(ratio "$p_cclip" "$o_cclip")"
        echo "| $v | $t | $(load_average) | $o_fps ($o_cfps) | $p ${entry#*|} |" \
             "$p_fps ($p_cfps) | $(ratio "$o_fps" "$p_fps") ($(ratio "$o_cfps" "$p_cfps")) |" \
             "$o_clip / $p_clip ($o_cclip / $p_cclip) |" \
             "$(ratio "$p_clip" "$o_clip") ($(ratio "$p_cclip" "$o_cclip")) |"
      done
    done
    for entry in "${peers[@]}"; do
      p="${entry%%|*}"
      [[ -n "${fr[$p]:-}" ]] || continue
      summary+=("$v, $t thread(s), vs $p ${entry#*|}: training path $(median ${fr[$p]})x wall,\
 $(median ${fcr[$p]})x CPU; random clip $(median ${cr[$p]})x wall, $(median ${ccr[$p]})x CPU\
 (medians; > 1: re2tal faster)")
    done
    unset fr cr fcr ccr line
  done
done
for v in ${BENCH_DECODE_VIDEOS:-h264_720p_60s.mp4 h264_320x240_60s.mp4}; do
  t0="$(now)"
  ffmpeg -v error -threads 2 -i "$videos/$v" -vf scale=-2:224 -f rawvideo -pix_fmt rgb24 \
    -y /dev/null
  fps="$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", 1800 / (b - a) }')"
  echo "ffmpeg CLI, $v, 2 threads, scale=-2:224 + rgb24 (no float): $fps frames/s"
done
printf '%s\n' "${summary[@]}"

if [[ "${RUN_VALGRIND:-1}" != 0 ]] && command -v valgrind >/dev/null; then
  small="$videos/cycle_64x48.mp4"
  [[ -s "$small" ]] || ffmpeg -v error -y -f lavfi -i testsrc2=s=64x48:r=25:d=1 -c:v libx264 \
    -pix_fmt yuv420p "$small"
  echo "valgrind: 1000 open / read 40 frames / close cycles"
  valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
    "$build/bench/bench_decode_cycles" "$small" 1000 1 2>&1 |
    grep -E "cycle|definitely|indirectly|possibly|ERROR SUMMARY"
fi
