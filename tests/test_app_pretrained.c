/* Weights people already have, through the re2tal binary: a backbone checkpoint written here
 * goes through `extract --backbone` with no run folder and gives the features of the run-folder
 * path; a run's weights renamed to OpenTAD's names (module., backbone.model.backbone.,
 * rewired blocks, buffers) go through `import` and give the run folder's detections; missing,
 * misshapen and extra tensors are listed by name by both commands. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/backbone.h"

static char g_dir[1024];

#define sh(...) test_sh_in(g_dir, __VA_ARGS__)
#define slurp(name) test_slurp_in(g_dir, name)

static const char *path_of(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* A truncate config (windows of 32 frames every 2nd frame) with a small reversible Swin. */
static const char *TINY =
    "{\n"
    "  \"data\": {\"sampler\": \"truncate\", \"trunc_len\": 32, \"frame_stride\": 2,"
    " \"snippet_stride\": 4, \"short_side\": 32, \"crop\": 32, \"rrc_scale_min\": 0,"
    " \"prefetch\": 2},\n"
    "  \"backbone\": {\"preset\": \"swin_small_test\", \"embed_dim\": 16, \"depths\": [2, 2],"
    " \"heads\": [1, 2], \"window\": [4, 4, 4], \"drop_path_rate\": 0.1, \"mode\": \"reversible\"},\n"
    "  \"head\": {\"channels\": 32, \"n_head\": 2, \"arch\": [2, 1, 2], \"init_loss_norm\": 4,"
    " \"max_seg_num\": 20},\n"
    "  \"optim\": {\"epochs\": 1, \"batch_size\": 2, \"lr_head\": 0.001, \"lr_backbone\": 0.0005,"
    " \"warmup_epochs\": 1, \"ema_decay\": 0.9},\n"
    "  \"train\": {\"seed\": 3, \"eval_every\": 0},\n"
    "  \"eval\": {\"tiou\": [0.3, 0.5, 0.7]}\n"
    "}\n";
/* The same backbone as extract --backbone options. */
#define SMALL_SWIN "--preset swin_small_test --set embed_dim=16 --set 'depths=[2,2]' " \
                   "--set 'heads=[1,2]' --set 'window=[4,4,4]'"

#define BIN RE2TAL_BIN " --threads 1"
#define DATA "--set data.annotations=data/annotations.json --set data.videos=data/videos"

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s/pretrained_%d", TEST_TMP, (int)getpid());
    mkdir(g_dir, 0755);
    test_require_binary();
    cr_assert_eq(sh(BIN " synth --out data --videos 6 --classes 2 --size 32 --min-len 8 "
                        "--max-len 12 --min-action 1 --max-action 4 --max-instances 2 "
                        "--val-fraction 0.34 --quiet"), 0);
    test_write_tmp_in(g_dir, "tiny.json", TINY);
}

static void teardown(void) { sh("cd .. && rm -rf '%s'", g_dir); }

TestSuite(app_pretrained, .init = setup, .fini = teardown, .timeout = 600);

typedef const char *(*rename_fn)(const char *name, char *buf, size_t size);

/* Copies a checkpoint with every tensor renamed (NULL: dropped), plus `extra` tensors, and
 * metadata (may be NULL). */
static void rewrite(const char *in, const char *out, rename_fn fn, const tal_named_tensor *extra,
                    int n_extra, const char *metadata) {
    tal_tensor_set set = {0};
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_read(&set, path_of(in), &err), TAL_OK, "%s", err.msg);
    tal_named_tensor *items = calloc((size_t)(set.count + n_extra), sizeof *items);
    int n = 0;
    for (int i = 0; i < set.count; i++) {
        char buf[300];
        const char *name = fn ? fn(set.items[i].name, buf, sizeof buf) : set.items[i].name;
        if (!name) continue;
        items[n] = set.items[i];
        items[n++].name = strdup(name);
    }
    for (int i = 0; i < n_extra; i++) {
        items[n] = extra[i];
        items[n++].name = strdup(extra[i].name);
    }
    cr_assert_eq(tal_safetensors_write(path_of(out), items, n, metadata, &err), TAL_OK, "%s",
                 err.msg);
    for (int i = 0; i < n; i++) free(items[i].name);
    free(items);
    tal_tensor_set_free(&set);
}

