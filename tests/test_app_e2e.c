/* The whole pipeline through the re2tal binary (RE2TAL_BIN, through tests/app_cli.h) on a tiny
 * synthetic set: synth -> train -> checkpoint -> resume (the resumed run reproduces the
 * uninterrupted run's losses exactly) -> kill -9 and resume -> infer on raw videos (a corrupt one
 * skipped and reported) -> extract -> evaluate; plus config errors that name the key. Any broken
 * stage fails a test here. */
#include "app_cli.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backbone/backbone.h"
#include "nn/nn.h"

static void setup(void) { app_make_tiny_set("e2e"); }

static void teardown(void) { app_remove_dir(); }

TestSuite(app_e2e, .init = setup, .fini = teardown, .timeout = 600);

/* The "loss" values of a log, in order, as text (exact comparison). */
static char *losses(const char *log_name) {
    char *log = slurp(log_name);
    cr_assert_not_null(log, "no %s", log_name);
    char *out = calloc(1, strlen(log) + 1);
    for (char *p = log; (p = strstr(p, "\"loss\": ")); p += 8) {
        size_t n = strcspn(p + 8, ",}");
        strncat(out, p + 8, n);
        strcat(out, " ");
    }
    free(log);
    return out;
}

Test(app_e2e, train_resume_reproduces_the_uninterrupted_run) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=a --quiet"), 0);
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=b --set train.stop_after=2 "
                        "--quiet"), 130, "a stopped run exits 130 after its checkpoint");
    cr_assert_eq(sh("test -f b/last/state.json && test -f b/last/model.safetensors && "
                    "test -f b/last/optim.safetensors && test -f b/last/ema.safetensors"), 0);
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=b --resume --quiet"), 0);
    char *la = losses("a/log.jsonl"), *lb = losses("b/log.jsonl");
    cr_assert(strlen(la) > 10, "no losses logged: %s", la);
    cr_expect_str_eq(lb, la, "resumed run's losses differ:\n  %s\nvs uninterrupted:\n  %s", lb, la);
    cr_expect(!strstr(la, "nan") && !strstr(la, "inf"), "non-finite loss: %s", la);
    free(la);
    free(lb);
    /* the weights that came out are the same too */
    cr_expect_eq(sh("cmp -s a/last/model.safetensors b/last/model.safetensors"), 0);
}

Test(app_e2e, kill_9_then_resume_loses_at_most_one_interval) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && exec " BIN " train tiny.json " DATA
                              " --set train.out_dir=k --set optim.epochs=40 --quiet", g_dir);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait for a few checkpointed updates, then kill without warning */
    int steps = 0;
    for (int i = 0; i < 1200 && steps < 5; i++) {
        char *log = slurp("k/log.jsonl");
        steps = 0;
        for (char *p = log; p && (p = strstr(p, "\"step\"")); p++) steps++;
        free(log);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert_geq(steps, 5, "training made no progress before the kill");
    /* a complete checkpoint survived, at most one interval (checkpoint_every = 1) behind */
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=k --set optim.epochs=40 "
                        "--set train.stop_after=2 --resume 2> resume.err"), 130);
    char *e = slurp("resume.err"), *st = slurp("k/last/state.json");
    cr_assert_not_null(st);
    const char *p = strstr(e ? e : "", "step ");
    long resumed_at = p ? strtol(p + 5, NULL, 10) : -1;
    cr_expect_geq(resumed_at, steps - 1, "resumed at step %ld after %d logged steps: %s", resumed_at,
                  steps, e);
    const char *q = strstr(st, "\"step\":");
    cr_expect(q && strtol(q + 7, NULL, 10) == resumed_at + 2, "state after resume: %s", st);
    free(e);
    free(st);
}

