#!/usr/bin/python3
"""Converts a PyTorch checkpoint (.pth: mmaction2 / Video-Swin / OpenTAD / ActionFormer) to
safetensors for `re2tal`: every tensor of one state dict, as float32 (int64 buffers such as
relative_position_index kept as I64). Names stay as they are (re2tal maps mmaction2's ordinary
names and OpenTAD's rewired ones itself: Swin `inv_block.Fm/Gm`, SlowFast
`slow_path.layer1.blocks.0.Fm`, `...blocks.{i}.inv_block.Fm`, `...blocks.0.downsample`), except
two wrappers: DDP's leading "module." is dropped, and an OpenTAD detector's
"backbone.model.backbone." (its BackboneWrapper around mmaction2's recognizer) becomes
"backbone.". Which state dict:
  --weights auto   (default) "state_dict_ema" when the file has it (OpenTAD and ActionFormer
                   evaluate their EMA weights: configs with ema=True), else "state_dict",
                   else "model" / "module" / the top level
  --weights ema    "state_dict_ema" (an error if absent)
  --weights model  "state_dict" (the live weights, not the EMA ones)
An ActionFormer (actionformer_release) detector's state dict is recognised by its
"cls_head.cls_head.conv.weight" and renamed to the head's OpenTAD names, LayerNorms (1, C, 1)
-> (C) (its model then needs "variant": "actionformer" in the head config).
The choice is printed and kept in the file's metadata ("weights", "ema_available"), where
`re2tal import` reads it. Usage:
    tools/convert_checkpoint.py IN.pth OUT.safetensors [--weights auto|ema|model]"""
import json
import re
import struct
import sys

import torch


def plain_name(name):
    if name.startswith("module."):
        name = name[len("module."):]
    if name.startswith("backbone.model.backbone."):
        name = "backbone." + name[len("backbone.model.backbone."):]
    return name


def pick_state(ckpt, weights):
    """(state dict, its key, whether EMA weights were available)."""
    if not isinstance(ckpt, dict):
        sys.exit(f"not a checkpoint dictionary: {type(ckpt).__name__}")
    has_ema = isinstance(ckpt.get("state_dict_ema"), dict)
    if weights == "ema" and not has_ema:
        sys.exit("--weights ema: the file has no 'state_dict_ema' (keys: %s)" % ", ".join(ckpt))
    if weights in ("ema", "auto") and has_ema:
        return ckpt["state_dict_ema"], "state_dict_ema", has_ema
    for key in ("state_dict", "model", "module"):
        if isinstance(ckpt.get(key), dict):
            return ckpt[key], key, has_ema
    if weights == "model":
        sys.exit("--weights model: the file has no 'state_dict' (keys: %s)" % ", ".join(ckpt))
    return ckpt, "(top level)", has_ema


def actionformer_to_opentad(sd):
    """ActionFormer's PtTransformer names -> re2tal's (OpenTAD's) head names, or sd unchanged
    when it is not an ActionFormer state dict. Fails naming any tensor it cannot place."""
    if "cls_head.cls_head.conv.weight" not in sd:
        return sd
    rules = [(r"backbone\.embd\.(\d+)\.conv\.", r"projection.embed.\1.conv."),
             (r"backbone\.embd_norm\.(\d+)\.", r"projection.embed.\1.norm."),
             (r"backbone\.(stem|branch)\.", r"projection.\1."),
             (r"neck\.fpn_norms\.", r"neck.fpn_norms."),
             (r"(cls|reg)_head\.head\.(\d+)\.conv\.", r"rpn_head.\1_convs.\2.conv."),
             (r"(cls|reg)_head\.norm\.(\d+)\.", r"rpn_head.\1_convs.\2.norm."),
             (r"cls_head\.cls_head\.conv\.", r"rpn_head.cls_head."),
             (r"reg_head\.offset_head\.conv\.", r"rpn_head.reg_head."),
             (r"reg_head\.scale\.", r"rpn_head.scale.")]
    out = {}
    for name, t in sd.items():
        for pat, rep in rules:
            if re.match(pat, name):
                new = re.sub("^" + pat, rep, name)
                break
        else:
            sys.exit(f"convert_checkpoint: ActionFormer tensor {name!r}: no re2tal name (only "
                     "the convTransformer backbone, identity neck and PtTransformer heads map)")
        is_norm = re.search(r"(\.norm|_norm|\.ln[12]|fpn_norms\.\d+)\.(weight|bias)$", new)
        if is_norm and t.dim() == 3:
            t = t.reshape(-1)
        out[new] = t
    print(f"ActionFormer state dict: {len(out)} tensors renamed to re2tal's head names "
          "(set \"variant\": \"actionformer\" in the head config)")
    return out


def main(src, dst, weights):
    ckpt = torch.load(src, map_location="cpu")
    state, key, has_ema = pick_state(ckpt, weights)
    state = actionformer_to_opentad({plain_name(k): v for k, v in state.items()})
    meta = {"source": src, "weights": key, "ema_available": "yes" if has_ema else "no"}
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, t in state.items():
        if not torch.is_tensor(t):
            continue
        name = plain_name(name)
        t = t.detach().cpu().contiguous()
        if t.is_floating_point():
            t, dtype = t.to(torch.float32), "F32"
        else:
            t, dtype = t.to(torch.int64), "I64"
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for raw in blobs:
            f.write(raw)
    note = ""
    if key == "state_dict" and has_ema:
        note = " (the file also has EMA weights, which OpenTAD evaluates: --weights ema)"
    elif key == "state_dict_ema":
        note = " (EMA weights, as OpenTAD evaluates; --weights model for the live ones)"
    print(f"{src} -> {dst}: {len(header) - 1} tensors from '{key}'{note}")


if __name__ == "__main__":
    args = sys.argv[1:]
    weights = "auto"
    if "--weights" in args:
        i = args.index("--weights")
        if i + 1 >= len(args) or args[i + 1] not in ("auto", "ema", "model"):
            sys.exit(__doc__)
        weights = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], weights)
