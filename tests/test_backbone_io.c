/* tests/test_backbone_io.c: configs (presets, JSON, errors), checkpoint names (ordinary,
 * rewired, Video-Swin release), loading and `rewire`, frame chunking and the output adapter. */
#include <math.h>
#include <string.h>

#include "backbone/backbone.h"
#include "testlib.h"

/* A parameter store with the one group (index 0) the models here declare into. */
static tal_params *params_new(void) {
    tal_params *p = tal_params_create();
    cr_assert_eq(tal_params_add_group(p, "backbone", 1.0f, 0.0f), 0);
    return p;
}

static tal_backbone_config preset(const char *name) {
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&c, name, &err), TAL_OK, "%s", err.msg);
    return c;
}

Test(backbone_config, swin_t_as_published) {
    tal_backbone_config c = preset("swin_t");
    cr_assert_eq(c.embed_dim, 96);
    cr_assert(c.depths[0] == 2 && c.depths[1] == 2 && c.depths[2] == 6 && c.depths[3] == 2);
    cr_assert(c.heads[0] == 3 && c.heads[3] == 24);
    cr_assert(c.window[0] == 8 && c.window[1] == 7 && c.window[2] == 7);
    cr_assert_eq(tal_backbone_out_channels(&c), 768);
    cr_assert_eq(tal_backbone_out_frames(&c, 32), 16);
    /* parameter count of spec-videoswin.md §10.1: 27.85 M backbone parameters */
    tal_params *p = params_new();
    tal_backbone *bb = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_create(&bb, &c, p, 0, 0, &err), TAL_OK, "%s", err.msg);
    int64_t n = tal_params_numel(p, 0);
    cr_assert(n > 27840000 && n < 27860000, "Swin-T has %lld parameters", (long long)n);
    cr_assert_not_null(tal_params_find(p, "layers.2.blocks.5.attn.relative_position_bias_table"));
    cr_assert_eq(tal_params_find(p, "layers.0.blocks.0.norm1.weight")->trainable, 0);
    cr_assert_eq(tal_params_find(p, "layers.0.blocks.0.attn.qkv.weight")->trainable, 1);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
}

/* mmaction2's parameter counts: SlowOnly-R50 32.45 M (without its fc head), SlowFast-R101 8x8
 * 62.9 M with a 400-class fc of 2304 x 400 + 400 (921 K) */
static int64_t backbone_numel(const char *name) {
    tal_backbone_config c = preset(name);
    tal_params *p = params_new();
    tal_backbone *bb = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_create(&bb, &c, p, 0, 0, &err), TAL_OK, "%s", err.msg);
    int64_t n = 0;
    for (int i = 0; i < tal_params_count(p); i++) {
        tal_param *q = tal_params_at(p, i);
        if (!strstr(q->name, "running_")) n += tal_tensor_numel(q->value);
    }
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    return n;
}

Test(backbone_config, resnet3d_family_as_mmaction2) {
    tal_backbone_config c = preset("slowfast_r101");
    cr_assert_eq(c.arch, TAL_ARCH_SLOWFAST);
    cr_assert(c.tau == 4 && c.alpha == 4 && c.beta_inv == 8 && c.fusion_kernel == 7);
    cr_assert(c.depths[2] == 23 && c.stem_kt == 1 && c.fast_stem_kt == 5);
    cr_assert_eq(tal_backbone_out_channels(&c), 2048 + 256);
    cr_assert_eq(tal_backbone_out_frames(&c, 32), 32, "the fast pathway's grid");
    c.alpha = 2;
    cr_assert_eq(tal_backbone_out_frames(&c, 32), 16);
    cr_assert_eq(tal_backbone_out_channels(&(tal_backbone_config){.arch = TAL_ARCH_RESNET3D,
                                                                   .n_stages = 4,
                                                                   .embed_dim = 64}),
                 2048);
    int64_t sf = backbone_numel("slowfast_r101"), so = backbone_numel("slowonly_r50");
    int64_t fc = 2304 * 400 + 400;
    cr_assert(sf + fc > 62850000 && sf + fc < 62950000, "SlowFast-R101: %lld + fc", (long long)sf);
    cr_assert(so > 31600000 && so < 31700000, "SlowOnly-R50 without fc: %lld", (long long)so);
}

