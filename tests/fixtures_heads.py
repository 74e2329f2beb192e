"""Fixtures for heads/: a small ActionFormer head (OpenTAD variant) written from
spec-actionformer.md §2-§7 in float64 PyTorch: forward outputs per level, gradients of every
parameter and of the input features, label targets, focal + DIoU losses and their gradients."""
import math

import torch
import torch.nn.functional as F

from fixture_io import save

QKV = ("query", "key", "value")


def ln_c(x, w, b, eps):
    return F.layer_norm(x.transpose(1, 2), (x.shape[1],), w, b, eps).transpose(1, 2)


def param_shapes(cfg):
    Cin, C, K = cfg["in_channels"], cfg["channels"], cfg["n_classes"]
    e, s, br = cfg["arch"]
    shapes = {}
    for i in range(e):
        shapes[f"projection.embed.{i}.conv.weight"] = (C, Cin if i == 0 else C, 3)
        shapes[f"projection.embed.{i}.norm.weight"] = (C,)
        shapes[f"projection.embed.{i}.norm.bias"] = (C,)
    blocks = [f"projection.stem.{i}" for i in range(s)] + [f"projection.branch.{i}" for i in range(br)]
    for b in blocks:
        for n in ("ln1", "ln2"):
            shapes[f"{b}.{n}.weight"] = (C,)
            shapes[f"{b}.{n}.bias"] = (C,)
        for n in QKV:
            shapes[f"{b}.attn.{n}_conv.conv.weight"] = (C, 1, 3)
            shapes[f"{b}.attn.{n}_norm.weight"] = (C,)
            shapes[f"{b}.attn.{n}_norm.bias"] = (C,)
        for n in QKV + ("proj",):
            shapes[f"{b}.attn.{n}.weight"] = (C, C, 1)
            shapes[f"{b}.attn.{n}.bias"] = (C,)
        shapes[f"{b}.mlp.0.weight"] = (4 * C, C, 1)
        shapes[f"{b}.mlp.0.bias"] = (4 * C,)
        shapes[f"{b}.mlp.3.weight"] = (C, 4 * C, 1)
        shapes[f"{b}.mlp.3.bias"] = (C,)
        shapes[f"{b}.drop_path_attn.scale"] = (1, C, 1)
        shapes[f"{b}.drop_path_mlp.scale"] = (1, C, 1)
    L = 1 + br
    for l in range(L):
        shapes[f"neck.fpn_norms.{l}.weight"] = (C,)
        shapes[f"neck.fpn_norms.{l}.bias"] = (C,)
    for i in range(2):
        for t in ("cls", "reg"):
            shapes[f"rpn_head.{t}_convs.{i}.conv.weight"] = (C, C, 3)
            shapes[f"rpn_head.{t}_convs.{i}.norm.weight"] = (C,)
            shapes[f"rpn_head.{t}_convs.{i}.norm.bias"] = (C,)
    shapes["rpn_head.cls_head.weight"] = (K, C, 3)
    shapes["rpn_head.cls_head.bias"] = (K,)
    shapes["rpn_head.reg_head.weight"] = (2, C, 3)
    shapes["rpn_head.reg_head.bias"] = (2,)
    for l in range(L):
        shapes[f"rpn_head.scale.{l}.scale"] = ()
    return shapes


def make_params(cfg, g):
    p = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith(".scale") and "drop_path" in name:
            v = 0.5 + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)
        elif name.endswith(".scale"):
            v = torch.tensor(1.0 + 0.2 * torch.rand((), generator=g).item(), dtype=torch.float64)
        elif "norm" in name or ".ln1." in name or ".ln2." in name:
            base = 1.0 if name.endswith("weight") else 0.0
            v = base + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif name.endswith(".bias"):
            v = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = shape[1] * shape[2]
            v = (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1) * (1.5 / math.sqrt(fan_in))
        p[name] = v.requires_grad_()
    return p


