/* hn_test.h - minimal assertion macros for hamnet's unit tests.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and goes on; the test's main returns
 * hn_test_failures() so CTest sees a non-zero exit when anything failed. CHECK_CLOSE compares
 * numbers with a relative tolerance and prints both values. */
#ifndef HN_TEST_H
#define HN_TEST_H

#include <math.h>
#include <stdio.h>

static int hn_test_failed = 0;
static int hn_test_checked = 0;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    hn_test_checked++;                                                     \
    if (!(cond)) {                                                         \
      hn_test_failed++;                                                    \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
    }                                                                      \
  } while (0)

#define CHECK_OK(expr)                                                                   \
  do {                                                                                   \
    int hn_test_status_ = (expr);                                                        \
    CHECK(hn_test_status_ == 0, "status %d: %s", hn_test_status_, hn_errmsg());          \
  } while (0)

#define CHECK_CLOSE(a, b, rtol)                                                          \
  do {                                                                                   \
    double hn_a_ = (double)(a), hn_b_ = (double)(b);                                     \
    double hn_scale_ = fmax(fabs(hn_a_), fabs(hn_b_));                                   \
    CHECK(fabs(hn_a_ - hn_b_) <= (rtol) * (hn_scale_ > 1e-300 ? hn_scale_ : 1.0),        \
          "%s = %.17g vs %s = %.17g (rtol %g)", #a, hn_a_, #b, hn_b_, (double)(rtol));    \
  } while (0)

static inline int hn_test_finish(const char *name) {
  printf("%s: %d checks, %d failed\n", name, hn_test_checked, hn_test_failed);
  return hn_test_failed ? 1 : 0;
}

#endif
