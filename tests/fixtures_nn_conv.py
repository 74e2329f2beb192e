"""Fixtures for nn/conv3d.c, conv1d.c, pool.c, interp.c: forward and backward from PyTorch.

Every case stores its inputs, the output y, a random weighting wy of the output (the loss is
sum(wy * y)) and the gradients of that loss. Files: nn_cases_conv3d, nn_cases_conv1d,
nn_cases_pool, nn_cases_interp."""
import torch
import torch.nn.functional as F

from fixture_io import save

SEED = 20261126


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


def conv3d_fixtures():
    g = torch.Generator().manual_seed(SEED)
    out = {}
    # patch embedding (stride = kernel), Swin's 2x4x4
    x = torch.randn(2, 3, 4, 8, 12, generator=g, requires_grad=True)
    w = torch.randn(5, 3, 2, 4, 4, generator=g, requires_grad=True)
    b = torch.randn(5, generator=g, requires_grad=True)
    y = F.conv3d(x, w, b, stride=(2, 4, 4))
    wy = torch.randn(y.shape, generator=g)
    dx, dw, db = _grads((wy * y).sum(), (x, w, b))
    out.update({"patch.x": x, "patch.w": w, "patch.b": b, "patch.y": y, "patch.wy": wy,
                "patch.dx": dx, "patch.dw": dw, "patch.db": db})
    # general conv3d: ResNet3D kernels with per-axis stride and padding
    cases = {
        "k333": ((2, 3, 5, 6, 7), (4, 3, 3, 3, 3), (1, 2, 2), (1, 1, 1), True),
        "k133": ((1, 4, 3, 7, 6), (3, 4, 1, 3, 3), (1, 2, 1), (0, 1, 1), False),
        "k311": ((2, 3, 6, 4, 5), (5, 3, 3, 1, 1), (2, 1, 1), (1, 0, 0), True),
        "k111": ((2, 6, 3, 6, 6), (4, 6, 1, 1, 1), (1, 2, 2), (0, 0, 0), False),
        "stem": ((1, 3, 3, 9, 9), (4, 3, 1, 7, 7), (1, 2, 2), (0, 3, 3), False),
        "pointwise": ((2, 5, 3, 4, 6), (7, 5, 1, 1, 1), (1, 1, 1), (0, 0, 0), True),
    }
    for name, (xs, ws, stride, pad, bias) in cases.items():
        x = torch.randn(xs, generator=g, requires_grad=True)
        w = torch.randn(ws, generator=g, requires_grad=True)
        b = torch.randn(ws[0], generator=g, requires_grad=True) if bias else None
        y = F.conv3d(x, w, b, stride=stride, padding=pad)
        wy = torch.randn(y.shape, generator=g)
        inputs = (x, w, b) if bias else (x, w)
        grads = _grads((wy * y).sum(), inputs)
        out.update({f"{name}.x": x, f"{name}.w": w, f"{name}.y": y, f"{name}.wy": wy,
                    f"{name}.dx": grads[0], f"{name}.dw": grads[1],
                    f"{name}.geom": torch.tensor(list(stride) + list(pad), dtype=torch.float32)})
        if bias:
            out.update({f"{name}.b": b, f"{name}.db": grads[2]})
    save("nn_cases_conv3d", out, seed=SEED, cases="patch," + ",".join(cases),
         geom="stride t,h,w then padding t,h,w")


