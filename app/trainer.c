/* app/trainer.c: the training loop: run folder and resume, then epochs of updates through the
 * seams of train_loop.h (sample plan and batch source, the step, gradient reduction and update,
 * checkpoints and validation); a non-finite loss or gradient skips an update and a run of them
 * stops training with a clear error; Ctrl-C saves a checkpoint from which --resume continues
 * exactly. */
#include "app/train_loop.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/classifier.h"
#include "app/dist.h"
#include "app/progress.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ---------------------------------------------------------------- run folder ------------ */
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

/* ---------------------------------------------------------------- the run --------------- */
typedef struct trainer {
    tal_run_config *rc;
    const tal_train_opts *o;
    tal_shard sh;
    tal_run_data d;
    tal_model m;
    tal_optimizer opt;
    tal_grad_reducer red;
    tal_dist_reducer *dist;      /* data-parallel ranks: the MPI reducer behind red */
    tal_batch_source *src;
    tal_train_state ts;
    FILE *log, *json_out;
    int per_update;              /* samples per update on this rank */
    int64_t step0;               /* updates done when this process started */
    int n_bad;                   /* updates skipped in a row */
    int redo;                    /* clips of an interrupted update that --resume runs again */
    int quiet;                   /* --quiet, or not rank 0 (one progress line per job) */
    double *norm_slots;          /* [per_update x world]: see tal_update_acc.slots */
    tal_grad_span grads;         /* every gradient, one span */
    float *stash;                /* deterministic sums over several clips: the earlier clips */
    tal_arena *stash_arena;      /* the stash when the gradients are on a device */
    int agreed;                  /* the error returned is every rank's: no need to abort */
    int stop;                    /* stop after this update: agreed by every rank */
} trainer;

/* A signal is this process's; a stop must be every rank's, so with ranks only the one agreed in
 * an update's reduction counts (a signal between two updates waits for the next). */
static int stopping(const trainer *t) { return t->stop || (t->sh.world == 1 && g_stop); }

/* 5. checkpoints and validation: the writer rank writes, with the EMA weights swapped in where
 * they are what is evaluated and kept. */
static int is_writer(const trainer *t) { return t->sh.rank == 0; }

/* A checkpoint is never written from non-finite weights: the one on disk stays the last good
 * one. */
static tal_status check_finite(const trainer *t, const char *name, tal_err *err) {
    const char *first = NULL;
    int64_t bad = tal_params_count_nonfinite(t->m.params, &first);
    if (!bad) return TAL_OK;
    return tal_err_set(err, TAL_EINVAL, "not writing %s/%s at step %lld: %lld weights are not "
                       "finite (first: %s)", t->rc->out_dir, name, (long long)t->ts.step,
                       (long long)bad, first);
}

static tal_status save_last(trainer *t, tal_err *err) {
    if (!is_writer(t)) return TAL_OK;
    tal_status st = check_finite(t, "last", err);
    if (st) return st;
    return tal_ckpt_save(t->rc->out_dir, "last", t->m.params, t->opt.adamw, t->opt.ema, &t->ts,
                         err);
}

static tal_status save_best(trainer *t, tal_err *err) {
    if (!is_writer(t)) return TAL_OK;
    tal_status st = check_finite(t, "best", err);
    if (st) return st;
    if (t->opt.ema) tal_ema_swap(t->opt.ema, t->m.params); /* best/ holds the weights that scored */
    st = tal_ckpt_save(t->rc->out_dir, "best", t->m.params, NULL, NULL, &t->ts, err);
    if (t->opt.ema) tal_ema_swap(t->opt.ema, t->m.params);
    return st;
}