/* Backbone tensors of a run's model.safetensors only ("head." dropped). */
static const char *backbone_only(const char *name, char *buf, size_t size) {
    (void)buf, (void)size;
    return strncmp(name, "head.", 5) ? name : NULL;
}

/* This model's names -> OpenTAD's: "module." + head names as they are, the backbone under
 * "backbone.model.backbone." with rewired block names. */
static const char *opentad(const char *name, char *buf, size_t size) {
    if (!strncmp(name, "head.", 5)) {
        snprintf(buf, size, "module.%s", name + 5);
        return buf;
    }
    char rew[256];
    tal_backbone_rewired_name(name, rew, sizeof rew);
    snprintf(buf, size, "module.backbone.model.backbone.%s", rew);
    return buf;
}

static int same_file(const char *a, const char *b) {
    return sh("cmp -s '%s' '%s'", a, b) == 0;
}

Test(app_pretrained, extract_backbone_equals_the_run_folder_path) {
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=r --quiet"), 0);
    cr_assert_eq(sh(BIN " extract --model r data/videos/synth_00001.mp4 data/videos/synth_00004.mp4 "
                        "--out f_run --quiet"), 0);
    /* the run's backbone alone, ordinary names: the mode must be given (reversible run) */
    rewrite("r/best/model.safetensors", "bb.safetensors", backbone_only, NULL, 0, NULL);
    cr_assert_eq(sh(BIN " extract --backbone bb.safetensors " SMALL_SWIN " --mode reversible "
                        "--every 2 --window 32 --size 32 data/videos/synth_00001.mp4 "
                        "data/videos/synth_00004.mp4 --out f_bb --quiet 2> e"), 0, "%s",
                 slurp("e"));
    cr_expect(same_file("f_run/synth_00001.npy", "f_bb/synth_00001.npy"), "features differ");
    cr_expect(same_file("f_run/synth_00004.npy", "f_bb/synth_00004.npy"), "features differ");
    /* OpenTAD's rewired names: auto picks the reversible mode, the same features again */
    rewrite("r/best/model.safetensors", "ot.safetensors", opentad, NULL, 0, NULL);
    cr_assert_eq(sh(BIN " extract --backbone ot.safetensors " SMALL_SWIN " --every 2 --window 32 "
                        "--size 32 data/videos/synth_00001.mp4 --out f_ot 2> e"), 0, "%s",
                 slurp("e"));
    char *e = slurp("e");
    cr_expect(e && strstr(e, "mode reversible, auto"), "%s", e);
    /* the head's tensors are not the backbone's: listed by name, not an error */
    cr_expect(e && strstr(e, "module.rpn_head.cls_head.weight"), "%s", e);
    free(e);
    cr_expect(same_file("f_run/synth_00001.npy", "f_ot/synth_00001.npy"), "features differ");
    /* the sidecar states the grid, the sampling, the backbone and the checkpoint */
    char *side = slurp("f_bb/synth_00001.json");
    cr_assert_not_null(side);
    const char *keys[] = {"\"times_s\"", "\"stride_frames\"", "\"every_nth_frame\"",
                          "\"checkpoint_sha256\"", "\"reversible\"", "\"normalisation\""};
    for (int i = 0; i < 6; i++) cr_expect(strstr(side, keys[i]), "sidecar lacks %s", keys[i]);
    free(side);
    /* frames --like: the run's test windows (32 frames, every 2nd), as its model decodes them */
    cr_assert_eq(sh(BIN " frames --like r data/videos/synth_00001.mp4 --out fl > fl.txt"), 0);
    cr_assert_eq(sh(BIN " frames data/videos/synth_00001.mp4 --every 2 --size 32 --crop 32 "
                        "--max 32 --out fe > fe.txt"), 0);
    for (int k = 0; k < 32; k++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "fl/window_000/%06d.png", k);
        snprintf(b, sizeof b, "fe/%06d.png", k);
        cr_expect(same_file(a, b), "frame %d of the first window differs from every 2nd frame", k);
    }
    cr_expect_eq(sh("test $(ls fl | wc -l) -gt 1 && grep -c png fl.txt | grep -qx $((32 * $(ls fl "
                    "| wc -l)))"), 0, "every window's frames are written");
    /* snippets in ActionFormer's [T, C] layout train a feature run */
    cr_assert_eq(sh(BIN " extract --backbone bb.safetensors " SMALL_SWIN " --mode reversible "
                        "--fps 12.5 --frames-per-feature 4 --stride 2 --size 32 --layout TC "
                        "data/videos/*.mp4 --out f_snip --quiet"), 0);
    cr_assert_eq(sh("head -c 80 f_snip/synth_00002.npy | grep -q \"'shape': ([0-9]*, 32)\""), 0);
    cr_expect_eq(sh(BIN " train tiny.json " DATA " --set data.features=f_snip --set "
                        "data.feature_dim=32 --set data.trunc_len=16 --set train.out_dir=fr "
                        "--set optim.epochs=2 --set train.eval_every=1 --quiet 2> e"), 0, "%s",
                 slurp("e"));
    cr_expect_eq(sh("test -s fr/val_results.json"), 0);
    cr_expect_eq(sh(BIN " frames --like fr data/videos/synth_00001.mp4 --out x 2> e"), 1);
    e = slurp("e");
    cr_expect(e && strstr(e, "features"), "%s", e);
    free(e);
}

