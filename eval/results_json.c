/* eval/results_json.c: a single-pass reader for ActivityNet results JSON ({"results": {video:
 * [{"label", "score", "segment"}]}}), straight into the detection table: no DOM, so a
 * million detections cost one pass over the text and their 40 bytes each (cJSON's tree took
 * ~10x the time and memory). Strict JSON (RFC 8259); errors give line and column, or the item. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/internal.h"

typedef struct jp {
    const char *start, *p, *end;
    const char *path;
    tal_err *err;
} jp;

static tal_status syntax(jp *j) {
    int line = 1, col = 1;
    for (const char *q = j->start; q < j->p && q < j->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return tal_err_set(j->err, TAL_EFORMAT, "%s: malformed JSON at line %d, column %d", j->path,
                       line, col);
}

static void ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int peek(jp *j) {
    ws(j);
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* A string into buf (UTF-8, NUL-terminated; longer strings are an error); buf NULL: checked
 * and skipped. */
static tal_status string(jp *j, char *buf, size_t cap) {
    if (peek(j) != '"') return syntax(j);
    j->p++;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) return syntax(j);
        unsigned cp = c;
        int raw = 1;
        if (c == '\\') {
            if (j->p + 1 >= j->end) return syntax(j);
            raw = 0;
            char e = j->p[1];
            j->p += 2;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (j->end - j->p < 4 || !hex4(j->p, &cp)) return syntax(j);
                j->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* surrogate pair */
                    unsigned lo;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                        !hex4(j->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return syntax(j);
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return syntax(j);
                }
                break;
            default: j->p -= 1; return syntax(j);
            }
        } else {
            j->p++;
        }
        if (!buf) continue;
        if (n + 5 >= cap)
            return tal_err_set(j->err, TAL_EFORMAT, "%s: a string longer than %zu bytes", j->path,
                               cap - 5);
        if (raw || cp < 0x80) {
            buf[n++] = (char)cp;
        } else if (cp < 0x800) {
            buf[n++] = (char)(0xC0 | (cp >> 6));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            buf[n++] = (char)(0xE0 | (cp >> 12));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            buf[n++] = (char)(0xF0 | (cp >> 18));
            buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (j->p >= j->end) return syntax(j);
    j->p++;
    if (buf) buf[n] = 0;
    return TAL_OK;
}

/* A JSON number (grammar checked), converted with strtod. */
static tal_status number(jp *j, double *out) {
    ws(j);
    const char *s = j->p, *q = s;
    if (q < j->end && *q == '-') q++;
    if (q >= j->end || *q < '0' || *q > '9') return syntax(j);
    if (*q == '0') q++;
    else while (q < j->end && *q >= '0' && *q <= '9') q++;
    if (q < j->end && *q == '.') {
        q++;
        if (q >= j->end || *q < '0' || *q > '9') { j->p = q; return syntax(j); }
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) q++;
        if (q >= j->end || *q < '0' || *q > '9') { j->p = q; return syntax(j); }
        while (q < j->end && *q >= '0' && *q <= '9') q++;
    }
    char buf[64];
    size_t len = (size_t)(q - s);
    if (len >= sizeof buf) { /* absurdly long: let strtod read it in place (q ends it) */
        *out = strtod(s, NULL);
    } else {
        memcpy(buf, s, len);
        buf[len] = 0;
        *out = strtod(buf, NULL);
    }
    j->p = q;
    return TAL_OK;
}

static tal_status skip_value(jp *j, int depth) {
    if (depth > 256) return tal_err_set(j->err, TAL_EFORMAT, "%s: JSON nested too deeply", j->path);
    int c = peek(j);
    double x;
    tal_status st;
    switch (c) {
    case '{':
        j->p++;
        if (peek(j) == '}') { j->p++; return TAL_OK; }
        for (;;) {
            if ((st = string(j, NULL, 0))) return st;
            if (peek(j) != ':') return syntax(j);
            j->p++;
            if ((st = skip_value(j, depth + 1))) return st;
            c = peek(j);
            j->p++;
            if (c == '}') return TAL_OK;
            if (c != ',') { j->p--; return syntax(j); }
        }
    case '[':
        j->p++;
        if (peek(j) == ']') { j->p++; return TAL_OK; }
        for (;;) {
            if ((st = skip_value(j, depth + 1))) return st;
            c = peek(j);
            j->p++;
            if (c == ']') return TAL_OK;
            if (c != ',') { j->p--; return syntax(j); }
        }
    case '"':
        return string(j, NULL, 0);
    case 't': case 'f': case 'n': {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = strlen(w);
        if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return syntax(j);
        j->p += n;
        return TAL_OK;
    }
    default:
        return number(j, &x);
    }
}

