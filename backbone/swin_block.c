/* backbone/swin_block.c: the two residual functions of a Video Swin block (spec-videoswin.md §4):
 * F = LN1 -> pad -> shift -> window partition -> W-MSA with relative position bias (+ shift
 * mask) -> merge -> unshift -> crop -> drop-path, and G = LN2 -> fc1 -> GELU -> fc2 ->
 * drop-path, on channel-last x [B, D, H, W, C]. Pad + roll + partition is one gather pass
 * through a precomputed index map (and its inverse one scatter pass): nn's layout ops, so the
 * block runs on the device of its tensors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LN_EPS 1e-5f
#define MASK_NEG -100.0f /* the reference's mask value (not -inf) */

/* ---------------------------------------------------------------- geometry -------------- */
static int round_up(int v, int m) { return (v + m - 1) / m * m; }

static int region(int c, int P, int win, int shift) {
    if (shift == 0) return 0;
    if (c < P - win) return 0;
    if (c < P - shift) return 1;
    return 2;
}

/* The window maps: slot p of the windows (unshifted: s = 0, shifted: s = 1) reads token
 * map[p] of its sample, or -1 (padding). */
static void build_maps(int32_t *map, const swin_geom *g, int s) {
    int nd = g->Dp / g->win[0], nh = g->Hp / g->win[1], nw = g->Wp / g->win[2];
    int wd = g->win[0], wh = g->win[1], ww = g->win[2];
    int sd = s ? g->shift[0] : 0, sh = s ? g->shift[1] : 0, sw = s ? g->shift[2] : 0;
    int64_t p = 0;
    for (int bd = 0; bd < nd; bd++)
        for (int bh = 0; bh < nh; bh++)
            for (int bw = 0; bw < nw; bw++)
                for (int id = 0; id < wd; id++)
                    for (int ih = 0; ih < wh; ih++)
                        for (int iw = 0; iw < ww; iw++, p++) {
                            /* roll by -shift: slot (d, h, w) reads (d + sd) mod Dp. */
                            int d = (bd * wd + id + sd) % g->Dp;
                            int h = (bh * wh + ih + sh) % g->Hp;
                            int w = (bw * ww + iw + sw) % g->Wp;
                            map[p] = (d < g->D && h < g->H && w < g->W)
                                         ? (int32_t)(((int64_t)d * g->H + h) * g->W + w)
                                         : -1;
                        }
}

/* Relative position index: the top-left n x n block of the full window's matrix (tokens
 * unravelled on the full window, as the reference slices index[:n, :n]). */
static void build_rel_index(int32_t *rel, const swin_geom *g) {
    int fd = g->full_win[0], fh = g->full_win[1], fw = g->full_win[2];
    for (int i = 0; i < g->n; i++) {
        int di = i / (fh * fw), hi = (i / fw) % fh, wi = i % fw;
        for (int j = 0; j < g->n; j++) {
            int dj = j / (fh * fw), hj = (j / fw) % fh, wj = j % fw;
            rel[(int64_t)i * g->n + j] = (di - dj + fd - 1) * (2 * fh - 1) * (2 * fw - 1) +
                                         (hi - hj + fh - 1) * (2 * fw - 1) + (wi - wj + fw - 1);
        }
    }
}

/* §4.3: region ids on the padded grid, compared within each (unrolled) window. A window's
 * mask depends only on whether it is the last along each axis, so 8 classes are stored
 * (mask [8, n, n]) and each window points at its class (cls [nW]). */
static void build_masks(float *mask, uint8_t *cls, const swin_geom *g) {
    int nd = g->Dp / g->win[0], nh = g->Hp / g->win[1], nw = g->Wp / g->win[2];
    int wd = g->win[0], wh = g->win[1], ww = g->win[2], n = g->n;
    int ids[n];
    for (int bd = 0; bd < nd; bd++)
        for (int bh = 0; bh < nh; bh++)
            for (int bw = 0; bw < nw; bw++)
                cls[(bd * nh + bh) * nw + bw] =
                    (uint8_t)(4 * (bd == nd - 1) + 2 * (bh == nh - 1) + (bw == nw - 1));
    for (int c = 0; c < 8; c++) {
        int bd = c & 4 ? nd - 1 : 0, bh = c & 2 ? nh - 1 : 0, bw = c & 1 ? nw - 1 : 0;
        int t = 0;
        for (int id = 0; id < wd; id++)
            for (int ih = 0; ih < wh; ih++)
                for (int iw = 0; iw < ww; iw++, t++)
                    ids[t] = 9 * region(bd * wd + id, g->Dp, wd, g->shift[0]) +
                             3 * region(bh * wh + ih, g->Hp, wh, g->shift[1]) +
                             region(bw * ww + iw, g->Wp, ww, g->shift[2]);
        float *m = mask + (int64_t)c * n * n;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) m[i * n + j] = ids[i] == ids[j] ? 0.0f : MASK_NEG;
    }
}

