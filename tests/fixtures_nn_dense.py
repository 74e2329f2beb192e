"""PyTorch references for nn/'s dense ops (linear, bmm, LayerNorm last-dim and [B, C, T], GELU,
ReLU, softmax, attention with bias and masks): forward and backward.

Each case draws its inputs from its own seed, computes in float64 (a sharper reference than the
float32 code under test) and stores float32: inputs, outputs, the upstream gradient `dy` and
the gradients `d<input>` of sum(dy * y). Shapes cross the C code's blocking where it has one
(LayerNorm [B, C, T] works in blocks of 64 along T). Generator module name: "nn_dense"."""
import math

import torch
import torch.nn.functional as F

from fixture_io import save
from fixtures_nn import D, rand
from fixtures_nn import case as nn_case


def case(name, seed, fn, inputs, grads=(), **meta):
    """fixtures_nn.case, saved as nn_dense_<name>."""
    nn_case("nn_dense_" + name, seed, fn, inputs, grads, **meta)


def linear():
    torch.manual_seed(101)
    case("linear", 101, lambda x, w, b: F.linear(x, w, b),
         {"x": rand(2, 3, 7), "w": rand(5, 7), "b": rand(5)}, ("x", "w", "b"))
    torch.manual_seed(102)
    case("linear_nobias", 102, lambda x, w: F.linear(x, w),
         {"x": rand(9, 6), "w": rand(4, 6)}, ("x", "w"))
    torch.manual_seed(103)  # one row: the N = 1 edge
    case("linear_row", 103, lambda x, w, b: F.linear(x, w, b),
         {"x": rand(1, 8), "w": rand(3, 8), "b": rand(3)}, ("x", "w", "b"))


def bmm():
    torch.manual_seed(104)
    a, b = rand(3, 4, 5), rand(3, 5, 6)
    case("bmm", 104, lambda a, b: torch.bmm(a, b), {"a": a, "b": b}, ("a", "b"),
         note="at, bt: the transposed operands, for op(a) op(b) in all four forms")
    # the same operands stored transposed, so the C test can call every trans_a/trans_b form
    save("nn_dense_bmm_t", {"at": a.transpose(1, 2).contiguous(),
                            "bt": b.transpose(1, 2).contiguous(), "y": a @ b}, seed=104,
         shapes={"at": [3, 5, 4], "bt": [3, 6, 5]})


def layernorm():
    def ln(eps):
        def fn(x, gamma=None, beta=None):
            y = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=eps)
            mean = x.mean(-1)
            rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False) + eps)
            return {"y": y, "mean": mean.reshape(-1), "rstd": rstd.reshape(-1)}
        return fn
    torch.manual_seed(110)
    case("layernorm", 110, ln(1e-5),
         {"x": rand(2, 5, 12) * 2 + 0.5, "gamma": rand(12), "beta": rand(12)},
         ("x", "gamma", "beta"), eps=1e-5)
    torch.manual_seed(111)  # offset rows: mean 40, sd ~0.3 (float E[x^2]-E[x]^2 would fail)
    case("layernorm_offset", 111, ln(1e-5),
         {"x": rand(4, 16) * 0.5 + 40.0, "gamma": rand(16), "beta": rand(16)},
         ("x", "gamma", "beta"), eps=1e-5)
    torch.manual_seed(112)
    case("layernorm_noaffine", 112, ln(1e-6), {"x": rand(3, 9) * 3}, ("x",), eps=1e-6)

    def ln_ct(x, gamma, beta):  # ActionFormer's channel LayerNorm on [B, C, T]
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + 1e-6) * gamma[None, :, None] + beta[None, :, None]
        return {"y": y, "mean": mu[:, 0], "rstd": 1.0 / torch.sqrt(var[:, 0] + 1e-6)}
    torch.manual_seed(113)  # T = 70 spans two of the C code's 64-column blocks
    case("layernorm_ct", 113, ln_ct,
         {"x": rand(2, 6, 70) * 3 - 0.2, "gamma": rand(6), "beta": rand(6)},
         ("x", "gamma", "beta"), eps=1e-6)


def pointwise():
    torch.manual_seed(120)
    x = rand(4, 25, lo=-6, hi=6)
    x[0, 0] = 0.0
    case("gelu", 120, lambda x: F.gelu(x, approximate="none"), {"x": x}, ("x",))
    torch.manual_seed(121)
    x = rand(4, 11)
    x[x.abs() < 0.05] = 0.25  # away from the kink, where the derivative is a convention
    case("relu", 121, lambda x: F.relu(x), {"x": x}, ("x",))
    torch.manual_seed(122)
    x = rand(3, 4, 9, lo=-4, hi=4)
    x[0, 1, :4] = -math.inf  # masked entries (a row keeps finite ones: torch NaNs a full row)
    x[2, 3, 8] = -math.inf
    x[1, 2] += 60.0  # large logits: max subtraction must hold
    case("softmax", 122, lambda x: torch.softmax(x, -1), {"x": x}, ("x",))


def attention():
    def attn(q, k, v, bias=None, mask=None, scale=None):
        logits = scale * q @ k.transpose(-1, -2)
        if bias is not None:
            logits = logits + bias[None]
        if mask is not None:
            logits = logits + mask[torch.arange(q.shape[0]) % mask.shape[0]][:, None]
        p = torch.softmax(logits, -1)
        return {"y": p @ v, "probs": p}

    def with_scale(scale):
        return lambda **kw: attn(scale=scale, **kw)

    # Swin windows: B = windows x batch (2 window classes x 2 clips), 3 heads, N 12, d 8;
    # shift masks of -100 between regions, relative position bias per head.
    B, H, N, d = 4, 3, 12, 8
    torch.manual_seed(130)
    mask = torch.zeros(2, N, N, dtype=D)
    mask[1, :5, 5:] = -100.0
    mask[1, 5:, :5] = -100.0
    case("attention_swin", 130, with_scale(d ** -0.5),
         {"q": rand(B, H, N, d), "k": rand(B, H, N, d), "v": rand(B, H, N, d),
          "bias": rand(H, N, N) * 2, "mask": mask}, ("q", "k", "v", "bias"),
         scale=d ** -0.5, mask_rule="item b uses mask[b % M]")
    torch.manual_seed(131)  # -inf masks, rows with one finite entry left
    mask = torch.zeros(3, 6, 6, dtype=D)
    mask[0, :, 0] = -math.inf
    mask[2, 2, 1:] = -math.inf
    mask[1, 4, :5] = -math.inf
    case("attention_inf", 131, with_scale(0.5),
         {"q": rand(3, 2, 6, 4), "k": rand(3, 2, 6, 4), "v": rand(3, 2, 6, 4),
          "bias": rand(2, 6, 6), "mask": mask}, ("q", "k", "v", "bias"), scale=0.5)
    torch.manual_seed(132)  # cross attention, Nk != N, no bias or mask
    case("attention_cross", 132, with_scale(0.3),
         {"q": rand(2, 2, 5, 4), "k": rand(2, 2, 9, 4), "v": rand(2, 2, 9, 4)},
         ("q", "k", "v"), scale=0.3)
    torch.manual_seed(133)  # one query token
    case("attention_n1", 133, with_scale(0.7),
         {"q": rand(2, 3, 1, 4), "k": rand(2, 3, 1, 4), "v": rand(2, 3, 1, 4),
          "bias": rand(3, 1, 1)}, ("q", "k", "v", "bias"), scale=0.7)


def generate():
    torch.set_default_dtype(torch.float64)
    try:
        linear()
        bmm()
        layernorm()
        pointwise()
        attention()
    finally:
        torch.set_default_dtype(torch.float32)
