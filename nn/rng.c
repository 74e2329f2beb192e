/* nn/rng.c: a counter-based generator (Philox-4x32-10): the key (seed, step, stream) and a
 * counter give the numbers, so any op can redraw exactly the mask it drew before. */
#include "nn.h"

#include <math.h>

static void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
    const uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t out[4] = {hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
    for (int i = 0; i < 4; i++) ctr[i] = out[i];
}

static void philox(uint32_t ctr[4], uint64_t seed) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int r = 0; r < 10; r++) {
        philox_round(ctr, key);
        key[0] += 0x9E3779B9u;
        key[1] += 0xBB67AE85u;
    }
}

/* Mixes step and stream into the counter's upper words, the element index into the lower. */
static void draw(tal_rng_key key, uint64_t i, uint32_t out[4]) {
    uint64_t hi = key.step * 0x9E3779B97F4A7C15ull ^ (key.stream + 0x632BE59BD9B4E019ull);
    out[0] = (uint32_t)i;
    out[1] = (uint32_t)(i >> 32);
    out[2] = (uint32_t)hi;
    out[3] = (uint32_t)(hi >> 32);
    philox(out, key.seed);
}

uint64_t tal_rng_u64(tal_rng_key key, uint64_t i) {
    uint32_t r[4];
    draw(key, i, r);
    return ((uint64_t)r[0] << 32) | r[1];
}

float tal_rng_uniform(tal_rng_key key, uint64_t i) {
    uint32_t r[4];
    draw(key, i, r);
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f); /* 24 bits: exact in float, < 1 */
}

float tal_rng_normal(tal_rng_key key, uint64_t i) {
    uint32_t r[4];
    draw(key, i, r);
    double u1 = ((double)r[0] + 1.0) / 4294967297.0; /* (0, 1): log is finite */
    double u2 = (double)r[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
