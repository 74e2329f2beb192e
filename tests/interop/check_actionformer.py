"""Dev check behind `make interop` (not a unit test): re2tal's head against the ActionFormer
package (actionformer_release's PtTransformer, THUMOS-14 I3D configuration).

The ActionFormer side builds its model from the release's configs/thumos_i3d.yaml (through the
package's load_config), perturbs every parameter (so that each one matters), saves a checkpoint
the way its train.py does (nn.DataParallel names, {'epoch', 'state_dict', 'scheduler',
'optimizer', 'state_dict_ema'} through save_checkpoint), loads it back as its eval.py does
(state_dict_ema) and runs one video of random features. tools/convert_checkpoint.py converts
the checkpoint; tests/interop/actionformer_head.c runs our head with the matching options on the
same features. Compared: per-level classification logits and regression offsets (1e-5 relative
to the level's largest magnitude) and the detections after post-processing, in seconds (same
count, labels and order; segments and scores within 1e-4), with multiclass Soft-NMS (the
THUMOS setting) and with class-agnostic Soft-NMS + voting. Run with the interpreter that has
the `actionformer` package:
    PY tests/interop/check_actionformer.py --build build [--t-valid 1000] [--keep DIR]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")

THUMOS_I3D_YAML = """\
dataset_name: thumos
train_split: ['validation']
val_split: ['test']
dataset: {num_classes: 20, input_dim: 2048, feat_stride: 4, num_frames: 16,
          trunc_thresh: 0.5, crop_ratio: [0.9, 1.0], max_seq_len: 2304}
model: {fpn_type: identity, max_buffer_len_factor: 6.0, n_mha_win_size: 19}
opt: {learning_rate: 0.0001, epochs: 30, weight_decay: 0.05}
loader: {batch_size: 2}
train_cfg: {init_loss_norm: 100, clip_grad_l2norm: 1.0, cls_prior_prob: 0.01,
            center_sample: radius, center_sample_radius: 1.5}
test_cfg: {voting_thresh: 0.7, pre_nms_topk: 2000, max_seg_num: 200, min_score: 0.001,
           multiclass_nms: True}
"""
FPS = 30.0
LOGIT_RTOL = 1e-5
DET_TOL = 1e-4


def head_config(cfg, multiclass):
    """Our head config for ActionFormer's model and test_cfg (the options that match it)."""
    m, t = cfg["model"], cfg["test_cfg"]
    assert m["embd_dim"] == m["fpn_dim"] == m["head_dim"] and t["nms_method"] == "soft"
    return {"variant": "actionformer", "in_channels": m["input_dim"], "channels": m["embd_dim"],
            "n_classes": m["num_classes"], "max_seq_len": m["max_seq_len"],
            "arch": list(m["backbone_arch"]), "n_head": m["n_head"],
            "mha_win": m["n_mha_win_size"], "use_abs_pe": int(m["use_abs_pe"]),
            "path_pdrop": cfg["train_cfg"]["droppath"], "n_head_convs": m["head_num_layers"] - 1,
            "regression_range": [list(r) for r in m["regression_range"]],
            "pre_nms_thresh": t["pre_nms_thresh"], "pre_nms_topk": t["pre_nms_topk"],
            "pre_nms_per_level": 1, "duration_thresh": t["duration_thresh"],
            "clip_segments": 0, "nms_sigma": t["nms_sigma"], "nms_min_score": t["min_score"],
            "nms_multiclass": int(multiclass), "voting_thresh": t["voting_thresh"],
            "voting_iou_weight": 1, "max_seg_num": t["max_seg_num"], "remove_duplicates": 0}


def perturb(model, g):
    """Random values everywhere: LN affine, biases, layer scales, Scale, and a wider spread of
    classification logits (scores from ~1e-3 to ~0.9) and longer segments."""
    from actionformer.modeling.blocks import LayerNorm
    with torch.no_grad():
        for mn, mod in model.named_modules():
            for pn, p in mod.named_parameters(recurse=False):
                r = torch.randn(p.shape, generator=g)
                if isinstance(mod, LayerNorm):
                    p.copy_((1.0 if pn == "weight" else 0.0) + 0.2 * r)
                elif pn == "scale":  # AffineDropPath (1e-4) and the per-level Scale (1)
                    p.copy_(0.3 * r if "drop_path" in mn else 1.0 + 0.2 * r)
                elif pn == "bias":
                    p.add_(0.05 * r)
                else:
                    p.mul_(5.0 if mn.endswith("cls_head.cls_head.conv") else
                           3.0 if mn.endswith("offset_head.conv") else 1.0)
                    p.add_(0.01 * r)


