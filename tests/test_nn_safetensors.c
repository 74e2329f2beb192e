/* Safetensors read/write and parameter loading: round trip with metadata, atomic writes, F16 /
 * BF16 / F64 / I64 / I32 on load, half-precision rounding, and every bad-input path (truncated,
 * garbage header length, not a safetensors file, invalid JSON, unsupported dtype, offsets out of
 * range, size mismatch, mis-shaped / missing / extra tensors at tal_params_load); each error
 * names the file and, where one is involved, the tensor. */
#include "nn_check.h"

#include <dirent.h>
#include <math.h>
#include <string.h>

static void cleanup(void) { test_free_all(); }
TestSuite(nn_safetensors, .fini = cleanup);

static char g_path[512];

/* A path for this test's file (test_tmp_path returns a static buffer; keep our own copy). */
static const char *tmp(const char *name) {
    snprintf(g_path, sizeof g_path, "%s", test_tmp_path(name));
    return g_path;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* header_json as the header (length prefix computed), then n data bytes. */
static void write_raw(const char *path, const char *header_json, const void *data, size_t n) {
    size_t hlen = strlen(header_json);
    unsigned char *buf = calloc(8 + hlen + n + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header_json, hlen);
    if (n) memcpy(buf + 8 + hlen, data, n);
    write_bytes(path, buf, 8 + hlen + n);
    free(buf);
}

/* Reading must fail with `code`, naming the file (and `tensor` if given), leaving an empty set. */
static void expect_read_error(const char *path, tal_status code, const char *tensor,
                              const char *also) {
    tal_tensor_set set;
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_read(&set, path, &err), code, "got %s: %s",
                 tal_status_name(err.code), err.msg);
    cr_assert_eq(set.count, 0);
    cr_assert_null(set.items);
    const char *base = strrchr(path, '/') + 1;
    cr_assert(strstr(err.msg, base), "message must name the file: %s", err.msg);
    if (tensor) cr_assert(strstr(err.msg, tensor), "message must name '%s': %s", tensor, err.msg);
    if (also) cr_assert(strstr(err.msg, also), "message must say '%s': %s", also, err.msg);
}

static const float VALS[6] = {1.0f, -2.5f, 0.125f, 3.0f, 1e-3f, -7.0f};

