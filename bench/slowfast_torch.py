"""PyTorch CPU baseline for bench/run_slowfast.sh: one SlowFast training step (forward +
backward of sum(features * w)) with the reference model of tests/fixtures_backbone.py in float32
(mmaction2's network: frozen BN, gradients for the conv weights only, as re2tal's vanilla mode).
usage: slowfast_torch.py THREADS FRAMES SIZE STEPS [depth 50|101]"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import fixtures_backbone as ref  # noqa: E402


def main(threads, frames, size, steps, depth=101):
    torch.set_num_threads(threads)
    depths = [3, 4, 23 if depth == 101 else 6, 3]
    m = ref.SlowFast(embed=64, depths=depths, tau=4, alpha=4, beta_inv=8, fusion_kernel=7)
    with torch.no_grad():  # float32 leaves, as a trained model would hold them
        m.p = {k: v.detach().float().requires_grad_(k.endswith("conv.weight"))
               for k, v in m.p.items()}
        m.slow.bind(m.p)
        m.fast.bind(m.p)
    g = torch.Generator().manual_seed(1)
    video = torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1
    best, best_cpu, times = float("inf"), float("inf"), []
    for s in range(steps + 1):  # step 0 warms up
        for t in m.p.values():
            t.grad = None
        c0, t0 = time.process_time(), time.perf_counter()
        f = m.forward(video, False)
        f.mean().backward()
        t1, c1 = time.perf_counter(), time.process_time()
        if s:
            times.append(t1 - t0)
            best, best_cpu = min(best, t1 - t0), min(best_cpu, c1 - c0)
    print(json.dumps({"pytorch_step_ms": round(1000 * sum(times) / len(times), 1),
                      "pytorch_best_ms": round(1000 * best, 1),
                      "pytorch_best_cpu_ms": round(1000 * best_cpu, 1), "threads": threads,
                      "frames": frames, "size": size, "torch": torch.__version__}))


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
