/* app/run_config.c: the run configuration's keys, defaults and JSON round trip. */
#include "app/run_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define K(key, type, field, doc) {key, type, offsetof(tal_run_config, field), 0, doc}
#define KL(key, type, field, count, doc)                                                       \
    {key, type, offsetof(tal_run_config, field), offsetof(tal_run_config, count), doc}

static const tal_cfg_key KEYS[] = {
    K("data.annotations", TAL_CFG_STRING, annotations, "ActivityNet-style annotation JSON"),
    K("data.videos", TAL_CFG_STRING, videos, "folder holding <video id>.<ext> files"),
    K("data.classes", TAL_CFG_STRING, classes, "class list file (default: sorted labels)"),
    K("data.train_subset", TAL_CFG_STRING, train_subset, "subset trained on"),
    K("data.val_subset", TAL_CFG_STRING, val_subset, "subset evaluated on"),
    K("data.sampler", TAL_CFG_STRING, sampler, "resize (ActivityNet) or truncate (THUMOS)"),
    K("data.frames", TAL_CFG_INT, frames, "resize: frames spread over each video"),
    K("data.resize_len", TAL_CFG_INT, resize_len, "resize: feature positions per video"),
    K("data.trunc_len", TAL_CFG_INT, trunc_len, "truncate: frames per training window"),
    K("data.frame_stride", TAL_CFG_INT, frame_stride, "truncate: video frames between samples"),
    K("data.snippet_stride", TAL_CFG_INT, snippet_stride, "truncate: video frames per feature"),
    K("data.trunc_thresh", TAL_CFG_FLOAT, trunc_thresh, "truncate: share of an action kept"),
    K("data.window_overlap", TAL_CFG_FLOAT, window_overlap, "test windows overlap (0.5)"),
    K("data.short_side", TAL_CFG_INT, short_side, "test: short side resized to"),
    K("data.crop", TAL_CFG_INT, crop, "frame size the backbone sees (square)"),
    K("data.rrc_scale_min", TAL_CFG_FLOAT, rrc_scale_min, "train random-resized-crop min area (<=0 off)"),
    K("data.rrc_scale_max", TAL_CFG_FLOAT, rrc_scale_max, "train random-resized-crop max area"),
    K("data.flip", TAL_CFG_FLOAT, flip, "train horizontal flip probability"),
    K("data.decode_threads", TAL_CFG_INT, decode_threads, "FFmpeg decoding threads (0 auto)"),
    K("data.prefetch", TAL_CFG_INT, prefetch, "clips decoded ahead by a thread (0: none)"),
    K("data.class_agnostic", TAL_CFG_INT, class_agnostic, "1: train one class 'action' (ActivityNet recipe)"),
    K("optim.epochs", TAL_CFG_INT, epochs, "training epochs"),
    K("optim.batch_size", TAL_CFG_INT, batch_size, "clips per step"),
    K("optim.accum_steps", TAL_CFG_INT, accum_steps, "steps whose gradients are accumulated"),
    K("optim.lr_head", TAL_CFG_FLOAT, lr_head, "head learning rate"),
    K("optim.lr_backbone", TAL_CFG_FLOAT, lr_backbone, "backbone learning rate"),
    K("optim.weight_decay", TAL_CFG_FLOAT, weight_decay, "AdamW decay (not on norms/biases)"),
    K("optim.warmup_epochs", TAL_CFG_FLOAT, warmup_epochs, "linear warm-up length"),
    K("optim.min_lr", TAL_CFG_FLOAT, min_lr, "cosine floor, as a fraction of each lr"),
    K("optim.clip_norm", TAL_CFG_FLOAT, clip_norm, "gradient clipping by global L2 norm"),
    K("optim.ema_decay", TAL_CFG_FLOAT, ema_decay, "weight EMA decay (0: no EMA)"),
    K("train.seed", TAL_CFG_INT, seed, "seed of sampling, augmentation, init, drop-path"),
    K("train.out_dir", TAL_CFG_STRING, out_dir, "run folder (checkpoints, logs)"),
    K("train.pretrained", TAL_CFG_STRING, pretrained, "backbone weights (safetensors; ordinary or rewired names)"),
    K("train.eval_every", TAL_CFG_INT, eval_every, "validate every N epochs (0: never)"),
    K("train.eval_start", TAL_CFG_INT, eval_start, "first epoch (1-based) that validates"),
    K("train.checkpoint_every", TAL_CFG_INT, checkpoint_every, "also checkpoint every N steps"),
    K("train.max_steps_per_epoch", TAL_CFG_INT, max_steps_per_epoch, "cut epochs short (tests)"),
    K("train.stop_after", TAL_CFG_INT, stop_after, "stop with a checkpoint after N updates (0: run all)"),
    KL("eval.tiou", TAL_CFG_FLOATS, tiou, n_tiou, "tIoU thresholds of the mAP"),
    K("eval.classifier", TAL_CFG_STRING, classifier, "video-level class scores (CUHK JSON) for class-agnostic models"),
    K("eval.classifier_topk", TAL_CFG_INT, classifier_topk, "classes each class-agnostic detection becomes"),
};

const tal_cfg_key *tal_run_config_keys(int *n) {
    *n = (int)(sizeof KEYS / sizeof KEYS[0]);
    return KEYS;
}

