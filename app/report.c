/* app/report.c: the HTML report: an evaluation keeping what the page draws, the training
 * curves of a run folder's log.jsonl (written by app/trainer.c), and tal_eval_write_html. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/checkpoint.h"
#include "app/report.h"

#define MAX_POINTS 2000

/* ---------------------------------------------------------------- training log ---------- */
enum { S_LOSS, S_CLS, S_REG, S_LR, S_VAL_AVG, S_VAL_05, N_SERIES };
static const char *log_keys[N_SERIES] = {"loss", "cls", "reg", "lr_scale", "val_avg_map",
                                         "val_map_0.5"};

typedef struct curve {
    double *x, *y[N_SERIES]; /* x: step or epoch */
    long n, cap;
} curve;

static void curve_free(curve *c) {
    free(c->x);
    for (int k = 0; k < N_SERIES; k++) free(c->y[k]);
}

/* Appends a point; a point at or before the last x (a resumed run) replaces the tail. */
static int curve_add(curve *c, double x, const double *y) {
    while (c->n > 0 && c->x[c->n - 1] >= x) c->n--;
    if (c->n == c->cap) {
        long cap = c->cap ? 2 * c->cap : 256;
        double *p = realloc(c->x, sizeof *p * (size_t)cap);
        if (!p) return -1;
        c->x = p;
        for (int k = 0; k < N_SERIES; k++) {
            if (!(p = realloc(c->y[k], sizeof *p * (size_t)cap))) return -1;
            c->y[k] = p;
        }
        c->cap = cap;
    }
    c->x[c->n] = x;
    for (int k = 0; k < N_SERIES; k++) c->y[k][c->n] = y[k];
    c->n++;
    return 0;
}

/* The trainer prints a NaN loss as nan or -nan, which is not JSON: read it as null. */
static cJSON *parse_log_line(char *line) {
    cJSON *o = cJSON_Parse(line);
    if (o || !strstr(line, "nan")) return o;
    for (char *p = line; (p = strstr(p, "nan"));) {
        char *start = p > line && p[-1] == '-' ? p - 1 : p;
        memmove(start + 4, p + 3, strlen(p + 3) + 1); /* "nan" / "-nan" -> "null" */
        memcpy(start, "null", 4);
        p = start + 4;
    }
    return cJSON_Parse(line);
}

static tal_status read_log(const char *path, curve *steps, curve *val, tal_err *err) {
    char *text = tal_read_file(path, err);
    if (!text) return err->code;
    tal_status st = TAL_OK;
    int line_no = 0;
    for (char *line = text, *next; *line; line = next) {
        next = strchr(line, '\n');
        int complete = next != NULL;
        if (next) *next++ = 0;
        else next = line + strlen(line);
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        /* room for "nan" -> "null" */
        char *buf = malloc(2 * strlen(line) + 1);
        if (!buf) {
            st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
            break;
        }
        strcpy(buf, line);
        cJSON *o = parse_log_line(buf);
        free(buf);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            if (!complete) break; /* the trainer is writing it */
            st = tal_err_set(err, TAL_EFORMAT, "%s:%d: not a JSON object: '%.60s'", path, line_no,
                             line);
            break;
        }
        double y[N_SERIES];
        for (int k = 0; k < N_SERIES; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, log_keys[k]);
            y[k] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
        const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(o, "epoch");
        int bad = 0;
        if (cJSON_IsNumber(step)) bad = curve_add(steps, step->valuedouble, y);
        else if (cJSON_IsNumber(epoch) && !isnan(y[S_VAL_AVG]))
            bad = curve_add(val, epoch->valuedouble, y);
        cJSON_Delete(o);
        if (bad) {
            st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
            break;
        }
    }
    free(text);
    return st;
}

/* Means over MAX_POINTS equal runs of points (NaN left out of each mean). */
static void decimate(curve *c) {
    if (c->n <= MAX_POINTS) return;
    long n = 0;
    for (long b = 0; b < MAX_POINTS; b++) {
        long lo = c->n * b / MAX_POINTS, hi = c->n * (b + 1) / MAX_POINTS;
        double x = 0;
        for (long i = lo; i < hi; i++) x += c->x[i];
        double xm = x / (double)(hi - lo);
        for (int k = 0; k < N_SERIES; k++) {
            double sum = 0;
            long m = 0;
            for (long i = lo; i < hi; i++)
                if (!isnan(c->y[k][i])) sum += c->y[k][i], m++;
            c->y[k][n] = m ? sum / (double)m : NAN;
        }
        c->x[n++] = xm;
    }
    c->n = n;
}

