/* winograd.c - 3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (hamnet/conv.h).
 *
 * Why: im2col + GEMM spends 9 multiply-adds per output, input channel and output channel; the
 * GEMM already runs at the core's peak there (README "Convolutional networks"), so the only way
 * to a faster step is fewer flops. F(4x4, 3x3) computes a 4x4 output tile from a 6x6 input tile
 * with 36 products per channel pair instead of 144 (4x fewer): Y = A^T [(G g G^T) .* (B^T d B)] A
 * (Lavin & Gray, "Fast algorithms for convolutional neural networks", 2016). Over a tile of
 * samples the elementwise products of all channels become 36 independent GEMMs
 *   M[xi] (P x cout) = V[xi] (P x cin) U[xi] (cin x cout),  P = the 4x4 output tiles,
 * and the weight gradient the 36 GEMMs dU[xi] = Gbar[xi]^T V[xi] followed by the adjoint of the
 * kernel transform (dK = G^T dU G), with Gbar = A g A^T the adjoint of the output transform.
 *
 * Layout: the transforms run vectorised over channels. Each sample's maps are transposed to
 * [y][x][c] in a zero-padded buffer (8x8 AVX blocks over the whole map), every tile is then a
 * 6x6 (or 4x4) grid of channel vectors, and V, M, Gbar are P-major ([xi][p][c]), so the
 * transforms read and write whole vectors. (Vectorising along x instead left 2-7 tiles per row -
 * too short for a vector - and the transforms cost more than the GEMMs.) Matrices (points 0,
 * +-1, +-2, inf):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * Rounding: the transforms' coefficients grow to 8 and 1/24, so float results differ from the
 * direct sum by a few 1e-6 relative (test_conv measures it); the double build by ~1e-15. */
#include <string.h>

#include "hamnet/conv.h"
#include "hamnet/kernels.h"
#include "kernels/transpose.h"

/* Channels per block of the per-tile transforms: their temporaries (36 vectors) stay in L1. */
enum { CB = 64 };

/* The 1-D input transform B^T of six values d[0..5] into o[0], o[S], ..., o[5 S]. */
#define BT6(d, o, S)                                                                                   \
  do {                                                                                                 \
    o[0 * S] = 4 * d[0] - 5 * d[2] + d[4];                                                             \
    o[1 * S] = -4 * (d[1] + d[2]) + d[3] + d[4];                                                       \
    o[2 * S] = 4 * (d[1] - d[2]) - d[3] + d[4];                                                        \
    o[3 * S] = 2 * (d[3] - d[1]) - d[2] + d[4];                                                        \
    o[4 * S] = 2 * (d[1] - d[3]) - d[2] + d[4];                                                        \
    o[5 * S] = 4 * d[1] - 5 * d[3] + d[5];                                                             \
  } while (0)

/* The 1-D output transform A^T: six values d[0..5] into four, o[0], o[S], o[2 S], o[3 S]. */
#define AT4(d, o, S)                                                                                   \
  do {                                                                                                 \
    const hn_real s12_ = d[1] + d[2], d12_ = d[1] - d[2], s34_ = d[3] + d[4], d34_ = d[3] - d[4];       \
    o[0 * S] = d[0] + s12_ + s34_;                                                                     \
    o[1 * S] = d12_ + 2 * d34_;                                                                        \
    o[2 * S] = s12_ + 4 * s34_;                                                                        \
    o[3 * S] = d12_ + 8 * d34_ + d[5];                                                                 \
  } while (0)

/* Its adjoint A: four values d[0..3] into six, o[0], o[S], ..., o[5 S]. */
#define A6(d, o, S)                                                                                    \
  do {                                                                                                 \
    const hn_real s02_ = d[0] + d[2], s13_ = d[1] + d[3];                                               \
    o[0 * S] = d[0];                                                                                   \
    o[1 * S] = s02_ + s13_;                                                                            \
    o[2 * S] = s02_ - s13_;                                                                            \
    o[3 * S] = d[0] + 2 * d[1] + 4 * d[2] + 8 * d[3];                                                  \
    o[4 * S] = d[0] - 2 * d[1] + 4 * d[2] - 8 * d[3];                                                  \
    o[5 * S] = d[3];                                                                                   \
  } while (0)

/* The 1-D kernel transform G: three values d[0..2] into six, o[0], o[S], ..., o[5 S]. */
#define G6(d, o, S)                                                                                    \
  do {                                                                                                 \
    o[0 * S] = q4 * d[0];                                                                              \
    o[1 * S] = -q6 * (d[0] + d[1] + d[2]);                                                             \
    o[2 * S] = -q6 * (d[0] - d[1] + d[2]);                                                             \
    o[3 * S] = q24 * d[0] + q12 * d[1] + q6 * d[2];                                                    \
    o[4 * S] = q24 * d[0] - q12 * d[1] + q6 * d[2];                                                    \
    o[5 * S] = d[2];                                                                                   \
  } while (0)

