"""bench/cuda_swin_torch.py: the PyTorch peer of `re2tal bench backbone --preset swin_t --device
cuda`: Video Swin-T (spec-videoswin.md) in three wirings, timed on the GPU in one process.

  vanilla     the original Swin: x += attn(x); x += mlp(x); plain autograd (stores everything)
  rewired     Re2TAL's rewiring (re2tal-paper.md §2.2): z_n = z_{n-2} + M_n(z_{n-1}), both
              streams start at the stage input, the stage output is the mean of the last two;
              plain autograd (stores everything): the reference for the next one
  reversible  the same rewired stages through a custom torch.autograd.Function that keeps only
              the last two streams of each stage and rebuilds z_{n-2} = z_n - M_n(z_{n-1}) in
              backward, recomputing one residual function at a time (what re2tal does)

A step is what `re2tal bench backbone` times: forward of a clip [1, 3, T, S, S], the mean of the
features [1, 768, T/2] as the loss, backward into the parameters' gradients (no optimiser). Time
per step from CUDA events after warm-up; the peak from torch.cuda.max_memory_allocated over the
timed steps (parameters and gradients included) and max_memory_reserved beside it. --precision
bf16 runs the step under torch.autocast(bfloat16) (the streams stay float32 as in re2tal's bf16
mode); --compile wraps the model (vanilla, rewired) or each residual function (reversible) in
torch.compile. Attention uses F.scaled_dot_product_attention with the bias + shift mask as
attn_mask where this PyTorch has it (2.x; --attn math forces the explicit softmax).

One JSON line per run on stdout: impl, mode, precision, compile, frames, size, steps, step_ms,
best_step_ms, fwd_ms, bwd_ms, peak_allocated_bytes, peak_reserved_bytes, params, status ("ok",
"oom" with the message, or "error"), torch, device.

  --check   on the CPU in float64 at a tiny size (no GPU needed): reversible gradients (input
            and every parameter) equal the rewired-stored ones, outputs equal, the vanilla and
            rewired wirings differ (so the check can fail); then the same under CPU bf16
            autocast with a loose bound. Exit 1 on a mismatch.

usage: cuda_swin_torch.py [--mode vanilla|rewired|reversible] [--precision fp32|bf16]
         [--frames T] [--size S] [--steps K] [--warmup W] [--compile] [--attn sdpa|math]
         [--device cuda|cpu] [--check]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# the window helpers of the tests' float64 reference (tests/fixtures_backbone.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from fixtures_backbone import partition, rel_index, shift_mask, unpartition  # noqa: E402

LN_EPS = 1e-5
OUT_OF_MEMORY = getattr(torch.cuda, "OutOfMemoryError", MemoryError)  # PyTorch >= 1.13


class LayerNorm(nn.LayerNorm):
    """LayerNorm in at least float32, as CUDA autocast runs it; said explicitly so that the
    --check under CPU autocast (whose op lists differ between PyTorch versions) runs too."""

    def forward(self, x):
        dt = torch.promote_types(x.dtype, torch.float32)
        return F.layer_norm(x.to(dt), self.normalized_shape, self.weight.to(dt),
                            self.bias.to(dt), self.eps)


def clamp_window(size, window, shifted):
    """spec-videoswin.md §4: a dimension no larger than its window uses the whole size, no
    shift; odd blocks shift by half the window."""
    win, shift = [], []
    for s, w in zip(size, window):
        win.append(min(s, w))
        shift.append(w // 2 if shifted and s > w else 0)
    return win, shift


class Attention(nn.Module):
    """norm1 + (shifted) window attention with relative position bias: one residual function."""

    def __init__(self, C, heads, window, shifted, use_sdpa):
        super().__init__()
        self.heads, self.window, self.shifted, self.use_sdpa = heads, window, shifted, use_sdpa
        self.norm1 = LayerNorm(C, eps=LN_EPS)
        rows = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, heads))
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.register_buffer("rel_index", rel_index(window), persistent=False)
        self.masks = {}

    def forward(self, x):
        B, D, H, W, C = x.shape
        win, shift = clamp_window((D, H, W), self.window, self.shifted)
        u = self.norm1(x)
        pd, ph, pw = [(-s) % w for s, w in zip((D, H, W), win)]
        if pd or ph or pw:
            u = F.pad(u, (0, 0, 0, pw, 0, ph, 0, pd))
        Dp, Hp, Wp = D + pd, H + ph, W + pw
        if any(shift):
            u = torch.roll(u, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        uw = partition(u, win)
        Bw, n, _ = uw.shape
        hd = C // self.heads
        q, k, v = self.qkv(uw).reshape(Bw, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.rel_index[:n, :n].reshape(-1)]
        bias = bias.reshape(n, n, self.heads).permute(2, 0, 1)  # [heads, n, n]
        if any(shift):
            key = (Dp, Hp, Wp, tuple(win), tuple(shift), str(x.device))
            if key not in self.masks:
                self.masks[key] = shift_mask(Dp, Hp, Wp, win, shift).to(x.device, torch.float32)
            m = self.masks[key]
            nW = m.shape[0]
            bias = (bias[None] + m[:, None]).to(q.dtype)  # [nW, heads, n, n]
            bias = bias[None].expand(Bw // nW, -1, -1, -1, -1).reshape(Bw, self.heads, n, n)
        else:
            bias = bias.to(q.dtype)[None].expand(Bw, -1, -1, -1)
        if self.use_sdpa:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            a = (q * hd ** -0.5) @ k.transpose(-2, -1) + bias
            o = a.softmax(-1) @ v
        o = self.proj(o.transpose(1, 2).reshape(Bw, n, C))
        y = unpartition(o, win, B, Dp, Hp, Wp)
        if any(shift):
            y = torch.roll(y, shifts=tuple(shift), dims=(1, 2, 3))
        if pd or ph or pw:
            y = y[:, :D, :H, :W, :].contiguous()
        return y


class Mlp(nn.Module):
    """norm2 + fc1 + GELU + fc2: the other residual function of a block."""

    def __init__(self, C, hidden):
        super().__init__()
        self.norm2 = LayerNorm(C, eps=LN_EPS)
        self.fc1, self.fc2 = nn.Linear(C, hidden), nn.Linear(hidden, C)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm2(x))))


def autocast_state(device_type):
    """(enabled, dtype) of autocast on that device type, in the API this PyTorch has."""
    if hasattr(torch, "get_autocast_dtype"):  # 2.4 and later
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    if device_type == "cuda":
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
    return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()


class ReversibleStage(torch.autograd.Function):
    """A rewired stage that stores only its last two streams; backward rebuilds the rest.
    The parameters' gradients accumulate into .grad inside backward (as RevViT does), so the
    parameters are not inputs of the Function."""

    @staticmethod
    def forward(ctx, x, fns):
        prev2, prev = x, x
        for f in fns:  # runs without a graph: a custom Function's forward records nothing
            prev2, prev = prev, prev2 + f(prev)
        ctx.fns = fns
        ctx.device_type = x.device.type
        ctx.autocast = autocast_state(x.device.type)
        ctx.save_for_backward(prev2, prev)
        return (prev2 + prev) / 2

    @staticmethod
    def backward(ctx, grad_out):
        z_prev, z_cur = ctx.saved_tensors  # z_{N-1}, z_N
        g_cur = grad_out / 2               # dL/dz_N (complete)
        g_prev = grad_out / 2              # dL/dz_{N-1} (so far)
        enabled, dtype = ctx.autocast
        for f in reversed(ctx.fns):        # M_n, n = N .. 1
            with torch.enable_grad(), torch.autocast(ctx.device_type, dtype=dtype,
                                                     enabled=enabled):
                zp = z_prev.detach().requires_grad_(True)
                out = f(zp)
            torch.autograd.backward(out, g_cur.to(out.dtype))
            with torch.no_grad():
                z_before = z_cur - out     # z_{n-2}, rebuilt
            g_cur, g_prev = g_prev + zp.grad, g_cur
            z_cur, z_prev = z_prev, z_before
            del out, zp
        return g_cur + g_prev, None        # z_0 and z_{-1} are both the input


class Stage(nn.Module):
    def __init__(self, C, depth, heads, window, use_sdpa):
        super().__init__()
        fns = []
        for b in range(depth):
            fns.append(Attention(C, heads, window, b % 2 == 1, use_sdpa))
            fns.append(Mlp(C, 4 * C))
        self.fns = nn.ModuleList(fns)
        self.run_fns = list(self.fns)  # torch.compile'd twins replace these

    def forward(self, x, mode):
        if mode == "vanilla":
            for f in self.run_fns:
                x = x + f(x)
            return x
        if mode == "rewired":
            prev2, prev = x, x
            for f in self.run_fns:
                prev2, prev = prev, prev2 + f(prev)
            return (prev2 + prev) / 2
        return ReversibleStage.apply(x, self.run_fns)


class PatchMerging(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.norm = LayerNorm(4 * C, eps=LN_EPS)
        self.reduction = nn.Linear(4 * C, 2 * C, bias=False)

    def forward(self, x):
        B, D, H, W, C = x.shape
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2],
                       x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinT(nn.Module):
    def __init__(self, embed=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), window=(8, 7, 7),
                 patch=(2, 4, 4), use_sdpa=True):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(3, embed, patch, stride=patch)
        self.norm0 = LayerNorm(embed, eps=LN_EPS)
        self.stages, self.merges = nn.ModuleList(), nn.ModuleList()
        for s, (d, h) in enumerate(zip(depths, heads)):
            self.stages.append(Stage(embed << s, d, h, window, use_sdpa))
            if s + 1 < len(depths):
                self.merges.append(PatchMerging(embed << s))
        self.norm3 = LayerNorm(embed << (len(depths) - 1), eps=LN_EPS)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, Attention):
                nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def forward(self, video, mode):
        _, _, T, H, W = video.shape
        pt, ph, pw = self.patch
        if T % pt or H % ph or W % pw:
            video = F.pad(video, (0, (-W) % pw, 0, (-H) % ph, 0, (-T) % pt))
        x = self.norm0(self.proj(video).permute(0, 2, 3, 4, 1))
        for s, stage in enumerate(self.stages):
            x = stage(x, mode)
            if s < len(self.merges):
                x = self.merges[s](x)
        return self.norm3(x).mean(dim=(2, 3)).permute(0, 2, 1)  # [B, C, T/2]


def has_sdpa():
    return hasattr(F, "scaled_dot_product_attention")


# ---------------------------------------------------------------- the check (CPU) -----------
def grads_of(model, video, mode, autocast_dtype=None):
    model.zero_grad(set_to_none=True)
    v = video.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        out = model(v, mode)
    out.float().mean().backward()
    g = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    g["<input>"] = v.grad.detach().clone()
    return out.detach().double(), g


def rel_err(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check(args):
    torch.manual_seed(0)
    failures = []
    # tiny Swin: stages 1-2 have shifted blocks and grids padded to the window (10x10, 5x5 by
    # 3x3), stages 3-4 grids no larger than the window (clamped, no shift)
    kw = dict(embed=16, depths=(2, 2, 4, 2), heads=(1, 2, 2, 4), window=(4, 3, 3))
    for attn in (["sdpa", "math"] if has_sdpa() else ["math"]):
        model = SwinT(**kw, use_sdpa=attn == "sdpa").double()
        for p in model.parameters():  # non-trivial LayerNorm affine and biases
            p.data.add_(0.05 * torch.randn_like(p))
        video = torch.randn(1, 3, 8, 40, 40, dtype=torch.float64)
        out_s, g_s = grads_of(model, video, "rewired")
        out_r, g_r = grads_of(model, video, "reversible")
        out_v, _ = grads_of(model, video, "vanilla")
        worst = max(rel_err(g_r[k], g_s[k]) for k in g_s)
        e_out = rel_err(out_r, out_s)
        e_wiring = rel_err(out_v, out_s)
        print(json.dumps({"check": "fp64", "attn": attn, "tensors": len(g_s),
                          "output_rel_err": e_out, "worst_grad_rel_err": worst,
                          "vanilla_vs_rewired_rel_diff": e_wiring}))
        if not (e_out < 1e-12 and worst < 1e-9):
            failures.append(f"{attn} fp64: reversible differs from stored (out {e_out:.2e}, "
                            f"grads {worst:.2e})")
        if not e_wiring > 1e-3:
            failures.append(f"{attn}: vanilla and rewired wirings agree ({e_wiring:.2e}): the "
                            "check would not see a wiring mistake")
        # the autocast state travels into the recomputation: bf16 on the CPU
        m32 = model.float()
        v32 = video.float()
        out_s, g_s = grads_of(m32, v32, "rewired", torch.bfloat16)
        dtypes = []  # every residual function's output dtype, forward and recomputed
        hooks = [f.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
                 for st in m32.stages for f in st.fns]
        out_r, g_r = grads_of(m32, v32, "reversible", torch.bfloat16)
        for h in hooks:
            h.remove()
        worst = max(rel_err(g_r[k], g_s[k]) for k in g_s)
        n_fns = sum(len(st.fns) for st in m32.stages)
        print(json.dumps({"check": "bf16-autocast", "attn": attn,
                          "output_rel_err": rel_err(out_r, out_s),
                          "worst_grad_rel_err": worst, "residual_calls": len(dtypes),
                          "bf16_calls": dtypes.count(torch.bfloat16)}))
        if not worst < 5e-2:
            failures.append(f"{attn} bf16: reversible gradients off by {worst:.2e}")
        if len(dtypes) != 2 * n_fns or dtypes.count(torch.bfloat16) != len(dtypes):
            failures.append(f"{attn} bf16: {dtypes.count(torch.bfloat16)} of {len(dtypes)} "
                            f"residual calls in bf16 (want {2 * n_fns}: forward + recompute)")
    for f in failures:
        print("cuda_swin_torch --check: " + f, file=sys.stderr)
    print(json.dumps({"check": "done", "ok": not failures}))
    return 0 if not failures else 1


# ---------------------------------------------------------------- the benchmark -------------
def bench(args):
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    use_sdpa = args.attn == "sdpa" and has_sdpa()
    info = {"impl": "pytorch", "mode": args.mode, "precision": args.precision,
            "compile": bool(args.compile), "attn": "sdpa" if use_sdpa else "math",
            "frames": args.frames, "size": args.size, "steps": args.steps,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(dev) if cuda else "cpu"}
    model = SwinT(use_sdpa=use_sdpa).to(dev)
    info["params"] = sum(p.numel() for p in model.parameters())
    if args.compile:
        if not hasattr(torch, "compile"):
            info.update(status="error", message="torch.compile needs PyTorch 2")
            print(json.dumps(info))
            return 0
        # every Attention / Mlp shares its forward's code: one compiled entry per instance
        torch._dynamo.config.cache_size_limit = 64
        if args.mode == "reversible":
            for st in model.stages:
                st.run_fns = [torch.compile(f) for f in st.fns]
        else:
            model = torch.compile(model)
    video = torch.randn(1, 3, args.frames, args.size, args.size, device=dev)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def step():
        with amp:
            out = model(video, args.mode)
        fwd_end.record() if cuda else None
        out.float().mean().backward()
        return out

    fwd_ms, bwd_ms, step_ms = [], [], []
    try:
        t_compile = time.perf_counter()
        for _ in range(args.warmup):
            model.zero_grad(set_to_none=False)
            fwd_end = torch.cuda.Event(enable_timing=True) if cuda else None
            step()
        sync()
        info["warmup_s"] = round(time.perf_counter() - t_compile, 2)
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        for _ in range(args.steps):
            model.zero_grad(set_to_none=False)  # re2tal's gradients stay allocated too
            if cuda:
                t0, fwd_end, t2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
                t0.record()
                step()
                t2.record()
                t2.synchronize()
                fwd_ms.append(t0.elapsed_time(fwd_end))
                bwd_ms.append(fwd_end.elapsed_time(t2))
                step_ms.append(t0.elapsed_time(t2))
            else:
                fwd_end = None
                t0 = time.perf_counter()
                step()
                step_ms.append(1000 * (time.perf_counter() - t0))
        info["status"] = "ok"
    except OUT_OF_MEMORY as e:  # vanilla at 512 frames may not fit
        info.update(status="oom", message=str(e).split("\n")[0][:200])
    except Exception as e:  # a compile failure is a result, not a crash of the benchmark
        info.update(status="error", message=(type(e).__name__ + ": " + str(e))[:300])
    if step_ms:
        info["step_ms"] = round(sum(step_ms) / len(step_ms), 2)
        info["best_step_ms"] = round(min(step_ms), 2)
    if fwd_ms:
        info["fwd_ms"] = round(sum(fwd_ms) / len(fwd_ms), 2)
        info["bwd_ms"] = round(sum(bwd_ms) / len(bwd_ms), 2)
    if cuda:
        info["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(dev)
        info["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
        info["total_bytes"] = torch.cuda.get_device_properties(dev).total_memory
    print(json.dumps(info), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["vanilla", "rewired", "reversible"], default="reversible")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--attn", choices=["sdpa", "math"], default="sdpa")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if args.check:
        return check(args)
    if args.precision == "fp32" and args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # as re2tal's fp32 mode
        torch.backends.cudnn.allow_tf32 = False
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
