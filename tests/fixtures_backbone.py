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


def conv_bn(p, x, pre, stride=(1, 1, 1), padding=(0, 0, 0)):
    """ConvModule of mmaction2 without activation: conv (no bias) then frozen BN."""
    x = F.conv3d(x, p[pre + ".conv.weight"], stride=stride, padding=padding)
    return F.batch_norm(x, p[pre + ".bn.running_mean"], p[pre + ".bn.running_var"],
                        p[pre + ".bn.weight"], p[pre + ".bn.bias"], training=False, eps=1e-5)


class Pathway:
    """One ResNet3D pathway as mmaction2's ResNet3d (Bottleneck3d, '3x1x1' inflation): stem
    conv kt x7x7 stride (1,2,2) + BN + ReLU + max-pool (1,3,3) stride (1,2,2); stage s: first
    block with projection, then bottlenecks. Original wiring: relu(F(x) + shortcut) everywhere.
    Rewired (re2tal-paper.md §2.4, OpenTAD's re2tal_slowfast.py): the ReLU moves inside F; the
    first block gives relu(F(x)) + Proj(x), the rest z_n = z_{n-2} + relu(F(z_{n-1})), the stage
    ends with the mean of the two streams. BNs frozen (eval statistics). lateral_in[s]: channels
    concatenated to stage s's input (SlowFast's slow pathway)."""

    def __init__(self, prefix, base, depths, stem_kt, inflate, lateral_in=None):
        self.prefix, self.base, self.depths = prefix, base, depths
        self.stem_kt, self.inflate = stem_kt, inflate
        lateral_in = lateral_in or [0] * len(depths)
        shapes = {prefix + "conv1.conv.weight": (base, 3, stem_kt, 7, 7)}
        cin = base
        for s, depth in enumerate(depths):
            planes, kt = base << s, 3 if inflate[s] else 1
            for b in range(depth):
                pre = f"{prefix}layer{s + 1}.{b}"
                ci = cin + lateral_in[s] if b == 0 else 4 * planes
                shapes[pre + ".conv1.conv.weight"] = (planes, ci, kt, 1, 1)
                shapes[pre + ".conv2.conv.weight"] = (planes, planes, 1, 3, 3)
                shapes[pre + ".conv3.conv.weight"] = (4 * planes, planes, 1, 1, 1)
            shapes[f"{prefix}layer{s + 1}.0.downsample.conv.weight"] = (
                4 * planes, cin + lateral_in[s], 1, 1, 1)
            cin = 4 * planes
        self.shapes = add_bn_shapes(shapes)

    def bind(self, p):
        self.p = p

    def stem(self, video):
        kt = self.stem_kt
        x = F.relu(conv_bn(self.p, video, self.prefix + "conv1", stride=(1, 2, 2),
                           padding=((kt - 1) // 2, 3, 3)))
        return F.max_pool3d(x, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def branch(self, x, s, b, stride, final_relu):
        pre = f"{self.prefix}layer{s + 1}.{b}"
        kt = 3 if self.inflate[s] else 1
        h = F.relu(conv_bn(self.p, x, pre + ".conv1", padding=((kt - 1) // 2, 0, 0)))
        h = F.relu(conv_bn(self.p, h, pre + ".conv2", stride=(1, stride, stride),
                           padding=(0, 1, 1)))
        h = conv_bn(self.p, h, pre + ".conv3")
        return F.relu(h) if final_relu else h

    def stage(self, x, s, rewired):
        stride = 1 if s == 0 else 2
        proj = conv_bn(self.p, x, f"{self.prefix}layer{s + 1}.0.downsample",
                       stride=(1, stride, stride))
        if not rewired:
            x = F.relu(self.branch(x, s, 0, stride, False) + proj)
            for b in range(1, self.depths[s]):
                x = F.relu(x + self.branch(x, s, b, 1, False))
            return x
        z0 = self.branch(x, s, 0, stride, True) + proj
        prev2, prev = z0, z0
        for b in range(1, self.depths[s]):
            prev2, prev = prev, prev2 + self.branch(prev, s, b, 1, True)
        return (prev2 + prev) / 2 if self.depths[s] > 1 else z0


def add_bn_shapes(conv_shapes):
    shapes = dict(conv_shapes)
    for k, v in conv_shapes.items():
        if "lateral" in k:
            continue
        pre = k[:-len(".conv.weight")]
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{pre}.bn.{part}"] = (v[0],)
    return shapes


def make_params(shapes):
    return {k: param_values(k, v).requires_grad_(k.endswith("conv.weight"))
            for k, v in shapes.items()}


class ResNet3d:
    """SlowOnly-style ResNet3D (backbone/resnet3d.c): one pathway, spatial mean out."""

    def __init__(self, embed, depths, stem_kt, inflate):
        self.path = Pathway("", embed, depths, stem_kt, inflate)
        self.shapes = self.path.shapes
        self.p = make_params(self.shapes)
        self.path.bind(self.p)

    def forward(self, video, rewired):
        x = self.path.stem(video)
        for s in range(len(self.path.depths)):
            x = self.path.stage(x, s, rewired)
        return x.mean(dim=(3, 4))  # [B, C, T]


class SlowFast:
    """mmaction2's ResNet3dSlowFast / OpenTAD's ResNet3dSlowFast_inv (backbone/slowfast.c):
    pathways fed by nearest temporal resampling, laterals conv (k,1,1) stride alpha (no norm,
    no activation) concatenated to the slow features after the stem and stages 1..n-1. Output:
    each pathway's spatial mean, the slow one linearly interpolated to the fast length, then
    concatenated (as OpenTAD's pooling + Interpolate do per pathway)."""

    def __init__(self, embed, depths, tau, alpha, beta_inv, fusion_kernel, stem_kt=1,
                 fast_stem_kt=5, inflate=(0, 0, 1, 1), fast_inflate=(1, 1, 1, 1)):
        self.tau, self.alpha, self.k = tau, alpha, fusion_kernel
        fb = embed // beta_inv
        self.fast_ch = [fb] + [4 * (fb << s) for s in range(len(depths) - 1)]
        lat = [2 * c for c in self.fast_ch]
        self.slow = Pathway("slow_path.", embed, depths, stem_kt, inflate, lat)
        self.fast = Pathway("fast_path.", fb, depths, fast_stem_kt, fast_inflate)
        self.lat_names = ["slow_path.conv1_lateral"] + [
            f"slow_path.layer{s}_lateral" for s in range(1, len(depths))]
        shapes = {**self.slow.shapes, **self.fast.shapes}
        for name, c in zip(self.lat_names, self.fast_ch):
            shapes[name + ".conv.weight"] = (2 * c, c, fusion_kernel, 1, 1)
        self.shapes = shapes
        self.p = make_params(shapes)
        self.slow.bind(self.p)
        self.fast.bind(self.p)

    def lateral(self, s, xf):
        return F.conv3d(xf, self.p[self.lat_names[s] + ".conv.weight"], stride=(self.alpha, 1, 1),
                        padding=((self.k - 1) // 2, 0, 0))

    def forward(self, video, rewired):
        xs = F.interpolate(video, mode="nearest", scale_factor=(1.0 / self.tau, 1.0, 1.0))
        xf = F.interpolate(video, mode="nearest",
                           scale_factor=(1.0 / (self.tau // self.alpha), 1.0, 1.0))
        xs, xf = self.slow.stem(xs), self.fast.stem(xf)
        for s in range(len(self.slow.depths)):
            xs = torch.cat((xs, self.lateral(s, xf)), dim=1)
            xs = self.slow.stage(xs, s, rewired)
            xf = self.fast.stage(xf, s, rewired)
        fs, ff = xs.mean(dim=(3, 4)), xf.mean(dim=(3, 4))
        fs = F.interpolate(fs, size=ff.shape[2], mode="linear", align_corners=False)
        return torch.cat((fs, ff), dim=1)


def video_values(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1


def video_formula(shape, seed):
    """A clip the C test computes itself (tests/test_backbone_torch.c: formula_video), so a
    large input need not be stored."""
    j = torch.arange(math.prod(shape), dtype=torch.float64)
    return (0.9 * torch.sin(0.37 * j + 0.11 * seed)).reshape(shape)


def make(name, model, video_shape, seed, formula=False, **meta):
    video = video_formula(video_shape, seed) if formula else video_values(video_shape, seed)
    out = {} if formula else {"video": video}
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
    # ResNet3D: 2 stages, the second inflated (3x1x1) with spatial stride 2, temporal stem 3.
    r = ResNet3d(embed=4, depths=[2, 3], stem_kt=3, inflate=[0, 1])
    make("backbone_resnet_model", r, (1, 3, 4, 20, 20), seed=13, embed=4, depths=[2, 3],
         stem_kt=3, inflate=[0, 1])
    # SlowFast with SlowFast-101's stage depths (the 22-coupling chain) and small channels
    # (slow stem 2, fast stem 1, so the file stays small): tau 4, alpha 2 (the fast pathway is
    # resampled too), beta_inv 2, fusion kernel 5, B = 2; the clip comes from a formula.
    sfm = SlowFast(embed=2, depths=[3, 4, 23, 3], tau=4, alpha=2, beta_inv=2, fusion_kernel=5)
    make("backbone_slowfast_r101", sfm, (2, 3, 16, 40, 40), seed=14, formula=True, embed=2,
         depths=[3, 4, 23, 3], tau=4, alpha=2, beta_inv=2, fusion_kernel=5)
