/* winograd.c - 3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (hamnet/conv.h).
 *
 * Why: im2col + GEMM spends 9 multiply-adds per output, input channel and output channel; the
 * GEMM already runs at the core's peak there (README "Convolutional networks"), so the only way
 * to a faster step is fewer flops. F(4x4, 3x3) computes a 4x4 output tile from a 6x6 input tile
 * with 36 products per channel pair instead of 144 (4x fewer): Y = A^T [(G g G^T) .* (B^T d B)] A
 * (Lavin & Gray, "Fast algorithms for convolutional neural networks", 2016). Over a tile of
 * samples the elementwise products of all channels become 36 independent GEMMs
 *   M[xi] (cout x P) = U[xi] (cout x cin) V[xi] (cin x P),  P = the 4x4 output tiles,
 * and the weight gradient the 36 GEMMs dU[xi] = Gbar[xi] V[xi]^T followed by the adjoint of the
 * kernel transform (dK = G^T dU G), with Gbar = A G A^T the adjoint of the output transform.
 *
 * The transforms run per channel, sample and row of tiles, in chunks of up to CHUNK tiles along
 * x: the six input rows are copied (zero padded) into a small stack buffer, transformed down the
 * columns (vectorised along x), then across each tile. Matrices (points 0, +-1, +-2, inf):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * Rounding: the transforms' coefficients grow to 8 and 1/24, so float results differ from the
 * direct sum by a few 1e-6 relative (test_conv measures it); the double build by ~1e-15. */
#include <string.h>

#include "hamnet/conv.h"
#include "hamnet/kernels.h"

enum { CHUNK = 32, ROWBUF = 4 * CHUNK + 2 };

/* 1-D transforms of six (or four, three) values; the 2-D ones apply them down and across. */
#define BT6(d, o, S)                                                                                   \
  do {                                                                                                 \
    o[0 * S] = 4 * d[0] - 5 * d[2] + d[4];                                                             \
    o[1 * S] = -4 * (d[1] + d[2]) + d[3] + d[4];                                                       \
    o[2 * S] = 4 * (d[1] - d[2]) - d[3] + d[4];                                                        \
    o[3 * S] = 2 * (d[3] - d[1]) - d[2] + d[4];                                                        \
    o[4 * S] = 2 * (d[1] - d[3]) - d[2] + d[4];                                                        \
    o[5 * S] = 4 * d[1] - 5 * d[3] + d[5];                                                             \
  } while (0)

static inline int tiles_y(const hn_conv_tile *t) { return (t->H + 3) / 4; }
static inline int tiles_x(const hn_conv_tile *t) { return (t->W + 3) / 4; }

int hn_wino_tiles(const hn_conv_tile *t) { return t->nb * tiles_y(t) * tiles_x(t); }

/* Distance between the 36 planes of a transformed tensor of n values per plane: n rounded up to
 * whole cache lines, and to an odd number of them. Why: the transforms read or write all 36
 * planes at once, and planes a multiple of 4 KiB apart all fall into the same L1 sets (a
 * 32-channel 14x14 tile ran 6x slower for that). */
static size_t plane_stride(size_t n) {
  const size_t line = 64 / sizeof(hn_real), lines = (n + line - 1) / line;
  return (lines | 1) * line;
}

size_t hn_wino_kernel_size(int cout, int cin) { return 36 * plane_stride((size_t)cout * cin); }

size_t hn_wino_input_size(const hn_conv_tile *t, int cin) {
  return 36 * plane_stride((size_t)cin * hn_wino_tiles(t));
}

size_t hn_wino_scratch(const hn_conv_tile *t, int cout, int cin) {
  return hn_wino_input_size(t, cout) + hn_wino_kernel_size(cout, cin);
}

