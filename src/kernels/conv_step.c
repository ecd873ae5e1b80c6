/* conv_step.c - the convolutional layer steps of every integrator on one tile (hamnet/conv.h).
 *
 * Each step is a few convolution products and fused element-wise passes over the tile (bias,
 * activation and its derivative, state update), written row by row (one channel: `cols`
 * contiguous values) so that the compiler vectorises them. A product is "prepare the right-hand
 * tensor once" (im2col, or its Winograd transform), then any number of products with it (K x,
 * K^T x) and weight gradients against it: prep / apply / grad below pick im2col + GEMM
 * (conv.c) or Winograd F(4x4, 3x3) (winograd.c) by whether the layer's kernels come with their
 * transforms. Where two products need the same tensor they share its preparation: in the
 * Verlet backward step that of z_{j+1} serves the recomputation of y_j and the gradient of K,
 * and that of g1 both K g1 and the gradient of the K^T half-step. Work buffer: col (im2col
 * [9 c][cols], or Winograd V), the Winograd scratch, then t1, t2, t3 [c][cols]. */
#include "hamnet/conv.h"
#include "kernels/act.h"

typedef struct {
  const hn_conv_tile *t;
  hn_real *col, *wino, *t1, *t2, *t3; /* col: im2col or Winograd V; wino: Winograd scratch */
  int c, n;                           /* channels, tile columns */
  int winograd;                       /* the products are Winograd's (the kernels carry U, Ut) */
} tile_work;

/* Sizes of the parts of the work buffer (hn_real elements): col (im2col or Winograd V), the
 * Winograd scratch, one tile temporary. */
typedef struct {
  size_t col, wino, tile;
} work_sizes;

static work_sizes sizes_of(int c, const hn_conv_tile *t) {
  work_sizes z;
  z.tile = (size_t)c * hn_conv_cols(t);
  const size_t v = hn_wino_input_size(t, c);
  z.col = 9 * z.tile > v ? 9 * z.tile : v;
  z.wino = hn_wino_scratch(t, c, c);
  return z;
}

size_t hn_conv_step_work(int c, const hn_conv_tile *t) {
  const work_sizes z = sizes_of(c, t);
  return z.col + z.wino + 3 * z.tile;
}

static tile_work split(const hn_conv_step *s, const hn_conv_kernels *k, hn_real *work) {
  const work_sizes z = sizes_of(s->c, &s->t);
  tile_work w;
  w.t = &s->t;
  w.c = s->c;
  w.n = hn_conv_cols(&s->t);
  w.winograd = k->U != NULL;
  w.col = work;
  w.wino = work + z.col;
  w.t1 = w.wino + z.wino;
  w.t2 = w.t1 + z.tile;
  w.t3 = w.t2 + z.tile;
  return w;
}

/* col = the preparation of X (row stride ldx) for products and weight gradients. */
static void prep(const tile_work *w, const hn_real *X, int ldx) {
  if (w->winograd)
    hn_wino_input(w->t, w->c, X, ldx, w->col, w->wino);
  else
    hn_im2col3(w->t, w->c, X, ldx, w->col);
}

/* Y = beta Y + K X for the prepared X; K is the kernel, U its transform (Winograd). */
static void apply(const tile_work *w, const hn_real *K, const hn_real *U, hn_real beta, hn_real *Y, int ldy) {
  if (w->winograd)
    hn_wino_apply(w->t, w->c, w->c, U, w->col, beta, Y, ldy, w->wino);
  else
    hn_conv3_apply(w->t, w->c, w->c, K, w->col, beta, Y, ldy);
}

/* dK += alpha grad_K <G, K X> for the prepared X. */
static void grad(const tile_work *w, hn_real alpha, const hn_real *G, int ldg, hn_real *dK) {
  if (w->winograd)
    hn_wino_grad(w->t, w->c, w->c, alpha, G, ldg, w->col, dK, w->wino);
  else
    hn_conv3_grad(w->t, w->c, w->c, alpha, G, ldg, w->col, dK);
}

/* db[r] += scale * sum_q t[r][q] */
static void rowsum(const tile_work *w, const hn_real *t, hn_real scale, hn_real *db) {
  for (int r = 0; r < w->c; r++) {
    const hn_real *x = t + (size_t)r * w->n;
    hn_real s = 0;
#pragma omp simd reduction(+ : s)
    for (int q = 0; q < w->n; q++)
      s += x[q];
    db[r] += scale * s;
  }
}

