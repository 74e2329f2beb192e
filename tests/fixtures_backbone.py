"""Fixtures for backbone/: a small PyTorch reference of the Video Swin Transformer 3D
(spec-videoswin.md) in its original wiring and rewired as Re2TAL (re2tal-paper.md §2.2:
z_n = z_{n-2} + M_n(z_{n-1}), both streams start at the stage input, output the mean of the
last two), with autograd gradients. Weights come from a formula the C tests repeat
(param_values), so the files hold only inputs, outputs and gradients. Computed in float64."""
import math

import torch
import torch.nn.functional as F

from fixture_io import save

LN_EPS = 1e-5


def fnv1a(name):
    h = 2166136261
    for b in name.encode():
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def param_values(name, shape):
    """Deterministic weights: the same formula as tests/test_backbone_swin.c."""
    n = math.prod(shape)
    j = torch.arange(n, dtype=torch.float64)
    s = torch.sin(0.61 * j + 0.17 * (fnv1a(name) % 997) + 0.5)
    if name.endswith("running_var"):
        v = 0.5 + 0.25 * (s + 1)
    elif name.endswith("running_mean"):
        v = 0.1 * s
    elif name.endswith("bn.weight"):
        v = 1.0 + 0.1 * s
    elif name.endswith("relative_position_bias_table"):
        v = 0.5 * s
    elif name.endswith(".bias"):
        v = 0.05 * s
    elif "norm" in name and name.endswith(".weight"):
        v = 1.0 + 0.1 * s
    else:
        fan_in = n // shape[0]
        v = 1.5 / math.sqrt(fan_in) * s
    return v.reshape(shape)