void swin_geom_init(swin_geom *g, int B, int D, int H, int W, int C, int heads,
                    const int window[3], tal_arena *consts) {
    memset(g, 0, sizeof *g);
    g->B = B, g->D = D, g->H = H, g->W = W, g->C = C, g->heads = heads;
    int size[3] = {D, H, W};
    for (int a = 0; a < 3; a++) {
        g->full_win[a] = window[a];
        /* §4.1: an axis no longer than the window takes the whole axis and no shift. */
        if (size[a] <= window[a]) {
            g->win[a] = size[a];
            g->shift[a] = 0;
        } else {
            g->win[a] = window[a];
            g->shift[a] = window[a] / 2;
        }
        if (g->shift[a]) g->any_shift = 1;
    }
    g->Dp = round_up(D, g->win[0]);
    g->Hp = round_up(H, g->win[1]);
    g->Wp = round_up(W, g->win[2]);
    g->nW = (g->Dp / g->win[0]) * (g->Hp / g->win[1]) * (g->Wp / g->win[2]);
    g->n = g->win[0] * g->win[1] * g->win[2];
    int64_t slots = (int64_t)g->nW * g->n, nn = (int64_t)g->n * g->n;
    int64_t table_rows = (int64_t)(2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1);
    for (int s = 0; s < 2; s++)
        if (s == 0 || g->any_shift) g->map[s] = tal_arena_index(consts, slots);
    g->rel_index = tal_arena_index(consts, nn);
    g->rel_by_row = tal_arena_index(consts, table_rows + 1 + nn);
    g->mask = g->any_shift ? tal_arena_tensor(consts, 3, (int64_t[]){8, g->n, g->n})
                           : tal_tensor_none();
    g->win_cls = g->any_shift ? tal_arena_bytes(consts, (size_t)g->nW) : NULL;
    if (tal_arena_is_planner(consts)) return; /* sizes only */
    /* built on the host, then copied to consts' device (once per prepared shape) */
    int32_t *host = malloc(sizeof(int32_t) * (size_t)(slots > table_rows + 1 + 2 * nn
                                                          ? slots
                                                          : table_rows + 1 + 2 * nn));
    float *host_mask = g->any_shift ? malloc(sizeof(float) * (size_t)(8 * nn)) : NULL;
    uint8_t *host_cls = g->any_shift ? malloc((size_t)g->nW) : NULL;
    TAL_ASSERT_MSG(host && (!g->any_shift || (host_mask && host_cls)),
                   "out of memory for the window maps of %d windows", g->nW);
    for (int s = 0; s < 2; s++) {
        if (!g->map[s].data) continue;
        build_maps(host, g, s);
        tal_index_upload(g->map[s], host);
    }
    build_rel_index(host, g);
    tal_index_group_by(host + nn, host, nn, table_rows);
    tal_index_upload(g->rel_index, host);
    tal_index_upload(g->rel_by_row, host + nn);
    if (g->any_shift) {
        build_masks(host_mask, host_cls, g);
        tal_copy(g->mask, tal_t3(host_mask, 8, g->n, g->n));
        tal_err err = {TAL_OK, ""};
        TAL_ASSERT_MSG(tal_copy_bytes(g->win_cls, tal_arena_device(consts), host_cls, TAL_DEV_CPU,
                                      (size_t)g->nW, &err) == TAL_OK,
                       "window classes: %s", err.msg);
    }
    free(host);
    free(host_mask);
    free(host_cls);
}

/* ---------------------------------------------------------------- F: attention ---------- */
/* Windows are independent after LN1 (a per-token op), so F always runs over groups of
 * windows of one sample: inference and the reversible recompute hold one group's q, k, v,
 * probabilities and gradients; the stored modes keep them for every window (views below). */
