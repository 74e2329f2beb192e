/* tests/test_eval_differential.c: eval/ against an independent numpy port of the reference
 * evaluators (bench/eval_numpy_ref.py, written from the spec) on generated inputs that hit the
 * corners at once: reversed and zero-length detections (NaN tIoU pairs, 1-decimal times), GT
 * duplicates, zero-length GT, detections on videos outside the subset, jittered copies of GT
 * (next-best-unmatched walks), videos with up to 60 GT of one class (numpy's introsort order
 * for tied tIoU: dense_b differs from any stable order), and tied scores (file order); and the
 * THUMOS-14 kit rules (GT-centric, strict, 11-point) on the same files.
 * Expectations are exact float64 (hex); regenerate with
 *   bench/eval_numpy_ref.py --gt tests/fixtures/eval_diff_<case>_gt.json
 *       --pred tests/fixtures/eval_diff_<case>_pred.json --protocol P --ties stable --hex */
#include <string.h>

#include "eval/eval.h"
#include "testlib.h"

typedef struct diff_case {
    const char *name;
    tal_eval_protocol protocol;
    double map[10]; /* default thresholds linspace(0.5, 0.95, 10) */
    double average;
} diff_case;

static const diff_case cases[] = {
    {"small_a", TAL_EVAL_ACTIVITYNET, {0x1.8d30bc136b94ep-2, 0x1.8777c82f8c8bep-2, 0x1.74b3245ff707dp-2, 0x1.68d066341449ap-2, 0x1.660f796486900p-2, 0x1.5e8646a2ced1ap-2, 0x1.59e7b7b7fbd45p-2, 0x1.318d3a0cce836p-2, 0x1.0c9a7cfeb4455p-2, 0x1.0e064a8bff626p-3}, 0x1.48953d172f1d1p-2},
    {"small_a", TAL_EVAL_OPENTAD, {0x1.8e2de11dd31c1p-2, 0x1.87e26e6ff75eep-2, 0x1.73b2061d2848fp-2, 0x1.683c81f8192b3p-2, 0x1.657b95288b71ap-2, 0x1.5be43d49447f5p-2, 0x1.56fff80730ee3p-2, 0x1.28fee99c1c4d6p-2, 0x1.00ee8c0e301f2p-2, 0x1.004b5b87a9686p-3}, 0x1.453e93c10497ep-2},
    {"small_b", TAL_EVAL_ACTIVITYNET, {0x1.0135ee7fa91b7p-2, 0x1.f052e7c438260p-3, 0x1.e1473a67b3355p-3, 0x1.cb8b787337eaep-3, 0x1.c845b824da45ep-3, 0x1.adaf29b34c790p-3, 0x1.9c85215036eb8p-3, 0x1.60b482265f8e3p-3, 0x1.3d85e131dc5fep-3, 0x1.1fc307c55f7a2p-3}, 0x1.a4cdb096d7db3p-3},
    {"small_b", TAL_EVAL_OPENTAD, {0x1.000b900fa572cp-2, 0x1.ed4916c438443p-3, 0x1.dd676dff01462p-3, 0x1.d1d7357bf9962p-3, 0x1.ce91752d9bf13p-3, 0x1.b08dd0c8c4ac5p-3, 0x1.9f63c865af1edp-3, 0x1.5ea5615daed1cp-3, 0x1.3ceee9b030bf0p-3, 0x1.21361f671a335p-3}, 0x1.a597a1eb27270p-3},
    {"dense_a", TAL_EVAL_ACTIVITYNET, {0x1.afdb555aa65c6p-2, 0x1.a108b92e2ad50p-2, 0x1.8024ed6bba694p-2, 0x1.74d56c8f22652p-2, 0x1.6e37e3d43390cp-2, 0x1.5508b32a60ba5p-2, 0x1.49381cf826d02p-2, 0x1.1c27289f86b91p-2, 0x1.e683fe5ecd4f4p-3, 0x1.a39c0cc2ea90cp-3}, 0x1.51f4a11114606p-2},
    {"dense_a", TAL_EVAL_OPENTAD, {0x1.9ee96b176ba2cp-2, 0x1.8c28f66aea08ep-2, 0x1.6c94bdf82bf89p-2, 0x1.611f64bbd185ap-2, 0x1.5a846978c0d00p-2, 0x1.4069eb9339f68p-2, 0x1.344cab4f7d60bp-2, 0x1.065d3c77c1552p-2, 0x1.be49d7c296677p-3, 0x1.83c431d5a26ffp-3}, 0x1.3e56fa2ef74e9p-2},
    {"dense_b", TAL_EVAL_ACTIVITYNET, {0x1.66ccb291a2d6ap-3, 0x1.636cfd7b770c0p-3, 0x1.3eaaa8cf853b8p-3, 0x1.37ec443204432p-3, 0x1.3088967b7542fp-3, 0x1.2b0f4aa4652f8p-3, 0x1.1b421c2a42240p-3, 0x1.0acd308c8a7d4p-3, 0x1.fe72718b70f12p-4, 0x1.62f42e45ab2cbp-4}, 0x1.251de91495a6dp-3},
    {"dense_b", TAL_EVAL_OPENTAD, {0x1.37671a08a0605p-3, 0x1.3396bca1a6867p-3, 0x1.146bc315de3acp-3, 0x1.136d522318ad6p-3, 0x1.0cb803dbbde06p-3, 0x1.078c0e33a9308p-3, 0x1.ec7ccb1a3acb7p-4, 0x1.ca7bddcf83e3ap-4, 0x1.b4b2b723eedeap-4, 0x1.2e010dcbb019dp-4}, 0x1.fd96a42caa573p-4},
    {"ties", TAL_EVAL_ACTIVITYNET, {0x1.1536748f58695p-2, 0x1.0460e7036e0b6p-2, 0x1.0460e7036e0b6p-2, 0x1.d6dcf4b4e2069p-3, 0x1.d2ccb3b0d1c59p-3, 0x1.c04524d17d69ep-3, 0x1.a8d6588f63f2fp-3, 0x1.9ea58c339e842p-3, 0x1.531e202779435p-3, 0x1.31c8d401ae344p-3}, 0x1.bea03787fa03bp-3},
    {"ties", TAL_EVAL_OPENTAD, {0x1.0505528a369b0p-2, 0x1.f339493be2884p-3, 0x1.f339493be2884p-3, 0x1.c105d83bd5ba4p-3, 0x1.bc48370c6d6e7p-3, 0x1.a6e6e0f70c186p-3, 0x1.8bdd305c0267cp-3, 0x1.7f97e3e4e7ab6p-3, 0x1.2dd6b0f7ab02cp-3, 0x1.140d90b86797cp-3}, 0x1.a3678c92d96bdp-3},
    {"small_a", TAL_EVAL_THUMOS14, {0x1.3ab88f03002bfp-2, 0x1.3ab88f03002bfp-2, 0x1.3347c3e148cf3p-2, 0x1.298d20ddae050p-2, 0x1.298d20ddae050p-2, 0x1.298d20ddae050p-2, 0x1.298d20ddae050p-2, 0x1.07e403b5f9ad3p-2, 0x1.ed0bb7552c10ep-3, 0x1.c69ac7aa6085ep-4}, 0x1.1319657750e83p-2},
    {"small_b", TAL_EVAL_THUMOS14, {0x1.cafe38f40d9cep-3, 0x1.cafe38f40d9cep-3, 0x1.cafe38f40d9cep-3, 0x1.ad274f334df92p-3, 0x1.ad274f334df92p-3, 0x1.8ecfc876b5487p-3, 0x1.7d71aafcbc57cp-3, 0x1.60ecf9f77d783p-3, 0x1.43194eab95db3p-3, 0x1.25b7923432906p-3}, 0x1.8e87425af2d47p-3},
    {"dense_a", TAL_EVAL_THUMOS14, {0x1.381115f4abb1bp-2, 0x1.33e00711dae5ep-2, 0x1.1e1918f263899p-2, 0x1.1b32edf73fa96p-2, 0x1.0bfb27b2697aap-2, 0x1.0a2d1c1849d62p-2, 0x1.07cd4c4827504p-2, 0x1.eaa8517aa65acp-3, 0x1.bbaffa76cf0b0p-3, 0x1.9c9bed04d0b66p-3}, 0x1.0a11480c9d8c2p-2},
    {"dense_b", TAL_EVAL_THUMOS14, {0x1.126e5fce19ee5p-3, 0x1.126e5fce19ee5p-3, 0x1.0a722f1925044p-3, 0x1.044703b0a6c71p-3, 0x1.daf164993eabep-4, 0x1.d7b56c171182cp-4, 0x1.b28e939cd2a9ep-4, 0x1.b28e939cd2a9ep-4, 0x1.ae8c35d848e48p-4, 0x1.3ccb7e6d12461p-4}, 0x1.d76d8e7f87ffdp-4},
    {"ties", TAL_EVAL_THUMOS14, {0x1.e132dfc56fd80p-3, 0x1.c9a14db6bc672p-3, 0x1.c9a14db6bc672p-3, 0x1.a62cb42a4ca75p-3, 0x1.a62cb42a4ca75p-3, 0x1.93d6aa4abd7dbp-3, 0x1.89aee3d6ccb96p-3, 0x1.89aee3d6ccb96p-3, 0x1.61905326580b8p-3, 0x1.46740ea0f8936p-3}, 0x1.9b33f8ba50f3ap-3},
};

