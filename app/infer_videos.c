/* app/infer_videos.c: inference over a list of the run's videos (validation, `re2tal infer`,
 * the demo), from the video files or the feature files: every test window, pooled and
 * Soft-NMS'd, optionally labelled by a video-level classifier, written as ActivityNet results
 * JSON and SRT subtitles. */
#include "app/trainer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/classifier.h"
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
    size_t floats = tal_model_input_floats(m);
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
        tal_status s = !d->paths[vi] ? tal_err_set(&e, TAL_EIO, "video %s: no file", v->id)
                       : m->features ? tal_model_infer_features(m, rc, d->paths[vi], v, &d->feat[vi],
                                                                video, &dets[n_ok], &e)
                                     : tal_model_infer_video(m, rc, d->paths[vi], v, video,
                                                             &dets[n_ok], &e);
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
