/* hn_test_real.h - helpers for the unit tests that compare hn_real arrays (fast kernels against
 * their references): random arrays, copies, and the scaled maximum difference they are judged by.
 * Test code: allocation failures are not handled. */
#ifndef HN_TEST_REAL_H
#define HN_TEST_REAL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/real.h"
#include "hamnet/rng.h"

/* count values scale * N(0, 1) from r (malloc'ed; free them). */
static inline hn_real *hn_test_rnd(size_t count, hn_rng *r, double scale) {
  hn_real *x = malloc(count * sizeof(hn_real));
  for (size_t i = 0; i < count; i++)
    x[i] = (hn_real)(scale * hn_rng_normal(r));
  return x;
}

/* A malloc'ed copy of x[count]. */
static inline hn_real *hn_test_copy(const hn_real *x, size_t count) {
  hn_real *y = malloc(count * sizeof(hn_real));
  memcpy(y, x, count * sizeof(hn_real));
  return y;
}

/* max |a - b| / max(1, max |b|): b is the reference. */
static inline double hn_test_maxdiff(const hn_real *a, const hn_real *b, size_t count) {
  double d = 0, s = 1;
  for (size_t i = 0; i < count; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    s = fmax(s, fabs((double)b[i]));
  }
  return d / s;
}

#endif
