/* hamnet/kernels.h - one layer step of each integrator, on a batch, forward and backward.
 *
 * Matrices are row-major; a batch of states is Y[B][n] (one sample per row), so the layer's
 * K y for every sample is the GEMM Y K^T. Parameters: K[n][n] stored [out][in], b[n].
 * Two implementations of every step with identical signatures:
 *   hn_*      the fast path: GEMMs through CBLAS, bias + activation + update fused into one
 *             OpenMP pass over memory;
 *   hn_*_ref  a frozen, obviously correct per-sample loop (tests compare the two).
 * Backward steps ACCUMULATE into the parameter gradients (dK, db) and UPDATE the state
 * gradients in place (on entry the gradient w.r.t. the step's outputs, on exit w.r.t. its
 * inputs). Kernels know nothing of MPI, files or the config. */
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
} hn_step;

/* C = alpha op(A) op(B) + beta C, row-major, op = transpose when trans != 0. */
void hn_gemm(int transa, int transb, int m, int n, int k, hn_real alpha, const hn_real *A, int lda,
             const hn_real *B, int ldb, hn_real beta, hn_real *C, int ldc);

/* s(u) and s'(u) of the activation. */
hn_real hn_act(hn_activation act, hn_real u);
hn_real hn_act_deriv(hn_activation act, hn_real u);

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