static tal_status validate(trainer *t, int epoch, double *avg, double *at05, tal_err *err) {
    tal_run_config *rc = t->rc;
    char results[1100], report[1100];
    snprintf(results, sizeof results, "%s/val_results.json", rc->out_dir);
    snprintf(report, sizeof report, "%s/val_eval.json", rc->out_dir);
    if (t->opt.ema) tal_ema_swap(t->opt.ema, t->m.params); /* the EMA weights, as the reference */
    int skipped = 0;
    tal_status st = tal_infer_videos(&t->m, rc, &t->d, t->d.val, t->d.n_val, results, NULL, 1,
                                     &skipped, err);
    if (t->opt.ema) tal_ema_swap(t->opt.ema, t->m.params);
    if (st) return st;
    if (is_writer(t)) st = tal_evaluate_results(rc, results, report, NULL, avg, at05, err);
    if (st) return st;
    double maps[2] = {*avg, *at05};
    if ((st = tal_dist_bcast(maps, sizeof maps, 0, err))) return st;
    *avg = maps[0], *at05 = maps[1];
    if (!t->quiet)
        fprintf(stderr, "epoch %d: validation average mAP %.4f, mAP@0.5 %.4f (%d videos%s)\n",
                epoch + 1, *avg, *at05, t->d.n_val - skipped, skipped ? ", some skipped" : "");
    return st;
}

/* The run folder, the data, the model and the optimiser, fresh or from run_dir/last. */
static tal_status setup(trainer *t, tal_err *err) {
    tal_run_config *rc = t->rc;
    const tal_train_opts *o = t->o;
    tal_status st = tal_run_data_load(&t->d, rc, err);
    if (st) return st;
    if (rc->classifier[0] && rc->eval_every > 0) { /* fail now, not after the first epoch */
        tal_video_classifier *clf = NULL;
        st = tal_classifier_load(&clf, rc->classifier, err);
        tal_classifier_destroy(clf);
        if (st) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return tal_err_set(err, st, "eval.classifier: %s (give the file with --set "
                               "eval.classifier=FILE)", msg);
        }
    }
    if (t->d.n_train == 0)
        return tal_err_set(err, TAL_EINVAL, "%s: no '%s' videos with a file in %s",
                           rc->annotations, rc->train_subset,
                           rc->videos[0] ? rc->videos : "(data.videos unset)");
    if (t->d.n_missing && !t->quiet)
        fprintf(stderr, "warning: %d annotated videos have no file in %s (skipped)\n",
                t->d.n_missing, rc->videos);
    if (make_dirs(rc->out_dir) != 0)
        return tal_err_set(err, TAL_EIO, "%s: cannot create the run folder: %s", rc->out_dir,
                           strerror(errno));
    tal_train_state fresh = {0, 0, 0, 0, 0, -1, -1};
    t->ts = fresh;
    char ckpt[1100], path[1200];
    if (o->resume) {
        if ((st = tal_ckpt_find(ckpt, sizeof ckpt, rc->out_dir, "last", err))) return st;
        if ((st = tal_ckpt_read_state(ckpt, &t->ts, err))) return st;
    }
    if ((st = tal_model_create(&t->m, rc, t->d.ds->n_classes, !o->resume, err))) return st;
    if (t->m.dev != TAL_DEV_CPU && t->sh.world > 1) /* the MPI reducer sums host gradients */
        return tal_err_set(err, TAL_EINVAL, "device %s with %d MPI ranks: ranks train on the CPU "
                           "only for now (use --device cpu)", rc->device, t->sh.world);
    if (t->m.dev != TAL_DEV_CPU) { /* the model is there: training's own state must fit too */
        tal_device_need need;
        if ((st = tal_model_device_need(&t->m, rc, 1, &need, err))) return st;
        need.weights = need.activations = 0;
        if ((st = tal_device_check_fit(rc->device, &need, err))) return st;
    }
    tal_adamw_config ac = {1.0f, 0.9f, 0.999f, 1e-8f};
    if ((st = tal_adamw_create(&t->opt.adamw, t->m.params, ac, err))) return st;
    if (o->resume) {
        if (rc->ema_decay > 0) { /* the EMA starts from its saved weights, then the live ones load */
            if ((st = load_weights(t->m.params, ckpt, "ema.safetensors", err))) return st;
            if ((st = tal_ema_create(&t->opt.ema, t->m.params, (float)rc->ema_decay, err)))
                return st;
        }
        if ((st = load_weights(t->m.params, ckpt, "model.safetensors", err))) return st;
        snprintf(path, sizeof path, "%s/optim.safetensors", ckpt);
        if ((st = tal_adamw_state_load(t->opt.adamw, path, err))) return st;
        tal_head_set_loss_normalizer(t->m.head, (float)t->ts.loss_norm);
        if (!t->quiet)
            fprintf(stderr, "resuming %s: epoch %d, sample %lld, step %lld\n", ckpt,
                    t->ts.epoch + 1, (long long)t->ts.index, (long long)t->ts.step);
    } else {
        if (rc->pretrained[0]) { /* Kinetics weights: rewired on load when the names are ordinary */
            int unused = 0;
            if ((st = tal_backbone_load(t->m.bb, t->m.params, rc->pretrained, &unused, err)))
                return st;
            if (!t->quiet)
                fprintf(stderr, "backbone weights from %s (%d tensors not used)\n",
                        rc->pretrained, unused);
        }
        if (rc->ema_decay > 0 &&
            (st = tal_ema_create(&t->opt.ema, t->m.params, (float)rc->ema_decay, err)))
            return st;
    }
    if (is_writer(t)) {
        char *cfg_text = tal_run_config_to_json(rc);
        snprintf(path, sizeof path, "%s/config.json", rc->out_dir);
        st = tal_write_file_atomic(path, cfg_text, err);
        free(cfg_text);
        if (st || (st = write_classes(rc->out_dir, t->d.ds, err))) return st;
        snprintf(path, sizeof path, "%s/log.jsonl", rc->out_dir);
        t->log = fopen(path, o->resume ? "a" : "w");
        if (!t->log) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
        t->json_out = o->log_json ? stdout : NULL;
    }
    return tal_batch_source_create(&t->src, rc, &t->d, &t->m, err);
}