Test(app_e2e, infer_extract_and_bad_videos) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=r --quiet"), 0);
    cr_assert_eq(sh("printf 'not a video' > data/videos/broken.mp4"), 0);
    int rc = sh(BIN " infer --model r data/videos/synth_00000.mp4 data/videos/broken.mp4 "
                    "data/videos/synth_00002.mp4 --out res.json --srt srt --quiet 2> infer.err");
    cr_expect_eq(rc, 1, "a skipped video makes the exit status 1");
    char *err = slurp("infer.err"), *res = slurp("res.json");
    cr_assert_not_null(res);
    cr_expect(err && strstr(err, "broken.mp4"), "the corrupt video must be named: %s", err);
    cr_expect(strstr(res, "\"synth_00000\"") && strstr(res, "\"synth_00002\""), "%s", res);
    cr_expect(strstr(res, "\"segment\"") && strstr(res, "\"label\""), "%s", res);
    cr_expect(!strstr(res, "broken"), "%s", res);
    cr_expect_eq(sh("test -s srt/synth_00000.srt"), 0);
    free(err);
    free(res);
    /* the results score with the evaluator (labels are the dataset's classes) */
    cr_expect_eq(sh(BIN " eval --gt data/annotations.json --pred res.json --subset training "
                        "--tiou 0.3,0.5 --ignore-unknown-labels --json ev.json > ev.txt"), 0);
    char *ev = slurp("ev.json");
    cr_expect(ev && strstr(ev, "mAP"), "%s", ev ? ev : "(no ev.json)");
    free(ev);
    cr_expect_eq(sh(BIN " extract --model r data/videos/synth_00001.mp4 --out feats --quiet"), 0);
    cr_expect_eq(sh("test -s feats/synth_00001.npy && grep -q '\"channels\": 32' feats/synth_00001.json"), 0);
}

Test(app_e2e, config_errors_name_the_key) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set optim.lr_hed=1 2> e1"), 2);
    char *e1 = slurp("e1");
    cr_expect(e1 && strstr(e1, "optim.lr_hed"), "%s", e1);
    cr_assert_eq(sh("printf '{\"optim\": {\"epochs\": \"three\"}}' > bad.json"), 0);
    cr_assert_eq(sh(BIN " train bad.json 2> e2"), 1);
    char *e2 = slurp("e2");
    cr_expect(e2 && strstr(e2, "optim.epochs") && strstr(e2, "bad.json"), "%s", e2);
    cr_assert_eq(sh("printf '{\"optim\": {\"epochs\": 3,}' > broken.json"), 0);
    cr_assert_eq(sh(BIN " train broken.json 2> e3"), 1);
    char *e3 = slurp("e3");
    cr_expect(e3 && strstr(e3, "line 1"), "%s", e3);
    free(e1);
    free(e2);
    free(e3);
}

/* Every numeric key has a range, checked from a file and from --set before any data is read;
 * the message names the source, the key, the value and the range. */
Test(app_e2e, config_values_out_of_range_are_refused) {
    const char *bad[] = {"optim.lr_head=-0.001", "optim.lr_head=1e39", "optim.batch_size=0",
                         "optim.batch_size=-2", "optim.epochs=-3", "optim.epochs=0",
                         "optim.ema_decay=2", "optim.weight_decay=-1", "optim.clip_norm=-1",
                         "optim.warmup_epochs=-1", "optim.min_lr=-0.5", "data.flip=5",
                         "data.sampler=random", "eval.tiou=[0.5,1.5]"};
    for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
        /* data that does not exist: the range error must come first */
        cr_expect_eq(sh(BIN " train tiny.json --set data.annotations=missing.json --set %s "
                        "2> e", bad[i]), 2, "%s", bad[i]);
        char *e = slurp("e"), key[64];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(bad[i], "="), bad[i]);
        cr_expect(e && strstr(e, key) && !strstr(e, "missing.json"), "%s: %s", bad[i], e);
        cr_expect(e && (strstr(e, "allowed range") || strstr(e, "not one of")), "%s: %s", bad[i], e);
        free(e);
    }
    /* from a file: the file is named, with the value and the range */
    cr_assert_eq(sh("printf '{\"data\": {\"flip\": 5}}' > flip.json"), 0);
    cr_assert_eq(sh(BIN " train flip.json 2> e"), 1);
    char *e = slurp("e");
    cr_expect(e && strstr(e, "flip.json") && strstr(e, "data.flip") && strstr(e, "5") &&
              strstr(e, "[0, 1]"), "%s", e);
    free(e);
    /* the sections are checked before data is read too */
    cr_expect_eq(sh(BIN " train tiny.json --set data.annotations=missing.json "
                    "--set backbone.depths=[2,0] 2> e"), 1);
    e = slurp("e");
    cr_expect(e && strstr(e, "depths") && !strstr(e, "missing.json"), "%s", e);
    free(e);
    /* --help-config shows the ranges */
    cr_assert_eq(sh(BIN " train --help-config > help.txt"), 0);
    char *help = slurp("help.txt");
    cr_expect(help && strstr(help, "optim.ema_decay") && strstr(help, "[0, 1)") &&
              strstr(help, "resize|truncate"), "%s", help);
    free(help);
}

