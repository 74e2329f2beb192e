/* app/pipeline.c: the model (backbone -> spatial mean -> resize to the head's length -> head),
 * clip sampling and loading, one training step, and inference (see pipeline.h). */
#include "app/pipeline.h"

#include "app/device.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_resize(const tal_run_config *rc) { return !strcmp(rc->sampler, "resize"); }

int tal_run_uses_features(const tal_run_config *rc) { return rc->features[0] != 0; }

tal_status tal_model_configs(const tal_run_config *rc, int n_classes, tal_model_shape *ms,
                             tal_backbone_config *bcfg, tal_head_config *hcfg, tal_err *err) {
    tal_status st;
    memset(ms, 0, sizeof *ms);
    if (tal_run_uses_features(rc)) { /* the head alone: a window is trunc_len positions */
        memset(bcfg, 0, sizeof *bcfg);
        ms->head_len = is_resize(rc) ? rc->resize_len : rc->trunc_len;
        ms->feat_len = ms->head_len;
        ms->feat_ch = rc->feature_dim > 0 ? rc->feature_dim : 1; /* 0: known once data is read */
    } else {
        if ((st = tal_backbone_config_from_json(bcfg, rc->backbone_json, err)))
            return tal_err_prefix(err, "backbone");
        bcfg->seed = (uint64_t)rc->seed * 7919 + 1;
        ms->clip_frames = is_resize(rc) ? rc->frames : rc->trunc_len;
        ms->crop = rc->crop;
        ms->feat_len = tal_backbone_out_frames(bcfg, ms->clip_frames);
        ms->feat_ch = tal_backbone_out_channels(bcfg);
        ms->head_len = is_resize(rc) ? rc->resize_len
                                     : rc->trunc_len * rc->frame_stride / rc->snippet_stride;
    }
    if (ms->head_len < 1)
        return tal_err_set(err, TAL_EINVAL, "data.trunc_len %d x frame_stride %d / "
                           "snippet_stride %d leaves the head no position", rc->trunc_len,
                           rc->frame_stride, rc->snippet_stride);
    if (n_classes > 1)
        tal_head_config_thumos(hcfg);
    else
        tal_head_config_anet(hcfg);
    hcfg->seed = (uint64_t)rc->seed * 104729 + 3;
    if ((st = tal_head_config_from_json(hcfg, "head", rc->head_json, err))) return st;
    /* these follow the backbone, the dataset and the sampler whatever the section says */
    hcfg->in_channels = ms->feat_ch;
    hcfg->n_classes = n_classes;
    hcfg->max_seq_len = ms->head_len;
    if ((st = tal_head_config_check(hcfg, err))) return tal_err_prefix(err, "head");
    return TAL_OK;
}

/* The work arena: features, their gradients, the mask, and on a device the clip. */
static size_t work_bytes(const tal_model *m) {
    size_t clip = (size_t)3 * m->clip_frames * m->crop * m->crop * sizeof(float);
    return tal_arena_round((size_t)m->feat_ch * m->feat_len * 4) * 2 +
           tal_arena_round((size_t)m->feat_ch * m->head_len * 4) * 2 +
           tal_arena_round((size_t)m->head_len * 4) + 4096 +
           (m->dev != TAL_DEV_CPU ? tal_arena_round(clip) : 0);
}

/* The CUDA op workspace the largest op asks for, reserved before the first step so that it never
 * has to grow (and fail) mid-step: Swin's patch embedding unfolds one clip (or chunk) into
 * [3 kt kh kw, positions] floats. 0 for the other backbones (their convs use arenas). */
static size_t op_workspace_bytes(const tal_model *m) {
    const tal_backbone_config *c = &m->bcfg;
    if (c->arch != TAL_ARCH_SWIN) return 0;
    int64_t T = c->chunk_frames > 0 && c->chunk_frames < m->clip_frames ? c->chunk_frames
                                                                          : m->clip_frames;
    int64_t kt = c->patch[0], kh = c->patch[1], kw = c->patch[2];
    int64_t positions = (T + kt - 1) / kt * ((m->crop + kh - 1) / kh) * ((m->crop + kw - 1) / kw);
    return (size_t)(3 * kt * kh * kw * positions) * sizeof(float);
}