/* What an update leaves in state.json when it is interrupted half-way: the state at its start,
 * so that --resume redoes its clips (the step is deterministic) and the run stays exact. */
typedef struct update_start {
    tal_train_state ts;
    float loss_norm;
} update_start;

/* The head's loss normaliser after an update: its EMA step (heads/loss.c) for each clip of the
 * update in global order, from the update's start. A clip's own loss used the start value moved
 * by that clip alone, so the numbers never depend on which rank ran which clip; with one clip per
 * update this is exactly the per-clip EMA. */
static void advance_normalizer(trainer *t, float start, const tal_update_acc *a) {
    float m = t->m.hcfg.loss_norm_momentum, n = start;
    for (int i = 0; i < a->n_slots; i++)
        if (a->slots[i] > 0) n = m * n + (1 - m) * (float)a->slots[i];
    tal_head_set_loss_normalizer(t->m.head, n);
}

static void log_update(trainer *t, int epoch, const tal_update_acc *a,
                       const tal_update_result *r) {
    char line[800], ranks[96] = "", stages[160] = "";
    double n = a->n_loss;
    if (a->n_stages > 0) { /* "recon_err" stays the worst: readers such as `re2tal report` */
        int k = snprintf(stages, sizeof stages, ", \"recon_err_stages\": [");
        for (int i = 0; i < a->n_stages; i++)
            k += snprintf(stages + k, sizeof stages - (size_t)k, "%s%.3g", i ? ", " : "",
                          a->recon_stages[i]);
        snprintf(stages + k, sizeof stages - (size_t)k, "]");
    }
    if (t->dist) /* data-parallel: what this rank waited for the reduction, in its last update */
        snprintf(ranks, sizeof ranks, ", \"ranks\": %d, \"reduce_wait_ms\": %.1f", t->sh.world,
                 1e3 * tal_dist_reducer_take_wait_s(t->dist));
    snprintf(line, sizeof line,
             "{\"epoch\": %d, \"step\": %lld, \"loss\": %.6f, \"cls\": %.6f, \"reg\": %.6f, "
             "\"lr_scale\": %.6g, \"grad_norm\": %.4f, \"recon_err\": %.3g%s, "
             "\"peak_rss\": %lld%s%s}",
             epoch + 1, (long long)t->ts.step, n ? a->loss / n : NAN, n ? a->cls / n : NAN,
             n ? a->reg / n : NAN, r->lr_scale, r->grad_norm, a->recon_max, stages,
             (long long)tal_peak_rss_bytes(), ranks, r->applied ? "" : ", \"skipped\": true");
    log_line(t->log, t->json_out, line);
}

