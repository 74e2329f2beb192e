"""PyTorch references for nn/: every op's forward and backward, AdamW + schedule + clipping + EMA.

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


def dense():
    torch.manual_seed(1)
    case("nn_linear", 1, lambda x, w, b: F.linear(x, w, b),
         {"x": rand(2, 3, 5), "w": rand(4, 5), "b": rand(4)}, ("x", "w", "b"))
    torch.manual_seed(2)
    case("nn_linear_nobias", 2, lambda x, w: F.linear(x, w),
         {"x": rand(6, 5), "w": rand(3, 5)}, ("x", "w"))
    torch.manual_seed(3)
    a, b = rand(3, 4, 5), rand(3, 5, 6)
    case("nn_bmm", 3, lambda a, b: torch.bmm(a, b), {"a": a, "b": b}, ("a", "b"))
    torch.manual_seed(4)

    def ln(x, gamma, beta):
        y = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=1e-5)
        mean = x.mean(-1)
        rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False) + 1e-5)
        return {"y": y, "mean": mean.reshape(-1), "rstd": rstd.reshape(-1)}
    case("nn_layernorm", 4, ln,
         {"x": rand(2, 3, 8) * 2 + 0.5, "gamma": rand(8), "beta": rand(8)},
         ("x", "gamma", "beta"), eps=1e-5)
    torch.manual_seed(5)

    def ln_ct(x, gamma, beta):  # ActionFormer's channel LayerNorm on [B, C, T]
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + 1e-6) * gamma[None, :, None] + beta[None, :, None]
        return {"y": y, "mean": mu[:, 0], "rstd": 1.0 / torch.sqrt(var[:, 0] + 1e-6)}
    case("nn_layernorm_ct", 5, ln_ct,
         {"x": rand(2, 6, 5) * 3 - 0.2, "gamma": rand(6), "beta": rand(6)},
         ("x", "gamma", "beta"), eps=1e-6)
    torch.manual_seed(6)
    case("nn_gelu", 6, lambda x: F.gelu(x), {"x": rand(3, 7, lo=-4, hi=4)}, ("x",))
    torch.manual_seed(7)
    x = rand(3, 7)
    x[x.abs() < 0.05] = 0.3  # keep away from the kink
    case("nn_relu", 7, lambda x: F.relu(x), {"x": x}, ("x",))
    torch.manual_seed(8)
    case("nn_softmax", 8, lambda x: torch.softmax(x, -1), {"x": rand(3, 5, 7, lo=-3, hi=3)},
         ("x",))


def attention():
    def attn(q, k, v, bias=None, mask=None):
        scale = q.shape[-1] ** -0.5
        logits = scale * q @ k.transpose(-1, -2)
        if bias is not None:
            logits = logits + bias[None]
        if mask is not None:
            M = mask.shape[0]
            B = q.shape[0]
            logits = logits + mask[torch.arange(B) % M][:, None]
        p = torch.softmax(logits, -1)
        return {"y": p @ v, "probs": p}

    B, H, N, d = 4, 2, 6, 4
    torch.manual_seed(20)
    mask = torch.zeros(2, N, N, dtype=D)
    mask[1, :3, 3:] = -100.0
    mask[1, 3:, :3] = -100.0
    case("nn_attention", 20, attn,
         {"q": rand(B, H, N, d), "k": rand(B, H, N, d), "v": rand(B, H, N, d),
          "bias": rand(H, N, N), "mask": mask}, ("q", "k", "v", "bias"),
         scale=d ** -0.5, mask_rule="item b uses mask[b % M]")
    torch.manual_seed(21)
    mask = torch.zeros(3, N, N, dtype=D)
    mask[0, :, 0] = -math.inf
    mask[2, 2, 1:] = -math.inf  # one finite entry left in the row
    case("nn_attention_inf", 21, attn,
         {"q": rand(3, 1, N, d), "k": rand(3, 1, N, d), "v": rand(3, 1, N, d), "mask": mask},
         ("q", "k", "v"), scale=d ** -0.5)
    torch.manual_seed(22)
    case("nn_attention_cross", 22, attn,  # Nk != N, no bias or mask
         {"q": rand(2, 3, 5, 4), "k": rand(2, 3, 7, 4), "v": rand(2, 3, 7, 4)},
         ("q", "k", "v"), scale=0.5)


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
    x = lambda: rand(2, 4, 9)
    torch.manual_seed(40)
    case("nn_conv1d_k3", 40, c1(1, 1, 1), {"x": x(), "w": rand(6, 4, 3), "b": rand(6)},
         ("x", "w", "b"), stride=1, padding=1, groups=1)
    torch.manual_seed(41)
    case("nn_conv1d_s2", 41, c1(2, 1, 1), {"x": x(), "w": rand(6, 4, 3), "b": rand(6)},
         ("x", "w", "b"), stride=2, padding=1, groups=1)
    torch.manual_seed(42)
    case("nn_conv1d_dw", 42, c1(1, 1, 4), {"x": x(), "w": rand(4, 1, 3), "b": rand(4)},
         ("x", "w", "b"), stride=1, padding=1, groups=4)
    torch.manual_seed(43)
    case("nn_conv1d_g2", 43, c1(1, 1, 2), {"x": x(), "w": rand(6, 2, 3), "b": rand(6)},
         ("x", "w", "b"), stride=1, padding=1, groups=2)
    torch.manual_seed(44)
    mask = torch.ones(2, 5, dtype=D)
    mask[1, 3:] = 0
    case("nn_conv1d_mask", 44, c1(2, 1, 1, True),
         {"x": x(), "w": rand(6, 4, 3), "b": rand(6), "mask": mask}, ("x", "w", "b"),
         stride=2, padding=1, groups=1)
    torch.manual_seed(45)
    mask = torch.ones(2, 9, dtype=D)
    mask[0, 6:] = 0
    case("nn_conv1d_dw_mask", 45, c1(1, 1, 4, True),
         {"x": x(), "w": rand(4, 1, 3), "b": rand(4), "mask": mask}, ("x", "w", "b"),
         stride=1, padding=1, groups=4)
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
        dense()
        attention()
        conv()
        optim()
    finally:
        torch.set_default_dtype(torch.float32)