def actionformer_side(work, t_valid, seed, python_nms):
    import actionformer.utils.nms
    if python_nms:  # its fallback when the C++ extension is missing
        actionformer.utils.nms.HAS_CPP_NMS = False
    from actionformer.core.config import load_config
    from actionformer.modeling import make_meta_arch
    from actionformer.utils import ModelEma, make_optimizer, make_scheduler, save_checkpoint
    yaml_path = os.path.join(work, "thumos_i3d.yaml")
    with open(yaml_path, "w") as f:
        f.write(THUMOS_I3D_YAML)
    cfg = load_config(yaml_path)
    torch.manual_seed(seed)  # the package's own init
    g = torch.Generator().manual_seed(seed)
    # train.py's way: model in DataParallel, EMA copy, optimizer and scheduler states
    model = make_meta_arch(cfg["model_name"], **cfg["model"])
    perturb(model, g)
    model = torch.nn.DataParallel(model, device_ids=cfg["devices"])
    model_ema = ModelEma(model)
    optimizer = make_optimizer(model, cfg["opt"])
    scheduler = make_scheduler(optimizer, cfg["opt"], 10)
    state = {"epoch": 1, "state_dict": model.state_dict(), "scheduler": scheduler.state_dict(),
             "optimizer": optimizer.state_dict(),
             "state_dict_ema": model_ema.module.state_dict()}
    save_checkpoint(state, False, file_folder=os.path.join(work, "ckpt"),
                    file_name="epoch_001.pth.tar")
    ckpt = os.path.join(work, "ckpt", "epoch_001.pth.tar")
    # eval.py's way: a fresh model loading state_dict_ema
    model = torch.nn.DataParallel(make_meta_arch(cfg["model_name"], **cfg["model"]),
                                  device_ids=cfg["devices"])
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)
                          ["state_dict_ema"])
    model.eval()
    feats = torch.randn(cfg["dataset"]["input_dim"], t_valid, generator=g)
    video = {"video_id": "v", "feats": feats, "fps": FPS,
             "duration": t_valid * cfg["dataset"]["feat_stride"] / FPS,
             "feat_stride": cfg["dataset"]["feat_stride"],
             "feat_num_frames": cfg["dataset"]["num_frames"]}
    outs = {}
    net = model.module
    hooks = [net.cls_head.register_forward_hook(lambda m, i, o: outs.__setitem__("cls", o)),
             net.reg_head.register_forward_hook(lambda m, i, o: outs.__setitem__("reg", o))]
    dets = {}
    with torch.no_grad():
        for multiclass in (True, False):
            net.test_multiclass_nms = multiclass
            r = model([video])[0]
            dets[multiclass] = np.concatenate(
                [r["segments"].numpy().reshape(-1, 2), r["scores"].numpy()[:, None],
                 r["labels"].numpy()[:, None].astype(np.float64)], 1)
    for h in hooks:
        h.remove()
    cls = [c[0].numpy() for c in outs["cls"]]
    reg = [o[0].numpy() for o in outs["reg"]]
    return cfg, ckpt, feats.numpy(), video, cls, reg, dets, actionformer.utils.nms.HAS_CPP_NMS


