/* tests/interop/extract_features.c: the dev check behind `make interop` (not a unit test):
 * loads a converted checkpoint into a backbone config and writes the features of one clip.
 *   interop_extract BACKBONE_JSON CKPT.safetensors CLIP.f32 B T H W OUT.f32
 * CLIP.f32: raw float32 [B, 3, T, H, W]; OUT.f32: raw float32 [B, C, T'] (shape printed). */
#include <stdio.h>
#include <stdlib.h>

#include "backbone/backbone.h"

static int read_raw(const char *path, float *dst, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(dst, sizeof(float), n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s BACKBONE_JSON CKPT CLIP.f32 B T H W OUT.f32\n", argv[0]);
        return 2;
    }
    int B = atoi(argv[4]), T = atoi(argv[5]), H = atoi(argv[6]), W = atoi(argv[7]);
    tal_err err = {0};
    tal_backbone_config cfg;
    tal_params *p = tal_params_create();
    tal_backbone *bb = NULL;
    float *clip = NULL, *feats = NULL;
    int rc = 1, unused = 0;
    tal_params_add_group(p, "backbone", 1.0f, 0.0f);
    if (tal_backbone_config_from_json(&cfg, argv[1], &err) ||
        tal_backbone_create(&bb, &cfg, p, 0, 0, &err) ||
        tal_params_allocate(p, TAL_DEV_CPU, &err) ||
        tal_backbone_load(bb, p, argv[2], &unused, &err) ||
        tal_backbone_prepare(bb, B, T, H, W, &err)) {
        fprintf(stderr, "interop_extract: %s\n", err.msg);
        goto done;
    }
    int64_t C = tal_backbone_out_channels(&cfg), To = tal_backbone_out_frames(&cfg, T);
    size_t n_clip = (size_t)B * 3 * T * H * W, n_out = (size_t)(B * C * To);
    clip = malloc(sizeof(float) * n_clip);
    feats = malloc(sizeof(float) * n_out);
    if (!clip || !feats || read_raw(argv[3], clip, n_clip)) {
        fprintf(stderr, "interop_extract: %s: cannot read %zu floats\n", argv[3], n_clip);
        goto done;
    }
    tal_backbone_forward(bb, tal_t3(feats, B, C, To), tal_t5(clip, B, 3, T, H, W));
    FILE *f = fopen(argv[8], "wb");
    if (!f || fwrite(feats, sizeof(float), n_out, f) != n_out) {
        fprintf(stderr, "interop_extract: %s: cannot write\n", argv[8]);
        if (f) fclose(f);
        goto done;
    }
    fclose(f);
    printf("{\"shape\": [%d, %lld, %lld], \"unused_tensors\": %d}\n", B, (long long)C,
           (long long)To, unused);
    rc = 0;
done:
    free(clip);
    free(feats);
    tal_backbone_destroy(bb);
    tal_params_destroy(p);
    return rc;
}