/* w->t2 = coef * D .* adj per channel row (D: saved activation derivatives, rows of stride ld):
 * the adjoint through a layer's activation in the backward passes with saved derivatives. */
static void saved_adjoint(const tile_work *w, hn_real coef, const hn_real *D, const hn_real *adj, int ld) {
  for (int r = 0; r < w->c; r++) {
    hn_real *g = w->t2 + (size_t)r * w->n;
    const hn_real *d = D + (size_t)r * ld, *a = adj + (size_t)r * ld;
#pragma omp simd
    for (int q = 0; q < w->n; q++)
      g[q] = coef * d[q] * a[q];
  }
}

/* One half-step over a row: xo = x + coef s(u + bias); d (NULL or saved) = s'(u + bias). */
static void half_step(hn_activation act, int n, const hn_real *u, hn_real bias, hn_real coef, const hn_real *x,
                      hn_real *xo, hn_real *d) {
  if (d) {
#pragma omp simd
    for (int q = 0; q < n; q++) {
      hn_real sv = act_value(act, u[q] + bias);
      d[q] = act_deriv_from_value(act, sv);
      xo[q] = x[q] + coef * sv;
    }
  } else {
#pragma omp simd
    for (int q = 0; q < n; q++)
      xo[q] = x[q] + coef * act_value(act, u[q] + bias);
  }
}

/* Backward of a half-step whose activation is recomputed from u: x -= coef s(u + bias) (the
 * inverse step), g = coef s'(u + bias) adj. */
static void half_step_back(hn_activation act, int n, const hn_real *u, hn_real bias, hn_real coef, hn_real *x,
                           const hn_real *adj, hn_real *g) {
#pragma omp simd
  for (int q = 0; q < n; q++) {
    hn_real sv = act_value(act, u[q] + bias);
    x[q] -= coef * sv;
    g[q] = coef * act_deriv_from_value(act, sv) * adj[q];
  }
}

/* ---------------------------------------------------------------------------------------- */
/* forward Euler: resnet (A = K, gamma = 0) and antisym (A = K - Kt) */

void hn_conv_euler_forward(const hn_conv_step *s, const hn_conv_kernels *A, const hn_real *b, const hn_real *y,
                           hn_real *yo, hn_real *D, int ld, hn_real *work) {
  tile_work w = split(s, A, work);
  prep(&w, y, ld);
  apply(&w, A->K, A->U, 0, w.t1, w.n);
  const hn_real h = s->h, gamma = s->gamma;
  for (int r = 0; r < w.c; r++) {
    const hn_real *u = w.t1 + (size_t)r * w.n, *x = y + (size_t)r * ld;
    hn_real *xo = yo + (size_t)r * ld, *d = D ? D + (size_t)r * ld : NULL;
    if (gamma != 0) {
#pragma omp simd
      for (int q = 0; q < w.n; q++)
        w.t1[(size_t)r * w.n + q] = u[q] - gamma * x[q];
    }
    half_step(s->act, w.n, u, b[r], h, x, xo, d);
  }
}

