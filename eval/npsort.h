/* eval/npsort.h: private to eval/: numpy 1.24's default argsort (kind='quicksort', an
 * introsort: median-of-3 quicksort, insertion sort for partitions of <= 16, heapsort past
 * 2*floor(log2 n) levels) for float64, NaN last. The official ANETdetection orders detections
 * by score and GT by tIoU with `argsort()[::-1]`, so reproducing its numbers when values tie
 * (equal scores; several GT at NaN or equal tIoU in a video with more than 16 GT of a class)
 * needs this exact order, not just any sort (spec 1.4). */
#ifndef TAL_EVAL_NPSORT_H
#define TAL_EVAL_NPSORT_H

/* idx[0..n) receives np.argsort(v) (ascending, NaN last); reverse it for argsort()[::-1]. */
void np_argsort_f64(const double *v, long *idx, long n);

#endif