/* Its adjoint G^T: six values d[0..5] into three, o[0], o[S], o[2 S]. */
#define GT3(d, o, S)                                                                                   \
  do {                                                                                                 \
    o[0 * S] = q4 * d[0] - q6 * (d[1] + d[2]) + q24 * (d[3] + d[4]);                                   \
    o[1 * S] = q6 * (d[2] - d[1]) + q12 * (d[3] - d[4]);                                               \
    o[2 * S] = q6 * (d[3] + d[4] - d[1] - d[2]) + d[5];                                                \
  } while (0)

/* The fractions of G, for G6 and GT3. */
static const hn_real q4 = (hn_real)0.25, q6 = (hn_real)(1.0 / 6), q12 = (hn_real)(1.0 / 12),
                     q24 = (hn_real)(1.0 / 24);

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

static size_t sample_size(const hn_conv_tile *t, int c);

size_t hn_wino_scratch(const hn_conv_tile *t, int cout, int cin) {
  return hn_wino_input_size(t, cout) + hn_wino_kernel_size(cout, cin) + sample_size(t, cout > cin ? cout : cin);
}

void hn_wino_kernel(int cout, int cin, const hn_real *K, hn_real *U) {
  const size_t plane = plane_stride((size_t)cout * cin);
  for (int o = 0; o < cout; o++)
    for (int i = 0; i < cin; i++) {
      const hn_real *g = K + ((size_t)o * cin + i) * 9;
      hn_real t[6][3]; /* G g: down the kernel's columns */
      for (int c = 0; c < 3; c++) {
        const hn_real e[3] = {g[c], g[3 + c], g[6 + c]};
        hn_real *out = &t[0][c];
        G6(e, out, 3);
      }
      for (int r = 0; r < 6; r++) { /* (G g) G^T: across; U[xi] is cin x cout */
        hn_real *u = U + (size_t)(r * 6) * plane + (size_t)i * cout + o;
        G6(t[r], u, plane);
      }
    }
}

/* dK[oi] += alpha G^T dU[.][oi] G for every channel pair: the adjoint of hn_wino_kernel. Two
 * passes over dU, vectorised over the channel pairs: across (dU G, in place: the three results of
 * a row overwrite its first three planes), then down (G^T .) into dK. */
static void kernel_adjoint(int cout, int cin, hn_real alpha, hn_real *dU, hn_real *dK) {
  const size_t n = (size_t)cout * cin, plane = plane_stride(n);
  for (int r = 0; r < 6; r++) {
    hn_real *u = dU + (size_t)(r * 6) * plane;
#pragma omp simd
    for (size_t oi = 0; oi < n; oi++) {
      const hn_real e[6] = {u[oi], u[plane + oi], u[2 * plane + oi], u[3 * plane + oi], u[4 * plane + oi],
                            u[5 * plane + oi]};
      hn_real *out = u + oi;
      GT3(e, out, plane);
    }
  }
  for (int c = 0; c < 3; c++) {
    const hn_real *t = dU + (size_t)c * plane; /* t[r * 6 plane + oi] = (dU G)[r][c] */
    const size_t R = (size_t)6 * plane;
#pragma omp simd
    for (size_t oi = 0; oi < n; oi++) {
      const hn_real e[6] = {t[oi], t[R + oi], t[2 * R + oi], t[3 * R + oi], t[4 * R + oi], t[5 * R + oi]};
      hn_real g[3];
      GT3(e, g, 1);
      hn_real *k = dK + oi * 9 + c;
      k[0] += alpha * g[0];
      k[3] += alpha * g[1];
      k[6] += alpha * g[2];
    }
  }
}

/* The sample buffer: one sample's maps of c channels, transposed to [y][x][c] (channels
 * contiguous, so that every per-tile transform runs vectorised over channels) and zero padded to
 * whole tiles: (4 TY + 2) x (4 TX + 2) positions for the input (its 6x6 tiles overlap by 2);
 * then H W c values for the dense transpose on the way in and out. */
static size_t sample_size(const hn_conv_tile *t, int c) {
  const size_t padded = (size_t)(4 * tiles_y(t) + 2) * (size_t)(4 * tiles_x(t) + 2), dense = (size_t)t->H * t->W;
  return (padded + dense) * (size_t)c;
}

