/* data/subset.c: subset names ("training", "validation", "testing") and their aliases. */
#include <string.h>

#include "data/data.h"

const char *tal_subset_name(tal_subset s) {
    switch (s) {
    case TAL_SUBSET_TRAINING: return "training";
    case TAL_SUBSET_VALIDATION: return "validation";
    case TAL_SUBSET_TESTING: return "testing";
    default: return "unknown";
    }
}

tal_status tal_subset_parse(tal_subset *out, const char *name, tal_err *err) {
    static const struct {
        const char *name;
        tal_subset s;
    } k_names[] = {{"training", TAL_SUBSET_TRAINING},   {"train", TAL_SUBSET_TRAINING},
                   {"validation", TAL_SUBSET_VALIDATION}, {"val", TAL_SUBSET_VALIDATION},
                   {"testing", TAL_SUBSET_TESTING},     {"test", TAL_SUBSET_TESTING}};
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0]; i++) {
        if (!strcmp(name, k_names[i].name)) {
            *out = k_names[i].s;
            return TAL_OK;
        }
    }
    return tal_err_set(err, TAL_EINVAL,
                       "unknown subset '%s' (expected training, validation, testing, or train, "
                       "val, test)",
                       name);
}
