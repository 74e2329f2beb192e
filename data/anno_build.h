/* data/anno_build.h (private to data/): what the annotation readers share: a string -> index
 * table, and a dataset builder that interns labels, merges videos by id and finishes with
 * sorted classes and the counted warnings. */
#ifndef TAL_DATA_ANNO_BUILD_H
#define TAL_DATA_ANNO_BUILD_H

#include "data/data.h"

/* Open-addressing hash table from strings (copied) to ints. */
typedef struct str_table {
    char **keys;
    int *values;
    int cap, count;
} str_table;
/* Index stored for key, or -1. */
int str_table_get(const str_table *t, const char *key);
/* Stores key -> value (key copied). Returns 0 on out of memory. */
int str_table_put(str_table *t, const char *key, int value);
void str_table_free(str_table *t);

typedef struct anno_builder {
    tal_dataset *ds;
    int cap_videos;
    str_table ids;     /* video id -> index in ds->videos */
    str_table labels;  /* label -> pool index */
    char **pool;       /* label names in first-seen order (owned until finish) */
    int n_pool, cap_pool;
    int fixed_classes; /* pool came from the file's class list: new labels are an error */
} anno_builder;

tal_status builder_init(anno_builder *b, const char *source, tal_anno_format fmt, tal_err *err);
/* Drops everything (on failure). */
void builder_abort(anno_builder *b);
/* Pool index of label (added if new, unless fixed_classes: then -1). -2 on out of memory. */
int builder_label(anno_builder *b, const char *label);
/* Appends a new video; returns its index (or -1 out of memory). The id must not exist yet. */
int builder_add_video(anno_builder *b, const char *id);
/* Appends a segment (or an ambiguous span when label < 0) to video v. 0 on out of memory. */
int builder_add_segment(anno_builder *b, int v, double start_s, double end_s, int label,
                        int ambiguous);
/* Sorts classes (unless fixed), relabels, counts warnings; hands the dataset to *out. */
tal_status builder_finish(anno_builder *b, tal_dataset **out, tal_err *err);

#endif
