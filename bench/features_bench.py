"""bench/features_bench.py BUILD DATA ROUNDS STEPS THREADS: training the head alone on
pre-extracted features at ActionFormer's THUMOS-14 I3D shape (2048 channels, windows of 2304,
20 classes, batch 2, head 512 with local attention 19, drop-path 0.1, AdamW, clipping, EMA):
re2tal (`re2tal train configs/thumos14_i3d_features.json`, its feature batch source and head
step) against the ActionFormer package's own training step (actionformer 1.5.0: its dataset,
LocPointTransformer, optimizer, scheduler and ModelEma, the loop of its train_one_epoch) in
PyTorch CPU, alternating in the same run. Both read the same .npy files every step (ours with a
prefetch thread, ActionFormer with one loader worker). Throughput: videos per second over the
updates after the first (start-up and the first update's allocations left out). Prints one JSON
line per measurement and the per-pair ratios with their median."""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

N_VIDEOS, T_FILE, C, K, BATCH = 16, 2400, 2048, 20, 2


def make_data(data):
    """16 [T, C] float32 files of 2400 positions (longer than a 2304 window) + annotations."""
    if os.path.exists(os.path.join(data, "anno.json")):
        return
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(data, "feats"), exist_ok=True)
    db = {}
    for i in range(N_VIDEOS):
        vid = "video_validation_%03d" % i
        np.save(os.path.join(data, "feats", vid + ".npy"),
                rng.standard_normal((T_FILE, C)).astype(np.float32))
        dur = T_FILE * 4 / 30.0
        segs = []
        for k in range(12):
            s = float(rng.uniform(0, dur - 20))
            segs.append({"segment": [round(s, 2), round(s + float(rng.uniform(2, 15)), 2)],
                         "label": "class_%02d" % ((i + k) % K), "label_id": (i + k) % K})
        db[vid] = {"subset": "validation", "duration": dur, "fps": 30.0, "annotations": segs}
    with open(os.path.join(data, "anno.json"), "w") as f:
        json.dump({"database": db}, f)


def rate(stamps):
    return (len(stamps) - 1) * BATCH / (stamps[-1] - stamps[0])


def run_ours(build, repo, data, steps, threads):
    cmd = [os.path.join(build, "app", "re2tal"), "--threads", str(threads), "train",
           os.path.join(repo, "configs", "thumos14_i3d_features.json"),
           "--set", "data.annotations=" + os.path.join(data, "anno.json"),
           "--set", "data.features=" + os.path.join(data, "feats"),
           "--set", "data.train_subset=validation", "--set", "train.out_dir=" +
           os.path.join(data, "run"), "--set", "optim.epochs=1", "--set", "train.eval_every=0",
           "--set", "train.max_steps_per_epoch=%d" % steps, "--log-json", "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stamps = [time.monotonic() for line in p.stdout if '"step"' in line]
    if p.wait() != 0 or len(stamps) < 2:
        sys.exit("re2tal train failed: " + " ".join(cmd))
    return rate(stamps)


def run_actionformer(data, steps, threads):
    from copy import deepcopy
    from actionformer.core.config import DEFAULTS, _merge, _update_config
    from actionformer.datasets import make_dataset, make_data_loader
    from actionformer.modeling import make_meta_arch
    from actionformer.utils import make_optimizer, make_scheduler, ModelEma
    torch.set_num_threads(threads)
    cfg = {  # ActionFormer's configs/thumos_i3d.yaml
        "dataset_name": "thumos", "train_split": ["validation"], "val_split": ["test"],
        "dataset": {"json_file": os.path.join(data, "anno.json"),
                    "feat_folder": os.path.join(data, "feats"), "file_prefix": None,
                    "file_ext": ".npy", "num_classes": K, "input_dim": C, "feat_stride": 4,
                    "num_frames": 16, "trunc_thresh": 0.5, "crop_ratio": [0.9, 1.0],
                    "max_seq_len": 2304},
        "model": {"fpn_type": "identity", "max_buffer_len_factor": 6.0, "n_mha_win_size": 19},
        "opt": {"learning_rate": 0.0001, "epochs": 30, "weight_decay": 0.05},
        "loader": {"batch_size": BATCH},
        "train_cfg": {"init_loss_norm": 100, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01,
                      "center_sample": "radius", "center_sample_radius": 1.5},
    }
    _merge(deepcopy(DEFAULTS), cfg)
    cfg = _update_config(cfg)
    dataset = make_dataset(cfg["dataset_name"], True, cfg["train_split"], **cfg["dataset"])
    cfg["model"]["train_cfg"]["head_empty_cls"] = dataset.get_attributes()["empty_label_ids"]
    loader = make_data_loader(dataset, True, torch.Generator().manual_seed(0), BATCH, 1)
    model = make_meta_arch(cfg["model_name"], **cfg["model"])
    optimizer = make_optimizer(model, cfg["opt"])
    scheduler = make_scheduler(optimizer, cfg["opt"], len(loader))
    ema = ModelEma(model)
    model.train()
    stamps = []
    while len(stamps) < steps:
        for video_list in loader:  # ActionFormer's train_one_epoch, less its CUDA sync
            optimizer.zero_grad(set_to_none=True)
            losses = model(video_list)
            losses["final_loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["train_cfg"]["clip_grad_l2norm"])
            optimizer.step()
            scheduler.step()
            ema.update(model)
            stamps.append(time.monotonic())
            if len(stamps) == steps:
                break
    return rate(stamps)


def main():
    build, data = sys.argv[1], sys.argv[2]
    rounds, steps, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    make_data(data)
    ratios = []
    for r in range(rounds):
        ours = run_ours(build, repo, data, steps, threads)
        # the reference in a fresh process, so neither side inherits the other's allocations
        af = float(subprocess.check_output(
            [sys.executable, os.path.abspath(__file__), "--actionformer", data, str(steps),
             str(threads)], text=True).strip().splitlines()[-1])
        ratios.append(ours / af)
        print(json.dumps({"round": r + 1, "re2tal_videos_per_s": round(ours, 4),
                          "actionformer_videos_per_s": round(af, 4),
                          "ratio": round(ours / af, 3), "threads": threads, "steps": steps,
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                          "torch": torch.__version__}), flush=True)
    print("feature training, THUMOS I3D shape: re2tal / ActionFormer per pair %s, median x%.2f "
          "(goal >= 1.5)" % (", ".join("%.2f" % x for x in ratios), statistics.median(ratios)))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--actionformer":
        print(run_actionformer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        main()
