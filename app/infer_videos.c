/* app/infer_videos.c: inference over a list of the run's videos (validation, `re2tal infer`,
 * the demo): every test window, pooled and Soft-NMS'd, optionally labelled by a video-level
 * classifier, written as ActivityNet results JSON and SRT subtitles. Under mpirun each rank takes
 * a share of the videos balanced by duration and writes their subtitles; rank 0 gathers the
 * detections and writes the one results file, byte for byte the one-process file. */
#include "app/trainer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/classifier.h"
#include "app/dist.h"
#include "app/progress.h"

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

/* ---------------------------------------------------------------- ranks ----------------- */
/* What a rank computed, for rank 0: per video of its share, in order: int32 index k, int32 ok,
 * then int32 count + tal_detection[count] (ok) or int32 length + message (skipped). */
typedef struct blob {
    char *data;
    size_t n, cap;
} blob;

static int blob_put(blob *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d, b->cap = cap;
    }
    if (n) memcpy(b->data + b->n, x, n);
    b->n += n;
    return 0;
}

static int blob_put_video(blob *b, int32_t k, const tal_dets *dets, const char *msg) {
    int32_t ok = msg == NULL, count = ok ? dets->n : (int32_t)strlen(msg);
    return blob_put(b, &k, 4) || blob_put(b, &ok, 4) || blob_put(b, &count, 4) ||
           blob_put(b, ok ? (const void *)dets->items : msg,
                    ok ? sizeof(tal_detection) * (size_t)count : (size_t)count);
}

/* Rank 0: every rank's videos into dets[k] / msgs[k] (NULL: done). */
static tal_status blob_take(const char *data, size_t n, int n_videos, tal_dets *dets, char **msgs,
                            tal_err *err) {
    size_t at = 0;
    while (at + 12 <= n) {
        int32_t k, ok, count;
        memcpy(&k, data + at, 4), memcpy(&ok, data + at + 4, 4), memcpy(&count, data + at + 8, 4);
        at += 12;
        size_t bytes = ok ? sizeof(tal_detection) * (size_t)count : (size_t)count;
        TAL_ASSERT_MSG(k >= 0 && k < n_videos && count >= 0 && at + bytes <= n,
                       "gathered results: video %d of %d, %d items", k, n_videos, count);
        if (ok) {
            for (int32_t i = 0; i < count; i++) {
                tal_detection x;
                memcpy(&x, data + at + sizeof x * (size_t)i, sizeof x);
                if (tal_dets_push(&dets[k], x, err)) return err->code;
            }
        } else {
            msgs[k] = strndup(data + at, (size_t)count);
            if (!msgs[k]) return tal_err_set(err, TAL_ENOMEM, "out of memory");
        }
        at += bytes;
    }
    TAL_ASSERT_MSG(at == n, "gathered results: %zu bytes left over", n - at);
    return TAL_OK;
}

/* Seconds of video: what a share is balanced by. */
static double video_cost(const tal_video_anno *v) {
    if (v->duration_s > 0) return v->duration_s;
    return v->fps > 0 && v->n_frames > 0 ? (double)v->n_frames / v->fps : 0;
}

