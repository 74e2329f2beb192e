/* backbone/revblock.c: the generic residual-chain engine. Runs residual functions M_1..M_N as
 * the original chain (z_n = z_{n-1} + M_n(z_{n-1}), in a ReLU for post_relu functions) or
 * rewired (z_n = z_{n-2} + M_n(z_{n-1}), z_{-1} = z_0 = x, output (z_{N-1} + z_N) / 2), with
 * stored activations or reversibly (re2tal-paper.md §2.2, §3.2). Tensors are treated as flat
 * buffers, so any layout works, on either device (only nn ops touch them). */
#include <math.h>
#include <string.h>
#include <time.h>

#include "backbone.h"

struct tal_revstage {
    tal_stage_mode mode;
    int n;
    tal_tensor *z;  /* stored modes: z[0..n] (z[0] = x borrowed) */
    void **saved;   /* stored modes: saved[1..n] */
    tal_tensor s0, s1; /* reversible: the two final streams z_{N-1}, z_N */
    double fwd_s, bwd_s; /* wall time of the last forward / backward over the chain */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tal_revstage_seconds(const tal_revstage *st, double *fwd_s, double *bwd_s) {
    *fwd_s = st ? st->fwd_s : 0;
    *bwd_s = st ? st->bwd_s : 0;
}

const char *tal_stage_mode_name(tal_stage_mode m) {
    switch (m) {
    case TAL_STAGE_VANILLA: return "vanilla";
    case TAL_STAGE_REVERSIBLE: return "reversible";
    case TAL_STAGE_REWIRED_STORED: return "rewired_stored";
    }
    return "?";
}

int tal_stage_mode_parse(const char *s) {
    if (!strcmp(s, "vanilla")) return TAL_STAGE_VANILLA;
    if (!strcmp(s, "reversible")) return TAL_STAGE_REVERSIBLE;
    if (!strcmp(s, "rewired_stored")) return TAL_STAGE_REWIRED_STORED;
    return -1;
}

static int planning(tal_tensor t) { return t.data == NULL; }

/* fn's parameter gradients are final: a data-parallel caller may start sending them now. */
static void grads_ready(const tal_resfn *fn, int plan) {
    if (!plan && fn->params) tal_params_grads_ready(fn->params, fn->first_param, fn->end_param);
}

static void average(tal_tensor y, tal_tensor a, tal_tensor b) {
    if (planning(y)) return;
    tal_add(y, a, b);
    tal_scale(y, y, 0.5f);
}

/* Inference: z in place (vanilla) or two scratch streams (rewired); nothing kept. */
static void forward_infer(const tal_resfn *fns, int n, tal_stage_mode mode, tal_tensor y,
                          tal_tensor x, tal_arena *scratch, uint64_t step) {
    size_t mark = tal_arena_mark(scratch);
    tal_tensor m = tal_arena_like_uninit(scratch, x);
    if (mode == TAL_STAGE_VANILLA) {
        if (!planning(y)) tal_copy(y, x);
        for (int i = 0; i < n; i++) {
            fns[i].forward(fns[i].self, m, y, NULL, scratch, step);
            if (!planning(y)) tal_add(y, y, m);
            if (!planning(y) && fns[i].post_relu) tal_relu_forward(y, y);
        }
    } else {
        tal_tensor prev = tal_arena_like_uninit(scratch, x);
        tal_tensor cur = tal_arena_like_uninit(scratch, x);
        if (!planning(y)) {
            tal_copy(prev, x);
            tal_copy(cur, x);
        }
        for (int i = 0; i < n; i++) {
            fns[i].forward(fns[i].self, m, cur, NULL, scratch, step);
            if (!planning(y)) tal_add(prev, prev, m);
            tal_tensor t = prev;
            prev = cur;
            cur = t;
        }
        average(y, prev, cur);
    }
    tal_arena_release(scratch, mark);
}

tal_revstage *tal_revstage_forward(const tal_resfn *fns, int n, tal_stage_mode mode, tal_tensor y,
                                   tal_tensor x, tal_arena *keep, tal_arena *scratch,
                                   uint64_t step) {
    TAL_ASSERT_SAME_SHAPE(y, x);
    TAL_ASSERT(n >= 1);
    if (!keep) {
        forward_infer(fns, n, mode, y, x, scratch, step);
        return NULL;
    }
    double t0 = now_s();
    tal_revstage *st = tal_arena_bytes(keep, sizeof *st);
    tal_revstage local = {.mode = mode, .n = n};
    size_t mark = tal_arena_mark(scratch);
    tal_tensor m = tal_arena_like_uninit(scratch, x);
    if (mode == TAL_STAGE_REVERSIBLE) {
        /* Only the two streams survive; each block's internals die with its call. */
        tal_tensor prev = tal_arena_like_uninit(keep, x), cur = tal_arena_like_uninit(keep, x);
        if (!planning(x)) {
            tal_copy(prev, x);
            tal_copy(cur, x);
        }
        for (int i = 0; i < n; i++) {
            fns[i].forward(fns[i].self, m, cur, NULL, scratch, step);
            if (!planning(x)) tal_add(prev, prev, m);
            tal_tensor t = prev;
            prev = cur;
            cur = t;
        }
        local.s0 = prev;
        local.s1 = cur;
        average(y, prev, cur);
    } else {
        local.z = tal_arena_bytes(keep, sizeof(tal_tensor) * (size_t)(n + 1));
        local.saved = tal_arena_bytes(keep, sizeof(void *) * (size_t)(n + 1));
        tal_tensor *z = local.z; /* planning: NULL (counting arena) */
        tal_tensor prev2 = x, prev = x;
        if (z) z[0] = x;
        for (int i = 1; i <= n; i++) {
            tal_tensor zi =
                (mode == TAL_STAGE_VANILLA && i == n) ? y : tal_arena_like_uninit(keep, x);
            void *sv = fns[i - 1].forward(fns[i - 1].self, m, prev, keep, scratch, step);
            if (local.saved) local.saved[i] = sv;
            if (!planning(x)) tal_add(zi, mode == TAL_STAGE_VANILLA ? prev : prev2, m);
            if (!planning(x) && mode == TAL_STAGE_VANILLA && fns[i - 1].post_relu)
                tal_relu_forward(zi, zi);
            if (z) z[i] = zi;
            prev2 = prev;
            prev = zi;
        }
        if (mode == TAL_STAGE_REWIRED_STORED) average(y, prev2, prev);
    }
    tal_arena_release(scratch, mark);
    local.fwd_s = now_s() - t0;
    if (st) *st = local;
    return st;
}

double tal_revstage_recon_error(const tal_revstage *st, tal_tensor x) {
    if (!st || st->mode != TAL_STAGE_REVERSIBLE || !x.data) return -1;
    TAL_ASSERT(tal_tensor_numel(x) == tal_tensor_numel(st->s0));
    return fmax(tal_max_abs_diff(st->s0, x), tal_max_abs_diff(st->s1, x));
}

/* The rewired gradient recurrence: at state (z_{k-1}, z_k) with gradients (ga, gb),
 * ga += J_k(z_{k-1})^T gb, then the state becomes (z_{k-2}, z_{k-1}) with (gb, ga). */
void tal_revstage_backward(const tal_resfn *fns, int n, tal_stage_mode mode, tal_revstage *st,
                           tal_tensor dx, tal_tensor dy, tal_tensor x, tal_arena *scratch,
                           uint64_t step, double *recon_err) {
    TAL_ASSERT_SAME_SHAPE(dx, dy);
    int plan = planning(dy);
    TAL_ASSERT(plan || (st != NULL && st->mode == mode && st->n == n));
    if (recon_err) *recon_err = -1;
    double t0 = now_s();
    size_t mark = tal_arena_mark(scratch);
    tal_tensor none_z = dy; /* planning: stands in for stored z's (data NULL, right shape) */
#define Z(i) (plan ? none_z : st->z[(i)])
#define SAVED(i) (plan ? NULL : st->saved[(i)])
    if (mode == TAL_STAGE_VANILLA) {
        /* g_{i-1} = g_i + J_i^T g_i, accumulated in place in dx (backward allows dx == dout) */
        if (!plan && dx.data != dy.data) tal_copy(dx, dy);
        for (int i = n; i >= 1; i--) {
            if (!plan && fns[i - 1].post_relu) tal_relu_backward(dx, dx, Z(i));
            fns[i - 1].backward(fns[i - 1].self, dx, dx, Z(i - 1), SAVED(i), scratch, step);
            grads_ready(&fns[i - 1], plan);
        }
        tal_arena_release(scratch, mark);
        if (!plan) st->bwd_s = now_s() - t0;
        return;
    }
    tal_tensor ga = tal_arena_like_uninit(scratch, dy), gb = tal_arena_like_uninit(scratch, dy);
    if (!plan) {
        tal_scale(ga, dy, 0.5f);
        tal_scale(gb, dy, 0.5f);
    }
    if (mode == TAL_STAGE_REWIRED_STORED) {
        for (int k = n; k >= 1; k--) {
            fns[k - 1].backward(fns[k - 1].self, ga, gb, Z(k - 1), SAVED(k), scratch, step);
            grads_ready(&fns[k - 1], plan);
            tal_tensor t = ga;
            ga = gb;
            gb = t;
        }
    } else {
        /* Reversible (spec §3.2): rebuild z_{k-2} = z_k - M_k(z_{k-1}) in place of z_k, with
         * M_k's internals kept in scratch only for the length of this block's backward (the
         * recompute keeps into scratch itself: see tal_resfn.forward). */
        tal_tensor a = plan ? dy : st->s0; /* z_{k-1} */
        tal_tensor b = plan ? dy : st->s1; /* z_k */
        tal_tensor m = tal_arena_like_uninit(scratch, dy);
        for (int k = n; k >= 1; k--) {
            size_t blk = tal_arena_mark(scratch);
            const tal_resfn *fn = &fns[k - 1];
            if (fn->recompute_backward) {
                fn->recompute_backward(fn->self, m, ga, gb, a, scratch, step);
                if (!plan) tal_sub(b, b, m);
            } else {
                void *sv = fn->forward(fn->self, m, a, scratch, scratch, step);
                if (!plan) tal_sub(b, b, m);
                fn->backward(fn->self, ga, gb, a, sv, scratch, step);
            }
            tal_arena_release(scratch, blk);
            grads_ready(fn, plan);
            tal_tensor t = a;
            a = b;
            b = t;
            t = ga;
            ga = gb;
            gb = t;
        }
        if (!plan) { /* a and b now hold the rebuilt z_0, in st's streams */
            st->s0 = a;
            st->s1 = b;
        }
        if (!plan && recon_err && tal_tensor_present(x))
            *recon_err = tal_revstage_recon_error(st, x);
    }
#undef Z
#undef SAVED
    if (!plan) tal_add(dx, ga, gb);
    tal_arena_release(scratch, mark);
    if (!plan) st->bwd_s = now_s() - t0;
}
