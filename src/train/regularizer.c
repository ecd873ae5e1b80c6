/* regularizer.c - time smoothness of the layer parameters and weight decay (hamnet/train.h).
 *
 * Layer j's parameters (K_j, b_j) are one contiguous slice of the flat buffer, so the
 * smoothness term is a difference of consecutive slices. The 1/h factor makes it a
 * discretisation of (alpha_t/2) int ||theta'(t)||^2 dt: the same meaning at every depth. */
#include "hamnet/convnet.h"
#include "hamnet/train.h"

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
  if (alpha_t != 0) {
    const double c = alpha_t / (double)L->h;
    double s = 0;
    for (int j = 0; j + 1 < N; j++) {
      const hn_real *a = params + L->off_layers + (size_t)j * ls, *b = a + ls;
      hn_real *ga = grads ? grads + L->off_layers + (size_t)j * ls : NULL;
      for (size_t i = 0; i < ls; i++) {
        double d = (double)b[i] - a[i];
        s += d * d;
        if (ga) {
          ga[i] -= (hn_real)(c * d);
          ga[i + ls] += (hn_real)(c * d);
        }
      }
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
