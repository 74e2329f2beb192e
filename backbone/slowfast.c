/* backbone/slowfast.c: SlowFast (Feichtenhofer et al. 2019) as mmaction2's ResNet3dSlowFast and
 * OpenTAD's ResNet3dSlowFast_inv compute it, on two ResNet3D pathways (resnet3d.c): the slow
 * pathway sees every tau-th frame, the fast one every (tau / alpha)-th with 1/beta_inv of the
 * channels; after the stem and after stages 1..n-1 a lateral conv (fusion_kernel x1x1, temporal
 * stride alpha, no norm) maps the fast features onto the slow time grid and is concatenated to
 * the slow features (re2tal-paper.md §2.4). Laterals and stems are ordinary layers; each
 * pathway's stages follow their own modes. Features out [B, Cs + Cf, Tf]: each pathway's
 * spatial mean, the slow ones linearly interpolated onto the fast time grid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct slowfast_model {
    rn_pathway *slow, *fast;
    int lat_w[TAL_BACKBONE_MAX_STAGES]; /* lateral before slow stage s ([0]: after the stem) */
    int n_stages, tau, alpha, fast_step, kernel;
    int Ts, Tf; /* slow and fast frames of the prepared clip */
    /* what a training forward keeps (views into keep, or borrowed) */
    tal_tensor vslow, vfast;                      /* the frames each pathway sees */
    tal_tensor lat_in[TAL_BACKBONE_MAX_STAGES];   /* fast features each lateral read */
    tal_tensor slow_in[TAL_BACKBONE_MAX_STAGES];  /* slow stage inputs: slow ++ lateral */
    tal_tensor slow_out, fast_out;                /* last stages' outputs */
};

static const char *const SLOW = "slow_path.", *const FAST = "fast_path.";

/* ---------------------------------------------------------------- channel concat -------- */
/* [B, C, inner] view of a channel-first tensor. */
static tal_tensor by_channel(tal_tensor t) {
    int64_t B = t.shape[0], C = t.shape[1];
    return tal_tensor_reshape(t, 3, (int64_t[]){B, C, tal_tensor_numel(t) / (B * C)});
}

/* dst[:, c0 : c0 + C] = src, channel-first tensors of equal trailing dims (nn's slice copy: on
 * the device of the tensors too). */
static void put_channels(tal_tensor dst, int64_t c0, tal_tensor src) {
    tal_copy_slice1(by_channel(dst), c0, by_channel(src), 0, src.shape[1]);
}

/* dst = src[:, c0 : c0 + C]. */
static void get_channels(tal_tensor dst, tal_tensor src, int64_t c0) {
    tal_copy_slice1(by_channel(dst), 0, by_channel(src), c0, dst.shape[1]);
}

/* Frames 0, step, 2 step, ... of video [B, 3, T, H, W]: PyTorch's nearest interpolation by
 * 1/step, which is how both references feed the pathways. */
static void take_frames(tal_tensor dst, tal_tensor video, int step) {
    int64_t BC = video.shape[0] * 3, T = video.shape[2], To = dst.shape[2];
    int64_t frame = video.shape[3] * video.shape[4];
    tal_tensor d = tal_tensor_reshape(dst, 3, (int64_t[]){BC, To, frame});
    tal_tensor v = tal_tensor_reshape(video, 3, (int64_t[]){BC, T, frame});
    for (int64_t t = 0; t < To; t++) tal_copy_slice1(d, t, v, t * step, 1);
}

