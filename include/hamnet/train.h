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

/* --- the training loop ----------------------------------------------------------------------
 * hn_train runs a whole training job on every rank of the world communicator:
 *   data (each rank reads only its own rows of each epoch) -> forward/backward (model) ->
 *   gradient exchange (parallel) -> regulariser -> optimiser -> at cadence: validation,
 *   checkpoint (io), diagnostics; progress on rank 0.
 * It resumes from the newest valid checkpoint in run_dir if there is one. Returns HN_OK when
 * the run finished, HN_ESTOPPED when a signal stopped it after a checkpoint (exit code 75:
 * resume me), HN_ENUMERIC when the loss or gradient became non-finite (last good checkpoint
 * kept), other statuses on errors - the same on every rank. */
typedef struct {
  int epochs_done;
  long steps;
  double train_loss, train_accuracy;
  double val_loss, val_accuracy; /* NaN without validation set */
  double seconds;                /* wall time of this invocation */
  double samples_per_second;
  double max_recon_error;        /* worst reversible reconstruction error seen */
  char last_checkpoint[1024];
} hn_train_result;

int hn_train(const hn_config *cfg, const char *run_dir, hn_train_result *result);

/* Depth trained at multilevel stage `level` (0 = coarsest) of `levels`. */
int hn_level_depth(const hn_config *cfg, int level);
/* Epochs of stage `level`: epochs split evenly over the levels, the remainder to the last. */
int hn_level_epochs(const hn_config *cfg, int level);

/* --- signals ---------------------------------------------------------------------------------
 * SIGUSR1, SIGTERM and SIGINT set a flag; the training loop checks it at every step boundary
 * (all ranks agree through the per-step reduction), writes a checkpoint and returns
 * HN_ESTOPPED. A second signal while checkpointing does not interrupt the write. */
void hn_signals_install(void);
int hn_signals_pending(void); /* the signal number received, 0 if none */

/* --- evaluation ------------------------------------------------------------------------------
 * Loss and accuracy of a checkpoint on a data file, sharded over the world's ranks: rank r
 * reads and evaluates rows [N r / P, N (r+1) / P). With noise > 0 every input coordinate of
 * sample i first gets N(0, noise^2) from the stream (seed, HN_RNG_NOISE, 0, i), so the result
 * does not depend on the number of ranks. */
typedef struct {
  const char *checkpoint;
  const char *data;
  const char *predictions; /* NULL or an HDF5 file for /pred, /logits, /y (rank 0 writes) */
  double noise;
  uint64_t seed;
  int batch;               /* samples per forward pass and rank */
} hn_eval_options;

typedef struct {
  double loss;      /* mean cross-entropy */
  double accuracy;
  int64_t samples;
  int64_t correct;
  double seconds;
} hn_eval_result;

void hn_eval_options_default(hn_eval_options *opt);
int hn_evaluate(const hn_eval_options *opt, hn_eval_result *res);