void hn_wino_kernel(int cout, int cin, const hn_real *K, hn_real *U) {
  const size_t n = (size_t)cout * cin, plane = plane_stride(n);
  const hn_real q4 = (hn_real)0.25, q6 = (hn_real)(1.0 / 6), q12 = (hn_real)(1.0 / 12), q24 = (hn_real)(1.0 / 24);
  for (size_t oi = 0; oi < n; oi++) {
    const hn_real *g = K + oi * 9;
    hn_real t[6][3]; /* G g: down the kernel's columns */
    for (int c = 0; c < 3; c++) {
      const hn_real a = g[c], b = g[3 + c], e = g[6 + c];
      t[0][c] = q4 * a;
      t[1][c] = -q6 * (a + b + e);
      t[2][c] = -q6 * (a - b + e);
      t[3][c] = q24 * a + q12 * b + q6 * e;
      t[4][c] = q24 * a - q12 * b + q6 * e;
      t[5][c] = e;
    }
    for (int r = 0; r < 6; r++) { /* (G g) G^T: across */
      const hn_real a = t[r][0], b = t[r][1], e = t[r][2];
      hn_real *u = U + (size_t)(r * 6) * plane + oi;
      u[0 * plane] = q4 * a;
      u[1 * plane] = -q6 * (a + b + e);
      u[2 * plane] = -q6 * (a - b + e);
      u[3 * plane] = q24 * a + q12 * b + q6 * e;
      u[4 * plane] = q24 * a - q12 * b + q6 * e;
      u[5 * plane] = e;
    }
  }
}

/* dK[oi] += alpha G^T dU[.][oi] G for every channel pair: the adjoint of hn_wino_kernel. Two
 * passes over dU, vectorised over the channel pairs: across (dU G, in place: the three results of
 * a row overwrite its first three planes), then down (G^T .) into dK. */
static void kernel_adjoint(int cout, int cin, hn_real alpha, hn_real *dU, hn_real *dK) {
  const size_t n = (size_t)cout * cin, plane = plane_stride(n);
  const hn_real q4 = (hn_real)0.25, q6 = (hn_real)(1.0 / 6), q12 = (hn_real)(1.0 / 12), q24 = (hn_real)(1.0 / 24);
  for (int r = 0; r < 6; r++) {
    hn_real *u = dU + (size_t)(r * 6) * plane;
#pragma omp simd
    for (size_t oi = 0; oi < n; oi++) {
      const hn_real u0 = u[oi], u1 = u[plane + oi], u2 = u[2 * plane + oi], u3 = u[3 * plane + oi],
                    u4 = u[4 * plane + oi], u5 = u[5 * plane + oi];
      u[oi] = q4 * u0 - q6 * (u1 + u2) + q24 * (u3 + u4);
      u[plane + oi] = q6 * (u2 - u1) + q12 * (u3 - u4);
      u[2 * plane + oi] = q6 * (u3 + u4 - u1 - u2) + u5;
    }
  }
  for (int c = 0; c < 3; c++) {
    const hn_real *t = dU + (size_t)c * plane; /* t[r * 6 plane + oi] = (dU G)[r][c] */
    const size_t R = (size_t)6 * plane;
#pragma omp simd
    for (size_t oi = 0; oi < n; oi++) {
      const hn_real u0 = t[oi], u1 = t[R + oi], u2 = t[2 * R + oi], u3 = t[3 * R + oi], u4 = t[4 * R + oi],
                    u5 = t[5 * R + oi];
      hn_real *k = dK + oi * 9 + c;
      k[0] += alpha * (q4 * u0 - q6 * (u1 + u2) + q24 * (u3 + u4));
      k[3] += alpha * (q6 * (u2 - u1) + q12 * (u3 - u4));
      k[6] += alpha * (q6 * (u3 + u4 - u1 - u2) + u5);
    }
  }
}

/* rows[k][0 .. w) = row y0 + k of map x (image columns x0 ..), 0 outside the map; nrows rows. */
static void load_rows(const hn_conv_tile *t, const hn_real *map, int y0, int x0, int w, int nrows,
                      hn_real rows[][ROWBUF]) {
  const int a = x0 < 0 ? -x0 : 0, b = x0 + w > t->W ? t->W - x0 : w; /* the inside part [a, b) */
  for (int k = 0; k < nrows; k++) {
    const int y = y0 + k;
    hn_real *d = rows[k];
    if (y < 0 || y >= t->H || b <= a) {
      for (int x = 0; x < w; x++)
        d[x] = 0;
      continue;
    }
    const hn_real *s = map + (size_t)y * t->W + x0;
    for (int x = 0; x < a; x++)
      d[x] = 0;
#pragma omp simd
    for (int x = a; x < b; x++)
      d[x] = s[x];
    for (int x = b; x < w; x++)
      d[x] = 0;
  }
}

