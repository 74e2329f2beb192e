/* app/checkpoint.c: crash-safe checkpoint folders (see checkpoint.h). */
#include "app/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

tal_status tal_write_file_atomic(const char *path, const char *text, tal_err *err) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return TAL_OK;
}

char *tal_read_file(const char *path, tal_err *err) {
    char *text = NULL;
    tal_file_read(&text, NULL, path, 0, err);
    return text;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(dir);
}

static int complete(const char *dir) {
    char p[1200];
    snprintf(p, sizeof p, "%s/state.json", dir);
    return access(p, R_OK) == 0;
}

/* The weights (EMA: its values under the parameters' names) as named tensors (caller frees the
 * array; the tensors stay borrowed). */
static tal_named_tensor *weights_of(const tal_params *p, tal_ema *ema, int *n_out) {
    int n = tal_params_count(p);
    tal_named_tensor *items = calloc((size_t)n + 1, sizeof *items);
    for (int i = 0; items && i < n; i++) {
        items[i].name = tal_params_at((tal_params *)p, i)->name;
        items[i].t = ema ? tal_ema_value(ema, i) : tal_params_at((tal_params *)p, i)->value;
    }
    *n_out = n;
    return items;
}

/* Whatever --allow-nonfinite says, a checkpoint is never written from NaN or Inf weights: a
 * diverged run's "best" would otherwise replace a good one, and load as garbage detections. */
static tal_status check_finite(const char *dir, const tal_params *p, tal_ema *ema, tal_err *err) {
    for (int pass = 0; pass < (ema ? 2 : 1); pass++) {
        int n;
        tal_named_tensor *items = weights_of(p, pass ? ema : NULL, &n);
        if (!items) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", dir);
        char what[1200];
        snprintf(what, sizeof what, "%s: not saved: %s", dir,
                 pass ? "ema.safetensors" : "model.safetensors");
        tal_status rc = tal_tensors_check_finite(items, n, what, err);
        free(items);
        if (rc) return rc;
    }
    return TAL_OK;
}

/* Forward declarations of the optimiser and EMA savers (nn/), typed loosely to keep the header
 * free of them. */
tal_status tal_ckpt_save(const char *run_dir, const char *name, const tal_params *p,
                         const void *opt, const void *ema, const tal_train_state *st, tal_err *err) {
    char dir[1024], fresh[1100], old[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", run_dir, name);
    tal_status rc = check_finite(dir, p, (tal_ema *)ema, err);
    if (rc) return rc;
    snprintf(fresh, sizeof fresh, "%s.new", dir);
    snprintf(old, sizeof old, "%s.old", dir);
    remove_tree(fresh);
    if (mkdir(fresh, 0755) != 0 && errno != EEXIST)
        return tal_err_set(err, TAL_EIO, "%s: cannot create: %s", fresh, strerror(errno));
    snprintf(path, sizeof path, "%s/model.safetensors", fresh);
    if ((rc = tal_params_save(p, path, NULL, err))) return rc;
    if (opt) {
        snprintf(path, sizeof path, "%s/optim.safetensors", fresh);
        if ((rc = tal_adamw_state_save((const tal_adamw *)opt, path, err))) return rc;
    }
    if (ema) {
        int n;
        tal_named_tensor *items = weights_of(p, (tal_ema *)ema, &n);
        if (!items) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", fresh);
        snprintf(path, sizeof path, "%s/ema.safetensors", fresh);
        rc = tal_safetensors_write(path, items, n, NULL, err);
        free(items);
        if (rc) return rc;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", st->epoch);
    cJSON_AddNumberToObject(o, "index", (double)st->index);
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "samples", (double)st->samples);
    cJSON_AddNumberToObject(o, "loss_norm", st->loss_norm);
    cJSON_AddNumberToObject(o, "best_map", st->best_map);
    cJSON_AddNumberToObject(o, "best_epoch", st->best_epoch);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/state.json", fresh);
    rc = tal_write_file_atomic(path, text, err); /* last: marks the folder complete */
    free(text);
    if (rc) return rc;
    remove_tree(old);
    if (access(dir, F_OK) == 0 && rename(dir, old) != 0)
        return tal_err_set(err, TAL_EIO, "%s: cannot move aside: %s", dir, strerror(errno));
    if (rename(fresh, dir) != 0)
        return tal_err_set(err, TAL_EIO, "%s: cannot rename: %s", fresh, strerror(errno));
    remove_tree(old);
    return TAL_OK;
}

tal_status tal_ckpt_find(char *buf, size_t size, const char *run_dir, const char *name, tal_err *err) {
    const char *suffix[] = {"", ".new", ".old"};
    for (int i = 0; i < 3; i++) {
        snprintf(buf, size, "%s/%s%s", run_dir, name, suffix[i]);
        if (complete(buf)) return TAL_OK;
    }
    return tal_err_set(err, TAL_EIO, "%s: no complete checkpoint '%s' (nothing to resume)", run_dir,
                       name);
}

tal_status tal_ckpt_read_state(const char *ckpt_dir, tal_train_state *st, tal_err *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/state.json", ckpt_dir);
    char *text = tal_read_file(path, err);
    if (!text) return err ? err->code : TAL_EIO;
    cJSON *o = cJSON_Parse(text);
    free(text);
    const char *keys[] = {"epoch", "index", "step", "samples", "loss_norm", "best_map", "best_epoch"};
    double v[7];
    for (int i = 0; i < 7; i++) {
        const cJSON *it = o ? cJSON_GetObjectItemCaseSensitive(o, keys[i]) : NULL;
        if (!cJSON_IsNumber(it)) {
            cJSON_Delete(o);
            return tal_err_set(err, TAL_EFORMAT, "%s: '%s' missing or not a number", path, keys[i]);
        }
        v[i] = it->valuedouble;
    }
    cJSON_Delete(o);
    st->epoch = (int)v[0];
    st->index = (int64_t)v[1];
    st->step = (int64_t)v[2];
    st->samples = (int64_t)v[3];
    st->loss_norm = v[4];
    st->best_map = v[5];
    st->best_epoch = (int)v[6];
    return TAL_OK;
}
