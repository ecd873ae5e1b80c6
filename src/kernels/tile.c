/* tile.c - the narrow path's layer steps on one tile of HN_TILE samples (hamnet/kernels.h).
 *
 * Layout x[n][T] (T = HN_TILE): coordinate r of the tile's samples is one contiguous row of T
 * values. A step is a few small matrix products and elementwise passes over the tile:
 *
 *   tile_mm     out = M x (+ bias): M's rows four at a time, `#pragma omp simd` over the T
 *               samples with four scalar accumulators per sample. GCC vectorises the sample
 *               loop and keeps the accumulators in registers; four independent ones hide the
 *               FMA latency (one alone runs at half speed or less). Products with K^T take the
 *               transposed copy Kt, so that M's rows are always contiguous.
 *   outer_acc   dK += alpha a x^T (the parameter gradient, summed over the tile): x transposed
 *               into blocks of XT_W columns, then dK's rows four at a time, simd over dK's
 *               columns. The block width is a compile-time constant: GCC's outer-loop
 *               vectoriser needs a constant stride.
 *   elementwise bias, activation and its derivative, the integrator's update: simd loops over
 *               all n T values of the tile (so tanh runs as libmvec's vector variant).
 *
 * Everything stays in L1/L2: the tile, K_j, K_j^T and dK_j. No BLAS, no OpenMP threads in here
 * (the caller runs one tile per thread, network.c). Per-sample algebra as in step_ref.c. */
#include <string.h>

#include "hamnet/kernels.h"
#include "kernels/act.h"
#include "kernels/transpose.h"

#define T HN_TILE
#define XT_W 64 /* columns per transposed block (HN_TILE_XT = T * XT_W) */
#define VEC 16  /* outer_acc computes whole groups of this many columns */

/* ---------------------------------------------------------------------------------------- */
/* building blocks */

/* out[i][:] = init_i + sum_{k < inner} M[i * ldm + k] x[k][:] for i < rows, where init_i is
 * out[i][:] (accumulate), bias[i] (bias not NULL) or 0. out must not overlap M or x.
 * (The initial values are set in a pass of their own: a condition inside the simd loop would
 * stop GCC from vectorising it.) */
static void tile_mm(int rows, int inner, const hn_real *M, int ldm, const hn_real *x, const hn_real *bias,
                    int accumulate, hn_real *restrict out) {
  if (inner < 1) /* (also tells GCC the k loops below run at least once: no branch in the simd loop) */
    return;
  if (!accumulate)
    for (int i = 0; i < rows; i++) {
      const hn_real bi = bias ? bias[i] : 0;
#pragma omp simd
      for (int t = 0; t < T; t++)
        out[i * T + t] = bi;
    }
  int i = 0;
  for (; i + 4 <= rows; i += 4) {
    const hn_real *m0 = M + (size_t)i * ldm, *m1 = m0 + ldm, *m2 = m1 + ldm, *m3 = m2 + ldm;
    hn_real *o0 = out + i * T, *o1 = o0 + T, *o2 = o1 + T, *o3 = o2 + T;
#pragma omp simd
    for (int t = 0; t < T; t++) {
      hn_real a0 = o0[t], a1 = o1[t], a2 = o2[t], a3 = o3[t];
      for (int k = 0; k < inner; k++) {
        const hn_real xv = x[k * T + t];
        a0 += m0[k] * xv;
        a1 += m1[k] * xv;
        a2 += m2[k] * xv;
        a3 += m3[k] * xv;
      }
      o0[t] = a0;
      o1[t] = a1;
      o2[t] = a2;
      o3[t] = a3;
    }
  }
  for (; i < rows; i++) {
    const hn_real *mi = M + (size_t)i * ldm;
    hn_real *oi = out + i * T;
#pragma omp simd
    for (int t = 0; t < T; t++) {
      hn_real a = oi[t];
      for (int k = 0; k < inner; k++)
        a += mi[k] * x[k * T + t];
      oi[t] = a;
    }
  }
}

