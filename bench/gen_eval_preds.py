#!/usr/bin/env python3
"""Writes a synthetic ActivityNet-format results JSON for the eval benchmark (nothing is
downloaded): for every video of a GT subset, N detections, half of them jittered copies of
the video's GT instances (right or wrong label), half random segments, with random scores.

usage: gen_eval_preds.py GT_JSON SUBSET PER_VIDEO OUT [--videos K] [--seed S]"""
import argparse
import json
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('gt')
    ap.add_argument('subset')
    ap.add_argument('per_video', type=int)
    ap.add_argument('out')
    ap.add_argument('--videos', type=int, default=0, help='only the first K videos (0: all)')
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    db = json.load(open(a.gt))['database']
    vids = [(k, v) for k, v in db.items() if v['subset'] == a.subset]
    if a.videos:
        vids = vids[:a.videos]
    labels = sorted({x['label'] for _, v in vids for x in v['annotations']})
    results = {}
    for vid, v in vids:
        anns = v['annotations']
        dur = v.get('duration') or max([x['segment'][1] for x in anns] + [60.0])
        dets = []
        for i in range(a.per_video):
            if anns and i % 2 == 0:
                g = anns[rng.randrange(len(anns))]
                s, e = float(g['segment'][0]), float(g['segment'][1])
                length = max(e - s, 0.1)
                s += rng.gauss(0, 0.2 * length)
                e += rng.gauss(0, 0.2 * length)
                label = g['label'] if rng.random() < 0.7 else rng.choice(labels)
            else:
                s = rng.uniform(0, dur)
                e = s + rng.uniform(0.5, max(1.0, dur / 3))
                label = rng.choice(labels)
            dets.append({'label': label, 'score': rng.random(), 'segment': [s, e]})
        results[vid] = dets
    with open(a.out, 'w') as f:
        json.dump({'version': 'VERSION 1.3', 'results': results, 'external_data': {}}, f)
    print('%s: %d videos, %d detections' % (a.out, len(results), sum(len(d) for d in results.values())))


if __name__ == '__main__':
    main()