/* check-data reads a run config with the reader train uses: the keys train reads
 * (data.videos, data.classes, data.block_list), so a broken dataset is found. */
Test(app_e2e, check_data_reads_the_run_config_like_train) {
    cr_assert_eq(sh("mkdir -p vids && cp data/videos/synth_00000.mp4 vids/ && "
                    "printf '{\"data\": {\"annotations\": \"data/annotations.json\", "
                    "\"videos\": \"vids\"}}' > run.json"), 0);
    cr_expect_eq(sh(BIN " check-data run.json --strict > cd.txt 2>&1"), 1);
    char *out = slurp("cd.txt");
    cr_expect(out && strstr(out, "synth_00001") && strstr(out, "missing"), "%s", out);
    free(out);
    /* the same file with every other video blocked checks out */
    cr_assert_eq(sh("printf 'synth_00001\\nsynth_00002\\nsynth_00003\\nsynth_00004\\n"
                    "synth_00005\\n' > block.txt && printf '{\"data\": {\"annotations\": "
                    "\"data/annotations.json\", \"videos\": \"vids\", \"block_list\": "
                    "\"block.txt\"}}' > run2.json"), 0);
    sh(BIN " check-data run2.json > cd2.txt 2>&1");
    cr_expect_eq(sh("grep -q 'dropped 5 videos' cd2.txt && grep -Eq '^missing_video +0$' cd2.txt"),
                 0, "the block list of the run config applies");
    /* an invalid run config is an error, not an annotation file with nothing in it */
    cr_assert_eq(sh("printf '{\"data\": {\"annotations\": \"data/annotations.json\", "
                    "\"video_dir\": \"vids\"}}' > old.json"), 0);
    cr_expect_eq(sh(BIN " check-data old.json > cd3.txt 2>&1"), 1);
    out = slurp("cd3.txt");
    cr_expect(out && strstr(out, "data.video_dir"), "%s", out);
    free(out);
}

/* Backbone weights with a NaN (loaded with --allow-nonfinite: refused otherwise): every update's
 * loss is non-finite, so each is skipped (weights untouched) and after train.max_nonfinite_steps
 * in a row training stops with a message and a non-zero exit, writing no checkpoint from the bad
 * weights. */
Test(app_e2e, non_finite_losses_stop_training_loudly) {
    tal_backbone_config bc;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_from_json(&bc, "{\"preset\": \"swin_small_test\", "
                 "\"embed_dim\": 16, \"depths\": [2, 2], \"heads\": [1, 2], \"window\": [4, 4, 4]}",
                 &err), TAL_OK, "%s", err.msg);
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "bb", 1, 0);
    tal_backbone *bb = NULL;
    cr_assert_eq(tal_backbone_create(&bb, &bc, p, g, g, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK);
    tal_backbone_init(bb, 1);
    tal_params_at(p, 0)->value.data[0] = NAN;
    char path[1200];
    snprintf(path, sizeof path, "%s/nan.safetensors", g_dir);
    tal_safetensors_allow_nonfinite(1);
    cr_assert_eq(tal_params_save(p, path, NULL, &err), TAL_OK, "%s", err.msg);
    tal_safetensors_allow_nonfinite(0);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    cr_expect_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=nan --set "
                    "optim.batch_size=1 --set train.pretrained=nan.safetensors --allow-nonfinite "
                    "--quiet 2> e"), 1);
    char *e = slurp("e"), *log = slurp("nan/log.jsonl");
    cr_expect(e && strstr(e, "3 updates in a row") && strstr(e, "non-finite") &&
              strstr(e, "lr scale"), "%s", e);
    cr_expect(log && strstr(log, "\"skipped\": true"), "%s", log);
    cr_expect_neq(sh("test -e nan/last || test -e nan/best"), 0, "no checkpoint of NaN weights");
    free(e);
    free(log);
}

