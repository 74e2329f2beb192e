/* app/trainer.h: end-to-end training as a library call (re2tal train and re2tal demo use it),
 * and validation / inference over a list of videos. */
#ifndef TAL_APP_TRAINER_H
#define TAL_APP_TRAINER_H

#include "app/features.h"

typedef struct tal_train_opts {
    const char *config_path;     /* NULL: defaults (+ sets) only */
    const char *const *sets;     /* "key=value" overrides */
    int n_sets;
    int resume;                  /* continue from run_dir/last */
    int quiet, log_json;         /* no progress bar; JSON lines on stdout */
} tal_train_opts;

typedef struct tal_train_result {
    double best_map, last_map;   /* average mAP over the tIoU thresholds (-1: not evaluated) */
    double map_at_05;            /* last evaluation's mAP at tIoU 0.5 (-1 if not a threshold) */
    int interrupted;             /* stopped by SIGINT / SIGTERM after saving a checkpoint */
    int64_t steps;
    double seconds;
} tal_train_result;

/* Trains; writes the run folder (config.json, classes.txt, log.jsonl, last/, best/). */
tal_status tal_train_run(tal_run_config *rc, const tal_train_opts *o, tal_train_result *res,
                         tal_err *err);

/* The dataset and videos a run uses: annotations loaded, classes fixed, paths resolved. */
typedef struct tal_run_data {
    tal_dataset *ds;
    char **paths;                /* [n_videos], NULL where the file is missing (feature mode:
                                  * the feature files) */
    int *train, *val;            /* indices into ds->videos */
    int n_train, n_val, n_missing;
    tal_feature_file *feat;      /* [n_videos] in feature mode (data.features), else NULL */
    int feature_dim;             /* feature mode: the files' channels (data.feature_dim, or read
                                  * from the first file when that is 0) */
} tal_run_data;
tal_status tal_run_data_load(tal_run_data *d, const tal_run_config *rc, tal_err *err);
void tal_run_data_free(tal_run_data *d);

/* Runs the model over the videos idx[0..n) and writes ActivityNet results JSON (results_path,
 * may be NULL) and SRT files (srt_dir, may be NULL); fills *dets_out (one tal_dets per video,
 * caller frees with tal_dets_free + free) if non-NULL. Corrupt videos are skipped and
 * reported on stderr, counted in *n_skipped. */
tal_status tal_infer_videos(tal_model *m, const tal_run_config *rc, const tal_run_data *d,
                            const int *idx, int n, const char *results_path, const char *srt_dir,
                            int quiet, int *n_skipped, tal_err *err);

/* Average mAP over rc->tiou (and mAP@0.5 when it is a threshold) of a results file against the
 * run's annotations (validation subset); writes the table to `table` (may be NULL) and the JSON
 * report to json_path (may be NULL). */
tal_status tal_evaluate_results(const tal_run_config *rc, const char *results_path,
                                const char *json_path, FILE *table, double *avg_map,
                                double *map_at_05, tal_err *err);

#endif
