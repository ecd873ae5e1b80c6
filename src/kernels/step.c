/* step.c - fast layer steps: GEMMs through CBLAS, then ONE fused OpenMP pass that adds the
 * bias, applies the activation (and its derivative) and does the integrator's update.
 *
 * The per-sample algebra is the reference's (step_ref.c); with states stored one sample per
 * row, K y for all samples is Y K^T and K^T y is Y K. Threading: OpenBLAS is the OpenMP build
 * (scripts/setup.sh), so the GEMMs and the fused loops share one OpenMP runtime.
 *
 * Fused passes come in two shapes:
 *   row passes     `omp parallel for` over the samples (rows);
 *   column passes  each thread owns a range of columns of every row (team_columns) and walks
 *                  the rows in order; used where the pass also sums bias gradients over the
 *                  rows: each db[r] is then summed by one thread in row order - no reduction,
 *                  no atomics, the same bits for any number of threads. */
#include <omp.h>
#include <string.h>

#include "hamnet/kernels.h"
#include "kernels/act.h"

#define NT 0, 1 /* op(A) = A, op(B) = B^T */
#define NN 0, 0
#define TN 1, 0

/* Threading only pays above a few thousand elements. */
#define HN_PAR_MIN 8192

/* Between the GEMMs of a backward step: the caller's hook (hn_step.between), if any - the
 * trainer lets non-blocking gradient allreduces progress there. Always on the calling thread,
 * outside parallel regions. */
static void between_gemms(const hn_step *s) {
  if (s->between)
    s->between(s->between_ctx);
}

/* The columns [lo, hi) of an n-column array that this thread of the current team owns: equal
 * shares in whole blocks of 16 elements (a 64-byte cache line of floats). */
static void team_columns(int n, int *lo, int *hi) {
  const long P = omp_get_num_threads(), t = omp_get_thread_num();
  const long blocks = (n + 15) / 16;
  const int a = (int)(16 * (blocks * t / P)), b = (int)(16 * (blocks * (t + 1) / P));
  *lo = a < n ? a : n;
  *hi = b < n ? b : n;
}

/* ---------------------------------------------------------------------------------------- */
/* forward Euler */

void hn_euler_forward_save(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                           hn_real *Yout, hn_real *D, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *U = work;
  hn_gemm(NT, B, n, n, 1, Y, n, A, n, 0, U, n);
  const long total = (long)B * n;
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const size_t o = (size_t)i * n;
    const hn_real *y = Y + o;
    hn_real *u = U + o, *yo = Yout + o, *d = D ? D + o : NULL;
    act_row(act, 0, n, u, b, u);
#pragma omp simd
    for (int r = 0; r < n; r++) {
      yo[r] = y[r] + h * u[r];
      if (d)
        d[r] = act_deriv_from_value(act, u[r]);
    }
  }
}

void hn_euler_forward(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                      hn_real *Yout, hn_real *work) {
  hn_euler_forward_save(s, A, b, Y, Yout, NULL, work);
}

void hn_euler_backward(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                       hn_real *G, hn_real *dA, hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *U = work, *D = work + (size_t)B * n;
  hn_gemm(NT, B, n, n, 1, Y, n, A, n, 0, U, n);
  between_gemms(s);
  const long total = (long)B * n;
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *g = G + o;
      hn_real *u = U + o, *d = D + o;
      act_row(act, lo, hi, u, b, u);
#pragma omp simd
      for (int r = lo; r < hi; r++) {
        d[r] = h * g[r] * act_deriv_from_value(act, u[r]);
        db[r] += d[r];
      }
    }
  }
  hn_gemm(NN, B, n, n, 1, D, n, A, n, 1, G, n);  /* G += D A    (A^T d per sample) */
  between_gemms(s);
  hn_gemm(TN, n, n, B, 1, D, n, Y, n, 1, dA, n); /* dA += D^T Y (sum_i d_i y_i^T)  */
}

