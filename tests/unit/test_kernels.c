/* test_kernels.c - the fast layer steps (step.c) against the reference (step_ref.c) on random
 * shapes, odd sizes included, for every integrator, activation and direction; the stored-mode
 * variants that save derivatives (*_save / *_saved); and the narrow path's tile kernels
 * (tile.c), run on partly filled tiles, against the same references. */
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/kernels.h"
#include "hamnet/rng.h"
#include "hn_test.h"
#include "hn_test_real.h"

#ifdef HN_USE_DOUBLE
#define TOL 1e-11
#else
#define TOL 2e-4
#endif



/* The stored-mode kernels that save derivatives: forward outputs as the reference's, the
 * saved values as s / s' of the reference pre-activations, and the backward steps that use them
 * as the reference backward with stored states. */
static void check_saved(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y, const hn_real *Z,
                        const hn_real *G, const hn_real *H, hn_rng *r, const char *what) {
  const int B = s->batch, n = s->width;
  const size_t bn = (size_t)B * n, nn = (size_t)n * n;
  hn_real *work = malloc(HN_STEP_WORK(B, n) * sizeof(hn_real) + 64);
  hn_real *o1 = malloc(bn * sizeof(hn_real)), *o2 = malloc(bn * sizeof(hn_real));
  hn_real *p1 = malloc(bn * sizeof(hn_real)), *p2 = malloc(bn * sizeof(hn_real));
  hn_real *D1 = malloc(bn * sizeof(hn_real)), *D2 = malloc(bn * sizeof(hn_real)), *E = malloc(bn * sizeof(hn_real));

  /* euler: D = s'(Y A^T + b) */
  hn_euler_forward_save(s, K, b, Y, o1, D1, work);
  hn_euler_forward_ref(s, K, b, Y, o2, work);
  for (int i = 0; i < B; i++)
    for (int k = 0; k < n; k++) {
      double u = b[k];
      for (int c = 0; c < n; c++)
        u += (double)K[k * n + c] * Y[(size_t)i * n + c];
      E[(size_t)i * n + k] = hn_act_deriv(s->act, (hn_real)u);
    }
  CHECK(hn_test_maxdiff(o1, o2, bn) < TOL && hn_test_maxdiff(D1, E, bn) < TOL, "euler forward_save %s", what);
  {
    hn_real *g1 = hn_test_copy(G, bn), *g2 = hn_test_copy(G, bn), *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn);
    hn_real *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n);
    hn_euler_backward_saved(s, K, Y, D1, g1, dK1, db1, work);
    hn_euler_backward_ref(s, K, b, Y, g2, dK2, db2, work);
    CHECK(hn_test_maxdiff(g1, g2, bn) < TOL && hn_test_maxdiff(dK1, dK2, nn) < TOL && hn_test_maxdiff(db1, db2, n) < TOL,
          "euler backward_saved %s", what);
    free(g1), free(g2), free(dK1), free(dK2), free(db1), free(db2);
  }

  /* hamiltonian: D1 = s'(Y K + b), D2 = s'(Zout K^T + b) */
  hn_ham_forward_save(s, K, b, Y, Z, o1, p1, D1, D2, work);
  hn_ham_forward_ref(s, K, b, Y, Z, o2, p2, work);
  CHECK(hn_test_maxdiff(o1, o2, bn) < TOL && hn_test_maxdiff(p1, p2, bn) < TOL, "ham forward_save outputs %s", what);
  for (int i = 0; i < B; i++)
    for (int k = 0; k < n; k++) {
      double u = b[k], v = b[k];
      for (int q = 0; q < n; q++) {
        u += (double)K[q * n + k] * Y[(size_t)i * n + q];
        v += (double)K[k * n + q] * p2[(size_t)i * n + q];
      }
      E[(size_t)i * n + k] = hn_act_deriv(s->act, (hn_real)u);
      o2[(size_t)i * n + k] = hn_act_deriv(s->act, (hn_real)v);
    }
  CHECK(hn_test_maxdiff(D1, E, bn) < TOL && hn_test_maxdiff(D2, o2, bn) < TOL, "ham forward_save derivatives %s", what);
  {
    hn_real *gy1 = hn_test_copy(G, bn), *gy2 = hn_test_copy(G, bn), *gz1 = hn_test_copy(H, bn), *gz2 = hn_test_copy(H, bn);
    hn_real *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn), *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n);
    hn_real *y0 = hn_test_copy(Y, bn);
    hn_ham_backward_saved(s, K, Y, p1, D1, D2, gy1, gz1, dK1, db1, work);
    hn_ham_backward_ref(s, K, b, o1, p1, y0, NULL, 0, gy2, gz2, dK2, db2, work);
    CHECK(hn_test_maxdiff(gy1, gy2, bn) < TOL && hn_test_maxdiff(gz1, gz2, bn) < TOL, "ham backward_saved adjoints %s", what);
    CHECK(hn_test_maxdiff(dK1, dK2, nn) < TOL && hn_test_maxdiff(db1, db2, n) < TOL, "ham backward_saved params %s", what);
    free(gy1), free(gy2), free(gz1), free(gz2), free(dK1), free(dK2), free(db1), free(db2), free(y0);
  }

  /* leapfrog: S = s(Y K^T + b) */
  hn_leap_forward_save(s, K, b, Y, Z, o1, D1, work);
  hn_leap_forward_ref(s, K, b, Y, Z, o2, work);
  for (int i = 0; i < B; i++)
    for (int k = 0; k < n; k++) {
      double u = b[k];
      for (int c = 0; c < n; c++)
        u += (double)K[k * n + c] * Y[(size_t)i * n + c];
      E[(size_t)i * n + k] = hn_act(s->act, (hn_real)u);
    }
  CHECK(hn_test_maxdiff(o1, o2, bn) < TOL && hn_test_maxdiff(D1, E, bn) < TOL, "leap forward_save %s", what);
  {
    hn_real *P1 = hn_test_copy(G, bn), *P2 = hn_test_copy(G, bn), *Q1 = hn_test_copy(H, bn), *Q2 = hn_test_copy(H, bn);
    hn_real *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn), *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n);
    hn_leap_backward_saved(s, K, Y, D1, P1, Q1, dK1, db1, work);
    hn_leap_backward_ref(s, K, b, Y, NULL, NULL, P2, Q2, dK2, db2, work);
    CHECK(hn_test_maxdiff(P1, P2, bn) < TOL && hn_test_maxdiff(Q1, Q2, bn) < TOL, "leap backward_saved adjoints %s", what);
    CHECK(hn_test_maxdiff(dK1, dK2, nn) < TOL && hn_test_maxdiff(db1, db2, n) < TOL, "leap backward_saved params %s", what);
    free(P1), free(P2), free(Q1), free(Q2), free(dK1), free(dK2), free(db1), free(db2);
  }
  free(work), free(o1), free(o2), free(p1), free(p2), free(D1), free(D2), free(E);
}