Test(app_pretrained, import_gives_the_run_folders_detections) {
    /* the same post-processing as an import's (OpenTAD keeps every segment) */
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=r "
                        "--set head.duration_thresh=0 --quiet"), 0);
    float norm = 37;
    float idx[2] = {1, 2};
    tal_named_tensor extra[2] = {
        {"module.rpn_head.loss_normalizer", tal_t1(&norm, 1), "F32"},
        {"module.backbone.model.backbone.layers.0.blocks.0.attn.relative_position_index",
         tal_t1(idx, 2), "F32"}};
    rewrite("r/best/model.safetensors", "ot.safetensors", opentad, extra, 2,
            "{\"source\": \"epoch_5.pth\", \"weights\": \"state_dict_ema\", "
            "\"ema_available\": \"yes\"}");
    cr_assert_eq(sh(BIN " import ot.safetensors --config r/config.json --out imp 2> e"), 0, "%s",
                 slurp("e"));
    char *e = slurp("e");
    cr_expect(e && strstr(e, "EMA weights"), "which weights were taken must be said: %s", e);
    cr_expect(e && strstr(e, "OpenTAD's clipping"), "%s", e);
    free(e);
    const char *videos = "data/videos/synth_00000.mp4 data/videos/synth_00003.mp4 "
                         "data/videos/synth_00005.mp4";
    cr_assert_eq(sh(BIN " infer --model r %s --out a.json --quiet", videos), 0);
    cr_assert_eq(sh(BIN " infer --model imp %s --out b.json --quiet", videos), 0);
    char *a = slurp("a.json"), *b = slurp("b.json");
    cr_assert(a && b && strstr(a, "\"segment\""), "%s", a);
    cr_expect_str_eq(a, b, "the imported model's detections differ from the run folder's");
    free(a);
    free(b);
    /* the loss normaliser is kept for fine-tuning, and --resume accepts the folder */
    char *state = slurp("imp/last/state.json");
    cr_expect(state && strstr(state, "37"), "%s", state);
    free(state);
    cr_expect_eq(sh(BIN " train imp/config.json --resume --set train.stop_after=1 --quiet"), 130);
    /* an import clips as OpenTAD does, unless its config says otherwise */
    cr_assert_eq(sh(BIN " import ot.safetensors --config r/config.json --out imp2 --set "
                        "head.clip_to_window=1 2> e"), 0);
    e = slurp("e");
    cr_expect(e && strstr(e, "not as OpenTAD"), "%s", e);
    free(e);
    cr_expect_eq(sh("grep -q '\"clip_to_window\":.*1' imp2/config.json"), 0);
    /* a config with ActionFormer's duration threshold is imported keeping every segment */
    cr_assert_eq(sh(BIN " import ot.safetensors --config tiny.json " DATA " --out imp4 2> e"), 0,
                 "%s", slurp("e"));
    e = slurp("e");
    cr_expect(e && strstr(e, "head.duration_thresh 0\n"), "%s", e);
    free(e);
    cr_expect_eq(sh("grep -Eq '\"duration_thresh\":[[:space:]]*0([^.0-9]|$)' "
                    "imp4/config.json"), 0);
    /* the non-EMA weights of a file that had EMA ones are named as such */
    rewrite("ot.safetensors", "live.safetensors", NULL, NULL, 0,
            "{\"weights\": \"state_dict\", \"ema_available\": \"yes\"}");
    cr_assert_eq(sh(BIN " import live.safetensors --config r/config.json --out imp3 2> e"), 0);
    e = slurp("e");
    cr_expect(e && strstr(e, "non-EMA"), "%s", e);
    free(e);
}

