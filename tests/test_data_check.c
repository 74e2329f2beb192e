/* tests/test_data_check.c: dataset checks: missing and undecodable videos (through a probe),
 * duration mismatch, segments clipped to the duration, zero-length and duplicate segments,
 * unknown labels against a class map, empty classes, and the JSON report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "data/data.h"
#include "testlib.h"

/* A probe that trusts file contents of the form "duration <seconds>"; anything else fails. */
static tal_status fake_probe(const char *path, double *duration_s, int64_t *n_frames,
                             double *fps, void *ctx, tal_err *err) {
    (void)ctx;
    FILE *f = fopen(path, "r");
    double d;
    int ok = f && fscanf(f, "duration %lf", &d) == 1;
    if (f) fclose(f);
    if (!ok) return tal_err_set(err, TAL_EFORMAT, "%s: not a video", path);
    *duration_s = d;
    *n_frames = (int64_t)(d * 25);
    *fps = 25;
    return TAL_OK;
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static const char *k_json =
    "{\"database\": {"
    "\"good\": {\"subset\": \"training\", \"duration\": 30, \"annotations\": ["
    "  {\"segment\": [1, 5], \"label\": \"jump\"}]},"
    "\"long\": {\"subset\": \"training\", \"duration\": 60, \"annotations\": ["
    "  {\"segment\": [10, 20], \"label\": \"run\"},"
    "  {\"segment\": [10, 20], \"label\": \"run\"},"   /* duplicate */
    "  {\"segment\": [40, 55], \"label\": \"run\"},"   /* beyond the real 45 s: clipped */
    "  {\"segment\": [50, 58], \"label\": \"run\"},"   /* wholly beyond: clipped to zero */
    "  {\"segment\": [3, 3], \"label\": \"swim\"}]},"  /* zero length; swim not in map */
    "\"broken\": {\"duration\": 10, \"annotations\": []},"
    "\"gone\": {\"duration\": 10, \"annotations\": []},"
    "\"nodur\": {\"annotations\": [{\"segment\": [1, 2], \"label\": \"jump\"}]}}}";

Test(data_check, finds_every_kind_of_problem) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("check_videos"));
    mkdir(dir, 0777);
    write_file(dir, "good.mp4", "duration 30.2");
    write_file(dir, "long.mkv", "duration 45");
    write_file(dir, "broken.mp4", "garbage");
    write_file(dir, "nodur.mp4", "garbage");

    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_parse(&ds, "check.json", k_json, strlen(k_json), &err), TAL_OK, "%s",
                 err.msg);
    tal_class_map map = {0};
    map.n = 3;
    map.names = calloc(3, sizeof *map.names);
    map.names[0] = strdup("jump");
    map.names[1] = strdup("run");
    map.names[2] = strdup("fly"); /* no instance: empty class */
    tal_check_opts o = {.video_dir = dir, .classes = &map, .probe = fake_probe};
    tal_check_report r;
    cr_assert_eq(tal_dataset_check(&r, ds, &o, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(r.n_videos, 5);
    cr_assert_eq(r.n_segments, 7);
    cr_assert_eq(r.counts[TAL_CHECK_MISSING_VIDEO], 1);
    cr_assert_eq(r.counts[TAL_CHECK_UNDECODABLE], 2);
    cr_assert_eq(r.counts[TAL_CHECK_DURATION_MISMATCH], 1, "60 s annotated vs 45 s real");
    cr_assert_eq(r.counts[TAL_CHECK_NO_DURATION], 1);
    cr_assert_eq(r.counts[TAL_CHECK_OUTSIDE], 2);
    cr_assert_eq(r.counts[TAL_CHECK_ZERO_LENGTH], 2, "the swim segment and the clipped one");
    cr_assert_eq(r.counts[TAL_CHECK_DUPLICATE], 1);
    cr_assert_eq(r.counts[TAL_CHECK_UNKNOWN_LABEL], 1);
    cr_assert_eq(r.counts[TAL_CHECK_EMPTY_CLASS], 1);
    cr_assert_eq(r.class_instances[0], 2);
    cr_assert_eq(r.class_instances[1], 4);
    /* Clipping happened in place, to the real duration. */
    int v = tal_dataset_find(ds, "long");
    cr_assert_float_eq(ds->videos[v].segments[2].end_s, 45, 0);
    cr_assert_float_eq(ds->videos[v].segments[3].start_s, 45, 0);
    cr_assert_float_eq(r.real_duration_s[v], 45, 0);
    /* Messages name the video. */
    int seen_gone = 0;
    for (int i = 0; i < r.n_issues; i++) {
        if (r.issues[i].kind == TAL_CHECK_MISSING_VIDEO) {
            cr_assert(strstr(r.issues[i].msg, "gone"), "%s", r.issues[i].msg);
            seen_gone = 1;
        }
        if (r.issues[i].kind == TAL_CHECK_UNDECODABLE)
            cr_assert(strstr(r.issues[i].msg, "broken.mp4") || strstr(r.issues[i].msg, "nodur"),
                      "%s", r.issues[i].msg);
    }
    cr_assert(seen_gone);

    char *json = tal_check_report_json(&r, ds);
    cJSON *root = cJSON_Parse(json);
    cr_assert(root, "report must be valid JSON");
    cJSON *counts = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "summary"), "counts");
    cr_assert_eq(cJSON_GetObjectItem(counts, "duplicate")->valueint, 1);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "issues")), r.n_issues);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "issues"), 0);
    cr_assert(cJSON_GetObjectItem(first, "video"));
    cJSON_Delete(root);
    free(json);
    tal_check_report_free(&r);
    tal_class_map_free(&map);
    tal_dataset_destroy(ds);
}

Test(data_check, without_videos_checks_annotations_only) {
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_parse(&ds, "check.json", k_json, strlen(k_json), &err), TAL_OK);
    tal_check_opts o = {0};
    tal_check_report r;
    cr_assert_eq(tal_dataset_check(&r, ds, &o, &err), TAL_OK);
    cr_assert_eq(r.counts[TAL_CHECK_MISSING_VIDEO], 0);
    cr_assert_eq(r.counts[TAL_CHECK_UNDECODABLE], 0);
    cr_assert_eq(r.counts[TAL_CHECK_OUTSIDE], 0, "all within the annotated durations");
    cr_assert_eq(r.counts[TAL_CHECK_NO_DURATION], 1);
    cr_assert_eq(r.counts[TAL_CHECK_UNKNOWN_LABEL], 0, "no class map: every label is known");
    cr_assert_eq(r.counts[TAL_CHECK_EMPTY_CLASS], 0);
    cr_assert_eq(r.n_classes, 3);
    tal_check_report_free(&r);
    tal_dataset_destroy(ds);
}

Test(data_check, real_anet_validation_counts) {
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_load(&ds, TEST_DATA "/anet13_val_gt.json", NULL, &err), TAL_OK);
    tal_check_opts o = {0};
    tal_check_report r;
    cr_assert_eq(tal_dataset_check(&r, ds, &o, &err), TAL_OK);
    cr_assert_eq(r.counts[TAL_CHECK_ZERO_LENGTH], 3);
    cr_assert_eq(r.counts[TAL_CHECK_DUPLICATE], 21);
    cr_assert_eq(r.counts[TAL_CHECK_NO_DURATION], 4926 - 4728);
    cr_assert_eq(r.counts[TAL_CHECK_EMPTY_CLASS], 0);
    cr_assert_str_eq(tal_check_kind_name(TAL_CHECK_OUTSIDE), "outside_duration");
    tal_check_report_free(&r);
    tal_dataset_destroy(ds);
}
