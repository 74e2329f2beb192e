/* app/cmd_import.c: `re2tal import CKPT --config CONFIG --out RUN_DIR`: a whole detector
 * checkpoint from OpenTAD (backbone + projection + neck + head, converted to safetensors by
 * tools/convert_checkpoint.py) becomes a run folder that infer, extract and train --resume
 * accept. Every tensor is matched by name and every mismatch listed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/checkpoint.h"
#include "app/commands.h"
#include "app/trainer.h"
#include "app/weights.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal import CKPT.safetensors --config CONFIG.json --out RUN_DIR\n"
            "                     [--classes FILE] [--set KEY=VALUE ...] [--allow-unused]\n\n"
            "Turns a trained detector from OpenTAD (convert its .pth first:\n"
            "tools/convert_checkpoint.py epoch_N.pth model.safetensors, which takes the EMA\n"
            "weights OpenTAD evaluates when the file has them) into a run folder: config.json\n"
            "(CONFIG as given, with --set applied), classes.txt, best/ and last/ (for --resume:\n"
            "fresh optimiser state, step 0), import.json (where the weights came from). Then:\n"
            "  re2tal infer --model RUN_DIR VIDEO...        detections as OpenTAD's\n"
            "  re2tal extract --model RUN_DIR VIDEO... --out DIR\n"
            "  re2tal train RUN_DIR/config.json --resume --set data.annotations=...  fine-tune\n\n"
            "Names: OpenTAD's (\"module.\" and \"backbone.model.backbone.\" prefixes, rewired\n"
            "\"...inv_block.Fm/Gm...\" blocks, \"projection.\", \"neck.\", \"rpn_head.\") map onto\n"
            "this model's; every parameter must be found with its shape. Missing parameters,\n"
            "wrong shapes and tensors that map to nothing are listed by name; the last are an\n"
            "error unless --allow-unused. Buffers (relative_position_index, loss_normalizer,\n"
            "num_batches_tracked) are not needed; the loss normaliser is kept for fine-tuning.\n\n"
            "  --classes FILE  class names in the head's order (one a line, or THUMOS'\n"
            "                  detclasslist.txt); default: data.classes, else the sorted labels of\n"
            "                  data.annotations; a class-agnostic config has one class, action\n"
            "Post-processing: like OpenTAD, a sliding window's segments are clipped only to the\n"
            "video, not to the window (head.clip_to_window 0, the default), and no short segment\n"
            "is dropped (the run folder gets head.duration_thresh 0 unless --set gives one), so\n"
            "infer gives OpenTAD's detections; head.clip_to_window 1 clips to the window.\n");
}

/* Checkpoint name -> parameter: the head's (OpenTAD names, prefix "head."), else the
 * backbone's (canonical or rewired names). */
static const char *import_name(const char *file_name, char *buf, size_t size, void *ctx) {
    const tal_model *m = ctx;
    const char *h = tal_head_checkpoint_name(file_name, buf, size, m->head);
    return h ? h : tal_backbone_canonical_name(file_name, buf, size, NULL);
}

/* The class names: --classes, data.classes, the annotations' labels, or "action". */
static tal_status load_classes(tal_class_map *map, const tal_run_config *rc, const char *file,
                               tal_err *err) {
    memset(map, 0, sizeof *map);
    if (rc->class_agnostic) {
        map->names = malloc(sizeof *map->names);
        if (!map->names || !(map->names[0] = strdup("action")))
            return tal_err_set(err, TAL_ENOMEM, "out of memory");
        map->n = 1;
        return TAL_OK;
    }
    if (file || rc->classes[0]) return tal_class_map_load(map, file ? file : rc->classes, err);
    if (!rc->annotations[0])
        return tal_err_set(err, TAL_EINVAL, "the class names are unknown: give --classes FILE "
                           "(one name a line, in the head's order) or data.annotations");
    tal_dataset *ds = NULL;
    tal_status st = tal_dataset_load(&ds, rc->annotations, NULL, err);
    if (st) return st;
    map->n = ds->n_classes;
    map->names = ds->class_names;
    ds->class_names = NULL;
    ds->n_classes = 0;
    tal_dataset_destroy(ds);
    return TAL_OK;
}