/* A random small Swin's weights, ordinary names. */
static void write_backbone(const char *name) {
    tal_backbone_config cfg;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_from_json(&cfg, "{\"preset\": \"swin_small_test\", "
                 "\"embed_dim\": 16, \"depths\": [2, 2], \"heads\": [1, 2], \"window\": [4, 4, 4]}",
                 &err), TAL_OK, "%s", err.msg);
    tal_params *p = tal_params_create();
    int g = tal_params_add_group(p, "backbone", 1, 0);
    tal_backbone *bb = NULL;
    cr_assert_eq(tal_backbone_create(&bb, &cfg, p, g, g, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK);
    tal_backbone_init(bb, 7);
    cr_assert_eq(tal_params_save(p, path_of(name), NULL, &err), TAL_OK, "%s", err.msg);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
}

static const char *drop_qkv(const char *name, char *buf, size_t size) {
    (void)buf, (void)size;
    return strcmp(name, "layers.1.blocks.0.attn.qkv.weight") ? name : NULL;
}

/* Drops one backbone tensor and the classifier's bias (replaced by a misshapen one). */
static const char *break_two(const char *name, char *buf, size_t size) {
    (void)buf, (void)size;
    if (strstr(name, "layers.0.blocks.1.inv_block.Gm.mlp.fc1.bias")) return NULL;
    return strcmp(name, "module.rpn_head.cls_head.bias") ? name : NULL;
}

/* Checks one bad checkpoint through `cmd`: exit status and the words stderr must hold. */
static void expect_listed(const char *cmd, int want_rc, const char *const *words, int n) {
    int rc = sh("%s 2> e", cmd);
    char *e = slurp("e");
    cr_expect_eq(rc, want_rc, "%s: exit %d, want %d: %s", cmd, rc, want_rc, e);
    for (int i = 0; i < n; i++)
        cr_expect(e && strstr(e, words[i]), "%s: stderr lacks '%s': %s", cmd, words[i], e);
    free(e);
}