/* ---------------------------------------------------------------- declaration ----------- */
tal_status slowfast_declare(tal_backbone *bb, tal_err *err) {
    const tal_backbone_config *c = &bb->cfg;
    slowfast_model *sf = calloc(1, sizeof *sf);
    if (!sf) return tal_err_set(err, TAL_ENOMEM, "backbone: out of memory");
    bb->sf = sf;
    sf->n_stages = c->n_stages;
    sf->tau = c->tau, sf->alpha = c->alpha, sf->kernel = c->fusion_kernel;
    sf->fast_step = c->tau / c->alpha;
    int fbase = c->embed_dim / c->beta_inv;
    rn_pathway_spec slow = {.prefix = SLOW, .base = c->embed_dim, .n_stages = c->n_stages,
                            .stem_kt = c->stem_kt, .drop_path_rate = c->drop_path_rate,
                            .seed = c->seed, .stream0 = 1000};
    rn_pathway_spec fast = {.prefix = FAST, .base = fbase, .n_stages = c->n_stages,
                            .stem_kt = c->fast_stem_kt, .drop_path_rate = c->drop_path_rate,
                            .seed = c->seed, .stream0 = 5000};
    for (int s = 0; s < c->n_stages; s++) {
        slow.depths[s] = fast.depths[s] = c->depths[s];
        slow.mode[s] = fast.mode[s] = c->mode[s];
        slow.inflate[s] = c->inflate[s];
        fast.inflate[s] = c->fast_inflate[s];
        /* the fast channels entering stage s, doubled by the lateral (mmaction2's
         * lateral_inplanes = slow channels * 2 / beta_inv) */
        int fast_in = s == 0 ? fbase : 4 * (fbase << (s - 1));
        slow.lateral_in[s] = 2 * fast_in;
    }
    tal_status rc = rn_pathway_declare(&sf->slow, bb, &slow, err);
    if (!rc) rc = rn_pathway_declare(&sf->fast, bb, &fast, err);
    if (rc) return rc;
    for (int s = 0; s < c->n_stages; s++) {
        char pre[64];
        if (s == 0)
            snprintf(pre, sizeof pre, "%sconv1_lateral", SLOW);
        else
            snprintf(pre, sizeof pre, "%slayer%d_lateral", SLOW, s);
        int fast_in = slow.lateral_in[s] / 2;
        sf->lat_w[s] = rn_declare_conv(bb, pre, 2 * fast_in, fast_in, sf->kernel, 1);
    }
    return TAL_OK;
}

void slowfast_free(tal_backbone *bb) {
    if (!bb->sf) return;
    rn_pathway_free(bb->sf->slow);
    rn_pathway_free(bb->sf->fast);
    free(bb->sf);
    bb->sf = NULL;
}

void slowfast_setup_shapes(tal_backbone *bb) {
    slowfast_model *sf = bb->sf;
    sf->Ts = bb->T / sf->tau;
    sf->Tf = bb->T / sf->fast_step;
    rn_pathway_setup(sf->slow, sf->Ts, bb->H, bb->W);
    rn_pathway_setup(sf->fast, sf->Tf, bb->H, bb->W);
}

static tal_conv3d_geom lateral_geom(const slowfast_model *sf) {
    tal_conv3d_geom g = {{sf->alpha, 1, 1}, {(sf->kernel - 1) / 2, 0, 0}};
    return g;
}

/* ---------------------------------------------------------------- forward / backward ---- */
void slowfast_run_forward(tal_backbone *bb, tal_tensor feats, tal_tensor video, int train) {
    slowfast_model *sf = bb->sf;
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch, *kk = train ? bb->keep : sc;
    int plan = bb_planning(video);
    int64_t B = bb->B;
    size_t mark0 = tal_arena_mark(sc);
    sf->vslow = tal_arena_tensor_uninit(kk, 5, (int64_t[]){B, 3, sf->Ts, bb->H, bb->W});
    sf->vfast = video;
    if (sf->fast_step > 1)
        sf->vfast = tal_arena_tensor_uninit(kk, 5, (int64_t[]){B, 3, sf->Tf, bb->H, bb->W});
    if (!plan) {
        take_frames(sf->vslow, video, sf->tau);
        if (sf->fast_step > 1) take_frames(sf->vfast, video, sf->fast_step);
    }
    tal_tensor xs = rn_stem_forward(bb, sf->slow, sf->vslow, train);
    tal_tensor xf = rn_stem_forward(bb, sf->fast, sf->vfast, train);
    for (int s = 0; s < sf->n_stages; s++) {
        int64_t Cs = xs.shape[1], Cl = 2 * xf.shape[1];
        sf->lat_in[s] = xf;
        sf->slow_in[s] = tal_arena_tensor_uninit(
            kk, 5, (int64_t[]){B, Cs + Cl, xs.shape[2], xs.shape[3], xs.shape[4]});
        size_t m = tal_arena_mark(sc);
        tal_tensor lat =
            tal_arena_tensor_uninit(sc, 5, (int64_t[]){B, Cl, sf->Ts, xs.shape[3], xs.shape[4]});
        tal_conv3d_forward(lat, xf, bb_value(p, sf->lat_w[s]), tal_tensor_none(),
                           lateral_geom(sf), sc);
        if (!plan) {
            put_channels(sf->slow_in[s], 0, xs);
            put_channels(sf->slow_in[s], Cs, lat);
        }
        tal_arena_release(sc, m);
        xs = rn_stage_forward(bb, sf->slow, s, sf->slow_in[s], train);
        xf = rn_stage_forward(bb, sf->fast, s, xf, train);
    }
    sf->slow_out = xs;
    sf->fast_out = xf;
    int64_t Cs = xs.shape[1], Cf = xf.shape[1];
    size_t m = tal_arena_mark(sc);
    tal_tensor ps = tal_arena_tensor_uninit(sc, 3, (int64_t[]){B, Cs, sf->Ts});
    tal_tensor up = tal_arena_tensor_uninit(sc, 3, (int64_t[]){B, Cs, sf->Tf});
    tal_tensor pf = tal_arena_tensor_uninit(sc, 3, (int64_t[]){B, Cf, sf->Tf});
    if (!plan) {
        tal_mean_hw_forward(ps, xs);
        tal_backbone_resize_forward(up, ps);
        tal_mean_hw_forward(pf, xf);
        put_channels(feats, 0, up);
        put_channels(feats, Cs, pf);
    }
    tal_arena_release(sc, m);
    if (!train) tal_arena_release(sc, mark0);
}