static void add_series(cJSON *group, const char *name, const double *y, long n, double scale) {
    cJSON *a = cJSON_AddArrayToObject(group, name);
    for (long i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(scale * y[i]));
}

/* optim.<key> of the run's config.json, or NAN. */
static double config_number(const char *run_dir, const char *key) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    tal_err ignore = {0};
    char *text = tal_read_file(path, &ignore);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "optim"), key);
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(root);
    return x;
}

tal_status tal_report_training_json(const char *run_dir, char **json, tal_err *err) {
    *json = NULL;
    char path[1200];
    snprintf(path, sizeof path, "%s/log.jsonl", run_dir);
    curve steps = {0}, val = {0};
    tal_status st = read_log(path, &steps, &val, err);
    cJSON *o = st ? NULL : cJSON_CreateObject();
    if (!st && !o) st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    if (!st) {
        decimate(&steps);
        cJSON_AddStringToObject(o, "source", path);
        add_series(o, "steps", steps.x, steps.n, 1);
        cJSON *series = cJSON_AddObjectToObject(o, "series");
        add_series(series, "loss", steps.y[S_LOSS], steps.n, 1);
        add_series(series, "classification", steps.y[S_CLS], steps.n, 1);
        add_series(series, "regression", steps.y[S_REG], steps.n, 1);
        cJSON *lr = cJSON_AddObjectToObject(o, "lr");
        double head = config_number(run_dir, "lr_head"), bb = config_number(run_dir, "lr_backbone");
        if (isnan(head) || isnan(bb)) {
            add_series(lr, "scale of the base rate", steps.y[S_LR], steps.n, 1);
        } else {
            add_series(lr, "head", steps.y[S_LR], steps.n, head);
            add_series(lr, "backbone", steps.y[S_LR], steps.n, bb);
        }
        add_series(o, "val_epochs", val.x, val.n, 1);
        cJSON *v = cJSON_AddObjectToObject(o, "val");
        add_series(v, "average mAP", val.y[S_VAL_AVG], val.n, 1);
        add_series(v, "mAP@0.5", val.y[S_VAL_05], val.n, 1);
        *json = cJSON_PrintUnformatted(o);
        if (!*json) st = tal_err_set(err, TAL_ENOMEM, "%s: out of memory", path);
    }
    cJSON_Delete(o);
    curve_free(&steps);
    curve_free(&val);
    return st;
}

/* ---------------------------------------------------------------- the page -------------- */
tal_status tal_report_write(const char *html_path, const tal_eval_gt *gt, const tal_eval_dets *d,
                            const tal_eval_opts *eval_opts, const tal_report_opts *ro,
                            tal_eval_result **result, tal_err *err) {
    if (result) *result = NULL;
    tal_eval_opts o = *eval_opts;
    o.keep_pr = o.keep_matches = 1;
    tal_eval_result *r = NULL;
    char *training = NULL;
    tal_status st = tal_eval_run(&r, gt, d, &o, err);
    if (!st && ro->run_dir) st = tal_report_training_json(ro->run_dir, &training, err);
    tal_eval_ar_result ar;
    int have_ar = 0;
    if (!st && ro->proposals) { /* as re2tal eval: a kit that cannot compute them is no error */
        tal_err ignore = {0};
        have_ar = tal_eval_proposals_ar(&ar, gt, d, 100, r->n_tiou, r->tiou, &ignore) == TAL_OK;
    }
    if (!st) {
        const char *name = strrchr(ro->pred_path ? ro->pred_path : "", '/');
        char title[300];
        snprintf(title, sizeof title, "re2tal report: %s",
                 name ? name + 1 : ro->pred_path ? ro->pred_path : "detections");
        tal_eval_html_opts ho = {.title = title, .gt_path = ro->gt_path, .pred_path = ro->pred_path,
                                 .proposals = have_ar ? &ar : NULL, .training_json = training};
        st = tal_eval_write_html(html_path, gt, d, r, &ho, err);
    }
    free(training);
    if (!st && result) *result = r;
    else tal_eval_result_destroy(r);
    return st;
}
