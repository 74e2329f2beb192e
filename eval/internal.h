/* eval/internal.h: private to eval/: string interning and the GT / detection tables. */
#ifndef TAL_EVAL_INTERNAL_H
#define TAL_EVAL_INTERNAL_H

#include "eval/eval.h"

/* Strings interned to dense ids 0..n-1 in insertion order (open addressing). */
typedef struct strtab {
    char **names; /* owned, [n] */
    int n, cap;
    int *slots; /* [n_slots], -1 empty */
    int n_slots;
} strtab;

void strtab_free(strtab *t);
int strtab_find(const strtab *t, const char *s); /* -1 if absent */
/* Returns the id (new or existing), -1 when out of memory. */
int strtab_intern(strtab *t, const char *s);

typedef struct gt_inst {
    int video, cls;
    double t0, t1;
} gt_inst;

typedef struct amb_inst {
    int video;
    double t0, t1;
} amb_inst;

struct tal_eval_gt {
    char path[512];
    char subset[64];
    int thumos;
    strtab videos;  /* videos of the subset, file order */
    strtab classes; /* labels present, order of first appearance */
    gt_inst *inst;
    int n, cap;
    amb_inst *amb; /* Ambiguous segments (folder input, or label "Ambiguous") */
    int n_amb, cap_amb;
    double *duration; /* per video: the JSON's "duration" in seconds, NaN where absent; NULL
                         for folder input */
};

typedef struct det_inst {
    int video, label; /* ids in the dets' own tables */
    double t0, t1, score;
} det_inst;

struct tal_eval_dets {
    strtab videos, labels;
    det_inst *dets;
    long n, cap;
};

/* io.c: appends a detection whose video is already interned (values already checked). */
tal_status dets_push(tal_eval_dets *d, int video, const char *label, double t0, double t1,
                     double score, tal_err *err);

/* results_json.c: appends the detections of an ActivityNet results JSON text. */
tal_status tal_eval_results_json_read(tal_eval_dets *d, const char *path, const char *text,
                                      size_t size, tal_err *err);

/* report.c: the diagnosis counters (tal_eval_diag, in field order): JSON names, sentences. */
#define N_DIAG 16
extern const char *const diag_names[N_DIAG], *const diag_text[N_DIAG];
long diag_value(const tal_eval_diag *dg, int i);

/* numpy's pairwise summation (float64 add.reduce), for bit-identical means. */
double np_pairwise_sum(const double *a, long n);

#endif