/* A skipped update counts towards the stop; an applied one must leave finite weights. */
static tal_status check_update(trainer *t, const tal_update_acc *a, const tal_update_result *r,
                               tal_err *err) {
    const tal_run_config *rc = t->rc;
    if (r->applied) {
        t->n_bad = 0;
        const char *first = NULL;
        int64_t bad = tal_params_count_nonfinite(t->m.params, &first);
        if (bad)
            return tal_err_set(err, TAL_EINVAL,
                               "training stopped at step %lld: the update made %lld weights "
                               "non-finite (first: %s) at lr scale %.3g (optim.lr_head %g, "
                               "optim.lr_backbone %g: too high?); %s/last is the last finite "
                               "checkpoint", (long long)t->ts.step, (long long)bad, first,
                               r->lr_scale, rc->lr_head, rc->lr_backbone, rc->out_dir);
        return TAL_OK;
    }
    double n = a->n_loss;
    if (++t->n_bad < rc->max_nonfinite_steps) return TAL_OK;
    return tal_err_set(err, TAL_EINVAL,
                       "training stopped at step %lld: %d updates in a row skipped for a "
                       "non-finite loss or gradient (train.max_nonfinite_steps); the last: %g of "
                       "%g clips with a non-finite loss, mean loss %g (cls %g, reg %g), gradient "
                       "norm %g, lr scale %.3g (optim.lr_head %g, optim.lr_backbone %g); %s/last "
                       "is the last finite checkpoint",
                       (long long)t->ts.step, t->n_bad, a->n_nonfinite, a->n_nonfinite + n,
                       n ? a->loss / n : NAN, n ? a->cls / n : NAN, n ? a->reg / n : NAN,
                       r->grad_norm, r->lr_scale, rc->lr_head, rc->lr_backbone, rc->out_dir);
}

/* One update: its clips through the step from item j0 on, then reduction and the update.
 * *interrupted: Ctrl-C came before its last clip (the state is rolled back to its start). */
