/* test_conv.c - the fast 3x3 convolutions (conv.c) against the frozen references (conv_ref.c)
 * on tiles cut from larger batches (row stride > tile width), odd map sizes and 1-pixel maps
 * included; the adjoint identity <K x, y> = <x, K^T y> for the flipped-kernel product and for
 * the reference; the weight gradient as the derivative of the bilinear form <G, K X>; and the
 * layer steps of every integrator (conv_step.c) against the same equations written with the
 * reference convolutions, their backward steps by recomputation against the stored-state ones,
 * and the recomputed states against the forward pass's inputs. */
#include <stdlib.h>
#include <string.h>

#include "hamnet/conv.h"
#include "hamnet/kernels.h"
#include "hamnet/rng.h"
#include "hn_test.h"
#include "hn_test_real.h"

#ifdef HN_USE_DOUBLE
#define TOL 1e-12
#define DOT_TOL 1e-13
#define WINO_TOL 1e-11
#else
#define TOL 3e-5
#define DOT_TOL 3e-6
#define WINO_TOL 1e-4 /* F(4x4, 3x3)'s transforms have coefficients up to 8 and 1/24 (winograd.c) */
#endif


static double dot(const hn_real *a, const hn_real *b, size_t count) {
  double s = 0;
  for (size_t i = 0; i < count; i++)
    s += (double)a[i] * b[i];
  return s;
}

/* A tile of nb samples starting at sample b0 of a batch of B samples. */
typedef struct {
  hn_conv_tile t;
  int B, b0, ld;
} tile_case;

static tile_case make_case(int H, int W, int B, int b0, int nb) {
  tile_case c = {{H, W, nb}, B, b0, B * H * W};
  return c;
}

/* Batch tensor [ch][B][H W] and the pointer to the tile inside it. */
static hn_real *tile_of(const tile_case *c, hn_real *T) { return T + (size_t)c->b0 * c->t.H * c->t.W; }