void hn_wino_input(const hn_conv_tile *t, int cin, const hn_real *X, int ldx, hn_real *V) {
  const int TY = tiles_y(t), TX = tiles_x(t), HW = t->H * t->W;
  const size_t P = (size_t)hn_wino_tiles(t), plane = plane_stride((size_t)cin * P);
  hn_real rows[6][ROWBUF], tmp[6][ROWBUF];
  for (int i = 0; i < cin; i++)
    for (int b = 0; b < t->nb; b++) {
      const hn_real *map = X + (size_t)i * ldx + (size_t)b * HW;
      for (int ty = 0; ty < TY; ty++)
        for (int tx0 = 0; tx0 < TX; tx0 += CHUNK) {
          const int nt = TX - tx0 < CHUNK ? TX - tx0 : CHUNK, w = 4 * nt + 2;
          load_rows(t, map, 4 * ty - 1, 4 * tx0 - 1, w, 6, rows);
#pragma omp simd
          for (int x = 0; x < w; x++) { /* down: B^T d */
            const hn_real d[6] = {rows[0][x], rows[1][x], rows[2][x], rows[3][x], rows[4][x], rows[5][x]};
            hn_real *o = &tmp[0][x];
            BT6(d, o, ROWBUF);
          }
          hn_real *v = V + (size_t)i * P + ((size_t)b * TY + ty) * TX + tx0;
          for (int r = 0; r < 6; r++) { /* across: (B^T d) B */
            hn_real *vr = v + (size_t)(r * 6) * plane;
#pragma omp simd
            for (int k = 0; k < nt; k++) {
              const hn_real *d = &tmp[r][4 * k];
              hn_real *o = vr + k;
              BT6(d, o, plane);
            }
          }
        }
    }
}

void hn_wino_apply(const hn_conv_tile *t, int cout, int cin, const hn_real *U, const hn_real *V, hn_real beta,
                   hn_real *Y, int ldy, hn_real *scratch) {
  const int TY = tiles_y(t), TX = tiles_x(t), HW = t->H * t->W;
  const int P = hn_wino_tiles(t);
  const size_t plane = plane_stride((size_t)cout * P), uplane = plane_stride((size_t)cout * cin),
               vplane = plane_stride((size_t)cin * P);
  hn_real *M = scratch;
  for (int xi = 0; xi < 36; xi++)
    hn_gemm(0, 0, cout, P, cin, 1, U + xi * uplane, cin, V + xi * vplane, P, 0, M + xi * plane, P);
  hn_real tmp[6][ROWBUF], out[4][ROWBUF];
  for (int o = 0; o < cout; o++)
    for (int b = 0; b < t->nb; b++) {
      hn_real *map = Y + (size_t)o * ldy + (size_t)b * HW;
      for (int ty = 0; ty < TY; ty++)
        for (int tx0 = 0; tx0 < TX; tx0 += CHUNK) {
          const int nt = TX - tx0 < CHUNK ? TX - tx0 : CHUNK;
          const hn_real *m = M + (size_t)o * P + ((size_t)b * TY + ty) * TX + tx0;
          for (int r = 0; r < 6; r++) { /* across: M A */
            const hn_real *mr = m + (size_t)(r * 6) * plane;
#pragma omp simd
            for (int k = 0; k < nt; k++) {
              const hn_real m0 = mr[k], m1 = mr[plane + k], m2 = mr[2 * plane + k], m3 = mr[3 * plane + k],
                            m4 = mr[4 * plane + k], m5 = mr[5 * plane + k];
              const hn_real s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
              hn_real *o4 = &tmp[r][4 * k];
              o4[0] = m0 + s12 + s34;
              o4[1] = d12 + 2 * d34;
              o4[2] = s12 + 4 * s34;
              o4[3] = d12 + 8 * d34 + m5;
            }
          }
          const int w = 4 * nt;
#pragma omp simd
          for (int x = 0; x < w; x++) { /* down: A^T (M A) */
            const hn_real s12 = tmp[1][x] + tmp[2][x], d12 = tmp[1][x] - tmp[2][x], s34 = tmp[3][x] + tmp[4][x],
                          d34 = tmp[3][x] - tmp[4][x];
            out[0][x] = tmp[0][x] + s12 + s34;
            out[1][x] = d12 + 2 * d34;
            out[2][x] = s12 + 4 * s34;
            out[3][x] = d12 + 8 * d34 + tmp[5][x];
          }
          const int x0 = 4 * tx0, xw = x0 + w > t->W ? t->W - x0 : w;
          for (int r = 0; r < 4 && 4 * ty + r < t->H; r++) {
            hn_real *yr = map + (size_t)(4 * ty + r) * t->W + x0;
            if (beta == 0) {
#pragma omp simd
              for (int x = 0; x < xw; x++)
                yr[x] = out[r][x];
            } else {
#pragma omp simd
              for (int x = 0; x < xw; x++)
                yr[x] = beta * yr[x] + out[r][x];
            }
          }
        }
    }
}