/* Ctrl-C inside an update (4 clips: batch 2 x accumulation 2): the checkpoint is the state at
 * the update's start, so --resume runs its clips again and reproduces the uninterrupted run. */
Test(app_e2e, interrupt_inside_an_update_resumes_exactly) {
    const char *cfg = " --set optim.accum_steps=2 --set optim.epochs=12 --set train.checkpoint_every=0";
    cr_assert_eq(sh(BIN " train tiny.json " DATA "%s --set train.out_dir=u --quiet", cfg), 0);
    int inside = 0;
    for (int attempt = 0; attempt < 4 && !inside; attempt++) {
        sh("rm -rf i");
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cd '%s' && exec " BIN " train tiny.json " DATA "%s --set "
                 "train.out_dir=i 2> int.err", g_dir, cfg);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 1200; i++) { /* the first update logged: the second one is running */
            char *log = slurp("i/log.jsonl");
            int started = log && strstr(log, "\"step\": 1");
            free(log);
            if (started) break;
            usleep(5000);
        }
        usleep(20000 * (attempt + 1)); /* an update takes ~150 ms here: most moments are inside */
        kill(pid, SIGINT);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit %d", status);
        char *e = slurp("int.err");
        inside = e && strstr(e, "interrupted inside step");
        free(e);
    }
    cr_assert(inside, "the interrupt never landed inside an update");
    cr_assert_eq(sh(BIN " train tiny.json " DATA "%s --set train.out_dir=i --resume --quiet", cfg), 0);
    char *lu = losses("u/log.jsonl"), *li = losses("i/log.jsonl");
    cr_expect_str_eq(li, lu, "resumed:\n  %s\nuninterrupted:\n  %s", li, lu);
    free(lu);
    free(li);
    cr_expect_eq(sh("cmp -s u/last/model.safetensors i/last/model.safetensors"), 0);
}

/* One epoch of tiny.json with `sets` into run folder `dir`: it trains and its losses are finite. */
static void expect_one_epoch_trains(const char *dir, const char *sets) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=%s --set optim.epochs=1 "
                    "%s --quiet", dir, sets), 0);
    char log[64];
    snprintf(log, sizeof log, "%s/log.jsonl", dir);
    char *l = losses(log);
    cr_expect(strlen(l) > 4 && !strstr(l, "nan"), "%s", l);
    free(l);
}

/* SlowFast goes through training, inference and extraction like Swin (2 stages of the tiny
 * config: 4 * 16 * 2 slow + 4 * 2 * 2 fast channels on the fast grid of 16 frames). */
Test(app_e2e, slowfast_trains_infers_and_extracts) {
    expect_one_epoch_trains("sf", "--set backbone.preset=slowfast_r50");
    cr_expect_eq(sh(BIN " infer --model sf data/videos/synth_00000.mp4 --out res.json --quiet"), 0);
    cr_expect_eq(sh("grep -q '\"segment\"' res.json"), 0);
    cr_expect_eq(sh(BIN " extract --model sf data/videos/synth_00001.mp4 --out feats --quiet"), 0);
    cr_expect_eq(sh("grep -q '\"channels\": 144, \"length\": 16' feats/synth_00001.json"), 0);
}

/* backbone.chunk_frames below the clip length: training runs chunk by chunk. */
Test(app_e2e, chunked_training_runs) {
    expect_one_epoch_trains("ch", "--set backbone.chunk_frames=8");
}

/* The ActivityNet recipe: a class-agnostic model ("action"), validated class-agnostically, whose
 * detections take the labels of a video-level classifier file at inference. */