static void test_primitives(void) {
  hn_rng r;
  hn_rng_init(&r, 7, HN_RNG_TEST, 0, 0);
  const int shapes[][5] = {/* H, W, B, b0, nb */ {5, 7, 3, 1, 2}, {1, 1, 4, 0, 4}, {4, 1, 2, 1, 1},
                           {6, 6, 5, 0, 5},  {3, 8, 6, 2, 3}, {7, 7, 2, 0, 1}};
  const int chans[][2] = {{1, 3}, {3, 2}, {4, 4}, {5, 8}};
  double worst_f = 0, worst_a = 0, worst_g = 0, worst_dot = 0;
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    for (size_t ci = 0; ci < sizeof chans / sizeof chans[0]; ci++) {
      tile_case c = make_case(shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], shapes[si][4]);
      const int cin = chans[ci][0], cout = chans[ci][1], n = hn_conv_cols(&c.t);
      const size_t nx = (size_t)cin * c.ld, ny = (size_t)cout * c.ld, nk = (size_t)cout * cin * 9;
      hn_real *K = hn_test_rnd(nk, &r, 1), *Kt = malloc(nk * sizeof(hn_real)), *X = hn_test_rnd(nx, &r, 1), *Y = hn_test_rnd(ny, &r, 1);
      hn_real *col = malloc((size_t)9 * (cin > cout ? cin : cout) * n * sizeof(hn_real));
      hn_conv3_flip(cout, cin, K, Kt);
      for (int beta = 0; beta <= 1; beta++) {
        /* forward */
        hn_real *Y1 = hn_test_copy(Y, ny), *Y2 = hn_test_copy(Y, ny);
        hn_conv3_forward(&c.t, cout, cin, K, tile_of(&c, X), c.ld, (hn_real)beta, tile_of(&c, Y1), c.ld, col);
        hn_conv3_forward_ref(&c.t, cout, cin, K, tile_of(&c, X), c.ld, (hn_real)beta, tile_of(&c, Y2), c.ld);
        worst_f = fmax(worst_f, hn_test_maxdiff(Y1, Y2, ny)); /* samples outside the tile untouched by both */
        CHECK(hn_test_maxdiff(Y1, Y2, ny) < TOL, "forward %dx%d nb %d cin %d cout %d beta %d", c.t.H, c.t.W, c.t.nb, cin,
              cout, beta);
        /* adjoint: the forward product with the flipped kernel */
        hn_real *X1 = hn_test_copy(X, nx), *X2 = hn_test_copy(X, nx);
        hn_conv3_forward(&c.t, cin, cout, Kt, tile_of(&c, Y), c.ld, (hn_real)beta, tile_of(&c, X1), c.ld, col);
        hn_conv3_adjoint_ref(&c.t, cout, cin, K, tile_of(&c, Y), c.ld, (hn_real)beta, tile_of(&c, X2), c.ld);
        worst_a = fmax(worst_a, hn_test_maxdiff(X1, X2, nx));
        CHECK(hn_test_maxdiff(X1, X2, nx) < TOL, "adjoint %dx%d nb %d cin %d cout %d beta %d", c.t.H, c.t.W, c.t.nb, cin,
              cout, beta);
        free(Y1), free(Y2), free(X1), free(X2);
      }
      /* weight gradient */
      hn_real *dK1 = hn_test_rnd(nk, &r, 1), *dK2 = hn_test_copy(dK1, nk);
      hn_im2col3(&c.t, cin, tile_of(&c, X), c.ld, col);
      hn_conv3_grad(&c.t, cout, cin, (hn_real)0.7, tile_of(&c, Y), c.ld, col, dK1);
      hn_conv3_grad_ref(&c.t, cout, cin, (hn_real)0.7, tile_of(&c, Y), c.ld, tile_of(&c, X), c.ld, dK2);
      worst_g = fmax(worst_g, hn_test_maxdiff(dK1, dK2, nk));
      CHECK(hn_test_maxdiff(dK1, dK2, nk) < TOL, "weight gradient %dx%d cin %d cout %d", c.t.H, c.t.W, cin, cout);

      /* <K x, y> = <x, K^T y> on the tile (fast and reference), and <G, K X> = <dK(G, X), K> */
      hn_real *KX = calloc(ny, sizeof(hn_real)), *KtY = calloc(nx, sizeof(hn_real)), *KtYr = calloc(nx, sizeof(hn_real));
      hn_real *KXr = calloc(ny, sizeof(hn_real)), *G = calloc(nk, sizeof(hn_real));
      hn_conv3_forward(&c.t, cout, cin, K, tile_of(&c, X), c.ld, 0, tile_of(&c, KX), c.ld, col);
      hn_conv3_forward(&c.t, cin, cout, Kt, tile_of(&c, Y), c.ld, 0, tile_of(&c, KtY), c.ld, col);
      hn_conv3_forward_ref(&c.t, cout, cin, K, tile_of(&c, X), c.ld, 0, tile_of(&c, KXr), c.ld);
      hn_conv3_adjoint_ref(&c.t, cout, cin, K, tile_of(&c, Y), c.ld, 0, tile_of(&c, KtYr), c.ld);
      /* only the tile's samples: zero the others of X and Y in the products */
      double a = 0, b = 0, ar = 0, br = 0;
      for (int ch = 0; ch < cout; ch++) {
        a += dot(tile_of(&c, KX) + (size_t)ch * c.ld, tile_of(&c, Y) + (size_t)ch * c.ld, (size_t)n);
        ar += dot(tile_of(&c, KXr) + (size_t)ch * c.ld, tile_of(&c, Y) + (size_t)ch * c.ld, (size_t)n);
      }
      for (int ch = 0; ch < cin; ch++) {
        b += dot(tile_of(&c, X) + (size_t)ch * c.ld, tile_of(&c, KtY) + (size_t)ch * c.ld, (size_t)n);
        br += dot(tile_of(&c, X) + (size_t)ch * c.ld, tile_of(&c, KtYr) + (size_t)ch * c.ld, (size_t)n);
      }
      hn_im2col3(&c.t, cin, tile_of(&c, X), c.ld, col);
      hn_conv3_grad(&c.t, cout, cin, 1, tile_of(&c, Y), c.ld, col, G);
      double g = dot(G, K, nk);
      double scale = fmax(1, fabs(a));
      worst_dot = fmax(worst_dot, fmax(fabs(a - b), fmax(fabs(ar - br), fabs(g - a))) / scale);
      CHECK(fabs(a - b) <= DOT_TOL * scale * sqrt((double)n * cin), "<Kx,y> %.17g vs <x,K^T y> %.17g", a, b);
      CHECK(fabs(ar - br) <= DOT_TOL * scale * sqrt((double)n * cin), "reference <Kx,y> %.17g vs %.17g", ar, br);
      CHECK(fabs(g - a) <= DOT_TOL * scale * sqrt((double)n * cin), "<dK, K> %.17g vs <Y, K X> %.17g", g, a);
      free(KX), free(KtY), free(KtYr), free(KXr), free(G);
      free(K), free(Kt), free(X), free(Y), free(col), free(dK1), free(dK2);
    }
  printf("conv primitives: forward %.2e, adjoint %.2e, weight gradient %.2e (max relative difference to the "
         "reference); adjoint identity %.2e\n", worst_f, worst_a, worst_g, worst_dot);
}

