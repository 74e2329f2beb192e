/* tests/testlib.c: fixture loading, tolerant comparison and finite differences for tests. */
#include "testlib.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void fixture_load(fixture *fx, const char *name) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "%s/%s.safetensors", FIXTURES, name);
    tal_err err = {0};
    /* reference tensors are no weights: masks of -inf and inf / NaN cases are wanted there */
    int allowed = tal_safetensors_nonfinite_allowed();
    tal_safetensors_allow_nonfinite(1);
    tal_status rc = tal_safetensors_read(&fx->set, fx->path, &err);
    tal_safetensors_allow_nonfinite(allowed);
    cr_assert_eq(rc, TAL_OK, "fixture %s: %s (regenerate with tests/make_fixtures.py)", fx->path,
                 err.msg);
}

int fixture_has(const fixture *fx, const char *tensor_name) {
    return tal_tensor_set_find(&fx->set, tensor_name) != NULL;
}

tal_tensor fixture_get(const fixture *fx, const char *tensor_name) {
    const tal_named_tensor *t = tal_tensor_set_find(&fx->set, tensor_name);
    cr_assert_not_null(t, "fixture %s has no tensor '%s'", fx->path, tensor_name);
    return t->t;
}

float fixture_scalar(const fixture *fx, const char *tensor_name) {
    tal_tensor t = fixture_get(fx, tensor_name);
    cr_assert_eq(tal_tensor_numel(t), 1, "fixture %s: '%s' is not a scalar", fx->path, tensor_name);
    return t.data[0];
}

void fixture_free(fixture *fx) { tal_tensor_set_free(&fx->set); }

/* How far got is past the tolerance (> 0: out of it). Non-finite expected values are exact:
 * an infinity is matched only by the same infinity and NaN only by NaN, because the plain
 * formula would turn into inf - inf = NaN and let any value through. */
static double tolerance_excess(double g, double w, double atol, double rtol) {
    if (isnan(w) || isnan(g)) return isnan(w) && isnan(g) ? 0 : INFINITY;
    if (isinf(w) || isinf(g)) return g == w ? 0 : INFINITY;
    return fabs(g - w) - (atol + rtol * fabs(w));
}