static tal_status run_update(trainer *t, const tal_epoch_plan *plan, int epoch, int64_t u,
                             int j0, int64_t base, tal_progress *bar, int *interrupted,
                             tal_err *err) {
    update_start start = {t->ts, tal_head_loss_normalizer(t->m.head)};
    tal_update_acc acc = {.slots = t->norm_slots, .n_slots = t->per_update * t->sh.world};
    tal_update_acc_clear(&acc);
    float scale = 1.0f / (float)(t->per_update * t->sh.world); /* the global batch mean */
    *interrupted = 0;
    int have_grads = 0; /* a clip of this update added gradients on this rank */
    for (int j = j0; j < plan->per_update; j++) {
        int64_t g = tal_epoch_sample(plan, t->sh.rank, u, j);
        if (g < 0) break;
        tal_train_item item;
        tal_err e = {0};
        tal_status ps = tal_batch_source_next(t->src, &item, &e);
        int last = j + 1 == plan->per_update || tal_epoch_sample(plan, t->sh.rank, u, j + 1) < 0;
        /* deterministic sums: this clip's gradient alone, then the earlier clips' added back */
        int aside = t->stash && have_grads && ps == TAL_OK;
        if (aside) tal_grads_set_aside(t->grads, t->stash);
        if (t->dist && last) /* its backward finishes gradients: they may go as they are done */
            tal_dist_reducer_arm(t->dist, aside ? t->stash : NULL,
                                 !(t->m.bcfg.chunk_frames > 0 &&
                                   t->m.bcfg.chunk_frames < t->m.clip_frames));
        if (ps == TAL_OK) {
            tal_step_stats ss = {0};
            /* every clip of an update starts from the update's normaliser: see norm_slots */
            tal_head_set_loss_normalizer(t->m.head, start.loss_norm);
            ps = tal_model_train_clip(&t->m, item.video, item.clip, (uint64_t)(base + g), scale,
                                      &ss, &e);
            have_grads = 1; /* even a failed step may have added some */
            if (aside && !(t->dist && last)) tal_grads_add_back(t->grads, t->stash);
            if (ps == TAL_OK) {
                tal_update_acc_add(&acc, &ss);
                int pos = ss.losses.num_pos;
                acc.slots[g - u * plan->per_update * plan->world] = pos > 1 ? pos : 1;
            }
        }
        tal_batch_source_release(t->src);
        if (ps != TAL_OK)
            tal_progress_message(bar, "warning: skipped a training clip (%s): %s",
                                 t->d.ds->videos[item.video_index].id, e.msg);
        t->ts.index = g + 1;
        t->ts.samples = base + g + 1;
        /* one process stops inside an update; ranks agree on a stop at its end (below) */
        if (g_stop && t->sh.world == 1 && !last) {
            t->redo = j + 1 - j0;
            t->ts = start.ts;
            tal_head_set_loss_normalizer(t->m.head, start.loss_norm);
            tal_params_zero_grad(t->m.params);
            *interrupted = 1;
            return TAL_OK;
        }
    }
    tal_update_result r;
    acc.stop = g_stop;
    tal_status st = tal_update_apply(&t->opt, t->m.params, &t->red, &acc, t->ts.step, &r, err);
    if (st) return st;
    if (acc.stop > 0) t->stop = 1; /* Ctrl-C on any rank: every rank stops after this update */
    advance_normalizer(t, start.loss_norm, &acc);
    t->ts.step++;
    int64_t next = (u + 1) * plan->per_update * plan->world; /* the same on every rank */
    t->ts.index = next < plan->n_samples ? next : plan->n_samples;
    t->ts.samples = base + t->ts.index;
    t->ts.loss_norm = tal_head_loss_normalizer(t->m.head);
    log_update(t, epoch, &acc, &r);
    char extra[160];
    snprintf(extra, sizeof extra, "loss %.4f  lr x%.3f%s",
             acc.n_loss ? acc.loss / acc.n_loss : NAN, r.lr_scale, r.applied ? "" : "  skipped");
    tal_progress_update(bar, t->ts.index, extra);
    if (!r.applied)
        tal_progress_message(bar, "warning: step %lld skipped: %g clip(s) with a non-finite "
                             "loss, gradient norm %g", (long long)t->ts.step, acc.n_nonfinite,
                             r.grad_norm);
    if ((st = check_update(t, &acc, &r, err))) {
        t->agreed = 1; /* decided from reduced numbers and equal weights: the same everywhere */
        return st;
    }
    if (r.applied && t->rc->checkpoint_every > 0 && t->ts.step % t->rc->checkpoint_every == 0)
        return save_last(t, err);
    return TAL_OK;
}

static tal_status end_epoch(trainer *t, int epoch, tal_train_result *res, tal_err *err) {
    const tal_run_config *rc = t->rc;
    t->ts.epoch = epoch + 1;
    t->ts.index = 0;
    t->ts.loss_norm = tal_head_loss_normalizer(t->m.head);
    int eval_now = rc->eval_every > 0 && epoch + 1 >= rc->eval_start &&
                   ((epoch + 1 - rc->eval_start) % rc->eval_every == 0 || epoch + 1 == rc->epochs);
    if (eval_now && t->d.n_val > 0) { /* every rank infers its share; rank 0 evaluates */
        double avg = -1, at05 = -1;
        tal_status st = validate(t, epoch, &avg, &at05, err);
        if (st) return st;
        res->last_map = avg;
        res->map_at_05 = at05;
        char line[256];
        snprintf(line, sizeof line, "{\"epoch\": %d, \"val_avg_map\": %.6f, \"val_map_0.5\": %.6f}",
                 epoch + 1, avg, at05);
        log_line(t->log, t->json_out, line);
        if (avg > t->ts.best_map) {
            t->ts.best_map = avg;
            t->ts.best_epoch = epoch + 1;
            if ((st = save_best(t, err))) return st;
        }
    }
    return save_last(t, err);
}

