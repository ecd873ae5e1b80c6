/* step_ref.c - reference layer steps: one sample at a time, plain loops, no BLAS, no OpenMP.
 *
 * Frozen on purpose (HPCG's _ref kernels): these are the definition the fast kernels in
 * step.c are tested against. Index names follow README "The mathematics": K[r][c] is row r (output), column
 * c (input); (K y)_r = sum_c K[r][c] y_c and (K^T y)_c = sum_r K[r][c] y_r. */
#include "hamnet/kernels.h"

void hn_euler_forward_ref(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                          hn_real *Yout, hn_real *work) {
  const int n = s->width;
  for (int i = 0; i < s->batch; i++) {
    const hn_real *y = Y + (size_t)i * n;
    hn_real *yo = Yout + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      double u = b[r];
      for (int c = 0; c < n; c++)
        u += (double)A[r * n + c] * y[c];
      work[r] = y[r] + s->h * hn_act(s->act, (hn_real)u);
    }
    for (int r = 0; r < n; r++)
      yo[r] = work[r];
  }
}

void hn_euler_backward_ref(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                           hn_real *G, hn_real *dA, hn_real *db, hn_real *work) {
  const int n = s->width;
  hn_real *d = work;
  for (int i = 0; i < s->batch; i++) {
    const hn_real *y = Y + (size_t)i * n;
    hn_real *g = G + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      double u = b[r];
      for (int c = 0; c < n; c++)
        u += (double)A[r * n + c] * y[c];
      d[r] = s->h * g[r] * hn_act_deriv(s->act, (hn_real)u);
    }
    for (int c = 0; c < n; c++) {
      double acc = g[c];
      for (int r = 0; r < n; r++)
        acc += (double)A[r * n + c] * d[r];
      g[c] = (hn_real)acc;
    }
    for (int r = 0; r < n; r++) {
      for (int c = 0; c < n; c++)
        dA[r * n + c] += d[r] * y[c];
      db[r] += d[r];
    }
  }
}

void hn_ham_forward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                        const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *work) {
  const int n = s->width;
  hn_real *z1 = work, *y1 = work + n;
  for (int i = 0; i < s->batch; i++) {
    const hn_real *y = Y + (size_t)i * n, *z = Z + (size_t)i * n;
    for (int c = 0; c < n; c++) {
      double u = b[c];
      for (int r = 0; r < n; r++)
        u += (double)K[r * n + c] * y[r];
      z1[c] = z[c] - s->h * hn_act(s->act, (hn_real)u);
    }
    for (int r = 0; r < n; r++) {
      double v = b[r];
      for (int c = 0; c < n; c++)
        v += (double)K[r * n + c] * z1[c];
      y1[r] = y[r] + s->h * hn_act(s->act, (hn_real)v);
    }
    for (int k = 0; k < n; k++) {
      Yout[(size_t)i * n + k] = y1[k];
      Zout[(size_t)i * n + k] = z1[k];
    }
  }
}