Test(app_e2e, class_agnostic_with_video_classifier) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=ag --set data.class_agnostic=1 "
                    "--set optim.epochs=1 --set train.eval_every=1 --quiet"), 0);
    char *classes = slurp("ag/classes.txt"), *val = slurp("ag/val_results.json"), *log = slurp("ag/log.jsonl");
    cr_expect(classes && !strcmp(classes, "action\n"), "%s", classes);
    cr_expect(val && strstr(val, "\"action\""), "%s", val);
    cr_expect(log && strstr(log, "val_avg_map"), "%s", log);
    /* scores for videos 0 and 2 only: video 1 is reported and skipped */
    cr_assert_eq(sh("printf '{\"class\": [\"%%s\", \"%%s\"], \"results\": {\"synth_00000\": [0.2, 0.8], "
                    "\"v_synth_00002\": [0.9, 0.1]}}' $(sed -n 2p data/classes.txt) "
                    "$(sed -n 1p data/classes.txt) > clf.json"), 0);
    int rc = sh(BIN " infer --model ag data/videos/synth_00000.mp4 data/videos/synth_00001.mp4 "
                    "data/videos/synth_00002.mp4 --classifier clf.json --out res.json --quiet 2> infer.err");
    cr_expect_eq(rc, 1, "a video without classifier scores is skipped (exit 1)");
    char *err = slurp("infer.err"), *res = slurp("res.json"), *names = slurp("data/classes.txt");
    cr_assert_not_null(res);
    cr_assert_not_null(names);
    cr_expect(err && strstr(err, "clf.json") && strstr(err, "synth_00001"), "%s", err);
    cr_expect(strstr(res, "\"synth_00000\"") && strstr(res, "\"synth_00002\"") && !strstr(res, "synth_00001"),
              "%s", res);
    char *nl = strchr(names, '\n');
    *nl = 0;
    if (strchr(nl + 1, '\n')) *strchr(nl + 1, '\n') = 0;
    cr_expect(strstr(res, names) && strstr(res, nl + 1) && !strstr(res, "\"action\""),
              "labels come from the classifier: %s", res);
    /* bad classifier files and a model with classes are refused with the file named */
    cr_assert_eq(sh("printf '{\"class\": [\"a\", \"a\"], \"results\": {}}' > dup.json"), 0);
    cr_expect_eq(sh(BIN " infer --model ag data/videos/synth_00000.mp4 --classifier dup.json --quiet 2> e1"), 1);
    cr_assert_eq(sh("printf '{\"class\": [\"a\"],' > cut.json"), 0);
    cr_expect_eq(sh(BIN " infer --model ag data/videos/synth_00000.mp4 --classifier cut.json --quiet 2> e2"), 1);
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=mc --set optim.epochs=1 "
                    "--set train.max_steps_per_epoch=1 --quiet"), 0);
    cr_expect_eq(sh(BIN " infer --model mc data/videos/synth_00000.mp4 --classifier clf.json --quiet 2> e3"), 1);
    char *e1 = slurp("e1"), *e2 = slurp("e2"), *e3 = slurp("e3");
    cr_expect(e1 && strstr(e1, "dup.json") && strstr(e1, "class[1]"), "%s", e1);
    cr_expect(e2 && strstr(e2, "cut.json") && strstr(e2, "line"), "%s", e2);
    cr_expect(e3 && strstr(e3, "class_agnostic"), "%s", e3);
    free(classes);
    free(val);
    free(log);
    free(err);
    free(res);
    free(names);
    free(e1);
    free(e2);
    free(e3);
}

/* Every shipped config parses (an unknown key or wrong type would stop it before the data);
 * the ActivityNet ones ask for their classifier file by name. */
/* `re2tal demo` keeps its rendered set between runs, but only for the options it was rendered
 * with: another --videos renders again (it once trained on a stale smaller set, silently). */
