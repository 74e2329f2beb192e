/* app/run_data.c: the dataset a run trains and validates on: annotations loaded, classes fixed
 * (class list, class-agnostic recipe), blocked videos dropped, video files (or feature files,
 * checked and given their time grids) resolved. */
#include "app/trainer.h"

#include <stdlib.h>
#include <string.h>

void tal_run_data_free(tal_run_data *d) {
    if (d->ds && d->paths)
        for (int i = 0; i < d->ds->n_videos; i++) free(d->paths[i]);
    free(d->paths);
    free(d->feat);
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
    if (rc->block_list[0]) {
        int n_dropped = 0;
        if ((st = tal_dataset_block(d->ds, rc->block_list, &n_dropped, err))) goto fail;
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
    int features = tal_run_uses_features(rc);
    d->feature_dim = rc->feature_dim;
    if (features && !(d->feat = calloc((size_t)n + 1, sizeof *d->feat))) {
        st = tal_err_set(err, TAL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const tal_video_anno *v = &d->ds->videos[i];
        char buf[1024];
        tal_err e = {0};
        if (features ? tal_feature_path(buf, sizeof buf, rc->features, v->id, &e)
                     : tal_video_path(buf, sizeof buf, rc->videos, v->id, NULL, &e)) {
            d->n_missing++;
            continue;
        }
        /* a feature file that is there but unusable is an error now, not in epoch 3 */
        if (features && (st = tal_feature_file_open(&d->feat[i], rc, &d->feature_dim, buf, v,
                                                    err)))
            goto fail;
        d->paths[i] = strdup(buf);
        if (v->subset == tr) d->train[d->n_train++] = i;
        if (v->subset == va) d->val[d->n_val++] = i;
    }
    return TAL_OK;
fail:
    tal_run_data_free(d);
    return st;
}
