/* app/run_config.c: the run configuration's keys, defaults and JSON round trip. */
#include "app/run_config.h"

#include "app/device.h"
#include "app/pipeline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every key has a type and a range (numbers) or a set of choices where the value is not a free
 * name or path: checked when a file or --set assigns it, before any data is read. */
#define R TAL_CFG_RANGED
#define LO_OPEN (TAL_CFG_RANGED | TAL_CFG_LO_OPEN)
#define HI_OPEN (TAL_CFG_RANGED | TAL_CFG_HI_OPEN)
#define KS(key, field, doc) {key, TAL_CFG_STRING, offsetof(tal_run_config, field), 0, doc, 0, 0, 0, NULL}
#define KC(key, field, choices, doc)                                                             \
    {key, TAL_CFG_STRING, offsetof(tal_run_config, field), 0, doc, 0, 0, 0, choices}
#define KI(key, field, lo, hi, doc) {key, TAL_CFG_INT, offsetof(tal_run_config, field), 0, doc, lo, hi, R, NULL}
#define KF(key, field, lo, hi, flags, doc)                                                        \
    {key, TAL_CFG_FLOAT, offsetof(tal_run_config, field), 0, doc, lo, hi, flags, NULL}
#define BIG 1e6 /* counts (epochs, steps, frames) above this are typos */

