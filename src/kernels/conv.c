/* conv.c - the fast 3x3 convolution primitives (hamnet/conv.h): im2col of a tile and one GEMM.
 *
 * im2col copies each input map nine times, shifted: per map and shift one block copy of the rows
 * that stay inside (a shift by one row leaves one zero row at the edge; a shift by one column
 * wraps one value per row into the next row, which is then set to 0). The
 * GEMM then has the inner dimension 9 cin, which keeps OpenBLAS's microkernel busy even for 16
 * channels (K^T products use the flipped kernel instead of a col2im scatter: hamnet/conv.h). */
#include <string.h>

#include "hamnet/conv.h"
#include "hamnet/kernels.h"

void hn_conv3_flip(int cout, int cin, const hn_real *K, hn_real *Kt) {
  for (int o = 0; o < cout; o++)
    for (int i = 0; i < cin; i++)
      for (int k = 0; k < 9; k++)
        Kt[((size_t)i * cout + o) * 9 + k] = K[((size_t)o * cin + i) * 9 + (8 - k)];
}

void hn_im2col3(const hn_conv_tile *t, int cin, const hn_real *X, int ldx, hn_real *col) {
  const int H = t->H, W = t->W, HW = H * W;
  const size_t cols = (size_t)hn_conv_cols(t);
  for (int i = 0; i < cin; i++) {
    const hn_real *xi = X + (size_t)i * ldx;
    for (int ky = 0; ky < 3; ky++)
      for (int kx = 0; kx < 3; kx++) {
        hn_real *dst = col + ((size_t)i * 9 + (size_t)(ky * 3 + kx)) * cols;
        const int dy = ky - 1, dx = kx - 1;
        /* rows y0..y1-1 read rows y0+dy..y1-1+dy of the image: one block of (y1 - y0) W values,
         * shifted by dx; the row outside the image and the column the shift wrapped into are 0 */
        const int y0 = dy < 0 ? 1 : 0, y1 = dy > 0 ? H - 1 : H;
        const size_t n = (size_t)(y1 - y0) * W;
        for (int b = 0; b < t->nb; b++) {
          hn_real *d = dst + (size_t)b * HW;
          const hn_real *s = xi + (size_t)b * HW + (size_t)(y0 + dy) * W;
          if (y0 > 0)
            memset(d, 0, (size_t)W * sizeof(hn_real));
          if (y1 < H)
            memset(d + (size_t)y1 * W, 0, (size_t)W * sizeof(hn_real));
          if (n == 0)
            continue;
          hn_real *e = d + (size_t)y0 * W;
          if (dx == 0) {
            memcpy(e, s, n * sizeof(hn_real));
          } else if (dx < 0) { /* e[x] = s[x - 1], column 0 is 0 */
            memcpy(e + 1, s, (n - 1) * sizeof(hn_real));
            for (size_t q = 0; q < n; q += (size_t)W)
              e[q] = 0;
          } else { /* e[x] = s[x + 1], column W - 1 is 0 */
            memcpy(e, s + 1, (n - 1) * sizeof(hn_real));
            for (size_t q = (size_t)W - 1; q < n; q += (size_t)W)
              e[q] = 0;
          }
        }
      }
  }
}

void hn_conv3_apply(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *col, hn_real beta,
                    hn_real *Y, int ldy) {
  const int cols = hn_conv_cols(t);
  hn_gemm(0, 0, cout, cols, 9 * cin, 1, K, 9 * cin, col, cols, beta, Y, ldy);
}

void hn_conv3_grad(const hn_conv_tile *t, int cout, int cin, hn_real alpha, const hn_real *G, int ldg,
                   const hn_real *col, hn_real *dK) {
  const int cols = hn_conv_cols(t);
  hn_gemm(0, 1, cout, 9 * cin, cols, alpha, G, ldg, col, cols, 1, dK, 9 * cin);
}

void hn_conv3_forward(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *X, int ldx,
                      hn_real beta, hn_real *Y, int ldy, hn_real *col) {
  hn_im2col3(t, cin, X, ldx, col);
  hn_conv3_apply(t, cout, cin, K, col, beta, Y, ldy);
}
