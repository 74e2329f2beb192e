"""PyTorch CPU peer for bench/run_heads.sh: one training step of the ActionFormer head at the
THUMOS e2e shape (768 -> 512 channels, T 512, arch (2, 2, 5): 6 levels, 4 heads, global
attention, 20 classes, drop-path 0.1) built by the `actionformer` package from PyPI
(LocPointTransformer with its default config), batch B: forward, label assignment, focal + DIoU
losses, backward including d(features) (the features come from the backbone in end-to-end
training, as in bench_heads_fwdbwd). Prints one JSON line (wall and process CPU time).
usage: actionformer_torch.py THREADS B STEPS [--compile]"""
import argparse
import json
import time

import torch


def build(batch):
    import actionformer
    from actionformer.core.config import DEFAULTS
    from actionformer.modeling import make_meta_arch

    m = dict(DEFAULTS["model"])
    m.update(input_dim=768, max_seq_len=512, num_classes=20, n_mha_win_size=-1)
    model = make_meta_arch("LocPointTransformer", **m, train_cfg=dict(DEFAULTS["train_cfg"]),
                           test_cfg=dict(DEFAULTS["test_cfg"]))
    model.train()
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(batch, 768, 512, generator=g, requires_grad=True)
    masks = torch.ones(batch, 1, 512, dtype=torch.bool)
    # the same two ground-truth actions per clip as bench_heads_fwdbwd (feature units)
    videos = [{"feats": feats[b], "segments": torch.tensor([[10.0, 40.0], [100.0, 300.0]]),
               "labels": torch.tensor([3, 7])} for b in range(batch)]
    # batching as the package does, but keeping the features' gradient (its preprocessing runs
    # under no_grad: it trains on fixed pre-extracted features)
    model.preprocessing = lambda video_list, padding_val=0.0: (feats, masks)
    return model, videos, feats, actionformer.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("threads", type=int)
    ap.add_argument("batch", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, videos, feats, version = build(a.batch)
    net = torch.compile(model) if a.compile else model
    walls, cpus, first = [], [], 0.0
    for s in range(a.steps + 1):  # step 0 warms up (and compiles)
        model.zero_grad(set_to_none=True)
        feats.grad = None
        c0, t0 = time.process_time(), time.perf_counter()
        net(videos)["final_loss"].backward()
        t, c = time.perf_counter() - t0, time.process_time() - c0
        if s == 0:
            first = t
            continue
        walls.append(t)
        cpus.append(c)
    print(json.dumps({
        "peer": "actionformer" + ("-compile" if a.compile else "-eager"),
        "best_ms": round(1000 * min(walls), 1), "mean_ms": round(1000 * sum(walls) / len(walls), 1),
        "best_cpu_ms": round(1000 * min(cpus), 1), "first_step_s": round(first, 1),
        "B": a.batch, "threads": a.threads,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "actionformer": version, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
