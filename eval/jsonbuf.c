/* eval/jsonbuf.c: the report's text buffer: escaping for JSON inside <script> and for HTML,
 * and number formatting without printf on the hot path (millions of numbers per report). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/jsonbuf.h"

void jb_free(jsonbuf *b) {
    free(b->data);
    *b = (jsonbuf){0};
}

static int reserve(jsonbuf *b, size_t n) {
    if (b->failed) return 0;
    if (b->len + n + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void jb_raw(jsonbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void jb_str(jsonbuf *b, const char *s) { jb_raw(b, s, strlen(s)); }

void jb_char(jsonbuf *b, char c) { jb_raw(b, &c, 1); }

/* The \u escape of c when it must not appear as itself inside <script>, else NULL. */
static const char *script_escape(unsigned char c, char *buf) {
    if (c < 0x20 || c == '<' || c == '>' || c == '&') {
        snprintf(buf, 8, "\\u%04x", c);
        return buf;
    }
    return NULL;
}

void jb_json_string(jsonbuf *b, const char *s) {
    char esc[8];
    jb_char(b, '"');
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c ? script_escape(c, esc) : "";
        if (!e) continue;
        jb_raw(b, run, (size_t)(s - run));
        if (!c) break;
        jb_str(b, e);
        run = s + 1;
    }
    jb_char(b, '"');
}

void jb_json_safe(jsonbuf *b, const char *json) {
    char esc[8];
    for (const char *run = json;; json++) {
        unsigned char c = (unsigned char)*json;
        const char *e = c == '<' || c == '>' || c == '&' ? script_escape(c, esc) : c ? NULL : "";
        if (!e) continue;
        jb_raw(b, run, (size_t)(json - run));
        if (!c) break;
        jb_str(b, e);
        run = json + 1;
    }
}

void jb_html(jsonbuf *b, const char *s) {
    for (const char *run = s;; s++) {
        char c = *s;
        const char *e = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;"
                      : c == '"' ? "&quot;" : c == '\'' ? "&#39;" : c ? NULL : "";
        if (!e) continue;
        jb_raw(b, run, (size_t)(s - run));
        if (!c) break;
        jb_str(b, e);
        run = s + 1;
    }
}

void jb_exact(jsonbuf *b, double x) {
    if (!isfinite(x)) {
        jb_str(b, "null");
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    jb_str(b, buf);
}

void jb_long(jsonbuf *b, long x) {
    char buf[24], *p = buf + sizeof buf;
    unsigned long u = x < 0 ? 0UL - (unsigned long)x : (unsigned long)x;
    do *--p = (char)('0' + u % 10); while (u /= 10);
    if (x < 0) *--p = '-';
    jb_raw(b, p, (size_t)(buf + sizeof buf - p));
}

void jb_fixed(jsonbuf *b, double x, int decimals) {
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    if (!isfinite(x)) {
        jb_str(b, "null");
        return;
    }
    if (decimals < 0) decimals = 0;
    if (decimals > 9) decimals = 9;
    double scaled = fabs(x) * pow10[decimals];
    if (scaled >= 9e15) { /* past exact integers: printf knows best */
        char buf[48];
        snprintf(buf, sizeof buf, "%.*f", decimals, x);
        jb_str(b, buf);
        return;
    }
    unsigned long long u = (unsigned long long)llround(scaled);
    int negative = x < 0 && u != 0; /* no "-0" */
    char buf[40], *p = buf + sizeof buf;
    int d = decimals;
    while (d > 0 && u % 10 == 0) u /= 10, d--; /* drop trailing zeros */
    for (int i = 0; i < d; i++) *--p = (char)('0' + u % 10), u /= 10;
    if (d > 0) *--p = '.';
    do *--p = (char)('0' + u % 10); while (u /= 10);
    if (negative) *--p = '-';
    jb_raw(b, p, (size_t)(buf + sizeof buf - p));
}

void jb_sig(jsonbuf *b, double x, int digits) {
    double a = fabs(x);
    if (a == 0 || (isfinite(x) && a >= 1e-4 && a < 1e9)) {
        int decimals = a == 0 ? 0 : digits - 1 - (int)floor(log10(a));
        jb_fixed(b, x, decimals < 0 ? 0 : decimals);
        return;
    }
    if (!isfinite(x)) {
        jb_str(b, "null");
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.*g", digits, x);
    jb_str(b, buf);
}
