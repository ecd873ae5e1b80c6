/* step.c - fast layer steps: GEMMs through CBLAS, then ONE fused OpenMP pass that adds the
 * bias, applies the activation (and its derivative) and does the integrator's update.
 *
 * The per-sample algebra is the reference's (step_ref.c); with states stored one sample per
 * row, K y for all samples is Y K^T and K^T y is Y K. Threading: OpenBLAS is the OpenMP build
 * (scripts/setup.sh), so the GEMMs and the fused loops share one OpenMP runtime. */
#include <string.h>

#include "hamnet/kernels.h"

#define NT 0, 1 /* op(A) = A, op(B) = B^T */
#define NN 0, 0
#define TN 1, 0

/* Threading only pays above a few thousand elements. */
#define HN_PAR_MIN 8192

/* db[r] += sum over rows of D[:, r]. */
static void colsum_add(const hn_real *D, int B, int n, hn_real scale, hn_real *db) {
  for (int i = 0; i < B; i++) {
    const hn_real *d = D + (size_t)i * n;
#pragma omp simd
    for (int r = 0; r < n; r++)
      db[r] += scale * d[r];
  }
}

/* ---------------------------------------------------------------------------------------- */
void hn_euler_forward(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                      hn_real *Yout, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *U = work;
  hn_gemm(NT, B, n, n, 1, Y, n, A, n, 0, U, n);
  const long total = (long)B * n;
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *y = Y + (size_t)i * n, *u = U + (size_t)i * n;
    hn_real *yo = Yout + (size_t)i * n;
    for (int r = 0; r < n; r++)
      yo[r] = y[r] + h * hn_act(act, u[r] + b[r]);
  }
}

void hn_euler_backward(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                       hn_real *G, hn_real *dA, hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *U = work, *D = work + (size_t)B * n;
  hn_gemm(NT, B, n, n, 1, Y, n, A, n, 0, U, n);
  const long total = (long)B * n;
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *u = U + (size_t)i * n, *g = G + (size_t)i * n;
    hn_real *d = D + (size_t)i * n;
    for (int r = 0; r < n; r++)
      d[r] = h * g[r] * hn_act_deriv(act, u[r] + b[r]);
  }
  hn_gemm(NN, B, n, n, 1, D, n, A, n, 1, G, n);  /* G += D A    (A^T d per sample) */
  hn_gemm(TN, n, n, B, 1, D, n, Y, n, 1, dA, n); /* dA += D^T Y (sum_i d_i y_i^T)  */
  colsum_add(D, B, n, 1, db);
}

/* ---------------------------------------------------------------------------------------- */
void hn_ham_forward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                    const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *U = work;
  const long total = (long)B * n;
  hn_gemm(NN, B, n, n, 1, Y, n, K, n, 0, U, n); /* K^T y per sample */
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *z = Z + (size_t)i * n, *u = U + (size_t)i * n;
    hn_real *zo = Zout + (size_t)i * n;
    for (int c = 0; c < n; c++)
      zo[c] = z[c] - h * hn_act(act, u[c] + b[c]);
  }
  hn_gemm(NT, B, n, n, 1, Zout, n, K, n, 0, U, n); /* K z+ per sample */
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *y = Y + (size_t)i * n, *v = U + (size_t)i * n;
    hn_real *yo = Yout + (size_t)i * n;
    for (int r = 0; r < n; r++)
      yo[r] = y[r] + h * hn_act(act, v[r] + b[r]);
  }
}

