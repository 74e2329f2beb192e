/* eval/report.c: the result as a table (into the caller's FILE*) and as JSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/internal.h"

static const char *diag_names[] = {
    "n_dets", "n_dets_scored", "n_unknown_label", "n_outside_gt", "n_reversed", "n_zero_length",
    "n_nan_pairs", "n_tied_scores", "n_gt", "n_gt_videos", "n_gt_videos_no_det",
    "n_gt_duplicates", "n_gt_zero_length", "n_gt_removed", "n_ambiguous", "n_ambiguous_dropped",
};
static const char *diag_text[] = {
    "detections given",
    "detections scored (label is a GT class)",
    "detections with a label unknown to the GT (ignored)",
    "detections on videos outside the GT subset (FP)",
    "reversed detections (end < start)",
    "zero-length detections",
    "detection/GT pairs with NaN tIoU (matched by the official code)",
    "detections sharing their score within their class (tie order)",
    "GT instances",
    "GT videos",
    "GT videos without any detection",
    "GT exact duplicates (kept by the official code)",
    "GT instances with end <= start",
    "GT removed by OpenTAD de-duplication",
    "Ambiguous GT segments",
    "FPs dropped for overlapping Ambiguous (first threshold)",
};

/* The shortest %g that reads back as the same double (like Python's repr), as a raw JSON
 * number: cJSON's own printing may drop the last bit. */
static cJSON *exact_number(double x) {
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return cJSON_CreateRaw(buf);
}

static cJSON *exact_array(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, exact_number(x[i]));
    return a;
}

static long diag_value(const tal_eval_diag *dg, int i) { return ((const long *)dg)[i]; }

void tal_eval_print_table(FILE *out, const tal_eval_result *r, int per_class) {
    fprintf(out, "protocol %s, subset %s, %d classes\n", tal_eval_protocol_name(r->protocol),
            r->subset, r->n_classes);
    fprintf(out, "%-28s", "tIoU");
    for (int t = 0; t < r->n_tiou; t++) fprintf(out, " %6.2f", r->tiou[t]);
    fprintf(out, "    avg\n%-28s", "mAP (%)");
    for (int t = 0; t < r->n_tiou; t++) fprintf(out, " %6.2f", 100 * r->map[t]);
    fprintf(out, " %6.2f\n", 100 * r->average_map);
    if (per_class) {
        fprintf(out, "\nAP (%%) per class (#gt #det)\n");
        for (int c = 0; c < r->n_classes; c++) {
            char name[64];
            snprintf(name, sizeof name, "%.20s (%ld %ld)", r->class_names[c], r->n_gt_class[c],
                     r->n_det_class[c]);
            fprintf(out, "%-28s", name);
            double avg = 0;
            for (int t = 0; t < r->n_tiou; t++) {
                fprintf(out, " %6.2f", 100 * r->ap[(long)c * r->n_tiou + t]);
                avg += r->ap[(long)c * r->n_tiou + t];
            }
            fprintf(out, " %6.2f\n", 100 * avg / r->n_tiou);
        }
    }
    fprintf(out, "\ndiagnosis\n");
    int n = (int)(sizeof diag_names / sizeof *diag_names);
    for (int i = 0; i < n; i++) {
        long v = diag_value(&r->diag, i);
        if (i >= 2 && v == 0 && i != 8 && i != 9) continue; /* show only what is present */
        fprintf(out, "  %-66s %ld\n", diag_text[i], v);
    }
}

char *tal_eval_result_json(const tal_eval_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "protocol", tal_eval_protocol_name(r->protocol));
    cJSON_AddStringToObject(o, "subset", r->subset);
    cJSON_AddItemToObject(o, "tiou_thresholds", exact_array(r->tiou, r->n_tiou));
    cJSON_AddItemToObject(o, "mAP", exact_array(r->map, r->n_tiou));
    cJSON_AddItemToObject(o, "average_mAP", exact_number(r->average_map));
    cJSON *pc = cJSON_AddObjectToObject(o, "per_class");
    for (int c = 0; pc && c < r->n_classes; c++) {
        cJSON *e = cJSON_AddObjectToObject(pc, r->class_names[c]);
        if (!e) continue;
        cJSON_AddItemToObject(e, "AP", exact_array(r->ap + (long)c * r->n_tiou, r->n_tiou));
        cJSON_AddNumberToObject(e, "n_gt", (double)r->n_gt_class[c]);
        cJSON_AddNumberToObject(e, "n_det", (double)r->n_det_class[c]);
    }
    cJSON *dg = cJSON_AddObjectToObject(o, "diagnosis");
    int n = (int)(sizeof diag_names / sizeof *diag_names);
    for (int i = 0; dg && i < n; i++)
        cJSON_AddNumberToObject(dg, diag_names[i], (double)diag_value(&r->diag, i));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

tal_status tal_eval_write_json(const tal_eval_result *r, const char *path, tal_err *err) {
    char *text = tal_eval_result_json(r);
    if (!text) return tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(text);
        return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    int bad = fputs(text, f) < 0 || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    free(text);
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
    }
    return TAL_OK;
}