static void run_case(const diff_case *c) {
    char gt_path[512], pred_path[512];
    snprintf(gt_path, sizeof gt_path, FIXTURES "/eval_diff_%s_gt.json", c->name);
    snprintf(pred_path, sizeof pred_path, FIXTURES "/eval_diff_%s_pred.json", c->name);
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    tal_eval_result *r = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, gt_path, NULL, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_eval_dets_load(d, pred_path, NULL, &err), TAL_OK, "%s", err.msg);
    tal_eval_opts o;
    memset(&o, 0, sizeof o);
    o.protocol = c->protocol;
    cr_assert_eq(tal_eval_run(&r, gt, d, &o, &err), TAL_OK, "%s: %s", c->name, err.msg);
    cr_assert_eq(r->n_tiou, 10);
    for (int t = 0; t < 10; t++)
        cr_expect(r->map[t] == c->map[t], "%s/%s: mAP@%.17g: got %a, numpy %a", c->name,
                  tal_eval_protocol_name(c->protocol), r->tiou[t], r->map[t], c->map[t]);
    cr_expect(r->average_map == c->average, "%s/%s: average: got %a, numpy %a", c->name,
              tal_eval_protocol_name(c->protocol), r->average_map, c->average);
    tal_eval_result_destroy(r);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}