/* Winograd F(4x4, 3x3) against the references: K x, K^T y (the flipped kernel), the weight
 * gradient; maps smaller than a tile, not multiples of 4, and wider than one chunk of tiles. */
static void test_winograd(void) {
  hn_rng r;
  hn_rng_init(&r, 9, HN_RNG_TEST, 0, 0);
  const int shapes[][5] = {/* H, W, B, b0, nb */ {5, 7, 3, 1, 2}, {1, 1, 4, 0, 4},  {4, 1, 2, 1, 1},   {6, 6, 5, 0, 5},
                           {3, 8, 6, 2, 3},   {7, 7, 4, 1, 3},  {28, 28, 3, 1, 2}, {9, 13, 2, 0, 2}, {5, 150, 3, 2, 1}};
  const int chans[][2] = {{1, 3}, {3, 2}, {4, 4}, {16, 16}};
  double worst_f = 0, worst_a = 0, worst_g = 0;
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    for (size_t ci = 0; ci < sizeof chans / sizeof chans[0]; ci++) {
      tile_case c = make_case(shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], shapes[si][4]);
      const int cin = chans[ci][0], cout = chans[ci][1];
      const size_t nx = (size_t)cin * c.ld, ny = (size_t)cout * c.ld, nk = (size_t)cout * cin * 9;
      hn_real *K = hn_test_rnd(nk, &r, 1), *Kt = malloc(nk * sizeof(hn_real)), *X = hn_test_rnd(nx, &r, 1),
              *Y = hn_test_rnd(ny, &r, 1);
      hn_real *U = malloc(hn_wino_kernel_size(cout, cin) * sizeof(hn_real)),
              *Ut = malloc(hn_wino_kernel_size(cin, cout) * sizeof(hn_real));
      const int cmax = cin > cout ? cin : cout;
      hn_real *V = malloc(hn_wino_input_size(&c.t, cmax) * sizeof(hn_real)),
              *sc = malloc(hn_wino_scratch(&c.t, cmax, cmax) * sizeof(hn_real));
      hn_conv3_flip(cout, cin, K, Kt);
      hn_wino_kernel(cout, cin, K, U);
      hn_wino_kernel(cin, cout, Kt, Ut);
      /* scale of the results: the tolerances are relative to the largest reference value */
      for (int beta = 0; beta <= 1; beta++) {
        hn_real *Y1 = hn_test_copy(Y, ny), *Y2 = hn_test_copy(Y, ny), *X1 = hn_test_copy(X, nx), *X2 = hn_test_copy(X, nx);
        hn_wino_input(&c.t, cin, tile_of(&c, X), c.ld, V, sc);
        hn_wino_apply(&c.t, cout, cin, U, V, (hn_real)beta, tile_of(&c, Y1), c.ld, sc);
        hn_conv3_forward_ref(&c.t, cout, cin, K, tile_of(&c, X), c.ld, (hn_real)beta, tile_of(&c, Y2), c.ld);
        const double ef = hn_test_maxdiff(Y1, Y2, ny);
        hn_wino_input(&c.t, cout, tile_of(&c, Y), c.ld, V, sc);
        hn_wino_apply(&c.t, cin, cout, Ut, V, (hn_real)beta, tile_of(&c, X1), c.ld, sc);
        hn_conv3_adjoint_ref(&c.t, cout, cin, K, tile_of(&c, Y), c.ld, (hn_real)beta, tile_of(&c, X2), c.ld);
        const double ea = hn_test_maxdiff(X1, X2, nx);
        worst_f = fmax(worst_f, ef), worst_a = fmax(worst_a, ea);
        CHECK(ef < WINO_TOL, "winograd forward %dx%d nb %d cin %d cout %d beta %d: %.3g", c.t.H, c.t.W, c.t.nb, cin,
              cout, beta, ef);
        CHECK(ea < WINO_TOL, "winograd adjoint %dx%d nb %d cin %d cout %d beta %d: %.3g", c.t.H, c.t.W, c.t.nb, cin,
              cout, beta, ea);
        free(Y1), free(Y2), free(X1), free(X2);
      }
      hn_real *dK1 = hn_test_rnd(nk, &r, 1), *dK2 = hn_test_copy(dK1, nk);
      hn_wino_input(&c.t, cin, tile_of(&c, X), c.ld, V, sc);
      hn_wino_grad(&c.t, cout, cin, (hn_real)0.7, tile_of(&c, Y), c.ld, V, dK1, sc);
      hn_conv3_grad_ref(&c.t, cout, cin, (hn_real)0.7, tile_of(&c, Y), c.ld, tile_of(&c, X), c.ld, dK2);
      const double eg = hn_test_maxdiff(dK1, dK2, nk);
      worst_g = fmax(worst_g, eg);
      CHECK(eg < WINO_TOL, "winograd weight gradient %dx%d nb %d cin %d cout %d: %.3g", c.t.H, c.t.W, c.t.nb, cin,
            cout, eg);
      free(K), free(Kt), free(X), free(Y), free(U), free(Ut), free(V), free(sc), free(dK1), free(dK2);
    }
  printf("winograd F(4x4,3x3): forward %.2e, adjoint %.2e, weight gradient %.2e (max difference to the reference, "
         "relative to its largest value)\n", worst_f, worst_a, worst_g);
}

