#!/usr/bin/env python3
"""Independent Python 3 re-implementation of the reference TAL evaluators, written from
shared/spec/eval-reference.md (not copied): the official ActivityNet ANETdetection (pandas +
numpy, same data flow: DataFrames, groupby per label and per video, numpy argsort, cumsum,
interpolated_prec_rec, mean), OpenTAD's variant, and the THUMOS-14 MATLAB kit.

Used (1) by bench/run_eval.sh as the speed baseline, and (2) once, offline, to compute the
expectations committed in tests/ (the tests need no Python).

usage: eval_official.py GT PRED [--subset S] [--tiou a,b,c | --linspace a b n]
                        [--protocol activitynet|opentad|thumos14] [--classlist F]
Prints JSON {"mAP": [...], "average_mAP": x, "ap": [[per class]...], "classes": [...]}
with repr() floats (17 significant digits)."""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The spec's primitives (the official segment_iou, the greedy match of one detection, AP from
# the TP/FP rows; the kit's intervaloverlapvalseconds) are shared with the numpy port; the data
# flow around them is this file's own (DataFrames, groupby, as the official code).
from eval_numpy_ref import ap_from_tp_fp, match_detection, segment_iou  # noqa: E402
from eval_numpy_ref import th14_overlap as th14_ov  # noqa: E402

try:
    import pandas as pd
except ImportError:  # the thumos14 port and the opentad/activitynet numpy path still work
    pd = None


# ------------------------------------------------------------------ loading
def load_gt(path, subset):
    """Rows (video, t0, t1, label) in file order, plus Ambiguous rows (folder only)."""
    rows, amb, classes = [], [], []
    if os.path.isdir(path):
        suffix = 'val' if subset == 'validation' else subset
        names = [l.split() for l in open(os.path.join(path, 'detclasslist.txt')) if l.strip()]
        for _, name in sorted(((int(i), n) for i, n in names)):
            for line in open(os.path.join(path, '%s_%s.txt' % (name, suffix))):
                if line.strip():
                    v, a, b = line.split()
                    rows.append((v, float(a), float(b), name))
        ap = os.path.join(path, 'Ambiguous_%s.txt' % suffix)
        if os.path.exists(ap):
            for line in open(ap):
                if line.strip():
                    v, a, b = line.split()
                    amb.append((v, float(a), float(b)))
        return rows, amb
    data = json.load(open(path))
    db = data['database'] if 'database' in data else data
    for vid, v in db.items():
        if v['subset'] != subset:
            continue
        for ann in v['annotations']:
            rows.append((vid, float(ann['segment'][0]), float(ann['segment'][1]), ann['label']))
    return rows, amb


def load_pred(path, classlist):
    rows = []
    text = open(path).read()
    if text.lstrip().startswith('{'):
        data = json.loads(text)
        for vid, dets in data['results'].items():
            for r in dets:
                rows.append((vid, float(r['segment'][0]), float(r['segment'][1]), r['label'],
                             r['score']))
        return rows
    names = {int(l.split()[0]): l.split()[1] for l in open(classlist) if l.strip()}
    for line in text.splitlines():
        if not line.strip():
            continue
        v, a, b, c, s = line.split()
        for ext in ('.mpeg', '.mp4'):
            if v.endswith(ext):
                v = v[:-len(ext)]
        rows.append((v, float(a), float(b), names[int(c)], float(s)))
    return rows


# ------------------------------------------------------------------ ANETdetection
def ap_detection(gt, pred, thresholds, clip):
    """gt, pred: DataFrames of one class (columns video-id, t-start, t-end[, score])."""
    ap = np.zeros(len(thresholds))
    if pred.empty:
        return ap
    npos = float(len(gt))
    lock = np.ones((len(thresholds), len(gt))) * -1
    order = pred['score'].values.argsort()[::-1]
    pred = pred.loc[order].reset_index(drop=True)
    tp = np.zeros((len(thresholds), len(pred)))
    fp = np.zeros((len(thresholds), len(pred)))
    by_video = gt.groupby('video-id')
    for idx, this in pred.iterrows():
        try:
            g = by_video.get_group(this['video-id'])
        except KeyError:
            fp[:, idx] = 1
            continue
        g = g.reset_index()
        tiou = segment_iou(this[['t-start', 't-end']].values,
                           g[['t-start', 't-end']].values, clip)
        match_detection(tp, fp, lock, idx, tiou, g['index'].values, thresholds)
    return ap_from_tp_fp(tp, fp, npos)


def dedup_opentad(rows):
    out, by_video = [], {}
    for r in rows:
        if r[2] - r[1] <= 0:
            continue
        kept = by_video.setdefault(r[0], [])
        if any(k[3] == r[3] and abs(k[1] - r[1]) <= 1e-3 and abs(k[2] - r[2]) <= 1e-3 for k in kept):
            continue
        kept.append(r)
        out.append(r)
    return out


