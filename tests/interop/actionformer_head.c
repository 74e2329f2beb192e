/* tests/interop/actionformer_head.c: the C half of tests/interop/check_actionformer.py (a dev
 * check behind `make interop`, not a unit test): runs the head of a config + converted
 * checkpoint on one video's features, padded to max_seq_len as ActionFormer pads a test video,
 * and post-processes as ActionFormer does (decode, Soft-NMS in feature units, then seconds
 * (x * stride + 0.5 * n_frames) / fps clipped to [0, duration]).
 *   interop_af_head HEAD_JSON CKPT.safetensors FEATS.f32 T_VALID FPS STRIDE N_FRAMES DURATION OUT
 * FEATS.f32: raw float32 [C_in, T_VALID]. Writes OUT/cls.L.f32 ([K, T_L] logits of level L),
 * OUT/reg.L.f32 ([2, T_L] offsets) and OUT/dets.txt (start end score label per line, seconds,
 * final order); prints a JSON summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heads/heads.h"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int write_raw(const char *dir, const char *what, int level, tal_tensor t) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%d.f32", dir, what, level);
    FILE *f = fopen(path, "wb");
    size_t n = (size_t)tal_tensor_numel(t);
    int ok = f && fwrite(t.data, sizeof(float), n, f) == n;
    if (f) ok &= fclose(f) == 0;
    if (!ok) fprintf(stderr, "interop_af_head: %s: cannot write\n", path);
    return ok ? 0 : -1;
}

static int write_dets(const char *dir, const tal_dets *d) {
    char path[1024];
    snprintf(path, sizeof path, "%s/dets.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < d->n; i++)
        fprintf(f, "%.9g %.9g %.9g %d\n", d->items[i].start, d->items[i].end,
                d->items[i].score, d->items[i].label);
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: %s HEAD_JSON CKPT FEATS.f32 T_VALID FPS STRIDE N_FRAMES DURATION "
                "OUT_DIR\n", argv[0]);
        return 2;
    }
    int T_valid = atoi(argv[4]);
    tal_time_map map = {.fps = atof(argv[5]), .snippet_stride = atof(argv[6]),
                        .offset_frames = 0.5 * atof(argv[7]), .duration_s = atof(argv[8])};
    const char *out_dir = argv[9];
    tal_err err = {0};
    tal_head_config cfg;
    tal_head_config_thumos(&cfg);
    tal_params *p = tal_params_create();
    tal_head *h = NULL;
    tal_dets dets = {0};
    float *feats = NULL, *mask = NULL;
    int rc = 1, unused = 0;
    char *json = read_text(argv[1]);
    int g = tal_params_add_group(p, "head", 1.0f, 0.0f);
    if (!json) {
        fprintf(stderr, "interop_af_head: %s: cannot read\n", argv[1]);
        goto done;
    }
    if (tal_head_config_from_json(&cfg, argv[1], json, &err) ||
        tal_head_create(&h, &cfg, p, "", g, g, 1, &err) ||
        tal_params_allocate(p, TAL_DEV_CPU, &err) || tal_head_init(h, 0, &err) ||
        tal_params_load(p, argv[2], tal_head_checkpoint_name, h, 0, &unused, &err)) {
        fprintf(stderr, "interop_af_head: %s\n", err.msg);
        goto done;
    }
    int64_t C = cfg.in_channels, T = cfg.max_seq_len; /* ActionFormer pads to max_seq_len */
    if (T_valid < 1 || T_valid > T) {
        fprintf(stderr, "interop_af_head: T_VALID %d not in 1..max_seq_len %lld\n", T_valid,
                (long long)T);
        goto done;
    }
    feats = calloc((size_t)(C * T), sizeof(float));
    mask = calloc((size_t)T, sizeof(float));
    float *raw = malloc(sizeof(float) * (size_t)(C * T_valid));
    FILE *f = fopen(argv[3], "rb");
    size_t want = (size_t)(C * T_valid);
    int read_ok = feats && mask && raw && f && fread(raw, sizeof(float), want, f) == want;
    if (f) fclose(f);
    if (!read_ok) {
        fprintf(stderr, "interop_af_head: %s: cannot read %zu floats\n", argv[3], want);
        free(raw);
        goto done;
    }
    for (int64_t c = 0; c < C; c++)
        memcpy(feats + c * T, raw + c * T_valid, sizeof(float) * (size_t)T_valid);
    free(raw);
    for (int t = 0; t < T_valid; t++) mask[t] = 1.0f;
    tal_head_set_train(h, 0, 0);
    tal_head_forward(h, tal_t3(feats, 1, C, T), tal_t2(mask, 1, T));
    for (int l = 0; l < tal_head_levels(&cfg); l++)
        if (write_raw(out_dir, "cls", l, tal_head_cls(h, l)) ||
            write_raw(out_dir, "reg", l, tal_head_reg(h, l)))
            goto done;
    tal_nms_opts nms = tal_head_nms_opts(&cfg);
    if (tal_head_decode(h, 0, &dets, &err)) {
        fprintf(stderr, "interop_af_head: %s\n", err.msg);
        goto done;
    }
    int n_decoded = dets.n;
    if (tal_soft_nms(&dets, &nms, &err)) {
        fprintf(stderr, "interop_af_head: %s\n", err.msg);
        goto done;
    }
    tal_dets_to_seconds(&dets, 0, &map, 0);
    if (write_dets(out_dir, &dets)) {
        fprintf(stderr, "interop_af_head: %s/dets.txt: cannot write\n", out_dir);
        goto done;
    }
    printf("{\"levels\": %d, \"decoded\": %d, \"detections\": %d, \"unused_tensors\": %d}\n",
           tal_head_levels(&cfg), n_decoded, dets.n, unused);
    rc = 0;
done:
    free(json);
    free(feats);
    free(mask);
    tal_dets_free(&dets);
    tal_head_destroy(h);
    tal_params_destroy(p);
    return rc;
}