Test(app_pretrained, bad_checkpoints_are_listed_by_name) {
    write_backbone("bb.safetensors");
    const char *ex = BIN " extract --backbone %s " SMALL_SWIN " --window 32 --size 32 "
                     "data/videos/synth_00001.mp4 --out f --quiet";
    char cmd[1024];
    /* missing */
    rewrite("bb.safetensors", "missing.safetensors", drop_qkv, NULL, 0, NULL);
    snprintf(cmd, sizeof cmd, ex, "missing.safetensors");
    const char *w1[] = {"1 parameters missing", "layers.1.blocks.0.attn.qkv.weight"};
    expect_listed(cmd, 1, w1, 2);
    /* wrong shape */
    float junk[6] = {0};
    tal_named_tensor bad = {"layers.1.blocks.0.attn.qkv.weight", tal_t2(junk, 2, 3), "F32"};
    rewrite("bb.safetensors", "shape.safetensors", drop_qkv, &bad, 1, NULL);
    snprintf(cmd, sizeof cmd, ex, "shape.safetensors");
    const char *w2[] = {"wrong shapes (1)", "layers.1.blocks.0.attn.qkv.weight", "expected [96, 32]",
                        "the file has [2, 3]"};
    expect_listed(cmd, 1, w2, 4);
    /* extra: listed, not an error; --strict makes it one */
    tal_named_tensor more = {"cls_head.fc_cls.weight", tal_t2(junk, 2, 3), "F32"};
    rewrite("bb.safetensors", "extra.safetensors", NULL, &more, 1, NULL);
    snprintf(cmd, sizeof cmd, ex, "extra.safetensors");
    const char *w3[] = {"unused tensors (1)", "cls_head.fc_cls.weight"};
    expect_listed(cmd, 0, w3, 2);
    strcat(cmd, " --strict");
    expect_listed(cmd, 1, w3, 2);
    /* import: a run's weights with one tensor missing, one misshapen, one extra */
    cr_assert_eq(sh(BIN " train tiny.json " DATA " --set train.out_dir=r --quiet"), 0);
    rewrite("r/best/model.safetensors", "ot.safetensors", opentad, NULL, 0, NULL);
    tal_named_tensor cls = {"module.rpn_head.cls_head.bias", tal_t1(junk, 5), "F32"};
    tal_named_tensor odd = {"module.rpn_head.centerness.weight", tal_t1(junk, 3), "F32"};
    tal_named_tensor both[2] = {cls, odd};
    rewrite("ot.safetensors", "bad.safetensors", break_two, both, 2, NULL);
    const char *w4[] = {"1 parameters missing", "layers.0.blocks.1.mlp.fc1.bias",
                        "wrong shapes (1)", "module.rpn_head.cls_head.bias",
                        "expected [2]", "the file has [5]",
                        "unused tensors (1)", "module.rpn_head.centerness.weight"};
    expect_listed(BIN " import bad.safetensors --config r/config.json --out imp", 1, w4, 8);
    cr_expect_neq(sh("test -e imp/best"), 0, "no run folder from a bad checkpoint");
}

/* The demo's feature workflow on a tiny set: a random backbone first, then the one make demo
 * trained. */
Test(app_pretrained, demo_features_with_and_without_a_trained_run) {
    FILE *f = fopen(path_of("tiny_resize.json"), "w");
    fputs("{\"data\": {\"sampler\": \"resize\", \"frames\": 16, \"resize_len\": 8, "
          "\"short_side\": 32, \"crop\": 32, \"rrc_scale_min\": 0, \"flip\": 0},\n"
          " \"backbone\": {\"preset\": \"swin_small_test\", \"embed_dim\": 16, \"depths\": [2, 2],"
          " \"heads\": [1, 2], \"window\": [4, 4, 4], \"mode\": \"reversible\"},\n"
          " \"head\": {\"channels\": 32, \"n_head\": 2, \"arch\": [2, 1, 2], \"init_loss_norm\": 4,"
          " \"max_seg_num\": 20},\n"
          " \"optim\": {\"epochs\": 1, \"batch_size\": 2, \"lr_backbone\": 0.0005},\n"
          " \"train\": {\"seed\": 3, \"eval_every\": 1},\n"
          " \"eval\": {\"tiou\": [0.3, 0.5, 0.7]}}\n", f);
    fclose(f);
    const char *demo = BIN " demo --config tiny_resize.json --out d --videos 6";
    cr_assert_eq(sh("%s --features > o1 2> e1", demo), 0, "%s", slurp("e1"));
    char *o = slurp("o1"), *e = slurp("e1");
    cr_expect(o && strstr(o, "demo-features: mAP@0.5"), "%s", o);
    cr_expect(e && strstr(e, "randomly initialised backbone"), "%s", e);
    free(o);
    free(e);
    cr_expect_eq(sh("test $(ls d/features/*.npy | wc -l) -eq 6 && "
                    "grep -q 'random initialisation' d/features/synth_00000.json"), 0);
    cr_assert_eq(sh("%s --quiet > /dev/null", demo), 0); /* make demo: d/run/best */
    cr_assert_eq(sh("%s --features > o2 2> e2", demo), 0, "%s", slurp("e2"));
    e = slurp("e2");
    cr_expect(e && strstr(e, "make demo trained"), "%s", e);
    free(e);
    cr_expect_eq(sh("grep -q 'd/run/best/model.safetensors' d/features/synth_00000.json"), 0);
}