tal_status tal_model_device_need(const tal_model *m, const tal_run_config *rc, int training,
                                 tal_device_need *need, tal_err *err) {
    memset(need, 0, sizeof *need);
    need->frames = m->clip_frames;
    need->crop = m->crop;
    need->batch = 1;
    tal_backbone_plan bp;
    tal_status st = tal_backbone_plan_memory_on(&bp, &m->bcfg, m->dev == TAL_DEV_CPU ? TAL_DEV_CUDA
                                                : m->dev, 1, m->clip_frames, m->crop, m->crop, err);
    if (st) return st;
    int64_t all = tal_params_numel(m->params, 0), trainable = tal_params_numel(m->params, 1);
    size_t head_bwd = 0, head_act = tal_head_arena_bytes(m->head, &head_bwd);
    need->weights = (size_t)(all + trainable) * sizeof(float);
    /* the backbone prepares its training arenas for inference too (they serve both) */
    need->activations = bp.consts_bytes + bp.keep_bytes + bp.scratch_bytes + head_act + head_bwd +
                        work_bytes(m) + op_workspace_bytes(m);
    if (!training) return TAL_OK;
    /* AdamW's two moments, the EMA, the deterministic stash; the prefetched clips */
    need->optimizer = (size_t)trainable * sizeof(float) * 2 +
                      (rc->ema_decay > 0 ? (size_t)all * sizeof(float) : 0) +
                      (rc->deterministic_reduce && rc->batch_size * rc->accum_steps > 1
                           ? (size_t)trainable * sizeof(float) : 0);
    need->data = (size_t)(rc->prefetch > 0 ? rc->prefetch : 1) * 3 * m->clip_frames * m->crop *
                 m->crop * sizeof(float);
    return TAL_OK;
}

tal_status tal_model_create(tal_model *m, const tal_run_config *rc, int n_classes, int init,
                            tal_err *err) {
    memset(m, 0, sizeof *m);
    tal_model_shape ms;
    tal_status st = tal_model_configs(rc, n_classes, &ms, &m->bcfg, &m->hcfg, err);
    if (st) return st;
    m->features = tal_run_uses_features(rc);
    if (m->features && rc->feature_dim < 1) {
        st = tal_err_set(err, TAL_EINVAL, "data.feature_dim: the feature channels are not known "
                         "(set them, or let training read them from the files)");
        memset(m, 0, sizeof *m);
        return st;
    }
    tal_device_spec spec;
    if ((st = tal_device_use(rc, &spec, err))) return st;
    if (m->features && spec.dev != TAL_DEV_CPU) {
        st = tal_err_set(err, TAL_EINVAL, "device %s: feature mode (data.features) runs on the "
                         "CPU for now (device cpu)", rc->device);
        memset(m, 0, sizeof *m);
        return st;
    }
    m->clip_frames = ms.clip_frames;
    m->crop = ms.crop;
    m->feat_len = ms.feat_len;
    m->feat_ch = ms.feat_ch;
    m->head_len = ms.head_len;
    m->params = tal_params_create();
    float wd = (float)rc->weight_decay;
    int g_bb = tal_params_add_group(m->params, "backbone", (float)rc->lr_backbone, wd);
    int g_bb0 = tal_params_add_group(m->params, "backbone_no_decay", (float)rc->lr_backbone, 0);
    int g_h = tal_params_add_group(m->params, "head", (float)rc->lr_head, wd);
    int g_h0 = tal_params_add_group(m->params, "head_no_decay", (float)rc->lr_head, 0);
    if (!m->features &&
        (st = tal_backbone_create(&m->bb, &m->bcfg, m->params, g_bb, g_bb0, err)))
        goto fail;
    m->head_first_param = tal_params_count(m->params);
    if ((st = tal_head_create(&m->head, &m->hcfg, m->params, "head.", g_h, g_h0, 1, err))) goto fail;
    if ((st = tal_params_allocate(m->params, TAL_DEV_CPU, err))) goto fail;
    if (init && m->bb) tal_backbone_init(m->bb, m->bcfg.seed);
    if ((st = tal_head_init(m->head, init, err))) goto fail;
    m->dev = spec.dev;
    if (m->dev != TAL_DEV_CPU) { /* refuse what cannot fit before allocating any of it */
        tal_device_need need;
        if ((st = tal_model_device_need(m, rc, 0, &need, err)) ||
            (st = tal_device_check_fit(rc->device, &need, err)))
            goto fail;
    }
    if (m->dev != TAL_DEV_CPU && ((st = tal_params_move(m->params, m->dev, err)) ||
                                  (st = tal_head_prepare(m->head, err)) ||
                                  (st = tal_cuda_workspace_reserve(op_workspace_bytes(m), err))))
        goto fail;
    if (m->bb && (st = tal_backbone_prepare(m->bb, 1, m->clip_frames, m->crop, m->crop, err)))
        goto fail;
    int64_t clip_floats = (int64_t)3 * m->clip_frames * m->crop * m->crop;
    if ((st = tal_arena_create(&m->work, m->dev, work_bytes(m), err))) goto fail;
    m->feats = tal_arena_tensor(m->work, 3, (int64_t[]){1, m->feat_ch, m->feat_len});
    m->dfeats = tal_arena_like(m->work, m->feats);
    m->feats_head = tal_arena_tensor(m->work, 3, (int64_t[]){1, m->feat_ch, m->head_len});
    m->dfeats_head = tal_arena_like(m->work, m->feats_head);
    m->mask = tal_arena_tensor(m->work, 2, (int64_t[]){1, m->head_len});
    if (m->dev != TAL_DEV_CPU) m->video_dev = tal_arena_tensor(m->work, 1, &clip_floats);
    m->mask_host = malloc(sizeof(float) * (size_t)m->head_len);
    if (!m->mask_host) {
        st = tal_err_set(err, TAL_ENOMEM, "out of memory");
        goto fail;
    }
    return TAL_OK;
fail:
    if (m->dev != TAL_DEV_CPU) /* most often the device's memory: say what asked for it */
        tal_err_prefix(err, "model on %s: clips of %d frames at %dx%d, batch 1 (clips go through "
                       "one at a time)", rc->device, m->clip_frames, m->crop, m->crop);
    tal_model_destroy(m);
    return st;
}