void hn_euler_backward_saved(const hn_step *s, const hn_real *A, const hn_real *Y, const hn_real *Ds,
                             hn_real *G, hn_real *dA, hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  hn_real *D = work;
  const long total = (long)B * n;
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *g = G + o, *ds = Ds + o;
      hn_real *d = D + o;
#pragma omp simd
      for (int r = lo; r < hi; r++) {
        d[r] = h * g[r] * ds[r];
        db[r] += d[r];
      }
    }
  }
  hn_gemm(NN, B, n, n, 1, D, n, A, n, 1, G, n);
  between_gemms(s);
  hn_gemm(TN, n, n, B, 1, D, n, Y, n, 1, dA, n);
}

/* ---------------------------------------------------------------------------------------- */
/* Hamiltonian (Verlet) */

void hn_ham_forward_save(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                         const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *D1, hn_real *D2,
                         hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  const hn_activation act = s->act;
  hn_real *U = work;
  const long total = (long)B * n;
  hn_gemm(NN, B, n, n, 1, Y, n, K, n, 0, U, n); /* K^T y per sample */
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const size_t o = (size_t)i * n;
    const hn_real *z = Z + o;
    hn_real *u = U + o, *zo = Zout + o, *d = D1 ? D1 + o : NULL;
    act_row(act, 0, n, u, b, u);
#pragma omp simd
    for (int c = 0; c < n; c++) {
      zo[c] = z[c] - h * u[c];
      if (d)
        d[c] = act_deriv_from_value(act, u[c]);
    }
  }
  hn_gemm(NT, B, n, n, 1, Zout, n, K, n, 0, U, n); /* K z+ per sample */
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const size_t o = (size_t)i * n;
    const hn_real *y = Y + o;
    hn_real *v = U + o, *yo = Yout + o, *d = D2 ? D2 + o : NULL;
    act_row(act, 0, n, v, b, v);
#pragma omp simd
    for (int r = 0; r < n; r++) {
      yo[r] = y[r] + h * v[r];
      if (d)
        d[r] = act_deriv_from_value(act, v[r]);
    }
  }
}

void hn_ham_forward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                    const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *work) {
  hn_ham_forward_save(s, K, b, Y, Z, Yout, Zout, NULL, NULL, work);
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
  between_gemms(s);
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *gy = Gy + o, *y1 = Y1 + o;
      hn_real *v = V + o, *d = D + o, *y0 = recompute ? Y0 + o : NULL;
      act_row(act, lo, hi, v, b, v);
#pragma omp simd
      for (int r = lo; r < hi; r++) {
        if (y0)
          y0[r] = y1[r] - h * v[r];
        d[r] = h * gy[r] * act_deriv_from_value(act, v[r]);
        db[r] += d[r];
      }
    }
  }
  hn_gemm(NN, B, n, n, 1, D, n, K, n, 1, Gz, n);  /* gz += K^T dv */
  between_gemms(s);
  hn_gemm(TN, n, n, B, 1, D, n, Z1, n, 1, dK, n); /* dK += dv z1^T */
  between_gemms(s);
  /* first half-step z1 = z0 - h s(K^T y0 + b) */
  hn_gemm(NN, B, n, n, 1, Y0, n, K, n, 0, V, n);
  between_gemms(s);
  const int want_z0 = recompute && Z0;
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *gz = Gz + o, *z1 = Z1 + o;
      hn_real *u = V + o, *d = D + o, *z0 = want_z0 ? Z0 + o : NULL;
      act_row(act, lo, hi, u, b, u);
#pragma omp simd
      for (int c = lo; c < hi; c++) {
        if (z0)
          z0[c] = z1[c] + h * u[c];
        d[c] = -h * gz[c] * act_deriv_from_value(act, u[c]);
        db[c] += d[c];
      }
    }
  }
  hn_gemm(NT, B, n, n, 1, D, n, K, n, 1, Gy, n);  /* gy += K du */
  between_gemms(s);
  hn_gemm(TN, n, n, B, 1, Y0, n, D, n, 1, dK, n); /* dK += y0 du^T */
}