/* sums[q][j] = sum_t a_q[t] xT[t][j] for four rows a_q of a tile and j < wv (whole vectors). */
static inline void block4_sums(const hn_real *a0, const hn_real *a1, const hn_real *a2, const hn_real *a3,
                               const hn_real *xT, int wv, hn_real sums[4][XT_W]) {
#pragma omp simd
  for (int j = 0; j < wv; j++) {
    hn_real s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int t = 0; t < T; t++) {
      const hn_real xv = xT[t * XT_W + j];
      s0 += a0[t] * xv;
      s1 += a1[t] * xv;
      s2 += a2[t] * xv;
      s3 += a3[t] * xv;
    }
    sums[0][j] = s0;
    sums[1][j] = s1;
    sums[2][j] = s2;
    sums[3][j] = s3;
  }
}

/* The same for 8 columns in vectors of 8: widths up to 8 (the paper's regime) do half the work
 * of 16-wide vectors, while wider blocks run faster with the default width. */
static inline void block4_sums8(const hn_real *a0, const hn_real *a1, const hn_real *a2, const hn_real *a3,
                                const hn_real *xT, hn_real sums[4][XT_W]) {
#pragma omp simd simdlen(8)
  for (int j = 0; j < 8; j++) {
    hn_real s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int t = 0; t < T; t++) {
      const hn_real xv = xT[t * XT_W + j];
      s0 += a0[t] * xv;
      s1 += a1[t] * xv;
      s2 += a2[t] * xv;
      s3 += a3[t] * xv;
    }
    sums[0][j] = s0;
    sums[1][j] = s1;
    sums[2][j] = s2;
    sums[3][j] = s3;
  }
}

/* dM[i * ldm + j] += alpha sum_t a[i][t] x[j][t] for i < rows, j < cols. xT: HN_TILE_XT scratch
 * (its contents on entry do not matter). */
static void outer_acc(int rows, int cols, hn_real alpha, const hn_real *a, const hn_real *x, hn_real *restrict dM,
                      int ldm, hn_real *restrict xT) {
  for (int j0 = 0; j0 < cols; j0 += XT_W) {
    const int w = cols - j0 < XT_W ? cols - j0 : XT_W;
    /* Whole vectors of columns: the wv - w padding columns of xT keep whatever they held (zero
     * from hn_alloc, or data of an earlier, wider call); their sums are computed and dropped.
     * Clearing them costs as much as the useful work for widths like 8. */
    const int wv = (w + VEC - 1) / VEC * VEC;
    hn_transpose(x + (size_t)j0 * T, T, xT, XT_W, w, T, 0);
    hn_real sums[4][XT_W]; /* whole vectors of sums first, then only the w real columns added:
                            * a masked store in the simd loop is slow on some CPUs */
    int i = 0;
    for (; i + 4 <= rows; i += 4) {
      const hn_real *a0 = a + (size_t)i * T, *a1 = a0 + T, *a2 = a1 + T, *a3 = a2 + T;
      if (w <= 8)
        block4_sums8(a0, a1, a2, a3, xT, sums);
      else
        block4_sums(a0, a1, a2, a3, xT, wv, sums);
      for (int q = 0; q < 4; q++) {
        hn_real *d = dM + (size_t)(i + q) * ldm + j0;
#pragma omp simd
        for (int j = 0; j < w; j++)
          d[j] += alpha * sums[q][j];
      }
    }
    for (; i < rows; i++) {
      const hn_real *ai = a + (size_t)i * T;
#pragma omp simd
      for (int j = 0; j < wv; j++) {
        hn_real s = 0;
        for (int t = 0; t < T; t++)
          s += ai[t] * xT[t * XT_W + j];
        sums[0][j] = s;
      }
      hn_real *d = dM + (size_t)i * ldm + j0;
#pragma omp simd
      for (int j = 0; j < w; j++)
        d[j] += alpha * sums[0][j];
    }
  }
}

