/* hamnet/kernels.h - one layer step of each integrator, on a batch, forward and backward.
 *
 * Matrices are row-major; a batch of states is Y[B][n] (one sample per row), so the layer's
 * K y for every sample is the GEMM Y K^T. Parameters: K[n][n] stored [out][in], b[n].
 * Two implementations of every step with identical signatures:
 *   hn_*      the fast path: GEMMs through CBLAS, bias + activation (+ derivative) + update
 *             fused into one OpenMP pass over memory;
 *   hn_*_ref  a frozen, obviously correct per-sample loop (tests compare the two).
 * Backward steps ACCUMULATE into the parameter gradients (dK, db) and UPDATE the state
 * gradients in place (on entry the gradient w.r.t. the step's outputs, on exit w.r.t. its
 * inputs). Kernels know nothing of MPI, files or the config.
 *
 * Two further families, both checked against the references (tests/unit/test_kernels.c):
 *   *_save / *_saved   stored mode: the forward step also writes what the backward step would
 *                      otherwise recompute with a GEMM (activation derivatives s'(a); for
 *                      leapfrog the activations s(a), whose derivative follows from them), so
 *                      the backward pass does only the GEMMs that contribute to gradients;
 *   *_tile             the narrow path: one tile of HN_TILE samples stored sample-minor,
 *                      X[n][HN_TILE], vectorised over the samples with OpenMP SIMD, no BLAS and
 *                      no threads inside (the caller runs one tile per thread).
 *
 * Threading: OpenBLAS must be the OpenMP build (scripts/setup.sh installs
 * libopenblas-openmp-dev), so the GEMMs and the fused loops share one OpenMP runtime and one
 * pool of threads; a pthreads OpenBLAS would start its own threads that fight OpenMP's for the
 * cores (`hamnet bench` reports which build is loaded). Fused loops are not nested in parallel
 * regions and call no BLAS; the tile kernels run inside the caller's parallel region and call
 * neither BLAS nor OpenMP.
 *
 * Determinism: no atomics, no reductions whose order depends on scheduling. The fused passes
 * that sum bias gradients give each thread whole columns, summed in row order, so they give the
 * same bits for any thread count; the GEMMs are OpenBLAS's (deterministic for a given thread
 * count). */
#ifndef HAMNET_KERNELS_H
#define HAMNET_KERNELS_H

#include <stddef.h>

#include "hamnet/real.h"
#include "hamnet/spec.h"

typedef struct {
  int batch;            /* B: rows of every state matrix */
  int width;            /* n */
  hn_activation act;
  hn_real h;            /* step size T / N */
  /* Optional (NULL: none): called by the backward steps between their GEMMs, on the calling
   * thread. The trainer lets the gradient allreduces in flight progress there: Open MPI
   * advances non-blocking collectives only inside MPI calls, and one call per layer leaves
   * each bucket several layers behind. */
  void (*between)(void *ctx);
  void *between_ctx;
} hn_step;

/* C = alpha op(A) op(B) + beta C, row-major, op = transpose when trans != 0. */
void hn_gemm(int transa, int transb, int m, int n, int k, hn_real alpha, const hn_real *A, int lda,
             const hn_real *B, int ldb, hn_real beta, hn_real *C, int ldc);

/* s(u) and s'(u) of the activation; hn_act_deriv_from_value gives s'(u) from s(u) (tanh:
 * 1 - s^2, relu: s > 0), which is how the fast kernels get the derivative without a second
 * activation call. */
hn_real hn_act(hn_activation act, hn_real u);
hn_real hn_act_deriv(hn_activation act, hn_real u);
hn_real hn_act_deriv_from_value(hn_activation act, hn_real s);

/* Sizes of the scratch buffers the steps need, in hn_real elements. */
#define HN_STEP_WORK(B, n) (3 * (size_t)(B) * (size_t)(n))

/* --- forward Euler: resnet (A = K) and antisym (A = K - K^T - gamma I, formed by the caller)
 * Yout = Y + h s(Y A^T + b) */
void hn_euler_forward(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                      hn_real *Yout, hn_real *work);
/* G: dL/dYout on entry, dL/dY on exit. dA += dL/dA, db += dL/db. */
void hn_euler_backward(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                       hn_real *G, hn_real *dA, hn_real *db, hn_real *work);

/* --- Hamiltonian (Verlet): Zout = Z - h s(Y K + b); Yout = Y + h s(Zout K^T + b)
 * (per sample: z+ = z - h s(K^T y + b), y+ = y + h s(K z+ + b)). */
