#!/usr/bin/env bash
# bench/run_decode.sh BUILD_DIR: frames/s of re2tal's reader (decode + resize to short side 224 +
# normalise to float, the training path) against the ffmpeg CLI (decode + scale + rgb24) and PyAV
# (Debian's python3-av: rgb24, and normalised float CHW) on the same files in the same run, at 1
# and 2 threads, on a 720p H.264 60 s file and a 320x240 one; then random 16-frame clip latency,
# and 1,000 open/read/close cycles under valgrind (RUN_VALGRIND=0 skips that; it takes minutes).
set -euo pipefail
build="$(cd "$1" && pwd)"
re2tal="${RE2TAL:-$build/app/re2tal}"
videos="$build/bench_videos"
mkdir -p "$videos"
py=/usr/bin/python3

make_video() { # name size: 60 s of testsrc2 at 30 fps, H.264 (x264 medium: B-frames, GOP 250)
  [[ -s "$videos/$1" ]] || ffmpeg -v error -y -f lavfi -i "testsrc2=s=$2:r=30:d=60" \
    -c:v libx264 -preset medium -pix_fmt yuv420p "$videos/$1"
}
make_video h264_720p_60s.mp4 1280x720
make_video h264_320x240_60s.mp4 320x240

now() { date +%s.%N; }

pyav_script='
import sys, time, av, numpy as np
path, threads, size, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = av.open(path); s = c.streams.video[0]
s.thread_type = "AUTO"; s.thread_count = threads
w, h = s.codec_context.width, s.codec_context.height
ow, oh = (round(w * size / h), size) if h <= w else (size, round(h * size / w))
mean = np.array([123.675, 116.28, 103.53], np.float32).reshape(3, 1, 1)
inv = (1 / np.array([58.395, 57.12, 57.375], np.float32)).reshape(3, 1, 1)
n = 0; t0 = time.perf_counter()
for f in c.decode(s):
    x = f.to_ndarray(width=ow, height=oh, format="rgb24")
    if mode == "float":
        y = (x.transpose(2, 0, 1).astype(np.float32) - mean) * inv
    n += 1
dt = time.perf_counter() - t0
print(f"{n / dt:.1f}")
'

echo "| video | threads | re2tal decode only | re2tal decode+resize+normalise (float) | ffmpeg CLI scale+rgb24 | PyAV rgb24 | PyAV float CHW | re2tal float / PyAV float | re2tal float / decode only (CPU time) | clip ms (ideal from keyframe ms) | clip / ideal |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for v in h264_720p_60s.mp4 h264_320x240_60s.mp4; do
  for t in 1 2; do
    json="$("$re2tal" bench decode "$videos/$v" --size 224 --threads "$t" --repeat 3 | head -1)"
    field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/" <<<"$json"; }
    frames="$(field frames)"
    t0="$(now)"
    ffmpeg -v error -threads "$t" -i "$videos/$v" -vf scale=-2:224 -f rawvideo -pix_fmt rgb24 \
      -y /dev/null
    ff="$(awk -v n="$frames" -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", n / (b - a) }')"
    pa_u8="n/a"; pa_f="n/a"
    if $py -c 'import av' 2>/dev/null; then
      pa_u8="$($py -c "$pyav_script" "$videos/$v" "$t" 224 rgb)"
      pa_f="$($py -c "$pyav_script" "$videos/$v" "$t" 224 float)"
    fi
    fps="$(sed -E 's/.*"fps": ([0-9.]+).*/\1/' <<<"$json")"
    ratio="$(awk -v a="$fps" -v b="$pa_f" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }')"
    echo "| $v | $t | $(field decode_fps) | $fps | $ff | $pa_u8 | $pa_f | $ratio | $(field fps_vs_decode) ($(field fps_vs_decode_cpu)) | $(field clip_ms) ($(field clip_keyframe_ideal_ms)) | $(field clip_vs_keyframe_ideal) |"
  done
done

if [[ "${RUN_VALGRIND:-1}" != 0 ]] && command -v valgrind >/dev/null; then
  small="$videos/cycle_64x48.mp4"
  [[ -s "$small" ]] || ffmpeg -v error -y -f lavfi -i testsrc2=s=64x48:r=25:d=1 -c:v libx264 \
    -pix_fmt yuv420p "$small"
  echo "valgrind: 1000 open / read 40 frames / close cycles"
  valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9 \
    "$build/bench/bench_decode_cycles" "$small" 1000 1 2>&1 |
    grep -E "cycle|definitely|indirectly|possibly|ERROR SUMMARY"
fi
