/* app/device.c: the --device option (see device.h). */
#include "app/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tal_status tal_device_spec_parse(tal_device_spec *out, const char *text, tal_err *err) {
    tal_device_spec s = {TAL_DEV_CPU, 0};
    if (!strcmp(text, "cpu")) {
        *out = s;
        return TAL_OK;
    }
    if (!strncmp(text, "cuda", 4) && (text[4] == 0 || text[4] == ':')) {
        s.dev = TAL_DEV_CUDA;
        if (text[4] == ':') {
            const char *digits = text + 5;
            size_t n = strspn(digits, "0123456789");
            long v = n ? strtol(digits, NULL, 10) : -1;
            if (n == 0 || n > 2 || digits[n] || v > TAL_DEVICE_MAX_ORDINAL)
                return tal_err_set(err, TAL_EINVAL, "device '%s': expected cuda:N with N a "
                                   "device number from 0 to %d", text, TAL_DEVICE_MAX_ORDINAL);
            s.ordinal = (int)v;
        }
        *out = s;
        return TAL_OK;
    }
    return tal_err_set(err, TAL_EINVAL, "device '%s' is not one of %s", text, TAL_DEVICE_CHOICES);
}

static char g_override[32];
static int g_have_override;

tal_status tal_device_override_set(const char *text, tal_err *err) {
    if (!text) {
        g_have_override = 0;
        return TAL_OK;
    }
    tal_device_spec s;
    tal_status st = tal_device_spec_parse(&s, text, err);
    if (st) return st;
    snprintf(g_override, sizeof g_override, "%s", text);
    g_have_override = 1;
    return TAL_OK;
}

const char *tal_device_override(void) { return g_have_override ? g_override : NULL; }

int tal_device_option_parse(const char *cmd, int argc, char **argv, int *i, int *ok) {
    *ok = 1;
    if (strcmp(argv[*i], "--device") != 0) return 0;
    tal_err err = {0};
    if (*i + 1 >= argc) {
        fprintf(stderr, "re2tal %s: --device needs a value (%s)\n", cmd, TAL_DEVICE_CHOICES);
        *ok = 0;
    } else if (tal_device_override_set(argv[*i + 1], &err) != TAL_OK) {
        fprintf(stderr, "re2tal %s: --device: %s\n", cmd, err.msg);
        *ok = 0;
    }
    *i += 1;
    return 1;
}