void tal_model_destroy(tal_model *m) {
    tal_head_destroy(m->head);
    tal_backbone_destroy(m->bb);
    tal_params_destroy(m->params);
    tal_arena_destroy(m->work);
    tal_arena_destroy(m->pinned);
    free(m->mask_host);
    memset(m, 0, sizeof *m);
}

tal_trunc_opts tal_run_trunc_opts(const tal_run_config *rc) {
    tal_trunc_opts o;
    tal_trunc_opts_default(&o);
    o.trunc_len = rc->trunc_len;
    o.frame_stride = rc->frame_stride;
    o.snippet_stride = rc->snippet_stride;
    o.trunc_thresh = rc->trunc_thresh;
    return o;
}

tal_window_opts tal_run_window_opts(const tal_run_config *rc) {
    tal_window_opts o;
    tal_window_opts_default(&o);
    o.window_len = rc->trunc_len;
    o.window_stride = (int)lround(rc->trunc_len * (1.0 - rc->window_overlap));
    if (o.window_stride < 1) o.window_stride = 1;
    o.frame_stride = rc->frame_stride;
    o.snippet_stride = rc->snippet_stride;
    return o;
}

int tal_run_window_count(const tal_run_config *rc, int64_t n_frames) {
    if (is_resize(rc)) return 1;
    tal_window_opts o = tal_run_window_opts(rc);
    return tal_window_count(n_frames, &o);
}

tal_status tal_clip_for(tal_clip *clip, const tal_run_config *rc, const tal_video_anno *v,
                        int training, int window, tal_rng_key key, tal_err *err) {
    tal_video_meta meta = tal_video_meta_of(v);
    if (meta.n_frames <= 0)
        return tal_err_set(err, TAL_EFORMAT, "video %s: frame count unknown (the annotation "
                           "needs fps or n_frames)", v->id);
    if (is_resize(rc)) {
        tal_resize_opts o;
        tal_resize_opts_default(&o);
        o.n_frames = rc->frames;
        o.resize_len = rc->resize_len;
        return tal_sample_resize(clip, &meta, &o, err);
    }
    if (training) {
        tal_trunc_opts o = tal_run_trunc_opts(rc);
        return tal_sample_trunc(clip, &meta, &o, key, err);
    }
    tal_window_opts o = tal_run_window_opts(rc);
    return tal_sample_window(clip, &meta, &o, window, err);
}

