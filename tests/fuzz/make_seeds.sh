#!/usr/bin/env bash
# tests/fuzz/make_seeds.sh: writes the seed corpora of the fuzz targets that are generated (the
# committed copies are what the fuzzers use; run this to remake them after a format changes).
# Needs the ffmpeg CLI and python3 (dev machines only: seeds are committed, CI never runs it).
# A seed of a target that picks its reader by the first byte starts with that byte.
set -euo pipefail
cd "$(dirname "$0")"
F=../fixtures

# ---- data_text: 0 THUMOS folder (parts at NULs), 1 class list, 2 CSV class list, 3 block list,
# ---- 4 BSN video table
mkdir -p data_text
{ printf '\0'; cat $F/eval_th14/Alpha_test.txt; printf '\0'; cat $F/eval_th14/Beta_test.txt
  printf '\0'; cat $F/eval_th14/Ambiguous_test.txt; } > data_text/thumos
printf '\1Jump\nRun\n# comment\n\nSwim\n' > data_text/classes_plain
printf '\0017 Run\n9 Jump\n12 Swim\n' > data_text/classes_numbered
printf '\1["Run", "Jump"]\n' > data_text/classes_json
printf '\2index,name\n0,Run\n1,Jump\n' > data_text/classes_csv
printf '\3v_a\n# not this one\nc\n' > data_text/blocked_text
printf '\3["b", "v_c"]' > data_text/blocked_json
printf '\4video,numFrame,seconds,fps,rfps,subset,featureFrame\nv_a,600,20.0,30,30,validation,592\nb,90,3.0,30,30,training,80\n' \
    > data_text/video_table

# ---- eval_gt: 0 ActivityNet JSON, 1 THUMOS folder (detclasslist, A, B, Ambiguous at NULs)
mkdir -p eval_gt
{ printf '\0'; cat $F/eval_worked_gt.json; } > eval_gt/worked.json
{ printf '\0'; cat $F/eval_diff_small_a_gt.json; } > eval_gt/small.json
printf '\1''7 A\n9 B\n\0video_test_0000004 1.0 5.5\nvideo_test_0000007 2 3\n\0video_test_0000004 8 9\n\0video_test_0000007 0 1\n' \
    > eval_gt/thumos