/* ---------------------------------------------------------------------------------------- */
/* tile kernels: B <= HN_TILE samples in a tile; the unused samples hold random states and zero
 * adjoints, and must not change the gradients */

#define T HN_TILE

/* [B][n] -> tile [n][T]; unused samples get `fill` values (finite garbage) */
static void to_tile(const hn_real *X, int B, int n, hn_real *tile, hn_rng *r, double fill) {
  for (int k = 0; k < n; k++)
    for (int t = 0; t < T; t++)
      tile[k * T + t] = t < B ? X[(size_t)t * n + k] : (hn_real)(fill * hn_rng_normal(r));
}

/* max over the B used samples of |tile - X| (scaled as maxdiff) */
static double tile_diff(const hn_real *tile, const hn_real *X, int B, int n) {
  hn_real *tmp = malloc((size_t)B * n * sizeof(hn_real) + sizeof(hn_real));
  for (int t = 0; t < B; t++)
    for (int k = 0; k < n; k++)
      tmp[(size_t)t * n + k] = tile[k * T + t];
  double d = hn_test_maxdiff(tmp, X, (size_t)B * n);
  free(tmp);
  return d;
}

static hn_real *transposed(const hn_real *K, int n) {
  hn_real *Kt = malloc((size_t)n * n * sizeof(hn_real));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      Kt[(size_t)j * n + i] = K[(size_t)i * n + j];
  return Kt;
}

