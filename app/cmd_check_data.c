/* app/cmd_check_data.c: `re2tal check-data`: loads an annotation file (or the annotation named
 * by a config), checks it and its video folder (tal_dataset_check), prints a table of findings
 * and optionally writes them as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "app/checkpoint.h"
#include "app/commands.h"
#include "app/run_config.h"
#include "data/data.h"
#include "decode/decode.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: re2tal check-data ANNOTATION_OR_CONFIG [options]\n\n"
            "Checks a dataset: videos missing on disk or undecodable, annotated vs real\n"
            "duration, segments outside [0, duration] (clipped, counted), zero-length and\n"
            "duplicate segments, labels missing from the class map, classes without instances.\n"
            "ANNOTATION: ActivityNet/THUMOS JSON or a THUMOS per-class text folder. A run\n"
            "config (as `re2tal train` takes) names them under \"data\": annotations, videos,\n"
            "classes, block_list (paths relative to the working folder, as in training).\n\n"
            "options:\n"
            "  --videos DIR      video folder (<id>.mp4, .mkv, ...; v_ prefix optional)\n"
            "  --classes FILE    class map (one name per line, '<id> <name>', or JSON list)\n"
            "  --subset NAME     only videos of this subset (training, validation, testing)\n"
            "  --split NAME      THUMOS text files: which *_<split>.txt (default test)\n"
            "  --block FILE      drop the videos listed (JSON list or one id per line)\n"
            "  --tolerance S     duration mismatch above max(S, 2%%) (default 1)\n"
            "  --json OUT        write the full report as JSON\n"
            "  --max-lines N     issues printed per kind (default 10; all go to --json)\n"
            "  --deep            count every frame of every video (decodes them all)\n"
            "  --strict          exit 1 if any problem is found\n");
}

/* The probe check-data hands to tal_dataset_check: opens the file with decode/ and decodes its
 * first frame (a container can look fine while its data is not); with `deep`, counts every
 * frame. Safe from several threads: each call has its own decoder. */
static tal_status decode_probe(const char *path, double *duration_s, int64_t *n_frames,
                               double *fps, void *ctx, tal_err *err) {
    const int *deep = ctx;
    tal_decode_opts opts = {.threads = 1, .count_frames = *deep, .max_pixels = 0};
    tal_decoder *dec = NULL;
    tal_status s = tal_decoder_open(&dec, path, &opts, err);
    if (s != TAL_OK) return s;
    float pixels[3 * 8 * 8];
    tal_frame_transform tf = {.out_w = 8, .out_h = 8, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    double t0 = 0;
    s = tal_decoder_read_times(dec, &t0, 1, &tf, tal_t4(pixels, 3, 1, 8, 8), err);
    if (s == TAL_OK) {
        const tal_video_info *info = tal_decoder_info(dec);
        *duration_s = info->duration_s;
        *n_frames = info->n_frames;
        *fps = info->avg_fps;
    }
    tal_decoder_close(dec);
    return s;
}

typedef struct paths {
    char annotations[4096], videos[4096], classes[4096], block[4096];
} paths;

/* A run config (a JSON object with a "data" section and no "database") is read with the one
 * reader `re2tal train` uses, so both name the same keys and resolve paths alike (relative to
 * the working folder): data.annotations, data.videos, data.classes, data.block_list
 * (command-line values win). Returns 1 for a config, 0 for anything else, -1 for a config that
 * does not check out (*err says why). */
static int read_config(paths *p, const char *path, tal_err *err) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (64 << 20)) return 0;
    char *text = tal_read_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    int is_config = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "data")) &&
                    !cJSON_GetObjectItemCaseSensitive(root, "database");
    cJSON_Delete(root);
    if (!is_config) return 0;
    tal_run_config rc;
    if (tal_run_config_read(&rc, path, NULL, 0, err) != TAL_OK) return -1;
    if (!rc.annotations[0]) {
        tal_err_set(err, TAL_EINVAL, "%s: data.annotations: no annotation file named", path);
        return -1;
    }
    snprintf(p->annotations, sizeof p->annotations, "%s", rc.annotations);
    if (!p->videos[0]) snprintf(p->videos, sizeof p->videos, "%s", rc.videos);
    if (!p->classes[0]) snprintf(p->classes, sizeof p->classes, "%s", rc.classes);
    if (!p->block[0]) snprintf(p->block, sizeof p->block, "%s", rc.block_list);
    return 1;
}

