/* gemm.c - the BLAS entry points in hn_real precision, and the activations. */
#include <cblas.h>
#include <math.h>

#include "hamnet/kernels.h"

void hn_gemm(int transa, int transb, int m, int n, int k, hn_real alpha, const hn_real *A, int lda,
             const hn_real *B, int ldb, hn_real beta, hn_real *C, int ldc) {
#ifdef HN_USE_DOUBLE
  cblas_dgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
              m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
              m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

hn_real hn_act(hn_activation act, hn_real u) {
  if (act == HN_ACT_RELU)
    return u > 0 ? u : 0;
#ifdef HN_USE_DOUBLE
  return tanh(u);
#else
  return tanhf(u);
#endif
}

hn_real hn_act_deriv(hn_activation act, hn_real u) {
  if (act == HN_ACT_RELU)
    return u > 0 ? 1 : 0;
  hn_real t = hn_act(act, u);
  return 1 - t * t;
}

hn_real hn_act_deriv_from_value(hn_activation act, hn_real s) {
  if (act == HN_ACT_RELU)
    return s > 0 ? 1 : 0;
  return 1 - s * s;
}