static void check_tile(int B, int n, hn_activation act, hn_rng *r) {
  const size_t bn = (size_t)B * n, nn = (size_t)n * n, tn = (size_t)n * T;
  hn_step s = {.batch = B, .width = n, .act = act, .h = (hn_real)0.3};
  hn_real *K = hn_test_rnd(nn, r, 1.0 / sqrt(n)), *b = hn_test_rnd(n, r, 0.3), *Kt = transposed(K, n);
  hn_real *Y = hn_test_rnd(bn, r, 1), *Z = hn_test_rnd(bn, r, 1), *G = hn_test_rnd(bn, r, 1), *H = hn_test_rnd(bn, r, 1);
  hn_real *rwork = malloc(HN_STEP_WORK(B, n) * sizeof(hn_real) + 64);
  hn_real *twork = malloc(HN_TILE_WORK(n) * sizeof(hn_real));
  for (size_t i = 0; i < HN_TILE_WORK(n); i++) /* garbage the kernels must not depend on */
    twork[i] = (hn_real)(i % 3 == 0 ? NAN : 1e30);
  hn_real *o1 = malloc(bn * sizeof(hn_real)), *o2 = malloc(bn * sizeof(hn_real));
  hn_real *y = malloc(tn * sizeof(hn_real)), *z = malloc(tn * sizeof(hn_real));
  hn_real *gy = malloc(tn * sizeof(hn_real)), *gz = malloc(tn * sizeof(hn_real));
  hn_real *d1 = malloc(tn * sizeof(hn_real)), *d2 = malloc(tn * sizeof(hn_real));
  hn_real *y0 = malloc(tn * sizeof(hn_real)), *z1 = malloc(tn * sizeof(hn_real));
  char what[96];
  snprintf(what, sizeof what, "tile B=%d n=%d %s", B, n, hn_activation_name(act));

  /* hamiltonian forward, with and without saving */
  hn_ham_forward_ref(&s, K, b, Y, Z, o1, o2, rwork);
  for (int save = 0; save <= 1; save++) { /* in place without saving, out of place (stored mode) with */
    to_tile(Y, B, n, y, r, 1);
    to_tile(Z, B, n, z, r, 1);
    hn_real *yo = save ? y0 : y, *zo = save ? z1 : z;
    hn_ham_tile_forward(&s, K, Kt, b, y, z, yo, zo, save ? d1 : NULL, save ? d2 : NULL, twork);
    CHECK(tile_diff(yo, o1, B, n) < TOL && tile_diff(zo, o2, B, n) < TOL, "ham tile forward %s save %d", what, save);
  }
  /* (o1, o2) = one step from (Y, Z) */
  {
    hn_real *gy2 = hn_test_copy(G, bn), *gz2 = hn_test_copy(H, bn), *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn);
    hn_real *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n), *ry0 = hn_test_copy(Y, bn);
    hn_ham_backward_ref(&s, K, b, o1, o2, ry0, NULL, 0, gy2, gz2, dK2, db2, rwork);
    for (int mode = 0; mode <= 1; mode++) { /* 0 reversible, 1 saved */
      hn_real *dK = hn_test_copy(dK1, nn), *db = hn_test_copy(db1, n);
      to_tile(G, B, n, gy, r, 0);
      to_tile(H, B, n, gz, r, 0);
      if (mode == 0) {
        to_tile(o1, B, n, y, r, 1);
        to_tile(o2, B, n, z, r, 1);
        hn_ham_tile_backward(&s, K, Kt, b, y, z, gy, gz, dK, db, twork);
        CHECK(tile_diff(y, Y, B, n) < 10 * TOL && tile_diff(z, Z, B, n) < 10 * TOL, "ham tile inverse %s", what);
      } else {
        to_tile(Y, B, n, y0, r, 1);
        to_tile(o2, B, n, z1, r, 1);
        hn_ham_tile_backward_saved(&s, K, Kt, y0, z1, d1, d2, gy, gz, dK, db, twork);
      }
      CHECK(tile_diff(gy, gy2, B, n) < TOL && tile_diff(gz, gz2, B, n) < TOL, "ham tile backward adjoints %s mode %d",
            what, mode);
      CHECK(hn_test_maxdiff(dK, dK2, nn) < TOL && hn_test_maxdiff(db, db2, n) < TOL, "ham tile backward params %s mode %d", what, mode);
      int clean = 1; /* the unused samples' adjoints stay zero */
      for (int k = 0; k < n; k++)
        for (int t = B; t < T; t++)
          clean = clean && gy[k * T + t] == 0 && gz[k * T + t] == 0;
      CHECK(clean, "ham tile backward: unused samples got adjoints %s mode %d", what, mode);
      free(dK), free(db);
    }
    free(gy2), free(gz2), free(dK1), free(dK2), free(db1), free(db2), free(ry0);
  }

  /* leapfrog: forward from (Y, y_prev = Z); backward with and without recomputing y_{j-1} */
  hn_leap_forward_ref(&s, K, b, Y, Z, o1, rwork);
  for (int save = 0; save <= 1; save++) {
    to_tile(Y, B, n, y, r, 1);
    to_tile(Z, B, n, z, r, 1);
    hn_real *yo = save ? y0 : z; /* over y_{j-1}, or out of place (stored mode) */
    hn_leap_tile_forward(&s, K, Kt, b, y, z, yo, save ? d1 : NULL, twork);
    CHECK(tile_diff(yo, o1, B, n) < TOL, "leap tile forward %s save %d", what, save);
  }
  {
    hn_real *P2 = hn_test_copy(G, bn), *Q2 = hn_test_copy(H, bn), *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn);
    hn_real *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n), *prev = malloc(bn * sizeof(hn_real));
    hn_leap_backward_ref(&s, K, b, Y, o1, prev, P2, Q2, dK2, db2, rwork);
    for (int mode = 0; mode <= 1; mode++) {
      hn_real *dK = hn_test_copy(dK1, nn), *db = hn_test_copy(db1, n);
      to_tile(G, B, n, gy, r, 0);
      to_tile(H, B, n, gz, r, 0);
      to_tile(Y, B, n, y, r, 1);
      if (mode == 0) {
        to_tile(o1, B, n, z, r, 1);
        hn_leap_tile_backward(&s, K, Kt, b, y, z, gy, gz, dK, db, twork);
        CHECK(tile_diff(z, prev, B, n) < TOL && tile_diff(z, Z, B, n) < 10 * TOL, "leap tile inverse %s", what);
      } else {
        hn_leap_tile_backward_saved(&s, K, Kt, y, d1, gy, gz, dK, db, twork);
      }
      CHECK(tile_diff(gy, P2, B, n) < TOL && tile_diff(gz, Q2, B, n) < TOL, "leap tile backward adjoints %s mode %d",
            what, mode);
      CHECK(hn_test_maxdiff(dK, dK2, nn) < TOL && hn_test_maxdiff(db, db2, n) < TOL, "leap tile backward params %s mode %d", what, mode);
      free(dK), free(db);
    }
    free(P2), free(Q2), free(dK1), free(dK2), free(db1), free(db2), free(prev);
  }

  /* the opening / classifier pieces against plain loops (rectangular shapes) */
  {
    const int rows = 1 + (int)hn_rng_below(r, 9), inner = 1 + (int)hn_rng_below(r, 70);
    hn_real *M = hn_test_rnd((size_t)rows * inner, r, 1), *x = hn_test_rnd((size_t)inner * T, r, 1);
    hn_real *out = hn_test_rnd((size_t)rows * T, r, 1), *ref = hn_test_copy(out, (size_t)rows * T);
    hn_tile_matmul(rows, inner, M, inner, x, out, 1);
    for (int i = 0; i < rows; i++)
      for (int t = 0; t < T; t++) {
        double a = ref[i * T + t];
        for (int k = 0; k < inner; k++)
          a += (double)M[(size_t)i * inner + k] * x[(size_t)k * T + t];
        ref[i * T + t] = (hn_real)a;
      }
    CHECK(hn_test_maxdiff(out, ref, (size_t)rows * T) < TOL, "hn_tile_matmul %dx%d", rows, inner);
    hn_real *a = hn_test_rnd((size_t)rows * T, r, 1), *dM = hn_test_rnd((size_t)rows * inner, r, 1), *dv = hn_test_rnd(rows, r, 1);
    hn_real *dMr = hn_test_copy(dM, (size_t)rows * inner), *dvr = hn_test_copy(dv, rows);
    hn_tile_outer(rows, inner, (hn_real)-0.5, a, x, dM, inner, dv, twork);
    for (int i = 0; i < rows; i++) {
      double sv = 0;
      for (int t = 0; t < T; t++)
        sv += a[i * T + t];
      dvr[i] += (hn_real)(-0.5 * sv);
      for (int k = 0; k < inner; k++) {
        double sk = 0;
        for (int t = 0; t < T; t++)
          sk += (double)a[i * T + t] * x[(size_t)k * T + t];
        dMr[(size_t)i * inner + k] += (hn_real)(-0.5 * sk);
      }
    }
    CHECK(hn_test_maxdiff(dM, dMr, (size_t)rows * inner) < TOL && hn_test_maxdiff(dv, dvr, rows) < TOL, "hn_tile_outer %dx%d", rows,
          inner);
    free(M), free(x), free(out), free(ref), free(a), free(dM), free(dv), free(dMr), free(dvr);
  }
  free(K), free(b), free(Kt), free(Y), free(Z), free(G), free(H), free(rwork), free(twork), free(o1), free(o2);
  free(y), free(z), free(gy), free(gz), free(d1), free(d2), free(y0), free(z1);
}