Test(app_e2e, demo_renders_again_when_its_options_change) {
    const char *run = BIN " demo --config tiny.json --out d --set optim.epochs=1";
    cr_assert_eq(sh("%s --videos 6 --quiet", run), 0);
    char *kept = slurp("d/data/synth_options.txt");
    cr_assert(kept && strstr(kept, "videos 6 "), "synth_options.txt: %s", kept ? kept : "(none)");
    free(kept);
    cr_assert_eq(sh("%s --videos 7 > /dev/null 2> log7.txt", run), 0);
    char *log = slurp("log7.txt");
    cr_assert(log && strstr(log, "rendered with other options"), "%s", log ? log : "(no log)");
    free(log);
    kept = slurp("d/data/synth_options.txt");
    cr_assert(kept && strstr(kept, "videos 7 "), "synth_options.txt: %s", kept ? kept : "(none)");
    free(kept);
    char *anno = slurp("d/data/annotations.json");
    int n = 0;
    for (char *p = anno; p && (p = strstr(p, "\"subset\"")); p++) n++;
    cr_expect_eq(n, 7, "%d videos in the re-rendered annotations", n);
    free(anno);
    cr_assert_eq(sh("%s --videos 7 > /dev/null 2> log7b.txt", run), 0);
    log = slurp("log7b.txt");
    cr_assert(log && strstr(log, "reusing"), "%s", log ? log : "(no log)");
    free(log);
}

Test(app_e2e, shipped_configs_parse) {
    const char *names[] = {"demo", "thumos14_re2swin_t", "thumos14_swin_t", "anet13_re2swin_t",
                           "anet13_swin_t", "thumos14_re2slowfast_r101",
                           "anet13_re2slowfast_r101"};
    for (int i = 0; i < 7; i++) {
        cr_expect_eq(sh(BIN " train " FIXTURES "/../../configs/%s.json --set data.annotations=nowhere.json "
                        "--set train.out_dir=cfg 2> e", names[i]), 1, "%s", names[i]);
        char *e = slurp("e");
        cr_expect(e && strstr(e, "nowhere.json"), "%s: %s", names[i], e);
        free(e);
    }
    /* plan reads the clip shape training uses from a run config */
    cr_expect_eq(sh(BIN " plan tiny.json > plan.txt"), 0);
    char *plan = slurp("plan.txt");
    cr_expect(plan && strstr(plan, "clips [1, 3, 16, 32, 32]"), "%s", plan);
    free(plan);
    cr_expect_eq(sh(BIN " train " FIXTURES "/../../configs/anet13_re2swin_t.json " DATA " --set "
                    "train.out_dir=cfg 2> e"), 1);
    char *e = slurp("e");
    cr_expect(e && strstr(e, "cuhk_val_simp_7.json"), "%s", e);
    free(e);
}

/* Copies a safetensors file of the test folder with one value of `tensor_index` made NaN. */
static void poison(const char *from, const char *to, int tensor_index) {
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/%s", g_dir, from);
    snprintf(b, sizeof b, "%s/%s", g_dir, to);
    tal_tensor_set set;
    tal_err err = {0};
    tal_safetensors_allow_nonfinite(1);
    cr_assert_eq(tal_safetensors_read(&set, a, &err), TAL_OK, "%s", err.msg);
    cr_assert(tensor_index < set.count);
    set.items[tensor_index].t.data[0] = NAN;
    cr_assert_eq(tal_safetensors_write(b, set.items, set.count, set.metadata_json, &err), TAL_OK,
                 "%s", err.msg);
    tal_safetensors_allow_nonfinite(0);
    tal_tensor_set_free(&set);
}

/* A checkpoint with NaN weights once gave detections silently: every command that loads weights
 * refuses it, naming the tensor, unless --allow-nonfinite (global, or after the command). */
