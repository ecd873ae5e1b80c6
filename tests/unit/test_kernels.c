/* test_kernels.c - the fast layer steps (step.c) against the reference (step_ref.c) on random
 * shapes, odd sizes included, for every integrator, activation and direction. */
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/kernels.h"
#include "hamnet/rng.h"
#include "hn_test.h"

#ifdef HN_USE_DOUBLE
#define TOL 1e-11
#else
#define TOL 2e-4
#endif

static hn_real *rnd(size_t count, hn_rng *r, double scale) {
  hn_real *x = malloc(count * sizeof(hn_real));
  for (size_t i = 0; i < count; i++)
    x[i] = (hn_real)(scale * hn_rng_normal(r));
  return x;
}

static hn_real *copy(const hn_real *x, size_t count) {
  hn_real *y = malloc(count * sizeof(hn_real));
  memcpy(y, x, count * sizeof(hn_real));
  return y;
}

/* max |a - b| / max(1, max |b|) */
static double maxdiff(const hn_real *a, const hn_real *b, size_t count) {
  double d = 0, s = 1;
  for (size_t i = 0; i < count; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    s = fmax(s, fabs((double)b[i]));
  }
  return d / s;
}

static void check_shape(int B, int n, hn_activation act, hn_rng *r) {
  const size_t bn = (size_t)B * n, nn = (size_t)n * n;
  hn_step s = {B, n, act, (hn_real)0.3};
  hn_real *K = rnd(nn, r, 1.0 / sqrt(n)), *b = rnd(n, r, 0.3);
  hn_real *Y = rnd(bn, r, 1), *Z = rnd(bn, r, 1), *G = rnd(bn, r, 1), *H = rnd(bn, r, 1);
  hn_real *work = malloc(HN_STEP_WORK(B, n) * sizeof(hn_real) + 64);
  hn_real *o1 = malloc(bn * sizeof(hn_real)), *o2 = malloc(bn * sizeof(hn_real));
  hn_real *p1 = malloc(bn * sizeof(hn_real)), *p2 = malloc(bn * sizeof(hn_real));
  char what[96];
  snprintf(what, sizeof what, "B=%d n=%d %s", B, n, hn_activation_name(act));

  hn_euler_forward(&s, K, b, Y, o1, work);
  hn_euler_forward_ref(&s, K, b, Y, o2, work);
  CHECK(maxdiff(o1, o2, bn) < TOL, "euler forward %s: %g", what, maxdiff(o1, o2, bn));

  {
    hn_real *g1 = copy(G, bn), *g2 = copy(G, bn), *dK1 = rnd(nn, r, 1), *dK2 = copy(dK1, nn);
    hn_real *db1 = rnd(n, r, 1), *db2 = copy(db1, n);
    hn_euler_backward(&s, K, b, Y, g1, dK1, db1, work);
    hn_euler_backward_ref(&s, K, b, Y, g2, dK2, db2, work);
    CHECK(maxdiff(g1, g2, bn) < TOL, "euler backward G %s", what);
    CHECK(maxdiff(dK1, dK2, nn) < TOL, "euler backward dK %s", what);
    CHECK(maxdiff(db1, db2, n) < TOL, "euler backward db %s", what);
    free(g1), free(g2), free(dK1), free(dK2), free(db1), free(db2);
  }

  hn_ham_forward(&s, K, b, Y, Z, o1, p1, work);
  hn_ham_forward_ref(&s, K, b, Y, Z, o2, p2, work);
  CHECK(maxdiff(o1, o2, bn) < TOL && maxdiff(p1, p2, bn) < TOL, "ham forward %s", what);

  for (int recompute = 0; recompute <= 1; recompute++) {
    hn_real *gy1 = copy(G, bn), *gy2 = copy(G, bn), *gz1 = copy(H, bn), *gz2 = copy(H, bn);
    hn_real *dK1 = rnd(nn, r, 1), *dK2 = copy(dK1, nn), *db1 = rnd(n, r, 1), *db2 = copy(db1, n);
    hn_real *y01 = copy(Y, bn), *y02 = copy(Y, bn), *z01 = calloc(bn, sizeof(hn_real)), *z02 = calloc(bn, sizeof(hn_real));
    /* (o1, p1) = one step from (Y, Z): the inverse must give back (Y, Z) */
    hn_ham_backward(&s, K, b, o1, p1, y01, z01, recompute, gy1, gz1, dK1, db1, work);
    hn_ham_backward_ref(&s, K, b, o1, p1, y02, z02, recompute, gy2, gz2, dK2, db2, work);
    CHECK(maxdiff(gy1, gy2, bn) < TOL && maxdiff(gz1, gz2, bn) < TOL, "ham backward adjoints %s rec %d", what, recompute);
    CHECK(maxdiff(dK1, dK2, nn) < TOL && maxdiff(db1, db2, n) < TOL, "ham backward params %s rec %d", what, recompute);
    if (recompute) {
      CHECK(maxdiff(y01, Y, bn) < 10 * TOL, "ham inverse y %s: %g", what, maxdiff(y01, Y, bn));
      CHECK(maxdiff(z01, Z, bn) < 10 * TOL, "ham inverse z %s: %g", what, maxdiff(z01, Z, bn));
      CHECK(maxdiff(y02, Y, bn) < 10 * TOL, "ham inverse ref y %s", what);
    }
    free(gy1), free(gy2), free(gz1), free(gz2), free(dK1), free(dK2), free(db1), free(db2);
    free(y01), free(y02), free(z01), free(z02);
  }

  hn_leap_forward(&s, K, b, Y, Z, o1, work);
  hn_leap_forward_ref(&s, K, b, Y, Z, o2, work);
  CHECK(maxdiff(o1, o2, bn) < TOL, "leap forward %s", what);
  for (int inverse = 0; inverse <= 1; inverse++) {
    hn_real *P1 = copy(G, bn), *P2 = copy(G, bn), *Q1 = copy(H, bn), *Q2 = copy(H, bn);
    hn_real *dK1 = rnd(nn, r, 1), *dK2 = copy(dK1, nn), *db1 = rnd(n, r, 1), *db2 = copy(db1, n);
    hn_leap_backward(&s, K, b, Y, inverse ? o1 : NULL, inverse ? p1 : NULL, P1, Q1, dK1, db1, work);
    hn_leap_backward_ref(&s, K, b, Y, inverse ? o1 : NULL, inverse ? p2 : NULL, P2, Q2, dK2, db2, work);
    CHECK(maxdiff(P1, P2, bn) < TOL && maxdiff(Q1, Q2, bn) < TOL, "leap backward adjoints %s", what);
    CHECK(maxdiff(dK1, dK2, nn) < TOL && maxdiff(db1, db2, n) < TOL, "leap backward params %s", what);
    if (inverse) {
      CHECK(maxdiff(p1, Z, bn) < 10 * TOL, "leap inverse %s: %g", what, maxdiff(p1, Z, bn));
      CHECK(maxdiff(p2, Z, bn) < 10 * TOL, "leap inverse ref %s", what);
    }
    free(P1), free(P2), free(Q1), free(Q2), free(dK1), free(dK2), free(db1), free(db2);
  }
  free(K), free(b), free(Y), free(Z), free(G), free(H), free(work), free(o1), free(o2), free(p1), free(p2);
}

int main(void) {
  hn_rng r;
  hn_rng_init(&r, 7, HN_RNG_TEST, 0, 0);
  const int shapes[][2] = {{1, 1}, {1, 7}, {3, 2}, {5, 8}, {17, 13}, {64, 64}, {33, 100}, {257, 31}, {128, 129}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int act = 0; act < HN_ACT_COUNT; act++)
      check_shape(shapes[i][0], shapes[i][1], (hn_activation)act, &r);
  for (int t = 0; t < 20; t++) /* random shapes */
    check_shape(1 + (int)hn_rng_below(&r, 70), 1 + (int)hn_rng_below(&r, 40), (hn_activation)(t & 1), &r);
  return hn_test_finish("test_kernels");
}
