#!/usr/bin/python3
"""Converts a PyTorch checkpoint (.pth: mmaction2 / Video-Swin / OpenTAD) to safetensors for
`re2tal`: every tensor of the state dict (under "state_dict", "model" or the top level), as
float32 (int64 buffers such as relative_position_index kept as I64). Names stay as they are
(re2tal maps mmaction2's ordinary names and OpenTAD's rewired ones itself: Swin `inv_block.Fm/Gm`,
SlowFast `slow_path.layer1.blocks.0.Fm`, `...blocks.{i}.inv_block.Fm`, `...blocks.0.downsample`),
except two wrappers: DDP's leading "module." is dropped, and an OpenTAD detector's
"backbone.model.backbone." (its BackboneWrapper around mmaction2's recognizer) becomes
"backbone.". An ActionFormer (actionformer_release) detector's state dict is recognised by its
"cls_head.cls_head.conv.weight" and renamed to the head's OpenTAD names, LayerNorms (1, C, 1)
-> (C) (its model then needs "variant": "actionformer" in the head config). Usage:
    tools/convert_checkpoint.py IN.pth OUT.safetensors"""
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


def main(src, dst):
    ckpt = torch.load(src, map_location="cpu")
    for key in ("state_dict", "model", "module"):
        if isinstance(ckpt, dict) and key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
    ckpt = actionformer_to_opentad({plain_name(k): v for k, v in ckpt.items()})
    header, blobs, offset = {"__metadata__": {"source": src}}, [], 0
    for name, t in ckpt.items():
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
    print(f"{src} -> {dst}: {len(header) - 1} tensors")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