/* Gbar[xi][o][p] = (A g A^T)[xi] for each 4x4 tile g of G (0 outside the map): the adjoint of the
 * output transform. */
static void output_adjoint(const hn_conv_tile *t, int cout, const hn_real *G, int ldg, hn_real *Gbar) {
  const int TY = tiles_y(t), TX = tiles_x(t), HW = t->H * t->W;
  const size_t P = (size_t)hn_wino_tiles(t), plane = plane_stride((size_t)cout * P);
  hn_real rows[4][ROWBUF], tmp[6][ROWBUF];
  for (int o = 0; o < cout; o++)
    for (int b = 0; b < t->nb; b++) {
      const hn_real *map = G + (size_t)o * ldg + (size_t)b * HW;
      for (int ty = 0; ty < TY; ty++)
        for (int tx0 = 0; tx0 < TX; tx0 += CHUNK) {
          const int nt = TX - tx0 < CHUNK ? TX - tx0 : CHUNK, w = 4 * nt;
          load_rows(t, map, 4 * ty, 4 * tx0, w, 4, rows);
#pragma omp simd
          for (int x = 0; x < w; x++) { /* down: A g */
            const hn_real g0 = rows[0][x], g1 = rows[1][x], g2 = rows[2][x], g3 = rows[3][x];
            const hn_real s02 = g0 + g2, s13 = g1 + g3;
            tmp[0][x] = g0;
            tmp[1][x] = s02 + s13;
            tmp[2][x] = s02 - s13;
            tmp[3][x] = g0 + 2 * g1 + 4 * g2 + 8 * g3;
            tmp[4][x] = g0 - 2 * g1 + 4 * g2 - 8 * g3;
            tmp[5][x] = g3;
          }
          hn_real *v = Gbar + (size_t)o * P + ((size_t)b * TY + ty) * TX + tx0;
          for (int r = 0; r < 6; r++) { /* across: (A g) A^T */
            hn_real *vr = v + (size_t)(r * 6) * plane;
#pragma omp simd
            for (int k = 0; k < nt; k++) {
              const hn_real *g = &tmp[r][4 * k];
              const hn_real s02 = g[0] + g[2], s13 = g[1] + g[3];
              vr[k] = g[0];
              vr[plane + k] = s02 + s13;
              vr[2 * plane + k] = s02 - s13;
              vr[3 * plane + k] = g[0] + 2 * g[1] + 4 * g[2] + 8 * g[3];
              vr[4 * plane + k] = g[0] - 2 * g[1] + 4 * g[2] - 8 * g[3];
              vr[5 * plane + k] = g[3];
            }
          }
        }
    }
}

void hn_wino_grad(const hn_conv_tile *t, int cout, int cin, hn_real alpha, const hn_real *G, int ldg,
                  const hn_real *V, hn_real *dK, hn_real *scratch) {
  const int P = hn_wino_tiles(t);
  const size_t gplane = plane_stride((size_t)cout * P), uplane = plane_stride((size_t)cout * cin),
               vplane = plane_stride((size_t)cin * P);
  hn_real *Gbar = scratch, *dU = scratch + hn_wino_input_size(t, cout);
  output_adjoint(t, cout, G, ldg, Gbar);
  for (int xi = 0; xi < 36; xi++)
    hn_gemm(0, 1, cout, cin, P, 1, Gbar + xi * gplane, P, V + xi * vplane, P, 0, dU + xi * uplane, cin);
  kernel_adjoint(cout, cin, alpha, dU, dK);
}
