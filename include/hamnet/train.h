/* hamnet/train.h - what turns gradients into a trained network: regularisers, optimisers,
 * learning-rate schedules, multilevel prolongation, and the training loop.
 *
 * All of these operate on the model's ONE flat parameter buffer (hamnet/model.h): the
 * optimiser is one loop over n_params, its moments are flat buffers of the same layout. */
#ifndef HAMNET_TRAIN_H
#define HAMNET_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "hamnet/config.h"
#include "hamnet/model.h"

/* --- regularisers (MATH.md "Regularisation") -------------------------------------------- */
/* R = alpha_t/(2h) sum_{j=0}^{N-2} (||K_{j+1}-K_j||_F^2 + ||b_{j+1}-b_j||^2)
 *   + alpha_w/2 (||W||_F^2 + ||mu||^2 + ||K_in||_F^2 + ||b_in||^2).
 * Returns R; when grads is not NULL, adds dR/dtheta to it. */
double hn_regularizer(const hn_layout *L, const hn_real *params, hn_real *grads, double alpha_t, double alpha_w);

/* --- optimisers ---------------------------------------------------------------------------- */
typedef struct {
  hn_optimizer_kind kind;
  double momentum;   /* sgd */
  int nesterov;
  double beta1, beta2, eps; /* adam */
  size_t n;          /* parameters */
  long step;         /* updates done (adam bias correction) */
  hn_real *m1;       /* sgd: velocity; adam: first moment   (HN_MEM_OPTIM) */
  hn_real *m2;       /* adam: second moment (NULL for sgd) */
} hn_optimizer;

int hn_optimizer_create(hn_optimizer *opt, const hn_config *cfg, size_t n_params);
void hn_optimizer_destroy(hn_optimizer *opt);
/* Forget the moments and the step count (after a multilevel prolongation). */
void hn_optimizer_reset(hn_optimizer *opt);
/* params -= update(grads, lr). One pass over the flat buffers, OpenMP-threaded. */
void hn_optimizer_step(hn_optimizer *opt, hn_real *params, const hn_real *grads, double lr);

/* --- learning rate ------------------------------------------------------------------------- */
/* lr at `epoch` (0-based, fractional within an epoch allowed) of `epochs` for the schedule. */
double hn_lr_at(const hn_config *cfg, double epoch, int epochs);

/* --- multilevel (MATH.md "Multilevel training") -------------------------------------------- */
/* Prolong the layer parameters of `coarse` (depth N) to `fine` (depth 2N, same width etc.):
 * theta_j sits at the midpoint (j + 1/2) h; the fine layers take the piecewise-linear
 * interpolation at their midpoints, held constant beyond the first and last coarse midpoint.
 * Opening and classifier are copied. */
int hn_multilevel_prolong(const hn_model *coarse, hn_model *fine);

#endif