static tal_status run_epochs(trainer *t, tal_train_result *res, tal_err *err) {
    const tal_run_config *rc = t->rc;
    int64_t global = (int64_t)t->per_update * t->sh.world;
    tal_epoch_plan plan0 = tal_epoch_plan_make(t->d.n_train, t->per_update,
                                               rc->max_steps_per_epoch, t->sh.world);
    t->opt.clip_norm = rc->clip_norm;
    t->opt.total = plan0.updates * rc->epochs;
    t->opt.warmup = (int64_t)llround(rc->warmup_epochs * (double)plan0.updates);
    t->opt.min_lr = rc->min_lr;
    char ranks[96] = "";
    if (t->sh.world > 1) /* train.batch_size is per rank */
        snprintf(ranks, sizeof ranks, " (%d ranks x %d)", t->sh.world, t->per_update);
    if (!t->quiet)
        fprintf(stderr, "training %d videos (%d validation) for %d epochs: %lld updates of %lld "
                        "clip(s)%s, %lld parameters, clip [3, %d, %d, %d]\n",
                t->d.n_train, t->d.n_val, rc->epochs, (long long)t->opt.total, (long long)global,
                ranks, (long long)tal_params_numel(t->m.params, 1), t->m.clip_frames, t->m.crop,
                t->m.crop);
    if (!t->quiet && t->m.dev != TAL_DEV_CPU) { /* what crosses the bus for each clip */
        size_t clip = (size_t)3 * t->m.clip_frames * t->m.crop * t->m.crop * sizeof(float);
        size_t mask = (size_t)t->m.head_len * sizeof(float), up, down;
        tal_head_bus_bytes(t->m.head, 1, &up, &down, NULL);
        fprintf(stderr, "device %s (%s), train.precision %s%s: per clip %zu bytes to the device "
                        "(clip %zu, mask %zu, loss targets %zu), %zu back (mask and loss sums)\n",
                rc->device, tal_cuda_device_name(), rc->precision,
                rc->tf32 ? " with TF32" : "", clip + mask + up, clip, mask, up, down);
    }
    tal_status st = TAL_OK;
    for (int epoch = t->ts.epoch; epoch < rc->epochs && !stopping(t); epoch++) {
        tal_epoch_plan plan = plan0;
        int64_t first = epoch == t->ts.epoch ? t->ts.index : 0;
        int64_t base = t->ts.samples - first; /* samples of the earlier epochs */
        int64_t u0 = first / global;
        int j0 = (int)(first - u0 * global); /* non-zero only from another global batch */
        if (j0 != 0 && t->sh.world > 1) {
            t->agreed = 1; /* every rank read the same state */
            return tal_err_set(err, TAL_EINVAL, "%s/last stopped at sample %lld of epoch %d, "
                               "inside an update of this run's global batch %lld (%d ranks x "
                               "batch_size %d x accum_steps %d): resume with a global batch "
                               "that divides %lld, or with one process", rc->out_dir,
                               (long long)first, epoch + 1, (long long)global, t->sh.world,
                               rc->batch_size, rc->accum_steps, (long long)first);
        }
        if ((st = tal_batch_source_start(t->src, &plan, epoch, t->sh, u0, j0, err))) return st;
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, rc->epochs);
        tal_progress bar;
        tal_progress_start(&bar, stderr, label, "clips", plan.n_samples, t->quiet);
        bar.done = first;
        int interrupted = 0;
        for (int64_t u = u0; u < plan.updates && !interrupted; u++) {
            st = run_update(t, &plan, epoch, u, u == u0 ? j0 : 0, base, &bar, &interrupted, err);
            if (st) return st;
            if (rc->stop_after > 0 && t->ts.step - t->step0 >= rc->stop_after) t->stop = 1;
            if (stopping(t)) break;
        }
        tal_batch_source_stop(t->src);
        if (stopping(t)) break;
        tal_progress_finish(&bar, NULL);
        if ((st = end_epoch(t, epoch, res, err))) return st;
    }
    if (stopping(t)) {
        if ((st = save_last(t, err))) return st;
        res->interrupted = 1;
        if (!t->quiet && t->redo)
            fprintf(stderr, "\ninterrupted inside step %lld: its %d clip(s) done so far are run "
                    "again on --resume, so the run stays exact\n", (long long)t->ts.step + 1,
                    t->redo);
        if (!t->quiet)
            fprintf(stderr, "%sinterrupted: checkpoint saved in %s/last; continue with --resume\n",
                    t->redo ? "" : "\n", rc->out_dir);
    } else if (t->ts.best_map < 0 && (st = save_best(t, err))) { /* never validated */
        return st;
    }
    return TAL_OK;
}

