#!/bin/sh
# bench/run_eval.sh BUILD_DIR: `re2tal eval` against the Python port of the official
# ANETdetection (bench/eval_official.py: pandas + numpy, same data flow as the original) on
# generated prediction files (nothing downloaded), in the same run; prints the speed ratio.
# re2tal times include everything `re2tal eval` prints by default (mAP, GT-length buckets,
# false positives by cause, proposal AR@AN); the 1M line also gives mAP alone.
#   THUMOS-sized: THUMOS-14 test GT, 212 videos x 200 = 42,400 detections
#   ANet-sized:   ANet-1.3 val GT, 4,926 videos x 100 = 492,600 detections (the Python
#                 baseline runs on the first 500 videos = 50,000 detections and is scaled by
#                 the detection count: its cost is linear in detections; said in the output)
#   1M:           ANet-1.3 val GT, 4,926 x 203 = 999,978 detections (re2tal only, 1 and 2 threads)
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/app/re2tal
# The real GT files, unpacked from tests/data/annotations.tar.xz at configure.
DATA=$BUILD/tests/data
PY=/usr/bin/python3
TMP=${TMPDIR:-/tmp}/re2tal_bench_eval
mkdir -p "$TMP"
[ -x "$BIN" ] || { echo "run_eval: $BIN not built" >&2; exit 1; }
[ -f "$DATA/anet13_val_gt.json" ] || { echo "run_eval: $DATA missing (configure the build)" >&2; exit 1; }

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

gen() { [ -f "$TMP/$4" ] || $PY "$ROOT/bench/gen_eval_preds.py" "$1" "$2" "$3" "$TMP/$4" ${5:-} >/dev/null; }
gen "$DATA/thumos14_test_gt.json" test 200 th_40k.json
gen "$DATA/anet13_val_gt.json" validation 100 anet_500k.json
gen "$DATA/anet13_val_gt.json" validation 100 anet_50k.json "--videos 500"
gen "$DATA/anet13_val_gt.json" validation 203 anet_1m.json

best_of() { # N command...: best wall time of N runs
    n=$1; shift; best=
    for i in $(seq "$n"); do
        t0=$(now); "$@" >/dev/null; t1=$(now)
        t=$(secs "$t0" "$t1")
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    echo "$best"
}

have_py=0
$PY -c "import numpy, pandas" 2>/dev/null && have_py=1
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

c=$(best_of 3 "$BIN" --threads 2 eval --gt "$DATA/thumos14_test_gt.json" --pred "$TMP/th_40k.json")
printf 'THUMOS-sized (42,400 dets): re2tal eval %.3f s' "$c"
if [ $have_py = 1 ]; then
    t0=$(now); $PY "$ROOT/bench/eval_official.py" "$DATA/thumos14_test_gt.json" "$TMP/th_40k.json" >/dev/null; t1=$(now)
    p=$(secs "$t0" "$t1")
    printf ', official port %.1f s, ratio %.0fx\n' "$p" "$(echo "$p / $c" | bc -l)"
else
    printf ' (python3-numpy/pandas missing: no baseline)\n'
fi

c=$(best_of 3 "$BIN" --threads 2 eval --gt "$DATA/anet13_val_gt.json" --pred "$TMP/anet_500k.json")
printf 'ANet-sized (492,600 dets): re2tal eval %.3f s' "$c"
if [ $have_py = 1 ]; then
    t0=$(now); $PY "$ROOT/bench/eval_official.py" "$DATA/anet13_val_gt.json" "$TMP/anet_50k.json" >/dev/null; t1=$(now)
    p=$(secs "$t0" "$t1")
    pf=$(echo "$p * 492600 / 50000" | bc -l)
    printf ', official port %.1f s on 50,000 dets -> %.0f s scaled to 492,600, ratio %.0fx\n' "$p" "$pf" "$(echo "$pf / $c" | bc -l)"
else
    printf ' (no baseline)\n'
fi

for th in 1 2; do
    c=$(best_of 3 "$BIN" --threads $th eval --buckets none --no-proposals --gt "$DATA/anet13_val_gt.json" --pred "$TMP/anet_1m.json")
    f=$(best_of 3 "$BIN" --threads $th eval --gt "$DATA/anet13_val_gt.json" --pred "$TMP/anet_1m.json")
    printf '1M detections (999,978), %d thread(s): re2tal eval mAP only %.3f s (goal < 1 s on 2 cores), with the default extras (length buckets, proposals, FP causes) %.3f s\n' "$th" "$c" "$f"
done

# The HTML report of the ANet-sized file (4,926 videos x 100 detections), beside the plain
# evaluation of the same file in the same run: per phase (bench_eval_report: scoring with what
# the page needs, and writing the page), the whole commands, and the page in headless Chromium
# (time from navigation to the page built, as the page itself records it).
"$BUILD/bench/bench_eval_report" "$DATA/anet13_val_gt.json" "$TMP/anet_500k.json" "$TMP/report_500k.html" 1
e=$(best_of 3 "$BIN" --threads 2 eval --gt "$DATA/anet13_val_gt.json" --pred "$TMP/anet_500k.json")
r=$(best_of 3 "$BIN" --threads 2 report --gt "$DATA/anet13_val_gt.json" --pred "$TMP/anet_500k.json" --out "$TMP/report_500k.html")
printf 'ANet-sized (492,600 dets): re2tal report %.3f s, re2tal eval %.3f s (x%.2f); page %s MB\n' \
    "$r" "$e" "$(echo "$r / $e" | bc -l)" "$(( $(stat -c %s "$TMP/report_500k.html") / 1000000 ))"
if command -v chromium > /dev/null; then
    for i in 1 2; do
        chromium --headless --no-sandbox --disable-gpu --user-data-dir="$TMP/chrome" --window-size=1280,1600 \
            --virtual-time-budget=5000 --dump-dom "file://$TMP/report_500k.html" 2> /dev/null |
            grep -o 'data-script-ms="[0-9]*" data-ready-ms="[0-9]*"' | sed 's/^/  Chromium: /'
    done
fi
