/* tests/test_eval_npsort.c: eval/'s port of numpy's default argsort gives numpy 1.24.2's exact
 * order on arrays full of ties, NaN and -0.0 (fixtures/eval_npsort_cases.txt, written by
 * `bench/eval_numpy_ref.py --write-npsort-cases`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/npsort.h"
#include "testlib.h"

Test(eval_npsort, matches_numpy_1_24) {
    FILE *f = fopen(FIXTURES "/eval_npsort_cases.txt", "r");
    cr_assert(f, "cannot open the npsort fixture");
    static char line[1 << 20];
    int cases = 0;
    long max_n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *p = line, *end;
        long n = strtol(p, &end, 10);
        cr_assert(end != p && n > 0, "bad line %d", cases);
        p = end;
        double *v = malloc(sizeof *v * (size_t)n);
        long *want = malloc(sizeof *want * (size_t)n), *got = malloc(sizeof *got * (size_t)n);
        for (long i = 0; i < n; i++) {
            v[i] = strtod(p, &end);
            cr_assert(end != p, "case %d: value %ld", cases, i);
            p = end;
        }
        p = strchr(p, ';');
        cr_assert(p, "case %d: no ';'", cases);
        p++;
        for (long i = 0; i < n; i++) {
            want[i] = strtol(p, &end, 10);
            cr_assert(end != p, "case %d: index %ld", cases, i);
            p = end;
        }
        np_argsort_f64(v, got, n);
        for (long i = 0; i < n; i++)
            cr_assert_eq(got[i], want[i], "case %d (n=%ld): position %ld: got %ld, numpy %ld", cases,
                         n, i, got[i], want[i]);
        free(v);
        free(want);
        free(got);
        cases++;
        if (n > max_n) max_n = n;
    }
    fclose(f);
    cr_assert_geq(cases, 30, "only %d cases read", cases);
    cr_assert_geq(max_n, 1000);
}

/* A stable sort would keep equal keys in index order; numpy's introsort does not once a run
 * has more than 16 items: the test would be vacuous if the fixture had no such case. */
Test(eval_npsort, differs_from_stable_on_big_ties) {
    double v[40];
    for (int i = 0; i < 40; i++) v[i] = (double)(i % 2);
    long idx[40];
    np_argsort_f64(v, idx, 40);
    int stable = 1;
    for (int i = 0; i < 20; i++) stable &= idx[i] == 2 * i;
    cr_assert(!stable, "40 items with ties came out in stable order");
    for (int i = 1; i < 40; i++) cr_assert_leq(v[idx[i - 1]], v[idx[i]]);
}