/* v[i] += alpha sum_t a[i][t] for i < rows (bias gradients). */
static void rowsum_acc(int rows, hn_real alpha, const hn_real *a, hn_real *restrict v) {
  for (int i = 0; i < rows; i++) {
    const hn_real *ai = a + (size_t)i * T;
    hn_real s = 0;
#pragma omp simd reduction(+ : s)
    for (int t = 0; t < T; t++)
      s += ai[t];
    v[i] += alpha * s;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Hamiltonian (Verlet) */

/* (yout, zout may alias y, z: every loop reads and writes the same element only) */
void hn_ham_tile_forward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, const hn_real *y,
                         const hn_real *z, hn_real *yout, hn_real *zout, hn_real *restrict d1, hn_real *restrict d2,
                         hn_real *work) {
  const int n = s->width, nt = n * T;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *u = work;
  tile_mm(n, n, Kt, n, y, b, 0, u); /* z+ = z - h s(K^T y + b) */
#pragma omp simd
  for (int i = 0; i < nt; i++) {
    hn_real v = act_value(act, u[i]);
    zout[i] = z[i] - h * v;
    if (d1)
      d1[i] = act_deriv_from_value(act, v);
  }
  tile_mm(n, n, K, n, zout, b, 0, u); /* y+ = y + h s(K z+ + b) */
#pragma omp simd
  for (int i = 0; i < nt; i++) {
    hn_real v = act_value(act, u[i]);
    yout[i] = y[i] + h * v;
    if (d2)
      d2[i] = act_deriv_from_value(act, v);
  }
}

void hn_ham_tile_backward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, hn_real *restrict y,
                          hn_real *restrict z, hn_real *restrict gy, hn_real *restrict gz, hn_real *dK, hn_real *db,
                          hn_real *work) {
  const int n = s->width, nt = n * T;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *u = work, *dv = work + nt, *du = work + 2 * nt, *xT = work + 3 * nt;
  /* second half-step y1 = y0 + h s(K z1 + b): recover y0; dv = h gy s'(.) */
  tile_mm(n, n, K, n, z, b, 0, u);
#pragma omp simd
  for (int i = 0; i < nt; i++) {
    hn_real v = act_value(act, u[i]);
    y[i] -= h * v;
    dv[i] = h * gy[i] * act_deriv_from_value(act, v);
  }
  rowsum_acc(n, 1, dv, db);
  tile_mm(n, n, Kt, n, dv, NULL, 1, gz); /* gz += K^T dv */
  outer_acc(n, n, 1, dv, z, dK, n, xT);  /* dK += dv z1^T */
  /* first half-step z1 = z0 - h s(K^T y0 + b): recover z0; du = -h gz s'(.) */
  tile_mm(n, n, Kt, n, y, b, 0, u);
#pragma omp simd
  for (int i = 0; i < nt; i++) {
    hn_real v = act_value(act, u[i]);
    z[i] += h * v;
    du[i] = -h * gz[i] * act_deriv_from_value(act, v);
  }
  rowsum_acc(n, 1, du, db);
  tile_mm(n, n, K, n, du, NULL, 1, gy); /* gy += K du */
  outer_acc(n, n, 1, y, du, dK, n, xT); /* dK += y0 du^T */
}

void hn_ham_tile_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *y0,
                                const hn_real *z1, const hn_real *d1, const hn_real *d2, hn_real *restrict gy,
                                hn_real *restrict gz, hn_real *dK, hn_real *db, hn_real *work) {
  const int n = s->width, nt = n * T;
  const hn_real h = s->h;
  hn_real *dv = work + nt, *du = work + 2 * nt, *xT = work + 3 * nt;
#pragma omp simd
  for (int i = 0; i < nt; i++)
    dv[i] = h * gy[i] * d2[i];
  rowsum_acc(n, 1, dv, db);
  tile_mm(n, n, Kt, n, dv, NULL, 1, gz);
  outer_acc(n, n, 1, dv, z1, dK, n, xT);
#pragma omp simd
  for (int i = 0; i < nt; i++)
    du[i] = -h * gz[i] * d1[i];
  rowsum_acc(n, 1, du, db);
  tile_mm(n, n, K, n, du, NULL, 1, gy);
  outer_acc(n, n, 1, y0, du, dK, n, xT);
}

/* ---------------------------------------------------------------------------------------- */
/* leapfrog */

