#!/usr/bin/python3
"""Converts a PyTorch checkpoint (.pth: mmaction2 / Video-Swin / OpenTAD) to safetensors for
`re2tal`: every tensor of the state dict (under "state_dict", "model" or the top level), as
float32 (int64 buffers such as relative_position_index kept as I64). Names stay as they are
(re2tal maps mmaction2's ordinary names and OpenTAD's rewired ones itself: Swin `inv_block.Fm/Gm`,
SlowFast `slow_path.layer1.blocks.0.Fm`, `...blocks.{i}.inv_block.Fm`, `...blocks.0.downsample`),
except two wrappers: DDP's leading "module." is dropped, and an OpenTAD detector's
"backbone.model.backbone." (its BackboneWrapper around mmaction2's recognizer) becomes
"backbone.". Usage:
    tools/convert_checkpoint.py IN.pth OUT.safetensors"""
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


def main(src, dst):
    ckpt = torch.load(src, map_location="cpu")
    for key in ("state_dict", "model", "module"):
        if isinstance(ckpt, dict) and key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
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