void hn_ham_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Y0, const hn_real *Z1,
                           const hn_real *D1, const hn_real *D2, hn_real *Gy, hn_real *Gz, hn_real *dK,
                           hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h = s->h;
  hn_real *D = work;
  const long total = (long)B * n;
  /* second half-step: dv = h gy s'(K z1 + b) */
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *gy = Gy + o, *ds = D2 + o;
      hn_real *d = D + o;
#pragma omp simd
      for (int r = lo; r < hi; r++) {
        d[r] = h * gy[r] * ds[r];
        db[r] += d[r];
      }
    }
  }
  hn_gemm(NN, B, n, n, 1, D, n, K, n, 1, Gz, n);  /* gz += K^T dv */
  between_gemms(s);
  hn_gemm(TN, n, n, B, 1, D, n, Z1, n, 1, dK, n); /* dK += dv z1^T */
  between_gemms(s);
  /* first half-step: du = -h gz s'(K^T y0 + b) */
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *gz = Gz + o, *ds = D1 + o;
      hn_real *d = D + o;
#pragma omp simd
      for (int c = lo; c < hi; c++) {
        d[c] = -h * gz[c] * ds[c];
        db[c] += d[c];
      }
    }
  }
  hn_gemm(NT, B, n, n, 1, D, n, K, n, 1, Gy, n);  /* gy += K du */
  between_gemms(s);
  hn_gemm(TN, n, n, B, 1, Y0, n, D, n, 1, dK, n); /* dK += y0 du^T */
}

/* ---------------------------------------------------------------------------------------- */
/* leapfrog */

void hn_leap_forward_save(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                          const hn_real *Yprev, hn_real *Yout, hn_real *S, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *U = work, *Sg = S ? S : work;
  const long total = (long)B * n;
  hn_gemm(NT, B, n, n, 1, Y, n, K, n, 0, U, n);
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    const size_t o = (size_t)i * n;
    const hn_real *y = Y + o, *yp = Yprev + o, *u = U + o;
    hn_real *sg = Sg + o, *yo = Yout + o;
    act_row(act, 0, n, u, b, sg);
#pragma omp simd
    for (int r = 0; r < n; r++)
      yo[r] = 2 * y[r] - yp[r];
  }
  hn_gemm(NN, B, n, n, -h2, Sg, n, K, n, 1, Yout, n); /* -h^2 K^T s per sample */
}

void hn_leap_forward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                     const hn_real *Yprev, hn_real *Yout, hn_real *work) {
  hn_leap_forward_save(s, K, b, Y, Yprev, Yout, NULL, work);
}

/* p_new = 2 p + q (the K^T w term is added by a GEMM afterwards), q_new = -p. */
static void leap_adjoint_shift(int B, int n, hn_real *P, hn_real *Q) {
  const long total = (long)B * n;
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
  for (int i = 0; i < B; i++) {
    hn_real *p = P + (size_t)i * n, *q = Q + (size_t)i * n;
#pragma omp simd
    for (int c = 0; c < n; c++) {
      hn_real p_old = p[c];
      p[c] = 2 * p_old + q[c];
      q[c] = -p_old;
    }
  }
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
  between_gemms(s);
  hn_gemm(NT, B, n, n, 1, P, n, K, n, 0, W, n); /* K p */
  between_gemms(s);
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      hn_real *sg = S + o, *w = W + o;
      act_row(act, lo, hi, sg, b, sg);
#pragma omp simd
      for (int r = lo; r < hi; r++) {
        w[r] *= act_deriv_from_value(act, sg[r]);
        db[r] += -h2 * w[r];
      }
    }
  }
  hn_gemm(TN, n, n, B, -h2, S, n, P, n, 1, dK, n); /* dK -= h^2 s p^T */
  between_gemms(s);
  hn_gemm(TN, n, n, B, -h2, W, n, Y, n, 1, dK, n); /* dK -= h^2 w y^T */
  between_gemms(s);
  if (Yprev_out) {
#pragma omp parallel for if (total > HN_PAR_MIN) schedule(static)
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
#pragma omp simd
      for (int c = 0; c < n; c++)
        Yprev_out[o + c] = 2 * Y[o + c] - Ynext[o + c];
    }
    hn_gemm(NN, B, n, n, -h2, S, n, K, n, 1, Yprev_out, n);
    between_gemms(s);
  }
  leap_adjoint_shift(B, n, P, Q);
  hn_gemm(NN, B, n, n, -h2, W, n, K, n, 1, P, n); /* p -= h^2 K^T w */
}