# ---- app_config: 0 run config, 1 classifier file
mkdir -p app_config
for c in ../../configs/*.json; do { printf '\0'; cat "$c"; } > "app_config/$(basename "$c")"; done
printf '\0{"data": {"sampler": "resize", "frames": 16}, "backbone": {"preset": "swin_small_test", "depths": [2, 2], "heads": [1, 2]}, "head": {"channels": 32, "arch": [2, 1, 2], "duration_thresh": 0}, "optim": {"epochs": 3, "lr_head": 1e-3}, "eval": {"tiou": [0.3, 0.5]}}' \
    > app_config/tiny.json
printf '\1{"class": ["Run", "Jump"], "results": {"a": [0.25, 0.75], "v_b": [1, 0]}}' \
    > app_config/classifier.json

# ---- nn_safetensors and heads_npy: small files of each dtype and layout
mkdir -p nn_safetensors heads_npy
/usr/bin/python3 - <<'EOF'
import json, struct
import numpy as np

def safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

w = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
b = np.array([1.5, -2, 0.25], dtype=np.float32)
safetensors("nn_safetensors/f32.safetensors", {"w": ("F32", w), "b": ("F32", b)}, {"epoch": "3"})
safetensors("nn_safetensors/f16_bf16.safetensors",
            {"w": ("F16", w.astype(np.float16)),
             "b": ("BF16", (b.view(np.uint32) >> 16).astype(np.uint16))})
safetensors("nn_safetensors/ints.safetensors",
            {"idx": ("I64", np.array([0, 5, -3], dtype=np.int64)),
             "n": ("I32", np.array([[1, 2]], dtype=np.int32)),
             "d": ("F64", np.array([0.5], dtype=np.float64)),
             "scalar": ("F32", np.array(3.0, dtype=np.float32))})
safetensors("nn_safetensors/nonfinite.safetensors",
            {"w": ("F32", np.array([[1, np.nan, 2], [np.inf, 0, -np.inf]], dtype=np.float32)),
             "b": ("F32", b)})
safetensors("nn_safetensors/renamed.safetensors",
            {"backbone.w": ("F32", w), "other": ("F32", b)})

def npy(path, arr, fortran=False, version=1):
    d = {"descr": arr.dtype.str, "fortran_order": fortran, "shape": arr.shape}
    h = repr(d).encode()
    pre = 10 if version == 1 else 12
    h += b" " * (-(pre + len(h) + 1) % 64) + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]))
        f.write(struct.pack("<H" if version == 1 else "<I", len(h)) + h)
        f.write((np.asfortranarray(arr) if fortran else arr).tobytes(order="F" if fortran else "C"))

x = (np.arange(24, dtype=np.float32).reshape(6, 4) - 12) / 5
npy("heads_npy/tc_f4.npy", x)
npy("heads_npy/ct_f4.npy", x.T.copy())
npy("heads_npy/tc_f2.npy", x.astype(np.float16))
npy("heads_npy/fortran.npy", x, fortran=True)
npy("heads_npy/v2.npy", x[:, :1].copy(), version=2)
EOF

# ---- video: small files of the containers and codecs a dataset holds, plus hostile ones
mkdir -p video
src="-f lavfi -i testsrc=size=16x16:rate=10:duration=0.5"
ff() { ffmpeg -v error -y $src "$@"; }
ff -c:v libx264 -g 3 -bf 2 -pix_fmt yuv420p video/h264.mp4
ff -c:v libx264 -g 3 -pix_fmt yuv420p -movflags +faststart video/faststart.mp4
head -c 1500 video/faststart.mp4 > video/faststart_cut.mp4
ff -c:v libx264 -pix_fmt yuv444p video/h264_444.mkv
ff -c:v libvpx -b:v 50k video/vp8.webm
ff -c:v mpeg2video -g 3 -f mpegts video/mpeg2.ts
ff -c:v mpeg2video -f vob video/mpeg2.mpg
ff -c:v mjpeg video/mjpeg.avi
ff -c:v mpeg4 video/mpeg4.mov
ff -c:v gif video/anim.gif
ff -c:v rawvideo -pix_fmt yuv420p -f nut video/raw.nut
ff -c:v libx264 -pix_fmt yuv420p -metadata:s:v rotate=90 video/rotated.mp4
ff -c:v libx264 -pix_fmt yuv420p -vf "setpts='N/10/TB+if(gte(N,3),2/TB,0)'" -fps_mode passthrough \
    video/vfr.mkv
/usr/bin/python3 - <<'EOF'
# a transport stream with one frame's PTS pushed 5000 s past the end (tests/test_decode_hostile.c)
data = bytearray(open("video/mpeg2.ts", "rb").read())
pes = []
for off in range(0, len(data) - 187, 188):
    p = data[off:off + 188]
    if p[0] != 0x47 or not p[1] & 0x40 or not p[3] & 0x10:
        continue
    i = 4 + (1 + p[4] if p[3] & 0x20 else 0)
    if p[i:i + 3] == b"\0\0\1" and 0xE0 <= p[i + 3] <= 0xEF and p[i + 7] & 0x80:
        pes.append(off + i)
at = pes[len(pes) // 2] + 9
b = data[at:at + 5]
v = ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
v = (v + 5000 * 90000) & ((1 << 33) - 1)
data[at:at + 5] = bytes([(b[0] & 0xF0) | ((v >> 30) & 7) << 1 | 1, (v >> 22) & 0xFF,
                         ((v >> 15) & 0x7F) << 1 | 1, (v >> 7) & 0xFF, (v & 0x7F) << 1 | 1])
open("video/mpeg2_flipped_pts.ts", "wb").write(data)
EOF
du -sh .