/* ---------------------------------------------------------------------------------------- */
/* layer steps against the same equations written with the reference convolutions */

typedef struct {
  hn_conv_step s;
  tile_case c;
  size_t nt; /* elements of a batch tensor [c][B][H W] */
} step_case;

static void ref_bias_act(const step_case *k, const hn_real *u, const hn_real *b, hn_real *out) {
  for (int r = 0; r < k->s.c; r++)
    for (int q = 0; q < hn_conv_cols(&k->c.t); q++) {
      size_t i = (size_t)r * k->c.ld + (size_t)k->c.b0 * k->c.t.H * k->c.t.W + q;
      out[i] = hn_act(k->s.act, u[i] + b[r]);
    }
}

/* The step's kernels: K, Kt and (Winograd) their transforms, allocated into *U. */
static hn_conv_kernels step_kernels(int c, const hn_real *K, const hn_real *Kt, int winograd, hn_real **U) {
  hn_conv_kernels k = {K, Kt, NULL, NULL};
  *U = NULL;
  if (winograd) {
    const size_t n = hn_wino_kernel_size(c, c);
    *U = malloc(2 * n * sizeof(hn_real));
    hn_wino_kernel(c, c, K, *U);
    hn_wino_kernel(c, c, Kt, *U + n);
    k.U = *U;
    k.Ut = *U + n;
  }
  return k;
}

