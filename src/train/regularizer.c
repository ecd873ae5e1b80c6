/* regularizer.c - time smoothness of the layer parameters and weight decay (hamnet/train.h).
 *
 * Layer j's parameters (K_j, b_j) are one contiguous slice of the flat buffer, so the
 * smoothness term is a difference of consecutive slices. The 1/h factor makes it a
 * discretisation of (alpha_t/2) int ||theta'(t)||^2 dt: the same meaning at every depth. */
#include "hamnet/convnet.h"
#include "hamnet/train.h"

#include <stdlib.h>

#define HN_REG_BLOCK 8192 /* entries per column block: 3 layers of parameters and 1 of gradients, 128 KiB in float, stay in L2 */

static double decay(const hn_real *p, hn_real *g, size_t count, double alpha) {
  double s = 0;
  for (size_t i = 0; i < count; i++) {
    s += (double)p[i] * p[i];
    if (g)
      g[i] += (hn_real)(alpha * p[i]);
  }
  return 0.5 * alpha * s;
}

double hn_regularizer(const hn_layout *L, const hn_real *params, hn_real *grads, double alpha_t, double alpha_w) {
  if (L->spec.n_stages > 0) /* per stage: hamnet/convnet.h */
    return hn_convnet_regularizer(L, params, grads, alpha_t, alpha_w);
  double R = 0;
  const int N = L->spec.depth;
  const size_t ls = L->layer_size;
  if (alpha_t != 0 && N > 1) {
    const double c = alpha_t / (double)L->h;
    const hn_real cr = (hn_real)c;
    /* Memory-bound: a deep network's layer parameters and gradients do not fit in cache. So the
     * layers are walked column block by column block - for a block of HN_REG_BLOCK entries,
     * layer 0, 1, ..., N-1 - and each layer's block, read as theta_{j+1}, is still in L2 when
     * it is theta_j and theta_{j-1}: parameters are read once, gradients once read and written
     * (pair by pair, every parameter and gradient was touched twice). The gradient of layer j is
     * c (theta_j - theta_{j-1}) - c (theta_{j+1} - theta_j). Blocks are independent and shared
     * out over the threads; their sums of squares are added in block order, so R does not
     * depend on the thread count. */
    const size_t nblk = (ls + HN_REG_BLOCK - 1) / HN_REG_BLOCK;
    double part_stack[64], *part = nblk <= 64 ? part_stack : malloc(nblk * sizeof(double));
    double s = 0;
    const int threaded = part != NULL && (size_t)N * ls >= ((size_t)1 << 16);
#pragma omp parallel for schedule(static) if (threaded)
    for (size_t blk = 0; blk < nblk; blk++) {
      const size_t i0 = blk * HN_REG_BLOCK, m = ls - i0 < HN_REG_BLOCK ? ls - i0 : HN_REG_BLOCK;
      double acc = 0;
      for (int j = 0; j < N; j++) {
        const hn_real *k = params + L->off_layers + (size_t)j * ls + i0;
        const hn_real *prev = j > 0 ? k - ls : NULL, *next = j + 1 < N ? k + ls : NULL;
        hn_real *g = grads ? grads + L->off_layers + (size_t)j * ls + i0 : NULL;
        if (next) {
#pragma omp simd reduction(+ : acc)
          for (size_t i = 0; i < m; i++) {
            const double d = (double)next[i] - (double)k[i];
            acc += d * d;
          }
        }
        if (!g)
          continue;
        if (prev && next) {
#pragma omp simd
          for (size_t i = 0; i < m; i++)
            g[i] += cr * ((k[i] - prev[i]) - (next[i] - k[i]));
        } else if (next) {
#pragma omp simd
          for (size_t i = 0; i < m; i++)
            g[i] -= cr * (next[i] - k[i]);
        } else {
#pragma omp simd
          for (size_t i = 0; i < m; i++)
            g[i] += cr * (k[i] - prev[i]);
        }
      }
      if (part)
        part[blk] = acc;
      else /* no scratch (out of memory): serial, summed as it goes */
        s += acc;
    }
    if (part) {
      for (size_t blk = 0; blk < nblk; blk++)
        s += part[blk];
      if (part != part_stack)
        free(part);
    }
    R += 0.5 * c * s;
  }
  if (alpha_w != 0) {
    const size_t cls = L->n_params - L->off_cls_W;
    R += decay(params + L->off_cls_W, grads ? grads + L->off_cls_W : NULL, cls, alpha_w);
    if (L->spec.opening == HN_OPEN_DENSE)
      R += decay(params, grads, L->off_layers, alpha_w);
  }
  return R;
}
