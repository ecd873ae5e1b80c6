/* multilevel.c - prolongation from depth N to 2N (README, The mathematics, "Multilevel training").
 *
 * Layer j of the coarse net acts on [j h, (j+1) h] and its parameters sit at the midpoint
 * t_j = (j + 1/2) h. The fine net (step h/2) samples the piecewise-linear interpolant of the
 * coarse theta(t) at its own midpoints (i + 1/2) h/2, held constant beyond the first and last
 * coarse midpoint. With midpoints, fine layer 2j+1/2j lands at 1/4 from the coarse midpoint:
 * fine 2j = 3/4 theta_j + 1/4 theta_{j-1}, fine 2j+1 = 3/4 theta_j + 1/4 theta_{j+1}. */
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/train.h"

int hn_multilevel_prolong(const hn_model *coarse, hn_model *fine) {
  const hn_layout *C = &coarse->layout, *F = &fine->layout;
  if (C->spec.n_stages > 0 || F->spec.n_stages > 0)
    return hn_fail(HN_EINVAL, "multilevel training is for dense networks; convolutional networks ([model] stages) "
                   "train at one depth: use [train] levels = 1");
  if (F->spec.depth != 2 * C->spec.depth || F->spec.width != C->spec.width || F->spec.arch != C->spec.arch ||
      F->spec.opening != C->spec.opening || F->spec.n_features != C->spec.n_features ||
      F->spec.n_classes != C->spec.n_classes)
    return hn_fail(HN_EINVAL, "multilevel prolongation needs the same network at twice the depth "
                   "(coarse depth %d -> fine depth %d)", C->spec.depth, F->spec.depth);
  const int N = C->spec.depth;
  const double hc = (double)C->spec.final_time / N, hf = hc / 2;
  const size_t ls = C->layer_size;
  memcpy(fine->params, coarse->params, C->off_layers * sizeof(hn_real)); /* opening */
  for (int i = 0; i < 2 * N; i++) {
    double t = (i + 0.5) * hf;            /* fine midpoint */
    double s = t / hc - 0.5;              /* position in coarse midpoint units */
    int j = (int)(s < 0 ? -1 : s);        /* coarse midpoint at or left of t */
    const hn_real *a, *b;
    double w;
    if (j < 0) {
      a = b = coarse->params + C->off_layers;
      w = 0;
    } else if (j >= N - 1) {
      a = b = coarse->params + C->off_layers + (size_t)(N - 1) * ls;
      w = 0;
    } else {
      a = coarse->params + C->off_layers + (size_t)j * ls;
      b = a + ls;
      w = s - j;
    }
    hn_real *out = fine->params + F->off_layers + (size_t)i * ls;
    for (size_t k = 0; k < ls; k++)
      out[k] = (hn_real)((1 - w) * a[k] + w * b[k]);
  }
  memcpy(fine->params + F->off_cls_W, coarse->params + C->off_cls_W,
         (C->n_params - C->off_cls_W) * sizeof(hn_real));
  return HN_OK;
}