typedef struct attn_bufs {
    tal_tensor mean, rstd;   /* LN1 of the gathered rows [rows] */
    tal_tensor ug;           /* normalised windowed tokens [rows, C] (qkv input) */
    tal_tensor qkv;          /* [Gw, n, 3 C]: q, k, v as the qkv linear writes them (the
                                attention reads them there: no split into heads) */
    tal_tensor probs;        /* [Gw, heads, n, n] */
    tal_tensor ow;           /* attention output as tokens [rows, C] (proj input) */
} attn_bufs;

static tal_rng_key drop_key(uint64_t seed, uint64_t step, uint64_t stream) {
    tal_rng_key k = {seed, step, stream};
    return k;
}

/* Buffers for Gw windows from arena a; the probabilities only for a backward (with_probs). */
static void attn_bufs_alloc(attn_bufs *s, tal_arena *a, const swin_geom *g, int64_t Gw,
                            int with_probs) {
    int64_t n = g->n, rows = Gw * n;
    s->mean = tal_arena_tensor_uninit(a, 1, (int64_t[]){rows});
    s->rstd = tal_arena_tensor_uninit(a, 1, (int64_t[]){rows});
    s->ug = tal_arena_tensor_uninit(a, 2, (int64_t[]){rows, g->C});
    s->qkv = tal_arena_tensor_uninit(a, 3, (int64_t[]){Gw, n, 3 * g->C});
    s->probs = with_probs ? tal_arena_tensor_uninit(a, 4, (int64_t[]){Gw, g->heads, n, n})
                          : tal_tensor_none();
    s->ow = tal_arena_tensor_uninit(a, 2, (int64_t[]){rows, g->C});
}

/* Windows [w, w + G) (global window index w = b * nW + w0) of full buffers. */
static attn_bufs attn_bufs_slice(const attn_bufs *s, int64_t w, int64_t G, int64_t n) {
    attn_bufs r = *s;
    r.mean = tal_tensor_slice0(s->mean, w * n, G * n);
    r.rstd = tal_tensor_slice0(s->rstd, w * n, G * n);
    r.ug = tal_tensor_slice0(s->ug, w * n, G * n);
    r.qkv = tal_tensor_slice0(s->qkv, w, G);
    if (tal_tensor_present(s->probs)) r.probs = tal_tensor_slice0(s->probs, w, G);
    r.ow = tal_tensor_slice0(s->ow, w * n, G * n);
    return r;
}

/* Windows per group (at most): in a recompute (forward, then at once its backward) 4 windows
 * of 392 tokens keep the group's probabilities (7.4 MB) in cache in between, and every pass's
 * group temporaries stay small. Measured at Swin-T stage 1 (12 blocks, 16 frames at 112) against
 * 16-window groups: reversible activation peak 95.7 -> 51.9 MB, vanilla 857.4 -> 854.7 MB,
 * inference no longer above training (so the plan equals the training peak); step times the
 * same or better (1-window groups: slower). */
#define GROUP_WINDOWS 4
/* Windows per group: the largest divisor of nW up to max_windows. */
static int64_t group_size(const swin_geom *g, int64_t max_windows) {
    int64_t best = 1;
    for (int64_t d = 1; d <= max_windows && d <= g->nW; d++)
        if (g->nW % d == 0) best = d;
    return best;
}

enum { RUN_FWD = 1, RUN_BWD = 2 };

/* RUN_FWD: out = F(x) (into saved's buffers if given, else group temporaries).
 * RUN_BWD: dx += J^T dout from saved (or from this pass's forward when both are set). */
