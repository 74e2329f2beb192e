/* tests/test_data_anno.c: annotation readers on the real files of tests/data (counts from its
 * README.md), counted warnings, class maps, subset / block-list filtering, video paths, and
 * every bad-input path (errors name the file and the JSON path). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "testlib.h"

static tal_dataset *load_ok(const char *path, const char *split) {
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_load(&ds, path, split, &err), TAL_OK, "%s", err.msg);
    cr_assert_not_null(ds);
    return ds;
}

static int count_subset(const tal_dataset *ds, tal_subset s) {
    int n = 0;
    for (int i = 0; i < ds->n_videos; i++) n += ds->videos[i].subset == s;
    return n;
}

Test(data_anno, anet13_validation_gt) {
    tal_dataset *ds = load_ok(TEST_DATA "/anet13_val_gt.json", NULL);
    cr_assert_eq(ds->format, TAL_ANNO_ANET_JSON);
    cr_assert_eq(ds->n_videos, 4926);
    cr_assert_eq(tal_dataset_n_segments(ds), 7654);
    cr_assert_eq(ds->n_classes, 200);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_VALIDATION), 4926);
    cr_assert_eq(ds->warn.n_zero_length, 3);
    cr_assert_eq(ds->warn.n_duplicate, 21, "21 duplicates at OpenTAD's 1e-3 s tolerance, got %d",
                 ds->warn.n_duplicate);
    cr_assert_eq(ds->warn.n_no_duration, 4926 - 4728);
    /* Sorted label set. */
    for (int k = 1; k < ds->n_classes; k++)
        cr_assert_lt(strcmp(ds->class_names[k - 1], ds->class_names[k]), 0);
    int v = tal_dataset_find(ds, "wONwHYy59Tc");
    cr_assert_geq(v, 0);
    cr_assert_eq(tal_dataset_find(ds, "v_wONwHYy59Tc"), v, "the v_ prefix is optional");
    cr_assert_float_eq(ds->videos[v].duration_s, 191.124, 1e-9);
    cr_assert_float_eq(ds->videos[v].segments[0].start_s, 94.52138901727746, 1e-12);
    cr_assert_str_eq(ds->class_names[ds->videos[v].segments[0].label], "Blow-drying hair");
    cr_assert_eq(tal_dataset_find(ds, "no_such_video"), -1);
    tal_dataset_destroy(ds);
}

Test(data_anno, anet13_detection_file_reads_as_results) {
    tal_dataset *ds = load_ok(TEST_DATA "/anet13_sample_detection_prediction.json", NULL);
    cr_assert_eq(ds->format, TAL_ANNO_RESULTS_JSON);
    cr_assert_eq(ds->n_videos, 4926);
    cr_assert_eq(tal_dataset_n_segments(ds), 7654);
    cr_assert_eq(ds->n_classes, 200);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_UNKNOWN), 4926);
    tal_dataset_destroy(ds);
}

Test(data_anno, anet13_bsn_plain_file) {
    tal_dataset *ds = load_ok(TEST_DATA "/anet13_bsn_anno_action.json", NULL);
    cr_assert_eq(ds->format, TAL_ANNO_PLAIN_JSON);
    cr_assert_eq(ds->n_videos, 19228);
    cr_assert_eq(ds->n_classes, 200);
    int v = tal_dataset_find(ds, "QOlSCBRmfWY");
    cr_assert_geq(v, 0, "found without its v_ prefix");
    cr_assert_str_eq(ds->videos[v].id, "v_QOlSCBRmfWY");
    cr_assert_float_eq(ds->videos[v].duration_s, 82.73, 1e-9);
    cr_assert_eq(ds->videos[v].n_frames, 2067);
    tal_dataset_destroy(ds);
}

