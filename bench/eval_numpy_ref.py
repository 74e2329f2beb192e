#!/usr/bin/env python3
"""bench/eval_numpy_ref.py: an independent numpy port of the three reference TAL evaluators,
written from shared/spec/eval-reference.md (no code copied): the official ActivityNet
ANETdetection (numpy-only: same array operations, same reductions), OpenTAD's variant, and the
THUMOS-14 MATLAB kit. It is used to compute the expectations committed in
tests/test_eval_reference.c and as the timing baseline in bench/run_eval.sh.

  eval_numpy_ref.py --gt GT.json --pred PRED(.json|.txt) [--classlist detclasslist.txt]
                    [--subset S] [--tiou a,b,c] [--protocol activitynet|opentad|thumos14]
                    [--ties stable|official] [--hex] [--proposals MAX_AVG]
  eval_numpy_ref.py --write-npsort-cases tests/fixtures/eval_npsort_cases.txt
Prints one line per threshold (`tiou mAP`) and `average X`; --hex adds float.hex values.
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def load_gt_json(path, subset):
    with open(path) as f:
        data = json.load(f)
    db = data["database"] if "database" in data else data
    vids, t0, t1, lab = [], [], [], []
    classes = {}
    for vid, v in db.items():
        if v.get("subset") != subset:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in classes:
                classes[ann["label"]] = len(classes)
            vids.append(vid)
            t0.append(float(ann["segment"][0]))
            t1.append(float(ann["segment"][1]))
            lab.append(classes[ann["label"]])
    return dict(video=vids, t0=np.array(t0), t1=np.array(t1), label=np.array(lab, dtype=np.int64),
                classes=classes, amb={})


def load_gt_folder(folder, subset):
    sub = "val" if subset == "validation" else subset
    ids = {}
    names = []
    with open(os.path.join(folder, "detclasslist.txt")) as f:
        for line in f:
            if line.strip():
                i, n = line.split()
                ids[int(i)] = n
                names.append(n)
    vids, t0, t1, lab = [], [], [], []
    classes = {n: k for k, n in enumerate(names)}
    for n in names:
        with open(os.path.join(folder, "%s_%s.txt" % (n, sub))) as f:
            for line in f:
                p = line.split()
                if p:
                    vids.append(p[0]); t0.append(float(p[1])); t1.append(float(p[2]))
                    lab.append(classes[n])
    amb = {}
    with open(os.path.join(folder, "Ambiguous_%s.txt" % sub)) as f:
        for line in f:
            p = line.split()
            if p:
                amb.setdefault(p[0], []).append((float(p[1]), float(p[2])))
    return dict(video=vids, t0=np.array(t0), t1=np.array(t1), label=np.array(lab, dtype=np.int64),
                classes=classes, amb=amb, classid=ids)


def load_pred(path, classlist):
    vids, t0, t1, lab, sc = [], [], [], [], []
    if path.endswith(".json"):
        with open(path) as f:
            res = json.load(f)["results"]
        for vid, dets in res.items():
            for r in dets:
                vids.append(vid); lab.append(r["label"]); sc.append(float(r["score"]))
                t0.append(float(r["segment"][0])); t1.append(float(r["segment"][1]))
    else:
        ids = {}
        with open(classlist) as f:
            for line in f:
                if line.strip():
                    i, n = line.split()
                    ids[int(i)] = n
        with open(path) as f:
            for line in f:
                p = line.split()
                if not p:
                    continue
                v = p[0]
                for ext in (".mpeg", ".mp4"):
                    if v.endswith(ext):
                        v = v[: -len(ext)]
                vids.append(v); t0.append(float(p[1])); t1.append(float(p[2]))
                lab.append(ids[int(p[3])]); sc.append(float(p[4]))
    return dict(video=vids, t0=np.array(t0), t1=np.array(t1), label=lab, score=np.array(sc))


def segment_iou(seg, cand, clip):
    tt1 = np.maximum(seg[0], cand[:, 0])
    tt2 = np.minimum(seg[1], cand[:, 1])
    inter = (tt2 - tt1).clip(0)
    union = (cand[:, 1] - cand[:, 0]) + (seg[1] - seg[0]) - inter
    if clip:
        union = union.clip(1e-8)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter.astype(float) / union


def interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def match_detection(tp, fp, lock, idx, tiou, gt_ids, thresholds):
    """The official greedy step for ranked detection `idx` against its video's GT (`tiou`, GT
    numbers `gt_ids`): at each threshold the first GT in tiou.argsort()[::-1] order that is not
    locked becomes its TP, unless a tIoU below the threshold comes first (then, or when all are
    locked, an FP)."""
    js = tiou.argsort()[::-1]
    for t, th in enumerate(thresholds):
        for j in js:
            if tiou[j] < th:
                fp[t, idx] = 1
                break
            if lock[t, gt_ids[j]] >= 0:
                continue
            tp[t, idx] = 1
            lock[t, gt_ids[j]] = idx
            break
        if fp[t, idx] == 0 and tp[t, idx] == 0:
            fp[t, idx] = 1


def ap_from_tp_fp(tp, fp, npos):
    """AP per threshold (rows of tp, fp: the ranked detections' outcomes) as the official code
    computes it: cumulative sums, recall and precision, interpolated_prec_rec."""
    ap = np.zeros(tp.shape[0])
    tp_cum = np.cumsum(tp, axis=1).astype(float)
    fp_cum = np.cumsum(fp, axis=1).astype(float)
    rec = tp_cum / npos
    prec = tp_cum / (tp_cum + fp_cum)
    for t in range(tp.shape[0]):
        ap[t] = interpolated_prec_rec(prec[t, :], rec[t, :])
    return ap


def ap_detection(gt_v, gt_seg, p_v, p_seg, p_score, thr, ties, clip):
    ap = np.zeros(len(thr))
    if len(p_score) == 0:
        return ap
    npos = float(len(gt_v))
    lock = np.ones((len(thr), len(gt_v))) * -1
    if ties == "official":
        order = p_score.argsort()[::-1]
    else:
        order = np.argsort(-p_score, kind="stable")
    tp = np.zeros((len(thr), len(order)))
    fp = np.zeros((len(thr), len(order)))
    by_video = {}
    for g, v in enumerate(gt_v):
        by_video.setdefault(v, []).append(g)
    for idx, i in enumerate(order):
        gl = by_video.get(p_v[i])
        if gl is None:
            fp[:, idx] = 1
            continue
        gl = np.array(gl)
        match_detection(tp, fp, lock, idx, segment_iou(p_seg[i], gt_seg[gl], clip), gl, thr)
    return ap_from_tp_fp(tp, fp, npos)


def opentad_dedup(gt):
    keep = []
    kept_by = {}
    for g in range(len(gt["video"])):
        s, e = gt["t0"][g], gt["t1"][g]
        if e - s <= 0:
            continue
        key = (gt["video"][g], gt["label"][g])
        dup = False
        for k in kept_by.get(key, []):
            if abs(gt["t0"][k] - s) <= 1e-3 and abs(gt["t1"][k] - e) <= 1e-3:
                dup = True
                break
        if dup:
            continue
        kept_by.setdefault(key, []).append(g)
        keep.append(g)
    out = dict(gt)
    out["video"] = [gt["video"][g] for g in keep]
    out["t0"], out["t1"], out["label"] = gt["t0"][keep], gt["t1"][keep], gt["label"][keep]
    return out


def anet_map(gt, pred, thr, protocol, ties):
    if protocol == "opentad":
        gt = opentad_dedup(gt)
    C = len(gt["classes"])
    plab = []
    for i, l in enumerate(pred["label"]):
        if l not in gt["classes"]:
            if protocol == "opentad":
                plab.append(-1)
                continue
            raise KeyError("label %r (video %s) is not a GT class" % (l, pred["video"][i]))
        plab.append(gt["classes"][l])
    plab = np.array(plab, dtype=np.int64)
    ap = np.zeros((len(thr), C))
    gseg = np.stack([gt["t0"], gt["t1"]], axis=1) if len(gt["t0"]) else np.zeros((0, 2))
    pseg = np.stack([pred["t0"], pred["t1"]], axis=1) if len(pred["t0"]) else np.zeros((0, 2))
    for c in range(C):
        gi = np.where(gt["label"] == c)[0]
        pi = np.where(plab == c)[0]
        ap[:, c] = ap_detection([gt["video"][g] for g in gi], gseg[gi],
                                [pred["video"][p] for p in pi], pseg[pi], pred["score"][pi],
                                thr, ties, protocol == "opentad")
    m = ap.mean(axis=1)
    return ap, m, m.mean()


# ------------------------------------------------------------------ THUMOS-14 MATLAB kit ----
def th14_overlap(a, b):
    a0, a1 = min(a), max(a)
    b0, b1 = min(b), max(b)
    inter = min(a1, b1) - max(a0, b0)
    if inter <= 0:
        return 0.0
    return inter / (max(a1, b1) - min(a0, b0))


def th14_map(gt, pred, thr):
    names = sorted(gt["classes"], key=lambda n: gt["classes"][n])
    ap = np.zeros((len(thr), len(names)))
    for c, name in enumerate(names):
        gi = [g for g in range(len(gt["video"])) if gt["label"][g] == c]
        pi = [p for p in range(len(pred["video"])) if pred["label"][p] == name]
        npos = len(gi)
        for t, th in enumerate(thr):
            confs, istp = [], []
            videos = []
            for p in pi:
                if pred["video"][p] not in videos:
                    videos.append(pred["video"][p])
            for v in [gt["video"][g] for g in gi]:
                if v not in videos:
                    videos.append(v)
            for v in videos:
                ps = [p for p in pi if pred["video"][p] == v]
                ps.sort(key=lambda p: -pred["score"][p])  # stable
                gs = [g for g in gi if gt["video"][g] == v]
                free = [True] * len(ps)
                tp = [False] * len(ps)
                for g in gs:
                    best, bj = -1.0, -1
                    for j, p in enumerate(ps):
                        if not free[j]:
                            continue
                        ov = th14_overlap((pred["t0"][p], pred["t1"][p]), (gt["t0"][g], gt["t1"][g]))
                        if ov > best:
                            best, bj = ov, j
                    if bj >= 0 and best > th:
                        free[bj] = False
                        tp[bj] = True
                for j, p in enumerate(ps):
                    if not tp[j]:
                        amb = gt["amb"].get(v, [])
                        if any(th14_overlap((pred["t0"][p], pred["t1"][p]), a) > 0 for a in amb):
                            continue
                    confs.append(pred["score"][p]); istp.append(tp[j])
            order = sorted(range(len(confs)), key=lambda k: (-confs[k], not istp[k]))
            tpc = np.cumsum([1.0 if istp[k] else 0.0 for k in order])
            fpc = np.cumsum([0.0 if istp[k] else 1.0 for k in order])
            rec = tpc / npos
            prec = tpc / (tpc + fpc)
            if not any(istp):
                ap[t, c] = 0.0
                continue
            s = 0.0
            for k in range(11):  # Octave's 0:0.1:1 is base + k*inc; prap adds p/11 each step
                r = 1.0 if k == 10 else k * 0.1
                sel = prec[rec >= r]
                s = s + (sel.max() if len(sel) else 0.0) / 11
            ap[t, c] = s
    # MATLAB/Octave mean(ap_all, 1): a sequential sum over classes, then / n
    m = np.zeros(len(thr))
    for t in range(len(thr)):
        acc = 0.0
        for c in range(len(names)):
            acc += ap[t, c]
        m[t] = acc / len(names)
    acc = 0.0
    for t in range(len(thr)):
        acc += m[t]
    return ap, m, acc / len(thr)


def proposals_ar(gt, pred, thr, max_avg=None):
    """ANETproposal.average_recall_vs_avg_nr_proposals + evaluate() (numpy only): labels are
    ignored, proposals are ranked per video by score (argsort()[::-1]), the first
    int(n * ratio) kept; a GT counts as recalled at threshold t when one of the first k
    proposals has tIoU >= t (NaN never does). Returns recall [T, 100], avg_recall [100],
    proposals_per_video [100] and the AUC (percent, as the official print)."""
    videos = list(dict.fromkeys(gt["video"]))
    n_prop = len(pred["video"])
    if not max_avg:
        max_avg = float(n_prop) / len(videos)
    ratio = max_avg * float(len(videos)) / n_prop
    gseg = np.stack([gt["t0"], gt["t1"]], axis=1)
    pseg = np.stack([pred["t0"], pred["t1"]], axis=1)
    g_by, p_by = {}, {}
    for i, v in enumerate(gt["video"]):
        g_by.setdefault(v, []).append(i)
    for i, v in enumerate(pred["video"]):
        p_by.setdefault(v, []).append(i)
    score_lst = []
    total = 0
    for v in videos:
        g = gseg[g_by[v]]
        if v not in p_by:
            score_lst.append(np.zeros((g.shape[0], 1)))
            continue
        pi = p_by[v]
        props = pseg[pi]
        order = pred["score"][pi].argsort()[::-1]
        props = props[order, :]
        k = np.minimum(int(props.shape[0] * ratio), props.shape[0])
        total += k
        props = props[:k, :]
        tiou = np.empty((g.shape[0], props.shape[0]))
        for i in range(props.shape[0]):
            tt1 = np.maximum(props[i, 0], g[:, 0])
            tt2 = np.minimum(props[i, 1], g[:, 1])
            inter = (tt2 - tt1).clip(0)
            union = (g[:, 1] - g[:, 0]) + (props[i, 1] - props[i, 0]) - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                tiou[:, i] = inter.astype(float) / union
        score_lst.append(tiou)
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(len(videos)) / total)
    matches = np.empty((len(videos), pcn.shape[0]))
    positives = np.empty(len(videos))
    recall = np.empty((len(thr), pcn.shape[0]))
    for r, t in enumerate(thr):
        for i, sc in enumerate(score_lst):
            positives[i] = sc.shape[0]
            with np.errstate(invalid="ignore"):
                tp = sc >= t
            kk = np.minimum((sc.shape[1] * pcn).astype(int), sc.shape[1])
            for j, k in enumerate(kk):
                matches[i, j] = np.count_nonzero((tp[:, :k]).sum(axis=1))
        recall[r, :] = matches.sum(axis=0) / positives.sum()
    avg_recall = recall.mean(axis=0)
    ppv = pcn * (float(total) / len(videos))
    auc = np.trapz(avg_recall, ppv)
    return recall, avg_recall, ppv, 100.0 * float(auc) / ppv[-1]


def write_npsort_cases(path):
    """tests/fixtures/eval_npsort_cases.txt: numpy's default argsort of arrays full of ties,
    NaN and -0.0 (the order ANETdetection's argsort()[::-1] depends on)."""
    rng = np.random.default_rng(20261126)
    lines = []
    sizes = [1, 2, 3, 15, 16, 17, 18, 20, 31, 33, 50, 64, 100, 128, 200, 257, 500, 1000]
    for k, n in enumerate(sizes * 2):
        kind = k % 4
        if kind == 0:
            v = rng.integers(0, 4, n).astype(float)
        elif kind == 1:
            v = rng.integers(0, 3, n) / 10.0
            v[rng.random(n) < 0.3] = np.nan
        elif kind == 2:
            v = np.round(rng.random(n), 2)
            v[rng.random(n) < 0.1] = np.nan
        else:
            v = np.zeros(n)
            v[rng.random(n) < 0.5] = -0.0
        lines.append("%d %s ; %s" % (n, " ".join(repr(float(x)) for x in v),
                                     " ".join(str(i) for i in v.argsort())))
    n = 600
    v = np.concatenate([np.arange(n // 2), np.arange(n // 2)[::-1]]).astype(float)
    lines.append("%d %s ; %s" % (n, " ".join(repr(float(x)) for x in v),
                                 " ".join(str(i) for i in v.argsort())))
    with open(path, "w") as f:
        f.write("# numpy %s float64 argsort() (default kind) of each array: n values ; indices\n"
                % np.__version__ + "\n".join(lines) + "\n")


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--gt", required=True)
    a.add_argument("--pred", required=True)
    a.add_argument("--classlist")
    a.add_argument("--subset")
    a.add_argument("--tiou")
    a.add_argument("--protocol", default="activitynet")
    a.add_argument("--ties", default="stable")
    a.add_argument("--hex", action="store_true")
    a.add_argument("--per-class", action="store_true")
    a.add_argument("--proposals", type=float, metavar="MAX_AVG",
                   help="AR vs AN (ANETproposal) with max_avg_nr_proposals MAX_AVG (0: all)")
    a.add_argument("--write-npsort-cases", metavar="PATH")
    if "--write-npsort-cases" in sys.argv:
        write_npsort_cases(sys.argv[sys.argv.index("--write-npsort-cases") + 1])
        return
    o = a.parse_args()
    thumos = os.path.isdir(o.gt) or "thumos" in os.path.basename(o.gt)
    subset = o.subset or ("test" if thumos else "validation")
    if o.tiou:
        thr = np.array([float(x) for x in o.tiou.split(",")])
    elif thumos:
        thr = np.linspace(0.3, 0.7, 5)
    else:
        thr = np.linspace(0.5, 0.95, 10)
    t = time.time()
    gt = load_gt_folder(o.gt, subset) if os.path.isdir(o.gt) else load_gt_json(o.gt, subset)
    pred = load_pred(o.pred, o.classlist)
    t_load = time.time() - t
    t = time.time()
    if o.proposals is not None:
        rec, ar, ppv, auc = proposals_ar(gt, pred, thr, o.proposals or None)
        for k in range(len(ar)):
            print("AN", repr(float(ppv[k])), "AR", repr(float(ar[k])), float(ar[k]).hex() if o.hex else "")
        print("AUC", repr(auc), auc.hex() if o.hex else "")
        return
    if o.protocol == "thumos14":
        ap, m, avg = th14_map(gt, pred, thr)
    else:
        ap, m, avg = anet_map(gt, pred, thr, o.protocol, o.ties)
    t_score = time.time() - t
    for th, v in zip(thr, m):
        print(repr(float(th)), repr(float(v)), float(v).hex() if o.hex else "")
    print("average", repr(float(avg)), float(avg).hex() if o.hex else "")
    if o.per_class:
        names = sorted(gt["classes"], key=lambda n: gt["classes"][n])
        for c, n in enumerate(names):
            print("class", n, " ".join(repr(float(x)) for x in ap[:, c]))
    print("seconds load %.3f score %.3f" % (t_load, t_score), file=sys.stderr)


if __name__ == "__main__":
    main()