static void attn_run(swin_attn_fn *f, int what, const attn_bufs *saved, tal_tensor out,
                     tal_tensor dx, tal_tensor dout, tal_tensor x, tal_arena *scratch,
                     uint64_t step) {
    const swin_geom *g = f->g;
    tal_params *p = f->params;
    int plan = bb_planning(x), fwd = what & RUN_FWD, bwd = what & RUN_BWD;
    int sh = f->shifted && g->any_shift;
    tal_index map = g->map[sh];
    int64_t N = tal_tensor_numel(x) / g->C, n = g->n, C = g->C, heads = g->heads;
    int64_t tokens = (int64_t)g->D * g->H * g->W; /* per sample */
    int64_t hd = C / heads, G = group_size(g, GROUP_WINDOWS), rows = G * n;
    float scale = 1.0f / sqrtf((float)hd);
    TAL_ASSERT(N == (int64_t)g->B * g->D * g->H * g->W);
    size_t mark = tal_arena_mark(scratch);
    tal_tensor bias = tal_arena_tensor_uninit(scratch, 3, (int64_t[]){heads, n, n});
    tal_tensor dbias = bwd ? tal_arena_like(scratch, bias) /* summed into */ : tal_tensor_none();
    /* dout after drop-path: a buffer only when there is drop-path, else dout itself is read */
    tal_tensor dp = bwd && f->drop_p > 0 ? tal_arena_tensor_uninit(scratch, 2, (int64_t[]){N, C})
                                         : tal_tensor_none();
    attn_bufs tmp = {0};
    if (!saved) attn_bufs_alloc(&tmp, scratch, g, G, bwd); /* inference: no probabilities */
    tal_tensor xg = tal_arena_tensor_uninit(scratch, 2, (int64_t[]){rows, C});
    tal_tensor yw = tal_arena_like_uninit(scratch, xg); /* also dyw */
    tal_tensor dqkv =
        bwd ? tal_arena_tensor_uninit(scratch, 3, (int64_t[]){G, n, 3 * C}) : tal_tensor_none();
    tal_tensor dow = bwd ? tal_arena_like_uninit(scratch, xg) : tal_tensor_none(); /* also dug */
    tal_tensor dxg = bwd ? tal_arena_like_uninit(scratch, xg) : tal_tensor_none();
    int table_grad = tal_params_at(p, f->table)->trainable;
    if (plan) {
        if (bwd) { /* the attention backward's own scratch, as it counts it */
            tal_tensor qv = tal_t3(NULL, G, n, 3 * C), pv = tal_t4(NULL, G, heads, n, n);
            tal_attention_qkv_backward(qv, table_grad ? dbias : tal_tensor_none(),
                                       tal_t3(NULL, G, n, C), qv, pv, heads, scale, scratch);
        }
        tal_arena_release(scratch, mark);
        return;
    }
    tal_tensor gtab = table_grad ? bb_grad(p, f->table) : tal_tensor_none();
    /* a backward alone reads probs: only a forward needs the bias */
    if (fwd) tal_bias_gather(bias, bb_value(p, f->table), g->rel_index);
    if (bwd) {
        if (f->drop_p > 0)
            tal_drop_path_backward(tal_tensor_reshape(dp, dout.ndim, dout.shape), dout,
                                   f->drop_p, drop_key(f->seed, step, f->stream));
        else
            dp = bb_rows(dout, 0, N, C);
    }
    for (int64_t b = 0; b < g->B; b++)
        for (int64_t w0 = 0; w0 < g->nW; w0 += G) {
            attn_bufs s = saved ? attn_bufs_slice(saved, b * g->nW + w0, G, n) : tmp;
            tal_index slots = tal_index_slice(map, w0 * n, rows); /* this group's windows */
            tal_rows_gather(xg, bb_rows(x, b * tokens, tokens, C), slots);
            if (fwd) {
                tal_layernorm_forward(s.ug, s.mean, s.rstd, xg, bb_value(p, f->norm_w),
                                      bb_value(p, f->norm_b), LN_EPS);
                tal_rows_zero_unmapped(s.ug, slots); /* the reference pads after the norm */
                tal_linear_forward(bb_rows(s.qkv, 0, rows, 3 * C), s.ug, bb_value(p, f->qkv_w),
                                   bb_value(p, f->qkv_b));
                /* each window's shift mask is its class's, read in place (no per-group copy) */
                tal_attention_qkv_forward(bb_view(s.ow, 0, 3, (int64_t[]){G, n, C}), s.probs, bwd,
                                          s.qkv, heads, bias, sh ? g->mask : tal_tensor_none(),
                                          sh ? g->win_cls + w0 : NULL, scale);
                tal_linear_forward(yw, s.ow, bb_value(p, f->proj_w), bb_value(p, f->proj_b));
                tal_rows_scatter(bb_rows(out, b * tokens, tokens, C), yw, slots, 0);
            }
            if (!bwd) continue;
            tal_tensor dyw = yw, dug = dow;
            tal_rows_gather(dyw, bb_rows(dp, b * tokens, tokens, C), slots);
            tal_linear_backward(dow, bb_grad(p, f->proj_w), bb_grad(p, f->proj_b), dyw, s.ow,
                                bb_value(p, f->proj_w));
            tal_attention_qkv_backward(dqkv, gtab.data ? dbias : tal_tensor_none(),
                                       bb_view(dow, 0, 3, (int64_t[]){G, n, C}), s.qkv, s.probs,
                                       heads, scale, scratch);
            tal_linear_backward(dug, bb_grad(p, f->qkv_w), bb_grad(p, f->qkv_b),
                                bb_rows(dqkv, 0, rows, 3 * C), s.ug, bb_value(p, f->qkv_w));
            tal_rows_zero_unmapped(dug, slots); /* padding is not an LN output */
            tal_layernorm_backward(dxg, bb_grad(p, f->norm_w), bb_grad(p, f->norm_b), dug, xg,
                                   bb_value(p, f->norm_w), s.mean, s.rstd);
            tal_rows_scatter(bb_rows(dx, b * tokens, tokens, C), dxg, slots, 1);
        }
    if (fwd && bb_drop_path_on(f->drop_p, step))
        tal_drop_path_forward(out, out, f->drop_p, drop_key(f->seed, step, f->stream));
    if (bwd && gtab.data) tal_bias_gather_backward(gtab, dbias, g->rel_by_row);
    tal_arena_release(scratch, mark);
}