static void test_steps(int winograd) {
  hn_rng r;
  hn_rng_init(&r, 8, HN_RNG_TEST, 0, 0);
  const double TOL_STEP = winograd ? WINO_TOL : TOL;
  double worst = 0, worst_rev = 0, worst_recon = 0;
  for (int act = 0; act < HN_ACT_COUNT; act++)
    for (int shape = 0; shape < 3; shape++) {
      step_case k;
      k.c = shape == 0 ? make_case(5, 6, 3, 1, 2) : shape == 1 ? make_case(3, 3, 2, 0, 2) : make_case(9, 10, 3, 1, 2);
      k.s = (hn_conv_step){k.c.t, shape == 0 ? 3 : 4, (hn_activation)act, (hn_real)0.3, 0};
      const int c = k.s.c, n = hn_conv_cols(&k.c.t);
      k.nt = (size_t)c * k.c.ld;
      const size_t nk = (size_t)c * c * 9, nt = k.nt;
      hn_real *work = malloc(hn_conv_step_work(c, &k.c.t) * sizeof(hn_real));
      hn_real *K = hn_test_rnd(nk, &r, 0.5), *Kt = malloc(nk * sizeof(hn_real)), *b = hn_test_rnd((size_t)c, &r, 0.3);
      hn_conv3_flip(c, c, K, Kt);
      hn_real *Ubuf;
      const hn_conv_kernels kk = step_kernels(c, K, Kt, winograd, &Ubuf);
      hn_real *y = hn_test_rnd(nt, &r, 1), *z = hn_test_rnd(nt, &r, 1), *t = calloc(nt, sizeof(hn_real)), *u = calloc(nt, sizeof(hn_real));
      const hn_conv_tile *T = &k.c.t;
      hn_real *(*at)(const tile_case *, hn_real *) = tile_of;
      const int ld = k.c.ld;
      const hn_real h = k.s.h;

      /* hamiltonian */
      hn_real *yo = hn_test_copy(y, nt), *zo = hn_test_copy(z, nt), *D1 = calloc(nt, sizeof(hn_real)), *D2 = calloc(nt, sizeof(hn_real));
      hn_conv_ham_forward(&k.s, &kk, b, at(&k.c, y), at(&k.c, z), at(&k.c, yo), at(&k.c, zo), at(&k.c, D1),
                          at(&k.c, D2), ld, work);
      hn_real *ry = hn_test_copy(y, nt), *rz = hn_test_copy(z, nt);
      hn_conv3_adjoint_ref(T, c, c, K, at(&k.c, y), ld, 0, at(&k.c, u), ld);
      ref_bias_act(&k, u, b, t);
      for (int ch = 0; ch < c; ch++)
        for (int q = 0; q < n; q++)
          at(&k.c, rz)[(size_t)ch * ld + q] -= h * at(&k.c, t)[(size_t)ch * ld + q];
      hn_conv3_forward_ref(T, c, c, K, at(&k.c, rz), ld, 0, at(&k.c, u), ld);
      ref_bias_act(&k, u, b, t);
      for (int ch = 0; ch < c; ch++)
        for (int q = 0; q < n; q++)
          at(&k.c, ry)[(size_t)ch * ld + q] += h * at(&k.c, t)[(size_t)ch * ld + q];
      double e = fmax(hn_test_maxdiff(yo, ry, nt), hn_test_maxdiff(zo, rz, nt));
      worst = fmax(worst, e);
      CHECK(e < TOL_STEP, "ham forward %s shape %d: %.3g", hn_activation_name((hn_activation)act), shape, e);
      /* backward: reversible (recomputing y, z from yo, zo) against stored */
      {
        hn_real *gy1 = hn_test_rnd(nt, &r, 1), *gz1 = hn_test_rnd(nt, &r, 1), *gy2 = hn_test_copy(gy1, nt), *gz2 = hn_test_copy(gz1, nt);
        hn_real *dK1 = calloc(nk, sizeof(hn_real)), *dK2 = calloc(nk, sizeof(hn_real));
        hn_real *db1 = calloc((size_t)c, sizeof(hn_real)), *db2 = calloc((size_t)c, sizeof(hn_real));
        hn_real *yr = hn_test_copy(yo, nt), *zr = hn_test_copy(zo, nt);
        hn_conv_ham_backward(&k.s, &kk, b, at(&k.c, yr), at(&k.c, zr), at(&k.c, gy1), at(&k.c, gz1), dK1, db1, ld,
                             work);
        hn_conv_ham_backward_saved(&k.s, &kk, at(&k.c, y), at(&k.c, zo), at(&k.c, D1), at(&k.c, D2), at(&k.c, gy2),
                                   at(&k.c, gz2), dK2, db2, ld, work);
        double er = fmax(fmax(hn_test_maxdiff(gy1, gy2, nt), hn_test_maxdiff(gz1, gz2, nt)),
                         fmax(hn_test_maxdiff(dK1, dK2, nk), hn_test_maxdiff(db1, db2, (size_t)c)));
        double ec = fmax(hn_test_maxdiff(yr, y, nt), hn_test_maxdiff(zr, z, nt));
        worst_rev = fmax(worst_rev, er);
        worst_recon = fmax(worst_recon, ec);
        CHECK(er < TOL_STEP, "ham backward reversible vs stored: %.3g", er);
        CHECK(ec < TOL_STEP, "ham backward recomputes (y, z): %.3g", ec);
        free(gy1), free(gz1), free(gy2), free(gz2), free(dK1), free(dK2), free(db1), free(db2), free(yr), free(zr);
      }

      /* euler (resnet: A = K; antisym: A = K - Kt, At = -A, gamma) */
      for (int anti = 0; anti <= 1; anti++) {
        hn_real *A = hn_test_copy(K, nk), *At = hn_test_copy(Kt, nk);
        if (anti)
          for (size_t i = 0; i < nk; i++) {
            A[i] = K[i] - Kt[i];
            At[i] = -A[i];
          }
        hn_conv_step s2 = k.s;
        s2.gamma = anti ? (hn_real)0.05 : 0;
        hn_real *o = hn_test_copy(y, nt), *ro = hn_test_copy(y, nt), *D = calloc(nt, sizeof(hn_real));
        hn_real *UA;
        const hn_conv_kernels ka = step_kernels(c, A, At, winograd, &UA);
        hn_conv_euler_forward(&s2, &ka, b, at(&k.c, y), at(&k.c, o), at(&k.c, D), ld, work);
        hn_conv3_forward_ref(T, c, c, K, at(&k.c, y), ld, 0, at(&k.c, u), ld);
        if (anti) /* u = K^T y - K y */
          hn_conv3_adjoint_ref(T, c, c, K, at(&k.c, y), ld, -1, at(&k.c, u), ld);
        for (int ch = 0; ch < c; ch++)
          for (int q = 0; q < n; q++) {
            size_t i = (size_t)ch * ld + (size_t)k.c.b0 * T->H * T->W + q;
            hn_real a = anti ? -u[i] - s2.gamma * y[i] : u[i];
            ro[i] = y[i] + h * hn_act(k.s.act, a + b[ch]);
          }
        double ee = hn_test_maxdiff(o, ro, nt);
        worst = fmax(worst, ee);
        CHECK(ee < TOL_STEP, "%s forward %s shape %d: %.3g", anti ? "antisym" : "resnet",
              hn_activation_name((hn_activation)act), shape, ee);
        free(A), free(At), free(o), free(ro), free(D), free(UA);
      }

      /* leapfrog: forward against the reference, reversible backward against stored */
      {
        hn_real *o = hn_test_copy(z, nt), *ro = hn_test_copy(z, nt), *S = calloc(nt, sizeof(hn_real));
        hn_conv_leap_forward(&k.s, &kk, b, at(&k.c, y), at(&k.c, z), at(&k.c, o), at(&k.c, S), ld, work);
        hn_conv3_forward_ref(T, c, c, K, at(&k.c, y), ld, 0, at(&k.c, u), ld);
        ref_bias_act(&k, u, b, t);
        hn_conv3_adjoint_ref(T, c, c, K, at(&k.c, t), ld, 0, at(&k.c, u), ld);
        for (int ch = 0; ch < c; ch++)
          for (int q = 0; q < n; q++) {
            size_t i = (size_t)ch * ld + (size_t)k.c.b0 * T->H * T->W + q;
            ro[i] = 2 * y[i] - z[i] - h * h * u[i];
          }
        double el = hn_test_maxdiff(o, ro, nt);
        worst = fmax(worst, el);
        CHECK(el < TOL_STEP, "leapfrog forward %s shape %d: %.3g", hn_activation_name((hn_activation)act), shape, el);
        hn_real *P1 = hn_test_rnd(nt, &r, 1), *Q1 = hn_test_rnd(nt, &r, 1), *P2 = hn_test_copy(P1, nt), *Q2 = hn_test_copy(Q1, nt);
        hn_real *dK1 = calloc(nk, sizeof(hn_real)), *dK2 = calloc(nk, sizeof(hn_real));
        hn_real *db1 = calloc((size_t)c, sizeof(hn_real)), *db2 = calloc((size_t)c, sizeof(hn_real));
        hn_real *yn = hn_test_copy(o, nt);
        hn_conv_leap_backward(&k.s, &kk, b, at(&k.c, y), at(&k.c, yn), at(&k.c, P1), at(&k.c, Q1), dK1, db1, ld, work);
        hn_conv_leap_backward_saved(&k.s, &kk, at(&k.c, y), at(&k.c, S), at(&k.c, P2), at(&k.c, Q2), dK2, db2, ld,
                                    work);
        double er = fmax(fmax(hn_test_maxdiff(P1, P2, nt), hn_test_maxdiff(Q1, Q2, nt)),
                         fmax(hn_test_maxdiff(dK1, dK2, nk), hn_test_maxdiff(db1, db2, (size_t)c)));
        double ec = hn_test_maxdiff(yn, z, nt);
        worst_rev = fmax(worst_rev, er);
        worst_recon = fmax(worst_recon, ec);
        CHECK(er < TOL_STEP, "leapfrog backward reversible vs stored: %.3g", er);
        CHECK(ec < TOL_STEP, "leapfrog backward recomputes y_{j-1}: %.3g", ec);
        free(o), free(ro), free(S), free(P1), free(Q1), free(P2), free(Q2), free(dK1), free(dK2), free(db1), free(db2),
            free(yn);
      }
      free(yo), free(zo), free(D1), free(D2), free(ry), free(rz);
      free(work), free(K), free(Kt), free(b), free(y), free(z), free(t), free(u), free(Ubuf);
    }
  printf("conv layer steps (%s): forward vs reference %.2e, reversible vs stored backward %.2e, recomputed "
         "states %.2e\n", winograd ? "winograd" : "im2col", worst, worst_rev, worst_recon);
}

int main(void) {
  test_primitives();
  test_winograd();
  test_steps(0);
  test_steps(1);
  return hn_test_finish("test_conv");
}
