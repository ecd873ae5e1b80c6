/* transpose.h - dst = src^T (+ beta dst) for the kernels (private to src/kernels): Winograd's
 * per-sample layout changes and the narrow path's weight gradient (tile.c, outer_acc). */
#ifndef HN_KERNELS_TRANSPOSE_H
#define HN_KERNELS_TRANSPOSE_H

#include <stddef.h>

#include "hamnet/real.h"

/* 8x8 AVX blocks in the float build on CPUs with AVX; the plain loop otherwise. */
#if defined(__AVX__) && !defined(HN_USE_DOUBLE)
#define HN_AVX_TRANSPOSE 1
#include <immintrin.h>
#else
#define HN_AVX_TRANSPOSE 0
#endif

/* dst[j ldd + i] = beta dst[j ldd + i] + src[i lds + j] for i < rows, j < cols (beta 0: plain
 * store). Why the intrinsics: a plain strided loop touches one cache line per element and was a
 * sixth of a conv net's step; 8x8 blocks transposed in AVX registers read and write whole rows.
 * Edges (and the double build, and CPUs without AVX) take the plain loop. */
static inline void hn_transpose_plain(const hn_real *src, size_t lds, hn_real *dst, size_t ldd, int i0, int i1,
                                      int j0, int j1, hn_real beta) {
  for (int j = j0; j < j1; j++) {
    hn_real *d = dst + (size_t)j * ldd;
    if (beta == 0)
      for (int i = i0; i < i1; i++)
        d[i] = src[(size_t)i * lds + j];
    else
      for (int i = i0; i < i1; i++)
        d[i] = beta * d[i] + src[(size_t)i * lds + j];
  }
}

#if HN_AVX_TRANSPOSE
static inline void hn_transpose(const hn_real *src, size_t lds, hn_real *dst, size_t ldd, int rows, int cols,
                                hn_real beta) {
  const int R = rows & ~7, C = cols & ~7;
  const __m256 vb = _mm256_set1_ps(beta);
  for (int i0 = 0; i0 < R; i0 += 8)
    for (int j0 = 0; j0 < C; j0 += 8) {
      const float *s = src + (size_t)i0 * lds + j0;
      __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds), r2 = _mm256_loadu_ps(s + 2 * lds),
             r3 = _mm256_loadu_ps(s + 3 * lds), r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds),
             r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
      __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
             t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
             t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      r0 = _mm256_shuffle_ps(t0, t2, 0x44);
      r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      r2 = _mm256_shuffle_ps(t1, t3, 0x44);
      r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      r4 = _mm256_shuffle_ps(t4, t6, 0x44);
      r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      r6 = _mm256_shuffle_ps(t5, t7, 0x44);
      r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      __m256 o[8];
      o[0] = _mm256_permute2f128_ps(r0, r4, 0x20);
      o[1] = _mm256_permute2f128_ps(r1, r5, 0x20);
      o[2] = _mm256_permute2f128_ps(r2, r6, 0x20);
      o[3] = _mm256_permute2f128_ps(r3, r7, 0x20);
      o[4] = _mm256_permute2f128_ps(r0, r4, 0x31);
      o[5] = _mm256_permute2f128_ps(r1, r5, 0x31);
      o[6] = _mm256_permute2f128_ps(r2, r6, 0x31);
      o[7] = _mm256_permute2f128_ps(r3, r7, 0x31);
      float *d = dst + (size_t)j0 * ldd + i0;
      for (int k = 0; k < 8; k++) {
        float *dk = d + (size_t)k * ldd;
        _mm256_storeu_ps(dk, beta == 0 ? o[k] : _mm256_add_ps(_mm256_mul_ps(vb, _mm256_loadu_ps(dk)), o[k]));
      }
    }
  hn_transpose_plain(src, lds, dst, ldd, 0, R, C, cols, beta); /* the edges */
  hn_transpose_plain(src, lds, dst, ldd, R, rows, 0, cols, beta);
}
#else
static inline void hn_transpose(const hn_real *src, size_t lds, hn_real *dst, size_t ldd, int rows, int cols,
                                hn_real beta) {
  hn_transpose_plain(src, lds, dst, ldd, 0, rows, 0, cols, beta);
}
#endif

#endif