void hn_leap_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Y, const hn_real *S,
                            hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, hn_real *work) {
  const int B = s->batch, n = s->width;
  const hn_real h2 = s->h * s->h;
  const hn_activation act = s->act;
  hn_real *W = work;
  const long total = (long)B * n;
  hn_gemm(NT, B, n, n, 1, P, n, K, n, 0, W, n); /* K p */
  between_gemms(s);
#pragma omp parallel if (total > HN_PAR_MIN)
  {
    int lo, hi;
    team_columns(n, &lo, &hi);
    for (int i = 0; i < B; i++) {
      const size_t o = (size_t)i * n;
      const hn_real *sg = S + o;
      hn_real *w = W + o;
#pragma omp simd
      for (int r = lo; r < hi; r++) {
        w[r] *= act_deriv_from_value(act, sg[r]);
        db[r] += -h2 * w[r];
      }
    }
  }
  hn_gemm(TN, n, n, B, -h2, S, n, P, n, 1, dK, n); /* dK -= h^2 s p^T */
  between_gemms(s);
  hn_gemm(TN, n, n, B, -h2, W, n, Y, n, 1, dK, n); /* dK -= h^2 w y^T */
  between_gemms(s);
  leap_adjoint_shift(B, n, P, Q);
  hn_gemm(NN, B, n, n, -h2, W, n, K, n, 1, P, n); /* p -= h^2 K^T w */
}

/* ---------------------------------------------------------------------------------------- */

int hn_layer_gemms(hn_arch arch, int B, int n, hn_gemm_shape *out) {
  const hn_gemm_shape fwd_nt = {NT, B, n, n, 1, 0}, fwd_nn = {NN, B, n, n, 1, 0};
  const hn_gemm_shape adj_nn = {NN, B, n, n, 1, 1}, adj_nt = {NT, B, n, n, 1, 1};
  const hn_gemm_shape grad_tn = {TN, n, n, B, 1, 1};
  int k = 0;
  switch (arch) {
  case HN_ARCH_RESNET:
  case HN_ARCH_ANTISYM: /* U = Y A^T | G += D A, dA += D^T Y */
    out[k++] = fwd_nt;
    out[k++] = adj_nn;
    out[k++] = grad_tn;
    break;
  case HN_ARCH_HAMILTONIAN: /* Y K, Z+ K^T | Gz += Dv K, dK += Dv^T Z1, Gy += Du K^T, dK += Y0^T Du */
    out[k++] = fwd_nn;
    out[k++] = fwd_nt;
    out[k++] = adj_nn;
    out[k++] = grad_tn;
    out[k++] = adj_nt;
    out[k++] = grad_tn;
    break;
  case HN_ARCH_LEAPFROG: /* Y K^T, Yout -= S K | W = P K^T, dK -= S^T P, dK -= W^T Y, P -= W K */
    out[k++] = fwd_nt;
    out[k++] = adj_nn;
    out[k++] = fwd_nt;
    out[k++] = grad_tn;
    out[k++] = grad_tn;
    out[k++] = adj_nn;
    break;
  default:
    break;
  }
  return k;
}
