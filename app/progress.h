/* app/progress.h: one status line for long work: done/total, rate, ETA, peak memory, and free
 * text (loss, lr). On a terminal it redraws in place; otherwise (logs, CI) it prints a line every
 * few seconds. --quiet silences it. */
#ifndef TAL_APP_PROGRESS_H
#define TAL_APP_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct tal_progress {
    FILE *out;
    const char *label;
    const char *unit;      /* "steps", "videos", ... */
    int64_t total, done;
    double t_start, t_last_draw;
    int quiet, tty, drawn;
} tal_progress;

double tal_now_s(void);                 /* monotonic seconds */
int64_t tal_peak_rss_bytes(void);       /* VmHWM of this process, 0 if unknown */
int64_t tal_current_rss_bytes(void);    /* VmRSS */
/* "1.2 GiB", "340 MiB" into buf. */
const char *tal_format_bytes(int64_t bytes, char *buf, size_t size);
/* "1h02m", "3m05s", "12s" into buf. */
const char *tal_format_duration(double s, char *buf, size_t size);

void tal_progress_start(tal_progress *p, FILE *out, const char *label, const char *unit,
                        int64_t total, int quiet);
/* Sets done and redraws (rate-limited); extra: free text such as "loss 0.512 lr 1e-4". */
void tal_progress_update(tal_progress *p, int64_t done, const char *extra);
/* Prints a whole line without breaking the bar (it is redrawn on the next update). */
void tal_progress_message(tal_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tal_progress_finish(tal_progress *p, const char *extra);

#endif