def conv1d_fixtures():
    g = torch.Generator().manual_seed(SEED + 1)
    out = {}
    # name: B, Ci, T, Co, k, stride, padding, groups, bias, mask
    cases = {
        "dense": (2, 4, 13, 6, 3, 1, 1, 1, True, True),
        "stride2": (2, 4, 12, 6, 3, 2, 1, 2, False, False),
        "depthwise": (2, 5, 11, 5, 3, 1, 1, 5, True, True),
        "dw_mult": (1, 3, 9, 6, 5, 2, 2, 3, True, False),
        "k1": (3, 6, 7, 4, 1, 1, 0, 1, True, True),
        "k1g2": (2, 4, 9, 6, 1, 1, 0, 2, True, False),
    }
    for name, (B, Ci, T, Co, k, s, p, gr, bias, masked) in cases.items():
        x = torch.randn(B, Ci, T, generator=g, requires_grad=True)
        w = torch.randn(Co, Ci // gr, k, generator=g, requires_grad=True)
        b = torch.randn(Co, generator=g, requires_grad=True) if bias else None
        y = F.conv1d(x, w, b, stride=s, padding=p, groups=gr)
        To = y.shape[2]
        if masked:
            lengths = torch.randint(1, To + 1, (B,), generator=g)
            mask = (torch.arange(To)[None, :] < lengths[:, None]).float()
            y = y * mask[:, None, :]
            out[f"{name}.mask"] = mask
        wy = torch.randn(y.shape, generator=g)
        inputs = (x, w, b) if bias else (x, w)
        grads = _grads((wy * y).sum(), inputs)
        out.update({f"{name}.x": x, f"{name}.w": w, f"{name}.y": y, f"{name}.wy": wy,
                    f"{name}.dx": grads[0], f"{name}.dw": grads[1],
                    f"{name}.geom": torch.tensor([s, p, gr], dtype=torch.float32)})
        if bias:
            out.update({f"{name}.b": b, f"{name}.db": grads[2]})
    save("nn_cases_conv1d", out, seed=SEED + 1, cases=",".join(cases),
         geom="stride, padding, groups; mask multiplies the output")


def pool_fixtures():
    g = torch.Generator().manual_seed(SEED + 2)
    out = {}
    # name: B, C, T, kernel, stride, padding, ties (integer values: many equal maxima)
    cases = {
        "k3s2p1": (2, 3, 11, 3, 2, 1, False),
        "k2s2": (2, 2, 10, 2, 2, 0, False),
        "k5s1p2": (1, 3, 9, 5, 1, 2, False),
        "ties": (2, 3, 12, 3, 2, 1, True),
    }
    for name, (B, C, T, k, s, p, ties) in cases.items():
        x = torch.randn(B, C, T, generator=g)
        if ties:
            x = torch.round(x)
        x.requires_grad_(True)
        y = F.max_pool1d(x, k, s, p)
        wy = torch.randn(y.shape, generator=g)
        (dx,) = _grads((wy * y).sum(), (x,))
        out.update({f"{name}.x": x, f"{name}.y": y, f"{name}.wy": wy, f"{name}.dx": dx,
                    f"{name}.geom": torch.tensor([k, s, p], dtype=torch.float32)})
    x = torch.randn(2, 3, 4, 5, 6, generator=g, requires_grad=True)
    y = x.mean(dim=(3, 4))
    wy = torch.randn(y.shape, generator=g)
    (dx,) = _grads((wy * y).sum(), (x,))
    out.update({"mean.x": x, "mean.y": y, "mean.wy": wy, "mean.dx": dx})
    save("nn_cases_pool", out, seed=SEED + 2, cases=",".join(cases) + ",mean",
         geom="kernel, stride, padding")


def interp_fixtures():
    g = torch.Generator().manual_seed(SEED + 3)
    out = {}
    cases = {"up": (7, 16), "down": (16, 5), "same": (6, 6), "one": (1, 4), "odd": (5, 3),
             "feat": (100, 192), "down3": (37, 12)}
    for name, (tin, tout) in cases.items():
        x = torch.randn(2, 3, tin, generator=g, requires_grad=True)
        y = F.interpolate(x, size=tout, mode="linear", align_corners=False)
        wy = torch.randn(y.shape, generator=g)
        (dx,) = _grads((wy * y).sum(), (x,))
        out.update({f"{name}.x": x, f"{name}.y": y, f"{name}.wy": wy, f"{name}.dx": dx})
    save("nn_cases_interp", out, seed=SEED + 3, cases=",".join(f"{k}:{a}->{b}" for k, (a, b) in
                                                         cases.items()))


def generate():
    conv3d_fixtures()
    conv1d_fixtures()
    pool_fixtures()
    interp_fixtures()