def anet(gt_rows, pred_rows, thresholds, protocol):
    if protocol == 'opentad':
        gt_rows = dedup_opentad(gt_rows)
    classes = []
    for r in gt_rows:
        if r[3] not in classes:
            classes.append(r[3])
    index = {c: i for i, c in enumerate(classes)}
    gt = pd.DataFrame({'video-id': [r[0] for r in gt_rows], 't-start': [r[1] for r in gt_rows],
                       't-end': [r[2] for r in gt_rows], 'label': [index[r[3]] for r in gt_rows]})
    if protocol == 'opentad':
        pred_rows = [r for r in pred_rows if r[3] in index]
    labels = [index[r[3]] for r in pred_rows]  # KeyError on unknown labels, as the original
    pred = pd.DataFrame({'video-id': [r[0] for r in pred_rows], 't-start': [r[1] for r in pred_rows],
                         't-end': [r[2] for r in pred_rows], 'label': labels,
                         'score': [r[4] for r in pred_rows]})
    ap = np.zeros((len(thresholds), len(classes)))
    gt_by_label = gt.groupby('label')
    pred_by_label = pred.groupby('label')
    for c in range(len(classes)):
        try:
            p = pred_by_label.get_group(c).reset_index(drop=True)
        except KeyError:
            p = pd.DataFrame()
        ap[:, c] = ap_detection(gt_by_label.get_group(c).reset_index(drop=True), p, thresholds,
                                protocol == 'opentad')
    m = ap.mean(axis=1)
    return classes, ap, m, m.mean()


# ------------------------------------------------------------------ THUMOS-14 MATLAB kit
def th14(gt_rows, amb_rows, pred_rows, thresholds):
    classes = []
    for r in gt_rows:
        if r[3] not in classes:
            classes.append(r[3])
    ap = np.zeros((len(thresholds), len(classes)))
    for c, name in enumerate(classes):
        g = [r for r in gt_rows if r[3] == name]
        d = [r for r in pred_rows if r[3] == name]
        npos = len(g)
        videos = sorted(set(r[0] for r in g) | set(r[0] for r in d))
        for t, thr in enumerate(thresholds):
            tpc, fpc = [], []
            for v in videos:
                gv = [r for r in g if r[0] == v]
                dv = [r for r in d if r[0] == v]
                if not dv:
                    continue
                dv = sorted(dv, key=lambda r: -r[4])  # stable, as MATLAB sort
                free = [1] * len(dv)
                for x in gv:
                    best, bi = None, None
                    for i, y in enumerate(dv):
                        if free[i]:
                            o = th14_ov((x[1], x[2]), (y[1], y[2]))
                            if best is None or o > best:
                                best, bi = o, i
                    if best is not None and best > thr:
                        free[bi] = 0
                av = [r for r in amb_rows if r[0] == v]
                isamb = [sum(th14_ov((a[1], a[2]), (y[1], y[2])) for a in av) > 0 for y in dv]
                tpc += [y[4] for i, y in enumerate(dv) if not free[i]]
                fpc += [y[4] for i, y in enumerate(dv) if free[i] and not isamb[i]]
            if not tpc:
                continue
            conf = [(s, 1) for s in tpc] + [(s, 2) for s in fpc]
            conf = sorted(conf, key=lambda x: -x[0])
            tp = np.cumsum([f == 1 for _, f in conf])
            fp = np.cumsum([f == 2 for _, f in conf])
            rec = tp / npos
            prec = tp / (fp + tp)
            s = 0.0
            for k in range(11):
                r0 = 1.0 if k == 10 else k * 0.1
                sel = prec[rec >= r0]
                s = s + (sel.max() if len(sel) else 0.0) / 11
            ap[t, c] = s
    m = np.array([sum(ap[t, :]) / len(classes) for t in range(len(thresholds))])
    return classes, ap, m, sum(m) / len(thresholds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('gt')
    ap.add_argument('pred')
    ap.add_argument('--subset')
    ap.add_argument('--tiou')
    ap.add_argument('--linspace', nargs=3, type=float)
    ap.add_argument('--protocol', default='activitynet')
    ap.add_argument('--classlist')
    a = ap.parse_args()
    thumos = os.path.isdir(a.gt) or 'thumos' in os.path.basename(a.gt)
    subset = a.subset or ('test' if thumos else 'validation')
    if a.tiou:
        thr = np.array([float(x) for x in a.tiou.split(',')])
    elif a.linspace:
        thr = np.linspace(a.linspace[0], a.linspace[1], int(a.linspace[2]))
    else:
        thr = np.linspace(0.3, 0.7, 5) if thumos else np.linspace(0.5, 0.95, 10)
    gt_rows, amb = load_gt(a.gt, subset)
    classlist = a.classlist or (os.path.join(a.gt, 'detclasslist.txt') if os.path.isdir(a.gt) else None)
    pred_rows = load_pred(a.pred, classlist)
    if a.protocol == 'thumos14':
        classes, ap_, m, avg = th14(gt_rows, amb, pred_rows, thr)
    else:
        classes, ap_, m, avg = anet(gt_rows, pred_rows, thr, a.protocol)
    print(json.dumps({'mAP': [float(x) for x in m], 'average_mAP': float(avg),
                      'classes': classes, 'ap': [[float(x) for x in row] for row in ap_.T]}))


if __name__ == '__main__':
    sys.exit(main())