static const tal_cfg_key KEYS[] = {
    KS("data.annotations", annotations, "ActivityNet-style annotation JSON"),
    KS("data.videos", videos, "folder holding <video id>.<ext> files"),
    KS("data.classes", classes, "class list file (default: sorted labels)"),
    KS("data.block_list", block_list, "videos left out (JSON list or one id per line)"),
    KS("data.train_subset", train_subset, "subset trained on"),
    KS("data.val_subset", val_subset, "subset evaluated on"),
    KC("data.sampler", sampler, "resize|truncate", "resize (ActivityNet) or truncate (THUMOS)"),
    KI("data.frames", frames, 1, BIG, "resize: frames spread over each video"),
    KI("data.resize_len", resize_len, 1, BIG, "resize: feature positions per video"),
    KI("data.trunc_len", trunc_len, 1, BIG, "truncate: frames per training window"),
    KI("data.frame_stride", frame_stride, 1, 1000, "truncate: video frames between samples"),
    KI("data.snippet_stride", snippet_stride, 1, 1000, "truncate: video frames per feature"),
    KF("data.trunc_thresh", trunc_thresh, 0, 1, R, "truncate: share of an action kept"),
    KF("data.window_overlap", window_overlap, 0, 1, HI_OPEN, "test windows overlap (0.5)"),
    KI("data.short_side", short_side, 1, 8192, "test: short side resized to"),
    KI("data.crop", crop, 1, 8192, "frame size the backbone sees (square)"),
    KF("data.rrc_scale_min", rrc_scale_min, 0, 1, R, "train random-resized-crop min area (0: off)"),
    KF("data.rrc_scale_max", rrc_scale_max, 0, 1, LO_OPEN, "train random-resized-crop max area"),
    KF("data.flip", flip, 0, 1, R, "train horizontal flip probability"),
    KI("data.decode_threads", decode_threads, 0, 256, "FFmpeg decoding threads (0 auto)"),
    KI("data.prefetch", prefetch, 0, 64, "clips decoded ahead by a thread (0: none)"),
    KI("data.class_agnostic", class_agnostic, 0, 1, "1: train one class 'action' (ActivityNet recipe)"),
    KI("optim.epochs", epochs, 1, BIG, "training epochs"),
    KI("optim.batch_size", batch_size, 1, 4096, "clips per step"),
    KI("optim.accum_steps", accum_steps, 1, 4096, "steps whose gradients are accumulated"),
    KF("optim.lr_head", lr_head, 0, 1, R, "head learning rate"),
    KF("optim.lr_backbone", lr_backbone, 0, 1, R, "backbone learning rate (0: frozen)"),
    KF("optim.weight_decay", weight_decay, 0, 10, R, "AdamW decay (not on norms/biases)"),
    KF("optim.warmup_epochs", warmup_epochs, 0, BIG, R, "linear warm-up length"),
    KF("optim.min_lr", min_lr, 0, 1, R, "cosine floor, as a fraction of each lr"),
    KF("optim.clip_norm", clip_norm, 0, BIG, R, "gradient clipping by global L2 norm (0: off)"),
    KF("optim.ema_decay", ema_decay, 0, 1, HI_OPEN, "weight EMA decay (0: no EMA)"),
    KI("train.seed", seed, 0, 2147483647, "seed of sampling, augmentation, init, drop-path"),
    KS("train.out_dir", out_dir, "run folder (checkpoints, logs)"),
    KS("train.pretrained", pretrained, "backbone weights (safetensors; ordinary or rewired names)"),
    KI("train.eval_every", eval_every, 0, BIG, "validate every N epochs (0: never)"),
    KI("train.eval_start", eval_start, 1, BIG, "first epoch (1-based) that validates"),
    KI("train.checkpoint_every", checkpoint_every, 0, BIG, "also checkpoint every N steps"),
    KI("train.max_steps_per_epoch", max_steps_per_epoch, 0, BIG, "cut epochs short (tests)"),
    KI("train.stop_after", stop_after, 0, BIG, "stop with a checkpoint after N updates (0: run all)"),
    KI("train.max_nonfinite_steps", max_nonfinite_steps, 1, 1000,
       "stop after N updates in a row skipped for a non-finite loss or gradient"),
    KI("train.deterministic_reduce", deterministic_reduce, 0, 1,
       "ranks: sum gradients in rank order, results independent of timing"),
    KF("train.bucket_mb", bucket_mb, 0, 4096, LO_OPEN, "ranks: MB of gradients per all-reduce"),
    KI("train.overlap_reduce", overlap_reduce, 0, 1,
       "ranks: send a bucket as soon as its backward is done"),
    {"eval.tiou", TAL_CFG_FLOATS, offsetof(tal_run_config, tiou), offsetof(tal_run_config, n_tiou),
     "tIoU thresholds of the mAP", 0, 1, LO_OPEN, NULL},
    KS("eval.classifier", classifier, "video-level class scores (CUHK JSON) for class-agnostic models"),
    KI("eval.classifier_topk", classifier_topk, 1, 1000, "classes each class-agnostic detection becomes"),
    KC("device", device, TAL_DEVICE_CHOICES,
       "where the model computes: cpu, cuda (device 0) or cuda:N (--device overrides it)"),
    KC("train.precision", precision, "fp32|bf16",
       "bf16: CUDA products on bf16 inputs, fp32 accumulation (CUDA only)"),
    KI("train.tf32", tf32, 0, 1, "1: fp32 CUDA products may use TF32 tensor cores"),
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
    c->max_nonfinite_steps = 3;
    c->deterministic_reduce = 1;
    c->bucket_mb = 25;
    c->overlap_reduce = 1;
    strcpy(c->device, "cpu");
    strcpy(c->precision, "fp32");
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
    char *text; /* a folder or device is refused by name (it once read as "out of memory") */
    tal_status rc = tal_file_read(&text, NULL, path, 0, err);
    if (rc) return rc;
    rc = tal_run_config_parse(c, text, path, err);
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

tal_status tal_run_config_validate(const tal_run_config *c, const char *where, tal_err *err) {
    if (c->n_tiou < 1)
        return tal_err_set(err, TAL_EINVAL, "%s: eval.tiou: at least one threshold", where);
    if (c->rrc_scale_min > 0 && c->rrc_scale_min > c->rrc_scale_max)
        return tal_err_set(err, TAL_EINVAL, "%s: data.rrc_scale_min %g is above "
                           "data.rrc_scale_max %g", where, c->rrc_scale_min, c->rrc_scale_max);
    tal_device_spec dev;
    if (tal_device_spec_parse(&dev, c->device, err)) return tal_err_prefix(err, "%s", where);
    if (dev.dev == TAL_DEV_CPU && !strcmp(c->precision, "bf16"))
        return tal_err_set(err, TAL_EINVAL, "%s: train.precision bf16 needs a CUDA device (device "
                           "%s computes in fp32 only): use --device cuda, or train.precision "
                           "fp32", where, c->device);
    /* the sections, as the model will read them (a placeholder class count: the dataset is not
     * read yet, and no backbone or head rule depends on it beyond >= 1) */
    tal_model_shape ms;
    tal_backbone_config b;
    tal_head_config h;
    if (tal_model_configs(c, 2, &ms, &b, &h, err)) return tal_err_prefix(err, "%s", where);
    return TAL_OK;
}

tal_status tal_run_config_read(tal_run_config *c, const char *path, const char *const *sets,
                               int n_sets, tal_err *err) {
    tal_run_config_default(c);
    tal_status rc = path ? tal_run_config_load(c, path, err) : TAL_OK;
    for (int i = 0; !rc && i < n_sets; i++) rc = tal_run_config_set(c, sets[i], err);
    if (!rc && tal_device_override()) /* --device: over the file and --set */
        snprintf(c->device, sizeof c->device, "%s", tal_device_override());
    if (!rc) rc = tal_run_config_validate(c, path ? path : "config", err);
    return rc;
}