void hn_conv_euler_backward_saved(const hn_conv_step *s, const hn_conv_kernels *A, const hn_real *y0, const hn_real *D,
                                  hn_real *gy, hn_real *dA, hn_real *db, int ld, hn_real *work) {
  tile_work w = split(s, A, work);
  const hn_real h = s->h;
  saved_adjoint(&w, h, D, gy, ld); /* g = h s' gy */
  rowsum(&w, w.t2, 1, db);
  prep(&w, y0, ld);
  grad(&w, 1, w.t2, w.n, dA);
  prep(&w, w.t2, w.n);
  apply(&w, A->Kt, A->Ut, 1, gy, ld); /* gy += A^T g */
  if (s->gamma != 0)
    for (int r = 0; r < w.c; r++) {
      hn_real *a = gy + (size_t)r * ld;
      const hn_real *g = w.t2 + (size_t)r * w.n;
#pragma omp simd
      for (int q = 0; q < w.n; q++)
        a[q] -= s->gamma * g[q];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Verlet (hamiltonian) */

void hn_conv_ham_forward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b,
                         const hn_real *y, const hn_real *z, hn_real *yo, hn_real *zo, hn_real *D1, hn_real *D2,
                         int ld, hn_real *work) {
  tile_work w = split(s, k, work);
  prep(&w, y, ld);
  apply(&w, k->Kt, k->Ut, 0, w.t1, w.n); /* K^T y */
  for (int r = 0; r < w.c; r++)
    half_step(s->act, w.n, w.t1 + (size_t)r * w.n, b[r], -s->h, z + (size_t)r * ld, zo + (size_t)r * ld,
              D1 ? D1 + (size_t)r * ld : NULL);
  prep(&w, zo, ld);
  apply(&w, k->K, k->U, 0, w.t1, w.n); /* K z+ */
  for (int r = 0; r < w.c; r++)
    half_step(s->act, w.n, w.t1 + (size_t)r * w.n, b[r], s->h, y + (size_t)r * ld, yo + (size_t)r * ld,
              D2 ? D2 + (size_t)r * ld : NULL);
}

void hn_conv_ham_backward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b, hn_real *y,
                          hn_real *z, hn_real *gy, hn_real *gz, hn_real *dK, hn_real *db, int ld, hn_real *work) {
  tile_work w = split(s, k, work);
  const hn_real h = s->h;
  /* second half-step y1 = y0 + h s(K z1 + b): recompute y0, g2 = h s' gy */
  prep(&w, z, ld);
  apply(&w, k->K, k->U, 0, w.t1, w.n);
  for (int r = 0; r < w.c; r++)
    half_step_back(s->act, w.n, w.t1 + (size_t)r * w.n, b[r], h, y + (size_t)r * ld, gy + (size_t)r * ld,
                   w.t2 + (size_t)r * w.n);
  rowsum(&w, w.t2, 1, db);
  grad(&w, 1, w.t2, w.n, dK); /* col = im2col(z1) */
  prep(&w, w.t2, w.n);
  apply(&w, k->Kt, k->Ut, 1, gz, ld); /* gz += K^T g2 */
  /* first half-step z1 = z0 - h s(K^T y0 + b): recompute z0, g1 = -h s' gz */
  prep(&w, y, ld);
  apply(&w, k->Kt, k->Ut, 0, w.t1, w.n);
  for (int r = 0; r < w.c; r++)
    half_step_back(s->act, w.n, w.t1 + (size_t)r * w.n, b[r], -h, z + (size_t)r * ld, gz + (size_t)r * ld,
                   w.t2 + (size_t)r * w.n);
  rowsum(&w, w.t2, 1, db);
  prep(&w, w.t2, w.n);
  apply(&w, k->K, k->U, 1, gy, ld); /* gy += K g1 */
  grad(&w, 1, y, ld, dK);  /* dK += y0 im2col(g1)^T: the K^T y0 product */
}

void hn_conv_ham_backward_saved(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *y0,
                                const hn_real *z1, const hn_real *D1, const hn_real *D2, hn_real *gy, hn_real *gz,
                                hn_real *dK, hn_real *db, int ld, hn_real *work) {
  tile_work w = split(s, k, work);
  const hn_real h = s->h;
  saved_adjoint(&w, h, D2, gy, ld); /* g2 = h s'_2 gy */
  rowsum(&w, w.t2, 1, db);
  prep(&w, z1, ld);
  grad(&w, 1, w.t2, w.n, dK);
  prep(&w, w.t2, w.n);
  apply(&w, k->Kt, k->Ut, 1, gz, ld);
  saved_adjoint(&w, -h, D1, gz, ld); /* g1 = -h s'_1 gz */
  rowsum(&w, w.t2, 1, db);
  prep(&w, w.t2, w.n);
  apply(&w, k->K, k->U, 1, gy, ld);
  grad(&w, 1, y0, ld, dK);
}

/* ---------------------------------------------------------------------------------------- */
/* leapfrog */

