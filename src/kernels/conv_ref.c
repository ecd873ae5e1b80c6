/* conv_ref.c - the reference 3x3 convolutions (hamnet/conv.h): loops straight from the
 * definition, accumulated in double. Frozen: the fast kernels (conv.c) are tested against these;
 * do not optimise them. */
#include <stddef.h>

#include "hamnet/conv.h"

/* x[i][q + (dy, dx)] of sample b, or 0 outside the map. */
static double at(const hn_conv_tile *t, const hn_real *X, int ldx, int i, int b, int y, int x) {
  if (y < 0 || y >= t->H || x < 0 || x >= t->W)
    return 0;
  return X[(size_t)i * ldx + ((size_t)b * t->H + y) * t->W + x];
}

void hn_conv3_forward_ref(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *X, int ldx,
                          hn_real beta, hn_real *Y, int ldy) {
  for (int o = 0; o < cout; o++)
    for (int b = 0; b < t->nb; b++)
      for (int y = 0; y < t->H; y++)
        for (int x = 0; x < t->W; x++) {
          double s = 0;
          for (int i = 0; i < cin; i++)
            for (int ky = 0; ky < 3; ky++)
              for (int kx = 0; kx < 3; kx++)
                s += (double)K[((size_t)o * cin + i) * 9 + ky * 3 + kx] * at(t, X, ldx, i, b, y + ky - 1, x + kx - 1);
          hn_real *out = &Y[(size_t)o * ldy + ((size_t)b * t->H + y) * t->W + x];
          *out = (hn_real)(s + (beta != 0 ? (double)beta * *out : 0.0));
        }
}

/* (K^T y)[i][p] = sum_{o, ky, kx} K[o][i][ky][kx] y[o][p - (ky - 1, kx - 1)]. */
void hn_conv3_adjoint_ref(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *Y, int ldy,
                          hn_real beta, hn_real *X, int ldx) {
  for (int i = 0; i < cin; i++)
    for (int b = 0; b < t->nb; b++)
      for (int y = 0; y < t->H; y++)
        for (int x = 0; x < t->W; x++) {
          double s = 0;
          for (int o = 0; o < cout; o++)
            for (int ky = 0; ky < 3; ky++)
              for (int kx = 0; kx < 3; kx++)
                s += (double)K[((size_t)o * cin + i) * 9 + ky * 3 + kx] * at(t, Y, ldy, o, b, y - ky + 1, x - kx + 1);
          hn_real *out = &X[(size_t)i * ldx + ((size_t)b * t->H + y) * t->W + x];
          *out = (hn_real)(s + (beta != 0 ? (double)beta * *out : 0.0));
        }
}

/* d<G, K X>/dK[o][i][ky][kx] = sum_{b, p} G[o][p] x[i][p + (ky - 1, kx - 1)]. */
void hn_conv3_grad_ref(const hn_conv_tile *t, int cout, int cin, hn_real alpha, const hn_real *G, int ldg,
                       const hn_real *X, int ldx, hn_real *dK) {
  for (int o = 0; o < cout; o++)
    for (int i = 0; i < cin; i++)
      for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
          double s = 0;
          for (int b = 0; b < t->nb; b++)
            for (int y = 0; y < t->H; y++)
              for (int x = 0; x < t->W; x++)
                s += (double)G[(size_t)o * ldg + ((size_t)b * t->H + y) * t->W + x] *
                     at(t, X, ldx, i, b, y + ky - 1, x + kx - 1);
          dK[((size_t)o * cin + i) * 9 + ky * 3 + kx] += (hn_real)((double)alpha * s);
        }
}
