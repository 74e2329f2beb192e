"""PyTorch references for nn/: conv3d, conv1d, pooling, interpolation (forward and backward),
AdamW + schedule + clipping + EMA. The dense ops and attention are in fixtures_nn_dense.py, which
shares `rand` and `case` from here.

Each case draws its inputs from its own seed, computes in float64 (so the reference is sharper
than the float32 code under test; interpolation excepted, whose float32 index rounding is the
behaviour to match) and stores float32: inputs, output `y`, upstream gradient `dy`
and the gradients `d<input>` of sum(dy * y). Shapes and seeds are in each file's metadata."""
import math

import torch
import torch.nn.functional as F

from fixture_io import save

D = torch.float64


def rand(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=D) * (hi - lo) + lo)


def case(name, seed, fn, inputs, grads=(), **meta):
    """inputs: {name: tensor}; grads: names of inputs that get a gradient. fn(**inputs) returns
    the output tensor y (or a dict of outputs, the first being y)."""
    for k in grads:
        inputs[k] = inputs[k].clone().requires_grad_(True)
    out = fn(**inputs)
    extra = {}
    if isinstance(out, dict):
        extra = {k: v for k, v in out.items() if k != "y"}
        out = out["y"]
    dy = rand(*out.shape)
    out.backward(dy)
    tensors = {k: v.detach() for k, v in inputs.items()}
    tensors["y"] = out.detach()
    tensors["dy"] = dy
    for k in grads:
        tensors["d" + k] = inputs[k].grad
    tensors.update({k: v.detach() for k, v in extra.items()})
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    save(name, tensors, seed=seed, shapes=shapes, **meta)