Test(data_anno, thumos14_json_files) {
    tal_dataset *ds = load_ok(TEST_DATA "/thumos14_test_gt.json", NULL);
    cr_assert_eq(ds->n_videos, 212);
    cr_assert_eq(tal_dataset_n_segments(ds), 3358);
    cr_assert_eq(ds->n_classes, 20);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_TESTING), 212);
    tal_dataset_destroy(ds);

    ds = load_ok(TEST_DATA "/thumos14_val_gt.json", NULL);
    cr_assert_eq(ds->n_videos, 200);
    cr_assert_eq(tal_dataset_n_segments(ds), 3007);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_VALIDATION), 200);
    tal_dataset_destroy(ds);

    ds = load_ok(TEST_DATA "/thumos14_lzszq_thumos14.json", NULL);
    cr_assert_eq(ds->format, TAL_ANNO_PLAIN_JSON);
    cr_assert_eq(ds->n_videos, 412);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_TESTING), 212);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_VALIDATION), 200);
    int v = tal_dataset_find(ds, "video_test_0000896");
    cr_assert_eq(ds->videos[v].n_frames, 6799);
    cr_assert_float_eq(ds->videos[v].duration_s, 226.63333333333333, 1e-9);
    tal_dataset_destroy(ds);
}

Test(data_anno, thumos14_gtad_string_segments) {
    tal_dataset *ds = load_ok(TEST_DATA "/thumos14_gtad_thumos_gt.json", NULL);
    cr_assert_eq(ds->n_videos, 410);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_TESTING), 210);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_TRAINING), 200);
    int v = tal_dataset_find(ds, "video_test_0000896");
    cr_assert_float_eq(ds->videos[v].segments[0].start_s, 18.6, 1e-12);
    cr_assert_float_eq(ds->videos[v].segments[0].end_s, 24.8, 1e-12);
    cr_assert_eq(tal_dataset_find(ds, "video_test_0000270"), -1);
    tal_dataset_destroy(ds);
}

Test(data_anno, thumos14_class_text_files) {
    tal_dataset *ds = load_ok(TEST_DATA "/thumos14_annotations", "test");
    cr_assert_eq(ds->format, TAL_ANNO_THUMOS_TXT);
    cr_assert_eq(ds->n_classes, 20);
    cr_assert_eq(tal_dataset_n_segments(ds), 3358);
    int n_amb = 0, n_with_gt = 0;
    for (int i = 0; i < ds->n_videos; i++) {
        n_amb += ds->videos[i].n_ambiguous;
        n_with_gt += ds->videos[i].n_segments > 0;
        if (i) cr_assert_lt(strcmp(ds->videos[i - 1].id, ds->videos[i].id), 0, "id order");
    }
    cr_assert_eq(n_amb, 99);
    cr_assert_eq(n_with_gt, 212);
    int v = tal_dataset_find(ds, "video_test_0001292");
    cr_assert_geq(v, 0);
    cr_assert_eq(ds->videos[v].n_segments, 0, "only Ambiguous spans");
    cr_assert_gt(ds->videos[v].n_ambiguous, 0);
    cr_assert_eq(ds->videos[v].subset, TAL_SUBSET_TESTING);
    tal_dataset_destroy(ds);

    ds = load_ok(TEST_DATA "/thumos14_annotations", "val");
    cr_assert_eq(tal_dataset_n_segments(ds), 3007);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_VALIDATION), ds->n_videos);
    tal_dataset_destroy(ds);
}

/* The text files and the derived JSON hold the same instances. */
Test(data_anno, thumos14_text_equals_json) {
    tal_dataset *a = load_ok(TEST_DATA "/thumos14_annotations", "test");
    tal_dataset *b = load_ok(TEST_DATA "/thumos14_test_gt.json", NULL);
    for (int k = 0; k < 20; k++) cr_assert_str_eq(a->class_names[k], b->class_names[k]);
    for (int i = 0; i < b->n_videos; i++) {
        const tal_video_anno *vb = &b->videos[i];
        int j = tal_dataset_find(a, vb->id);
        cr_assert_geq(j, 0, "%s", vb->id);
        const tal_video_anno *va = &a->videos[j];
        cr_assert_eq(va->n_segments, vb->n_segments, "%s", vb->id);
        for (int s = 0; s < vb->n_segments; s++) {
            int found = 0;
            for (int t = 0; t < va->n_segments && !found; t++)
                found = va->segments[t].label == vb->segments[s].label &&
                        fabs(va->segments[t].start_s - vb->segments[s].start_s) < 1e-9 &&
                        fabs(va->segments[t].end_s - vb->segments[s].end_s) < 1e-9;
            cr_assert(found, "%s segment %d", vb->id, s);
        }
    }
    tal_dataset_destroy(a);
    tal_dataset_destroy(b);
}

