/* tests/fuzz_data_text.c: libFuzzer target for the text readers of data/: the THUMOS per-class
 * folder (the input's NUL-separated parts become A_test.txt, B_test.txt, Ambiguous_test.txt),
 * class maps (plain, numbered, JSON, CSV), block lists and BSN video tables applied to a small
 * dataset. The first byte picks the reader. Any bytes give a result that holds together or an
 * error naming the file; never a crash, leak, hang or undefined behaviour.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; seeds: tests/fuzz/data_text. */
#include "data/data.h"
#include "fuzz_util.h"

static const char *DATASET =
    "{\"database\": {\"v_a\": {\"subset\": \"validation\", \"duration\": 20, \"annotations\": "
    "[{\"segment\": [1, 5], \"label\": \"Jump\"}, {\"segment\": [6, 9], \"label\": \"Run\"}]},"
    "\"b\": {\"subset\": \"training\", \"annotations\": [{\"segment\": [0, 2], \"label\": \"Run\"}]},"
    "\"v_c\": {\"subset\": \"testing\", \"duration\": 3, \"annotations\": []}}}";

static void check_dataset(const tal_dataset *ds) {
    for (int i = 0; i < ds->n_videos; i++) {
        const tal_video_anno *v = &ds->videos[i];
        FUZZ_CHECK(v->id && tal_dataset_find(ds, v->id) >= 0, "video %d", i);
        for (int k = 0; k < v->n_segments; k++) {
            const tal_segment *s = &v->segments[k];
            FUZZ_CHECK(s->start_s >= 0 && s->end_s >= s->start_s, "%s[%d]", v->id, k);
            FUZZ_CHECK(s->label >= 0 && s->label < ds->n_classes, "%s[%d]", v->id, k);
        }
        for (int k = 0; k < v->n_ambiguous; k++)
            FUZZ_CHECK(v->ambiguous[k].end_s >= v->ambiguous[k].start_s, "%s amb %d", v->id, k);
    }
}

static void thumos_folder(const uint8_t *bytes, size_t size) {
    const char *names[3] = {"A_test.txt", "B_test.txt", "Ambiguous_test.txt"};
    const uint8_t *part[3];
    size_t part_size[3];
    int n = fuzz_split(bytes, size, 3, part, part_size);
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "th/%s", names[i]);
        if (i == 0) mkdir(fuzz_path("th"), 0700);
        if (i < n) fuzz_write(fuzz_path(path), part[i], part_size[i]);
        else unlink(fuzz_path(path));
    }
    tal_dataset *ds = NULL;
    tal_err err = {0};
    const char *dir = fuzz_path("th");
    if (tal_dataset_load(&ds, dir, "test", &err) == TAL_OK) {
        FUZZ_CHECK(ds->n_classes == (n >= 2 ? 2 : 1), "%d classes", ds->n_classes);
        check_dataset(ds);
        tal_dataset_destroy(ds);
    } else {
        FUZZ_CHECK(ds == NULL, "a dataset with an error");
        fuzz_check_names(&err, dir);
    }
}

static void class_map(const uint8_t *bytes, size_t size, int csv) {
    const char *path = fuzz_path(csv ? "classes.csv" : "classes.txt");
    fuzz_write(path, bytes, size);
    tal_class_map map = {0};
    tal_err err = {0};
    if (tal_class_map_load(&map, path, &err) != TAL_OK) {
        fuzz_check_names(&err, path);
        return;
    }
    for (int i = 0; i < map.n; i++) {
        FUZZ_CHECK(map.names[i] != NULL, "class %d", i);
        FUZZ_CHECK(tal_class_map_find(&map, map.names[i]) == i, "class %d '%s'", i, map.names[i]);
    }
    tal_dataset *ds = NULL;
    FUZZ_CHECK(tal_dataset_parse(&ds, "fixed.json", DATASET, strlen(DATASET), &err) == TAL_OK,
               "%s", err.msg);
    int unknown = 0;
    if (tal_dataset_set_classes(ds, &map, &unknown, &err) == TAL_OK) {
        FUZZ_CHECK(ds->n_classes == map.n, "%d classes after relabelling", ds->n_classes);
        check_dataset(ds);
    }
    tal_dataset_destroy(ds);
    tal_class_map_free(&map);
}

/* A block list (kind 0) or a video table (kind 1) applied to the fixed dataset. */
static void applied_to_dataset(const uint8_t *bytes, size_t size, int kind) {
    const char *path = fuzz_path(kind ? "table.csv" : "blocked.txt");
    fuzz_write(path, bytes, size);
    tal_dataset *ds = NULL;
    tal_err err = {0};
    FUZZ_CHECK(tal_dataset_parse(&ds, "fixed.json", DATASET, strlen(DATASET), &err) == TAL_OK,
               "%s", err.msg);
    int n = 0;
    tal_status s = kind ? tal_dataset_apply_video_table(ds, path, &n, &err)
                        : tal_dataset_block(ds, path, &n, &err);
    if (s == TAL_OK) {
        FUZZ_CHECK(n >= 0, "count %d", n);
        FUZZ_CHECK(kind || ds->n_videos == 3 - n, "%d videos after dropping %d", ds->n_videos, n);
        check_dataset(ds);
    } else {
        fuzz_check_names(&err, path);
    }
    tal_dataset_destroy(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    if (size < 1) return 0;
    switch (bytes[0] % 5) {
    case 0: thumos_folder(bytes + 1, size - 1); break;
    case 1: class_map(bytes + 1, size - 1, 0); break;
    case 2: class_map(bytes + 1, size - 1, 1); break;
    case 3: applied_to_dataset(bytes + 1, size - 1, 0); break;
    default: applied_to_dataset(bytes + 1, size - 1, 1); break;
    }
    return 0;
}
