/* app/progress.c: the progress line (see progress.h). */
#include "app/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double tal_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    int64_t kib = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) {
            kib = strtoll(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

int64_t tal_peak_rss_bytes(void) { return status_kib("VmHWM:") * 1024; }
int64_t tal_current_rss_bytes(void) { return status_kib("VmRSS:") * 1024; }

const char *tal_format_bytes(int64_t bytes, char *buf, size_t size) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

const char *tal_format_duration(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, size, "--");
    } else if (s >= 3600) {
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    } else if (s >= 60) {
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
    } else {
        snprintf(buf, size, "%.0fs", s);
    }
    return buf;
}

void tal_progress_start(tal_progress *p, FILE *out, const char *label, const char *unit,
                        int64_t total, int quiet) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->quiet = quiet;
    p->tty = isatty(fileno(out));
    p->t_start = tal_now_s();
}

static void draw(tal_progress *p, const char *extra, int final) {
    double elapsed = tal_now_s() - p->t_start;
    double rate = elapsed > 0 ? p->done / elapsed : 0;
    double eta = rate > 0 && p->total > 0 ? (p->total - p->done) / rate : -1;
    char bar[32] = "", mem[32], t_eta[32], t_el[32];
    if (p->total > 0) {
        int width = 20, fill = (int)(width * (double)p->done / p->total);
        if (fill > width) fill = width;
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
    }
    tal_format_bytes(tal_peak_rss_bytes(), mem, sizeof mem);
    if (p->total > 0)
        fprintf(p->out, "%s%s [%s] %lld/%lld %s  %.2f %s/s  %s %s  peak %s%s%s%s", p->tty ? "\r" : "",
                p->label, bar, (long long)p->done, (long long)p->total, p->unit,
                rate, p->unit, final ? "took" : "ETA",
                final ? tal_format_duration(elapsed, t_el, sizeof t_el)
                      : tal_format_duration(eta, t_eta, sizeof t_eta),
                mem, extra ? "  " : "", extra ? extra : "", p->tty ? "\033[K" : "\n");
    else
        fprintf(p->out, "%s%s %lld %s  %.2f %s/s  %s  peak %s%s%s%s", p->tty ? "\r" : "", p->label,
                (long long)p->done, p->unit, rate, p->unit,
                tal_format_duration(elapsed, t_el, sizeof t_el), mem, extra ? "  " : "",
                extra ? extra : "", p->tty ? "\033[K" : "\n");
    fflush(p->out);
    p->drawn = 1;
    p->t_last_draw = tal_now_s();
}

void tal_progress_update(tal_progress *p, int64_t done, const char *extra) {
    p->done = done;
    if (p->quiet) return;
    double now = tal_now_s(), every = p->tty ? 0.2 : 10.0;
    if (p->drawn && now - p->t_last_draw < every) return;
    draw(p, extra, 0);
}

void tal_progress_message(tal_progress *p, const char *fmt, ...) {
    if (p->tty && p->drawn && !p->quiet) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    p->drawn = 0;
    fflush(p->out);
}

void tal_progress_finish(tal_progress *p, const char *extra) {
    if (p->quiet) return;
    draw(p, extra, 1);
    if (p->tty) fputc('\n', p->out);
}
