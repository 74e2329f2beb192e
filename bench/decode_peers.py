"""Python peers for bench/run_decode.sh: the training path (decode every frame, resize to short
side SIZE, normalise to float CHW with the ImageNet mean/std re2tal uses) and the latency of
random 16-frame clips at the native rate, through torchcodec's CPU decoder (its own Resize
transform inside the decoder, the float normalise in torch), decord (its resize inside the
decoder, normalise in numpy) or PyAV (to_ndarray with a size: libswscale to rgb24, normalise in
numpy). Prints one JSON line: fps and fps_cpu (process CPU time) of the best of REPEAT passes,
clip_ms and clip_cpu_ms (medians over CLIPS random clips on one open decoder).
usage: decode_peers.py {torchcodec|decord|pyav} VIDEO THREADS [--size 224] [--repeat 2]
       [--clips 30]"""
import argparse
import json
import random
import time

import numpy as np

MEAN = np.array([123.675, 116.28, 103.53], np.float32).reshape(1, 3, 1, 1)
INV_STD = (1 / np.array([58.395, 57.12, 57.375], np.float32)).reshape(1, 3, 1, 1)
CLIP, BATCH = 16, 32


def out_size(w, h, size):
    """Short side to `size`, the other side rounded (re2tal's tal_transform_resize_center)."""
    return (round(w * size / h), size) if h <= w else (size, round(h * size / w))


class TorchCodec:
    def __init__(self, path, threads, size):
        import torch
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        # the normalise of a 32-frame batch on one torch thread: measured faster than two
        # here (the decoder's own threads are num_ffmpeg_threads)
        torch.set_num_threads(1)
        self.torch = torch
        probe = VideoDecoder(path)
        w, h = probe.metadata.width, probe.metadata.height
        self.ow, self.oh = out_size(w, h, size)
        self.dec = VideoDecoder(path, num_ffmpeg_threads=threads,
                                transforms=[Resize((self.oh, self.ow))])
        self.n = self.dec.metadata.num_frames
        self.mean = torch.from_numpy(MEAN)
        self.inv = torch.from_numpy(INV_STD)
        self.version = __import__("torchcodec").__version__

    def normalise(self, u8):  # [N, 3, H, W] uint8 -> float
        return (u8.float() - self.mean) * self.inv

    def read_all(self):
        count = 0
        for s in range(0, self.n, BATCH):
            x = self.normalise(self.dec.get_frames_in_range(s, min(s + BATCH, self.n)).data)
            count += x.shape[0]
        return count

    def clip(self, start):
        return self.normalise(self.dec.get_frames_in_range(start, start + CLIP).data)


class Decord:
    def __init__(self, path, threads, size):
        import decord

        probe = decord.VideoReader(path)
        h, w = probe[0].shape[:2]
        self.ow, self.oh = out_size(w, h, size)
        self.vr = decord.VideoReader(path, ctx=decord.cpu(0), width=self.ow, height=self.oh,
                                     num_threads=threads)
        self.n = len(self.vr)
        self.version = decord.__version__

    @staticmethod
    def normalise(hwc):  # [N, H, W, 3] uint8 -> [N, 3, H, W] float
        return (hwc.transpose(0, 3, 1, 2).astype(np.float32) - MEAN) * INV_STD

    def read_all(self):
        count = 0
        for s in range(0, self.n, BATCH):
            x = self.normalise(self.vr.get_batch(list(range(s, min(s + BATCH, self.n)))).asnumpy())
            count += x.shape[0]
        return count

    def clip(self, start):
        return self.normalise(self.vr.get_batch(list(range(start, start + CLIP))).asnumpy())


class PyAV:
    def __init__(self, path, threads, size):
        import av

        self.av, self.path, self.threads = av, path, threads
        self.c = av.open(path)
        s = self.c.streams.video[0]
        s.thread_type = "AUTO"
        s.thread_count = threads
        self.s = s
        w, h = s.codec_context.width, s.codec_context.height
        self.ow, self.oh = out_size(w, h, size)
        self.n = s.frames
        self.version = av.__version__

    def rgb(self, frame):
        return frame.to_ndarray(width=self.ow, height=self.oh, format="rgb24")

    def read_all(self):
        self.c.seek(0)
        count = 0
        for f in self.c.decode(self.s):
            x = Decord.normalise(self.rgb(f)[None])
            count += x.shape[0]
        return count

    def clip(self, start):
        # seek to the keyframe at or before frame `start`, decode forward to the clip
        s = self.s
        pts0 = int(start / float(s.average_rate) / s.time_base)
        self.c.seek(pts0, stream=s, backward=True, any_frame=False)
        out = []
        for f in self.c.decode(s):
            if f.pts is None or f.pts + 1 < pts0:  # before the clip (+1: rounding of pts0)
                continue
            out.append(self.rgb(f))
            if len(out) == CLIP:
                break
        return Decord.normalise(np.stack(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["torchcodec", "decord", "pyav"])
    ap.add_argument("video")
    ap.add_argument("threads", type=int)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--clips", type=int, default=30)
    a = ap.parse_args()
    r = {"torchcodec": TorchCodec, "decord": Decord, "pyav": PyAV}[a.peer](a.video, a.threads,
                                                                         a.size)
    best, best_cpu, frames = 1e30, 1e30, 0
    for _ in range(a.repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        frames = r.read_all()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    rng = random.Random(2024)
    lat, lat_cpu = [], []
    for _ in range(a.clips):
        start = rng.randrange(0, r.n - CLIP)
        c0, t0 = time.process_time(), time.perf_counter()
        x = r.clip(start)
        lat.append(time.perf_counter() - t0)
        lat_cpu.append(time.process_time() - c0)
        assert x.shape[0] == CLIP and x.shape[1] == 3, x.shape
    print(json.dumps({"peer": a.peer, "version": r.version, "threads": a.threads,
                      "frames": frames, "out": [r.oh, r.ow], "fps": round(frames / best, 1),
                      "fps_cpu": round(frames / best_cpu, 1),
                      "clip_ms": round(1000 * float(np.median(lat)), 2),
                      "clip_cpu_ms": round(1000 * float(np.median(lat_cpu)), 2)}))


if __name__ == "__main__":
    main()
