/* act.h - the activations as inline functions for the fused loops (private to src/kernels).
 *
 * hn_act() in gemm.c is an out-of-line call per element: right for the references, but it
 * keeps a loop scalar. These inline versions let `#pragma omp simd` loops vectorise; the
 * activation is loop-invariant, so GCC unswitches the loop into one version per activation.
 *
 * tanh: glibc (>= 2.35) ships SIMD variants of tanhf / tanh in libmvec, but <math.h> declares
 * them only under -ffast-math. Declaring them here (when CMake found them: HN_HAVE_LIBMVEC)
 * lets SIMD loops call the AVX-512 variant - on the development machine 0.4 ns instead of 11 ns
 * per float, max error 0.8 ulp instead of 1.1 - without fast-math's other effects. Without
 * libmvec the loops still vectorise everything but the tanh calls. Vector and scalar tanh may
 * differ in the last bit, so results depend on where an element falls in a loop: the same for
 * the same shapes, which is what determinism needs. */
#ifndef HN_KERNELS_ACT_H
#define HN_KERNELS_ACT_H

#include <math.h>

#include "hamnet/kernels.h"

#ifdef HN_HAVE_LIBMVEC
#pragma omp declare simd notinbranch
float tanhf(float);
#pragma omp declare simd notinbranch
double tanh(double);
#endif

static inline hn_real act_tanh(hn_real u) {
#ifdef HN_USE_DOUBLE
  return tanh(u);
#else
  return tanhf(u);
#endif
}

/* s(u) */
static inline hn_real act_value(hn_activation act, hn_real u) {
  return act == HN_ACT_RELU ? (u > 0 ? u : 0) : act_tanh(u);
}

/* s'(u) from s(u): tanh' = 1 - tanh^2; relu' = 1 where relu(u) > 0 (u > 0), else 0. */
static inline hn_real act_deriv_from_value(hn_activation act, hn_real s) {
  return act == HN_ACT_RELU ? (s > 0 ? 1 : 0) : 1 - s * s;
}

/* out[r] = s(u[r] + b[r]) for lo <= r < hi: one simd loop per activation, chosen outside the
 * loop (inside OpenMP-outlined code GCC does not always unswitch a loop by itself, and a call
 * under a branch keeps the loop scalar). out may be u; b may be NULL (no bias). */
static inline void act_row(hn_activation act, int lo, int hi, const hn_real *u, const hn_real *b, hn_real *out) {
  if (act == HN_ACT_RELU) {
#pragma omp simd
    for (int r = lo; r < hi; r++) {
      hn_real a = b ? u[r] + b[r] : u[r];
      out[r] = a > 0 ? a : 0;
    }
  } else if (b) {
#pragma omp simd
    for (int r = lo; r < hi; r++)
      out[r] = act_tanh(u[r] + b[r]);
  } else {
#pragma omp simd
    for (int r = lo; r < hi; r++)
      out[r] = act_tanh(u[r]);
  }
}

/* out[q] = s(g u[q] + b) for q < n (a normalisation's affine map, then the activation), one simd
 * loop per activation as in act_row. out may be u. */
static inline void act_affine(hn_activation act, int n, hn_real g, hn_real b, const hn_real *u, hn_real *out) {
  if (act == HN_ACT_RELU) {
#pragma omp simd
    for (int q = 0; q < n; q++) {
      hn_real a = g * u[q] + b;
      out[q] = a > 0 ? a : 0;
    }
  } else {
#pragma omp simd
    for (int q = 0; q < n; q++)
      out[q] = act_tanh(g * u[q] + b);
  }
}

#endif
