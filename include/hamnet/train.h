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

/* --- regularisers (README, The mathematics, "Regularisation") -------------------------------------------- */
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

/* --- multilevel (README, The mathematics, "Multilevel training") -------------------------------------------- */
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
 * SIGUSR1, SIGTERM and SIGINT set a flag; the training loop finishes the step under way, and
 * at its end (all ranks agree through the per-step reduction: a signal on any rank stops every
 * rank after the same step) writes a checkpoint and returns HN_ESTOPPED (exit code 75).
 * The first signal wins; further signals are counted but change nothing - in particular they
 * never interrupt a checkpoint write (which is atomic anyway: .tmp, fsync, rename).
 *
 * SIGTERM has a deadline, because it is what schedulers and mpirun send before SIGKILL and
 * what MPI_Abort sends to the healthy ranks: HAMNET_TERM_DEADLINE seconds (whole seconds,
 * default HN_TERM_DEADLINE_DEFAULT; 0 = no deadline). At the step boundary the loop writes the
 * checkpoint only if the last checkpoint write of this run took less than half the time left;
 * otherwise it stops at once without one. Independently, a watchdog (alarm(2)) armed by the
 * first SIGTERM ends the process with exit code 75 and a one-line message on stderr when the
 * deadline expires before the orderly stop has finished - e.g. a rank blocked in MPI_Allreduce
 * whose peer died, or a checkpoint write that is slower than expected. The newest complete
 * checkpoint is then what the next run resumes from. Set the deadline below the launcher's
 * grace period (Slurm KillWait, default 30 s; Open MPI's mpirun gives odls_base_sigkill_timeout,
 * 1 s by default, after forwarding SIGTERM - under mpirun send SIGUSR1, which it forwards). */
#define HN_TERM_DEADLINE_DEFAULT 20
void hn_signals_install(void);     /* reads HAMNET_TERM_DEADLINE; installs the handlers */
int hn_signals_pending(void);      /* the first stop signal received, 0 if none */
const char *hn_signal_name(int sig); /* "SIGUSR1", "SIGTERM", "SIGINT" */
int hn_signals_count(void);        /* stop signals received so far (capped at 1000) */
double hn_signals_elapsed(void);   /* seconds since the first stop signal (0 if none) */
double hn_signals_term_left(void); /* seconds left before the SIGTERM deadline; HUGE_VAL if none runs */
int hn_signals_term_deadline(void); /* the deadline in force, seconds (0 = none) */

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