/* Which weights the converter took, from the file's metadata. */
static void weights_kind(const char *metadata, char *buf, size_t size) {
    cJSON *o = metadata ? cJSON_Parse(metadata) : NULL;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "weights");
    const cJSON *ema = cJSON_GetObjectItemCaseSensitive(o, "ema_available");
    if (cJSON_IsString(w) && !strcmp(w->valuestring, "state_dict_ema"))
        snprintf(buf, size, "the EMA weights (state_dict_ema), as OpenTAD evaluates them");
    else if (cJSON_IsString(w) && cJSON_IsString(ema) && !strcmp(ema->valuestring, "yes"))
        snprintf(buf, size, "the non-EMA weights (%s), though the file had EMA weights, which "
                 "OpenTAD evaluates (convert with --weights ema)", w->valuestring);
    else if (cJSON_IsString(w))
        snprintf(buf, size, "the weights under '%s'", w->valuestring);
    else
        snprintf(buf, size, "weights of unknown origin (no converter metadata)");
    cJSON_Delete(o);
}

static float loss_normalizer(const char *path, float fallback) {
    tal_tensor_set set = {0};
    tal_err e = {0};
    float v = fallback;
    if (tal_safetensors_read(&set, path, &e) == TAL_OK)
        for (int i = 0; i < set.count; i++)
            if (strstr(set.items[i].name, "rpn_head.loss_normalizer") &&
                tal_tensor_numel(set.items[i].t) == 1)
                v = set.items[i].t.data[0];
    tal_tensor_set_free(&set);
    return v;
}

static tal_status write_run(const char *out, const tal_run_config *rc, const tal_class_map *cm,
                            tal_model *m, float loss_norm, const char *provenance, tal_err *err) {
    char path[1200];
    char *cfg = tal_run_config_to_json(rc);
    snprintf(path, sizeof path, "%s/config.json", out);
    tal_status st = tal_write_file_atomic(path, cfg, err);
    free(cfg);
    size_t size = 1;
    for (int i = 0; i < cm->n; i++) size += strlen(cm->names[i]) + 1;
    char *text = calloc(1, size);
    for (int i = 0; text && i < cm->n; i++) strcat(strcat(text, cm->names[i]), "\n");
    snprintf(path, sizeof path, "%s/classes.txt", out);
    if (!st) st = text ? tal_write_file_atomic(path, text, err)
                       : tal_err_set(err, TAL_ENOMEM, "out of memory");
    free(text);
    snprintf(path, sizeof path, "%s/import.json", out);
    if (!st) st = tal_write_file_atomic(path, provenance, err);
    /* best/ for inference; last/ for --resume: step 0, fresh optimiser, EMA from these weights */
    tal_train_state ts = {0, 0, 0, 0, loss_norm, -1, 0};
    tal_adamw *opt = NULL;
    tal_ema *ema = NULL;
    tal_adamw_config ac = {1.0f, 0.9f, 0.999f, 1e-8f};
    if (!st) st = tal_ckpt_save(out, "best", m->params, NULL, NULL, &ts, err);
    if (!st) st = tal_adamw_create(&opt, m->params, ac, err);
    if (!st && rc->ema_decay > 0) st = tal_ema_create(&ema, m->params, (float)rc->ema_decay, err);
    if (!st) st = tal_ckpt_save(out, "last", m->params, opt, ema, &ts, err);
    tal_ema_destroy(ema);
    tal_adamw_destroy(opt);
    return st;
}