void hn_leap_tile_forward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, const hn_real *y,
                          const hn_real *yprev, hn_real *yout, hn_real *S, hn_real *work) {
  const int n = s->width, nt = n * T;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *u = work, *sg = S ? S : work + nt;
  tile_mm(n, n, K, n, y, b, 0, u); /* s = s(K y + b) */
#pragma omp simd
  for (int i = 0; i < nt; i++)
    sg[i] = act_value(act, u[i]);
  tile_mm(n, n, Kt, n, sg, NULL, 0, u); /* y_{j+1} = 2 y - y_{j-1} - h^2 K^T s, over y_{j-1} */
#pragma omp simd
  for (int i = 0; i < nt; i++)
    yout[i] = 2 * y[i] - yprev[i] - h2 * u[i];
}

/* Shared by both leapfrog backward steps once s and w = s'(K y + b) (K p) are known:
 * dK -= h^2 (s p^T + w y^T); y_{j-1} = 2 y - y_{j+1} - h^2 K^T s over ynext (if not NULL);
 * p = 2 p + q - h^2 K^T w, q = -p_old. */
static void leap_tile_finish(int n, hn_real h2, const hn_real *Kt, const hn_real *y, const hn_real *sg,
                             const hn_real *w, hn_real *restrict ynext, hn_real *restrict P, hn_real *restrict Q,
                             hn_real *dK, hn_real *u, hn_real *xT) {
  const int nt = n * T;
  outer_acc(n, n, -h2, sg, P, dK, n, xT);
  outer_acc(n, n, -h2, w, y, dK, n, xT);
  if (ynext) {
    tile_mm(n, n, Kt, n, sg, NULL, 0, u);
#pragma omp simd
    for (int i = 0; i < nt; i++)
      ynext[i] = 2 * y[i] - ynext[i] - h2 * u[i];
  }
  tile_mm(n, n, Kt, n, w, NULL, 0, u);
#pragma omp simd
  for (int i = 0; i < nt; i++) {
    hn_real p_old = P[i];
    P[i] = 2 * p_old + Q[i] - h2 * u[i];
    Q[i] = -p_old;
  }
}

void hn_leap_tile_backward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, const hn_real *y,
                           hn_real *ynext, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, hn_real *work) {
  const int n = s->width, nt = n * T;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *u = work, *sg = work + nt, *w = work + 2 * nt, *xT = work + 3 * nt;
  tile_mm(n, n, K, n, y, b, 0, u); /* K y + b */
  tile_mm(n, n, K, n, P, NULL, 0, w); /* K p */
#pragma omp simd
  for (int i = 0; i < nt; i++) {
    hn_real v = act_value(act, u[i]);
    sg[i] = v;
    w[i] *= act_deriv_from_value(act, v);
  }
  rowsum_acc(n, -h2, w, db);
  leap_tile_finish(n, h2, Kt, y, sg, w, ynext, P, Q, dK, u, xT);
}

void hn_leap_tile_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *y,
                                 const hn_real *S, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, hn_real *work) {
  const int n = s->width, nt = n * T;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *u = work, *w = work + 2 * nt, *xT = work + 3 * nt;
  tile_mm(n, n, K, n, P, NULL, 0, w); /* K p */
#pragma omp simd
  for (int i = 0; i < nt; i++)
    w[i] *= act_deriv_from_value(act, S[i]);
  rowsum_acc(n, -h2, w, db);
  leap_tile_finish(n, h2, Kt, y, S, w, NULL, P, Q, dK, u, xT);
}

/* ---------------------------------------------------------------------------------------- */
/* opening and classifier pieces */

void hn_tile_matmul(int rows, int inner, const hn_real *M, int ldm, const hn_real *x, hn_real *out, int accumulate) {
  tile_mm(rows, inner, M, ldm, x, NULL, accumulate, out);
}

void hn_tile_outer(int rows, int cols, hn_real alpha, const hn_real *a, const hn_real *x, hn_real *dM, int ldm,
                   hn_real *dv, hn_real *work) {
  outer_acc(rows, cols, alpha, a, x, dM, ldm, work);
  if (dv)
    rowsum_acc(rows, alpha, a, dv);
}
