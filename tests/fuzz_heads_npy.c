/* tests/fuzz_heads_npy.c: libFuzzer target for the .npy feature reader (float32 / float16,
 * [T, C] or [C, T], C order or Fortran): any bytes give features of the asked channels with
 * finite values, or an error naming the file; never a crash, leak, hang or undefined behaviour,
 * and never an allocation the file's size does not back.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; seeds: tests/fuzz/heads_npy. */
#include <math.h>

#include "fuzz_util.h"
#include "heads/heads.h"

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    const char *path = fuzz_path("features.npy");
    fuzz_write(path, bytes, size);
    const int channels[2] = {4, 1};
    for (int i = 0; i < 2; i++) {
        tal_features f;
        tal_err err = {0};
        if (tal_features_load(&f, path, channels[i], &err) != TAL_OK) {
            FUZZ_CHECK(f.data == NULL, "features with an error");
            fuzz_check_names(&err, path);
            continue;
        }
        FUZZ_CHECK(f.C == channels[i] && f.T >= 0, "C %d T %d", f.C, f.T);
        FUZZ_CHECK((size_t)f.C * (size_t)f.T * 2 <= size, "%d x %d values from %zu bytes", f.C,
                   f.T, size);
        for (int64_t k = 0; k < (int64_t)f.C * f.T; k++)
            FUZZ_CHECK(isfinite(f.data[k]), "value %lld", (long long)k);
        tal_features_free(&f);
    }
    return 0;
}