static int cmd_check_data(int argc, char **argv) {
    paths p;
    memset(&p, 0, sizeof p);
    const char *input = NULL, *json_out = NULL, *subset_name = NULL, *split = NULL;
    double tol = 1.0;
    int max_lines = 10, strict = 0, deep = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tal_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--strict")) {
            strict = 1;
        } else if (!strcmp(a, "--deep")) {
            deep = 1;
        } else if (a[0] != '-') {
            if (input) {
                fprintf(stderr, "re2tal check-data: one input only ('%s' and '%s')\n", input, a);
                return 2;
            }
            input = a;
        } else if (!v) {
            fprintf(stderr, "re2tal check-data: %s needs a value\n", a);
            return 2;
        } else {
            i++;
            char *end;
            if (!strcmp(a, "--videos")) {
                snprintf(p.videos, sizeof p.videos, "%s", v);
            } else if (!strcmp(a, "--classes")) {
                snprintf(p.classes, sizeof p.classes, "%s", v);
            } else if (!strcmp(a, "--block")) {
                snprintf(p.block, sizeof p.block, "%s", v);
            } else if (!strcmp(a, "--json")) {
                json_out = v;
            } else if (!strcmp(a, "--subset")) {
                subset_name = v;
            } else if (!strcmp(a, "--split")) {
                split = v;
            } else if (!strcmp(a, "--tolerance")) {
                tol = strtod(v, &end);
                if (*end || !(tol > 0)) {
                    fprintf(stderr, "re2tal check-data: --tolerance wants seconds > 0, got '%s'\n",
                            v);
                    return 2;
                }
            } else if (!strcmp(a, "--max-lines")) {
                long n = strtol(v, &end, 10);
                if (*end || n < 0) {
                    fprintf(stderr, "re2tal check-data: --max-lines wants a count, got '%s'\n", v);
                    return 2;
                }
                max_lines = (int)n;
            } else {
                fprintf(stderr, "re2tal check-data: unknown option '%s'\n", a);
                usage(stderr);
                return 2;
            }
        }
    }
    if (!input) {
        usage(stderr);
        return 2;
    }
    tal_err err = {0};
    tal_subset subset = TAL_SUBSET_UNKNOWN;
    if (subset_name && tal_subset_parse(&subset, subset_name, &err) != TAL_OK) {
        fprintf(stderr, "re2tal check-data: --subset: %s\n", err.msg);
        return 2;
    }
    int is_config = read_config(&p, input, &err);
    if (is_config < 0) {
        fprintf(stderr, "re2tal check-data: %s\n", err.msg);
        return 1;
    }
    if (!is_config) snprintf(p.annotations, sizeof p.annotations, "%s", input);

    int rc = 1;
    tal_dataset *ds = NULL;
    tal_class_map map = {0};
    tal_check_report r = {0};
    char *json = NULL;
    if (tal_dataset_load(&ds, p.annotations, split, &err) != TAL_OK) {
        fprintf(stderr, "re2tal check-data: %s\n", err.msg);
        goto done;
    }
    printf("%s: %d videos, %lld segments, %d classes\n", p.annotations, ds->n_videos,
           (long long)tal_dataset_n_segments(ds), ds->n_classes);
    if (subset_name) {
        int dropped = tal_dataset_filter_subset(ds, subset);
        printf("subset %s: kept %d videos (dropped %d)\n", tal_subset_name(subset), ds->n_videos,
               dropped);
    }
    if (p.block[0]) {
        int n = 0;
        if (tal_dataset_block(ds, p.block, &n, &err) != TAL_OK) {
            fprintf(stderr, "re2tal check-data: %s\n", err.msg);
            goto done;
        }
        printf("block list %s: dropped %d videos\n", p.block, n);
    }
    if (p.classes[0] && tal_class_map_load(&map, p.classes, &err) != TAL_OK) {
        fprintf(stderr, "re2tal check-data: %s\n", err.msg);
        goto done;
    }
    tal_check_opts o = {.video_dir = p.videos[0] ? p.videos : NULL,
                        .classes = p.classes[0] ? &map : NULL,
                        .probe = decode_probe,
                        .probe_ctx = &deep,
                        .duration_tol_s = tol};
    if (tal_dataset_check(&r, ds, &o, &err) != TAL_OK) {
        fprintf(stderr, "re2tal check-data: %s\n", err.msg);
        goto done;
    }
    const tal_anno_warnings *w = &ds->warn;
    printf("\n%-20s %8s\n", "check", "count");
    for (int k = 0; k < TAL_CHECK_KINDS; k++) {
        if ((k == TAL_CHECK_MISSING_VIDEO || k == TAL_CHECK_UNDECODABLE ||
             k == TAL_CHECK_DURATION_MISMATCH) && !o.video_dir) {
            printf("%-20s %8s\n", tal_check_kind_name((tal_check_kind)k), "-");
            continue;
        }
        printf("%-20s %8d\n", tal_check_kind_name((tal_check_kind)k), r.counts[k]);
    }
    printf("%-20s %8d\n", "videos_without_gt", w->n_no_segments);
    int total = 0;
    for (int k = 0; k < TAL_CHECK_KINDS; k++) total += r.counts[k];
    for (int k = 0; k < TAL_CHECK_KINDS; k++) {
        int shown = 0;
        for (int i = 0; i < r.n_issues && shown < max_lines; i++) {
            if (r.issues[i].kind != (tal_check_kind)k) continue;
            if (!shown++) printf("\n%s:\n", tal_check_kind_name((tal_check_kind)k));
            printf("  %s\n", r.issues[i].msg);
        }
        if (shown && r.counts[k] > shown) printf("  ... and %d more\n", r.counts[k] - shown);
    }
    if (!o.video_dir) printf("\n(no --videos: video files were not checked)\n");
    if (json_out) {
        json = tal_check_report_json(&r, ds);
        FILE *f = json ? fopen(json_out, "w") : NULL;
        int ok = f && fputs(json, f) >= 0;
        ok = (f && fclose(f) == 0) && ok;
        if (!ok) {
            fprintf(stderr, "re2tal check-data: %s: cannot write the report\n", json_out);
            goto done;
        }
        printf("report: %s\n", json_out);
    }
    printf("\n%d problem%s found\n", total, total == 1 ? "" : "s");
    rc = strict && total ? 1 : 0;
done:
    free(json);
    tal_check_report_free(&r);
    tal_class_map_free(&map);
    tal_dataset_destroy(ds);
    return rc;
}
TAL_COMMAND("check-data", 25, "check annotations and videos: missing, undecodable, bad segments",
            cmd_check_data)
