/* eval/npsort.c: numpy 1.24's float64 argsort(kind='quicksort'), operation for operation (see
 * npsort.h): the same pivot choice, partition scan, stack order and cut-offs, so ties come out
 * in the same order as numpy's. */
#include "eval/npsort.h"

/* numpy's DOUBLE_LT: NaN sorts after everything. */
static int lt(double a, double b) { return a < b || (b != b && a == a); }

static int msb(long n) {
    int d = 0;
    while (n >>= 1) d++;
    return d;
}

static void swap(long *a, long *b) {
    long t = *a;
    *a = *b;
    *b = t;
}

/* Moves `tmp` down the 1-based heap a[1..n] from slot i, as numpy's aheapsort does. */
static void sift_down(const double *v, long *a, long i, long n, long tmp) {
    for (long j = i << 1; j <= n;) {
        if (j < n && lt(v[a[j]], v[a[j + 1]])) j += 1;
        if (!lt(v[tmp], v[a[j]])) break;
        a[i] = a[j];
        i = j;
        j += j;
    }
    a[i] = tmp;
}

static void aheapsort(const double *v, long *tosort, long n) {
    long *a = tosort - 1; /* 1-based heap */
    for (long l = n >> 1; l > 0; --l) sift_down(v, a, l, n, a[l]);
    for (; n > 1;) {
        long tmp = a[n];
        a[n] = a[1];
        n -= 1;
        sift_down(v, a, 1, n, tmp);
    }
}

#define QS_STACK 128
#define SMALL_QUICKSORT 15

void np_argsort_f64(const double *v, long *idx, long n) {
    for (long i = 0; i < n; i++) idx[i] = i;
    if (n < 2) return;
    long *pl = idx, *pr = idx + n - 1;
    long *stack[QS_STACK], **sptr = stack;
    int depth[QS_STACK], *psdepth = depth;
    int cdepth = msb(n) * 2;
    long *pm, *pi, *pj, *pk, vi;
    double vp;
    for (;;) {
        if (cdepth < 0) {
            aheapsort(v, pl, pr - pl + 1);
            goto stack_pop;
        }
        while ((pr - pl) > SMALL_QUICKSORT) {
            pm = pl + ((pr - pl) >> 1);
            if (lt(v[*pm], v[*pl])) swap(pm, pl);
            if (lt(v[*pr], v[*pm])) swap(pr, pm);
            if (lt(v[*pm], v[*pl])) swap(pm, pl);
            vp = v[*pm];
            pi = pl;
            pj = pr - 1;
            swap(pm, pj);
            for (;;) {
                do ++pi;
                while (lt(v[*pi], vp));
                do --pj;
                while (lt(vp, v[*pj]));
                if (pi >= pj) break;
                swap(pi, pj);
            }
            pk = pr - 1;
            swap(pi, pk);
            /* the larger part goes on the stack */
            if (pi - pl < pr - pi) {
                *sptr++ = pi + 1;
                *sptr++ = pr;
                pr = pi - 1;
            } else {
                *sptr++ = pl;
                *sptr++ = pi - 1;
                pl = pi + 1;
            }
            *psdepth++ = --cdepth;
        }
        for (pi = pl + 1; pi <= pr; ++pi) {
            vi = *pi;
            vp = v[vi];
            pj = pi;
            pk = pi - 1;
            while (pj > pl && lt(vp, v[*pk])) *pj-- = *pk--;
            *pj = vi;
        }
    stack_pop:
        if (sptr == stack) break;
        pr = *(--sptr);
        pl = *(--sptr);
        cdepth = *(--psdepth);
    }
}