Test(eval_differential, small_videos) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!strncmp(cases[i].name, "small", 5) && cases[i].protocol != TAL_EVAL_THUMOS14)
            run_case(&cases[i]);
}

Test(eval_differential, dense_videos_numpy_tiou_order) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!strncmp(cases[i].name, "dense", 5) && cases[i].protocol != TAL_EVAL_THUMOS14)
            run_case(&cases[i]);
}

Test(eval_differential, tied_scores_file_order) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!strcmp(cases[i].name, "ties") && cases[i].protocol != TAL_EVAL_THUMOS14)
            run_case(&cases[i]);
}

Test(eval_differential, thumos14_kit_rules) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (cases[i].protocol == TAL_EVAL_THUMOS14) run_case(&cases[i]);
}

/* Threads over classes do not change a bit. */
Test(eval_differential, threads_do_not_change_numbers) {
    tal_err err = {0};
    tal_eval_gt *gt = NULL;
    tal_eval_dets *d = NULL;
    cr_assert_eq(tal_eval_gt_load(&gt, FIXTURES "/eval_diff_small_b_gt.json", NULL, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_create(&d, &err), TAL_OK);
    cr_assert_eq(tal_eval_dets_load(d, FIXTURES "/eval_diff_small_b_pred.json", NULL, &err), TAL_OK);
    tal_eval_result *r1 = NULL, *r3 = NULL;
    tal_eval_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    cr_assert_eq(tal_eval_run(&r1, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    o.threads = 3;
    cr_assert_eq(tal_eval_run(&r3, gt, d, &o, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(r1->n_classes, r3->n_classes);
    cr_assert(!memcmp(r1->ap, r3->ap, sizeof *r1->ap * (size_t)(r1->n_classes * r1->n_tiou)));
    cr_assert(r1->average_map == r3->average_map);
    tal_eval_result_destroy(r1);
    tal_eval_result_destroy(r3);
    tal_eval_dets_destroy(d);
    tal_eval_gt_destroy(gt);
}