tal_status tal_train_run(tal_run_config *rc, const tal_train_opts *o, tal_train_result *res,
                         tal_err *err) {
    memset(res, 0, sizeof *res);
    res->best_map = res->last_map = res->map_at_05 = -1;
    double t_start = tal_now_s();
    trainer t = {0};
    t.rc = rc;
    t.o = o;
    t.sh = tal_dist_shard();
    t.quiet = o->quiet || t.sh.rank != 0;
    t.per_update = rc->batch_size * rc->accum_steps;
    t.norm_slots = calloc((size_t)t.per_update * (size_t)t.sh.world, sizeof *t.norm_slots);
    if (!t.norm_slots) return tal_err_set(err, TAL_ENOMEM, "out of memory");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    g_stop = 0;
    tal_status st = setup(&t, err);
    int failed = t.sh.world > 1 ? tal_dist_count(st != TAL_OK) : 0; /* all start, or none */
    if (failed && !st)
        st = tal_err_set(err, TAL_EINVAL, "%d rank(s) could not start (their message says why)",
                         failed);
    t.agreed = failed > 0;
    if (!st && rc->deterministic_reduce && t.per_update > 1) {
        t.grads = tal_params_grad_span(t.m.params);
        if (t.grads.device != TAL_DEV_CPU) { /* next to the gradients */
            if (!(st = tal_arena_create(&t.stash_arena, t.grads.device,
                                        tal_arena_round(sizeof(float) * (size_t)t.grads.n),
                                        err)))
                t.stash = tal_arena_floats(t.stash_arena, t.grads.n);
            else
                tal_err_prefix(err, "a copy of the gradients (train.deterministic_reduce)");
        } else if (!(t.stash = malloc(sizeof(float) * (size_t)t.grads.n))) {
            st = tal_err_set(err, TAL_ENOMEM, "out of memory for a copy of the gradients "
                             "(%lld floats, train.deterministic_reduce)", (long long)t.grads.n);
        }
    }
    if (!st && t.sh.world > 1) { /* collective: only once every rank is set up */
        tal_dist_reduce_opts ro = {rc->bucket_mb, rc->deterministic_reduce, rc->overlap_reduce};
        if (!(st = tal_dist_reducer_create(&t.dist, t.m.params, &ro, err)))
            t.red = tal_dist_reducer_seam(t.dist);
    }
    if (!st) {
        t.step0 = t.ts.step;
        st = run_epochs(&t, res, err);
    }
    if (st && !t.agreed && t.sh.world > 1) { /* the other ranks may wait in a collective */
        fprintf(stderr, "re2tal train: rank %d on %s: %s\n", t.sh.rank, tal_dist_host(), err->msg);
        tal_dist_abort(1);
    }
    if (t.sh.world > 1) /* rank 0 may still be writing: no rank leaves before it is done */
        tal_dist_count(0);
    res->best_map = t.ts.best_map;
    res->steps = t.ts.step;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    tal_batch_source_destroy(t.src);
    tal_dist_reducer_destroy(t.dist);
    free(t.norm_slots);
    if (t.stash_arena) tal_arena_destroy(t.stash_arena);
    else free(t.stash);
    if (t.log) fclose(t.log);
    tal_ema_destroy(t.opt.ema);
    tal_adamw_destroy(t.opt.adamw);
    tal_model_destroy(&t.m);
    tal_run_data_free(&t.d);
    res->seconds = tal_now_s() - t_start;
    return st;
}
