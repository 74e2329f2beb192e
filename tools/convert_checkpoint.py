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
The choice is printed and kept in the file's metadata ("weights", "ema_available"), where
`re2tal import` reads it. Usage:
    tools/convert_checkpoint.py IN.pth OUT.safetensors [--weights auto|ema|model]"""
import json
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


def main(src, dst, weights):
    ckpt = torch.load(src, map_location="cpu")
    state, key, has_ema = pick_state(ckpt, weights)
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
