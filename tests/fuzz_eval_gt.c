/* tests/fuzz_eval_gt.c: libFuzzer target for eval's ground-truth readers: ActivityNet-style JSON
 * (first byte even) or a THUMOS-14 folder (odd: the NUL-separated parts become detclasslist.txt,
 * A_test.txt, B_test.txt, Ambiguous_test.txt). Whatever loads must score fixed detections to
 * mAPs in [0, 1] under all three protocols and recalls in [0, 1]; anything else is an error
 * naming the file or folder. Never a crash, leak, hang or undefined behaviour.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; seeds: tests/fuzz/eval_gt. */
#include "fuzz_eval_util.h"

static tal_eval_dets *fixed_dets(void) {
    tal_eval_dets *d = NULL;
    tal_err err = {0};
    FUZZ_CHECK(tal_eval_dets_create(&d, &err) == TAL_OK, "%s", err.msg);
    const char *videos[] = {"v1", "video_test_0000004", "v2", "v1"};
    const char *labels[] = {"A", "B", "A", "B"};
    for (int i = 0; i < 4; i++)
        FUZZ_CHECK(tal_eval_dets_add(d, videos[i], labels[i], i, 2.5 * i + 1, 0.9 - 0.2 * i,
                                     &err) == TAL_OK, "%s", err.msg);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    static tal_eval_dets *dets;
    if (!dets) dets = fixed_dets();
    if (size < 1) return 0;
    const char *path;
    if (bytes[0] % 2 == 0) {
        path = fuzz_path("gt.json");
        fuzz_write(path, bytes + 1, size - 1);
    } else {
        const char *names[4] = {"detclasslist.txt", "A_test.txt", "B_test.txt",
                                "Ambiguous_test.txt"};
        const uint8_t *part[4];
        size_t part_size[4];
        int n = fuzz_split(bytes + 1, size - 1, 4, part, part_size);
        path = fuzz_path("gt");
        mkdir(path, 0700);
        for (int i = 0; i < 4; i++) {
            char name[64];
            snprintf(name, sizeof name, "gt/%s", names[i]);
            if (i < n) fuzz_write(fuzz_path(name), part[i], part_size[i]);
            else unlink(fuzz_path(name));
        }
    }
    tal_eval_gt *gt = NULL;
    tal_err err = {0};
    if (tal_eval_gt_load(&gt, path, NULL, &err) == TAL_OK) {
        FUZZ_CHECK(tal_eval_gt_n_instances(gt) > 0, "an empty GT loaded");
        for (int c = 0; c < tal_eval_gt_n_classes(gt); c++)
            FUZZ_CHECK(tal_eval_gt_class_name(gt, c) != NULL, "class %d", c);
        fuzz_score(gt, dets);
        tal_eval_gt_destroy(gt);
    } else {
        FUZZ_CHECK(gt == NULL, "a GT with an error");
        fuzz_check_names(&err, path);
    }
    return 0;
}