def pos_encoding(C, T):
    pos = torch.arange(T, dtype=torch.float64)
    j = torch.arange(C)
    freq = torch.pow(10000.0, -(2 * (j // 2)).double() / C)
    ang = freq[:, None] * pos[None, :]
    pe = torch.where((j % 2 == 0)[:, None], torch.sin(ang), torch.cos(ang))
    return pe / math.sqrt(C)


def unit(x, m, p, pre, af):
    """OpenTAD: LN eps 1e-6, masked after the ReLU; ActionFormer (af): eps 1e-5, not masked."""
    y = F.conv1d(x, p[pre + ".conv.weight"], None, padding=1) * m
    y = ln_c(y, p[pre + ".norm.weight"], p[pre + ".norm.bias"], 1e-5 if af else 1e-6)
    return F.relu(y) if af else F.relu(y) * m


def block(x, m, p, pre, stride, n_head, win):
    mo = m[:, :, ::stride]
    C = x.shape[1]
    h = ln_c(x, p[pre + ".ln1.weight"], p[pre + ".ln1.bias"], 1e-5)
    qkv = []
    for n in QKV:
        c = F.conv1d(h, p[f"{pre}.attn.{n}_conv.conv.weight"], None, stride=stride, padding=1,
                     groups=C) * mo
        c = ln_c(c, p[f"{pre}.attn.{n}_norm.weight"], p[f"{pre}.attn.{n}_norm.bias"], 1e-5)
        qkv.append(F.conv1d(c, p[f"{pre}.attn.{n}.weight"], p[f"{pre}.attn.{n}.bias"]))
    q, k, v = qkv
    B, _, T = q.shape
    hd = C // n_head
    q, k, v = (t.view(B, n_head, hd, T).transpose(2, 3) for t in (q, k, v))
    att = (q / math.sqrt(hd)) @ k.transpose(-2, -1)
    kv = mo[:, :, None, :] > 0                       # [B, 1, 1, T]
    if win < 0:
        att = att.masked_fill(~kv, float("-inf"))
        att = torch.softmax(att, -1)
    else:
        i = torch.arange(T)
        band = (i[:, None] - i[None, :]).abs() <= win // 2
        att = att + (~kv).double() * -1e4
        att = att.masked_fill(~band, float("-inf"))
        att = torch.softmax(att, -1) * mo.reshape(B, 1, T, 1)
    out = att @ (v * mo.reshape(B, 1, T, 1))
    out = out.transpose(2, 3).reshape(B, C, T)
    a = F.conv1d(out, p[pre + ".attn.proj.weight"], p[pre + ".attn.proj.bias"]) * mo
    skip = F.max_pool1d(x, 3, 2, 1) if stride > 1 else x
    x1 = skip * mo + p[pre + ".drop_path_attn.scale"] * a
    h2 = ln_c(x1, p[pre + ".ln2.weight"], p[pre + ".ln2.bias"], 1e-5)
    u = F.conv1d(h2, p[pre + ".mlp.0.weight"], p[pre + ".mlp.0.bias"])
    mlp = F.conv1d(F.gelu(u), p[pre + ".mlp.3.weight"], p[pre + ".mlp.3.bias"]) * mo
    return x1 + p[pre + ".drop_path_mlp.scale"] * mlp, mo


def forward(cfg, p, x, mask):
    e, s, br = cfg["arch"]
    af = cfg.get("variant") == "actionformer"
    m = mask[:, None, :]
    for i in range(e):
        x = unit(x, m, p, f"projection.embed.{i}", af)
    if cfg["use_abs_pe"]:
        x = x + pos_encoding(cfg["channels"], x.shape[2]) * m
    feats, masks = [], []
    for i in range(s):
        x, m = block(x, m, p, f"projection.stem.{i}", 1, cfg["n_head"], cfg["mha_win"])
    feats.append(x)
    masks.append(m)
    for i in range(br):
        x, m = block(x, m, p, f"projection.branch.{i}", 2, cfg["n_head"], cfg["mha_win"])
        feats.append(x)
        masks.append(m)
    cls, reg = [], []
    for l, (f, m) in enumerate(zip(feats, masks)):
        n = ln_c(f, p[f"neck.fpn_norms.{l}.weight"], p[f"neck.fpn_norms.{l}.bias"],
                 1e-5 if af else 1e-6)
        c, r = n, n
        for i in range(2):
            c = unit(c, m, p, f"rpn_head.cls_convs.{i}", af)
            r = unit(r, m, p, f"rpn_head.reg_convs.{i}", af)
        cls.append(F.conv1d(c, p["rpn_head.cls_head.weight"], p["rpn_head.cls_head.bias"], padding=1) * m)
        rr = F.conv1d(r, p["rpn_head.reg_head.weight"], p["rpn_head.reg_head.bias"], padding=1) * m
        reg.append(F.relu(p[f"rpn_head.scale.{l}.scale"] * rr))
    return cls, reg, [mm[:, 0, :] for mm in masks]


def targets(cfg, T, segs, labels):
    """Spec §6 for one item: cls [P, K], reg [P, 2] (stride-normalised)."""
    K, r = cfg["n_classes"], cfg["center_radius"]
    pts = []
    for l in range(1 + cfg["arch"][2]):
        s = 2 ** l
        lo, hi = cfg["regression_range"][l]
        for i in range(T >> l):
            pts.append((i * s, lo, hi, s))
    pts = torch.tensor(pts, dtype=torch.float64)
    P = pts.shape[0]
    cls_t = torch.zeros(P, K, dtype=torch.float64)
    reg_t = torch.zeros(P, 2, dtype=torch.float64)
    if len(segs) == 0:
        return cls_t, reg_t
    g = torch.tensor(segs, dtype=torch.float64)
    p, lo, hi, s = (pts[:, i:i + 1] for i in range(4))
    left, right = p - g[None, :, 0], g[None, :, 1] - p
    ctr = 0.5 * (g[:, 0] + g[:, 1])
    tmin = torch.maximum(ctr[None] - r * s, g[None, :, 0])
    tmax = torch.minimum(ctr[None] + r * s, g[None, :, 1])
    inside = torch.minimum(p - tmin, tmax - p) > 0
    mreg = torch.maximum(left, right)
    inrange = (mreg >= lo) & (mreg <= hi)
    lens = (g[:, 1] - g[:, 0])[None].repeat(P, 1)
    lens[~(inside & inrange)] = float("inf")
    mn, arg = lens.min(1)
    tie = (lens <= mn[:, None] + 1e-3) & torch.isfinite(lens)
    onehot = F.one_hot(torch.tensor(labels), K).double()
    cls_t = torch.clamp(tie.double() @ onehot, max=1.0)
    idx = torch.arange(P)
    reg_t = torch.stack([left[idx, arg], right[idx, arg]], 1) / s
    pos = torch.isfinite(mn)
    reg_t[~pos] = 0
    return cls_t, reg_t


def focal(x, t, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    pt = p * t + (1 - p) * (1 - t)
    return (alpha * t + (1 - alpha) * (1 - t)) * (1 - pt) ** gamma * ce


def diou(pred, tgt, eps=1e-7):
    ps, pe, gs, ge = pred[:, 0], pred[:, 1], tgt[:, 0], tgt[:, 1]
    inter = (torch.minimum(pe, ge) - torch.maximum(ps, gs)).clamp(min=0)
    union = (pe - ps) + (ge - gs) - inter
    iou = inter / union.clamp(min=eps)
    c = torch.maximum(pe, ge) - torch.minimum(ps, gs)
    rho = 0.5 * (ps + pe) - 0.5 * (gs + ge)
    return 1 - iou + rho ** 2 / (c ** 2).clamp(min=eps)


def losses(cfg, cls, reg, masks, gts, norm0):
    T = masks[0].shape[1]
    B, K, eps = cls[0].shape[0], cfg["n_classes"], cfg["label_smoothing"]
    logits = torch.cat([c.transpose(1, 2) for c in cls], 1)       # [B, P, K]
    offs = torch.cat([r.transpose(1, 2) for r in reg], 1)         # [B, P, 2]
    valid = torch.cat(masks, 1) > 0                               # [B, P]
    strides = torch.cat([torch.full((T >> l,), 2.0 ** l, dtype=torch.float64) for l in range(len(cls))])
    pts = torch.cat([torch.arange(T >> l, dtype=torch.float64) * 2 ** l for l in range(len(cls))])
    ct, rt = zip(*[targets(cfg, T, s, lab) for s, lab in gts])
    ct, rt = torch.stack(ct), torch.stack(rt)
    pos = valid & (ct.sum(-1) > 0)
    num_pos = int(pos.sum())
    norm = 0.9 * norm0 + 0.1 * max(num_pos, 1)
    t = ct * (1 - eps) + eps / (K + 1)
    cls_loss = focal(logits[valid], t[valid]).sum() / norm
    if num_pos:
        st = strides[None].expand(B, -1)[pos]
        pp = pts[None].expand(B, -1)[pos]
        pred = torch.stack([pp - offs[pos][:, 0] * st, pp + offs[pos][:, 1] * st], 1)
        tgt = torch.stack([pp - rt[pos][:, 0] * st, pp + rt[pos][:, 1] * st], 1)
        reg_loss = diou(pred, tgt).sum() / norm
    else:
        reg_loss = torch.zeros((), dtype=torch.float64)
    return cls_loss, reg_loss, ct, rt, num_pos, norm


def config(win, pe, smoothing, variant):
    cfg = dict(in_channels=6, channels=8, n_classes=3, arch=(2, 1, 2), n_head=2, mha_win=win,
               use_abs_pe=pe, center_radius=1.5, label_smoothing=smoothing,
               regression_range=[(0, 4), (4, 8), (8, 10000)])
    if variant != "opentad":
        cfg["variant"] = variant
    return cfg


GTS = [([(2.0, 5.5), (9.0, 19.0), (20.0, 29.0), (21.0, 30.0)], [0, 2, 1, 1]),
       ([(1.0, 3.0), (4.0, 16.0), (4.0, 16.0005)], [1, 0, 2])]


def one(name, win, pe, smoothing, seed, variant="opentad"):
    cfg = config(win, pe, smoothing, variant)
    g = torch.Generator().manual_seed(seed)
    p = make_params(cfg, g)
    B, T = 2, 32
    x = torch.randn(B, cfg["in_channels"], T, generator=g, dtype=torch.float64).requires_grad_()
    mask = torch.ones(B, T, dtype=torch.float64)
    mask[1, 20:] = 0
    cls, reg, masks = forward(cfg, p, x, mask)
    d_cls = [torch.randn(c.shape, generator=g, dtype=torch.float64) for c in cls]
    d_reg = [torch.randn(r.shape, generator=g, dtype=torch.float64) for r in reg]
    obj = sum((c * d).sum() for c, d in zip(cls, d_cls)) + sum((r * d).sum() for r, d in zip(reg, d_reg))
    grads = torch.autograd.grad(obj, [x] + list(p.values()))
    out = {"x": x, "mask": mask}
    out.update({"param." + k: v for k, v in p.items()})
    for l in range(len(cls)):
        out[f"cls.{l}"], out[f"reg.{l}"] = cls[l], reg[l]
        out[f"d_cls.{l}"], out[f"d_reg.{l}"] = d_cls[l], d_reg[l]
    out["grad.x"] = grads[0]
    out.update({"grad." + k: gr for k, gr in zip(p.keys(), grads[1:])})
    # losses against GTS (train mode, normaliser 100 before the update)
    cls2, reg2, masks2 = forward(cfg, p, x, mask)
    cl, rl, ct, rt, num_pos, norm = losses(cfg, cls2, reg2, masks2, GTS, 100.0)
    total = cl + 1.0 * rl
    lg = torch.autograd.grad(total, [x] + list(p.values()))
    out.update({"loss.cls": cl, "loss.reg": rl, "loss.num_pos": float(num_pos),
                "loss.norm": norm, "loss.cls_target": ct, "loss.reg_target": rt,
                "loss.grad.x": lg[0]})
    for k, gr in zip(p.keys(), lg[1:]):
        if k.startswith("rpn_head") or k.startswith("neck"):
            out["loss.grad." + k] = gr
    for i, (segs, labels) in enumerate(GTS):
        out[f"gt.{i}.segments"] = torch.tensor(segs)
        out[f"gt.{i}.labels"] = torch.tensor(labels, dtype=torch.float64)
    save(name, out, seed=seed, B=B, T=T, cfg=cfg)


def generate():
    torch.manual_seed(0)
    one("heads_global", -1, True, 0.1, 1)
    one("heads_local", 9, False, 0.0, 2)  # level 2 has T = 8 < 9: the band runs off both ends
    # ActionFormer's release: padded positions of the conv units hold relu(beta)
    one("heads_actionformer", 5, False, 0.0, 3, variant="actionformer")