static void *attn_forward(void *self, tal_tensor out, tal_tensor x, tal_arena *keep,
                          tal_arena *scratch, uint64_t step) {
    swin_attn_fn *f = self;
    if (!keep) { /* inference: window groups, nothing kept */
        attn_run(f, RUN_FWD, NULL, out, tal_tensor_none(), tal_tensor_none(), x, scratch, step);
        return NULL;
    }
    attn_bufs local, *s = tal_arena_bytes(keep, sizeof *s);
    attn_bufs_alloc(&local, keep, f->g, (int64_t)f->g->B * f->g->nW, 1);
    if (s) *s = local; /* NULL while planning; the buffers still count */
    attn_run(f, RUN_FWD, &local, out, tal_tensor_none(), tal_tensor_none(), x, scratch, step);
    return s;
}

static void attn_backward(void *self, tal_tensor dx, tal_tensor dout, tal_tensor x, void *saved,
                          tal_arena *scratch, uint64_t step) {
    swin_attn_fn *f = self;
    attn_bufs none = {0};
    attn_run(f, RUN_BWD, saved ? saved : &none, tal_tensor_none(), dx, dout, x, scratch, step);
}

static void attn_recompute_backward(void *self, tal_tensor out, tal_tensor dx, tal_tensor dout,
                                    tal_tensor x, tal_arena *scratch, uint64_t step) {
    attn_run(self, RUN_FWD | RUN_BWD, NULL, out, dx, dout, x, scratch, step);
}

tal_resfn swin_attn_resfn(swin_attn_fn *f) {
    tal_resfn r = {.forward = attn_forward, .backward = attn_backward, .self = f,
                   .recompute_backward = attn_recompute_backward,
                   .params = f->params, .first_param = f->norm_w, .end_param = f->proj_b + 1};
    return r;
}

/* ---------------------------------------------------------------- G: MLP ----------------- */
typedef struct mlp_saved {
    tal_tensor mean, rstd; /* LN2 [N] */
    tal_tensor u;          /* LN2 output [N, C] (fc1 input) */
    tal_tensor h;          /* fc1 output [N, hidden] (GELU input) */
    tal_tensor a;          /* GELU output [N, hidden] (fc2 input) */
} mlp_saved;

/* G is per token: inference and the reversible recompute run it over row chunks, so the
 * [rows, hidden] buffers are those of one chunk. */
#define MLP_CHUNK_ROWS 1024