def ours(build, work, cfg, ckpt_st, feats, video, multiclass):
    out = os.path.join(work, "ours_mc" if multiclass else "ours_agn")
    os.makedirs(out, exist_ok=True)
    hj = os.path.join(out, "head.json")
    with open(hj, "w") as f:
        json.dump(head_config(cfg, multiclass), f)
    fp = os.path.join(work, "feats.f32")
    np.ascontiguousarray(feats, dtype=np.float32).tofile(fp)
    exe = os.path.join(build, "tests", "interop_af_head")
    cmd = [exe, hj, ckpt_st, fp, str(feats.shape[1]), str(FPS), str(video["feat_stride"]),
           str(video["feat_num_frames"]), repr(video["duration"]), out]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"interop_af_head failed ({res.returncode}): {res.stderr.strip()}")
    info = json.loads(res.stdout)
    T, K = cfg["model"]["max_seq_len"], cfg["model"]["num_classes"]
    cls = [np.fromfile(os.path.join(out, f"cls.{l}.f32"), np.float32).reshape(K, T >> l)
           for l in range(info["levels"])]
    reg = [np.fromfile(os.path.join(out, f"reg.{l}.f32"), np.float32).reshape(2, T >> l)
           for l in range(info["levels"])]
    dets = np.loadtxt(os.path.join(out, "dets.txt"), ndmin=2).reshape(-1, 4)
    return cls, reg, dets, info


def compare_dets(a, b):
    """(ok, text): same count, labels, order; segments and scores within DET_TOL."""
    if a.shape[0] != b.shape[0]:
        return False, f"{a.shape[0]} vs {b.shape[0]} detections"
    if a.shape[0] == 0:
        return False, "no detections (the check needs some)"
    bad_label = np.nonzero(a[:, 3] != b[:, 3])[0]
    seg = np.abs(a[:, :2] - b[:, :2]).max()
    score = np.abs(a[:, 2] - b[:, 2]).max()
    text = f"{a.shape[0]} dets, max |d seg| {seg:.2e} s, max |d score| {score:.2e}"
    if bad_label.size:
        i = bad_label[0]
        return False, text + f"; label differs first at rank {i}: {a[i]} vs {b[i]}"
    ok = seg <= DET_TOL and score <= DET_TOL
    if not ok:
        i = int(np.argmax(np.abs(a[:, :3] - b[:, :3]).max(1)))
        text += f"; worst rank {i}: ours {a[i]} vs ActionFormer {b[i]}"
    return ok, text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--t-valid", type=int, default=1000, help="valid positions of 2304")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="work in this folder and keep it")
    ap.add_argument("--python-nms", action="store_true",
                    help="ActionFormer's Python Soft-NMS fallback instead of its C++ kernel")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or tmp
        os.makedirs(work, exist_ok=True)
        cfg, ckpt, feats, video, af_cls, af_reg, af_dets, cpp_nms = actionformer_side(
            work, args.t_valid, args.seed, args.python_nms)
        st = os.path.join(work, "actionformer.safetensors")
        conv = subprocess.run([sys.executable, os.path.join(root, "tools", "convert_checkpoint.py"),
                               ckpt, st], capture_output=True, text=True)
        if conv.returncode != 0 or "ActionFormer state dict" not in conv.stdout:
            sys.exit(f"convert_checkpoint.py: {conv.stdout}{conv.stderr}")
        rows, all_ok = [], True
        for multiclass in (True, False):
            cls, reg, dets, info = ours(args.build, work, cfg, st, feats, video, multiclass)
            if multiclass:  # the model part is the same in both runs
                if info["unused_tensors"]:
                    all_ok = False
                    rows.append(("checkpoint", False, f"{info['unused_tensors']} tensors unused"))
                for name, mine, ref in (("cls", cls, af_cls), ("reg", reg, af_reg)):
                    for l, (x, y) in enumerate(zip(mine, ref)):
                        rel = np.abs(x - y).max() / max(np.abs(y).max(), 1e-30)
                        ok = rel <= LOGIT_RTOL
                        all_ok &= ok
                        rows.append((f"{name} level {l} {list(y.shape)}", ok,
                                     f"max |diff| / max |ref| = {rel:.2e}"))
            ok, text = compare_dets(dets, af_dets[multiclass])
            all_ok &= ok
            what = "multiclass Soft-NMS" if multiclass else "class-agnostic Soft-NMS + voting"
            rows.append((f"detections, {what}", ok,
                         text + f" ({info['decoded']} decoded)"))
    print(f"ActionFormer package vs re2tal head: THUMOS-14 I3D config, T = {args.t_valid} valid "
          f"of {cfg['model']['max_seq_len']}, soft-NMS {'C++' if cpp_nms else 'Python'} kernel")
    for name, ok, text in rows:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<44} {text}")
    print("PASS" if all_ok else "FAIL")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
