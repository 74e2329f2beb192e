/* eval/report.c: the result as a table (into the caller's FILE*) and as JSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/internal.h"

const char *const diag_names[N_DIAG] = {
    "n_dets", "n_dets_scored", "n_unknown_label", "n_outside_gt", "n_reversed", "n_zero_length",
    "n_nan_pairs", "n_tied_scores", "n_gt", "n_gt_videos", "n_gt_videos_no_det",
    "n_gt_duplicates", "n_gt_zero_length", "n_gt_removed", "n_ambiguous", "n_ambiguous_dropped",
};
const char *const diag_text[N_DIAG] = {
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

long diag_value(const tal_eval_diag *dg, int i) { return ((const long *)dg)[i]; }

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
    if (r->n_buckets) {
        fprintf(out, "\nmAP (%%) by GT length (GT only of the bucket; detections that found other "
                     "GT left out)\n");
        for (int b = 0; b < r->n_buckets; b++) {
            char name[64];
            if (b == 0) snprintf(name, sizeof name, "< %g s", r->bucket_edges[0]);
            else if (b == r->n_buckets - 1) snprintf(name, sizeof name, ">= %g s", r->bucket_edges[b - 1]);
            else snprintf(name, sizeof name, "%g-%g s", r->bucket_edges[b - 1], r->bucket_edges[b]);
            char label[96];
            snprintf(label, sizeof label, "%s (%ld gt)", name, r->bucket_n_gt[b]);
            fprintf(out, "%-28s", label);
            if (!r->bucket_n_gt[b]) {
                fprintf(out, " -\n");
                continue;
            }
            for (int t = 0; t < r->n_tiou; t++) fprintf(out, " %6.2f", 100 * r->bucket_map[b][t]);
            fprintf(out, " %6.2f\n", 100 * r->bucket_average_map[b]);
        }
    }
    if (r->protocol != TAL_EVAL_THUMOS14) {
        fprintf(out, "\nfalse positives by cause\n%-28s", "tIoU");
        for (int t = 0; t < r->n_tiou; t++) fprintf(out, " %8.2f", r->tiou[t]);
        static const char *fp_names[TAL_EVAL_N_FP] = {"duplicate", "localization", "wrong label",
                                                      "confusion (label+loc)", "background"};
        for (int k = 0; k < TAL_EVAL_N_FP; k++) {
            fprintf(out, "\n%-28s", fp_names[k]);
            for (int t = 0; t < r->n_tiou; t++) fprintf(out, " %8ld", r->fp[t][k]);
        }
        fprintf(out, "\n");
    }
    fprintf(out, "\ndiagnosis\n");
    for (int i = 0; i < N_DIAG; i++) {
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
    if (r->protocol != TAL_EVAL_THUMOS14) {
        static const char *fp_keys[TAL_EVAL_N_FP] = {"duplicate", "localization", "wrong_label",
                                                     "confusion", "background"};
        cJSON *fp = cJSON_AddObjectToObject(o, "false_positives");
        for (int k = 0; fp && k < TAL_EVAL_N_FP; k++) {
            cJSON *a = cJSON_AddArrayToObject(fp, fp_keys[k]);
            for (int t = 0; a && t < r->n_tiou; t++)
                cJSON_AddItemToArray(a, cJSON_CreateNumber((double)r->fp[t][k]));
        }
    }
    if (r->n_buckets) {
        cJSON *bk = cJSON_AddArrayToObject(o, "by_gt_length");
        for (int b = 0; bk && b < r->n_buckets; b++) {
            cJSON *e = cJSON_CreateObject();
            if (!e) break;
            cJSON_AddItemToObject(e, "from_s", exact_number(b ? r->bucket_edges[b - 1] : 0));
            if (b < r->n_buckets - 1) cJSON_AddItemToObject(e, "to_s", exact_number(r->bucket_edges[b]));
            cJSON_AddNumberToObject(e, "n_gt", (double)r->bucket_n_gt[b]);
            cJSON_AddNumberToObject(e, "n_classes", r->bucket_n_classes[b]);
            cJSON_AddItemToObject(e, "mAP", exact_array(r->bucket_map[b], r->n_tiou));
            cJSON_AddItemToObject(e, "average_mAP", exact_number(r->bucket_average_map[b]));
            cJSON_AddItemToArray(bk, e);
        }
    }
    cJSON *dg = cJSON_AddObjectToObject(o, "diagnosis");
    for (int i = 0; dg && i < N_DIAG; i++)
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

/* ---------------------------------------------------------------- PR curves ------------- */
static tal_status open_out(FILE **f, const char *path, tal_err *err) {
    *f = fopen(path, "w");
    return *f ? TAL_OK : tal_err_set(err, TAL_EIO, "%s: cannot write: %s", path, strerror(errno));
}

