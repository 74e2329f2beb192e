/* eval/jsonbuf.h: private to eval/: a growing text buffer for the HTML report, with JSON
 * strings escaped so that they are safe inside an HTML <script> element, and fast number
 * formatting (the report writes millions of numbers). */
#ifndef TAL_EVAL_JSONBUF_H
#define TAL_EVAL_JSONBUF_H

#include <stddef.h>

typedef struct jsonbuf {
    char *data; /* owned; NUL-terminated while not failed */
    size_t len, cap;
    int failed; /* out of memory: later appends do nothing */
} jsonbuf;

void jb_free(jsonbuf *b);
void jb_raw(jsonbuf *b, const char *s, size_t n);
void jb_str(jsonbuf *b, const char *s); /* the text itself */
void jb_char(jsonbuf *b, char c);
/* A JSON string: quotes, \" \\ and control characters escaped, and < > & as \u003c \u003e
 * \u0026 so that no input ("</script>", "<!--") can end or change the <script> element. */
void jb_json_string(jsonbuf *b, const char *s);
/* Copies a JSON text with < > & escaped as above (they only occur inside its strings). */
void jb_json_safe(jsonbuf *b, const char *json);
/* Text for an HTML element or attribute: & < > " ' escaped. */
void jb_html(jsonbuf *b, const char *s);
/* Shortest decimal that reads back as the same double (null for NaN and infinities). */
void jb_exact(jsonbuf *b, double x);
/* x rounded to `decimals` (0..9) places, trailing zeros dropped ("12.5", "3", "-0.25"). */
void jb_fixed(jsonbuf *b, double x, int decimals);
/* About `digits` significant digits (1..9): fixed notation when it fits, else %g. */
void jb_sig(jsonbuf *b, double x, int digits);
void jb_long(jsonbuf *b, long x);

#endif