static void mlp_chunked(swin_mlp_fn *f, tal_tensor out, tal_tensor dx, tal_tensor dout,
                        tal_tensor x, tal_arena *scratch, uint64_t step) {
    tal_params *p = f->params;
    int plan = bb_planning(x), bwd = tal_tensor_present(dout) || (plan && dout.ndim > 0);
    int64_t C = tal_tensor_cols(x), N = tal_tensor_numel(x) / C, H = f->hidden;
    int64_t R = N < MLP_CHUNK_ROWS ? N : MLP_CHUNK_ROWS;
    size_t mark = tal_arena_mark(scratch);
    /* dout after drop-path: a buffer only when there is drop-path, else dout itself is read */
    tal_tensor dp = bwd && f->drop_p > 0 ? tal_arena_tensor_uninit(scratch, 2, (int64_t[]){N, C})
                                         : tal_tensor_none();
    tal_tensor u = tal_arena_tensor_uninit(scratch, 2, (int64_t[]){R, C});
    tal_tensor mean = tal_arena_tensor_uninit(scratch, 1, (int64_t[]){R});
    tal_tensor rstd = tal_arena_like_uninit(scratch, mean);
    tal_tensor h = tal_arena_tensor_uninit(scratch, 2, (int64_t[]){R, H});
    tal_tensor a = tal_arena_like_uninit(scratch, h);
    tal_tensor dh = bwd ? tal_arena_like_uninit(scratch, h) : tal_tensor_none();
    tal_tensor du = bwd ? tal_arena_like_uninit(scratch, u) : tal_tensor_none();
    if (plan) {
        tal_arena_release(scratch, mark);
        return;
    }
    if (bwd) {
        if (f->drop_p > 0)
            tal_drop_path_backward(tal_tensor_reshape(dp, dout.ndim, dout.shape), dout,
                                   f->drop_p, drop_key(f->seed, step, f->stream));
        else
            dp = bb_rows(dout, 0, N, C);
    }
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t r = N - r0 < R ? N - r0 : R;
        tal_tensor xs = bb_rows(x, r0, r, C), us = bb_rows(u, 0, r, C);
        tal_tensor hs = bb_rows(h, 0, r, H), as = bb_rows(a, 0, r, H);
        tal_tensor ms = tal_tensor_slice0(mean, 0, r), rs = tal_tensor_slice0(rstd, 0, r);
        tal_layernorm_forward(us, ms, rs, xs, bb_value(p, f->norm_w), bb_value(p, f->norm_b),
                              LN_EPS);
        tal_linear_forward(hs, us, bb_value(p, f->fc1_w), bb_value(p, f->fc1_b));
        tal_gelu_forward(as, hs);
        tal_linear_forward(bb_rows(out, r0, r, C), as, bb_value(p, f->fc2_w),
                           bb_value(p, f->fc2_b));
        if (!bwd) continue;
        tal_tensor das = bb_rows(dh, 0, r, H), dus = bb_rows(du, 0, r, C);
        tal_linear_backward(das, bb_grad(p, f->fc2_w), bb_grad(p, f->fc2_b),
                            bb_rows(dp, r0, r, C), as, bb_value(p, f->fc2_w));
        tal_gelu_backward(as, das, hs); /* a is dead: it takes dh */
        tal_linear_backward(dus, bb_grad(p, f->fc1_w), bb_grad(p, f->fc1_b), as, us,
                            bb_value(p, f->fc1_w));
        tal_tensor dxs = bb_rows(h, 0, r, C); /* h is dead: it takes the LN input grad */
        tal_layernorm_backward(dxs, bb_grad(p, f->norm_w), bb_grad(p, f->norm_b), dus, xs,
                               bb_value(p, f->norm_w), ms, rs);
        tal_axpy(bb_rows(dx, r0, r, C), 1.0f, dxs);
    }
    if (bb_drop_path_on(f->drop_p, step))
        tal_drop_path_forward(out, out, f->drop_p, drop_key(f->seed, step, f->stream));
    tal_arena_release(scratch, mark);
}

static void mlp_recompute_backward(void *self, tal_tensor out, tal_tensor dx, tal_tensor dout,
                                   tal_tensor x, tal_arena *scratch, uint64_t step) {
    mlp_chunked(self, out, dx, dout, x, scratch, step);
}

