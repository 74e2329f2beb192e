/* app/trainer.c: the training loop (sampling order, prefetching clips, accumulation, AdamW with
 * warm-up + cosine, clipping, EMA, validation, crash-safe checkpoints, exact resume) and
 * inference over videos. */
#include "app/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/checkpoint.h"
#include "app/classifier.h"
#include "app/progress.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ---------------------------------------------------------------- data ------------------- */
void tal_run_data_free(tal_run_data *d) {
    if (d->ds && d->paths)
        for (int i = 0; i < d->ds->n_videos; i++) free(d->paths[i]);
    free(d->paths);
    free(d->train);
    free(d->val);
    tal_dataset_destroy(d->ds);
    memset(d, 0, sizeof *d);
}

/* The ActivityNet recipe: one class, "action"; the labels come back from a video-level
 * classifier at inference (eval.classifier). */
static tal_status make_class_agnostic(tal_dataset *ds, tal_err *err) {
    char *action = strdup("action");
    char **names = malloc(sizeof *names);
    if (!action || !names) {
        free(action);
        free(names);
        return tal_err_set(err, TAL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < ds->n_classes; i++) free(ds->class_names[i]);
    free(ds->class_names);
    names[0] = action;
    ds->class_names = names;
    ds->n_classes = 1;
    for (int i = 0; i < ds->n_videos; i++)
        for (int j = 0; j < ds->videos[i].n_segments; j++) ds->videos[i].segments[j].label = 0;
    return TAL_OK;
}

tal_status tal_run_data_load(tal_run_data *d, const tal_run_config *rc, tal_err *err) {
    memset(d, 0, sizeof *d);
    if (!rc->annotations[0])
        return tal_err_set(err, TAL_EINVAL, "data.annotations: no annotation file given");
    tal_status st = tal_dataset_load(&d->ds, rc->annotations, NULL, err);
    if (st) return st;
    if (rc->classes[0]) {
        tal_class_map map = {0};
        int n_unknown = 0;
        if ((st = tal_class_map_load(&map, rc->classes, err))) goto fail;
        st = tal_dataset_set_classes(d->ds, &map, &n_unknown, err);
        tal_class_map_free(&map);
        if (st) goto fail;
    }
    if (rc->class_agnostic != 0 && rc->class_agnostic != 1) {
        st = tal_err_set(err, TAL_EINVAL, "data.class_agnostic: expected 0 or 1, got %d",
                         rc->class_agnostic);
        goto fail;
    }
    if (rc->class_agnostic && (st = make_class_agnostic(d->ds, err))) goto fail;
    tal_subset tr, va;
    if ((st = tal_subset_parse(&tr, rc->train_subset, err))) goto fail;
    if ((st = tal_subset_parse(&va, rc->val_subset, err))) goto fail;
    int n = d->ds->n_videos;
    d->paths = calloc((size_t)n + 1, sizeof *d->paths);
    d->train = malloc(sizeof(int) * ((size_t)n + 1));
    d->val = malloc(sizeof(int) * ((size_t)n + 1));
    if (!d->paths || !d->train || !d->val) {
        st = tal_err_set(err, TAL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const tal_video_anno *v = &d->ds->videos[i];
        char buf[1024];
        tal_err e = {0};
        if (tal_video_path(buf, sizeof buf, rc->videos, v->id, NULL, &e) != TAL_OK) {
            d->n_missing++;
            continue;
        }
        d->paths[i] = strdup(buf);
        if (v->subset == tr) d->train[d->n_train++] = i;
        if (v->subset == va) d->val[d->n_val++] = i;
    }
    return TAL_OK;
fail:
    tal_run_data_free(d);
    return st;
}

/* ---------------------------------------------------------------- clip prefetching ------- */
typedef struct loader {
    const tal_run_config *rc;
    const tal_run_data *d;
    const int *order;
    int64_t first;            /* sample index of item 0 */
    int epoch;
    tal_tensor *videos;       /* per slot */
    tal_clip *clips;          /* per slot */
} loader;

static tal_rng_key sample_key(const tal_run_config *rc, int epoch, int64_t i) {
    tal_rng_key k = {(uint64_t)rc->seed, (uint64_t)epoch, 0x5a3d1e00u + (uint64_t)i};
    return k;
}

static tal_status produce(int64_t item, int slot, void *ctx, tal_err *err) {
    loader *L = ctx;
    int64_t i = L->first + item;
    int vi = L->order[i];
    const tal_video_anno *v = &L->d->ds->videos[vi];
    tal_clip_free(&L->clips[slot]);
    tal_rng_key key = sample_key(L->rc, L->epoch, i);
    tal_status st = tal_clip_for(&L->clips[slot], L->rc, v, 1, 0, key, err);
    if (!st) st = tal_clip_load(L->videos[slot], L->rc, L->d->paths[vi], &L->clips[slot], 1, key, err);
    return st;
}

static void epoch_order(int *order, const tal_run_data *d, const tal_run_config *rc, int epoch) {
    for (int i = 0; i < d->n_train; i++) order[i] = d->train[i];
    tal_rng_key k = {(uint64_t)rc->seed, (uint64_t)epoch, 0x0de5};
    for (int i = d->n_train - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(tal_rng_u64(k, (uint64_t)i) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---------------------------------------------------------------- logging ----------------- */
static void log_line(FILE *log, FILE *json_out, const char *json) {
    if (log) {
        fprintf(log, "%s\n", json);
        fflush(log);
    }
    if (json_out) {
        fprintf(json_out, "%s\n", json);
        fflush(json_out);
    }
}

static tal_status write_classes(const char *run_dir, const tal_dataset *ds, tal_err *err) {
    size_t size = 1;
    for (int i = 0; i < ds->n_classes; i++) size += strlen(ds->class_names[i]) + 1;
    char *text = malloc(size), path[1100];
    if (!text) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    text[0] = 0;
    for (int i = 0; i < ds->n_classes; i++) strcat(strcat(text, ds->class_names[i]), "\n");
    snprintf(path, sizeof path, "%s/classes.txt", run_dir);
    tal_status st = tal_write_file_atomic(path, text, err);
    free(text);
    return st;
}

static tal_status load_weights(tal_params *p, const char *dir, const char *file, tal_err *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int unused = 0;
    return tal_params_load(p, path, NULL, NULL, 0, &unused, err);
}

/* ---------------------------------------------------------------- validation ------------- */
static tal_status validate(tal_model *m, tal_run_config *rc, const tal_run_data *d, tal_ema *ema,
                           int epoch, int quiet, double *avg, double *at05, tal_err *err) {
    char results[1100], report[1100];
    snprintf(results, sizeof results, "%s/val_results.json", rc->out_dir);
    snprintf(report, sizeof report, "%s/val_eval.json", rc->out_dir);
    if (ema) tal_ema_swap(ema, m->params); /* evaluate the EMA weights, as the reference */
    int skipped = 0;
    tal_status st = tal_infer_videos(m, rc, d, d->val, d->n_val, results, NULL, 1, &skipped, err);
    if (ema) tal_ema_swap(ema, m->params);
    if (st) return st;
    st = tal_evaluate_results(rc, results, report, NULL, avg, at05, err);
    if (!st && !quiet)
        fprintf(stderr, "epoch %d: validation average mAP %.4f, mAP@0.5 %.4f (%d videos%s)\n",
                epoch + 1, *avg, *at05, d->n_val - skipped, skipped ? ", some skipped" : "");
    return st;
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* ---------------------------------------------------------------- training -------------- */
tal_status tal_train_run(tal_run_config *rc, const tal_train_opts *o, tal_train_result *res,
                         tal_err *err) {
    memset(res, 0, sizeof *res);
    res->best_map = res->last_map = res->map_at_05 = -1;
    double t_start = tal_now_s();
    tal_run_data d;
    tal_status st = tal_run_data_load(&d, rc, err);
    if (st) return st;
    if (rc->classifier[0] && rc->eval_every > 0) { /* fail now, not after the first epoch */
        tal_video_classifier *clf = NULL;
        st = tal_classifier_load(&clf, rc->classifier, err);
        tal_classifier_destroy(clf);
        if (st) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            tal_err_set(err, st, "eval.classifier: %s (give the file with --set eval.classifier=FILE)", msg);
            tal_run_data_free(&d);
            return st;
        }
    }
    tal_model m = {0};
    tal_adamw *opt = NULL;
    tal_ema *ema = NULL;
    tal_prefetch *pf = NULL;
    FILE *log = NULL;
    int *order = NULL, depth = rc->prefetch > 0 ? rc->prefetch : 1;
    tal_tensor *videos = NULL;
    tal_clip *clips = NULL;
    tal_arena *clip_arena = NULL;
    char path[1200], ckpt[1100];
    if (d.n_train == 0) {
        st = tal_err_set(err, TAL_EINVAL, "%s: no '%s' videos with a file in %s", rc->annotations,
                         rc->train_subset, rc->videos[0] ? rc->videos : "(data.videos unset)");
        goto done;
    }
    if (d.n_missing && !o->quiet)
        fprintf(stderr, "warning: %d annotated videos have no file in %s (skipped)\n", d.n_missing,
                rc->videos);
    if (make_dirs(rc->out_dir) != 0) {
        st = tal_err_set(err, TAL_EIO, "%s: cannot create the run folder: %s", rc->out_dir,
                         strerror(errno));
        goto done;
    }
    tal_train_state ts = {0, 0, 0, 0, 0, -1, -1};
    if (o->resume) {
        if ((st = tal_ckpt_find(ckpt, sizeof ckpt, rc->out_dir, "last", err))) goto done;
        if ((st = tal_ckpt_read_state(ckpt, &ts, err))) goto done;
    }
    if ((st = tal_model_create(&m, rc, d.ds->n_classes, !o->resume, err))) goto done;
    tal_adamw_config ac = {1.0f, 0.9f, 0.999f, 1e-8f};
    if ((st = tal_adamw_create(&opt, m.params, ac, err))) goto done;
    if (o->resume) {
        snprintf(path, sizeof path, "%s/ema.safetensors", ckpt);
        if (rc->ema_decay > 0 && (st = load_weights(m.params, ckpt, "ema.safetensors", err))) goto done;
        if (rc->ema_decay > 0 && (st = tal_ema_create(&ema, m.params, (float)rc->ema_decay, err)))
            goto done;
        if ((st = load_weights(m.params, ckpt, "model.safetensors", err))) goto done;
        snprintf(path, sizeof path, "%s/optim.safetensors", ckpt);
        if ((st = tal_adamw_state_load(opt, path, err))) goto done;
        tal_head_set_loss_normalizer(m.head, (float)ts.loss_norm);
        if (!o->quiet)
            fprintf(stderr, "resuming %s: epoch %d, sample %lld, step %lld\n", ckpt, ts.epoch + 1,
                    (long long)ts.index, (long long)ts.step);
    } else {
        if (rc->pretrained[0]) { /* Kinetics weights: rewired on load when the names are ordinary */
            int unused = 0;
            if ((st = tal_backbone_load(m.bb, m.params, rc->pretrained, &unused, err))) goto done;
            if (!o->quiet)
                fprintf(stderr, "backbone weights from %s (%d tensors not used)\n", rc->pretrained,
                        unused);
        }
        if (rc->ema_decay > 0 && (st = tal_ema_create(&ema, m.params, (float)rc->ema_decay, err)))
            goto done;
    }
    char *cfg_text = tal_run_config_to_json(rc);
    snprintf(path, sizeof path, "%s/config.json", rc->out_dir);
    st = tal_write_file_atomic(path, cfg_text, err);
    free(cfg_text);
    if (st || (st = write_classes(rc->out_dir, d.ds, err))) goto done;
    snprintf(path, sizeof path, "%s/log.jsonl", rc->out_dir);
    log = fopen(path, o->resume ? "a" : "w");
    if (!log) {
        st = tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }
    /* clip buffers, one per prefetch slot */
    size_t clip_floats = (size_t)3 * m.clip_frames * m.crop * m.crop;
    if ((st = tal_arena_create(&clip_arena, TAL_DEV_CPU,
                               (size_t)depth * tal_arena_round(clip_floats * 4), err)))
        goto done;
    videos = calloc((size_t)depth, sizeof *videos);
    clips = calloc((size_t)depth, sizeof *clips);
    order = malloc(sizeof(int) * (size_t)d.n_train);
    for (int s = 0; s < depth; s++)
        videos[s] = tal_arena_tensor(clip_arena, 1, (int64_t[]){(int64_t)clip_floats});
    int per_update = rc->batch_size * rc->accum_steps > 0 ? rc->batch_size * rc->accum_steps : 1;
    int64_t per_epoch = d.n_train;
    if (rc->max_steps_per_epoch > 0 && rc->max_steps_per_epoch * (int64_t)per_update < per_epoch)
        per_epoch = rc->max_steps_per_epoch * (int64_t)per_update;
    int64_t updates_per_epoch = (per_epoch + per_update - 1) / per_update;
    int64_t total_updates = updates_per_epoch * rc->epochs;
    int64_t warmup = (int64_t)llround(rc->warmup_epochs * updates_per_epoch);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    g_stop = 0;
    if (!o->quiet)
        fprintf(stderr, "training %d videos (%d validation) for %d epochs: %lld updates of %d "
                        "clip(s), %lld parameters, clip [3, %d, %d, %d]\n",
                d.n_train, d.n_val, rc->epochs, (long long)total_updates, per_update,
                (long long)tal_params_numel(m.params, 1), m.clip_frames, m.crop, m.crop);
    tal_progress bar;
    int64_t step0 = ts.step;
    for (int epoch = ts.epoch; epoch < rc->epochs && !g_stop; epoch++) {
        epoch_order(order, &d, rc, epoch);
        int64_t first = epoch == ts.epoch ? ts.index : 0;
        loader L = {rc, &d, order, first, epoch, videos, clips};
        if ((st = tal_prefetch_start(&pf, per_epoch - first, depth, produce, &L, err))) goto done;
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, rc->epochs);
        tal_progress_start(&bar, stderr, label, "clips", per_epoch, o->quiet);
        bar.done = first;
        double loss_sum = 0, cls_sum = 0, reg_sum = 0, recon_max = -1;
        int n_in_update = 0, n_loss = 0;
        for (int64_t i = first; i < per_epoch; i++) {
            int slot;
            tal_err e = {0};
            tal_status ps = tal_prefetch_wait(pf, i - first, &slot, &e);
            if (ps == TAL_OK) {
                tal_step_stats ss = {0};
                float scale = 1.0f / (float)per_update;
                ps = tal_model_train_clip(&m, videos[slot], &clips[slot], (uint64_t)ts.samples, scale,
                                          &ss, &e);
                if (ps == TAL_OK) {
                    loss_sum += ss.losses.total;
                    cls_sum += ss.losses.cls;
                    reg_sum += ss.losses.reg;
                    if (ss.recon_err > recon_max) recon_max = ss.recon_err;
                    n_loss++;
                }
            }
            tal_prefetch_release(pf, i - first);
            if (ps != TAL_OK)
                tal_progress_message(&bar, "warning: skipped a training clip: %s", e.msg);
            ts.samples++;
            ts.index = i + 1;
            if (++n_in_update == per_update || i + 1 == per_epoch) {
                double norm = tal_params_clip_grad_norm(m.params, rc->clip_norm);
                float f = tal_lr_warmup_cosine(ts.step, warmup, total_updates, 1.0f, (float)rc->min_lr);
                tal_adamw_step(opt, f);
                tal_params_zero_grad(m.params);
                if (ema) tal_ema_update(ema, m.params);
                ts.step++;
                char line[512], extra[160];
                double loss = n_loss ? loss_sum / n_loss : NAN;
                snprintf(line, sizeof line,
                         "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"cls\": %.6f, "
                         "\"reg\": %.6f, \"lr_scale\": %.6g, \"grad_norm\": %.4f, "
                         "\"recon_err\": %.3g, \"peak_rss\": %lld}",
                         epoch + 1, (long long)ts.step, loss, n_loss ? cls_sum / n_loss : NAN,
                         n_loss ? reg_sum / n_loss : NAN, f, norm, recon_max,
                         (long long)tal_peak_rss_bytes());
                log_line(log, o->log_json ? stdout : NULL, line);
                snprintf(extra, sizeof extra, "loss %.4f  lr x%.3f", loss, f);
                tal_progress_update(&bar, i + 1, extra);
                loss_sum = cls_sum = reg_sum = 0;
                recon_max = -1;
                n_in_update = n_loss = 0;
                ts.loss_norm = tal_head_loss_normalizer(m.head);
                if (rc->checkpoint_every > 0 && ts.step % rc->checkpoint_every == 0 &&
                    (st = tal_ckpt_save(rc->out_dir, "last", m.params, opt, ema, &ts, err)))
                    goto done;
            }
            if (rc->stop_after > 0 && ts.step - step0 >= rc->stop_after && n_in_update == 0) g_stop = 1;
            if (g_stop) break;
        }
        tal_prefetch_stop(pf);
        pf = NULL;
        if (g_stop) break;
        tal_progress_finish(&bar, NULL);
        ts.epoch = epoch + 1;
        ts.index = 0;
        ts.loss_norm = tal_head_loss_normalizer(m.head);
        int eval_now = rc->eval_every > 0 && epoch + 1 >= rc->eval_start &&
                       ((epoch + 1 - rc->eval_start) % rc->eval_every == 0 || epoch + 1 == rc->epochs);
        if (eval_now && d.n_val > 0) {
            double avg = -1, at05 = -1;
            if ((st = validate(&m, rc, &d, ema, epoch, o->quiet, &avg, &at05, err))) goto done;
            res->last_map = avg;
            res->map_at_05 = at05;
            char line[256];
            snprintf(line, sizeof line, "{\"epoch\": %d, \"val_avg_map\": %.6f, \"val_map_0.5\": %.6f}",
                     epoch + 1, avg, at05);
            log_line(log, o->log_json ? stdout : NULL, line);
            if (avg > ts.best_map) {
                ts.best_map = avg;
                ts.best_epoch = epoch + 1;
                if (ema) tal_ema_swap(ema, m.params); /* best/ holds the weights that scored */
                st = tal_ckpt_save(rc->out_dir, "best", m.params, NULL, NULL, &ts, err);
                if (ema) tal_ema_swap(ema, m.params);
                if (st) goto done;
            }
        }
        if ((st = tal_ckpt_save(rc->out_dir, "last", m.params, opt, ema, &ts, err))) goto done;
    }
    if (g_stop) {
        ts.loss_norm = tal_head_loss_normalizer(m.head);
        if ((st = tal_ckpt_save(rc->out_dir, "last", m.params, opt, ema, &ts, err))) goto done;
        res->interrupted = 1;
        if (!o->quiet)
            fprintf(stderr, "\ninterrupted: checkpoint saved in %s/last; continue with --resume\n",
                    rc->out_dir);
    } else if (ts.best_map < 0) { /* never validated: best = last weights (EMA if on) */
        if (ema) tal_ema_swap(ema, m.params);
        st = tal_ckpt_save(rc->out_dir, "best", m.params, NULL, NULL, &ts, err);
        if (ema) tal_ema_swap(ema, m.params);
        if (st) goto done;
    }
    res->best_map = ts.best_map;
    res->steps = ts.step;
done:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    tal_prefetch_stop(pf);
    if (clips)
        for (int s = 0; s < depth; s++) tal_clip_free(&clips[s]);
    free(clips);
    free(videos);
    free(order);
    tal_arena_destroy(clip_arena);
    if (log) fclose(log);
    tal_ema_destroy(ema);
    tal_adamw_destroy(opt);
    tal_model_destroy(&m);
    tal_run_data_free(&d);
    res->seconds = tal_now_s() - t_start;
    return st;
}

/* ---------------------------------------------------------------- inference ------------- */
/* Class-agnostic detections -> top-k classes of the video-level classifier (spec §8.5). */
static tal_status fuse_classifier(const tal_video_classifier *clf, const char *video_id,
                                  float *scores, int top_k, tal_dets *dets, tal_err *err) {
    tal_status st = tal_classifier_scores(clf, video_id, scores, err);
    if (st) return st;
    tal_dets fused = {0};
    if ((st = tal_dets_fuse_classifier(&fused, dets, scores, tal_classifier_n_classes(clf), top_k,
                                       err))) {
        tal_dets_free(&fused);
        return st;
    }
    tal_dets_free(dets);
    *dets = fused;
    return TAL_OK;
}

tal_status tal_infer_videos(tal_model *m, const tal_run_config *rc, const tal_run_data *d,
                            const int *idx, int n, const char *results_path, const char *srt_dir,
                            int quiet, int *n_skipped, tal_err *err) {
    tal_status st = TAL_OK;
    char *const *names = d->ds->class_names;
    int n_names = d->ds->n_classes;
    tal_video_classifier *clf = NULL;
    if (rc->classifier[0]) {
        if (d->ds->n_classes != 1)
            return tal_err_set(err, TAL_EINVAL, "eval.classifier %s: the model has %d classes; a "
                               "video-level classifier labels class-agnostic detections only "
                               "(train with data.class_agnostic 1)", rc->classifier, d->ds->n_classes);
        if (rc->classifier_topk < 1)
            return tal_err_set(err, TAL_EINVAL, "eval.classifier_topk: expected >= 1, got %d",
                               rc->classifier_topk);
        if ((st = tal_classifier_load(&clf, rc->classifier, err))) return st;
        names = tal_classifier_class_names(clf);
        n_names = tal_classifier_n_classes(clf);
    }
    float *class_scores = clf ? malloc(sizeof(float) * (size_t)n_names) : NULL;
    tal_arena *buf = NULL;
    size_t floats = (size_t)3 * m->clip_frames * m->crop * m->crop;
    if ((st = tal_arena_create(&buf, TAL_DEV_CPU, floats * 4 + 64, err))) {
        free(class_scores);
        tal_classifier_destroy(clf);
        return st;
    }
    tal_tensor video = tal_arena_tensor(buf, 1, (int64_t[]){(int64_t)floats});
    tal_dets *dets = calloc((size_t)n + 1, sizeof *dets);
    tal_video_dets *vd = calloc((size_t)n + 1, sizeof *vd);
    int n_ok = 0;
    *n_skipped = 0;
    tal_progress bar;
    tal_progress_start(&bar, stderr, "infer", "videos", n, quiet);
    for (int k = 0; k < n; k++) {
        int vi = idx[k];
        const tal_video_anno *v = &d->ds->videos[vi];
        tal_err e = {0};
        tal_status s = d->paths[vi] ? tal_model_infer_video(m, rc, d->paths[vi], v, video, &dets[n_ok], &e)
                                    : tal_err_set(&e, TAL_EIO, "video %s: no file", v->id);
        if (!s && clf) s = fuse_classifier(clf, v->id, class_scores, rc->classifier_topk, &dets[n_ok], &e);
        if (s) {
            tal_progress_message(&bar, "warning: skipped video %s: %s", v->id, e.msg);
            tal_dets_free(&dets[n_ok]);
            ++*n_skipped;
        } else {
            vd[n_ok].id = v->id;
            vd[n_ok].dets = &dets[n_ok];
            n_ok++;
        }
        tal_progress_update(&bar, k + 1, NULL);
    }
    tal_progress_finish(&bar, NULL);
    if (results_path)
        st = tal_results_write_json(results_path, vd, n_ok, names, n_names, err);
    if (!st && srt_dir) {
        mkdir(srt_dir, 0755);
        for (int k = 0; k < n_ok && !st; k++) {
            char p[1200];
            snprintf(p, sizeof p, "%s/%s.srt", srt_dir, vd[k].id);
            st = tal_results_write_srt(p, vd[k].dets, names, n_names, 20, err);
        }
    }
    for (int k = 0; k < n; k++) tal_dets_free(&dets[k]);
    free(dets);
    free(vd);
    free(class_scores);
    tal_classifier_destroy(clf);
    tal_arena_destroy(buf);
    return st;
}