Test(backbone_config, slowfast_json_and_errors) {
    tal_backbone_config c;
    tal_err err = {0};
    const char *js = "{\"arch\": \"slowfast\", \"preset\": \"slowfast_r50\", \"tau\": 8,"
                     " \"alpha\": 8, \"fusion_kernel\": 5, \"inflate\": [0, 1, 1, 1],"
                     " \"fast_stem_kt\": 3, \"stem_kt\": 1}";
    cr_assert_eq(tal_backbone_config_from_json(&c, js, &err), TAL_OK, "%s", err.msg);
    cr_assert(c.tau == 8 && c.alpha == 8 && c.fusion_kernel == 5 && c.fast_stem_kt == 3);
    cr_assert(c.inflate[0] == 0 && c.inflate[1] == 1);
    cr_assert_eq(tal_backbone_config_from_json(&c, "{\"preset\": \"resnet3d_small\","
                                                   " \"temporal_from\": 2}", &err), TAL_OK);
    cr_assert(c.inflate[1] == 0 && c.inflate[2] == 1);
    cr_assert_neq(tal_backbone_config_from_json(&c, "{\"arch\": \"slowfast\", \"alpha\": 3}",
                                                &err), TAL_OK);
    cr_assert(strstr(err.msg, "tau 4, alpha 3"), "%s", err.msg);
    cr_assert_neq(tal_backbone_config_from_json(&c, "{\"arch\": \"slowfast\", \"beta_inv\": 7}",
                                                &err), TAL_OK);
    cr_assert(strstr(err.msg, "beta_inv 7"), "%s", err.msg);
    cr_assert_neq(tal_backbone_config_from_json(&c, "{\"arch\": \"slowfast\", \"chunk_frames\":"
                                                    " 30}", &err), TAL_OK);
    cr_assert(strstr(err.msg, "chunk_frames 30"), "%s", err.msg);
    cr_assert_neq(tal_backbone_config_from_json(&c, "{\"arch\": \"resnet3d\", \"stem_kt\": 4}",
                                                &err), TAL_OK);
    cr_assert(strstr(err.msg, "stem_kt 4"), "%s", err.msg);
    tal_backbone_plan plan;
    c = preset("slowfast_r50");
    cr_assert_eq(tal_backbone_plan_memory(&plan, &c, 1, 30, 64, 64, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "30 frames") && strstr(err.msg, "tau 4"), "%s", err.msg);
}

Test(backbone_config, unknown_preset_is_named) {
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_config_preset(&c, "swin_xl", &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "swin_xl"), "%s", err.msg);
}