static char *provenance_json(const char *ckpt, const char *kind, const tal_weights_report *r,
                             tal_err *err) {
    char hex[65];
    if (tal_file_sha256(ckpt, hex, err)) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "checkpoint", ckpt);
    cJSON_AddStringToObject(o, "checkpoint_sha256", hex);
    cJSON_AddStringToObject(o, "weights", kind);
    cJSON_AddNumberToObject(o, "tensors_loaded", r->n_matched);
    cJSON_AddNumberToObject(o, "buffers_not_needed", r->n_buffers);
    cJSON *unused = cJSON_AddArrayToObject(o, "unused_tensors");
    for (int i = 0; i < r->n_unused; i++)
        cJSON_AddItemToArray(unused, cJSON_CreateString(r->unused[i]));
    if (r->metadata) cJSON_AddItemToObject(o, "converter_metadata", cJSON_Parse(r->metadata));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

static int cmd_import(int argc, char **argv) {
    const char *ckpt = NULL, *config = NULL, *out = NULL, *classes = NULL;
    const char **sets = calloc((size_t)argc + 3, sizeof *sets);
    int n_sets = 0, allow_unused = 0;
    sets[n_sets++] = "head.duration_thresh=0"; /* OpenTAD keeps every segment; --set overrides */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tal_is_help(a)) {
            usage(stdout);
            free(sets);
            return 0;
        }
        if (!strcmp(a, "--config") && v) config = argv[++i];
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--classes") && v) classes = argv[++i];
        else if (!strcmp(a, "--set") && v) sets[n_sets++] = argv[++i];
        else if (!strcmp(a, "--allow-unused")) allow_unused = 1;
        else if (a[0] != '-' && !ckpt) ckpt = a;
        else {
            fprintf(stderr, "re2tal import: unexpected argument '%s'\n", a);
            usage(stderr);
            free(sets);
            return 2;
        }
    }
    if (!ckpt || !config || !out) {
        usage(stderr);
        free(sets);
        return 2;
    }
    char out_set[1200];
    snprintf(out_set, sizeof out_set, "train.out_dir=%s", out);
    sets[n_sets++] = out_set;
    tal_run_config rc;
    tal_err err = {0};
    tal_class_map cm = {0};
    tal_model m = {0};
    tal_weights_report rep = {0};
    char *prov = NULL;
    int code = 1;
    if (tal_run_config_read(&rc, config, sets, n_sets, &err) != TAL_OK ||
        load_classes(&cm, &rc, classes, &err) != TAL_OK ||
        tal_model_create(&m, &rc, cm.n, 0, &err) != TAL_OK)
        goto fail;
    if (tal_weights_load(m.params, NULL, ckpt, import_name, &m, allow_unused, stderr, 1, "model",
                         &rep, &err) != TAL_OK)
        goto fail;
    char kind[200];
    weights_kind(rep.metadata, kind, sizeof kind);
    if (!(prov = provenance_json(ckpt, kind, &rep, &err))) goto fail;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        tal_err_set(&err, TAL_EIO, "%s: cannot create: %s", out, strerror(errno));
        goto fail;
    }
    float norm = loss_normalizer(ckpt, m.hcfg.init_loss_norm);
    if (write_run(out, &rc, &cm, &m, norm, prov, &err) != TAL_OK) goto fail;
    fprintf(stderr, "imported %s: %s, %d classes, head.clip_to_window %d%s, "
                    "head.duration_thresh %g%s\n"
                    "run folder %s: re2tal infer --model %s VIDEO...; fine-tune with re2tal train "
                    "%s/config.json --resume\n",
            ckpt, kind, cm.n, m.hcfg.clip_to_window,
            m.hcfg.clip_to_window ? " (clipped to the window, not as OpenTAD)"
                                  : " (OpenTAD's clipping)",
            m.hcfg.duration_thresh, m.hcfg.duration_thresh > 0 ? " (not as OpenTAD)" : "", out,
            out, out);
    code = 0;
    goto done;
fail:
    fprintf(stderr, "re2tal import: %s\n", err.msg);
done:
    free(prov);
    tal_weights_report_free(&rep);
    tal_model_destroy(&m);
    tal_class_map_free(&cm);
    free(sets);
    return code;
}
TAL_COMMAND("import", 62, "an OpenTAD checkpoint + a config -> a run folder (infer, fine-tune)",
            cmd_import)
