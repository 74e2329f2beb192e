#!/usr/bin/env bash
# bench/run_soak.sh BUILD [N] [N_CORRUPT]: one `re2tal infer` process over N short synthetic
# videos (re2tal synth), N_CORRUPT of them broken five ways (truncated, zeroed header, flipped
# bits, empty, not a video), with a tiny model trained for a few steps; RSS sampled every second.
# Goals: flat memory (mean RSS of the last 10 % of samples within 5 % of the first 10 %), every
# good video answered (in results.json), every corrupt one reported on stderr by name (or, for
# flipped bits the decoder could not tell, answered). Prints one line per goal; exit 1 if any
# goal is missed.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
n=${2:-1000}
n_bad=${3:-50}
bin="$build/app/re2tal"
py=/usr/bin/python3
work="$build/soak"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
n_good=$((n - n_bad))

t0=$(date +%s)
# 10-20 s videos of 64 x 64 and 64 frames per clip: about 0.1 s of work per video, so a run
# of 1000 gives RSS samples enough for its first and last 10 % to mean something
"$bin" --threads 2 synth --out data --videos "$n_good" --classes 2 --size 64 --min-len 10 \
  --max-len 20 --min-action 1 --max-action 4 --max-instances 3 --val-fraction 0.1 --quiet
cat > tiny.json <<'EOF'
{"data": {"sampler": "resize", "frames": 64, "resize_len": 16, "short_side": 64, "crop": 64},
 "backbone": {"preset": "swin_small_test", "embed_dim": 32, "depths": [2, 2], "heads": [1, 2],
              "window": [4, 4, 4], "mode": "reversible"},
 "head": {"channels": 32, "n_head": 2, "arch": [2, 1, 2], "init_loss_norm": 4, "max_seg_num": 20},
 "optim": {"epochs": 1, "batch_size": 2, "lr_head": 0.001, "lr_backbone": 0.0005},
 "train": {"seed": 3, "eval_every": 0, "max_steps_per_epoch": 8}}
EOF
"$bin" --threads 2 train tiny.json --set data.annotations=data/annotations.json \
  --set data.videos=data/videos --set train.out_dir=run --quiet
t1=$(date +%s)

# the corrupt videos: copies of good ones, broken in turn five ways
mkdir -p bad
for ((i = 0; i < n_bad; i++)); do
  src=$(printf 'data/videos/synth_%05d.mp4' $((i % n_good)))
  case $((i % 5)) in
    0) out=bad/truncated_$i.mp4; head -c $(($(stat -c %s "$src") / 3)) "$src" > "$out" ;;
    1) out=bad/zeroed_header_$i.mp4; cp "$src" "$out"
       dd if=/dev/zero of="$out" bs=1 count=512 conv=notrunc status=none ;;
    2) out=bad/flipped_$i.mp4
       "$py" - "$src" "$out" "$i" <<'EOF'
import random, sys
data = bytearray(open(sys.argv[1], "rb").read())
rng = random.Random(int(sys.argv[3]))
for _ in range(40):  # bits in the middle half: the index at the end survives
    p = rng.randrange(len(data) // 4, 3 * len(data) // 4)
    data[p] ^= 1 << rng.randrange(8)
open(sys.argv[2], "wb").write(data)
EOF
       ;;
    3) out=bad/empty_$i.mp4; : > "$out" ;;
    4) out=bad/not_a_video_$i.mp4; printf 'this is not a video %d\n' "$i" > "$out" ;;
  esac
done

# good and corrupt videos interleaved, one process, RSS every second
ls data/videos/*.mp4 | awk -v bad="$(ls bad/*.mp4 | tr '\n' ' ')" -v n_good="$n_good" '
  BEGIN { nb = split(bad, b, " "); j = 1 }
  { print; while (j <= nb && NR >= j * n_good / nb) print b[j++] }' > videos.txt
"$bin" --threads 1 infer --model run $(cat videos.txt) --out results.json --quiet \
  > infer.out 2> infer.err &
pid=$!
: > rss.txt
while kill -0 "$pid" 2> /dev/null; do
  # from the exec on: the forked shell before it is not re2tal
  if grep -qa infer "/proc/$pid/cmdline" 2> /dev/null; then
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >> rss.txt 2> /dev/null || true
  fi
  sleep 1
done
set +e
wait "$pid"
rc=$?
set -e
t2=$(date +%s)

"$py" - "$rc" "$n_good" "$n_bad" "$((t1 - t0))" "$((t2 - t1))" <<'EOF'
import json, os, sys
rc, n_good, n_bad, t_prep, t_infer = map(int, sys.argv[1:])
rss = [int(x) / 1024 for x in open("rss.txt").read().split()]
k = max(1, len(rss) // 10)
first, last = sum(rss[:k]) / k, sum(rss[-k:]) / k
flat = abs(last - first) <= 0.05 * first
results = json.load(open("results.json"))["results"] if os.path.exists("results.json") else {}
err = open("infer.err").read()
good = [l.strip() for l in open("videos.txt") if l.startswith("data/")]
bad = [l.strip() for l in open("videos.txt") if l.startswith("bad/")]
stem = lambda p: os.path.splitext(os.path.basename(p))[0]
answered = sum(stem(p) in results for p in good)
kinds = {}
for p in bad:
    kind = stem(p).rsplit("_", 1)[0]
    r = kinds.setdefault(kind, [0, 0, 0])  # reported, answered without a report, lost
    if p in err or stem(p) in err:
        r[0] += 1
    elif stem(p) in results:
        r[1] += 1
    else:
        r[2] += 1
lost = sum(r[2] for r in kinds.values())
print(f"videos: {n_good} good + {n_bad} corrupt; synth + train {t_prep} s, infer {t_infer} s "
      f"({(n_good + n_bad) / max(t_infer, 1):.1f} videos/s), exit status {rc}")
print(f"memory: {len(rss)} samples, first 10% {first:.1f} MiB, last 10% {last:.1f} MiB, "
      f"max {max(rss):.1f} MiB: {'flat' if flat else 'NOT FLAT'} (goal: within 5%)")
print(f"good videos answered: {answered} of {n_good}")
for kind, (rep, ans, gone) in sorted(kinds.items()):
    print(f"corrupt {kind}: {rep} reported, {ans} answered without a report, {gone} lost")
ok = flat and answered == n_good and lost == 0 and rc in (0, 1)
print("soak: " + ("all goals met" if ok else "GOALS MISSED"))
sys.exit(0 if ok else 1)
EOF
