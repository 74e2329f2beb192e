#!/usr/bin/python3
"""`make interop` (dev check, never part of `make test`): the SlowFast-101 of mmaction2 and,
when an OpenTAD checkout is given, OpenTAD's rewired one, against re2tal's backbone.

mmaction2's own module files (resnet3d.py, resnet3d_slowfast.py, read from PyPI's mmaction2
wheel) are loaded with small stand-ins for their mmcv / mmengine / registry imports (ConvModule
= conv + "bn" + ReLU, as mmcv names them); the model gets random weights and BN statistics, is
saved as mmaction2 saves a checkpoint ({"state_dict": {"backbone.*", "cls_head.*"}}), converted
by tools/convert_checkpoint.py and run by tests/interop/extract_features.c in `vanilla` mode
(the original network). OpenTAD's ResNet3dSlowFast_inv (opentad/models/backbones/
re2tal_slowfast.py, same stand-ins) loads that checkpoint through its own load_frm_resnet3d,
is saved under its rewired names (blocks.0.Fm, inv_block.Fm, blocks.0.downsample) and compared
with re2tal's `reversible` mode. Features: each pathway's spatial mean, slow interpolated
linearly onto the fast time grid, concatenated. Goal: 1e-4 relative (max |diff| / max |ref|).

usage: check_slowfast.py --build BUILD --mmaction-whl WHEEL [--opentad DIR] [--frames 16]
                         [--size 64]"""
import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------ stand-ins for imports
class ConvModule(nn.Module):
    """mmcv.cnn.ConvModule as the ResNet3d family uses it: conv, then norm "bn", then act."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias="auto", conv_cfg=None, norm_cfg=None, act_cfg=dict(type="ReLU"),
                 inplace=True, **_):
        super().__init__()
        conv = nn.Conv3d if (conv_cfg or {}).get("type", "Conv2d") == "Conv3d" else nn.Conv2d
        if bias == "auto":
            bias = norm_cfg is None
        self.conv = conv(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.with_norm = norm_cfg is not None
        if self.with_norm:
            self.bn = (nn.BatchNorm3d if "3d" in norm_cfg["type"] else nn.BatchNorm2d)(out_channels)
        self.activate = build_activation_layer(act_cfg) if act_cfg else None

    @property
    def norm(self):
        return self.bn

    def forward(self, x):
        x = self.conv(x)
        if self.with_norm:
            x = self.bn(x)
        return self.activate(x) if self.activate is not None else x


def build_activation_layer(cfg):
    assert cfg["type"] == "ReLU", cfg
    return nn.ReLU(inplace=cfg.get("inplace", False))


class BaseModule(nn.Module):
    def __init__(self, init_cfg=None, **_):
        super().__init__()

    def init_weights(self):
        pass


class Sequential(nn.Sequential):
    def __init__(self, *args, init_cfg=None):
        super().__init__(*args)


class Registry:
    def register_module(self, *a, **k):
        return lambda cls: cls


def module(name, **attrs):
    m = types.ModuleType(name)
    m.__path__ = []
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def install_stand_ins():
    def unused(*a, **k):
        raise RuntimeError("stand-in: not used by this check")

    logger = logging.getLogger("interop")
    mmlogger = type("MMLogger", (), {"get_current_instance": staticmethod(lambda: logger)})

    def load_state_dict(mod, state_dict, strict=False, logger=None):
        return mod.load_state_dict(state_dict, strict=strict)

    module("mmcv")
    module("mmcv.cnn", ConvModule=ConvModule, NonLocal3d=unused,
           build_activation_layer=build_activation_layer)
    module("mmengine")
    module("mmengine.logging", MMLogger=mmlogger, print_log=lambda *a, **k: None)
    module("mmengine.model", BaseModule=BaseModule, Sequential=Sequential)
    module("mmengine.model.weight_init", constant_init=unused, kaiming_init=unused)
    module("mmengine.runner")
    module("mmengine.runner.checkpoint", _load_checkpoint=unused, load_checkpoint=unused,
           load_state_dict=load_state_dict)
    module("mmengine.utils")
    module("mmengine.utils.dl_utils")
    module("mmengine.utils.dl_utils.parrots_wrapper",
           _BatchNorm=torch.nn.modules.batchnorm._BatchNorm)
    module("mmaction")
    module("mmaction.registry", MODELS=Registry())
    module("mmaction.models")
    module("mmaction.models.backbones")


def load_source(name, source, path):
    spec = importlib.util.spec_from_loader(name, loader=None, origin=path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = name.rpartition(".")[0]
    mod.__file__ = path
    sys.modules[name] = mod
    exec(compile(source, path, "exec"), mod.__dict__)
    return mod


# ------------------------------------------------------------------ models
SLOW = dict(type="resnet3d", depth=101, pretrained=None, lateral=True, fusion_kernel=7,
            conv1_kernel=(1, 7, 7), dilations=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1,
            inflate=(0, 0, 1, 1))
FAST = dict(type="resnet3d", depth=101, pretrained=None, lateral=False, base_channels=8,
            conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1)


def mmaction2_slowfast(wheel):
    with zipfile.ZipFile(wheel) as z:
        for name in ("resnet3d", "resnet3d_slowfast"):
            path = f"mmaction/models/backbones/{name}.py"
            src = z.read(path).decode()
            load_source(f"mmaction.models.backbones.{name}", src, f"{wheel}:{path}")
    cls = sys.modules["mmaction.models.backbones.resnet3d_slowfast"].ResNet3dSlowFast
    return cls(pretrained=None, resample_rate=4, speed_ratio=4, channel_ratio=8,
               slow_pathway=dict(SLOW), fast_pathway=dict(FAST))


def randomize(model, seed):
    """Random weights and BN statistics that keep a 101-layer net's activations O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            u = torch.rand(t.shape, generator=g, dtype=torch.float64)
            if name.endswith("running_var"):
                v = 0.5 + u
            elif name.endswith("running_mean") or name.endswith("bn.bias"):
                v = 0.2 * (u - 0.5)
            elif name.endswith("bn.weight"):
                v = 0.5 + 0.5 * u
            else:
                fan_in = t[0].numel()
                v = (u - 0.5) * (2 * 3 ** 0.5) * (1.0 / fan_in) ** 0.5
            t.copy_(v.to(t.dtype))