void hn_ham_forward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                    const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *work);
/* Backward through one step from its outputs (Y1, Z1) = (y_{j+1}, z_{j+1}).
 * Y0: the step's input y_j. If `recompute` is non-zero Y0 is computed from (Y1, Z1) (the
 * inverse step) and written there, and Z0 (if not NULL) receives z_j; otherwise Y0 holds the
 * stored y_j on entry and is only read. Gy, Gz: dL/d(y_{j+1}, z_{j+1}) on entry,
 * dL/d(y_j, z_j) on exit. */
void hn_ham_backward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y1,
                     const hn_real *Z1, hn_real *Y0, hn_real *Z0, int recompute, hn_real *Gy,
                     hn_real *Gz, hn_real *dK, hn_real *db, hn_real *work);

/* --- leapfrog (second order): Yout = 2 Y - Yprev - h^2 s(Y K^T + b) K */
void hn_leap_forward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                     const hn_real *Yprev, hn_real *Yout, hn_real *work);
/* Backward through y_{j+1} = 2 y_j - y_{j-1} - h^2 F(y_j). Y: y_j (read). P, Q: on entry the
 * adjoints of (y_{j+1}, y_j) in the pair state (y_{j+1}, y_j); on exit those of (y_j, y_{j-1}).
 * If Yprev_out is not NULL, y_{j-1} = 2 y_j - y_{j+1} - h^2 F(y_j) is written there (needs
 * Ynext = y_{j+1}); otherwise Ynext may be NULL. */
void hn_leap_backward(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                      const hn_real *Ynext, hn_real *Yprev_out, hn_real *P, hn_real *Q,
                      hn_real *dK, hn_real *db, hn_real *work);

/* --- stored mode with saved derivatives ------------------------------------------------------
 * The forward steps above, also writing what the backward step needs besides the states:
 *   euler  D [B][n]       = s'(Y A^T + b)
 *   ham    D1, D2 [B][n]  = s'(Y K + b), s'(Zout K^T + b)   (first and second half-step)
 *   leap   S [B][n]       = s(Y K^T + b)                     (s' = hn_act_deriv_from_value(S))
 * and the backward steps that use them instead of recomputing the pre-activations (same
 * contracts as hn_*_backward with stored states; no recomputation, so no b argument). Per layer
 * this is 3 GEMMs (euler) or 6 (ham, leap) instead of 4 or 8 / 7: all of them useful work. */
void hn_euler_forward_save(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                           hn_real *Yout, hn_real *D, hn_real *work);
void hn_euler_backward_saved(const hn_step *s, const hn_real *A, const hn_real *Y, const hn_real *D,
                             hn_real *G, hn_real *dA, hn_real *db, hn_real *work);
void hn_ham_forward_save(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                         const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *D1, hn_real *D2,
                         hn_real *work);
/* Y0 = y_j, Z1 = z_{j+1}; D1, D2 from hn_ham_forward_save of this step. */
void hn_ham_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Y0, const hn_real *Z1,
                           const hn_real *D1, const hn_real *D2, hn_real *Gy, hn_real *Gz, hn_real *dK,
                           hn_real *db, hn_real *work);
void hn_leap_forward_save(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                          const hn_real *Yprev, hn_real *Yout, hn_real *S, hn_real *work);
/* Y = y_j, S from hn_leap_forward_save of this step; P, Q as in hn_leap_backward. */
void hn_leap_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Y, const hn_real *S,
                            hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, hn_real *work);

/* The GEMMs of one layer's forward + backward step in stored mode with saved derivatives - the
 * useful work, and exactly the calls the *_save / *_saved kernels make - for the FLOP count and
 * the GEMM roofline of `hamnet bench`. Returns how many were written to out (at most
 * HN_LAYER_GEMMS_MAX). Per layer: euler 3 GEMMs of 2 B n^2 flops, ham and leap 6. */
typedef struct {
  int transa, transb, m, n, k;
  hn_real alpha, beta;
} hn_gemm_shape;
#define HN_LAYER_GEMMS_MAX 8
int hn_layer_gemms(hn_arch arch, int B, int n, hn_gemm_shape *out);

/* --- the narrow path: one tile of samples ----------------------------------------------------
 * States of HN_TILE samples stored sample-minor, x[n][HN_TILE] (x[r * HN_TILE + t] is
 * coordinate r of sample t), so that each coordinate's loop over the tile is one or two SIMD
 * vectors. Same per-sample algebra as the layer steps above; s->batch is not used (always
 * HN_TILE). The path is for small widths (up to 64); larger widths work, more slowly than GEMMs.
 * Kt is K transposed (Kt[c][r] = K[r][c]), which the caller makes once per layer and pass, so
 * that products with K^T read contiguous rows too.
 * Unused samples of a tile must hold finite states and zero adjoints: then they add exactly
 * zero to every gradient. The steps update their states in place; `work` holds
 * HN_TILE_WORK(n) elements. Gradients (dK, db) accumulate, adjoints update in place as in the
 * layer steps. */