Test(nn_safetensors, write_read_round_trip_with_metadata) {
    float s = 4.5f;
    tal_named_tensor items[3] = {{"layers.0.w", tal_t2((float *)VALS, 2, 3), "F32"},
                                 {"scalar", tal_tensor_of(&s, 0, NULL), "F32"},
                                 {"flat", tal_t1((float *)VALS + 1, 4), "F32"}};
    tal_err err = {0};
    const char *path = tmp("round_trip.safetensors");
    cr_assert_eq(tal_safetensors_write(path, items, 3, "{\"epoch\":\"7\"}", &err), TAL_OK, "%s",
                 err.msg);
    tal_tensor_set set;
    cr_assert_eq(tal_safetensors_read(&set, path, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(set.count, 3);
    const tal_named_tensor *w = tal_tensor_set_find(&set, "layers.0.w");
    cr_assert_not_null(w);
    cr_assert(w->t.ndim == 2 && w->t.shape[0] == 2 && w->t.shape[1] == 3);
    expect_close(w->t, items[0].t, 0, 0);
    const tal_named_tensor *sc = tal_tensor_set_find(&set, "scalar");
    cr_assert(sc && sc->t.ndim == 0 && sc->t.data[0] == 4.5f);
    expect_close(tal_tensor_set_find(&set, "flat")->t, items[2].t, 0, 0);
    cr_assert_str_eq(w->dtype, "F32");
    cr_assert_not_null(set.metadata_json);
    cr_assert(strstr(set.metadata_json, "\"epoch\":\"7\""), "%s", set.metadata_json);
    cr_assert_null(tal_tensor_set_find(&set, "absent"));
    tal_tensor_set_free(&set);
    tal_tensor_set_free(&set); /* a freed set is an empty set */
}

Test(nn_safetensors, tensor_set_add_copies) {
    tal_tensor_set set = {0};
    float v[2] = {1, 2};
    cr_assert_eq(tal_tensor_set_add(&set, "a", tal_t1(v, 2), NULL), TAL_OK);
    v[0] = 9;
    cr_assert_eq(tal_tensor_set_find(&set, "a")->t.data[0], 1.0f);
    tal_tensor_set_free(&set);
}

Test(nn_safetensors, write_is_atomic_and_leaves_no_temp_file) {
    const char *path = tmp("atomic.safetensors");
    tal_named_tensor it = {"a", tal_t1((float *)VALS, 6), "F32"};
    cr_assert_eq(tal_safetensors_write(path, &it, 1, NULL, NULL), TAL_OK);
    it.t = tal_t1((float *)VALS, 2); /* overwrite an existing file */
    cr_assert_eq(tal_safetensors_write(path, &it, 1, NULL, NULL), TAL_OK);
    DIR *d = opendir(test_tmp_path(""));
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        cr_assert_null(strstr(e->d_name, "atomic.safetensors.tmp"), "left behind: %s", e->d_name);
    closedir(d);
    tal_tensor_set set;
    cr_assert_eq(tal_safetensors_read(&set, path, NULL), TAL_OK);
    cr_assert_eq(tal_tensor_numel(set.items[0].t), 2);
    tal_tensor_set_free(&set);
}

Test(nn_safetensors, write_errors_name_the_file) {
    tal_named_tensor it[2] = {{"a", tal_t1((float *)VALS, 2), "F32"},
                              {"a", tal_t1((float *)VALS, 2), "F32"}};
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_write(tmp("no_such_dir/x.safetensors"), it, 1, NULL, &err),
                 TAL_EIO);
    cr_assert(strstr(err.msg, "no_such_dir"), "%s", err.msg);
    cr_assert_eq(tal_safetensors_write(tmp("dup.safetensors"), it, 2, NULL, &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "'a'"), "%s", err.msg);
    cr_assert_eq(tal_safetensors_write(tmp("meta.safetensors"), it, 1, "[1, 2]", &err), TAL_EINVAL);
    cr_assert(strstr(err.msg, "meta.safetensors"), "%s", err.msg);
}

Test(nn_safetensors, missing_file_or_directory) {
    expect_read_error(tmp("does_not_exist.safetensors"), TAL_EIO, NULL, NULL);
    tal_tensor_set set;
    tal_err err = {0};
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path(""));
    cr_assert_neq(tal_safetensors_read(&set, dir, &err), TAL_OK);
    cr_assert(strstr(err.msg, dir), "message must name the path: %s", err.msg);
}

Test(nn_safetensors, truncated_files) {
    const char *path = tmp("whole.safetensors");
    tal_named_tensor it = {"weight", tal_t1((float *)VALS, 6), "F32"};
    cr_assert_eq(tal_safetensors_write(path, &it, 1, NULL, NULL), TAL_OK);
    FILE *f = fopen(path, "rb");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_bytes(tmp("trunc_data.safetensors"), buf, n - 5); /* inside the data */
    expect_read_error(g_path, TAL_EFORMAT, "weight", "truncated");
    write_bytes(tmp("trunc_header.safetensors"), buf, 20); /* inside the header */
    expect_read_error(g_path, TAL_EFORMAT, NULL, NULL);
    write_bytes(tmp("trunc_len.safetensors"), buf, 5); /* inside the length */
    expect_read_error(g_path, TAL_EFORMAT, NULL, NULL);
    write_bytes(tmp("empty.safetensors"), buf, 0);
    expect_read_error(g_path, TAL_EFORMAT, NULL, NULL);
}

Test(nn_safetensors, garbage_length_and_wrong_magic) {
    unsigned char junk[64];
    memset(junk, 0xff, sizeof junk); /* header length 2^64 - 1 */
    write_bytes(tmp("garbage_len.safetensors"), junk, sizeof junk);
    expect_read_error(g_path, TAL_EFORMAT, NULL, "header length");
    const char *text = "PK\x03\x04 this is a zip file, not a checkpoint at all, sorry";
    write_bytes(tmp("zip.safetensors"), text, strlen(text));
    expect_read_error(g_path, TAL_EFORMAT, NULL, NULL);
    /* a length that fits but bytes that are not JSON */
    unsigned char bin[40] = {24, 0, 0, 0, 0, 0, 0, 0, 0x89, 'P', 'N', 'G'};
    write_bytes(tmp("png.safetensors"), bin, sizeof bin);
    expect_read_error(g_path, TAL_EFORMAT, NULL, "JSON");
}

