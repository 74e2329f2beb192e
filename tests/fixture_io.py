"""Writes test fixtures as safetensors files (float32), readable by nn/safetensors.c.

No dependency on the `safetensors` package (not in Debian 12): the format is small."""
import json
import os
import struct

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def save(name, tensors, **meta):
    """Writes FIXTURES/<name>.safetensors. tensors: {name: tensor or float}; meta: recorded in
    __metadata__ (seed, shapes, ...) as strings."""
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for key, value in tensors.items():
        t = torch.as_tensor(value).detach().to(torch.float32).contiguous().cpu()
        raw = t.numpy().tobytes()
        header[key] = {"dtype": "F32", "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, name + ".safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    return path