#ifndef HN_TILE
#define HN_TILE 32
#endif
#define HN_TILE_XT (64 * HN_TILE) /* scratch of a transposed block (hn_tile_outer) */
#define HN_TILE_WORK(n) (3 * (size_t)(n) * HN_TILE + HN_TILE_XT)

/* (yout, zout) = one Verlet step from (y, z); yout may be y and zout may be z (in place), so
 * that stored mode writes each step straight into the next saved slot and the other modes
 * step in place. d1, d2: NULL, or the derivatives s'(.) of the two half-steps [n][T] are saved
 * there (stored mode). */
void hn_ham_tile_forward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, const hn_real *y,
                         const hn_real *z, hn_real *yout, hn_real *zout, hn_real *d1, hn_real *d2, hn_real *work);
/* Reversible: (y, z) = (y_{j+1}, z_{j+1}) on entry, the recomputed (y_j, z_j) on exit. */
void hn_ham_tile_backward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, hn_real *y,
                          hn_real *z, hn_real *gy, hn_real *gz, hn_real *dK, hn_real *db, hn_real *work);
/* Stored: y0 = y_j, z1 = z_{j+1} and the derivatives saved by the forward step. */
void hn_ham_tile_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *y0,
                                const hn_real *z1, const hn_real *d1, const hn_real *d2, hn_real *gy, hn_real *gz,
                                hn_real *dK, hn_real *db, hn_real *work);
/* yout = y_{j+1} from y = y_j and yprev = y_{j-1}; yout may be yprev (in place). S: NULL, or
 * s(K y_j + b) is saved there. */
void hn_leap_tile_forward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, const hn_real *y,
                          const hn_real *yprev, hn_real *yout, hn_real *S, hn_real *work);
/* Reversible: y = y_j; ynext = y_{j+1} on entry, the recomputed y_{j-1} on exit. P, Q as in
 * hn_leap_backward. */
void hn_leap_tile_backward(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *b, const hn_real *y,
                           hn_real *ynext, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, hn_real *work);
void hn_leap_tile_backward_saved(const hn_step *s, const hn_real *K, const hn_real *Kt, const hn_real *y,
                                 const hn_real *S, hn_real *P, hn_real *Q, hn_real *dK, hn_real *db, hn_real *work);

/* Small dense pieces of the narrow path (opening, classifier), on tiles:
 * out[i][:] (+)= sum_k M[i * ldm + k] x[k][:] for i < rows, k < inner (accumulate = 0
 * overwrites out; out must not overlap M or x); */
void hn_tile_matmul(int rows, int inner, const hn_real *M, int ldm, const hn_real *x, hn_real *out, int accumulate);
/* dM[i * ldm + k] += alpha sum_t a[i][t] x[k][t] for i < rows, k < cols, and dv[i] += alpha
 * sum_t a[i][t] when dv is not NULL; work: HN_TILE_XT elements (contents on entry do not matter). */
void hn_tile_outer(int rows, int cols, hn_real alpha, const hn_real *a, const hn_real *x, hn_real *dM, int ldm,
                   hn_real *dv, hn_real *work);

/* Reference versions (same contracts). */
void hn_euler_forward_ref(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                          hn_real *Yout, hn_real *work);
void hn_euler_backward_ref(const hn_step *s, const hn_real *A, const hn_real *b, const hn_real *Y,
                           hn_real *G, hn_real *dA, hn_real *db, hn_real *work);
void hn_ham_forward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                        const hn_real *Z, hn_real *Yout, hn_real *Zout, hn_real *work);
void hn_ham_backward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y1,
                         const hn_real *Z1, hn_real *Y0, hn_real *Z0, int recompute, hn_real *Gy,
                         hn_real *Gz, hn_real *dK, hn_real *db, hn_real *work);
void hn_leap_forward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                         const hn_real *Yprev, hn_real *Yout, hn_real *work);
void hn_leap_backward_ref(const hn_step *s, const hn_real *K, const hn_real *b, const hn_real *Y,
                          const hn_real *Ynext, hn_real *Yprev_out, hn_real *P, hn_real *Q,
                          hn_real *dK, hn_real *db, hn_real *work);

#endif
