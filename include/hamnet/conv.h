/* hamnet/conv.h - 3x3 convolutions and the convolutional layer steps of every integrator.
 *
 * LAYOUT. The feature maps of a batch are stored channel-major, T[c][B][H][W]: channel r of all
 * samples is one row of B*H*W values, rows `ld` elements apart (ld = B*H*W for a whole batch).
 * A TILE is a contiguous range of nb samples: its channel-r data starts at T + r*ld + b0*H*W
 * and is nb*H*W contiguous values ("cols" below). Everything here works on one tile, so a caller
 * cuts a batch into tiles and gives each thread its own tiles. Temporaries of a tile are
 * compact (row stride cols). Nothing here starts threads: the GEMMs are OpenBLAS's, and inside
 * an OpenMP parallel region the OpenMP build of OpenBLAS runs them on the calling thread.
 *
 * KERNELS. K[cout][cin][3][3], zero padding, stride 1, cross-correlation (PyTorch's convention):
 *   (K x)[o][y][x] = sum_{i, ky, kx} K[o][i][ky][kx] x[i][y + ky - 1][x + kx - 1], x = 0 outside.
 * Its adjoint K^T, the transposed convolution with the same kernel, is itself a convolution:
 * with the flipped, channel-transposed kernel Kt[i][o][ky][kx] = K[o][i][2 - ky][2 - kx]
 * (hn_conv3_flip). So every product - K x, K^T y, and the weight gradients - is "prepare the
 * right-hand tensor of a tile once, then GEMMs": no scatter (col2im) anywhere. Two ways:
 *   im2col + GEMM (conv.c): col[(i 9 + k)][q], 9 cin rows of `cols` values, then one GEMM whose
 *     inner dimension is 9 cin (the shape OpenBLAS is good at);
 *   Winograd F(4x4, 3x3) (winograd.c): the 6x6 input tiles transformed once (V), 36 GEMMs with
 *     4x fewer multiplications, the output transformed back; the weight gradient through the
 *     adjoint transforms. ~2.5x faster than im2col for the 16-64-channel stages of the
 *     Fashion-MNIST networks (README "Convolutional networks"); float results differ from the
 *     direct sum by a few 1e-6 relative.
 * The *_ref functions are frozen, obviously correct loops straight from the definition (the
 * adjoint without the flip); tests/unit/test_conv.c holds both fast ways and the layer steps to
 * them.
 *
 * LAYER STEPS. The equations of README, The mathematics, with K y a convolution, per tile, for a stage of c
 * channels (cin = cout = c): forward Euler (resnet: A = K; antisym: A = K - K^T, whose kernel is
 * K - Kt, with -gamma y added), Verlet (hamiltonian) and leapfrog, forward, backward with stored
 * states and saved activation derivatives, and backward by recomputation (reversible). Same
 * contracts as the dense steps of hamnet/kernels.h: backward steps ACCUMULATE the parameter
 * gradients (dK [c][c][3][3], db [c]) and UPDATE the state adjoints in place. All state tensors
 * of a step (states, adjoints, saved derivatives) share the row stride ld. */
#ifndef HAMNET_CONV_H
#define HAMNET_CONV_H

#include <stddef.h>

#include "hamnet/real.h"
#include "hamnet/spec.h"

/* A tile: nb samples of H x W maps. */
typedef struct {
  int H, W, nb;
} hn_conv_tile;

static inline int hn_conv_cols(const hn_conv_tile *t) { return t->nb * t->H * t->W; }

/* Kt = the kernel of K^T: Kt[i][o][ky][kx] = K[o][i][2 - ky][2 - kx] (K is [cout][cin][3][3]). The
 * map is its own adjoint (and inverse, with cin and cout swapped). */
void hn_conv3_flip(int cout, int cin, const hn_real *K, hn_real *Kt);

/* col[(i 9 + 3 ky + kx)][q] = x[i][q shifted by (ky - 1, kx - 1)] (0 outside the map), for the
 * tile's cin channels; col holds 9 cin cols values. */
void hn_im2col3(const hn_conv_tile *t, int cin, const hn_real *X, int ldx, hn_real *col);

/* Y = beta Y + K col (one GEMM, cout x 9 cin x cols). */
void hn_conv3_apply(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *col, hn_real beta,
                    hn_real *Y, int ldy);

/* dK += alpha G col^T: the gradient of <G, K x> with col = im2col(x) (one GEMM). */
void hn_conv3_grad(const hn_conv_tile *t, int cout, int cin, hn_real alpha, const hn_real *G, int ldg,
                   const hn_real *col, hn_real *dK);

/* Y = beta Y + K X (im2col into col, then hn_conv3_apply). K^T Y is hn_conv3_forward with the
 * flipped kernel and the channel counts swapped. */
void hn_conv3_forward(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *X, int ldx,
                      hn_real beta, hn_real *Y, int ldy, hn_real *col);

/* Winograd F(4x4, 3x3) (winograd.c): the same products with 4x fewer multiplications, for maps of
 * at least 4x4 (smaller ones pay for a whole 6x6 tile: use im2col there). The input of a tile is
 * transformed once (V) and serves every product with it as the right-hand factor, like im2col's
 * col. P = hn_wino_tiles(t) 4x4 output tiles; V holds 36 planes of P x cin (channels contiguous:
 * the transforms run vectorised over channels), U 36 of cin x cout (planes padded apart: allocate
 * the sizes below). */
