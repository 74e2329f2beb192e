/* app/config.h: typed configuration keys read from JSON files and `--set key=value`.
 * A command describes its settings as a table of dotted keys ("optim.lr_head") bound to fields
 * of its own struct; nested JSON objects map to the dots. Unknown keys and wrong types are errors
 * naming the key, so a typo never silently falls back to a default. */
#ifndef TAL_APP_CONFIG_H
#define TAL_APP_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "nn/nn.h"

typedef enum {
    TAL_CFG_INT,
    TAL_CFG_FLOAT,  /* double field */
    TAL_CFG_BOOL,   /* int field, 0/1 */
    TAL_CFG_STRING, /* char[TAL_CFG_STR] field */
    TAL_CFG_INTS,   /* int[TAL_CFG_LIST] field + count at offset_count */
    TAL_CFG_FLOATS, /* double[TAL_CFG_LIST] field + count at offset_count */
} tal_cfg_type;

#define TAL_CFG_STR 512
#define TAL_CFG_LIST 16

/* Range flags of a numeric key. A number outside its range is an error naming the source, the
 * key, the value and the range, whether it comes from a file or from --set. */
#define TAL_CFG_RANGED 1u   /* lo and hi apply (every numeric key of the run config has one) */
#define TAL_CFG_LO_OPEN 2u  /* lo itself is excluded */
#define TAL_CFG_HI_OPEN 4u  /* hi itself is excluded */

typedef struct tal_cfg_key {
    const char *key;       /* dotted path */
    tal_cfg_type type;
    size_t offset;         /* of the field in the config struct */
    size_t offset_count;   /* lists only: offset of the int element count */
    const char *doc;       /* one line, shown by `--help-config` and in configs/README.md */
    double lo, hi;         /* numbers (and each list element): allowed range, see flags */
    unsigned flags;        /* TAL_CFG_RANGED | TAL_CFG_LO_OPEN | TAL_CFG_HI_OPEN */
    const char *choices;   /* strings: the allowed values "a|b|c", or NULL (any: paths, names);
                            * a choice "c:N" allows "c:" and a number of one or two digits */
} tal_cfg_key;

/* "[0, 1)", "(0, inf]", "resize|truncate", or "" for a free string, into buf; returns buf. */
const char *tal_cfg_range_str(const tal_cfg_key *k, char *buf, size_t size);

/* Applies a JSON file on top of the struct's current values (the defaults). Errors name the file
 * and the key. */
tal_status tal_cfg_load_file(void *cfg, const tal_cfg_key *keys, int n_keys, const char *path,
                             tal_err *err);
/* Applies a parsed cJSON object (passed as void * so this header needs no cJSON) on top of the
 * struct; `where` names the source in errors. */
tal_status tal_cfg_apply_object(void *cfg, const tal_cfg_key *keys, int n_keys, const void *object,
                                const char *where, tal_err *err);
/* Applies "key=value"; value is JSON (numbers, true/false, [lists], "strings") or a bare string. */
tal_status tal_cfg_set(void *cfg, const tal_cfg_key *keys, int n_keys, const char *assignment,
                       tal_err *err);
/* The whole config as a nested JSON object (for run directories: the config as run). Caller
 * frees with free(). */
char *tal_cfg_to_json(const void *cfg, const tal_cfg_key *keys, int n_keys);
/* Prints "key  type  range  default  doc" lines. */
void tal_cfg_print_help(FILE *out, const void *cfg, const tal_cfg_key *keys, int n_keys);

#endif