Test(app_e2e, nonfinite_weights_are_refused_unless_allowed) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=w --set optim.epochs=1 "
                    "--quiet"), 0);
    cr_assert_eq(sh("cp -r w nanrun && rm -rf nanrun/best*"), 0);
    poison("w/last/model.safetensors", "nanrun/last/model.safetensors", 3);
    const char *cmds[] = {
        " infer --model nanrun data/videos/synth_00000.mp4 --out r.json --quiet",
        " extract --model nanrun data/videos/synth_00000.mp4 --out f --quiet",
        " rewire nanrun/last/model.safetensors re.safetensors",
    };
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(sh(BIN "%s 2> e", cmds[i]), 1, "%s", cmds[i]);
        char *e = slurp("e");
        cr_expect(e && strstr(e, "nanrun/last/model.safetensors: tensor '") &&
                      strstr(e, "1 non-finite value (first at index 0: nan); 1 of ") &&
                      strstr(e, "--allow-nonfinite"),
                  "%s: %s", cmds[i], e);
        free(e);
        cr_expect_eq(sh(BIN "%s --allow-nonfinite > /dev/null 2> e", cmds[i]), 0,
                     "%s --allow-nonfinite",
                     cmds[i]);
    }
    cr_expect_eq(sh(RE2TAL_BIN " --allow-nonfinite --threads 1 rewire nanrun/last/model.safetensors "
                    "re2.safetensors > /dev/null"), 0, "the global spelling");
    /* train --resume and train.pretrained load through the same reader */
    cr_expect_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=nanrun --set optim.epochs=2 "
                    "--resume --quiet 2> e"), 1);
    char *e = slurp("e");
    cr_expect(e && strstr(e, "non-finite"), "%s", e);
    free(e);
    cr_expect_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=p --set optim.epochs=1 "
                    "--set train.pretrained=re.safetensors --quiet 2> e"), 1);
    e = slurp("e");
    cr_expect(e && strstr(e, "re.safetensors: tensor '"), "%s", e);
    free(e);
}

/* A learning rate of 1e39 makes the loss NaN from the second step; whatever the trainer then
 * does, no checkpoint it leaves holds a non-finite tensor. */
Test(app_e2e, a_diverged_run_never_saves_nonfinite_weights) {
    sh(BIN " train tiny.json " DATA " --set train.out_dir=div --set optim.lr_head=1e39 "
       "--set optim.lr_backbone=1e39 --quiet 2> div.err");
    const char *files[] = {"div/last/model.safetensors", "div/last/ema.safetensors",
                           "div/best/model.safetensors"};
    for (int i = 0; i < 3; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
        if (access(path, F_OK) != 0) continue;
        tal_tensor_set set;
        tal_err err = {0};
        cr_expect_eq(tal_safetensors_read(&set, path, &err), TAL_OK, "%s", err.msg);
        tal_tensor_set_free(&set);
    }
}

/* A video with flipped bits still gets detections, and a warning naming it (corrupt packets). */
Test(app_e2e, infer_names_a_video_that_decoded_with_trouble) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=t --set optim.epochs=1 "
                    "--quiet"), 0);
    char in[1200], out[1200];
    snprintf(in, sizeof in, "%s/data/videos/synth_00001.mp4", g_dir);
    snprintf(out, sizeof out, "%s/flipped.mp4", g_dir);
    test_flip_bits(in, out, 40, 11);
    cr_expect_eq(sh(BIN " infer --model t flipped.mp4 --out fl.json --quiet 2> fl.err"), 0);
    char *e = slurp("fl.err"), *res = slurp("fl.json");
    cr_expect(e && strstr(e, "warning: flipped.mp4: decoded with trouble, ") &&
                  strstr(e, "corrupt packets skipped"),
              "%s", e);
    cr_expect(res && strstr(res, "\"flipped\""), "answered: %s", res);
    free(e);
    free(res);
}

/* log.jsonl: each update's reconstruction error per backbone stage, its worst as recon_err. */
Test(app_e2e, log_has_the_reconstruction_error_per_stage) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=s --set optim.epochs=1 "
                        "--quiet"), 0);
    char *log = slurp("s/log.jsonl");
    cr_assert_not_null(log);
    int lines = 0;
    for (char *p = log; (p = strstr(p, "\"recon_err\": ")); p++, lines++) {
        double worst = strtod(p + 13, NULL), s0, s1;
        char *q = strstr(p, "\"recon_err_stages\": [");
        cr_assert_not_null(q, "no per-stage errors: %s", p);
        cr_assert_eq(sscanf(q + 21, "%lf, %lf]", &s0, &s1), 2, "two stages: %.60s", q);
        cr_expect(s0 >= 0 && s1 >= 0 && worst == (s0 > s1 ? s0 : s1),
                  "stages %g, %g, worst %g", s0, s1, worst);
    }
    cr_expect_eq(lines, 2, "one line per update");
    free(log);
}