void slowfast_run_backward(tal_backbone *bb, tal_tensor dfeats, double *recon_err) {
    slowfast_model *sf = bb->sf;
    tal_params *p = bb->params;
    tal_arena *sc = bb->scratch;
    int plan = bb_planning(dfeats);
    if (recon_err) *recon_err = -1;
    int64_t B = bb->B, Cs = sf->slow_out.shape[1], Cf = sf->fast_out.shape[1];
    size_t mark0 = tal_arena_mark(sc);
    tal_tensor dys = tal_arena_like_uninit(sc, sf->slow_out);
    tal_tensor dyf = tal_arena_like_uninit(sc, sf->fast_out);
    size_t m = tal_arena_mark(sc);
    tal_tensor dup = tal_arena_tensor_uninit(sc, 3, (int64_t[]){B, Cs, sf->Tf});
    tal_tensor dps = tal_arena_tensor_uninit(sc, 3, (int64_t[]){B, Cs, sf->Ts});
    tal_tensor dpf = tal_arena_tensor_uninit(sc, 3, (int64_t[]){B, Cf, sf->Tf});
    if (!plan) {
        get_channels(dup, dfeats, 0);
        tal_backbone_resize_backward(dps, dup);
        tal_mean_hw_backward(dys, dps);
        get_channels(dpf, dfeats, Cs);
        tal_mean_hw_backward(dyf, dpf);
    }
    tal_arena_release(sc, m);
    for (int s = sf->n_stages - 1; s >= 0; s--) {
        tal_tensor xin = sf->slow_in[s], lin = sf->lat_in[s];
        int64_t Cp = xin.shape[1] - 2 * lin.shape[1]; /* slow channels before the lateral */
        tal_tensor dxs = tal_arena_tensor_uninit(
            sc, 5, (int64_t[]){B, Cp, xin.shape[2], xin.shape[3], xin.shape[4]});
        tal_tensor dxf = tal_arena_like_uninit(sc, lin);
        m = tal_arena_mark(sc);
        tal_tensor din = tal_arena_like_uninit(sc, xin);
        rn_stage_backward(bb, sf->slow, s, din, dys, recon_err);
        rn_stage_backward(bb, sf->fast, s, dxf, dyf, recon_err);
        tal_tensor dlat = tal_arena_tensor_uninit(
            sc, 5, (int64_t[]){B, 2 * lin.shape[1], xin.shape[2], xin.shape[3], xin.shape[4]});
        tal_tensor dl = tal_arena_like_uninit(sc, lin);
        if (!plan) {
            get_channels(dxs, din, 0);
            get_channels(dlat, din, Cp);
        }
        tal_conv3d_backward(dl, bb_grad(p, sf->lat_w[s]), tal_tensor_none(), dlat, lin,
                            bb_value(p, sf->lat_w[s]), lateral_geom(sf), sc);
        if (!plan) tal_axpy(dxf, 1.0f, dl);
        tal_arena_release(sc, m);
        dys = dxs;
        dyf = dxf;
    }
    rn_stem_backward(bb, sf->slow, dys);
    rn_stem_backward(bb, sf->fast, dyf);
    tal_arena_release(sc, mark0);
}