Test(data_anno, class_maps) {
    tal_class_map map;
    tal_err err = {0};
    cr_assert_eq(tal_class_map_load(&map, TEST_DATA "/thumos14_annotations/detclasslist.txt",
                                    &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_eq(map.n, 20);
    cr_assert_str_eq(map.names[0], "BaseballPitch");
    cr_assert_str_eq(map.names[19], "VolleyballSpiking");
    cr_assert_eq(tal_class_map_find(&map, "HighJump"), 11);
    cr_assert_eq(tal_class_map_find(&map, "Nope"), -1);

    /* Relabelling: same order as the sorted set here, and a map missing one class drops it. */
    tal_dataset *ds = load_ok(TEST_DATA "/thumos14_test_gt.json", NULL);
    int n_unknown = -1;
    cr_assert_eq(tal_dataset_set_classes(ds, &map, &n_unknown, &err), TAL_OK);
    cr_assert_eq(n_unknown, 0);
    cr_assert_eq(tal_dataset_n_segments(ds), 3358);
    free(map.names[11]);
    map.names[11] = strdup("NotHighJump");
    cr_assert_eq(tal_dataset_set_classes(ds, &map, &n_unknown, &err), TAL_OK);
    cr_assert_gt(n_unknown, 0);
    cr_assert(strstr(err.msg, "HighJump"), "unknown labels are listed: %s", err.msg);
    cr_assert_eq(tal_dataset_n_segments(ds), 3358 - n_unknown);
    tal_dataset_destroy(ds);
    tal_class_map_free(&map);

    const char *plain = test_tmp_path("classes_plain.txt");
    FILE *f = fopen(plain, "w");
    fputs("# comment\nb\n\n  a  \n", f);
    fclose(f);
    cr_assert_eq(tal_class_map_load(&map, plain, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(map.n, 2);
    cr_assert_str_eq(map.names[0], "b");
    cr_assert_str_eq(map.names[1], "a");
    tal_class_map_free(&map);

    const char *js = test_tmp_path("classes.json");
    f = fopen(js, "w");
    fputs("[\"x\", \"y\", \"z\"]", f);
    fclose(f);
    cr_assert_eq(tal_class_map_load(&map, js, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(map.n, 3);
    tal_class_map_free(&map);
}

Test(data_anno, class_map_errors) {
    tal_class_map map;
    tal_err err = {0};
    const char *dup = test_tmp_path("classes_dup.txt");
    FILE *f = fopen(dup, "w");
    fputs("a\nb\na\n", f);
    fclose(f);
    cr_assert_eq(tal_class_map_load(&map, dup, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "classes_dup.txt") && strstr(err.msg, "'a'"), "%s", err.msg);

    const char *mixed = test_tmp_path("classes_mixed.txt");
    f = fopen(mixed, "w");
    fputs("1 a\nb\n", f);
    fclose(f);
    cr_assert_eq(tal_class_map_load(&map, mixed, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "classes_mixed.txt:2"), "%s", err.msg);

    const char *empty = test_tmp_path("classes_empty.txt");
    f = fopen(empty, "w");
    fputs("# nothing\n", f);
    fclose(f);
    cr_assert_eq(tal_class_map_load(&map, empty, &err), TAL_EFORMAT);

    const char *badjs = test_tmp_path("classes_bad.json");
    f = fopen(badjs, "w");
    fputs("[\"x\", 3]", f);
    fclose(f);
    cr_assert_eq(tal_class_map_load(&map, badjs, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "[1]"), "%s", err.msg);

    cr_assert_eq(tal_class_map_load(&map, test_tmp_path("no_such_classes.txt"), &err), TAL_EIO);
    cr_assert(strstr(err.msg, "no_such_classes.txt"), "%s", err.msg);
}

Test(data_anno, subset_filter_and_block_list) {
    tal_dataset *ds = load_ok(TEST_DATA "/thumos14_lzszq_thumos14.json", NULL);
    cr_assert_eq(tal_dataset_filter_subset(ds, TAL_SUBSET_TESTING), 200);
    cr_assert_eq(ds->n_videos, 212);

    const char *bl = test_tmp_path("blocked.json");
    FILE *f = fopen(bl, "w");
    fputs("[\"video_test_0000270\", \"video_test_0000004\", \"not_there\"]", f);
    fclose(f);
    int n = -1;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_block(ds, bl, &n, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(ds->n_videos, 210);
    cr_assert_eq(tal_dataset_find(ds, "video_test_0000270"), -1);

    const char *bt = test_tmp_path("blocked.txt");
    f = fopen(bt, "w");
    fputs("# missing videos\nvideo_test_0000896\n\n", f);
    fclose(f);
    cr_assert_eq(tal_dataset_block(ds, bt, &n, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(ds->n_videos, 209);

    cr_assert_eq(tal_dataset_block(ds, test_tmp_path("no_block_list"), &n, &err), TAL_EIO);
    cr_assert(strstr(err.msg, "no_block_list"), "%s", err.msg);
    const char *bad = test_tmp_path("blocked_bad.json");
    f = fopen(bad, "w");
    fputs("[\"a\", {}]", f);
    fclose(f);
    cr_assert_eq(tal_dataset_block(ds, bad, &n, &err), TAL_EFORMAT);
    cr_assert_eq(ds->n_videos, 209, "a failed block list changes nothing");
    tal_dataset_destroy(ds);
}

Test(data_anno, subsets_by_name) {
    tal_subset s;
    tal_err err = {0};
    cr_assert_eq(tal_subset_parse(&s, "train", &err), TAL_OK);
    cr_assert_eq(s, TAL_SUBSET_TRAINING);
    cr_assert_eq(tal_subset_parse(&s, "val", &err), TAL_OK);
    cr_assert_eq(s, TAL_SUBSET_VALIDATION);
    cr_assert_eq(tal_subset_parse(&s, "testing", &err), TAL_OK);
    cr_assert_eq(s, TAL_SUBSET_TESTING);
    cr_assert_eq(tal_subset_parse(&s, "Training", &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "Training"), "%s", err.msg);
    cr_assert_str_eq(tal_subset_name(TAL_SUBSET_VALIDATION), "validation");
}

Test(data_anno, video_paths) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("videos_dir"));
    mkdir(dir, 0777);
    char p[600];
    snprintf(p, sizeof p, "%s/abc.mkv", dir);
    fclose(fopen(p, "w"));
    snprintf(p, sizeof p, "%s/v_xyz.mp4", dir);
    fclose(fopen(p, "w"));
    char buf[700];
    tal_err err = {0};
    cr_assert_eq(tal_video_path(buf, sizeof buf, dir, "abc", NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert(strstr(buf, "abc.mkv"), "%s", buf);
    cr_assert_eq(tal_video_path(buf, sizeof buf, dir, "xyz", NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert(strstr(buf, "v_xyz.mp4"), "%s", buf);
    cr_assert_eq(tal_video_path(buf, sizeof buf, dir, "v_abc", NULL, &err), TAL_OK);
    const char *only_mp4[] = {"mp4", NULL};
    cr_assert_eq(tal_video_path(buf, sizeof buf, dir, "abc", only_mp4, &err), TAL_EIO);
    cr_assert(strstr(err.msg, "abc") && strstr(err.msg, "videos_dir"), "%s", err.msg);
    cr_assert_eq(tal_video_path(buf, 8, dir, "abc", NULL, &err), TAL_EINVAL);
}

/* ---------------------------------------------------------------- bad input ------------- */
static void expect_parse_error(const char *json, const char *want1, const char *want2) {
    tal_dataset *ds = (tal_dataset *)1;
    tal_err err = {0};
    tal_status s = tal_dataset_parse(&ds, "bad.json", json, strlen(json), &err);
    cr_assert_eq(s, TAL_EFORMAT, "accepted: %s", json);
    cr_assert_null(ds);
    cr_assert(strstr(err.msg, "bad.json"), "message must name the file: %s", err.msg);
    cr_assert(strstr(err.msg, want1), "message must contain '%s': %s", want1, err.msg);
    if (want2) cr_assert(strstr(err.msg, want2), "message must contain '%s': %s", want2, err.msg);
}

#define VIDEO(body) "{\"database\": {\"v_abc\": {\"subset\": \"training\", " body "}}}"
#define SEGS(s) VIDEO("\"duration\": 50, \"annotations\": [" s "]")
#define GOOD "{\"segment\": [1, 2], \"label\": \"a\"}"

Test(data_anno, malformed_json_gives_line_and_column) {
    expect_parse_error("{\n  \"database\": {\n    \"a\": {,}\n  }\n}", "line 3, column", NULL);
    expect_parse_error("", "line 1, column 1", NULL);
    expect_parse_error("{\"database\": {}} trailing", "line 1, column 18", NULL);
    expect_parse_error("{\"database\": {\"a\": ", "ends early", NULL);
    expect_parse_error("[1, 2]", "expected a JSON object", NULL);
    expect_parse_error("{\"database\": []}", "database.", "expected an object");
}

Test(data_anno, bad_entries_name_the_json_path) {
    expect_parse_error(VIDEO("\"duration\": 5"), "database.v_abc", "missing key \"annotations\"");
    expect_parse_error(VIDEO("\"annotations\": {}"), "database.v_abc.annotations",
                       "expected an array");
    expect_parse_error(SEGS(GOOD ", " GOOD ", {\"segment\": [31.5, 12.0], \"label\": \"a\"}"),
                       "database.v_abc.annotations[2].segment", "end 12 s is before start 31.5 s");
    expect_parse_error(SEGS("{\"segment\": \"x\", \"label\": \"a\"}"),
                       "database.v_abc.annotations[0].segment", "expected [start, end]");
    expect_parse_error(SEGS("{\"segment\": [1, 2, 3], \"label\": \"a\"}"),
                       "annotations[0].segment", "another length");
    expect_parse_error(SEGS("{\"segment\": [1, true], \"label\": \"a\"}"),
                       "annotations[0].segment[1]", "got a boolean");
    expect_parse_error(SEGS("{\"segment\": [\"nan\", \"2\"], \"label\": \"a\"}"),
                       "annotations[0].segment[0]", "finite");
    expect_parse_error(SEGS("{\"segment\": [1, 1e999], \"label\": \"a\"}"),
                       "annotations[0].segment[1]", "finite");
    expect_parse_error(SEGS("{\"segment\": [-1, 2], \"label\": \"a\"}"),
                       "annotations[0].segment[0]", "negative time");
    expect_parse_error(SEGS("{\"segment\": [\"1.5s\", 2], \"label\": \"a\"}"),
                       "annotations[0].segment[0]", "1.5s");
    expect_parse_error(SEGS("{\"segment\": [1, 2]}"), "annotations[0]", "missing key \"label\"");
    expect_parse_error(SEGS("{\"label\": \"a\"}"), "annotations[0]", "missing key \"segment\"");
    expect_parse_error(SEGS("{\"segment\": [1, 2], \"label\": 7}"), "annotations[0].label",
                       "expected a string, got a number");
    expect_parse_error(SEGS("3"), "annotations[0]", "expected an object");
    expect_parse_error(
        "{\"database\": {\"v_abc\": {\"subset\": \"bogus\", \"annotations\": []}}}",
        "database.v_abc.subset", "unknown subset 'bogus'");
    expect_parse_error("{\"database\": {\"v_abc\": {\"subset\": 1, \"annotations\": []}}}",
                       "database.v_abc.subset", "expected a string");
    expect_parse_error(VIDEO("\"duration\": -3, \"annotations\": []"), "database.v_abc.duration",
                       "positive");
    expect_parse_error(VIDEO("\"duration\": [], \"annotations\": []"), "database.v_abc.duration",
                       "expected a number");
    expect_parse_error(VIDEO("\"resolution\": \"96by96\", \"annotations\": []"),
                       "database.v_abc.resolution", "WIDTHxHEIGHT");
    expect_parse_error("{\"database\": {\"v_abc\": {\"annotations\": []}, \"v_x\": 4}}",
                       "database.v_x", "expected an object");
    expect_parse_error("{\"database\": {\"v_abc\": {\"annotations\": []}, "
                       "\"v_abc\": {\"annotations\": []}}}",
                       "database.v_abc", "duplicate video id");
    expect_parse_error("{\"results\": {\"v_abc\": {}}}", "results.v_abc", "expected an array");
    expect_parse_error("{\"results\": {\"v_abc\": [{\"segment\": [3, 2], \"label\": \"a\"}]}}",
                       "results.v_abc[0].segment", "before start");
    expect_parse_error("{\"v_abc\": {\"annotations\": [{\"segment\": [3, 2], \"label\": \"a\"}]}}",
                       "v_abc.annotations[0].segment", "before start");
    expect_parse_error("{\"classes\": [\"a\"], \"database\": {\"v\": {\"annotations\": "
                       "[{\"segment\": [1, 2], \"label\": \"b\"}]}}}",
                       "database.v.annotations[0].label", "not in the file's \"classes\"");
    expect_parse_error("{\"classes\": [\"a\", \"a\"], \"database\": {}}", "classes[1]",
                       "listed twice");
    expect_parse_error("{\"classes\": [\"a\", 2], \"database\": {}}", "classes[1]",
                       "expected a string");
    expect_parse_error("{\"classes\": 3, \"database\": {}}", "classes", "expected an array");
}

Test(data_anno, tolerated_problems_are_counted) {
    const char *json = "{\"database\": {"
                       "\"a\": {\"subset\": \"val\", \"duration\": 10, \"annotations\": ["
                       "{\"segment\": [1, 1], \"label\": \"x\"},"          /* zero length */
                       "{\"segment\": [2, 3], \"label\": \"x\"},"
                       "{\"segment\": [2.0004, 3], \"label\": \"x\"},"     /* duplicate */
                       "{\"segment\": [2, 3], \"label\": \"y\"},"          /* other label */
                       "{\"segment\": [8, 12.5], \"label\": \"y\"}]},"     /* past duration */
                       "\"b\": {\"annotations\": []}}}";                  /* no duration */
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_parse(&ds, "warn.json", json, strlen(json), &err), TAL_OK, "%s",
                 err.msg);
    cr_assert_eq(ds->warn.n_zero_length, 1);
    cr_assert_eq(ds->warn.n_duplicate, 1);
    cr_assert_eq(ds->warn.n_past_duration, 1);
    cr_assert_eq(ds->warn.n_no_duration, 1);
    cr_assert_eq(ds->warn.n_no_segments, 1);
    cr_assert_eq(ds->videos[0].subset, TAL_SUBSET_VALIDATION);
    cr_assert_eq(ds->videos[1].subset, TAL_SUBSET_UNKNOWN);
    cr_assert_eq(ds->videos[0].n_segments, 5, "tolerated segments are kept");
    tal_dataset_destroy(ds);
}

Test(data_anno, file_class_list_fixes_the_order) {
    const char *json = "{\"classes\": [\"z\", \"a\", \"unused\"], \"database\": {\"v\": "
                       "{\"fps\": 25, \"frames\": 100, \"resolution\": \"96x64\", "
                       "\"annotations\": [{\"segment\": [1, 2], \"label\": \"a\"}]}}}";
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_parse(&ds, "c.json", json, strlen(json), &err), TAL_OK, "%s",
                 err.msg);
    cr_assert_eq(ds->n_classes, 3);
    cr_assert_str_eq(ds->class_names[0], "z");
    cr_assert_eq(ds->videos[0].segments[0].label, 1);
    cr_assert_eq(ds->videos[0].width, 96);
    cr_assert_eq(ds->videos[0].height, 64);
    cr_assert_eq(ds->videos[0].n_frames, 100);
    cr_assert_float_eq(ds->videos[0].fps, 25, 0);
    tal_dataset_destroy(ds);
}

static const char *write_file(const char *dir, const char *name, const char *text) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

Test(data_anno, thumos_text_errors_name_file_and_line) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("thumos_bad"));
    mkdir(dir, 0777);
    write_file(dir, "Jump_test.txt", "video_1  1.0 2.0\nvideo_2  3.0\n");
    tal_dataset *ds = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_load(&ds, dir, "test", &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "Jump_test.txt:2"), "%s", err.msg);
    write_file(dir, "Jump_test.txt", "video_1  5.0 2.0\n");
    cr_assert_eq(tal_dataset_load(&ds, dir, "test", &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "Jump_test.txt:1") && strstr(err.msg, "before"), "%s", err.msg);
    write_file(dir, "Jump_test.txt", "video_1  -1 2.0\n");
    cr_assert_eq(tal_dataset_load(&ds, dir, "test", &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, ">= 0"), "%s", err.msg);
    write_file(dir, "Jump_test.txt", "video_1  nan 2.0\n");
    cr_assert_eq(tal_dataset_load(&ds, dir, "test", &err), TAL_EFORMAT);
    write_file(dir, "Jump_test.txt", "video_1  1 2.0 extra\n");
    cr_assert_eq(tal_dataset_load(&ds, dir, "test", &err), TAL_EFORMAT);
    cr_assert_null(ds);
    write_file(dir, "Jump_test.txt", "video_1  1 2.0\n\nvideo_0 0.5 0.7\n");
    write_file(dir, "Ambiguous_test.txt", "video_1  4 5\n");
    cr_assert_eq(tal_dataset_load(&ds, dir, "test", &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(ds->n_videos, 2);
    cr_assert_str_eq(ds->videos[0].id, "video_0");
    cr_assert_eq(ds->videos[1].n_ambiguous, 1);
    cr_assert_eq(ds->videos[1].ambiguous[0].label, -1);
    tal_dataset_destroy(ds);
    ds = NULL;

    cr_assert_eq(tal_dataset_load(&ds, dir, "val", &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "_val.txt"), "%s", err.msg);
    cr_assert_eq(tal_dataset_load(&ds, dir, "bogus", &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "bogus"), "%s", err.msg);
    cr_assert_eq(tal_dataset_load(&ds, test_tmp_path("no_such_dir/x.json"), NULL, &err),
                 TAL_EIO);
    cr_assert(strstr(err.msg, "x.json"), "%s", err.msg);
}

Test(data_anno, bsn_csv_tables) {
    tal_dataset *ds = load_ok(TEST_DATA "/anet13_bsn_anno_action.json", NULL);
    int matched = -1;
    tal_err err = {0};
    cr_assert_eq(tal_dataset_apply_video_table(ds, TEST_DATA "/anet13_bsn_video_info_new.csv",
                                               &matched, &err),
                 TAL_OK, "%s", err.msg);
    cr_assert_eq(matched, 9649 + 4728 + 4851);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_TRAINING), 9649);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_VALIDATION), 4728);
    cr_assert_eq(count_subset(ds, TAL_SUBSET_TESTING), 4851);
    int v = tal_dataset_find(ds, "v_---9CpRcKoU");
    cr_assert_geq(v, 0);
    cr_assert_eq(ds->videos[v].n_frames, 418);
    cr_assert_float_eq(ds->videos[v].fps, 30.0, 0);

    tal_class_map map;
    cr_assert_eq(tal_class_map_load(&map, TEST_DATA "/anet13_bsn_action_name.csv", &err), TAL_OK,
                 "%s", err.msg);
    cr_assert_eq(map.n, 200, "the header line is no class");
    cr_assert_eq(tal_class_map_find(&map, "action"), -1);
    int n_unknown = -1;
    cr_assert_eq(tal_dataset_set_classes(ds, &map, &n_unknown, &err), TAL_OK);
    cr_assert_eq(n_unknown, 0);
    tal_class_map_free(&map);

    char dir[600];
    snprintf(dir, sizeof dir, "%s", test_tmp_path(""));
    write_file(dir, "table_nohead.csv", "id,subset\nv_a,training\n");
    cr_assert_eq(tal_dataset_apply_video_table(ds, test_tmp_path("table_nohead.csv"), NULL, &err),
                 TAL_EFORMAT);
    cr_assert(strstr(err.msg, "table_nohead.csv:1"), "%s", err.msg);
    write_file(dir, "table_cols.csv", "video,subset\nv_---9CpRcKoU,training,extra\n");
    cr_assert_eq(tal_dataset_apply_video_table(ds, test_tmp_path("table_cols.csv"), NULL, &err),
                 TAL_EFORMAT);
    cr_assert(strstr(err.msg, "table_cols.csv:2"), "%s", err.msg);
    write_file(dir, "table_num.csv", "video,numFrame\nv_---9CpRcKoU,lots\n");
    cr_assert_eq(tal_dataset_apply_video_table(ds, test_tmp_path("table_num.csv"), NULL, &err),
                 TAL_EFORMAT);
    cr_assert(strstr(err.msg, "numFrame") && strstr(err.msg, "lots"), "%s", err.msg);
    write_file(dir, "table_sub.csv", "video,subset\nv_---9CpRcKoU,holdout\n");
    cr_assert_eq(tal_dataset_apply_video_table(ds, test_tmp_path("table_sub.csv"), NULL, &err),
                 TAL_EFORMAT);
    cr_assert(strstr(err.msg, "holdout"), "%s", err.msg);
    cr_assert_eq(tal_dataset_apply_video_table(ds, test_tmp_path("no_table.csv"), NULL, &err),
                 TAL_EIO);
    tal_dataset_destroy(ds);
}
