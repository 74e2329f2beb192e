/* tests/fuzz_nn_safetensors.c: libFuzzer target for the safetensors reader (checkpoints and
 * pretrained weights). Any bytes give either tensors that write and read back bit for bit, and
 * load into a parameter store by name, or an error naming the file (non-finite values included:
 * refused unless allowed, then read). Never a crash, leak, hang or undefined behaviour.
 * Build: cmake -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang; seeds: tests/fuzz/nn_safetensors. */
#include "fuzz_util.h"

static tal_params *g_params;

/* Two parameters the seeds name: "w" [2, 3] and "b" [3]. */
static tal_params *params(void) {
    if (g_params) return g_params;
    g_params = tal_params_create();
    int g = tal_params_add_group(g_params, "all", 1, 0);
    tal_params_declare(g_params, "w", 2, (int64_t[]){2, 3}, g, 1);
    tal_params_declare(g_params, "b", 1, (int64_t[]){3}, g, 1);
    tal_err err = {0};
    FUZZ_CHECK(tal_params_allocate(g_params, TAL_DEV_CPU, &err) == TAL_OK, "%s", err.msg);
    return g_params;
}

static void round_trip(const tal_tensor_set *set) {
    const char *again = fuzz_path("again.safetensors");
    tal_err err = {0};
    tal_status s = tal_safetensors_write(again, set->items, set->count, set->metadata_json, &err);
    if (s != TAL_OK) { /* only a name the format reserves, or a metadata object of non-strings */
        FUZZ_CHECK(s == TAL_EINVAL, "write: %s", err.msg);
        return;
    }
    tal_tensor_set back;
    FUZZ_CHECK(tal_safetensors_read(&back, again, &err) == TAL_OK, "read back: %s", err.msg);
    FUZZ_CHECK(back.count == set->count, "%d tensors back of %d", back.count, set->count);
    for (int i = 0; i < set->count; i++) {
        const tal_named_tensor *a = &set->items[i], *b = tal_tensor_set_find(&back, a->name);
        FUZZ_CHECK(b && tal_tensor_same_shape(a->t, b->t), "tensor '%s'", a->name);
        FUZZ_CHECK(!memcmp(a->t.data, b->t.data, tal_tensor_bytes(a->t)), "'%s' values",
                   a->name);
    }
    tal_tensor_set_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    const char *path = fuzz_path("in.safetensors");
    fuzz_write(path, bytes, size);
    tal_tensor_set set;
    tal_err err = {0};
    tal_safetensors_allow_nonfinite(0);
    tal_status s = tal_safetensors_read(&set, path, &err);
    if (s != TAL_OK) {
        FUZZ_CHECK(set.count == 0 && set.items == NULL, "a set with an error");
        fuzz_check_names(&err, path);
        /* allowed, it reads only if what was refused was a NaN or Inf */
        tal_safetensors_allow_nonfinite(1);
        if (tal_safetensors_read(&set, path, &err) != TAL_OK) return 0;
        FUZZ_CHECK(s == TAL_EFORMAT && tal_tensors_check_finite(set.items, set.count, "", NULL),
                   "refused, then read when non-finite values were allowed: has none");
    }
    round_trip(&set);
    tal_tensor_set_free(&set);
    int unused = 0;
    s = tal_params_load(params(), path, NULL, NULL, 1, &unused, &err);
    if (s != TAL_OK) fuzz_check_names(&err, path);
    tal_safetensors_allow_nonfinite(0);
    return 0;
}
