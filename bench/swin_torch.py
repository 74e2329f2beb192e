"""PyTorch CPU peer for bench/run_backbone.sh: one training step (forward + backward of the sum)
of a Video Swin-T stage-1 block on 1x8x56x56x96 tokens (16 frames at 224), or of the whole
Swin-T on a 1x3x16x224x224 clip (the float32 reference of tests/fixtures_backbone.py), eager or
through torch.compile. Prints one JSON line: best and mean step (wall and process CPU time),
compile time, the settings and versions.
usage: swin_torch.py {block|swin_t} THREADS STEPS [--compile MODE] [--no-mkldnn] [--label L]"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

C, HEADS, WIN = 96, 3, (8, 7, 7)  # 392 tokens a window, head dim 32


class Block(nn.Module):
    """The first Swin-T stage-1 block (unshifted windows, as `re2tal bench backbone --blocks 1`
    runs it) as Video-Swin-Transformer writes it: window attention with the relative position
    bias, then the MLP; nn.Linear / nn.LayerNorm / F.gelu, batched matmuls."""

    def __init__(s):
        super().__init__()
        s.norm1, s.norm2 = nn.LayerNorm(C), nn.LayerNorm(C)
        s.qkv, s.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        s.fc1, s.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        s.table = nn.Parameter(torch.zeros(15 * 13 * 13, HEADS).normal_(0, 0.02))
        c = torch.stack(torch.meshgrid(*[torch.arange(w) for w in WIN], indexing="ij")).flatten(1)
        r = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0)
        s.register_buffer("idx", (r[..., 0] + 7) * 169 + (r[..., 1] + 6) * 13 + r[..., 2] + 6)

    def attn(s, x):
        B, D, H, W, _ = x.shape
        u = s.norm1(x).view(B, D // 8, 8, H // 7, 7, W // 7, 7, C).permute(0, 1, 3, 5, 2, 4, 6, 7)
        u = u.reshape(-1, 392, C)
        q, k, v = s.qkv(u).reshape(-1, 392, 3, HEADS, 32).permute(2, 0, 3, 1, 4)
        a = (q * 32 ** -0.5) @ k.transpose(-2, -1)
        a = a + s.table[s.idx.reshape(-1)].reshape(392, 392, HEADS).permute(2, 0, 1)
        o = (a.softmax(-1) @ v).transpose(1, 2).reshape(-1, 392, C)
        o = s.proj(o).view(B, D // 8, H // 7, W // 7, 8, 7, 7, C).permute(0, 1, 4, 2, 5, 3, 6, 7)
        return o.reshape(B, D, H, W, C)

    def forward(s, x):
        x = x + s.attn(x)
        return x + s.fc2(F.gelu(s.fc1(s.norm2(x))))


def make_step(what, compile_mode):
    if what == "block":
        model = Block()
        x = torch.randn(1, 8, 56, 56, C, requires_grad=True)
        fn = model
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
        from fixtures_backbone import Swin  # the reference the tests check against

        m = Swin(embed=96, depths=[2, 2, 6, 2], heads=[3, 6, 12, 24], window=[8, 7, 7],
                 patch=[2, 4, 4])
        m.p = {k: (0.02 * torch.randn(v.shape)).requires_grad_() for k, v in m.p.items()}
        x = torch.randn(1, 3, 16, 224, 224)

        def fn(v):
            return m.forward(v, rewired=False)
    if compile_mode != "none":
        fn = torch.compile(fn, mode=None if compile_mode == "default" else compile_mode)

    def step():
        fn(x).sum().backward()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["block", "swin_t"])
    ap.add_argument("threads", type=int)
    ap.add_argument("steps", type=int)
    ap.add_argument("--compile", default="none",
                    choices=["none", "default", "max-autotune-no-cudagraphs"])
    ap.add_argument("--no-mkldnn", action="store_true")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    step = make_step(a.what, a.compile)
    t0 = time.perf_counter()
    step()  # warm-up; with torch.compile this compiles forward and backward
    compile_s = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(a.steps):
        c0, t0 = time.process_time(), time.perf_counter()
        step()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(json.dumps({
        "peer": "pytorch" + ("-compile" if a.compile != "none" else "-eager"),
        "what": a.what, "best_ms": round(1000 * min(walls), 1),
        "mean_ms": round(1000 * sum(walls) / len(walls), 1),
        "best_cpu_ms": round(1000 * min(cpus), 1), "first_step_s": round(compile_s, 1),
        "threads": a.threads, "compile": a.compile, "mkldnn": not a.no_mkldnn,
        "settings": a.label, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
