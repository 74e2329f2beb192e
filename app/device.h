/* app/device.h: where a run computes and how: the run config's `device` key ("cpu", "cuda",
 * "cuda:N"), the `--device` option that overrides it (global, and on train / infer / extract /
 * demo / bench), and the precision keys `train.precision` (fp32 | bf16) and `train.tf32`. */
#ifndef TAL_APP_DEVICE_H
#define TAL_APP_DEVICE_H

#include "app/run_config.h"
#include "nn/nn.h"

typedef struct tal_device_spec {
    tal_device dev;
    int ordinal;      /* CUDA device number (0 for "cuda"); 0 on the CPU */
} tal_device_spec;

#define TAL_DEVICE_CHOICES "cpu|cuda|cuda:N"
#define TAL_DEVICE_MAX_ORDINAL 63

/* "cpu" | "cuda" | "cuda:N" (N a whole number in [0, 63]). TAL_EINVAL quoting the text and the
 * choices otherwise. */
tal_status tal_device_spec_parse(tal_device_spec *out, const char *text, tal_err *err);

/* The `--device` option: from then on it replaces the `device` key of every run config this
 * process reads (tal_run_config_read). TAL_EINVAL (as tal_device_spec_parse) for a bad text, and
 * nothing changes then. NULL clears it. */
tal_status tal_device_override_set(const char *text, tal_err *err);
const char *tal_device_override(void); /* NULL when no --device was given */

/* Parses a command's own `--device X` at argv[*i] (advancing *i past the value): 1 when it was
 * one (0 usage error printed to stderr as "re2tal CMD: ...", then *ok is 0), 0 when argv[*i] is
 * something else. */
int tal_device_option_parse(const char *cmd, int argc, char **argv, int *i, int *ok);

/* The precision mode a config's `train.precision` and `train.tf32` ask for: bf16, else tf32
 * when train.tf32 is 1, else fp32. */
tal_precision tal_precision_of(const char *precision, int tf32);

/* Makes the device of spec current: for CUDA selects it (TAL_EDEVICE naming the device and the
 * count when it is absent, with a hint to use --device cpu), and sets the process's precision
 * mode. TAL_EINVAL for bf16 on the CPU (the CPU computes in fp32 only). */
tal_status tal_device_activate(const tal_device_spec *spec, tal_precision prec, tal_err *err);

/* What tal_model_create does first: parses rc's `device` into *spec and activates it with
 * rc's precision keys (the errors of tal_device_activate). */
tal_status tal_device_use(const tal_run_config *rc, tal_device_spec *spec, tal_err *err);

/* What a run asks of a device's memory, for the clip shape it was planned at. */
typedef struct tal_device_need {
    int frames, crop, batch;      /* the clip; batch: clips through the model at once */
    size_t weights;               /* parameters and their gradients */
    size_t optimizer;             /* AdamW moments, the EMA, the gradient stash */
    size_t activations;           /* backbone consts + kept + scratch, head arenas, features */
    size_t data;                  /* clip slots on the device (data.prefetch) */
} tal_device_need;

size_t tal_device_need_total(const tal_device_need *n);
/* TAL_ENOMEM naming the device, the clip length and size, the batch, the bytes asked (and what
 * for) and the bytes free, with the ways to need less. */
tal_status tal_device_fit_error(const char *device, const tal_device_need *n, size_t free_bytes,
                                size_t total_bytes, tal_err *err);
/* Asks the device what is free (tal_cuda_mem_info) and refuses with tal_device_fit_error when
 * the need is larger: a run that cannot fit stops before it allocates, never aborts half-way.
 * TAL_OK on the CPU. */
tal_status tal_device_check_fit(const char *device, const tal_device_need *n, tal_err *err);

#endif