def features(pair, T_fast):
    slow, fast = pair
    fs = slow.mean(dim=(3, 4))
    fs = F.interpolate(fs, size=T_fast, mode="linear", align_corners=False)
    return torch.cat((fs, fast.mean(dim=(3, 4))), dim=1)


# ------------------------------------------------------------------ checks
def convert(pth, out):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"), pth,
                    out], check=True, stdout=subprocess.DEVNULL)


def ours(build, backbone, ckpt, clip_path, shape, out):
    exe = os.path.join(build, "tests", "interop_extract")
    res = subprocess.run([exe, json.dumps(backbone), ckpt, clip_path, *map(str, shape), out],
                         check=True, capture_output=True, text=True)
    info = json.loads(res.stdout)
    return torch.from_numpy(__import__("numpy").fromfile(out, dtype="float32")).reshape(
        info["shape"]).double(), info


def compare(what, got, ref):
    err = (got - ref).abs().max().item() / ref.abs().max().item()
    ok = err <= 1e-4
    print(f"{what}: features {list(ref.shape)}, max |ours - reference| / max |reference| = "
          f"{err:.2e} ({'ok' if ok else 'FAILED'}, goal 1e-4)")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--mmaction-whl", required=True)
    ap.add_argument("--opentad", help="an OpenTAD checkout (optional)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    torch.manual_seed(0)
    install_stand_ins()
    work = os.path.join(a.build, "interop")
    os.makedirs(work, exist_ok=True)
    shape = (1, a.frames, a.size, a.size)
    clip = torch.randn(1, 3, a.frames, a.size, a.size, generator=torch.Generator().manual_seed(1))
    clip_path = os.path.join(work, "clip.f32")
    clip.numpy().tofile(clip_path)

    mm = mmaction2_slowfast(a.mmaction_whl)
    randomize(mm, 7)
    mm.eval()
    state = OrderedDict(("backbone." + k, v) for k, v in mm.state_dict().items())
    state["cls_head.fc_cls.weight"] = torch.zeros(400, 2304)
    state["cls_head.fc_cls.bias"] = torch.zeros(400)
    pth = os.path.join(work, "mmaction2_slowfast_r101.pth")
    torch.save({"meta": {"mmaction2": "1.x stand-in build"}, "state_dict": state}, pth)
    st = os.path.join(work, "mmaction2_slowfast_r101.safetensors")
    convert(pth, st)
    with torch.no_grad():
        ref = features(mm.double()(clip.double()), a.frames)
    got, info = ours(a.build, {"preset": "slowfast_r101", "mode": "vanilla"}, st, clip_path,
                     shape, os.path.join(work, "ours_vanilla.f32"))
    ok = compare(f"mmaction2 ResNet3dSlowFast-101 vs re2tal vanilla ({info['unused_tensors']} "
                 "checkpoint tensors unused: heads and num_batches_tracked)", got, ref)

    if a.opentad:
        path = os.path.join(a.opentad, "opentad", "models", "backbones", "re2tal_slowfast.py")
        with open(path) as f:
            inv = load_source("opentad_re2tal_slowfast", f.read(), path)
        ot = inv.ResNet3dSlowFast_inv(pretrained=pth, pretrain_type="resnet_3d", resample_rate=4,
                                      speed_ratio=4, channel_ratio=8,
                                      slow_pathway=dict(SLOW, norm_eval=True),
                                      fast_pathway=dict(FAST, norm_eval=True))
        ot.init_weights()  # OpenTAD's own load_frm_resnet3d renaming
        ot.eval()
        ost = OrderedDict(("backbone." + k, v) for k, v in ot.state_dict().items())
        opth = os.path.join(work, "opentad_re2slowfast_r101.pth")
        torch.save({"state_dict": ost}, opth)
        osf = os.path.join(work, "opentad_re2slowfast_r101.safetensors")
        convert(opth, osf)
        with torch.no_grad():
            oref = features(ot.double()(clip.double()), a.frames)
        got, info = ours(a.build, {"preset": "slowfast_r101", "mode": "reversible"}, osf,
                         clip_path, shape, os.path.join(work, "ours_reversible.f32"))
        ok &= compare("OpenTAD ResNet3dSlowFast_inv-101 (rewired names) vs re2tal reversible",
                      got, oref)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
