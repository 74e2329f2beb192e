/* nn/rng.c: a counter-based generator (Philox-4x32-10, in device_math.h so the CUDA kernels
 * draw the same numbers): the key (seed, step, stream) and a counter give the numbers, so any op
 * can redraw exactly the mask it drew before. */
#include "nn.h"
#include "device_math.h"

uint64_t tal_rng_u64(tal_rng_key key, uint64_t i) {
    return philox_u64(key.seed, key.step, key.stream, i);
}

float tal_rng_uniform(tal_rng_key key, uint64_t i) {
    return philox_uniform(key.seed, key.step, key.stream, i);
}

float tal_rng_normal(tal_rng_key key, uint64_t i) {
    return philox_normal(key.seed, key.step, key.stream, i);
}