/* buf[((y + y0) Wb + x + x0) c + i] = map_i[y][x] for the whole map; every other position of the
 * Hb x Wb buffer is 0. Map i of the sample starts at X + i ldx. The transpose runs over the whole
 * map at once (into the dense part of the buffer, then row by row into place): small maps (7x7)
 * would leave no full 8x8 block row by row. */
static void to_sample(const hn_conv_tile *t, int c, const hn_real *X, int ldx, int y0, int x0, int Hb, int Wb,
                      hn_real *buf) {
  const int H = t->H, W = t->W;
  const size_t row = (size_t)Wb * c;
  for (int y = 0; y < Hb; y++) { /* the zero border: rows outside the map, then columns */
    hn_real *r = buf + (size_t)y * row;
    if (y < y0 || y >= y0 + H) {
      memset(r, 0, row * sizeof(hn_real));
      continue;
    }
    memset(r, 0, (size_t)x0 * c * sizeof(hn_real));
    memset(r + (size_t)(x0 + W) * c, 0, (size_t)(Wb - x0 - W) * c * sizeof(hn_real));
  }
  hn_real *dense = buf + (size_t)Hb * row;
  hn_transpose(X, (size_t)ldx, dense, (size_t)c, c, H * W, 0);
  for (int y = 0; y < H; y++)
    memcpy(buf + ((size_t)(y + y0) * Wb + x0) * c, dense + (size_t)y * W * c, (size_t)W * c * sizeof(hn_real));
}

void hn_wino_input(const hn_conv_tile *t, int cin, const hn_real *X, int ldx, hn_real *V, hn_real *scratch) {
  const int TY = tiles_y(t), TX = tiles_x(t), HW = t->H * t->W, Wb = 4 * TX + 2;
  const size_t P = (size_t)hn_wino_tiles(t), plane = plane_stride((size_t)cin * P), row = (size_t)Wb * cin;
  hn_real *buf = scratch;
  hn_real tmp[6][6][CB];
  for (int b = 0; b < t->nb; b++) {
    to_sample(t, cin, X + (size_t)b * HW, ldx, 1, 1, 4 * TY + 2, Wb, buf);
    for (int ty = 0; ty < TY; ty++)
      for (int tx = 0; tx < TX; tx++) {
        const size_t p = ((size_t)b * TY + ty) * TX + tx;
        const hn_real *d0 = buf + (size_t)(4 * ty) * row + (size_t)(4 * tx) * cin;
        for (int i0 = 0; i0 < cin; i0 += CB) {
          const int n = cin - i0 < CB ? cin - i0 : CB;
          for (int l = 0; l < 6; l++) { /* down column l: B^T d */
            const hn_real *d = d0 + (size_t)l * cin + i0;
#pragma omp simd
            for (int i = 0; i < n; i++) {
              const hn_real e[6] = {d[i], d[row + i], d[2 * row + i], d[3 * row + i], d[4 * row + i], d[5 * row + i]};
              hn_real *o = &tmp[0][l][i];
              BT6(e, o, 6 * CB);
            }
          }
          hn_real *v = V + p * cin + i0;
          for (int r = 0; r < 6; r++) { /* across row r: (B^T d) B */
            hn_real *vr = v + (size_t)(r * 6) * plane;
#pragma omp simd
            for (int i = 0; i < n; i++) {
              const hn_real e[6] = {tmp[r][0][i], tmp[r][1][i], tmp[r][2][i], tmp[r][3][i], tmp[r][4][i], tmp[r][5][i]};
              hn_real *o = vr + i;
              BT6(e, o, plane);
            }
          }
        }
      }
  }
}