static void *mlp_forward(void *self, tal_tensor out, tal_tensor x, tal_arena *keep,
                         tal_arena *scratch, uint64_t step) {
    swin_mlp_fn *f = self;
    tal_params *p = f->params;
    int64_t C = tal_tensor_cols(x), N = tal_tensor_numel(x) / C;
    if (!keep) { /* inference: row chunks, nothing kept */
        mlp_chunked(f, out, tal_tensor_none(), tal_tensor_none(), x, scratch, step);
        return NULL;
    }
    mlp_saved local, *s = tal_arena_bytes(keep, sizeof *s);
    size_t outer = tal_arena_mark(scratch);
    tal_arena *a = keep ? keep : scratch;
    local.mean = tal_arena_tensor_uninit(a, 1, (int64_t[]){N});
    local.rstd = tal_arena_tensor_uninit(a, 1, (int64_t[]){N});
    local.u = tal_arena_tensor_uninit(a, 2, (int64_t[]){N, C});
    local.h = tal_arena_tensor_uninit(a, 2, (int64_t[]){N, f->hidden});
    /* Inference: GELU in place over h, so no second [N, hidden] buffer. */
    local.a = keep ? tal_arena_like_uninit(a, local.h) : local.h;
    if (!bb_planning(x)) {
        tal_layernorm_forward(local.u, local.mean, local.rstd, bb_rows(x, 0, N, C),
                              bb_value(p, f->norm_w), bb_value(p, f->norm_b), LN_EPS);
        tal_linear_forward(local.h, local.u, bb_value(p, f->fc1_w), bb_value(p, f->fc1_b));
        tal_gelu_forward(local.a, local.h);
        tal_linear_forward(bb_rows(out, 0, N, C), local.a, bb_value(p, f->fc2_w),
                           bb_value(p, f->fc2_b));
        if (bb_drop_path_on(f->drop_p, step))
            tal_drop_path_forward(out, out, f->drop_p, drop_key(f->seed, step, f->stream));
    }
    if (s) *s = local;
    if (!keep) tal_arena_release(scratch, outer);
    return s;
}

static void mlp_backward(void *self, tal_tensor dx, tal_tensor dout, tal_tensor x, void *saved,
                         tal_arena *scratch, uint64_t step) {
    swin_mlp_fn *f = self;
    tal_params *p = f->params;
    int plan = bb_planning(dout);
    int64_t C = tal_tensor_cols(dout), N = tal_tensor_numel(dout) / C;
    mlp_saved *s = saved;
    size_t mark = tal_arena_mark(scratch);
    /* dout after drop-path: a buffer only when there is drop-path, else dout itself is read
     * (it is read whole by fc2's backward, before dx, which may be dout, is written) */
    tal_tensor dp = f->drop_p > 0 ? tal_arena_tensor_uninit(scratch, 2, (int64_t[]){N, C})
                                  : tal_tensor_none();
    tal_tensor da = tal_arena_tensor_uninit(scratch, 2, (int64_t[]){N, f->hidden});
    tal_tensor dh = tal_arena_tensor_uninit(scratch, 2, (int64_t[]){N, f->hidden});
    if (!plan) {
        if (f->drop_p > 0)
            tal_drop_path_backward(tal_tensor_reshape(dp, dout.ndim, dout.shape), dout,
                                   f->drop_p, drop_key(f->seed, step, f->stream));
        else
            dp = bb_rows(dout, 0, N, C);
        tal_linear_backward(da, bb_grad(p, f->fc2_w), bb_grad(p, f->fc2_b), dp, s->a,
                            bb_value(p, f->fc2_w));
        tal_gelu_backward(dh, da, s->h);
        /* da is dead after the GELU: it takes du; dh, dead after fc1, the LN input gradient */
        tal_tensor du = bb_rows(da, 0, N, C), dxt = bb_rows(dh, 0, N, C);
        tal_linear_backward(du, bb_grad(p, f->fc1_w), bb_grad(p, f->fc1_b), dh, s->u,
                            bb_value(p, f->fc1_w));
        tal_layernorm_backward(dxt, bb_grad(p, f->norm_w), bb_grad(p, f->norm_b), du,
                               bb_rows(x, 0, N, C), bb_value(p, f->norm_w), s->mean, s->rstd);
        tal_axpy(bb_rows(dx, 0, N, C), 1.0f, dxt);
    }
    tal_arena_release(scratch, mark);
}

tal_resfn swin_mlp_resfn(swin_mlp_fn *f) {
    tal_resfn r = {.forward = mlp_forward, .backward = mlp_backward, .self = f,
                   .recompute_backward = mlp_recompute_backward,
                   .params = f->params, .first_param = f->norm_w, .end_param = f->fc2_b + 1};
    return r;
}