def conv():
    torch.manual_seed(30)
    case("nn_patch_conv3d", 30, lambda x, w, b: F.conv3d(x, w, b, stride=(2, 4, 4)),
         {"x": rand(2, 3, 4, 8, 8), "w": rand(5, 3, 2, 4, 4), "b": rand(5)}, ("x", "w", "b"),
         stride="2,4,4")
    torch.manual_seed(31)
    case("nn_conv3d_k3", 31, lambda x, w, b: F.conv3d(x, w, b, stride=1, padding=1),
         {"x": rand(2, 3, 4, 5, 5), "w": rand(4, 3, 3, 3, 3), "b": rand(4)}, ("x", "w", "b"),
         stride="1,1,1", padding="1,1,1")
    torch.manual_seed(32)
    case("nn_conv3d_s122", 32,
         lambda x, w: F.conv3d(x, w, None, stride=(1, 2, 2), padding=(0, 1, 1)),
         {"x": rand(1, 3, 3, 7, 6), "w": rand(4, 3, 1, 3, 3)}, ("x", "w"),
         stride="1,2,2", padding="0,1,1")

    def c1(stride, pad, groups, with_mask=False):
        def fn(x, w, b, mask=None):
            y = F.conv1d(x, w, b, stride=stride, padding=pad, groups=groups)
            return y * mask[:, None, :] if mask is not None else y
        return fn
    # (seed, name, stride, groups, C_out, mask: (sample, first masked step) of [2, T_out])
    for seed, name, stride, groups, cout, masked in (
            (40, "k3", 1, 1, 6, None), (41, "s2", 2, 1, 6, None), (42, "dw", 1, 4, 4, None),
            (43, "g2", 1, 2, 6, None), (44, "mask", 2, 1, 6, (1, 3)),
            (45, "dw_mask", 1, 4, 4, (0, 6))):
        torch.manual_seed(seed)
        inputs = {"x": rand(2, 4, 9), "w": rand(cout, 4 // groups, 3), "b": rand(cout)}
        if masked:
            mask = torch.ones(2, (9 + 2 - 3) // stride + 1, dtype=D)  # T_out: pad 1, k 3
            mask[masked[0], masked[1]:] = 0
            inputs["mask"] = mask
        case("nn_conv1d_" + name, seed, c1(stride, 1, groups, masked is not None), inputs,
             ("x", "w", "b"), stride=stride, padding=1, groups=groups)
    torch.manual_seed(50)
    xp = torch.randperm(2 * 3 * 9).to(D).reshape(2, 3, 9) / 10 - 2  # distinct: no ties
    case("nn_maxpool1d", 50, lambda x: F.max_pool1d(x, 3, 2, 1), {"x": xp}, ("x",),
         kernel=3, stride=2, padding=1)
    torch.manual_seed(51)
    case("nn_mean_hw", 51, lambda x: x.mean((3, 4)), {"x": rand(2, 3, 4, 3, 5)}, ("x",))
    for seed, name, (b, c), tin, tout in (
            (52, "down", (2, 3), 24, 12), (53, "up", (2, 3), 6, 16), (54, "frac", (2, 3), 10, 7),
            (55, "384_192", (1, 2), 384, 192), (56, "100_192", (1, 2), 100, 192)):
        # In float32, as the model runs it: PyTorch derives the source index from a float
        # scale, which moves the weights by up to ~1e-5 against a float64 run (100 -> 192).
        torch.manual_seed(seed)
        case("nn_interp_" + name, seed,
             lambda x, tout=tout: F.interpolate(x.float(), size=tout, mode="linear",
                                                align_corners=False).double(),
             {"x": rand(b, c, tin)}, ("x",), t_in=tin, t_out=tout, dtype="float32")


def lr_at(step, warmup, total, base, lo):  # the formula of nn/schedule.c
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total or total <= warmup:
        return lo
    f = (step - warmup) / (total - warmup)
    return lo + (base - lo) * 0.5 * (1 + math.cos(math.pi * f))


def optim():
    """10 AdamW steps on 3 parameters in 2 groups (decay 0.05 with lr scale 1; decay 0 with lr
    scale 0.5), gradients given per step, clip_grad_norm_(max 1.5) on steps 2, 5 and 8, lr from
    warm-up (3 steps) + cosine (to step 10), EMA 0.999 after every step."""
    torch.manual_seed(60)
    w1, w2, b = rand(4, 3), rand(5), rand(3)
    params = [p.clone().requires_grad_(True) for p in (w1, w2, b)]
    names = ["w1", "w2", "b"]
    opt = torch.optim.AdamW([{"params": params[:2], "weight_decay": 0.05, "scale": 1.0},
                             {"params": params[2:], "weight_decay": 0.0, "scale": 0.5}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in params]
    tensors = {n + ".init": p.detach().clone() for n, p in zip(names, params)}
    lrs, norms = [], []
    for step in range(10):
        for n, p in zip(names, params):
            p.grad = rand(*p.shape, lo=-2, hi=2)
            tensors[f"{n}.grad{step}"] = p.grad.clone()
        norm = float("nan")
        if step in (2, 5, 8):
            norm = float(torch.nn.utils.clip_grad_norm_(params, 1.5))
        norms.append(norm)
        lr = lr_at(step, 3, 10, 1e-3, 1e-5)
        lrs.append(lr)
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(0.999).add_(p, alpha=0.001)
        if step == 4:
            for n, p in zip(names, params):
                tensors[n + ".step5"] = p.detach().clone()
    for n, p, e in zip(names, params, ema):
        st = opt.state[p]
        tensors[n + ".final"] = p.detach().clone()
        tensors[n + ".ema"] = e
        tensors[n + ".exp_avg"] = st["exp_avg"]
        tensors[n + ".exp_avg_sq"] = st["exp_avg_sq"]
    tensors["lr"] = torch.tensor(lrs, dtype=D)
    tensors["clip_norm"] = torch.tensor(norms, dtype=D)
    save("nn_adamw", tensors, seed=60, shapes={"w1": [4, 3], "w2": [5], "b": [3]},
         groups="decay(wd 0.05, lr x1): w1 w2; no_decay(wd 0, lr x0.5): b",
         betas="0.9,0.999", eps=1e-8, clip="max_norm 1.5 on steps 2,5,8",
         schedule="warmup 3, total 10, base 1e-3, min 1e-5", ema=0.999)


def generate():
    torch.set_default_dtype(torch.float64)
    try:
        conv()
        optim()
    finally:
        torch.set_default_dtype(torch.float32)