void hn_wino_apply(const hn_conv_tile *t, int cout, int cin, const hn_real *U, const hn_real *V, hn_real beta,
                   hn_real *Y, int ldy, hn_real *scratch) {
  const int TY = tiles_y(t), TX = tiles_x(t), HW = t->H * t->W, Wb = 4 * TX;
  const int P = hn_wino_tiles(t);
  const size_t plane = plane_stride((size_t)cout * P), uplane = plane_stride((size_t)cout * cin),
               vplane = plane_stride((size_t)cin * P), row = (size_t)Wb * cout;
  hn_real *M = scratch, *buf = scratch + hn_wino_input_size(t, cout);
  for (int xi = 0; xi < 36; xi++) /* M[xi] (P x cout) = V[xi] (P x cin) U[xi] (cin x cout) */
    hn_gemm(0, 0, P, cout, cin, 1, V + xi * vplane, cin, U + xi * uplane, cout, 0, M + xi * plane, cout);
  hn_real tmp[6][4][CB];
  for (int b = 0; b < t->nb; b++) {
    for (int ty = 0; ty < TY; ty++)
      for (int tx = 0; tx < TX; tx++) {
        const size_t p = ((size_t)b * TY + ty) * TX + tx;
        hn_real *out0 = buf + (size_t)(4 * ty) * row + (size_t)(4 * tx) * cout;
        for (int o0 = 0; o0 < cout; o0 += CB) {
          const int n = cout - o0 < CB ? cout - o0 : CB;
          const hn_real *m = M + p * cout + o0;
          for (int r = 0; r < 6; r++) { /* across row r: M A */
            const hn_real *mr = m + (size_t)(r * 6) * plane;
#pragma omp simd
            for (int i = 0; i < n; i++) {
              const hn_real e[6] = {mr[i], mr[plane + i], mr[2 * plane + i], mr[3 * plane + i], mr[4 * plane + i],
                                    mr[5 * plane + i]};
              hn_real *out = &tmp[r][0][i];
              AT4(e, out, CB);
            }
          }
          for (int c = 0; c < 4; c++) { /* down column c: A^T (M A) */
            hn_real *o = out0 + (size_t)c * cout + o0;
#pragma omp simd
            for (int i = 0; i < n; i++) {
              const hn_real e[6] = {tmp[0][c][i], tmp[1][c][i], tmp[2][c][i], tmp[3][c][i], tmp[4][c][i], tmp[5][c][i]};
              hn_real *out = o + i;
              AT4(e, out, row);
            }
          }
        }
      }
    hn_real *dense = buf + (size_t)(4 * TY) * row; /* back to the maps: Y = beta Y + out */
    for (int y = 0; y < t->H; y++)
      memcpy(dense + (size_t)y * t->W * cout, buf + (size_t)y * row, (size_t)t->W * cout * sizeof(hn_real));
    hn_transpose(dense, (size_t)cout, Y + (size_t)b * HW, (size_t)ldy, HW, cout, beta);
  }
}

/* Gbar[xi][p][o] = (A g A^T)[xi] for each 4x4 tile g of G (0 outside the map): the adjoint of the
 * output transform. */
static void output_adjoint(const hn_conv_tile *t, int cout, const hn_real *G, int ldg, hn_real *Gbar, hn_real *buf) {
  const int TY = tiles_y(t), TX = tiles_x(t), HW = t->H * t->W, Wb = 4 * TX;
  const size_t P = (size_t)hn_wino_tiles(t), plane = plane_stride((size_t)cout * P), row = (size_t)Wb * cout;
  hn_real tmp[6][4][CB];
  for (int b = 0; b < t->nb; b++) {
    to_sample(t, cout, G + (size_t)b * HW, ldg, 0, 0, 4 * TY, Wb, buf);
    for (int ty = 0; ty < TY; ty++)
      for (int tx = 0; tx < TX; tx++) {
        const size_t p = ((size_t)b * TY + ty) * TX + tx;
        const hn_real *g0 = buf + (size_t)(4 * ty) * row + (size_t)(4 * tx) * cout;
        for (int o0 = 0; o0 < cout; o0 += CB) {
          const int n = cout - o0 < CB ? cout - o0 : CB;
          for (int c = 0; c < 4; c++) { /* down column c: A g */
            const hn_real *g = g0 + (size_t)c * cout + o0;
#pragma omp simd
            for (int i = 0; i < n; i++) {
              const hn_real e[4] = {g[i], g[row + i], g[2 * row + i], g[3 * row + i]};
              hn_real *out = &tmp[0][c][i];
              A6(e, out, 4 * CB);
            }
          }
          hn_real *v = Gbar + p * cout + o0;
          for (int r = 0; r < 6; r++) { /* across row r: (A g) A^T */
            hn_real *vr = v + (size_t)(r * 6) * plane;
#pragma omp simd
            for (int i = 0; i < n; i++) {
              const hn_real e[4] = {tmp[r][0][i], tmp[r][1][i], tmp[r][2][i], tmp[r][3][i]};
              hn_real *out = vr + i;
              A6(e, out, plane);
            }
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
  hn_real *Gbar = scratch, *dU = scratch + hn_wino_input_size(t, cout), *buf = dU + hn_wino_kernel_size(cout, cin);
  output_adjoint(t, cout, G, ldg, Gbar, buf);
  for (int xi = 0; xi < 36; xi++) /* dU[xi] (cout x cin) = Gbar[xi]^T (cout x P) V[xi] (P x cin) */
    hn_gemm(1, 0, cout, cin, P, 1, Gbar + xi * gplane, cout, V + xi * vplane, cin, 0, dU + xi * uplane, cin);
  kernel_adjoint(cout, cin, alpha, dU, dK);
}