Test(nn_safetensors, bad_headers_name_the_tensor) {
    float d[4] = {1, 2, 3, 4};
    write_raw(tmp("bad_json.safetensors"), "{\"a\": {\"dtype\": \"F32\", ", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, NULL, "JSON");
    write_raw(tmp("array.safetensors"), "[1, 2, 3]", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, NULL, "JSON object");
    write_raw(tmp("dtype.safetensors"),
              "{\"qweight\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "qweight", "F8_E4M3");
    write_raw(tmp("u8.safetensors"),
              "{\"bytes\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "bytes", "U8");
    write_raw(tmp("offsets.safetensors"),
              "{\"far\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[1000,1016]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "far", "data_offsets");
    write_raw(tmp("reversed.safetensors"),
              "{\"rev\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "rev", "data_offsets");
    write_raw(tmp("size.safetensors"),
              "{\"short\":{\"dtype\":\"F32\",\"shape\":[3, 2],\"data_offsets\":[0,16]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "short", "need");
    write_raw(tmp("fields.safetensors"), "{\"nodtype\":{\"shape\":[4],\"data_offsets\":[0,16]}}",
              d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "nodtype", "dtype");
    write_raw(tmp("notobj.safetensors"), "{\"num\": 5}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "num", NULL);
    write_raw(tmp("negdim.safetensors"),
              "{\"neg\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "neg", "shape");
    write_raw(tmp("dims.safetensors"),
              "{\"deep\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}",
              d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "deep", "dims");
    write_raw(tmp("offset_type.safetensors"),
              "{\"strs\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[\"0\",\"16\"]}}",
              d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "strs", "data_offsets");
    write_raw(tmp("twice.safetensors"),
              "{\"same\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"same\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "same", "twice");
    /* two metadata objects: the first one's text once leaked (fuzz_nn_safetensors) */
    write_raw(tmp("meta_twice.safetensors"),
              "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"a\":\"2\"},"
              "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "__metadata__", "twice");
    /* the second tensor is bad: the first one read before it must be freed, not leaked */
    write_raw(tmp("second_bad.safetensors"),
              "{\"ok\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"bad\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,24]}}", d, 16);
    expect_read_error(g_path, TAL_EFORMAT, "bad", NULL);
}

Test(nn_safetensors, half_precision_and_integer_dtypes_load_as_float) {
    /* f16: 1, -2.5, 65504 (max), 2^-24 (smallest subnormal), 0.333251953125, -0 */
    uint16_t f16[6] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x3555, 0x8000};
    /* bf16: 1, -3.140625, 2^100, 1/128 */
    uint16_t bf16[4] = {0x3f80, 0xc049, 0x7180, 0x3c00};
    double f64[2] = {0.1, -1e10};
    int64_t i64[2] = {-3, 1 << 20};
    int32_t i32[2] = {7, -8};
    unsigned char data[12 + 8 + 16 + 16 + 8];
    memcpy(data, f16, 12);
    memcpy(data + 12, bf16, 8);
    memcpy(data + 20, f64, 16);
    memcpy(data + 36, i64, 16);
    memcpy(data + 52, i32, 8);
    write_raw(tmp("dtypes.safetensors"),
              "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
              "\"bf\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[12,20]},"
              "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[20,36]},"
              "\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[36,52]},"
              "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[52,60]},"
              "\"__metadata__\":{\"format\":\"pt\"}}",
              data, sizeof data);
    tal_tensor_set set;
    tal_err err = {0};
    cr_assert_eq(tal_safetensors_read(&set, g_path, &err), TAL_OK, "%s", err.msg);
    const tal_named_tensor *h = tal_tensor_set_find(&set, "h");
    cr_assert_str_eq(h->dtype, "F16");
    const float hw[6] = {1.0f, -2.5f, 65504.0f, 0x1p-24f, 0.333251953125f, -0.0f};
    for (int i = 0; i < 6; i++) cr_assert_eq(h->t.data[i], hw[i], "f16[%d] = %g", i, h->t.data[i]);
    cr_assert(signbit(h->t.data[5]));
    const tal_named_tensor *bf = tal_tensor_set_find(&set, "bf");
    cr_assert_str_eq(bf->dtype, "BF16");
    const float bw[4] = {1.0f, -3.140625f, 0x1p100f, 0.0078125f};
    for (int i = 0; i < 4; i++) cr_assert_eq(bf->t.data[i], bw[i], "bf16[%d] = %g", i, bf->t.data[i]);
    const float *dd = tal_tensor_set_find(&set, "d")->t.data;
    cr_assert(dd[0] == 0.1f && dd[1] == -1e10f);
    const float *ll = tal_tensor_set_find(&set, "l")->t.data;
    cr_assert(ll[0] == -3.0f && ll[1] == 1048576.0f);
    const float *ii = tal_tensor_set_find(&set, "i")->t.data;
    cr_assert(ii[0] == 7.0f && ii[1] == -8.0f);
    tal_tensor_set_free(&set);
}

Test(nn_safetensors, half_conversions_round_to_nearest_even) {
    /* every f16 bit pattern that is a number survives f16 -> f32 -> f16 */
    for (uint32_t u = 0; u < 0x10000; u++) {
        float f = tal_f16_to_f32((uint16_t)u);
        if (isnan(f)) continue;
        cr_assert_eq(tal_f32_to_f16(f), u, "f16 0x%04x -> %g -> 0x%04x", u, f, tal_f32_to_f16(f));
    }
    cr_assert(isnan(tal_f16_to_f32(tal_f32_to_f16(NAN))));
    cr_assert_eq(tal_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);              /* tie -> even (down) */
    cr_assert_eq(tal_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);          /* tie -> even (up) */
    cr_assert_eq(tal_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);   /* above the tie */
    cr_assert_eq(tal_f32_to_f16(1e6f), 0x7c00);                         /* overflow -> inf */
    cr_assert_eq(tal_f32_to_f16(0x1p-26f), 0x0000);                     /* underflow -> 0 */
    cr_assert_eq(tal_f32_to_f16(0x1p-25f + 0x1p-30f), 0x0001);          /* rounds to subnormal */
    cr_assert_eq(tal_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);              /* tie -> even */
    cr_assert_eq(tal_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    cr_assert(isnan(tal_bf16_to_f32(tal_f32_to_bf16(NAN))));
    for (uint32_t u = 0; u < 0x10000; u += 7) {
        float f = tal_bf16_to_f32((uint16_t)u);
        if (!isnan(f)) cr_assert_eq(tal_f32_to_bf16(f), u);
    }
}

/* ------------------------------------------------------------------ tal_params_load */
static tal_params *small_params(void) {
    tal_params *p = tal_params_create();
    tal_params_add_group(p, "all", 1.0f, 0.0f);
    tal_params_declare(p, "blocks.0.w", 2, (int64_t[]){2, 3}, 0, 1);
    tal_params_declare(p, "blocks.0.b", 1, (int64_t[]){2}, 0, 1);
    cr_assert_eq(tal_params_allocate(p, TAL_DEV_CPU, NULL), TAL_OK);
    return p;
}

static const char *strip_module(const char *name, char *buf, size_t size, void *ctx) {
    (void)ctx;
    if (strstr(name, "num_batches")) return NULL; /* dropped on purpose */
    snprintf(buf, size, "%s", strncmp(name, "module.", 7) ? name : name + 7);
    return buf;
}

Test(nn_safetensors, params_save_load_round_trip_and_rename) {
    tal_params *p = small_params(), *q = small_params();
    test_fill_uniform(tal_params_at(p, 0)->value, 1);
    test_fill_uniform(tal_params_at(p, 1)->value, 2);
    tal_err err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s", tmp("params.safetensors"));
    cr_assert_eq(tal_params_save(p, path, "{\"arch\":\"test\"}", &err), TAL_OK, "%s", err.msg);
    int unused = -1;
    cr_assert_eq(tal_params_load(q, path, NULL, NULL, 0, &unused, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(unused, 0);
    for (int i = 0; i < 2; i++)
        expect_close(tal_params_at(q, i)->value, tal_params_at(p, i)->value, 0, 0);
    /* names as a wrapped checkpoint stores them, plus one that the map drops */
    float w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {7, 8}, nb = 3;
    tal_named_tensor items[3] = {{"module.blocks.0.w", tal_t2(w, 2, 3), "F32"},
                                 {"module.blocks.0.b", tal_t1(b, 2), "F32"},
                                 {"bn.num_batches_tracked", tal_t1(&nb, 1), "F32"}};
    cr_assert_eq(tal_safetensors_write(path, items, 3, NULL, &err), TAL_OK);
    cr_assert_eq(tal_params_load(q, path, strip_module, NULL, 0, &unused, &err), TAL_OK, "%s",
                 err.msg);
    cr_assert_eq(unused, 1, "the dropped tensor is counted as unused");
    cr_assert_eq(tal_params_find(q, "blocks.0.w")->value.data[5], 6.0f);
    cr_assert_eq(tal_params_find(q, "blocks.0.b")->value.data[0], 7.0f);
    tal_params_destroy(p);
    tal_params_destroy(q);
}

Test(nn_safetensors, params_load_errors) {
    tal_params *p = small_params();
    float w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {7, 8, 9}, extra[2] = {0, 0};
    tal_err err = {0};
    int unused = -1;
    /* mis-shaped: [3, 2] where [2, 3] is declared (same count, other shape); the good tensor
     * stored first must not be copied either: a failed load changes nothing */
    tal_named_tensor bad[2] = {{"blocks.0.b", tal_t1(b, 2), "F32"},
                               {"blocks.0.w", tal_t2(w, 3, 2), "F32"}};
    cr_assert_eq(tal_safetensors_write(tmp("misshaped.safetensors"), bad, 2, NULL, NULL), TAL_OK);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, &unused, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "misshaped.safetensors") && strstr(err.msg, "blocks.0.w") &&
              strstr(err.msg, "[3, 2]") && strstr(err.msg, "[2, 3]"), "%s", err.msg);
    cr_assert_eq(tal_params_find(p, "blocks.0.b")->value.data[0], 0.0f, "a failed load wrote");
    /* two file tensors that the map sends to one parameter */
    tal_named_tensor both[3] = {{"module.blocks.0.b", tal_t1(b, 2), "F32"},
                                {"blocks.0.b", tal_t1(b + 1, 2), "F32"},
                                {"blocks.0.w", tal_t2(w, 2, 3), "F32"}};
    cr_assert_eq(tal_safetensors_write(tmp("collide.safetensors"), both, 3, NULL, NULL), TAL_OK);
    cr_assert_eq(tal_params_load(p, g_path, strip_module, NULL, 0, &unused, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "collide.safetensors") && strstr(err.msg, "module.blocks.0.b") &&
              strstr(err.msg, "blocks.0.b"), "%s", err.msg);
    cr_assert_eq(tal_params_find(p, "blocks.0.w")->value.data[0], 0.0f, "a failed load wrote");
    /* missing parameter: an error unless allowed */
    tal_named_tensor only_w = {"blocks.0.w", tal_t2(w, 2, 3), "F32"};
    cr_assert_eq(tal_safetensors_write(tmp("missing.safetensors"), &only_w, 1, NULL, NULL), TAL_OK);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, &unused, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "missing.safetensors") && strstr(err.msg, "blocks.0.b"), "%s",
              err.msg);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 1, &unused, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(tal_params_find(p, "blocks.0.w")->value.data[4], 5.0f);
    /* extra tensors: counted and listed, not an error */
    tal_named_tensor more[4] = {{"blocks.0.w", tal_t2(w, 2, 3), "F32"},
                                {"blocks.0.b", tal_t1(b, 2), "F32"},
                                {"head.fc.weight", tal_t1(extra, 2), "F32"},
                                {"head.fc.bias", tal_t1(extra, 1), "F32"}};
    cr_assert_eq(tal_safetensors_write(tmp("extra.safetensors"), more, 4, NULL, NULL), TAL_OK);
    memset(&err, 0, sizeof err);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, &unused, &err), TAL_OK, "%s", err.msg);
    cr_assert_eq(unused, 2);
    cr_assert(strstr(err.msg, "head.fc.weight") && strstr(err.msg, "head.fc.bias"), "%s", err.msg);
    /* a broken file is reported by the reader, naming the file */
    write_bytes(tmp("broken_params.safetensors"), "\x10\0\0\0\0\0\0\0{", 9);
    cr_assert_eq(tal_params_load(p, g_path, NULL, NULL, 0, &unused, &err), TAL_EFORMAT);
    cr_assert(strstr(err.msg, "broken_params.safetensors"), "%s", err.msg);
    tal_params_destroy(p);
}