void hn_conv_leap_forward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b,
                          const hn_real *y, const hn_real *yprev, hn_real *yo, hn_real *S, int ld, hn_real *work) {
  tile_work w = split(s, k, work);
  prep(&w, y, ld);
  apply(&w, k->K, k->U, 0, w.t1, w.n);
  for (int r = 0; r < w.c; r++) { /* t1 = s(K y + b) */
    hn_real *u = w.t1 + (size_t)r * w.n;
    const hn_real br = b[r];
#pragma omp simd
    for (int q = 0; q < w.n; q++)
      u[q] = act_value(s->act, u[q] + br);
    if (S)
      for (int q = 0; q < w.n; q++)
        S[(size_t)r * ld + q] = u[q];
  }
  prep(&w, w.t1, w.n);
  apply(&w, k->Kt, k->Ut, 0, w.t2, w.n); /* K^T s */
  const hn_real h2 = s->h * s->h;
  for (int r = 0; r < w.c; r++) {
    const hn_real *a = y + (size_t)r * ld, *p = yprev + (size_t)r * ld, *f = w.t2 + (size_t)r * w.n;
    hn_real *o = yo + (size_t)r * ld;
#pragma omp simd
    for (int q = 0; q < w.n; q++)
      o[q] = 2 * a[q] - p[q] - h2 * f[q];
  }
}

/* The backward step given S = s(K y + b) (row stride lds; not in t1 or t3). */
static void leap_backward_core(const hn_conv_step *s, const tile_work *w, const hn_conv_kernels *k,
                               const hn_real *y, const hn_real *S, int lds, hn_real *P, hn_real *Q, hn_real *dK,
                               hn_real *db, int ld) {
  const hn_real h2 = s->h * s->h;
  /* y_{j+1} = 2 y - y_{j-1} - h^2 K^T s(K y + b): the term -h^2 <P, K^T s> = -h^2 <K P, s> */
  prep(w, P, ld);
  apply(w, k->K, k->U, 0, w->t1, w->n); /* K P */
  grad(w, -h2, S, lds, dK);    /* via the K of K P */
  for (int r = 0; r < w->c; r++) { /* t1 = s'(K y + b) K P */
    hn_real *v = w->t1 + (size_t)r * w->n;
    const hn_real *sv = S + (size_t)r * lds;
#pragma omp simd
    for (int q = 0; q < w->n; q++)
      v[q] *= act_deriv_from_value(s->act, sv[q]);
  }
  rowsum(w, w->t1, -h2, db);
  prep(w, y, ld);
  grad(w, -h2, w->t1, w->n, dK); /* via the K of K y */
  prep(w, w->t1, w->n);
  apply(w, k->Kt, k->Ut, 0, w->t3, w->n); /* K^T s' K P */
  for (int r = 0; r < w->c; r++) { /* (P, Q) <- (Q + 2 P - h^2 J^T P, -P) */
    hn_real *p = P + (size_t)r * ld, *qq = Q + (size_t)r * ld;
    const hn_real *f = w->t3 + (size_t)r * w->n;
#pragma omp simd
    for (int q = 0; q < w->n; q++) {
      hn_real pv = p[q];
      p[q] = qq[q] + 2 * pv - h2 * f[q];
      qq[q] = -pv;
    }
  }
}

void hn_conv_leap_backward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b,
                           const hn_real *y, hn_real *ynext, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, int ld,
                           hn_real *work) {
  tile_work w = split(s, k, work);
  prep(&w, y, ld);
  apply(&w, k->K, k->U, 0, w.t2, w.n);
  for (int r = 0; r < w.c; r++) { /* t2 = S = s(K y + b) */
    hn_real *u = w.t2 + (size_t)r * w.n;
    const hn_real br = b[r];
#pragma omp simd
    for (int q = 0; q < w.n; q++)
      u[q] = act_value(s->act, u[q] + br);
  }
  prep(&w, w.t2, w.n);
  apply(&w, k->Kt, k->Ut, 0, w.t3, w.n);
  const hn_real h2 = s->h * s->h;
  for (int r = 0; r < w.c; r++) { /* y_{j-1} = 2 y_j - y_{j+1} - h^2 K^T S, over y_{j+1} */
    const hn_real *a = y + (size_t)r * ld, *f = w.t3 + (size_t)r * w.n;
    hn_real *o = ynext + (size_t)r * ld;
#pragma omp simd
    for (int q = 0; q < w.n; q++)
      o[q] = 2 * a[q] - o[q] - h2 * f[q];
  }
  leap_backward_core(s, &w, k, y, w.t2, w.n, P, Q, dK, db, ld);
}

void hn_conv_leap_backward_saved(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *y,
                                 const hn_real *S, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, int ld,
                                 hn_real *work) {
  tile_work w = split(s, k, work);
  leap_backward_core(s, &w, k, y, S, ld, P, Q, dK, db, ld);
}
