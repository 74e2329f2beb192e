/* app/device.c: the device key and option, and starting the device a run asks for (see
 * device.h). */
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

tal_precision tal_precision_of(const char *precision, int tf32) {
    if (!strcmp(precision, "bf16")) return TAL_PREC_BF16;
    return tf32 ? TAL_PREC_TF32 : TAL_PREC_FP32;
}

tal_status tal_device_activate(const tal_device_spec *spec, tal_precision prec, tal_err *err) {
    if (spec->dev == TAL_DEV_CPU) {
        if (prec == TAL_PREC_BF16)
            return tal_err_set(err, TAL_EINVAL, "train.precision bf16 needs a CUDA device (the "
                               "CPU computes in fp32 only): use --device cuda or "
                               "--set train.precision=fp32");
        tal_precision_set(TAL_PREC_FP32);
        return TAL_OK;
    }
    tal_status st = tal_cuda_select(spec->ordinal, err);
    if (st) return tal_err_prefix(err, "device cuda:%d (use --device cpu to run on the CPU)",
                                  spec->ordinal);
    tal_precision_set(prec);
    return TAL_OK;
}

tal_status tal_device_use(const tal_run_config *rc, tal_device_spec *spec, tal_err *err) {
    tal_status st = tal_device_spec_parse(spec, rc->device, err);
    if (!st) st = tal_device_activate(spec, tal_precision_of(rc->precision, rc->tf32), err);
    return st;
}

size_t tal_device_need_total(const tal_device_need *n) {
    return n->weights + n->optimizer + n->activations + n->data;
}

static double mib(size_t b) { return (double)b / (1 << 20); }

tal_status tal_device_fit_error(const char *device, const tal_device_need *n, size_t free_bytes,
                                size_t total_bytes, tal_err *err) {
    return tal_err_set(err, TAL_ENOMEM,
                       "device %s: out of memory: clips of %d frames at %dx%d, batch %d ask "
                       "%zu bytes (%.1f MiB: weights and gradients %.1f, optimizer %.1f, "
                       "activations %.1f, clip slots %.1f), %zu bytes (%.1f MiB) free of %.1f "
                       "MiB: shorten the clips (data.frames or data.trunc_len), lower data.crop, "
                       "set backbone.chunk_frames, lower data.prefetch, or use --device cpu",
                       device, n->frames, n->crop, n->crop, n->batch, tal_device_need_total(n),
                       mib(tal_device_need_total(n)), mib(n->weights), mib(n->optimizer),
                       mib(n->activations), mib(n->data), free_bytes, mib(free_bytes),
                       mib(total_bytes));
}

tal_status tal_device_check_fit(const char *device, const tal_device_need *n, tal_err *err) {
    tal_device_spec spec;
    tal_status st = tal_device_spec_parse(&spec, device, err);
    if (st || spec.dev == TAL_DEV_CPU) return st;
    size_t free_bytes = 0, total_bytes = 0;
    if ((st = tal_cuda_mem_info(&free_bytes, &total_bytes, err))) return st;
    if (tal_device_need_total(n) <= free_bytes) return TAL_OK;
    return tal_device_fit_error(device, n, free_bytes, total_bytes, err);
}
