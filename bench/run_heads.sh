#!/usr/bin/env bash
# bench/run_heads.sh BUILD: forward+backward of the ActionFormer head at the THUMOS e2e shape
# (768 -> 512 channels, T 512, 6 levels, global attention, 20 classes, batch 2) in re2tal, then
# the same head in PyTorch CPU (tests/fixtures_heads.py's reference, float32) in the same run.
# Threads: RE2TAL_THREADS (default 2). Batch: BENCH_HEADS_B (default 2).
set -uo pipefail
build="$(cd "${1:-build}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
threads="${RE2TAL_THREADS:-2}"
B="${BENCH_HEADS_B:-2}"
"$build/bench/bench_heads_fwdbwd" "$B" 3 "$threads" || exit 1
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 - "$threads" "$B" "$here/../tests" <<'PY'
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
B = int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
import fixtures_heads as fh
cfg = dict(in_channels=768, channels=512, n_classes=20, arch=(2, 2, 5), n_head=4, mha_win=-1,
           use_abs_pe=False, center_radius=1.5, label_smoothing=0.0,
           regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)])
g = torch.Generator().manual_seed(0)
p = {k: v.detach().float().requires_grad_() for k, v in fh.make_params(cfg, g).items()}
x = torch.randn(B, 768, 512, requires_grad=True)
mask = torch.ones(B, 512)
times, fwd = [], []
for i in range(4):
    t0 = time.perf_counter()
    cls, reg, masks = fh.forward(cfg, p, x, mask)
    t1 = time.perf_counter()
    (sum(c.sum() for c in cls) + sum(r.sum() for r in reg)).backward()
    times.append(time.perf_counter() - t0)
    fwd.append(t1 - t0)
print('{"pytorch_head_fwd_bwd_ms": %.1f, "pytorch_best_ms": %.1f, "pytorch_fwd_best_ms": %.1f, '
      '"B": %d, "threads": %s, "torch": "%s"}'
      % (1000 * sum(times[1:]) / 3, 1000 * min(times[1:]), 1000 * min(fwd[1:]), B, sys.argv[1],
         torch.__version__))
PY
else
  echo "(no /usr/bin/python3 with torch: PyTorch baseline skipped)"
fi
