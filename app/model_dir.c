/* app/model_dir.c: a trained model from its run folder (see model_dir.h). */
#include "app/model_dir.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/checkpoint.h"

static int exists(const char *dir, const char *file) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return access(p, R_OK) == 0;
}

tal_status tal_model_open_dir(tal_loaded_model *lm, const char *dir, tal_err *err) {
    memset(lm, 0, sizeof *lm);
    char run[1024], ckpt[1100], path[1200];
    snprintf(run, sizeof run, "%s", dir);
    if (exists(dir, "model.safetensors") && !exists(dir, "config.json")) { /* a checkpoint folder */
        char *slash = strrchr(run, '/');
        if (slash) *slash = 0;
        else strcpy(run, ".");
        snprintf(ckpt, sizeof ckpt, "%s", dir);
    } else if (tal_ckpt_find(ckpt, sizeof ckpt, run, "best", NULL) != TAL_OK &&
               tal_ckpt_find(ckpt, sizeof ckpt, run, "last", err) != TAL_OK) {
        return tal_err_prefix(err, "%s: not a run folder", dir);
    }
    snprintf(path, sizeof path, "%s/config.json", run);
    tal_status st = tal_run_config_read(&lm->rc, path, NULL, 0, err);
    if (st) return st;
    snprintf(path, sizeof path, "%s/classes.txt", run);
    char *text = tal_read_file(path, err);
    if (!text) return err ? err->code : TAL_EIO;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!*line) continue;
        lm->class_names = realloc(lm->class_names, sizeof(char *) * (size_t)(lm->n_classes + 1));
        lm->class_names[lm->n_classes++] = strdup(line);
    }
    free(text);
    if (lm->n_classes == 0) return tal_err_set(err, TAL_EFORMAT, "%s: no classes", path);
    if ((st = tal_model_create(&lm->m, &lm->rc, lm->n_classes, 0, err))) return st;
    snprintf(lm->checkpoint, sizeof lm->checkpoint, "%s/model.safetensors", ckpt);
    int unused = 0;
    return tal_params_load(lm->m.params, lm->checkpoint, NULL, NULL, 0, &unused, err);
}

void tal_model_close_dir(tal_loaded_model *lm) {
    tal_model_destroy(&lm->m);
    for (int i = 0; i < lm->n_classes; i++) free(lm->class_names[i]);
    free(lm->class_names);
    memset(lm, 0, sizeof *lm);
}

tal_status tal_video_anno_probe(tal_video_anno *v, const char *path, tal_err *err) {
    tal_decoder *dec = NULL;
    tal_status st = tal_decoder_open(&dec, path, NULL, err);
    if (st) return st;
    const tal_video_info *in = tal_decoder_info(dec);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    v->id = strdup(base);
    char *dot = strrchr(v->id, '.');
    if (dot && dot != v->id) *dot = 0;
    v->subset = TAL_SUBSET_TESTING;
    v->duration_s = in->duration_s;
    v->fps = in->real_fps > 0 ? in->real_fps : in->avg_fps;
    v->n_frames = in->n_frames;
    if (!in->n_frames_exact) {
        int64_t n;
        st = tal_decoder_count_frames(dec, &n, err);
        v->n_frames = n;
    }
    tal_decoder_close(dec);
    return st;
}

