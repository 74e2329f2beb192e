/* nn/err.c: error values that carry a message, and the always-on assertion for bugs. */
#include "nn.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

tal_status tal_err_set(tal_err *err, tal_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

tal_status tal_err_prefix(tal_err *err, const char *fmt, ...) {
    if (!err) return TAL_EINVAL;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

const char *tal_status_name(tal_status s) {
    switch (s) {
    case TAL_OK: return "ok";
    case TAL_EIO: return "i/o error";
    case TAL_EFORMAT: return "bad format";
    case TAL_EINVAL: return "invalid argument";
    case TAL_ENOMEM: return "out of memory";
    case TAL_EDEVICE: return "device error";
    }
    return "unknown error";
}

void tal_assert_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    fprintf(stderr, "re2tal: internal error at %s:%d: assertion failed: %s", file, line, cond);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    abort();
}