tal_status tal_clip_times(double *times, const tal_clip *clip, const tal_video_info *in,
                          const char *path, tal_err *err) {
    double fps = in->real_fps > 0 ? in->real_fps : in->avg_fps;
    if (!(fps > 0) && in->duration_s > 0 && in->n_frames > 0) fps = in->n_frames / in->duration_s;
    if (!(fps > 0)) return tal_err_set(err, TAL_EFORMAT, "%s: no frame rate", path);
    /* frame index -> time by the stream's frame rate: the decoder then picks by PTS */
    for (int k = 0; k < clip->n_frames; k++) times[k] = (clip->frame_idx[k] + 0.5) / fps;
    return TAL_OK;
}

/* tal_clip_load, adding the decoder's trouble (corrupt packets, repaired and dropped frames) to
 * *trouble when given. */
static tal_status clip_load(tal_tensor video, const tal_run_config *rc, const char *path,
                            const tal_clip *clip, int training, tal_rng_key key,
                            tal_decode_stats *trouble, tal_err *err) {
    tal_decoder *dec = NULL;
    tal_decode_opts dopts = {.threads = rc->decode_threads};
    tal_status st = tal_decoder_open(&dec, path, &dopts, err);
    if (st) return st;
    const tal_video_info *in = tal_decoder_info(dec);
    tal_frame_transform tf;
    if (training && rc->rrc_scale_min > 0)
        tal_transform_random_resized_crop(&tf, in, rc->crop, rc->rrc_scale_min, rc->rrc_scale_max,
                                          3.0 / 4, 4.0 / 3, rc->flip, key);
    else
        tal_transform_resize_center(&tf, in, rc->short_side, rc->crop);
    if (training && rc->rrc_scale_min <= 0) {
        tal_rng_key fk = key;
        fk.stream ^= 0xf11b;
        tf.flip = tal_rng_uniform(fk, 0) < rc->flip;
    }
    double *times = malloc(sizeof(double) * (size_t)clip->n_frames);
    if (!times) {
        tal_decoder_close(dec);
        return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    if ((st = tal_clip_times(times, clip, in, path, err))) {
        free(times);
        tal_decoder_close(dec);
        return st;
    }
    tal_tensor out = tal_tensor_reshape(video, 4, (int64_t[]){3, clip->n_frames, tf.out_h, tf.out_w});
    st = tal_decoder_read_times(dec, times, clip->n_frames, &tf, out, err);
    free(times);
    const tal_decode_stats *ds = tal_decoder_stats(dec);
    if (trouble) {
        if (ds->corrupt_packets && trouble->first_error_s < 0)
            trouble->first_error_s = ds->first_error_s;
        if (ds->dropped_frames && !trouble->dropped_frames)
            trouble->first_dropped_s = ds->first_dropped_s;
        trouble->corrupt_packets += ds->corrupt_packets;
        trouble->repaired += ds->repaired;
        trouble->dropped_frames += ds->dropped_frames;
    }
    tal_decoder_close(dec);
    return st;
}

tal_status tal_clip_load(tal_tensor video, const tal_run_config *rc, const char *path,
                         const tal_clip *clip, int training, tal_rng_key key, tal_err *err) {
    return clip_load(video, rc, path, clip, training, key, NULL, err);
}

/* A clip longer than backbone.chunk_frames trains chunk by chunk (memory of one chunk). */
static int chunked(const tal_model *m) {
    return m->bcfg.chunk_frames > 0 && m->bcfg.chunk_frames < m->clip_frames;
}

static tal_tensor video5(const tal_model *m, tal_tensor video) {
    return tal_tensor_reshape(video, 5, (int64_t[]){1, 3, m->clip_frames, m->crop, m->crop});
}

size_t tal_model_input_floats(const tal_model *m) {
    if (m->features) return (size_t)m->feat_ch * m->head_len;
    return (size_t)3 * m->clip_frames * m->crop * m->crop;
}

/* The clip where the model computes: a host clip is uploaded to the model's device. */
static tal_tensor on_model_device(tal_model *m, tal_tensor video) {
    if (video.device == m->dev) return video;
    tal_copy(m->video_dev, tal_tensor_reshape(video, 1, m->video_dev.shape));
    return m->video_dev;
}

/* backbone -> [1, C, T'] -> resized to the head's length; mask from the clip. Feature mode: the
 * input already is the head's [C, T]. */
static void features_forward(tal_model *m, tal_tensor video, const tal_clip *clip, int training) {
    /* the mask first: a copy to the device waits for the queue, which is empty now */
    for (int t = 0; t < m->head_len; t++) m->mask_host[t] = t < clip->n_valid_feat ? 1.0f : 0.0f;
    tal_copy(m->mask, tal_t2(m->mask_host, 1, m->head_len));
    if (m->features) {
        tal_copy(m->feats_head, tal_tensor_reshape(video, 3, m->feats_head.shape));
        return;
    }
    tal_tensor v5 = video5(m, video);
    if (training && chunked(m))
        tal_backbone_forward_chunked_train(m->bb, m->feats, v5);
    else if (training)
        tal_backbone_forward_train(m->bb, m->feats, v5);
    else
        tal_backbone_forward(m->bb, m->feats, v5);
    tal_backbone_resize_forward(m->feats_head, m->feats);
}

void tal_model_clip_features(tal_model *m, tal_tensor video, float *feats) {
    tal_backbone_forward(m->bb, m->feats, video5(m, on_model_device(m, video)));
    tal_copy(tal_t3(feats, 1, m->feat_ch, m->feat_len), m->feats);
}

tal_status tal_model_train_clip(tal_model *m, tal_tensor video, const tal_clip *clip,
                                uint64_t step, float grad_scale, tal_step_stats *st, tal_err *err) {
    video = on_model_device(m, video); /* the chunked backward reads it again */
    if (m->bb) tal_backbone_set_step(m->bb, step);
    features_forward(m, video, clip, 1);
    tal_head_set_train(m->head, 1, step);
    tal_head_forward(m->head, m->feats_head, m->mask);
    float *segs = malloc(sizeof(float) * 2 * (size_t)(clip->n_segments + 1));
    int *labels = malloc(sizeof(int) * (size_t)(clip->n_segments + 1));
    if (!segs || !labels) {
        free(segs);
        free(labels);
        return tal_err_set(err, TAL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < clip->n_segments; i++) {
        segs[2 * i] = (float)clip->segments[i].start_s;
        segs[2 * i + 1] = (float)clip->segments[i].end_s;
        labels[i] = clip->segments[i].label;
    }
    tal_head_gt gt = {segs, labels, clip->n_segments};
    tal_status rc = tal_head_loss(m->head, &gt, 1, &st->losses, err);
    free(segs);
    free(labels);
    if (rc) return rc;
    /* scale the loss seeds, not the head's output gradient: head and backbone parameters then
     * both get the batch mean (scaling d_features alone left the head with the batch sum) */
    if (grad_scale != 1.0f) {
        for (int l = 0; l < tal_head_levels(&m->hcfg); l++) {
            tal_tensor c = tal_head_seed_cls(m->head, l), r = tal_head_seed_reg(m->head, l);
            tal_scale(c, c, grad_scale);
            tal_scale(r, r, grad_scale);
        }
    }
    tal_head_backward(m->head, m->features ? tal_tensor_none() : m->dfeats_head);
    /* the head's gradients are final; the backbone reports its blocks and layers as it goes */
    tal_params_grads_ready(m->params, m->head_first_param, tal_params_count(m->params));
    if (m->features) { /* no backbone: the input needs no gradient */
        st->recon_err = -1;
        return TAL_OK;
    }
    tal_backbone_resize_backward(m->dfeats, m->dfeats_head);
    if (chunked(m)) {
        tal_backbone_backward_chunked(m->bb, m->dfeats, video5(m, video));
        st->recon_err = -1; /* the chunks rebuild their inputs but report no error */
    } else {
        tal_backbone_backward(m->bb, m->dfeats, &st->recon_err);
    }
    st->n_stages = tal_backbone_recon_errors(m->bb, st->recon_stages);
    tal_params_grads_ready(m->params, 0, tal_params_count(m->params)); /* all: the stem too */
    return TAL_OK;
}

/* Inference in two halves: queue the clip's work (on a device it runs while the host goes on),
 * then decode its detections (waits for it). */
static void infer_queue(tal_model *m, tal_tensor video, const tal_clip *clip) {
    features_forward(m, on_model_device(m, video), clip, 0);
    tal_head_set_train(m->head, 0, 0);
    tal_head_forward(m->head, m->feats_head, m->mask);
}

static tal_status infer_decode(tal_model *m, const tal_clip *clip, tal_dets *out, tal_err *err) {
    return tal_head_decode_window(m->head, 0, &clip->time, m->hcfg.round_results, out, err);
}

tal_status tal_model_infer_clip(tal_model *m, tal_tensor video, const tal_clip *clip,
                                tal_dets *out, tal_err *err) {
    infer_queue(m, video, clip);
    return infer_decode(m, clip, out, err);
}

/* On a device: window w + 1 is decoded from the file into the other pinned buffer while the
 * device computes window w. */
static tal_status infer_windows_overlapped(tal_model *m, const tal_run_config *rc,
                                           const char *path, const tal_video_anno *v,
                                           tal_tensor video_buf, int n_windows,
                                           tal_decode_stats *trouble, tal_dets *out,
                                           tal_err *err) {
    if (!m->pinned) {
        tal_status st = tal_arena_create_pinned(&m->pinned, tal_tensor_bytes(video_buf) + 64,
                                                err);
        if (st) return st;
        m->video_host2 = tal_arena_like(m->pinned, video_buf);
    }
    tal_tensor bufs[2] = {video_buf, m->video_host2};
    tal_clip clips[2] = {{0}, {0}};
    tal_rng_key key = {0, 0, 0};
    tal_status st = tal_clip_for(&clips[0], rc, v, 0, 0, key, err);
    if (!st) st = clip_load(bufs[0], rc, path, &clips[0], 0, key, trouble, err);
    for (int w = 0; w < n_windows && !st; w++) {
        int cur = w % 2, nxt = 1 - cur;
        infer_queue(m, bufs[cur], &clips[cur]);
        if (w + 1 < n_windows) { /* the host decodes while the device computes */
            tal_clip_free(&clips[nxt]);
            st = tal_clip_for(&clips[nxt], rc, v, 0, w + 1, key, err);
            if (!st) st = clip_load(bufs[nxt], rc, path, &clips[nxt], 0, key, trouble, err);
        }
        tal_status ds = infer_decode(m, &clips[cur], out, err);
        if (!st) st = ds;
    }
    tal_clip_free(&clips[0]);
    tal_clip_free(&clips[1]);
    return st;
}

tal_status tal_model_infer_video(tal_model *m, const tal_run_config *rc, const char *path,
                                 const tal_video_anno *v, tal_tensor video_buf, tal_dets *out,
                                 tal_err *err) {
    int n_windows = tal_run_window_count(rc, tal_video_meta_of(v).n_frames);
    tal_rng_key key = {0, 0, 0};
    tal_decode_stats trouble = {.first_error_s = -1};
    int overlapped = m->dev != TAL_DEV_CPU && n_windows > 1;
    if (overlapped) {
        tal_status st = infer_windows_overlapped(m, rc, path, v, video_buf, n_windows, &trouble,
                                                 out, err);
        if (st) return st;
    }
    for (int w = 0; w < n_windows && !overlapped; w++) {
        tal_clip clip = {0};
        tal_status st = tal_clip_for(&clip, rc, v, 0, w, key, err);
        if (!st) st = clip_load(video_buf, rc, path, &clip, 0, key, &trouble, err);
        if (!st) st = tal_model_infer_clip(m, video_buf, &clip, out, err);
        tal_clip_free(&clip);
        if (st) return st;
    }
    tal_status st = tal_head_nms_video(&m->hcfg, out, tal_video_meta_of(v).duration_s, err);
    if (!st && (trouble.corrupt_packets || trouble.dropped_frames)) { /* a warning */
        char corrupt[160] = "", dropped[160] = "";
        if (trouble.corrupt_packets)
            snprintf(corrupt, sizeof corrupt, ", %lld corrupt packets skipped (first at %.2f s, "
                     "%lld frames repaired)", (long long)trouble.corrupt_packets,
                     trouble.first_error_s, (long long)trouble.repaired);
        if (trouble.dropped_frames)
            snprintf(dropped, sizeof dropped, ", %lld frames with an impossible timestamp "
                     "dropped (first stamped %.2f s)", (long long)trouble.dropped_frames,
                     trouble.first_dropped_s);
        tal_err_set(err, TAL_OK, "%s: decoded with trouble%s%s: detections from what decoded",
                    path, corrupt, dropped);
    }
    return st;
}
