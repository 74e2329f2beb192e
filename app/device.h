/* app/device.h: where a command computes: "cpu", "cuda" or "cuda:N", given by a `--device`
 * option. The same interface as h/cudaapp's app/device.h (which adds the run config's `device`
 * key, the global option and the precision keys): `re2tal plan` and `re2tal bench backbone`
 * use it through tal_device_option_parse and tal_device_override. */
#ifndef TAL_APP_DEVICE_H
#define TAL_APP_DEVICE_H

#include "nn/nn.h"

typedef struct tal_device_spec {
    tal_device dev;
    int ordinal; /* CUDA device number (0 for "cuda"); 0 on the CPU */
} tal_device_spec;

#define TAL_DEVICE_CHOICES "cpu|cuda|cuda:N"
#define TAL_DEVICE_MAX_ORDINAL 63

/* "cpu" | "cuda" | "cuda:N" (N a whole number in [0, 63]). TAL_EINVAL quoting the text and the
 * choices otherwise. */
tal_status tal_device_spec_parse(tal_device_spec *out, const char *text, tal_err *err);

/* The `--device` option: from then on it is the device this process's commands use.
 * TAL_EINVAL (as tal_device_spec_parse) for a bad text, and nothing changes then. NULL clears
 * it. */
tal_status tal_device_override_set(const char *text, tal_err *err);
const char *tal_device_override(void); /* NULL when no --device was given */

/* Parses a command's own `--device X` at argv[*i] (advancing *i past the value): 1 when it was
 * one (on a usage error printed to stderr as "re2tal CMD: ...", *ok is 0), 0 when argv[*i] is
 * something else. */
int tal_device_option_parse(const char *cmd, int argc, char **argv, int *i, int *ok);

#endif