Test(backbone_config, json_sets_fields_and_modes) {
    tal_backbone_config c;
    tal_err err = {0};
    const char *js = "{\"arch\": \"swin\", \"preset\": \"swin_small_test\", \"embed_dim\": 16,"
                     " \"depths\": [2, 4], \"heads\": [1, 2], \"window\": [2, 7, 7],"
                     " \"mode\": [\"vanilla\", \"reversible\"], \"drop_path_rate\": 0.3,"
                     " \"freeze_norms\": false, \"chunk_frames\": 32}";
    cr_assert_eq(tal_backbone_config_from_json(&c, js, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(c.n_stages, 2);
    cr_assert_eq(c.depths[1], 4);
    cr_assert_eq(c.window[1], 7);
    cr_assert_eq(c.mode[0], TAL_STAGE_VANILLA);
    cr_assert_eq(c.mode[1], TAL_STAGE_REVERSIBLE);
    cr_assert_eq(c.freeze_norms, 0);
    cr_assert_eq(c.chunk_frames, 32);
    cr_assert_float_eq(c.drop_path_rate, 0.3f, 1e-7);
    cr_assert_eq(tal_backbone_config_from_json(&c, "{\"arch\": \"resnet3d\"}", &err), TAL_OK);
    cr_assert_eq(c.arch, TAL_ARCH_RESNET3D);
}

static void expect_json_error(const char *js, const char *needle) {
    tal_backbone_config c;
    tal_err err = {0};
    cr_assert_neq(tal_backbone_config_from_json(&c, js, &err), TAL_OK, "accepted %s", js);
    cr_assert(strstr(err.msg, needle), "message for %s must name '%s': %s", js, needle,
              err.msg);
}

Test(backbone_config, json_errors_name_the_key) {
    expect_json_error("[1, 2]", "not a JSON object");
    expect_json_error("{\"depth\": [2]}", "depth");
    expect_json_error("{\"mode\": \"sideways\"}", "mode");
    expect_json_error("{\"mode\": [\"vanilla\", 3]}", "mode");
    expect_json_error("{\"arch\": \"vit\"}", "vit");
    expect_json_error("{\"heads\": [5, 6, 12, 24]}", "heads[0]");
    expect_json_error("{\"window\": [8, 7]}", "window");
    expect_json_error("{\"depths\": [2, 2.5]}", "depths");
    expect_json_error("{\"depths\": [2, 2, 2, 2, 2]}", "depths");
    expect_json_error("{\"drop_path_rate\": 1.5}", "drop_path_rate");
    expect_json_error("{\"embed_dim\": \"big\"}", "embed_dim");
    expect_json_error("{\"chunk_frames\": -4}", "chunk_frames");
    expect_json_error("{\"window\": [0, 7, 7]}", "window[0]");
    expect_json_error("{\"patch\": [2, 4, 64]}", "patch[2]");
    expect_json_error("{\"mlp_ratio\": 0}", "mlp_ratio");
    expect_json_error("{\"embed_dim\": 0}", "embed_dim");
    expect_json_error("{\"depths\": [0]}", "depths[0]");
    expect_json_error("{\"depths\": 3}", "depths");
    expect_json_error("{\"preset\": 5}", "preset");
    expect_json_error("{\"preset\": \"swin_xl\"}", "swin_xl");
    expect_json_error("{\"arch\": 3}", "arch");
    expect_json_error("{\"embed_dim\": 32, \"depths\": [2, 2],", "not a JSON object");
}

Test(backbone_config, check_rejects_a_bad_struct) {
    tal_backbone_config c = preset("swin_t");
    tal_err err = {0};
    c.arch = (tal_backbone_arch)7;
    cr_assert_eq(tal_backbone_config_check(&c, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "arch"), "%s", err.msg);
    c = preset("swin_t");
    c.mode[2] = (tal_stage_mode)9;
    cr_assert_eq(tal_backbone_config_check(&c, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "mode[2]"), "%s", err.msg);
    c = preset("swin_t");
    c.n_stages = 5;
    tal_backbone *bb = NULL;
    tal_params *p = params_new();
    cr_assert_eq(tal_backbone_create(&bb, &c, p, 0, 0, &err), TAL_EINVAL);
    cr_assert_null(bb);
    tal_params_destroy(p);
}

Test(backbone_config, prepare_rejects_a_bad_shape) {
    tal_backbone_config c = preset("swin_small_test");
    tal_params *p = params_new();
    tal_backbone *bb = NULL;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_create(&bb, &c, p, 0, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_prepare(bb, 1, 8, -3, 64, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "-3"), "%s", err.msg);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
}

Test(backbone_config, bad_clip_shape_is_rejected) {
    tal_backbone_config c = preset("swin_small_test");
    tal_backbone_plan plan;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_plan_memory(&plan, &c, 1, 0, 64, 64, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "out of range"), "%s", err.msg);
    tal_backbone_config r = preset("resnet3d_small");
    cr_assert_eq(tal_backbone_plan_memory(&plan, &r, 1, 4, 4, 4, &err), TAL_EINVAL);
}

/* ---------------------------------------------------------------- names ----------------- */
static void expect_canon(const char *file, const char *want) {
    char buf[256];
    const char *got = tal_backbone_canonical_name(file, buf, sizeof buf, NULL);
    if (!want) {
        cr_assert_null(got, "%s should be dropped, got %s", file, got);
        return;
    }
    cr_assert_not_null(got, "%s dropped", file);
    cr_assert_str_eq(got, want, "%s", file);
}

Test(backbone_names, checkpoint_spellings_map_to_canonical) {
    expect_canon("backbone.layers.1.blocks.0.attn.qkv.weight", "layers.1.blocks.0.attn.qkv.weight");
    expect_canon("backbone.layers.1.blocks.0.inv_block.Fm.attn.qkv.weight",
                 "layers.1.blocks.0.attn.qkv.weight");
    expect_canon("layers.0.blocks.1.inv_block.Gm.mlp.fc2.bias", "layers.0.blocks.1.mlp.fc2.bias");
    expect_canon("backbone.norm.weight", "norm3.weight");
    expect_canon("backbone.norm3.bias", "norm3.bias");
    expect_canon("backbone.layers.0.blocks.0.attn.relative_position_index", NULL);
    expect_canon("backbone.layer2.blocks.0.Fm.conv1.conv.weight", "layer2.0.conv1.conv.weight");
    expect_canon("backbone.layer2.blocks.3.inv_block.Fm.conv2.bn.bias", "layer2.3.conv2.bn.bias");
    expect_canon("backbone.layer2.blocks.0.downsample.conv.weight",
                 "layer2.0.downsample.conv.weight");
    expect_canon("backbone.layer1.0.conv1.bn.num_batches_tracked", NULL);
    /* SlowFast: mmaction2's names and OpenTAD's rewired ones, per pathway */
    expect_canon("backbone.slow_path.layer3.blocks.0.Fm.conv1.conv.weight",
                 "slow_path.layer3.0.conv1.conv.weight");
    expect_canon("backbone.fast_path.layer3.blocks.22.inv_block.Fm.conv3.bn.weight",
                 "fast_path.layer3.22.conv3.bn.weight");
    expect_canon("backbone.slow_path.layer1.blocks.0.downsample.conv.weight",
                 "slow_path.layer1.0.downsample.conv.weight");
    expect_canon("backbone.slow_path.layer2_lateral.conv.weight",
                 "slow_path.layer2_lateral.conv.weight");
    expect_canon("backbone.slow_path.conv1_lateral.conv.weight",
                 "slow_path.conv1_lateral.conv.weight");
    expect_canon("backbone.fast_path.layer1.2.conv2.bn.running_var",
                 "fast_path.layer1.2.conv2.bn.running_var");
    expect_canon("cls_head.fc_cls.weight", "cls_head.fc_cls.weight");
}

Test(backbone_names, rewired_names_round_trip) {
    const char *names[] = {"layers.0.blocks.1.norm1.weight", "layers.2.blocks.3.attn.proj.bias",
                           "layers.3.blocks.0.mlp.fc1.weight", "layers.1.downsample.norm.bias",
                           "patch_embed.proj.weight", "layer3.0.conv2.conv.weight",
                           "layer3.2.conv3.bn.running_var", "layer1.0.downsample.bn.weight",
                           "slow_path.layer3.22.conv1.conv.weight",
                           "fast_path.layer1.0.conv2.bn.bias",
                           "slow_path.layer2.0.downsample.conv.weight",
                           "slow_path.layer1_lateral.conv.weight", "fast_path.conv1.bn.weight"};
    char rew[256], back[256];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        tal_backbone_rewired_name(names[i], rew, sizeof rew);
        cr_assert_not_null(tal_backbone_canonical_name(rew, back, sizeof back, NULL));
        cr_assert_str_eq(back, names[i], "%s -> %s -> %s", names[i], rew, back);
    }
    tal_backbone_rewired_name("layers.0.blocks.1.norm2.bias", rew, sizeof rew);
    cr_assert_str_eq(rew, "layers.0.blocks.1.inv_block.Gm.norm2.bias");
    tal_backbone_rewired_name("layers.0.blocks.1.attn.qkv.bias", rew, sizeof rew);
    cr_assert_str_eq(rew, "layers.0.blocks.1.inv_block.Fm.attn.qkv.bias");
    /* OpenTAD's re2tal_slowfast.py spelling */
    tal_backbone_rewired_name("fast_path.layer3.5.conv2.conv.weight", rew, sizeof rew);
    cr_assert_str_eq(rew, "fast_path.layer3.blocks.5.inv_block.Fm.conv2.conv.weight");
    tal_backbone_rewired_name("slow_path.layer4.0.conv1.bn.bias", rew, sizeof rew);
    cr_assert_str_eq(rew, "slow_path.layer4.blocks.0.Fm.conv1.bn.bias");
    tal_backbone_rewired_name("slow_path.layer4.0.downsample.bn.bias", rew, sizeof rew);
    cr_assert_str_eq(rew, "slow_path.layer4.blocks.0.downsample.bn.bias");
}