int hn_wino_tiles(const hn_conv_tile *t);
size_t hn_wino_kernel_size(int cout, int cin);                /* elements of U */
size_t hn_wino_input_size(const hn_conv_tile *t, int cin);    /* elements of V */
/* Scratch of hn_wino_apply and hn_wino_grad, in hn_real elements. */
size_t hn_wino_scratch(const hn_conv_tile *t, int cout, int cin);
/* U = the transformed kernel of K [cout][cin][3][3] (U[36][cin][cout]: V U is the product). */
void hn_wino_kernel(int cout, int cin, const hn_real *K, hn_real *U);
/* V = the transformed 6x6 input tiles of X (V[36][P][cin]); scratch: hn_wino_scratch(t, cin, cin). */
void hn_wino_input(const hn_conv_tile *t, int cin, const hn_real *X, int ldx, hn_real *V, hn_real *scratch);
/* Y = beta Y + K X, with U = hn_wino_kernel(K) and V = hn_wino_input(X). */
void hn_wino_apply(const hn_conv_tile *t, int cout, int cin, const hn_real *U, const hn_real *V, hn_real beta,
                   hn_real *Y, int ldy, hn_real *scratch);
/* dK += alpha grad_K <G, K X> with V = hn_wino_input(X) (hn_conv3_grad's contract). */
void hn_wino_grad(const hn_conv_tile *t, int cout, int cin, hn_real alpha, const hn_real *G, int ldg,
                  const hn_real *V, hn_real *dK, hn_real *scratch);

/* References (frozen): Y = beta Y + K X; X = beta X + K^T Y; dK += alpha grad_K <G, K X>. */
void hn_conv3_forward_ref(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *X, int ldx,
                          hn_real beta, hn_real *Y, int ldy);
void hn_conv3_adjoint_ref(const hn_conv_tile *t, int cout, int cin, const hn_real *K, const hn_real *Y, int ldy,
                          hn_real beta, hn_real *X, int ldx);
void hn_conv3_grad_ref(const hn_conv_tile *t, int cout, int cin, hn_real alpha, const hn_real *G, int ldg,
                       const hn_real *X, int ldx, hn_real *dK);

/* --- layer steps on one tile ------------------------------------------------------------------ */

typedef struct {
  hn_conv_tile t;
  int c;             /* channels of the stage */
  hn_activation act;
  hn_real h;         /* the stage's step */
  hn_real gamma;     /* euler: the -gamma y term (antisym; 0 for resnet) */
} hn_conv_step;

/* The kernels of one layer: K and its flip Kt (hn_conv3_flip), and - for the Winograd products -
 * their transforms U = hn_wino_kernel(K), Ut = hn_wino_kernel(Kt); U == NULL: every product of
 * the step is im2col + GEMM. Forward Euler passes its operator A as K (and its flip as Kt). */
typedef struct {
  const hn_real *K, *Kt, *U, *Ut;
} hn_conv_kernels;

/* Scratch of every step on tiles up to t (either kind of product), in hn_real elements: the
 * im2col buffer or the transformed input and the Winograd scratch, and three tile temporaries. */
size_t hn_conv_step_work(int c, const hn_conv_tile *t);

/* Forward Euler with the operator kernel A (resnet: K; antisym: K - Kt) and its flip At:
 * yo = y + h s(A y - gamma y + b); D (NULL or saved) = s'(.). yo may be y. */
void hn_conv_euler_forward(const hn_conv_step *s, const hn_conv_kernels *A, const hn_real *b, const hn_real *y,
                           hn_real *yo, hn_real *D, int ld, hn_real *work);
/* Stored mode: y0 = the step's input, D from the forward step; gy: dL/dyo on entry, dL/dy on
 * exit; dA, db accumulate (antisym: dK += dA - flip(dA), done by the caller). */
void hn_conv_euler_backward_saved(const hn_conv_step *s, const hn_conv_kernels *A, const hn_real *y0, const hn_real *D,
                                  hn_real *gy, hn_real *dA, hn_real *db, int ld, hn_real *work);

/* Verlet: zo = z - h s(K^T y + b); yo = y + h s(K zo + b). D1, D2: NULL, or the derivatives of
 * the two half-steps are saved. yo, zo may be y, z. */
void hn_conv_ham_forward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b,
                         const hn_real *y, const hn_real *z, hn_real *yo, hn_real *zo, hn_real *D1, hn_real *D2,
                         int ld, hn_real *work);
/* Reversible: (y, z) = (y_{j+1}, z_{j+1}) on entry, the recomputed (y_j, z_j) on exit. */
void hn_conv_ham_backward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b, hn_real *y,
                          hn_real *z, hn_real *gy, hn_real *gz, hn_real *dK, hn_real *db, int ld, hn_real *work);
/* Stored: y0 = y_j, z1 = z_{j+1}, D1, D2 from the forward step. */
void hn_conv_ham_backward_saved(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *y0,
                                const hn_real *z1, const hn_real *D1, const hn_real *D2, hn_real *gy, hn_real *gz,
                                hn_real *dK, hn_real *db, int ld, hn_real *work);

/* Leapfrog: yo = 2 y - yprev - h^2 K^T s(K y + b); S: NULL, or s(K y + b) is saved. yo may be
 * yprev. */
void hn_conv_leap_forward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b,
                          const hn_real *y, const hn_real *yprev, hn_real *yo, hn_real *S, int ld, hn_real *work);
/* Reversible: y = y_j; ynext = y_{j+1} on entry, the recomputed y_{j-1} on exit. P, Q: the
 * adjoints of the pair (y_{j+1}, y_j) on entry, of (y_j, y_{j-1}) on exit (hamnet/kernels.h). */
void hn_conv_leap_backward(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *b,
                           const hn_real *y, hn_real *ynext, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, int ld,
                           hn_real *work);
/* Stored: y = y_j, S from the forward step. */
void hn_conv_leap_backward_saved(const hn_conv_step *s, const hn_conv_kernels *k, const hn_real *y,
                                 const hn_real *S, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, int ld,
                                 hn_real *work);

#endif
