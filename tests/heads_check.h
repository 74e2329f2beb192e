/* tests/heads_check.h: what the head tests on the PyTorch fixtures share (test_heads_model.c on
 * the CPU, test_cuda_head.c on the GPU): the small head of tests/fixtures_heads.py and the
 * fixture's ground truth per video. */
#ifndef TAL_HEADS_CHECK_H
#define TAL_HEADS_CHECK_H

#include <string.h>

#include "heads/heads.h"
#include "testlib.h"

/* The head of the fixtures: 6 input channels, 8 channels, 3 classes, 32 positions, 3 levels. */
static inline void small_config(tal_head_config *c, int win, int pe, float smoothing) {
    tal_head_config_thumos(c);
    c->in_channels = 6;
    c->channels = 8;
    c->n_classes = 3;
    c->max_seq_len = 32;
    c->arch[0] = 2;
    c->arch[1] = 1;
    c->arch[2] = 2;
    c->n_head = 2;
    c->mha_win = win;
    c->use_abs_pe = pe;
    c->label_smoothing = smoothing;
    float rr[3][2] = {{0, 4}, {4, 8}, {8, 10000}};
    memcpy(c->regression_range, rr, sizeof rr);
}

/* Video b's segments and labels (labels into the caller's array). */
static inline void gt_of(const fixture *fx, int b, tal_head_gt *gt, int *labels) {
    char n[64];
    snprintf(n, sizeof n, "gt.%d.segments", b);
    tal_tensor s = fixture_get(fx, n);
    snprintf(n, sizeof n, "gt.%d.labels", b);
    tal_tensor l = fixture_get(fx, n);
    gt->segments = s.data;
    gt->n = (int)l.shape[0];
    for (int i = 0; i < gt->n; i++) labels[i] = (int)l.data[i];
    gt->labels = labels;
}

#endif