void tal_run_config_default(tal_run_config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->train_subset, "training");
    strcpy(c->val_subset, "validation");
    strcpy(c->sampler, "resize");
    c->frames = 768;
    c->resize_len = 192;
    c->trunc_len = 1024;
    c->frame_stride = 2;
    c->snippet_stride = 4;
    c->trunc_thresh = 0.75;
    c->window_overlap = 0.5;
    c->short_side = 224;
    c->crop = 224;
    c->rrc_scale_min = 0.08;
    c->rrc_scale_max = 1.0;
    c->flip = 0.5;
    c->prefetch = 2;
    c->epochs = 15;
    c->batch_size = 1;
    c->accum_steps = 1;
    c->lr_head = 1e-3;
    c->lr_backbone = 1e-5;
    c->weight_decay = 0.05;
    c->warmup_epochs = 5;
    c->min_lr = 1e-5;
    c->clip_norm = 1.0;
    c->ema_decay = 0.999;
    c->eval_every = 1;
    c->eval_start = 1;
    strcpy(c->out_dir, "runs/default");
    double t[] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95};
    memcpy(c->tiou, t, sizeof t);
    c->n_tiou = 10;
    c->classifier_topk = 2;
    strcpy(c->backbone_json, "{\"preset\": \"swin_t\"}");
    strcpy(c->head_json, "{}");
}

/* Moves the "backbone" / "head" sections out of obj into the struct as JSON text. */
static tal_status take_section(tal_run_config *c, cJSON *obj, const char *name, char *dst,
                               size_t size, const char *where, tal_err *err) {
    cJSON *sec = cJSON_DetachItemFromObjectCaseSensitive(obj, name);
    if (!sec) return TAL_OK;
    tal_status rc = TAL_OK;
    if (!cJSON_IsObject(sec)) {
        rc = tal_err_set(err, TAL_EINVAL, "%s: %s: expected an object", where, name);
    } else {
        char *text = cJSON_PrintUnformatted(sec);
        if (strlen(text) >= size)
            rc = tal_err_set(err, TAL_EINVAL, "%s: %s: section too long", where, name);
        else
            strcpy(dst, text);
        free(text);
    }
    cJSON_Delete(sec);
    (void)c;
    return rc;
}

tal_status tal_run_config_parse(tal_run_config *c, const char *json, const char *where, tal_err *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root || !cJSON_IsObject(root)) {
        int line = 1, col = 1;
        for (const char *p = json; end && p < end; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        cJSON_Delete(root);
        return tal_err_set(err, TAL_EFORMAT, "%s: line %d, column %d: not a JSON object", where,
                           line, col);
    }
    int n;
    const tal_cfg_key *keys = tal_run_config_keys(&n);
    tal_status rc = take_section(c, root, "backbone", c->backbone_json, sizeof c->backbone_json,
                                 where, err);
    if (!rc) rc = take_section(c, root, "head", c->head_json, sizeof c->head_json, where, err);
    if (!rc) rc = tal_cfg_apply_object(c, keys, n, root, where, err);
    cJSON_Delete(root);
    return rc;
}

tal_status tal_run_config_load(tal_run_config *c, const char *path, tal_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return tal_err_set(err, TAL_EIO, "%s: cannot open: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *text = malloc((size_t)size + 1);
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!text) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    text[got] = 0;
    tal_status rc = tal_run_config_parse(c, text, path, err);
    free(text);
    return rc;
}

/* Sets key (dotted, inside the section) in a JSON object text. */
static tal_status set_in_section(char *json, size_t size, const char *key, const char *value,
                                 tal_err *err) {
    cJSON *root = cJSON_Parse(json);
    cJSON *v = cJSON_Parse(value);
    if (!v) v = cJSON_CreateString(value);
    if (!root) root = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddItemToObject(root, key, v);
    char *text = cJSON_PrintUnformatted(root);
    tal_status rc = TAL_OK;
    if (strlen(text) >= size)
        rc = tal_err_set(err, TAL_EINVAL, "--set %s: section too long", key);
    else
        strcpy(json, text);
    free(text);
    cJSON_Delete(root);
    return rc;
}

tal_status tal_run_config_set(tal_run_config *c, const char *assignment, tal_err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return tal_err_set(err, TAL_EINVAL, "--set %s: expected key=value", assignment);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
    if (!strncmp(key, "backbone.", 9))
        return set_in_section(c->backbone_json, sizeof c->backbone_json, key + 9, eq + 1, err);
    if (!strncmp(key, "head.", 5))
        return set_in_section(c->head_json, sizeof c->head_json, key + 5, eq + 1, err);
    int n;
    const tal_cfg_key *keys = tal_run_config_keys(&n);
    return tal_cfg_set(c, keys, n, assignment, err);
}

char *tal_run_config_to_json(const tal_run_config *c) {
    int n;
    const tal_cfg_key *keys = tal_run_config_keys(&n);
    char *base = tal_cfg_to_json(c, keys, n);
    cJSON *root = cJSON_Parse(base);
    free(base);
    cJSON_AddItemToObject(root, "backbone", cJSON_Parse(c->backbone_json));
    cJSON_AddItemToObject(root, "head", cJSON_Parse(c->head_json));
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}
