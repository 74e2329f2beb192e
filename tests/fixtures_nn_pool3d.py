"""Fixtures for nn/pool3d.c: 3-D max-pool forward and backward from PyTorch (float32, CPU), the
ResNet stem's pool (1,3,3)/(1,2,2)/(0,1,1), a temporal kernel with padding, and post-ReLU
inputs full of zeros (ties: PyTorch routes the gradient to the first maximum in (t, h, w)
order). Writes nn_cases_pool3d."""
import torch
import torch.nn.functional as F

from fixture_io import save

SEED = 31
CASES = {  # name: (x shape, kernel, stride, padding, relu)
    "stem": ((2, 3, 2, 9, 10), (1, 3, 3), (1, 2, 2), (0, 1, 1), False),
    "t3": ((1, 2, 5, 6, 7), (3, 2, 3), (2, 2, 1), (1, 1, 1), False),
    "ties": ((1, 4, 3, 8, 8), (1, 3, 3), (1, 2, 2), (0, 1, 1), True),
}


def generate():
    g = torch.Generator().manual_seed(SEED)
    out = {}
    for name, (shape, k, s, p, relu) in CASES.items():
        x = torch.randn(shape, generator=g)
        if relu:  # integer levels, half of them zero after the ReLU: many ties
            x = F.relu(torch.round(2 * x))
        x.requires_grad_(True)
        y = F.max_pool3d(x, k, s, p)
        wy = torch.randn(y.shape, generator=g)
        (y * wy).sum().backward()
        out.update({f"{name}.x": x.detach(), f"{name}.y": y.detach(), f"{name}.wy": wy,
                    f"{name}.dx": x.grad, f"{name}.geom": torch.tensor([*k, *s, *p],
                                                                        dtype=torch.float32)})
    save("nn_cases_pool3d", out, seed=SEED, cases=",".join(CASES))