/* ---------------------------------------------------------------- loading --------------- */
typedef struct small_model {
    tal_params *p;
    tal_backbone *bb;
} small_model;

static small_model make_small(const char *preset_name) {
    small_model m;
    tal_backbone_config c = preset(preset_name);
    if (c.arch == TAL_ARCH_SWIN) c.embed_dim = 8, c.n_stages = 2;
    if (c.arch == TAL_ARCH_SLOWFAST) c.embed_dim = 8, c.beta_inv = 4, c.depths[2] = 3;
    tal_err err = {0};
    m.p = params_new();
    cr_assert_eq(tal_backbone_create(&m.bb, &c, m.p, 0, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(m.p, TAL_DEV_CPU, &err), TAL_OK, "%s", err.msg);
    tal_backbone_init(m.bb, 3);
    return m;
}

static void free_small(small_model *m) {
    tal_backbone_destroy(m->bb);
    tal_params_destroy(m->p);
}

/* Writes the model's parameters under rewired names with "backbone.", plus a head tensor and
 * an index buffer, leaving out `skip` and reshaping `bad` (if given). */
static void write_checkpoint(small_model *m, const char *path, const char *skip,
                             const char *bad) {
    int n = tal_params_count(m->p);
    tal_named_tensor *items = calloc((size_t)n + 2, sizeof *items);
    char names[n + 2][200];
    int k = 0;
    for (int i = 0; i < n; i++) {
        tal_param *q = tal_params_at(m->p, i);
        if (skip && !strcmp(q->name, skip)) continue;
        char rew[180];
        tal_backbone_rewired_name(q->name, rew, sizeof rew);
        snprintf(names[k], sizeof names[k], "backbone.%s", rew);
        items[k].name = names[k];
        items[k].t = q->value;
        if (bad && !strcmp(q->name, bad))
            items[k].t = tal_t1(q->value.data, tal_tensor_numel(q->value));
        snprintf(items[k].dtype, sizeof items[k].dtype, "F32");
        k++;
    }
    static float head[4] = {1, 2, 3, 4};
    snprintf(names[k], 200, "cls_head.fc_cls.bias");
    items[k] = (tal_named_tensor){names[k], tal_t1(head, 4), "F32"};
    k++;
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(path, items, k, NULL, &err), TAL_OK, "%s", err.msg);
    free(items);
}

