"""Fixtures for nn/params.c, adamw.c, schedule.c, ema.c: 10 training steps in PyTorch.

torch.optim.AdamW with two groups (decay / no decay, the second with lr scale 0.5), a frozen
parameter, torch.nn.utils.clip_grad_norm_ (max norm 1, active on some steps), the warm-up +
cosine schedule of nn/schedule.c and an EMA of all values.
Hyper-parameters are float32-exact so that C (which holds them as float) and PyTorch (double)
start from the same numbers. Files: nn_cases_optim, nn_cases_half."""
import math

import numpy as np
import torch

from fixture_io import save

SEED = 20261127
STEPS, WARMUP, TOTAL = 10, 3, 9
BASE_LR, MIN_LR, MAX_NORM, EMA_DECAY = 0.01, 1e-4, 1.0, 0.9
BETA1, BETA2, EPS, WD = 0.9, 0.999, 1e-8, 0.05
GRAD_SCALE = [0.1, 2.0, 0.05, 3.0, 0.2, 0.1, 1.5, 0.02, 5.0, 0.1]  # clipping on some steps


def f32(v):
    return float(np.float32(v))


def schedule(step):
    """lr at 0-based step, the formula documented in nn/schedule.c."""
    if step < WARMUP:
        return BASE_LR * (step + 1) / WARMUP
    if step >= TOTAL:
        return MIN_LR
    f = (step - WARMUP) / (TOTAL - WARMUP)
    return MIN_LR + 0.5 * (BASE_LR - MIN_LR) * (1 + math.cos(math.pi * f))


def generate():
    optim_fixtures()
    half_fixtures()


def optim_fixtures():
    g = torch.Generator().manual_seed(SEED)
    # name: shape, group (0 decay, 1 no decay), trainable
    spec = {"proj.weight": ((4, 5), 0, True), "proj.bias": ((4,), 1, True),
            "head.weight": ((3, 4), 0, True), "norm.weight": ((6,), 1, True),
            "frozen.weight": ((2, 3), 0, False)}
    params = {n: torch.randn(s, generator=g) for n, (s, _, _) in spec.items()}
    out = {f"init.{n}": p.clone() for n, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)
    trainable = [n for n, (_, _, t) in spec.items() if t]
    groups = [{"params": [params[n] for n in trainable if spec[n][1] == 0],
               "weight_decay": f32(WD), "scale": 1.0},
              {"params": [params[n] for n in trainable if spec[n][1] == 1],
               "weight_decay": 0.0, "scale": 0.5}]
    opt = torch.optim.AdamW(groups, lr=f32(BASE_LR), betas=(f32(BETA1), f32(BETA2)),
                            eps=f32(EPS))
    ema = {n: p.detach().clone() for n, p in params.items()}
    decay = f32(EMA_DECAY)
    lrs, norms = [], []
    for step in range(STEPS):
        for n in trainable:
            gr = torch.randn(spec[n][0], generator=g) * GRAD_SCALE[step]
            out[f"grad{step}.{n}"] = gr
            params[n].grad = gr.clone()
        norm = torch.nn.utils.clip_grad_norm_([params[n] for n in trainable], MAX_NORM)
        norms.append(float(norm))
        lr = f32(schedule(step))
        lrs.append(schedule(step))
        for group in opt.param_groups:
            group["lr"] = f32(np.float32(lr) * np.float32(group["scale"]))
        opt.step()
        with torch.no_grad():
            for n, p in params.items():
                ema[n].mul_(decay).add_(p, alpha=1 - decay)
        for n, p in params.items():
            out[f"value{step}.{n}"] = p.detach().clone()
            out[f"ema{step}.{n}"] = ema[n].clone()
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    out["norm"] = torch.tensor(norms, dtype=torch.float64)
    save("nn_cases_optim", out, seed=SEED, steps=STEPS, warmup=WARMUP, total=TOTAL,
         base_lr=BASE_LR, min_lr=MIN_LR, max_norm=MAX_NORM, ema_decay=EMA_DECAY,
         betas=(BETA1, BETA2), eps=EPS, weight_decay=WD, group1="no decay, lr scale 0.5", grad_scale=GRAD_SCALE,
         note="grads are set before clipping; values/ema after each step")


def half_fixtures():
    """float32 -> float16 / bfloat16 as torch rounds (nearest even), over magnitudes from below
    the f16 subnormals to past its overflow, with ties and edges added by hand. File:
    nn_cases_half."""
    g = torch.Generator().manual_seed(SEED + 1)
    mag = torch.pow(10.0, torch.rand(3000, generator=g, dtype=torch.float64) * 14 - 9)
    sign = torch.where(torch.rand(3000, generator=g) < 0.5, -1.0, 1.0).double()
    x = (mag * sign).float()
    edges = [0.0, -0.0, 65504.0, 65519.0, 65520.0, 1e9, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
             2.0 ** -14, 2.0 ** -14 - 2.0 ** -25, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
             1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 3.0e38, -3.4e38, 1e-40, 1.0000001]
    x = torch.cat([x, torch.tensor(edges, dtype=torch.float32)])
    save("nn_cases_half", {"x": x, "f16": x.half().float(), "bf16": x.bfloat16().float()},
         seed=SEED + 1, n=len(x), note="f16/bf16 hold the rounded values widened back to f32")