/* Describes the value at the cursor for a message without consuming it. */
static const char *describe_here(jp *j, char *buf, size_t cap) {
    int c = peek(j);
    if (c == '{') return "an object";
    if (c == '[') return "an array";
    size_t n = 0;
    const char *q = j->p;
    while (q < j->end && n + 1 < cap && n < 40 && *q != ',' && *q != '}' && *q != ']' && *q != '\n')
        buf[n++] = *q++;
    buf[n] = 0;
    return buf;
}

/* A segment end: a number or a string holding one (as float() accepts). */
static int seg_value(jp *j, double *out) {
    int c = peek(j);
    if (c == '"') {
        char buf[128], *e;
        if (string(j, buf, sizeof buf)) return -1;
        errno = 0;
        double x = strtod(buf, &e);
        while (*e == ' ' || *e == '\t') e++;
        if (!buf[0] || *e || errno == ERANGE || !isfinite(x)) return 0;
        *out = x;
        return 1;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (number(j, out)) return -1;
        return isfinite(*out);
    }
    return 0;
}

static tal_status detection(jp *j, tal_eval_dets *d, const char *video, int video_id, int i,
                            char *label) {
    char what[64];
    if (peek(j) != '{')
        return tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s[%d]: %s (expected an object)",
                           j->path, video, i, describe_here(j, what, sizeof what));
    j->p++;
    int has_label = 0, has_score = 0, has_seg = 0;
    double score = 0, t0 = 0, t1 = 0;
    tal_status st;
    if (peek(j) == '}') {
        j->p++;
    } else {
        for (;;) {
            char key[256];
            if ((st = string(j, key, sizeof key))) return st;
            if (peek(j) != ':') return syntax(j);
            j->p++;
            if (!strcmp(key, "label")) {
                if (peek(j) != '"')
                    return tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s[%d].label: %s (expected "
                                       "a string)", j->path, video, i,
                                       describe_here(j, what, sizeof what));
                if ((st = string(j, label, 1024))) return st;
                has_label = 1;
            } else if (!strcmp(key, "score")) {
                int c = peek(j);
                if (!(c == '-' || (c >= '0' && c <= '9')))
                    return tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s[%d].score: %s (expected "
                                       "a finite number)", j->path, video, i,
                                       describe_here(j, what, sizeof what));
                const char *at = j->p;
                if ((st = number(j, &score))) return st;
                if (!isfinite(score)) {
                    j->p = at;
                    return tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s[%d].score: %s (expected "
                                       "a finite number)", j->path, video, i,
                                       describe_here(j, what, sizeof what));
                }
                has_score = 1;
            } else if (!strcmp(key, "segment")) {
                int ok = peek(j) == '[';
                if (ok) {
                    j->p++;
                    int r0 = seg_value(j, &t0);
                    if (r0 < 0) return j->err->code;
                    ok = r0 == 1 && peek(j) == ',';
                    if (ok) {
                        j->p++;
                        int r1 = seg_value(j, &t1);
                        if (r1 < 0) return j->err->code;
                        ok = r1 == 1 && peek(j) == ']';
                        if (ok) j->p++;
                    }
                }
                if (!ok)
                    return tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s[%d].segment: expected "
                                       "[start, end] as two finite numbers", j->path, video, i);
                has_seg = 1;
            } else if ((st = skip_value(j, 2))) {
                return st;
            }
            int c = peek(j);
            j->p++;
            if (c == '}') break;
            if (c != ',') {
                j->p--;
                return syntax(j);
            }
        }
    }
    if (!has_label || !has_score || !has_seg)
        return tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s[%d].%s: missing", j->path, video, i,
                           !has_label ? "label" : !has_score ? "score" : "segment");
    return dets_push(d, video_id, label, t0, t1, score, j->err); /* all finite here */
}