tal_status tal_eval_write_pr(const tal_eval_result *r, const char *dir, tal_err *err) {
    if (!r->pr_recall)
        return tal_err_set(err, TAL_EINVAL, "PR curves were not kept (tal_eval_opts.keep_pr)");
    static const char *colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    for (int t = 0; t < r->n_tiou; t++) {
        char path[1200];
        FILE *f;
        snprintf(path, sizeof path, "%s/pr_tiou%.2f.csv", dir, r->tiou[t]);
        tal_status st = open_out(&f, path, err);
        if (st) return st;
        fprintf(f, "class,rank,recall,precision\n");
        for (int c = 0; c < r->n_classes; c++) {
            long n = r->pr_len[(long)c * r->n_tiou + t];
            const double *re = r->pr_recall + (long)t * r->pr_stride + r->pr_offset[c];
            const double *pr = r->pr_precision + (long)t * r->pr_stride + r->pr_offset[c];
            for (long i = 0; i < n; i++)
                fprintf(f, "\"%s\",%ld,%.17g,%.17g\n", r->class_names[c], i + 1, re[i], pr[i]);
        }
        if (fclose(f) != 0) return tal_err_set(err, TAL_EIO, "%s: write failed", path);
        snprintf(path, sizeof path, "%s/pr_tiou%.2f.svg", dir, r->tiou[t]);
        if ((st = open_out(&f, path, err))) return st;
        /* 400x400 plot area at (50, 20); the envelope (max precision at >= recall) per class */
        fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"480\" height=\"470\" "
                   "font-family=\"sans-serif\" font-size=\"12\">\n"
                   "<rect x=\"50\" y=\"20\" width=\"400\" height=\"400\" fill=\"none\" stroke=\"black\"/>\n"
                   "<text x=\"250\" y=\"455\" text-anchor=\"middle\">recall</text>\n"
                   "<text x=\"15\" y=\"220\" transform=\"rotate(-90 15 220)\" text-anchor=\"middle\">"
                   "precision</text>\n<text x=\"250\" y=\"14\" text-anchor=\"middle\">tIoU %.2f: "
                   "mAP %.2f%% (%s)</text>\n", r->tiou[t], 100 * r->map[t],
                tal_eval_protocol_name(r->protocol));
        for (int k = 0; k <= 10; k += 5)
            fprintf(f, "<text x=\"%d\" y=\"435\" text-anchor=\"middle\">%.1f</text>"
                       "<text x=\"45\" y=\"%d\" text-anchor=\"end\">%.1f</text>\n",
                    50 + 40 * k, k / 10.0, 424 - 40 * k, k / 10.0);
        for (int c = 0; c < r->n_classes; c++) {
            long n = r->pr_len[(long)c * r->n_tiou + t];
            if (n == 0) continue;
            const double *re = r->pr_recall + (long)t * r->pr_stride + r->pr_offset[c];
            const double *pr = r->pr_precision + (long)t * r->pr_stride + r->pr_offset[c];
            fprintf(f, "<polyline fill=\"none\" stroke-width=\"1\" stroke-opacity=\"0.7\" "
                       "stroke=\"%s\" points=\"", colours[c % 10]);
            /* envelope from the right; at most ~400 points (one per horizontal pixel) */
            double env = 0, last_x = -1;
            for (long i = n - 1; i >= 0; i--) {
                if (pr[i] > env) env = pr[i];
                double x = 50 + 400 * re[i];
                if (i > 0 && last_x >= 0 && last_x - x < 1) continue;
                fprintf(f, "%.1f,%.1f ", x, 420 - 400 * env);
                last_x = x;
            }
            fprintf(f, "\"><title>");
            for (const char *q = r->class_names[c]; *q; q++) /* XML-escape the name */
                if (*q == '<') fputs("&lt;", f);
                else if (*q == '&') fputs("&amp;", f);
                else if (*q == '>') fputs("&gt;", f);
                else fputc(*q, f);
            fprintf(f, "</title></polyline>\n");
        }
        fprintf(f, "</svg>\n");
        if (fclose(f) != 0) return tal_err_set(err, TAL_EIO, "%s: write failed", path);
    }
    return TAL_OK;
}