tal_status tal_infer_videos(tal_model *m, const tal_run_config *rc, const tal_run_data *d,
                            const int *idx, int n, const char *results_path, const char *srt_dir,
                            int quiet, int *n_skipped, tal_err *err) {
    tal_status st = TAL_OK;
    tal_shard sh = tal_dist_shard();
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
    /* a model on a device: page-locked, so each window's upload is one DMA */
    st = m->dev == TAL_DEV_CPU ? tal_arena_create(&buf, TAL_DEV_CPU, floats * 4 + 64, err)
                               : tal_arena_create_pinned(&buf, floats * 4 + 64, err);
    if (st) {
        free(class_scores);
        tal_classifier_destroy(clf);
        return st;
    }
    tal_tensor video = tal_arena_tensor(buf, 1, (int64_t[]){(int64_t)floats});
    tal_dets *dets = calloc((size_t)n + 1, sizeof *dets);
    char **msgs = calloc((size_t)n + 1, sizeof *msgs); /* why video k was skipped */
    int *owner = calloc((size_t)n + 1, sizeof *owner);
    double *cost = calloc((size_t)n + 1, sizeof *cost);
    TAL_ASSERT_MSG(dets && msgs && owner && cost, "out of memory");
    int n_mine = n;
    if (sh.world > 1) {
        for (int k = 0; k < n; k++) cost[k] = video_cost(&d->ds->videos[idx[k]]);
        tal_dist_share_by_cost(cost, n, sh.world, owner);
        n_mine = 0;
        for (int k = 0; k < n; k++) n_mine += owner[k] == sh.rank;
    }
    *n_skipped = 0;
    tal_progress bar;
    tal_progress_start(&bar, stderr, "infer", "videos", n_mine, quiet || sh.rank != 0);
    for (int k = 0, done = 0; k < n; k++) {
        if (owner[k] != sh.rank) continue;
        int vi = idx[k];
        const tal_video_anno *v = &d->ds->videos[vi];
        tal_err e = {0};
        tal_status s = d->paths[vi]
                           ? tal_model_infer_video(m, rc, d->paths[vi], v, video, &dets[k], &e)
                           : tal_err_set(&e, TAL_EIO, "video %s: no file", v->id);
        if (!s && clf)
            s = fuse_classifier(clf, v->id, class_scores, rc->classifier_topk, &dets[k], &e);
        if (s) {
            if (sh.world == 1) /* ranks: rank 0 reports every skip, in order, below */
                tal_progress_message(&bar, "warning: skipped video %s: %s", v->id, e.msg);
            tal_dets_free(&dets[k]);
            msgs[k] = strdup(e.msg);
            TAL_ASSERT_MSG(msgs[k], "out of memory");
        } else if (e.msg[0]) { /* answered, but the video decoded with trouble: say which */
            tal_progress_message(&bar, "warning: %s", e.msg);
        }
        tal_progress_update(&bar, ++done, NULL);
    }
    tal_progress_finish(&bar, NULL);
    /* subtitles: whoever computed the video writes them */
    if (srt_dir) mkdir(srt_dir, 0755);
    for (int k = 0; k < n && srt_dir && !st; k++) {
        if (owner[k] != sh.rank || msgs[k]) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s.srt", srt_dir, d->ds->videos[idx[k]].id);
        st = tal_results_write_srt(p, &dets[k], names, n_names, 20, err);
    }
    if (sh.world > 1) { /* rank 0 collects the detections and the skipped videos */
        blob mine = {0};
        for (int k = 0; k < n; k++)
            if (owner[k] == sh.rank && blob_put_video(&mine, k, &dets[k], msgs[k]) != 0)
                tal_dist_abort(1);
        char *all = NULL;
        size_t *sizes = NULL;
        tal_err ge = {0};
        if (tal_dist_gather_bytes(mine.data, mine.n, 0, &all, &sizes, &ge) != TAL_OK) {
            fprintf(stderr, "re2tal: %s\n", ge.msg);
            tal_dist_abort(1);
        }
        free(mine.data);
        if (sh.rank == 0) {
            for (int k = 0; k < n; k++) { /* rebuilt from the ranks' own records, mine included */
                tal_dets_free(&dets[k]);
                free(msgs[k]);
                msgs[k] = NULL;
            }
            size_t total = 0;
            for (int r = 0; r < sh.world; r++) total += sizes[r];
            if (blob_take(all, total, n, dets, msgs, &ge) != TAL_OK) {
                fprintf(stderr, "re2tal: %s\n", ge.msg);
                tal_dist_abort(1);
            }
            for (int k = 0; k < n; k++)
                if (msgs[k]) fprintf(stderr, "warning: skipped video %s: %s\n",
                                     d->ds->videos[idx[k]].id, msgs[k]);
        }
        free(all);
        free(sizes);
    }
    int n_ok = 0;
    for (int k = 0; k < n; k++) *n_skipped += msgs[k] != NULL;
    tal_video_dets *vd = calloc((size_t)n + 1, sizeof *vd);
    for (int k = 0; k < n; k++)
        if (!msgs[k]) {
            vd[n_ok].id = d->ds->videos[idx[k]].id;
            vd[n_ok++].dets = &dets[k];
        }
    if (results_path && sh.rank == 0 && !st)
        st = tal_results_write_json(results_path, vd, n_ok, names, n_names, err);
    if (sh.world > 1) { /* every rank returns the same: counts, and rank 0's write status */
        struct { int n_skipped, st; char msg[sizeof err->msg]; } verdict = {*n_skipped, st, ""};
        if (st) snprintf(verdict.msg, sizeof verdict.msg, "%s", err->msg);
        if (tal_dist_count(st != TAL_OK) > 0 && st == TAL_OK) /* an SRT write failed elsewhere */
            st = tal_err_set(err, TAL_EIO, "another rank could not write its subtitles");
        tal_err be = {0};
        if (tal_dist_bcast(&verdict, sizeof verdict, 0, &be) != TAL_OK) {
            fprintf(stderr, "re2tal: %s\n", be.msg);
            tal_dist_abort(1);
        }
        *n_skipped = verdict.n_skipped;
        if (!st && verdict.st) st = tal_err_set(err, (tal_status)verdict.st, "%s", verdict.msg);
    }
    for (int k = 0; k < n; k++) {
        tal_dets_free(&dets[k]);
        free(msgs[k]);
    }
    free(dets);
    free(msgs);
    free(owner);
    free(cost);
    free(vd);
    free(class_scores);
    tal_classifier_destroy(clf);
    tal_arena_destroy(buf);
    return st;
}