static tal_status results(jp *j, tal_eval_dets *d) {
    char what[64];
    if (peek(j) != '{')
        return tal_err_set(j->err, TAL_EFORMAT, "%s: \"results\" is %s (expected an object)", j->path,
                           describe_here(j, what, sizeof what));
    j->p++;
    if (peek(j) == '}') {
        j->p++;
        return TAL_OK;
    }
    strtab seen = {0};
    char *video = malloc(1024), *label = malloc(1024);
    tal_status st = TAL_OK;
    if (!video || !label) {
        st = tal_err_set(j->err, TAL_ENOMEM, "%s: out of memory", j->path);
        goto done;
    }
    for (;;) {
        if ((st = string(j, video, 1024))) goto done;
        int n0 = seen.n;
        if (strtab_intern(&seen, video) < 0) {
            st = tal_err_set(j->err, TAL_ENOMEM, "%s: out of memory", j->path);
            goto done;
        }
        if (seen.n == n0) {
            st = tal_err_set(j->err, TAL_EFORMAT, "%s: results: video id \"%s\" appears twice",
                             j->path, video);
            goto done;
        }
        int video_id = strtab_intern(&d->videos, video);
        if (video_id < 0) {
            st = tal_err_set(j->err, TAL_ENOMEM, "%s: out of memory", j->path);
            goto done;
        }
        if (peek(j) != ':') {
            st = syntax(j);
            goto done;
        }
        j->p++;
        if (peek(j) != '[') {
            st = tal_err_set(j->err, TAL_EFORMAT, "%s: results.%s: %s (expected an array)", j->path,
                             video, describe_here(j, what, sizeof what));
            goto done;
        }
        j->p++;
        if (peek(j) == ']') {
            j->p++;
        } else {
            for (int i = 0;; i++) {
                if ((st = detection(j, d, video, video_id, i, label))) goto done;
                int c = peek(j);
                j->p++;
                if (c == ']') break;
                if (c != ',') {
                    j->p--;
                    st = syntax(j);
                    goto done;
                }
            }
        }
        int c = peek(j);
        j->p++;
        if (c == '}') break;
        if (c != ',') {
            j->p--;
            st = syntax(j);
            goto done;
        }
    }
done:
    strtab_free(&seen);
    free(video);
    free(label);
    return st;
}

tal_status tal_eval_results_json_read(tal_eval_dets *d, const char *path, const char *text,
                                      size_t size, tal_err *err) {
    jp j = {text, text, text + size, path, err};
    if (peek(&j) != '{') {
        if (peek(&j) == '[')
            return tal_err_set(err, TAL_EFORMAT, "%s: no \"results\" object (top level is an array)",
                               path);
        return syntax(&j);
    }
    j.p++;
    int found = 0;
    tal_status st;
    if (peek(&j) == '}') {
        j.p++;
    } else {
        for (;;) {
            char key[4096];
            if ((st = string(&j, key, sizeof key))) return st;
            if (peek(&j) != ':') return syntax(&j);
            j.p++;
            if (!strcmp(key, "results")) {
                if (found)
                    return tal_err_set(err, TAL_EFORMAT, "%s: \"results\" appears twice", path);
                found = 1;
                if ((st = results(&j, d))) return st;
            } else if ((st = skip_value(&j, 1))) {
                return st;
            }
            int c = peek(&j);
            j.p++;
            if (c == '}') break;
            if (c != ',') {
                j.p--;
                return syntax(&j);
            }
        }
    }
    if (peek(&j) != -1) return syntax(&j);
    if (!found)
        return tal_err_set(err, TAL_EFORMAT, "%s: no \"results\" object (expected ActivityNet-style "
                           "detections: {\"results\": {video: [{label, score, segment}]}})", path);
    return TAL_OK;
}