/* A checkpoint under rewired names (with "backbone." and a head tensor) loads every value. */
static void check_rewired_load(const char *preset_name) {
    small_model a = make_small(preset_name), b = make_small(preset_name);
    tal_backbone_init(b.bb, 99); /* different values */
    const char *path = test_tmp_path("bb_rewired.safetensors");
    write_checkpoint(&a, path, NULL, NULL);
    int unused = -1;
    tal_err err = {0};
    cr_assert_eq(tal_backbone_load(b.bb, b.p, path, &unused, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(unused, 1, "the head tensor is unused");
    for (int i = 0; i < tal_params_count(a.p); i++)
        expect_close_impl(tal_params_at(a.p, i)->name, tal_params_at(b.p, i)->value,
                          tal_params_at(a.p, i)->value, 0, 0, __FILE__, __LINE__);
    free_small(&a);
    free_small(&b);
}

Test(backbone_load, rewired_checkpoint_loads_into_canonical_names) {
    check_rewired_load("swin_small_test");
}

/* OpenTAD's re2tal_slowfast.py names: blocks.0.Fm, blocks.0.downsample, blocks.{i}.inv_block.Fm */
Test(backbone_load, rewired_slowfast_checkpoint_loads) { check_rewired_load("slowfast_r101"); }

Test(backbone_load, missing_tensor_is_named) {
    small_model a = make_small("swin_small_test");
    const char *path = test_tmp_path("bb_missing.safetensors");
    write_checkpoint(&a, path, "layers.1.blocks.1.mlp.fc1.bias", NULL);
    tal_err err = {0};
    cr_assert_eq(tal_backbone_load(a.bb, a.p, path, NULL, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "layers.1.blocks.1.mlp.fc1.bias") && strstr(err.msg, path), "%s",
              err.msg);
    free_small(&a);
}

Test(backbone_load, shape_mismatch_is_named) {
    small_model a = make_small("resnet3d_small");
    const char *path = test_tmp_path("bb_shape.safetensors");
    write_checkpoint(&a, path, NULL, "layer2.1.conv2.conv.weight");
    tal_err err = {0};
    cr_assert_eq(tal_backbone_load(a.bb, a.p, path, NULL, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "layer2.blocks.1.inv_block.Fm.conv2.conv.weight"), "%s", err.msg);
    free_small(&a);
}

Test(backbone_load, missing_file_is_an_io_error) {
    small_model a = make_small("swin_small_test");
    tal_err err = {0};
    cr_assert_neq(tal_backbone_load(a.bb, a.p, "/nonexistent/ckpt.safetensors", NULL, &err),
                  TAL_OK);
    cr_assert(strstr(err.msg, "/nonexistent/ckpt.safetensors"), "%s", err.msg);
    free_small(&a);
}

Test(backbone_load, rewire_file_renames_and_keeps_values) {
    small_model a = make_small("swin_small_test");
    /* an ordinary checkpoint: canonical names with the prefix */
    int n = tal_params_count(a.p);
    tal_named_tensor *items = calloc((size_t)n, sizeof *items);
    char names[n][200];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], 200, "backbone.%s", tal_params_at(a.p, i)->name);
        items[i] = (tal_named_tensor){names[i], tal_params_at(a.p, i)->value, "F32"};
    }
    const char *in = test_tmp_path("bb_plain.safetensors");
    const char *out = test_tmp_path("bb_plain_rewired.safetensors");
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(in, items, n, NULL, &err), TAL_OK, "%s", err.msg);
    free(items);
    int renamed = 0;
    cr_assert_eq(tal_backbone_rewire_file(in, out, &renamed, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(renamed, 2 * 13 * 2, "13 tensors per block, 4 blocks: %d", renamed);
    tal_tensor_set set = {0};
    cr_assert_eq(tal_safetensors_read(&set, out, &err), TAL_OK, "%s", err.msg);
    const tal_named_tensor *t =
        tal_tensor_set_find(&set, "backbone.layers.1.blocks.1.inv_block.Gm.mlp.fc2.weight");
    cr_assert_not_null(t);
    expect_close(t->t, tal_params_find(a.p, "layers.1.blocks.1.mlp.fc2.weight")->value, 0, 0);
    cr_assert_null(tal_tensor_set_find(&set, "backbone.layers.1.blocks.1.mlp.fc2.weight"));
    tal_tensor_set_free(&set);
    cr_assert_neq(tal_backbone_rewire_file("/nonexistent.safetensors", out, NULL, &err), TAL_OK);
    free_small(&a);
}

/* ---------------------------------------------------------------- chunks, adapter ------- */
Test(backbone_chunks, chunked_features_are_per_chunk_features) {
    small_model m = make_small("swin_small_test");
    tal_backbone_config c = *tal_backbone_config_of(m.bb);
    tal_err err = {0};
    /* m: clips of 4 frames; chunked: 10 frames in chunks of 4 (the last one padded) */
    tal_backbone_config cc = c;
    cc.chunk_frames = 4;
    tal_params *p2 = params_new();
    tal_backbone *chunked = NULL;
    cr_assert_eq(tal_backbone_create(&chunked, &cc, p2, 0, 0, &err), TAL_OK);
    cr_assert_eq(tal_params_allocate(p2, TAL_DEV_CPU, &err), TAL_OK);
    for (int i = 0; i < tal_params_count(p2); i++)
        tal_copy(tal_params_at(p2, i)->value, tal_params_at(m.p, i)->value);
    cr_assert_eq(tal_backbone_prepare(chunked, 1, 10, 32, 32, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_prepare(m.bb, 1, 4, 32, 32, &err), TAL_OK, "%s", err.msg);
    int C = tal_backbone_out_channels(&c);
    cr_assert_eq(tal_backbone_out_frames(&cc, 10), 5);
    tal_tensor video = test_tensor(5, (int64_t[]){1, 3, 10, 32, 32});
    test_fill_uniform(video, 8);
    tal_tensor all = test_tensor(3, (int64_t[]){1, C, 5});
    tal_backbone_forward(chunked, all, video);
    /* chunk 2 (frames 4..7) on its own: features 2, 3 of the whole */
    tal_tensor part = test_tensor(5, (int64_t[]){1, 3, 4, 32, 32});
    for (int ch = 0; ch < 3; ch++)
        for (int t = 4; t < 8; t++)
            memcpy(part.data + (ch * 4 + t - 4) * 1024, video.data + (ch * 10 + t) * 1024,
                   sizeof(float) * 1024);
    tal_tensor f = test_tensor(3, (int64_t[]){1, C, 2});
    tal_backbone_forward(m.bb, f, part);
    for (int k = 0; k < C; k++)
        for (int t = 0; t < 2; t++)
            cr_assert_float_eq(all.data[k * 5 + 2 + t], f.data[k * 2 + t], 1e-6,
                               "channel %d feature %d", k, 2 + t);
    /* chunked training accumulates the per-chunk gradients */
    tal_tensor d = test_tensor_like(all);
    test_fill_uniform(d, 9);
    tal_backbone_backward_chunked(chunked, d, video);
    double norm = 0;
    for (int i = 0; i < tal_params_count(p2); i++) {
        tal_tensor g = tal_params_at(p2, i)->grad;
        for (int64_t j = 0; j < tal_tensor_numel(g); j++) norm += (double)g.data[j] * g.data[j];
    }
    cr_assert(norm > 0 && isfinite(norm), "gradient norm %g", norm);
    tal_backbone_destroy(chunked);
    tal_params_destroy(p2);
    free_small(&m);
    test_free_all();
}

/* Chunked training is the sum of per-chunk training steps: its features are each chunk's
 * training-forward features (drop-path masks of the step included, not the inference pass), and
 * its gradients are those of each chunk's own forward + backward with that chunk's slice of
 * dfeats, added up. */
Test(backbone_chunks, chunked_training_equals_per_chunk_steps) {
    tal_backbone_config c = preset("swin_small_test");
    c.embed_dim = 8, c.n_stages = 2, c.drop_path_rate = 0.5f;
    tal_backbone_config cc = c;
    cc.chunk_frames = 4;
    tal_err err = {0};
    small_model m = {params_new(), NULL}, ch = {params_new(), NULL};
    cr_assert_eq(tal_backbone_create(&m.bb, &c, m.p, 0, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_create(&ch.bb, &cc, ch.p, 0, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(m.p, TAL_DEV_CPU, &err), TAL_OK);
    cr_assert_eq(tal_params_allocate(ch.p, TAL_DEV_CPU, &err), TAL_OK);
    tal_backbone_init(m.bb, 3);
    tal_backbone_init(ch.bb, 3);
    cr_assert_eq(tal_backbone_prepare(m.bb, 1, 4, 32, 32, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_prepare(ch.bb, 1, 10, 32, 32, &err), TAL_OK, "%s", err.msg);
    int C = tal_backbone_out_channels(&c);
    tal_tensor video = test_tensor(5, (int64_t[]){1, 3, 10, 32, 32});
    test_fill_uniform(video, 8);
    tal_tensor all = test_tensor(3, (int64_t[]){1, C, 5}), infer = test_tensor_like(all);
    tal_tensor d = test_tensor_like(all);
    test_fill_uniform(d, 9);
    tal_backbone_set_step(ch.bb, 7);
    tal_backbone_forward_chunked_train(ch.bb, all, video);
    tal_backbone_backward_chunked(ch.bb, d, video);
    tal_backbone_forward(ch.bb, infer, video);
    /* the same steps chunk by chunk: frames 0-3, 4-7, 8-9 + two zero frames */
    tal_backbone_set_step(m.bb, 7);
    tal_tensor part = test_tensor(5, (int64_t[]){1, 3, 4, 32, 32});
    tal_tensor f = test_tensor(3, (int64_t[]){1, C, 2}), df = test_tensor_like(f);
    double worst = 0, differs = 0;
    for (int k = 0; k < 3; k++) {
        int n = k < 2 ? 4 : 2;
        memset(part.data, 0, tal_tensor_bytes(part));
        for (int cc3 = 0; cc3 < 3; cc3++)
            memcpy(part.data + cc3 * 4 * 1024, video.data + (cc3 * 10 + 4 * k) * 1024,
                   sizeof(float) * 1024 * (size_t)n);
        tal_backbone_forward_train(m.bb, f, part);
        memset(df.data, 0, tal_tensor_bytes(df));
        for (int q = 0; q < C; q++)
            for (int t = 0; t < n / 2; t++) {
                float want = f.data[q * 2 + t], got = all.data[q * 5 + 2 * k + t];
                worst = fmax(worst, fabs(want - got));
                differs = fmax(differs, fabs(infer.data[q * 5 + 2 * k + t] - got));
                df.data[q * 2 + t] = d.data[q * 5 + 2 * k + t];
            }
        tal_backbone_backward(m.bb, df, NULL);
    }
    cr_expect_leq(worst, 1e-6, "chunked training features vs per-chunk training forward: %g", worst);
    cr_expect_gt(differs, 1e-3, "with drop-path 0.5 the training features must differ from "
                 "inference's (masks applied): %g", differs);
    for (int i = 0; i < tal_params_count(m.p); i++)
        expect_close(tal_params_at(ch.p, i)->grad, tal_params_at(m.p, i)->grad, 1e-6, 1e-5);
    free_small(&m);
    free_small(&ch);
    test_free_all();
}

Test(backbone_chunks, resize_is_linear_interpolation) {
    tal_tensor x = test_tensor(3, (int64_t[]){1, 1, 2}), y = test_tensor(3, (int64_t[]){1, 1, 4});
    x.data[0] = 0, x.data[1] = 4;
    tal_backbone_resize_forward(y, x);
    /* align_corners=False: positions -0.25, 0.25, 0.75, 1.25 clamped */
    cr_assert_float_eq(y.data[0], 0.0f, 1e-6);
    cr_assert_float_eq(y.data[1], 1.0f, 1e-6);
    cr_assert_float_eq(y.data[2], 3.0f, 1e-6);
    cr_assert_float_eq(y.data[3], 4.0f, 1e-6);
    tal_tensor same = test_tensor_like(x);
    tal_backbone_resize_forward(same, x);
    expect_close(same, x, 0, 0);
    test_free_all();
}

/* ---------------------------------------------------------------- drop-path at inference - */
/* Drop-path is a training regulariser: inference (validation, re2tal infer, extract) runs every
 * residual branch whole whatever the training step, i.e. equals the same weights with rate 0;
 * a training forward does drop (else this test could not fail). */
static void check_inference_has_no_drop_path(const char *preset_name) {
    tal_backbone_config c = preset(preset_name), c0;
    if (c.arch == TAL_ARCH_SWIN) c.embed_dim = 8, c.n_stages = 2;
    c.drop_path_rate = 0.5f;
    c0 = c;
    c0.drop_path_rate = 0;
    tal_err err = {0};
    tal_params *p = params_new(), *p0 = params_new();
    tal_backbone *bb = NULL, *bb0 = NULL;
    cr_assert_eq(tal_backbone_create(&bb, &c, p, 0, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_create(&bb0, &c0, p0, 0, 0, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, &err), TAL_OK);
    cr_assert_eq(tal_params_allocate(p0, TAL_DEV_CPU, &err), TAL_OK);
    tal_backbone_init(bb, 3);
    for (int i = 0; i < tal_params_count(p); i++)
        tal_copy(tal_params_at(p0, i)->value, tal_params_at(p, i)->value);
    cr_assert_eq(tal_backbone_prepare(bb, 1, 4, 32, 32, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_backbone_prepare(bb0, 1, 4, 32, 32, &err), TAL_OK, "%s", err.msg);
    int C = tal_backbone_out_channels(&c), T = tal_backbone_out_frames(&c, 4);
    tal_tensor video = test_tensor(5, (int64_t[]){1, 3, 4, 32, 32});
    test_fill_uniform(video, 11);
    tal_tensor a = test_tensor(3, (int64_t[]){1, C, T}), b = test_tensor_like(a);
    tal_tensor ref = test_tensor_like(a), tr = test_tensor_like(a);
    tal_backbone_set_step(bb, 5);
    tal_backbone_forward(bb, a, video);
    tal_backbone_set_step(bb, 6);
    tal_backbone_forward(bb, b, video);
    tal_backbone_forward(bb0, ref, video);
    expect_close(a, ref, 0, 0);
    expect_close(b, ref, 0, 0);
    tal_backbone_forward_train(bb, tr, video);
    double diff = 0;
    for (int64_t i = 0; i < tal_tensor_numel(tr); i++) diff += fabs(tr.data[i] - ref.data[i]);
    cr_expect_gt(diff, 1e-3, "%s: a training forward at rate 0.5 must drop branches", preset_name);
    tal_tensor d = test_tensor_like(tr);
    tal_backbone_backward(bb, d, NULL);
    tal_backbone_destroy(bb);
    tal_backbone_destroy(bb0);
    tal_params_destroy(p);
    tal_params_destroy(p0);
}

Test(backbone_drop_path, inference_runs_every_branch_swin) {
    check_inference_has_no_drop_path("swin_small_test");
}
Test(backbone_drop_path, inference_runs_every_branch_resnet) {
    check_inference_has_no_drop_path("resnet3d_small");
}