def clamp_window(size, window):
    win, shift = [], []
    for s, w in zip(size, window):
        if s <= w:
            win.append(s)
            shift.append(0)
        else:
            win.append(w)
            shift.append(w // 2)
    return win, shift


def partition(x, win):
    B, D, H, W, C = x.shape
    wd, wh, ww = win
    x = x.view(B, D // wd, wd, H // wh, wh, W // ww, ww, C)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, C)


def unpartition(xw, win, B, D, H, W):
    wd, wh, ww = win
    C = xw.shape[-1]
    x = xw.view(B, D // wd, H // wh, W // ww, wd, wh, ww, C)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, D, H, W, C)


def shift_mask(Dp, Hp, Wp, win, shift):
    img = torch.zeros(1, Dp, Hp, Wp, 1, dtype=torch.float64)
    cnt = 0

    def slices(P, w, s):
        return [slice(0, P - w), slice(P - w, P - s), slice(P - s, P)] if s else [slice(0, P)]

    for d in slices(Dp, win[0], shift[0]):
        for h in slices(Hp, win[1], shift[1]):
            for w in slices(Wp, win[2], shift[2]):
                img[:, d, h, w, :] = cnt
                cnt += 1
    ids = partition(img, win).squeeze(-1)  # [nW, n]
    m = ids[:, None, :] - ids[:, :, None]
    return torch.where(m != 0, torch.tensor(-100.0, dtype=torch.float64),
                       torch.tensor(0.0, dtype=torch.float64))


def rel_index(window):
    fd, fh, fw = window
    coords = torch.stack(torch.meshgrid(torch.arange(fd), torch.arange(fh), torch.arange(fw),
                                        indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    rel = rel.permute(1, 2, 0)
    return ((rel[..., 0] + fd - 1) * (2 * fh - 1) * (2 * fw - 1) +
            (rel[..., 1] + fh - 1) * (2 * fw - 1) + (rel[..., 2] + fw - 1))


class Swin:
    """Parameters by canonical name; forward in the original or rewired wiring."""

    def __init__(self, embed, depths, heads, window, patch, mlp_ratio=4.0):
        self.embed, self.depths, self.heads = embed, depths, heads
        self.window, self.patch, self.hidden_ratio = window, patch, mlp_ratio
        self.shapes = {}
        C0 = embed
        self.shapes["patch_embed.proj.weight"] = (C0, 3, *patch)
        self.shapes["patch_embed.proj.bias"] = (C0,)
        self.shapes["patch_embed.norm.weight"] = (C0,)
        self.shapes["patch_embed.norm.bias"] = (C0,)
        rows = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        for s, depth in enumerate(depths):
            C = C0 << s
            hid = int(round(mlp_ratio * C))
            for b in range(depth):
                p = f"layers.{s}.blocks.{b}."
                self.shapes[p + "norm1.weight"] = (C,)
                self.shapes[p + "norm1.bias"] = (C,)
                self.shapes[p + "attn.relative_position_bias_table"] = (rows, heads[s])
                self.shapes[p + "attn.qkv.weight"] = (3 * C, C)
                self.shapes[p + "attn.qkv.bias"] = (3 * C,)
                self.shapes[p + "attn.proj.weight"] = (C, C)
                self.shapes[p + "attn.proj.bias"] = (C,)
                self.shapes[p + "norm2.weight"] = (C,)
                self.shapes[p + "norm2.bias"] = (C,)
                self.shapes[p + "mlp.fc1.weight"] = (hid, C)
                self.shapes[p + "mlp.fc1.bias"] = (hid,)
                self.shapes[p + "mlp.fc2.weight"] = (C, hid)
                self.shapes[p + "mlp.fc2.bias"] = (C,)
            if s + 1 < len(depths):
                self.shapes[f"layers.{s}.downsample.norm.weight"] = (4 * C,)
                self.shapes[f"layers.{s}.downsample.norm.bias"] = (4 * C,)
                self.shapes[f"layers.{s}.downsample.reduction.weight"] = (2 * C, 4 * C)
        Cl = C0 << (len(depths) - 1)
        self.shapes["norm3.weight"] = (Cl,)
        self.shapes["norm3.bias"] = (Cl,)
        self.p = {k: param_values(k, v).requires_grad_(True) for k, v in self.shapes.items()}

    def ln(self, x, pre):
        return F.layer_norm(x, (x.shape[-1],), self.p[pre + ".weight"], self.p[pre + ".bias"],
                            LN_EPS)

    def attn(self, x, s, b):
        p = f"layers.{s}.blocks.{b}."
        B, D, H, W, C = x.shape
        heads = self.heads[s]
        win, shift = clamp_window((D, H, W), self.window)
        if b % 2 == 0:
            shift = [0, 0, 0]
        u = self.ln(x, p + "norm1")
        pd, ph, pw = [(-sz) % w for sz, w in zip((D, H, W), win)]
        u = F.pad(u, (0, 0, 0, pw, 0, ph, 0, pd))
        Dp, Hp, Wp = D + pd, H + ph, W + pw
        if any(shift):
            u = torch.roll(u, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        uw = partition(u, win)
        Bw, n, _ = uw.shape
        hd = C // heads
        qkv = F.linear(uw, self.p[p + "attn.qkv.weight"], self.p[p + "attn.qkv.bias"])
        qkv = qkv.reshape(Bw, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * hd ** -0.5, qkv[1], qkv[2]
        a = q @ k.transpose(-2, -1)
        idx = rel_index(self.window)[:n, :n].reshape(-1)
        bias = self.p[p + "attn.relative_position_bias_table"][idx].reshape(n, n, heads)
        a = a + bias.permute(2, 0, 1)[None]
        if any(shift):
            m = shift_mask(Dp, Hp, Wp, win, shift).to(a.dtype)
            nW = m.shape[0]
            a = a.view(Bw // nW, nW, heads, n, n) + m[None, :, None]
            a = a.view(Bw, heads, n, n)
        a = a.softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(Bw, n, C)
        o = F.linear(o, self.p[p + "attn.proj.weight"], self.p[p + "attn.proj.bias"])
        y = unpartition(o, win, B, Dp, Hp, Wp)
        if any(shift):
            y = torch.roll(y, shifts=tuple(shift), dims=(1, 2, 3))
        return y[:, :D, :H, :W, :].contiguous()

    def mlp(self, x, s, b):
        p = f"layers.{s}.blocks.{b}."
        u = self.ln(x, p + "norm2")
        h = F.gelu(F.linear(u, self.p[p + "mlp.fc1.weight"], self.p[p + "mlp.fc1.bias"]))
        return F.linear(h, self.p[p + "mlp.fc2.weight"], self.p[p + "mlp.fc2.bias"])

    def stage(self, x, s, rewired):
        fns = []
        for b in range(self.depths[s]):
            fns.append(lambda z, b=b: self.attn(z, s, b))
            fns.append(lambda z, b=b: self.mlp(z, s, b))
        if not rewired:
            for f in fns:
                x = x + f(x)
            return x
        prev2, prev = x, x
        for f in fns:
            prev2, prev = prev, prev2 + f(prev)
        return (prev2 + prev) / 2

    def merge(self, x, s):
        B, D, H, W, C = x.shape
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2],
                       x[:, :, 1::2, 1::2]], -1)
        x = self.ln(x, f"layers.{s}.downsample.norm")
        return F.linear(x, self.p[f"layers.{s}.downsample.reduction.weight"])

    def forward(self, video, rewired):
        B, _, T, H, W = video.shape
        pt, ph, pw = self.patch
        v = F.pad(video, (0, (-W) % pw, 0, (-H) % ph, 0, (-T) % pt))
        x = F.conv3d(v, self.p["patch_embed.proj.weight"], self.p["patch_embed.proj.bias"],
                     stride=self.patch)
        x = x.permute(0, 2, 3, 4, 1)
        x = self.ln(x, "patch_embed.norm")
        for s in range(len(self.depths)):
            x = self.stage(x, s, rewired)
            if s + 1 < len(self.depths):
                x = self.merge(x, s)
        x = self.ln(x, "norm3")
        return x.mean(dim=(2, 3)).permute(0, 2, 1)  # [B, C, D]


class ResNet3d:
    """Small SlowOnly-style 3D ResNet (backbone/resnet3d.c): stem conv (1,7,7)/(1,2,2) + BN +
    ReLU; per stage a first block relu(F(x) + BN(proj(x))) and then residual branches with the
    ReLU inside (re2tal-paper.md §2.4); frozen BN (eval statistics)."""

    def __init__(self, embed, depths, temporal_from):
        self.embed, self.depths, self.temporal_from = embed, depths, temporal_from
        shapes = {"conv1.conv.weight": (embed, 3, 1, 7, 7)}
        self.bn_names = ["conv1"]
        cin = embed
        for s, depth in enumerate(depths):
            planes = embed << s
            kt = 3 if s >= temporal_from else 1
            for b in range(depth):
                pre = f"layer{s + 1}.{b}"
                ci = cin if b == 0 else 4 * planes
                shapes[pre + ".conv1.conv.weight"] = (planes, ci, kt, 1, 1)
                shapes[pre + ".conv2.conv.weight"] = (planes, planes, 1, 3, 3)
                shapes[pre + ".conv3.conv.weight"] = (4 * planes, planes, 1, 1, 1)
                self.bn_names += [pre + ".conv1", pre + ".conv2", pre + ".conv3"]
            shapes[f"layer{s + 1}.0.downsample.conv.weight"] = (4 * planes, cin, 1, 1, 1)
            self.bn_names.append(f"layer{s + 1}.0.downsample")
            cin = 4 * planes
        ch = {k[:-len(".conv.weight")]: v[0] for k, v in shapes.items()}
        for n in self.bn_names:
            for part in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{n}.bn.{part}"] = (ch[n],)
        self.shapes = shapes
        self.p = {k: param_values(k, v).requires_grad_(k.endswith("conv.weight"))
                  for k, v in shapes.items()}

    def bn(self, x, pre):
        w, b = self.p[pre + ".bn.weight"], self.p[pre + ".bn.bias"]
        m, v = self.p[pre + ".bn.running_mean"], self.p[pre + ".bn.running_var"]
        return F.batch_norm(x, m, v, w, b, training=False, eps=1e-5)

    def unit(self, x, pre, stride=1, pad_t=0, pad_s=0):
        w = self.p[pre + ".conv.weight"]
        return self.bn(F.conv3d(x, w, stride=(1, stride, stride), padding=(pad_t, pad_s, pad_s)),
                       pre)

    def branch(self, x, s, b, stride, final_relu):
        pre = f"layer{s + 1}.{b}"
        kt = 3 if s >= self.temporal_from else 1
        h = F.relu(self.unit(x, pre + ".conv1", pad_t=(kt - 1) // 2))
        h = F.relu(self.unit(h, pre + ".conv2", stride=stride, pad_s=1))
        h = self.unit(h, pre + ".conv3")
        return F.relu(h) if final_relu else h

    def forward(self, video, rewired):
        x = F.relu(self.unit(video, "conv1", stride=2, pad_s=3))
        for s, depth in enumerate(self.depths):
            stride = 1 if s == 0 else 2
            x = F.relu(self.branch(x, s, 0, stride, False) +
                       self.unit(x, f"layer{s + 1}.0.downsample", stride=stride))
            fns = [lambda z, b=b: self.branch(z, s, b, 1, True) for b in range(1, depth)]
            if not fns:
                continue
            if not rewired:
                for f in fns:
                    x = x + f(x)
            else:
                prev2, prev = x, x
                for f in fns:
                    prev2, prev = prev, prev2 + f(prev)
                x = (prev2 + prev) / 2
        return x.mean(dim=(3, 4))  # [B, C, T]


def video_values(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1


def make(name, model, video_shape, seed, **meta):
    video = video_values(video_shape, seed)
    out = {"video": video}
    for mode, rewired in (("vanilla", False), ("rewired", True)):
        for t in model.p.values():
            t.grad = None
        feats = model.forward(video, rewired)
        if "wts" not in out:
            g = torch.Generator().manual_seed(seed + 1)
            out["wts"] = torch.rand(feats.shape, generator=g, dtype=torch.float64) * 2 - 1
        (feats * out["wts"]).sum().backward()
        out[f"{mode}.feats"] = feats.detach()
        for k, t in model.p.items():
            if t.requires_grad:
                out[f"{mode}.grad.{k}"] = t.grad
    save(name, out, seed=seed, video=list(video_shape), **meta)


def generate():
    torch.manual_seed(0)
    # One stage of two blocks: temporal and spatial shift, padding to window multiples, B = 2
    # (the mask is indexed per window, batch-major).
    m1 = Swin(embed=8, depths=[2], heads=[2], window=[4, 4, 4], patch=[2, 2, 2])
    make("backbone_swin_1stage", m1, (2, 3, 12, 12, 12), seed=11, embed=8, depths=[2],
         heads=[2], window=[4, 4, 4], patch=[2, 2, 2])
    # Two stages: odd window (2, 3, 3), PatchMerging with an odd size (5 -> 3), clamped window
    # without spatial shift in stage 2, patch padding (T = 7).
    m2 = Swin(embed=8, depths=[2, 2], heads=[1, 2], window=[2, 3, 3], patch=[2, 4, 4])
    make("backbone_swin_model", m2, (1, 3, 7, 20, 20), seed=12, embed=8, depths=[2, 2],
         heads=[1, 2], window=[2, 3, 3], patch=[2, 4, 4])
    # ResNet3D: 2 stages, the second with temporal kernel 3 and spatial stride 2.
    r = ResNet3d(embed=4, depths=[2, 3], temporal_from=1)
    make("backbone_resnet_model", r, (1, 3, 4, 16, 16), seed=13, embed=4, depths=[2, 3],
         temporal_from=1)