static void check_shape(int B, int n, hn_activation act, hn_rng *r) {
  const size_t bn = (size_t)B * n, nn = (size_t)n * n;
  hn_step s = {.batch = B, .width = n, .act = act, .h = (hn_real)0.3};
  hn_real *K = hn_test_rnd(nn, r, 1.0 / sqrt(n)), *b = hn_test_rnd(n, r, 0.3);
  hn_real *Y = hn_test_rnd(bn, r, 1), *Z = hn_test_rnd(bn, r, 1), *G = hn_test_rnd(bn, r, 1), *H = hn_test_rnd(bn, r, 1);
  hn_real *work = malloc(HN_STEP_WORK(B, n) * sizeof(hn_real) + 64);
  hn_real *o1 = malloc(bn * sizeof(hn_real)), *o2 = malloc(bn * sizeof(hn_real));
  hn_real *p1 = malloc(bn * sizeof(hn_real)), *p2 = malloc(bn * sizeof(hn_real));
  char what[96];
  snprintf(what, sizeof what, "B=%d n=%d %s", B, n, hn_activation_name(act));

  hn_euler_forward(&s, K, b, Y, o1, work);
  hn_euler_forward_ref(&s, K, b, Y, o2, work);
  CHECK(hn_test_maxdiff(o1, o2, bn) < TOL, "euler forward %s: %g", what, hn_test_maxdiff(o1, o2, bn));

  {
    hn_real *g1 = hn_test_copy(G, bn), *g2 = hn_test_copy(G, bn), *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn);
    hn_real *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n);
    hn_euler_backward(&s, K, b, Y, g1, dK1, db1, work);
    hn_euler_backward_ref(&s, K, b, Y, g2, dK2, db2, work);
    CHECK(hn_test_maxdiff(g1, g2, bn) < TOL, "euler backward G %s", what);
    CHECK(hn_test_maxdiff(dK1, dK2, nn) < TOL, "euler backward dK %s", what);
    CHECK(hn_test_maxdiff(db1, db2, n) < TOL, "euler backward db %s", what);
    free(g1), free(g2), free(dK1), free(dK2), free(db1), free(db2);
  }

  hn_ham_forward(&s, K, b, Y, Z, o1, p1, work);
  hn_ham_forward_ref(&s, K, b, Y, Z, o2, p2, work);
  CHECK(hn_test_maxdiff(o1, o2, bn) < TOL && hn_test_maxdiff(p1, p2, bn) < TOL, "ham forward %s", what);

  for (int recompute = 0; recompute <= 1; recompute++) {
    hn_real *gy1 = hn_test_copy(G, bn), *gy2 = hn_test_copy(G, bn), *gz1 = hn_test_copy(H, bn), *gz2 = hn_test_copy(H, bn);
    hn_real *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn), *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n);
    hn_real *y01 = hn_test_copy(Y, bn), *y02 = hn_test_copy(Y, bn), *z01 = calloc(bn, sizeof(hn_real)), *z02 = calloc(bn, sizeof(hn_real));
    /* (o1, p1) = one step from (Y, Z): the inverse must give back (Y, Z) */
    hn_ham_backward(&s, K, b, o1, p1, y01, z01, recompute, gy1, gz1, dK1, db1, work);
    hn_ham_backward_ref(&s, K, b, o1, p1, y02, z02, recompute, gy2, gz2, dK2, db2, work);
    CHECK(hn_test_maxdiff(gy1, gy2, bn) < TOL && hn_test_maxdiff(gz1, gz2, bn) < TOL, "ham backward adjoints %s rec %d", what, recompute);
    CHECK(hn_test_maxdiff(dK1, dK2, nn) < TOL && hn_test_maxdiff(db1, db2, n) < TOL, "ham backward params %s rec %d", what, recompute);
    if (recompute) {
      CHECK(hn_test_maxdiff(y01, Y, bn) < 10 * TOL, "ham inverse y %s: %g", what, hn_test_maxdiff(y01, Y, bn));
      CHECK(hn_test_maxdiff(z01, Z, bn) < 10 * TOL, "ham inverse z %s: %g", what, hn_test_maxdiff(z01, Z, bn));
      CHECK(hn_test_maxdiff(y02, Y, bn) < 10 * TOL, "ham inverse ref y %s", what);
    }
    free(gy1), free(gy2), free(gz1), free(gz2), free(dK1), free(dK2), free(db1), free(db2);
    free(y01), free(y02), free(z01), free(z02);
  }

  hn_leap_forward(&s, K, b, Y, Z, o1, work);
  hn_leap_forward_ref(&s, K, b, Y, Z, o2, work);
  CHECK(hn_test_maxdiff(o1, o2, bn) < TOL, "leap forward %s", what);
  for (int inverse = 0; inverse <= 1; inverse++) {
    hn_real *P1 = hn_test_copy(G, bn), *P2 = hn_test_copy(G, bn), *Q1 = hn_test_copy(H, bn), *Q2 = hn_test_copy(H, bn);
    hn_real *dK1 = hn_test_rnd(nn, r, 1), *dK2 = hn_test_copy(dK1, nn), *db1 = hn_test_rnd(n, r, 1), *db2 = hn_test_copy(db1, n);
    hn_leap_backward(&s, K, b, Y, inverse ? o1 : NULL, inverse ? p1 : NULL, P1, Q1, dK1, db1, work);
    hn_leap_backward_ref(&s, K, b, Y, inverse ? o1 : NULL, inverse ? p2 : NULL, P2, Q2, dK2, db2, work);
    CHECK(hn_test_maxdiff(P1, P2, bn) < TOL && hn_test_maxdiff(Q1, Q2, bn) < TOL, "leap backward adjoints %s", what);
    CHECK(hn_test_maxdiff(dK1, dK2, nn) < TOL && hn_test_maxdiff(db1, db2, n) < TOL, "leap backward params %s", what);
    if (inverse) {
      CHECK(hn_test_maxdiff(p1, Z, bn) < 10 * TOL, "leap inverse %s: %g", what, hn_test_maxdiff(p1, Z, bn));
      CHECK(hn_test_maxdiff(p2, Z, bn) < 10 * TOL, "leap inverse ref %s", what);
    }
    free(P1), free(P2), free(Q1), free(Q2), free(dK1), free(dK2), free(db1), free(db2);
  }
  check_saved(&s, K, b, Y, Z, G, H, r, what);
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
  /* tile kernels: full and partly filled tiles, the widths the narrow path is for and beyond */
  const int tiles[][2] = {{HN_TILE, 1}, {HN_TILE, 8}, {1, 3}, {7, 5}, {HN_TILE, 16}, {19, 33}, {HN_TILE, 64}, {5, 70}};
  for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++)
    for (int act = 0; act < HN_ACT_COUNT; act++)
      check_tile(tiles[i][0], tiles[i][1], (hn_activation)act, &r);
  for (int t = 0; t < 20; t++)
    check_tile(1 + (int)hn_rng_below(&r, HN_TILE), 1 + (int)hn_rng_below(&r, 66), (hn_activation)(t & 1), &r);
  return hn_test_finish("test_kernels");
}