void hn_ham_backward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y1,
                     const hn_real *Z1, hn_real *Y0, hn_real *Z0, int recompute, hn_real *Gy,
                     hn_real *Gz, hn_real *dK, hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *V = work, *D = work + (size_t)B * n;
  const long total = (long)B * n;
  /* second half-step y1 = y0 + h s(K z1 + b): its inverse and its adjoint from one GEMM */
  hn_gemm(NT, B, n, n, 1, Z1, n, K, n, 0, V, n);
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *v = V + (size_t)i * n, *gy = Gy + (size_t)i * n, *y1 = Y1 + (size_t)i * n;
    hn_real *d = D + (size_t)i * n, *y0 = Y0 + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      hn_real a = v[r] + b[r];
      if (recompute)
        y0[r] = y1[r] - h * hn_act(act, a);
      d[r] = h * gy[r] * hn_act_deriv(act, a);
    }
  }
  hn_gemm(NN, B, n, n, 1, D, n, K, n, 1, Gz, n);  /* gz += K^T dv */
  hn_gemm(TN, n, n, B, 1, D, n, Z1, n, 1, dK, n); /* dK += dv z1^T */
  colsum_add(D, B, n, 1, db);
  /* first half-step z1 = z0 - h s(K^T y0 + b) */
  hn_gemm(NN, B, n, n, 1, Y0, n, K, n, 0, V, n);
  const int want_z0 = recompute && Z0;
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *u = V + (size_t)i * n, *gz = Gz + (size_t)i * n, *z1 = Z1 + (size_t)i * n;
    hn_real *d = D + (size_t)i * n;
    for (int c = 0; c < n; c++) {
      hn_real a = u[c] + b[c];
      if (want_z0)
        Z0[(size_t)i * n + c] = z1[c] + h * hn_act(act, a);
      d[c] = -h * gz[c] * hn_act_deriv(act, a);
    }
  }
  hn_gemm(NT, B, n, n, 1, D, n, K, n, 1, Gy, n);  /* gy += K du */
  hn_gemm(TN, n, n, B, 1, Y0, n, D, n, 1, dK, n); /* dK += y0 du^T */
  colsum_add(D, B, n, 1, db);
}

/* ---------------------------------------------------------------------------------------- */
void hn_leap_forward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                     const hn_real *Yprev, hn_real *Yout, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *U = work;
  const long total = (long)B * n;
  hn_gemm(NT, B, n, n, 1, Y, n, K, n, 0, U, n);
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const hn_real *y = Y + (size_t)i * n, *yp = Yprev + (size_t)i * n;
    hn_real *u = U + (size_t)i * n, *yo = Yout + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      u[r] = hn_act(act, u[r] + b[r]);
      yo[r] = 2 * y[r] - yp[r];
    }
  }
  hn_gemm(NN, B, n, n, -h2, U, n, K, n, 1, Yout, n); /* -h^2 K^T s per sample */
}

void hn_leap_backward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                      const hn_real *Ynext, hn_real *Yprev_out, hn_real *P, hn_real *Q,
                      hn_real *dK, hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *S = work, *W = work + (size_t)B * n;
  const long total = (long)B * n;
  hn_gemm(NT, B, n, n, 1, Y, n, K, n, 0, S, n); /* K y */
  hn_gemm(NT, B, n, n, 1, P, n, K, n, 0, W, n); /* K p */
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    hn_real *sg = S + (size_t)i * n, *w = W + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      hn_real a = sg[r] + b[r];
      sg[r] = hn_act(act, a);
      w[r] *= hn_act_deriv(act, a);
    }
  }
  hn_gemm(TN, n, n, B, -h2, S, n, P, n, 1, dK, n); /* dK -= h^2 s p^T */
  hn_gemm(TN, n, n, B, -h2, W, n, Y, n, 1, dK, n); /* dK -= h^2 w y^T */
  colsum_add(W, B, n, -h2, db);
  if (Yprev_out) {
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
    for (int i = 0; i < B; i++)
      for (int c = 0; c < n; c++)
        Yprev_out[(size_t)i * n + c] = 2 * Y[(size_t)i * n + c] - Ynext[(size_t)i * n + c];
    hn_gemm(NN, B, n, n, -h2, S, n, K, n, 1, Yprev_out, n);
  }
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    hn_real *p = P + (size_t)i * n, *q = Q + (size_t)i * n;
    for (int c = 0; c < n; c++) {
      hn_real p_old = p[c];
      p[c] = 2 * p_old + q[c];
      q[c] = -p_old;
    }
  }
  hn_gemm(NN, B, n, n, -h2, W, n, K, n, 1, P, n); /* p -= h^2 K^T w */
}