/* "[i, j, k]" of a flat row-major index, for the failure message. */
static const char *index_str(tal_tensor t, int64_t flat, char *buf, size_t size) {
    int64_t idx[TAL_MAX_DIMS];
    for (int d = t.ndim - 1; d >= 0; d--) {
        idx[d] = t.shape[d] ? flat % t.shape[d] : 0;
        flat = t.shape[d] ? flat / t.shape[d] : 0;
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t.ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)idx[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

test_closeness test_compare(tal_tensor got, tal_tensor want, double atol, double rtol) {
    test_closeness c = {.same_shape = tal_tensor_same_shape(got, want), .worst = -1};
    if (!c.same_shape) return c;
    double worst_excess = 0;
    for (int64_t i = 0; i < tal_tensor_numel(got); i++) {
        double g = got.data[i], w = want.data[i], e = fabs(g - w);
        double excess = tolerance_excess(g, w, atol, rtol);
        if (e > c.max_abs_err) c.max_abs_err = e;
        if (excess > 0) {
            c.n_bad++;
            if (c.worst < 0 || excess > worst_excess) c.worst = i, worst_excess = excess;
        }
    }
    return c;
}

void expect_close_impl(const char *what, tal_tensor got, tal_tensor want, double atol, double rtol,
                       const char *file, int line) {
    cr_assert(atol >= 0 && rtol >= 0 && isfinite(atol) && isfinite(rtol),
              "%s:%d: %s: tolerances must be finite and >= 0 (atol %g, rtol %g)", file, line,
              what, atol, rtol);
    cr_assert(got.device == TAL_DEV_CPU && want.device == TAL_DEV_CPU,
              "%s:%d: %s: compare host copies (got device %d, expected device %d)", file, line,
              what, (int)got.device, (int)want.device);
    test_closeness c = test_compare(got, want, atol, rtol);
    char sg[96], sw[96], si[160];
    cr_assert(c.same_shape, "%s:%d: %s: shape %s vs expected %s", file, line, what,
              tal_tensor_shape_str(got, sg, 96), tal_tensor_shape_str(want, sw, 96));
    if (c.worst >= 0)
        cr_assert_fail("%s:%d: %s: %lld of %lld elements out of tolerance (atol %g, rtol %g); "
                       "worst at %s (flat %lld): got %.9g, expected %.9g; max abs error %.3g",
                       file, line, what, (long long)c.n_bad, (long long)tal_tensor_numel(got),
                       atol, rtol, index_str(got, c.worst, si, sizeof si), (long long)c.worst,
                       got.data[c.worst], want.data[c.worst], c.max_abs_err);
}

double test_reorder_atol(int64_t n_products) {
    return FLT_EPSILON * sqrt((double)n_products) * (double)n_products;
}

#define MAX_TEST_ALLOCS 4096
static void *g_allocs[MAX_TEST_ALLOCS];
static int g_n_allocs;

tal_tensor test_tensor(int ndim, const int64_t *shape) {
    tal_tensor t = tal_tensor_of(NULL, ndim, shape);
    size_t n = (size_t)tal_tensor_numel(t);
    t.data = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(t.data);
    cr_assert(g_n_allocs < MAX_TEST_ALLOCS, "too many test tensors");
    g_allocs[g_n_allocs++] = t.data;
    return t;
}

tal_tensor test_tensor_like(tal_tensor t) { return test_tensor(t.ndim, t.shape); }

tal_tensor test_clone(tal_tensor t) {
    tal_tensor c = test_tensor_like(t);
    memcpy(c.data, t.data, tal_tensor_bytes(t));
    return c;
}

void test_fill_uniform(tal_tensor t, uint64_t seed) {
    tal_rng_key key = {seed, 0, 0};
    for (int64_t i = 0; i < tal_tensor_numel(t); i++)
        t.data[i] = 2.0f * tal_rng_uniform(key, (uint64_t)i) - 1.0f;
}

void test_free_all(void) {
    for (int i = 0; i < g_n_allocs; i++) free(g_allocs[i]);
    g_n_allocs = 0;
}

void test_numeric_grad(tal_tensor grad, tal_tensor x, test_scalar_fn f, void *ctx, double h) {
    for (int64_t i = 0; i < tal_tensor_numel(x); i++) {
        float keep = x.data[i];
        x.data[i] = (float)(keep + h);
        double up = f(ctx);
        x.data[i] = (float)(keep - h);
        double down = f(ctx);
        x.data[i] = keep;
        /* divide by the step actually taken in float, not the nominal h */
        double step = (double)(float)(keep + h) - (double)(float)(keep - h);
        grad.data[i] = (float)((up - down) / step);
    }
}

double test_dot(tal_tensor y, tal_tensor w) {
    double s = 0;
    for (int64_t i = 0; i < tal_tensor_numel(y); i++) s += (double)y.data[i] * w.data[i];
    return s;
}

const char *test_tmp_path_in(const char *dir, const char *name) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

void test_require_binary(void) {
#ifdef RE2TAL_BIN
    cr_assert(access(RE2TAL_BIN, X_OK) == 0,
              "%s is not built or not executable: the CLI tests depend on the re2tal target",
              RE2TAL_BIN);
#else
    cr_assert_fail("this build has no re2tal binary (RE2TAL_VIDEO=OFF)");
#endif
}

int test_sh_in(const char *dir, const char *fmt, ...) {
    char cmd[8192], full[9300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "cd '%s' && %s", dir, cmd);
    int rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

char *test_slurp_in(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
    fclose(f);
    return s;
}

const char *test_write_tmp_in(const char *dir, const char *name, const char *text) {
    static char paths[8][1024];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

void test_flip_bits(const char *from, const char *to, int n_bits, uint64_t seed) {
    FILE *f = fopen(from, "rb");
    cr_assert(f, "cannot read %s", from);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert(b && fread(b, 1, (size_t)n, f) == (size_t)n, "cannot read %s", from);
    fclose(f);
    tal_rng_key key = {seed, 0, 0};
    for (int i = 0; i < n_bits && n >= 4; i++)
        b[n / 4 + (long)(tal_rng_u64(key, 2 * (uint64_t)i) % (uint64_t)(n / 2))] ^=
            (unsigned char)(1u << (tal_rng_u64(key, 2 * (uint64_t)i + 1) % 8));
    f = fopen(to, "wb");
    cr_assert(f && fwrite(b, 1, (size_t)n, f) == (size_t)n, "cannot write %s", to);
    fclose(f);
    free(b);
}