void hn_ham_backward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y1,
                         const hn_real *Z1, hn_real *Y0, hn_real *Z0, int recompute, hn_real *Gy,
                         hn_real *Gz, hn_real *dK, hn_real *db, hn_real *work) {
  const int n = s->width;
  hn_real *dv = work, *du = work + n, *tmp = work + 2 * n;
  for (int i = 0; i < s->batch; i++) {
    const hn_real *y1 = Y1 + (size_t)i * n, *z1 = Z1 + (size_t)i * n;
    hn_real *y0 = Y0 + (size_t)i * n, *gy = Gy + (size_t)i * n, *gz = Gz + (size_t)i * n;
    /* second half-step: y1 = y0 + h s(K z1 + b) */
    for (int r = 0; r < n; r++) {
      double v = b[r];
      for (int c = 0; c < n; c++)
        v += (double)K[r * n + c] * z1[c];
      if (recompute)
        y0[r] = y1[r] - s->h * hn_act(s->act, (hn_real)v);
      dv[r] = s->h * gy[r] * hn_act_deriv(s->act, (hn_real)v);
    }
    for (int c = 0; c < n; c++) {
      double acc = gz[c];
      for (int r = 0; r < n; r++)
        acc += (double)K[r * n + c] * dv[r];
      gz[c] = (hn_real)acc;
    }
    for (int r = 0; r < n; r++) {
      for (int c = 0; c < n; c++)
        dK[r * n + c] += dv[r] * z1[c];
      db[r] += dv[r];
    }
    /* first half-step: z1 = z0 - h s(K^T y0 + b) */
    for (int c = 0; c < n; c++) {
      double u = b[c];
      for (int r = 0; r < n; r++)
        u += (double)K[r * n + c] * y0[r];
      if (recompute && Z0)
        tmp[c] = z1[c] + s->h * hn_act(s->act, (hn_real)u);
      du[c] = -s->h * gz[c] * hn_act_deriv(s->act, (hn_real)u);
    }
    for (int r = 0; r < n; r++) {
      double acc = gy[r];
      for (int c = 0; c < n; c++)
        acc += (double)K[r * n + c] * du[c];
      gy[r] = (hn_real)acc;
    }
    for (int r = 0; r < n; r++)
      for (int c = 0; c < n; c++)
        dK[r * n + c] += y0[r] * du[c];
    for (int c = 0; c < n; c++)
      db[c] += du[c];
    if (recompute && Z0)
      for (int c = 0; c < n; c++)
        Z0[(size_t)i * n + c] = tmp[c];
  }
}

void hn_leap_forward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                         const hn_real *Yprev, hn_real *Yout, hn_real *work) {
  const int n = s->width;
  const hn_real h2 = s->h * s->h;
  hn_real *sg = work;
  for (int i = 0; i < s->batch; i++) {
    const hn_real *y = Y + (size_t)i * n, *yp = Yprev + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      double u = b[r];
      for (int c = 0; c < n; c++)
        u += (double)K[r * n + c] * y[c];
      sg[r] = hn_act(s->act, (hn_real)u);
    }
    for (int c = 0; c < n; c++) {
      double f = 0;
      for (int r = 0; r < n; r++)
        f += (double)K[r * n + c] * sg[r];
      Yout[(size_t)i * n + c] = 2 * y[c] - yp[c] - h2 * (hn_real)f;
    }
  }
}

void hn_leap_backward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                          const hn_real *Ynext, hn_real *Yprev_out, hn_real *P, hn_real *Q,
                          hn_real *dK, hn_real *db, hn_real *work) {
  const int n = s->width;
  const hn_real h2 = s->h * s->h;
  hn_real *sg = work, *w = work + n;
  for (int i = 0; i < s->batch; i++) {
    const hn_real *y = Y + (size_t)i * n;
    hn_real *p = P + (size_t)i * n, *q = Q + (size_t)i * n;
    for (int r = 0; r < n; r++) {
      double u = b[r], kp = 0;
      for (int c = 0; c < n; c++) {
        u += (double)K[r * n + c] * y[c];
        kp += (double)K[r * n + c] * p[c];
      }
      sg[r] = hn_act(s->act, (hn_real)u);
      w[r] = hn_act_deriv(s->act, (hn_real)u) * (hn_real)kp;
    }
    for (int r = 0; r < n; r++) {
      for (int c = 0; c < n; c++)
        dK[r * n + c] -= h2 * (sg[r] * p[c] + w[r] * y[c]);
      db[r] -= h2 * w[r];
    }
    for (int c = 0; c < n; c++) {
      double f = 0, kw = 0;
      for (int r = 0; r < n; r++) {
        f += (double)K[r * n + c] * sg[r];
        kw += (double)K[r * n + c] * w[r];
      }
      if (Yprev_out)
        Yprev_out[(size_t)i * n + c] = 2 * y[c] - Ynext[(size_t)i * n + c] - h2 * (hn_real)f;
      hn_real p_old = p[c];
      p[c] = 2 * p_old + q[c] - h2 * (hn_real)kw;
      q[c] = -p_old;
    }
  }
}
