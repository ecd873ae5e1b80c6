/* diag.c - the diagnostics pass (hamnet/diag.h): probes, reductions, spectra, monitor, record.
 *
 * One pass, on every rank, in this order:
 *   forward + backward on this rank's probe rows with per-layer probes (model) -> one
 *   MPI_Allreduce of the probe sums and one of the layer gradients -> norms -> spectra over the
 *   BLACS grids (spectra.c) -> stability monitor (monitor.c) -> rank 0 appends the record
 *   (diagfile.c) and logs; the write status is agreed so every rank returns the same. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag/diag_internal.h"
#include "hamnet/convnet.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "hamnet/timer.h"

struct hn_diag {
  hn_config cfg;
  char path[HN_PATH_MAX + 32];
  int rank, size;
  MPI_Comm comm;
  int max_depth, width;
  hn_spectra *sp;        /* NULL with spectra = 0 */
  int resumed;           /* appending to an existing file: drop newer records before the first append */
  long resume_step;      /* -1: unknown (see hn_diag_set_resume_step) */
  hn_diag_row row;
  double *red;           /* probe sums [3 (max_depth + 1) + 2] */
  hn_layer_spectrum *ls; /* [max_depth] */
  /* time budget ([diagnostics] max_overhead), rank 0's clock decides for everyone */
  double t_open;         /* hn_wtime() when hn_diag_open began: "training time" counts from here */
  double spent;          /* seconds in diagnostics so far: opening (file, BLACS grids) + passes */
  double open_seconds;   /* what opening cost (part of spent) */
  double cost_probe;     /* the latest pass's cost without its spectra */
  double cost_spectra;   /* the latest spectra's cost */
  int passes;            /* passes made (full or probe-only) */
  int reduced;           /* passes reduced or skipped by the budget */
  int last_flags;        /* the monitor's flags at the previous full pass */
};

enum { PASS_SKIP = 0, PASS_PROBE = 1, PASS_FULL = 2 };

static double unix_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void hn_diag_report(const hn_diag *d) {
  if (!d || d->rank != 0)
    return;
  const double training = hn_wtime() - d->t_open - d->spent;
  hn_log_info("diagnostics cost: %.3f s in all (set-up %.3f s, %d pass%s, %d reduced or skipped by the budget) = "
              "%.1f%% of the %.3g s of training since they were set up ([diagnostics] max_overhead = %g)",
              d->spent, d->open_seconds, d->passes, d->passes == 1 ? "" : "es", d->reduced,
              training > 0 ? 100.0 * d->spent / training : 0.0, training > 0 ? training : 0.0,
              d->cfg.diagnostics.max_overhead);
}

void hn_diag_close(hn_diag *d) {
  if (!d)
    return;
  hn_spectra_destroy(d->sp);
  hn_diag_row_free(&d->row);
  hn_free(d->red);
  hn_free(d->ls);
  hn_free(d);
}

int hn_diag_open(hn_diag **out, const char *run_dir, const hn_config *cfg, int resumed) {
  *out = NULL;
  const double t_begin = hn_wtime(); /* set-up counts against the budget like a pass */
  const hn_mpi *mpi = hn_mpi_world();
  hn_diag *d = hn_alloc(1, sizeof *d, HN_MEM_OTHER, "diagnostics");
  if (!d)
    return hn_mpi_agree(HN_ENOMEM);
  d->cfg = *cfg;
  d->comm = mpi->comm == MPI_COMM_NULL ? MPI_COMM_WORLD : mpi->comm;
  MPI_Comm_rank(d->comm, &d->rank);
  MPI_Comm_size(d->comm, &d->size);
  d->max_depth = cfg->model.depth;
  d->width = cfg->model.width;
  d->resumed = resumed != 0;
  d->resume_step = -1;
  snprintf(d->path, sizeof d->path, "%s/%s", run_dir, HN_DIAG_FILE);
  int status = hn_diag_row_init(&d->row, d->max_depth, d->width);
  if (status == HN_OK) {
    d->red = hn_alloc(3 * ((size_t)d->max_depth + 1) + 2, sizeof(double), HN_MEM_OTHER, "diagnostics probes");
    d->ls = hn_alloc((size_t)d->max_depth, sizeof *d->ls, HN_MEM_OTHER, "diagnostics spectra");
    if (!d->red || !d->ls)
      status = HN_ENOMEM;
  }
  if (status == HN_OK && d->rank == 0) {
    int exists = 0;
    long records = 0;
    if (d->resumed)
      status = hn_diagfile_check(d->path, cfg, &exists, &records);
    if (status == HN_OK && !exists)
      status = hn_diagfile_create(d->path, cfg);
    if (status == HN_OK && exists)
      hn_log_info("diagnostics: appending to %s (%ld record%s)", d->path, records, records == 1 ? "" : "s");
  }
  status = hn_mpi_agree(status);
  if (status == HN_OK && cfg->diagnostics.spectra)
    status = hn_mpi_agree(hn_spectra_create(&d->sp, d->comm, 0, 0, cfg->diagnostics.spectra_distributed_width));
  if (status != HN_OK) {
    hn_diag_close(d);
    return status;
  }
  if (d->rank == 0) {
    if (d->sp) {
      int pr, pc;
      hn_spectra_grid(d->sp, &pr, &pc);
      hn_log_info("diagnostics: every %d epoch%s to %s; spectra with ScaLAPACK (layers of width >= %d on a %dx%d "
                  "grid, narrower ones spread over the %d rank%s)", cfg->diagnostics.every_epochs,
                  cfg->diagnostics.every_epochs == 1 ? "" : "s", d->path, cfg->diagnostics.spectra_distributed_width,
                  pr, pc, d->size, d->size == 1 ? "" : "s");
    } else {
      hn_log_info("diagnostics: every %d epoch%s to %s; [diagnostics] spectra = 0: no spectra, so the stability "
                  "monitor is off (only the measured ||dL/dy_j|| ratio is recorded)", cfg->diagnostics.every_epochs,
                  cfg->diagnostics.every_epochs == 1 ? "" : "s", d->path);
    }
  }
  d->t_open = t_begin;
  d->open_seconds = d->spent = hn_wtime() - t_begin;
  *out = d;
  return HN_OK;
}

void hn_diag_set_resume_step(hn_diag *d, long step) {
  if (d)
    d->resume_step = step;
}

/* ---------------------------------------------------------------------------------------- */

static double frob(const hn_real *x, size_t count) {
  double s = 0;
  for (size_t i = 0; i < count; i++)
    s += (double)x[i] * x[i];
  return sqrt(s);
}

/* Probe pass and reductions: fills the per-layer norms and the probe loss of d->row. */
static int probe_pass(hn_diag *d, hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                      int64_t B_global) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth;
  const size_t S = (size_t)N + 1;
  double *y2 = d->red, *z2 = y2 + S, *g2 = z2 + S, *loss = g2 + S;
  memset(d->red, 0, (3 * S + 2) * sizeof(double));
  memset(m->grads, 0, L->n_params * sizeof(hn_real));
  int status = HN_OK;
  if (B > 0 && B_global > 0) {
    hn_probe probe = {y2, L->spec.arch == HN_ARCH_HAMILTONIAN ? z2 : NULL, g2};
    hn_batch_stats st;
    status = hn_model_train_batch(m, ws, X, y, B, (hn_real)(1.0 / (double)B_global), NULL, NULL, &probe, &st);
    loss[0] = st.loss_sum;
    loss[1] = (double)st.count;
  }
  HN_TRY(hn_mpi_agree(status));
  if (d->size > 1) {
    if (MPI_Allreduce(MPI_IN_PLACE, d->red, (int)(3 * S + 2), MPI_DOUBLE, MPI_SUM, d->comm) != MPI_SUCCESS)
      return hn_fail(HN_EMPI, "diagnostics: reduction of the per-layer probes failed");
    /* the layers' gradients only (opening and classifier are not reported; convolutional
     * networks: the stages' layers with the connectives between them) */
    const size_t first = hn_layout_K_offset(L, 0);
    hn_real *g = m->grads + first;
    size_t count = hn_layout_K_offset(L, N - 1) + hn_layout_K_count(L, N - 1) + hn_layout_b_count(L, N - 1) - first;
    for (size_t done = 0; done < count;) { /* MPI counts are int */
      int c = count - done > (size_t)1 << 30 ? 1 << 30 : (int)(count - done);
      if (MPI_Allreduce(MPI_IN_PLACE, g + done, c, HN_MPI_REAL, MPI_SUM, d->comm) != MPI_SUCCESS)
        return hn_fail(HN_EMPI, "diagnostics: reduction of the layer gradients failed");
      done += (size_t)c;
    }
  }
  hn_diag_row *r = &d->row;
  const double Bg = (double)B_global;
  *hn_row(r, DS_PROBE_SAMPLES) = Bg;
  if (B_global <= 0)
    return HN_OK;
  *hn_row(r, DS_PROBE_LOSS) = loss[0] / (loss[1] > 0 ? loss[1] : 1);
  for (size_t j = 0; j < S; j++) {
    hn_row(r, DS_Y_NORM)[j] = sqrt(y2[j] / Bg);
    if (L->spec.arch == HN_ARCH_HAMILTONIAN)
      hn_row(r, DS_Z_NORM)[j] = sqrt(z2[j] / Bg);
    /* the model scaled every sample's gradient by 1/Bg: sum_i ||g_i||^2 = g2 * Bg^2 */
    hn_row(r, DS_GY_NORM)[j] = sqrt(g2[j] * Bg);
  }
  for (int j = 0; j < N; j++) {
    hn_row(r, DS_K_NORM)[j] = frob(m->params + hn_layout_K_offset(L, j), hn_layout_K_count(L, j));
    hn_row(r, DS_GK_NORM)[j] = frob(m->grads + hn_layout_K_offset(L, j), hn_layout_K_count(L, j));
  }
  double gmax = 0, gmin = INFINITY;
  for (size_t j = 0; j < S; j++) {
    double g = hn_row(r, DS_GY_NORM)[j];
    gmax = g > gmax ? g : gmax;
    gmin = g < gmin ? g : gmin;
  }
  *hn_row(r, DS_MON_GY_RATIO) = gmin > 0 ? gmax / gmin : INFINITY;
  return HN_OK;
}

/* Power-iteration steps for a convolution's sigma_max (a few digits; it is a monitor). */
#define HN_DIAG_CONV_POWER_ITERS 50

/* Convolutional networks (hamnet/convnet.h): sigma_max of layer j's convolution on its stage's maps
 * by power iteration on K^T K (hn_convnet_sigma_max), layers `first`..`last`-1 spread round-robin
 * over the ranks and summed. Only sv_max and h_sv_max = h_s sigma_max (the Verlet criterion
 * h sigma_max < 2) are computed; the other spectral quantities and /last are NaN (the
 * eigenvalues of a convolution operator are not computed). Collective. */
static int conv_spectra(hn_diag *d, const hn_layout *L, const hn_real *params, int first, int last,
                        hn_layer_spectrum *ls) {
  const int N = last - first;
  double *sv = hn_alloc((size_t)N, sizeof(double), HN_MEM_OTHER, "diagnostics sigma_max");
  int status = sv ? HN_OK : HN_ENOMEM;
  for (int j = first; j < last && sv; j++)
    if (j % d->size == d->rank)
      sv[j - first] = hn_convnet_sigma_max(L, params, j, HN_DIAG_CONV_POWER_ITERS, 1);
  status = hn_mpi_agree_comm(d->comm, status);
  if (status == HN_OK && d->size > 1 &&
      MPI_Allreduce(MPI_IN_PLACE, sv, N, MPI_DOUBLE, MPI_SUM, d->comm) != MPI_SUCCESS)
    status = hn_fail(HN_EMPI, "diagnostics: reduction of the convolutions' sigma_max failed");
  for (int j = first; j < last && status == HN_OK; j++) {
    int jj, s = hn_convnet_stage_of(L, j, &jj);
    hn_layer_spectrum *x = &ls[j - first];
    x->sv_min = x->log_norm = x->eig_re_max = x->eig_abs_max = x->amplification = NAN;
    x->sv_max = sv[j - first];
    x->h_sv_max = (double)L->conv.h[s] * x->sv_max;
    if (!isfinite(x->sv_max))
      status = hn_fail(HN_ENUMERIC, "sigma_max of layer %d is not finite (the weights are not)", j);
  }
  hn_free(sv);
  return status;
}

/* Spectra and monitor: fills /spectra, /monitor and /last of d->row; *mon for the log. */
static int spectra_pass(hn_diag *d, const hn_model *m, hn_monitor_result *mon) {
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth, n = L->spec.width, conv = L->spec.n_stages > 0;
  hn_diag_row *r = &d->row;
  double t0 = hn_wtime();
  int status = conv ? conv_spectra(d, L, m->params, 0, N, d->ls)
                    : hn_spectra_layers(d->sp, L, m->params, d->ls, r->sv, r->eig_re, r->eig_im);
  if (conv)
    for (size_t i = 0; i < (size_t)N * n; i++)
      r->sv[i] = r->eig_re[i] = r->eig_im[i] = NAN;
  if (status == HN_ENUMERIC || status == HN_EINTERNAL) {
    /* A diagnostic must not end the training: record no spectra, say why, go on. (Non-finite
     * weights end it anyway, through the trainer's divergence check.) The status is agreed. */
    hn_log_warn("diagnostics: no spectra at this pass: %s", hn_errmsg());
    hn_error_clear();
    for (size_t i = 0; i < (size_t)N * n; i++)
      r->sv[i] = r->eig_re[i] = r->eig_im[i] = NAN;
    for (int j = 0; j < N; j++) {
      hn_layer_spectrum *x = &d->ls[j];
      x->sv_max = x->sv_min = x->log_norm = x->eig_re_max = x->eig_abs_max = x->amplification = x->h_sv_max = NAN;
    }
    mon->flags = HN_DIAG_FLAG_NONFINITE;
    mon->amplification = mon->log_amp_per_time = mon->shrink_factor = NAN;
    *hn_row(r, DS_MON_FLAGS) = mon->flags;
    *hn_row(r, DS_SPECTRA_S) = hn_wtime() - t0;
    return HN_OK;
  }
  HN_TRY(status);
  *hn_row(r, DS_SPECTRA_S) = hn_wtime() - t0;
  if (conv && !hn_arch_is_reversible(L->spec.arch)) { /* no eigenvalues of convolutions: no Euler monitor */
    memset(mon, 0, sizeof *mon);
    mon->amplification = mon->log_amp_per_time = mon->shrink_factor = NAN;
    mon->worst_layer = -1;
  } else {
    hn_monitor_evaluate(L->spec.arch, N, n, (double)L->spec.final_time / N, L->spec.final_time,
                        d->cfg.diagnostics.band_low, d->cfg.diagnostics.band_high, d->ls, r->eig_re, r->eig_im, mon);
  }
  for (int j = 0; j < N; j++) {
    const hn_layer_spectrum *s = &d->ls[j];
    hn_row(r, DS_SV_MAX)[j] = s->sv_max;
    hn_row(r, DS_SV_MIN)[j] = s->sv_min;
    hn_row(r, DS_LOG_NORM)[j] = s->log_norm;
    hn_row(r, DS_EIG_RE_MAX)[j] = s->eig_re_max;
    hn_row(r, DS_EIG_ABS_MAX)[j] = s->eig_abs_max;
    hn_row(r, DS_AMP)[j] = s->amplification;
    hn_row(r, DS_H_SV_MAX)[j] = s->h_sv_max;
  }
  *hn_row(r, DS_MON_AMP) = mon->amplification;
  *hn_row(r, DS_MON_LOG_RATE) = mon->log_amp_per_time;
  *hn_row(r, DS_MON_SHRINK) = mon->shrink_factor;
  *hn_row(r, DS_MON_FLAGS) = mon->flags;
  *hn_row(r, DS_MON_N_FLAGGED) = mon->n_flagged;
  return HN_OK;
}

/* Rank 0: drop stale records once after a resume, then append. */
static int write_record(hn_diag *d, long step) {
  if (d->resumed) {
    long dropped = 0;
    int inclusive = d->resume_step < 0;
    long limit = inclusive ? step : d->resume_step;
    HN_TRY(hn_diagfile_truncate(d->path, limit, inclusive, &dropped));
    if (dropped > 0)
      hn_log_info("diagnostics: dropped %ld record%s written after step %ld (work lost before the resume)",
                  dropped, dropped == 1 ? "" : "s", inclusive ? step - 1 : limit);
    d->resumed = 0;
  }
  return hn_diagfile_append(d->path, &d->row);
}

/* Seconds the spectra of the whole network will take, from timing layer 0 (collective: every
 * rank takes part in the distributed case; rank 0's clock counts). The first ScaLAPACK call of
 * a process costs milliseconds of set-up and workspace queries, so when that first timing does
 * not already fit `allowed` and the layer is cheap (< 0.1 s), layer 0 is timed a second time. */
static double spectra_estimate(hn_diag *d, const hn_model *m, double allowed) {
  hn_layout one = m->layout;
  one.spec.depth = 1; /* a view of layer 0 only */
  const int N = m->layout.spec.depth;
  const int spread = m->layout.spec.width < d->cfg.diagnostics.spectra_distributed_width || d->size == 1;
  const double layers = spread ? (N + d->size - 1) / d->size : N;
  hn_layer_spectrum ls;
  double est = INFINITY;
  for (int k = 0; k < 2; k++) {
    double t0 = hn_wtime();
    if (m->layout.spec.n_stages > 0 ? conv_spectra(d, &m->layout, m->params, 0, 1, &ls) != HN_OK
                                    : hn_spectra_layers(d->sp, &one, m->params, &ls, NULL, NULL, NULL) != HN_OK) {
      hn_error_clear();
      return INFINITY; /* the real pass will report what is wrong */
    }
    double t = hn_wtime() - t0;
    est = t * layers;
    int again = k == 0 && est > allowed && t < 0.1;
    if (d->size > 1 && MPI_Bcast(&again, 1, MPI_INT, 0, d->comm) != MPI_SUCCESS)
      return INFINITY;
    if (!again)
      break;
  }
  return est;
}

/* What this pass may do within the budget ([diagnostics] max_overhead = f): the time spent in
 * diagnostics, counting this pass at the cost of the latest one, may be at most f times the rest
 * of the wall time since open (the training proper: "adds at most f to the training time").
 * The first pass has no measured cost yet: it takes its spectra when their estimate (one layer
 * timed) fits into f times the projected training time of the whole run (elapsed + this
 * epoch's time for each epoch still to come), so that the monitor looks at the network early
 * whenever the run can afford it, and a short run is not dominated by one expensive pass.
 * Rank 0 decides and broadcasts; collective. */
static int decide(hn_diag *d, const hn_model *m, const hn_diag_scalars *s, double now) {
  const double f = d->cfg.diagnostics.max_overhead;
  const int full = d->sp ? PASS_FULL : PASS_PROBE;
  if (f <= 0)
    return full;
  int mode = full;
  if (d->passes == 0) {
    if (!d->sp)
      return PASS_PROBE;
    int left = d->cfg.train.epochs - s->epoch;
    double projected = (now - d->t_open) + (left > 0 ? left : 0) * s->epoch_seconds;
    double est = spectra_estimate(d, m, f * projected); /* collective */
    d->cost_spectra = est; /* what later passes plan with until it is measured */
    if (d->rank == 0) {
      mode = est <= f * projected ? PASS_FULL : PASS_PROBE;
      if (mode != PASS_FULL)
        hn_log_info("diagnostics epoch %d: first pass without spectra: they would take about %.3g s, more than "
                    "[diagnostics] max_overhead = %g of the projected training time (%.3g s); they follow once the "
                    "budget allows (max_overhead = 0: every pass in full)", s->epoch, est, f, projected);
    }
  } else if (d->rank == 0) {
    double allowed = f * (now - d->t_open - d->spent); /* f of the training time proper */
    if (d->sp && d->spent + d->cost_probe + d->cost_spectra <= allowed)
      mode = PASS_FULL;
    else if (d->spent + d->cost_probe <= allowed)
      mode = PASS_PROBE;
    else
      mode = PASS_SKIP;
    if (mode != full) {
      const char *what = mode == PASS_PROBE ? "without spectra" : "skipped";
      if (d->reduced++ == 0)
        hn_log_info("diagnostics epoch %d: pass %s to keep diagnostics within [diagnostics] max_overhead = %g of "
                    "the training time (%.1f%% so far; a pass costs %.3f s, its spectra %.3f s); further reduced passes "
                    "are logged at debug level. max_overhead = 0 makes every pass run in full", s->epoch, what, f,
                    100.0 * d->spent / (now - d->t_open - d->spent), d->cost_probe, d->cost_spectra);
      else
        hn_log_debug("diagnostics epoch %d: pass %s (budget)", s->epoch, what);
    }
  }
  if (d->size > 1 && MPI_Bcast(&mode, 1, MPI_INT, 0, d->comm) != MPI_SUCCESS)
    return -1;
  return mode;
}

int hn_diag_record(hn_diag *d, hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                   int64_t B_global, const hn_diag_scalars *s) {
  const double t0 = hn_wtime();
  const int mode = decide(d, m, s, t0);
  if (mode < 0)
    return hn_fail(HN_EMPI, "diagnostics: broadcast of the pass decision failed");
  if (mode == PASS_SKIP) {
    d->spent += hn_wtime() - t0;
    return HN_OK;
  }
  const hn_layout *L = &m->layout;
  const int N = L->spec.depth;
  if (N > d->max_depth || L->spec.width != d->width)
    return hn_fail(HN_EINTERNAL, "diagnostics: the model (width %d, depth %d) does not fit the file (width %d, "
                   "max_depth %d)", L->spec.width, N, d->width, d->max_depth);
  hn_diag_row *r = &d->row;
  hn_diag_row_clear(r);
  *hn_row(r, DS_EPOCH) = s->epoch;
  *hn_row(r, DS_STEP) = (double)s->step;
  *hn_row(r, DS_DEPTH) = N;
  *hn_row(r, DS_H) = (double)L->spec.final_time / N;
  *hn_row(r, DS_WALL_TIME) = unix_time();
  *hn_row(r, DS_TRAIN_LOSS) = s->train_loss;
  *hn_row(r, DS_TRAIN_ACC) = s->train_accuracy;
  *hn_row(r, DS_VAL_LOSS) = s->val_loss;
  *hn_row(r, DS_VAL_ACC) = s->val_accuracy;
  *hn_row(r, DS_LR) = s->lr;
  *hn_row(r, DS_SAMPLES_PER_S) = s->samples_per_second;
  *hn_row(r, DS_COMM_S) = s->comm_seconds;
  *hn_row(r, DS_RECON) = s->recon_error;
  *hn_row(r, DS_EPOCH_S) = s->epoch_seconds;
  *hn_row(r, DS_OVERHEAD) = t0 - d->t_open - d->spent > 0 ? d->spent / (t0 - d->t_open - d->spent) : 0;
  r->last_epoch = s->epoch;
  r->last_step = s->step;
  r->last_depth = N;

  HN_TRY(probe_pass(d, m, ws, X, y, B, B_global));
  hn_monitor_result mon;
  memset(&mon, 0, sizeof mon);
  if (mode == PASS_FULL)
    HN_TRY(spectra_pass(d, m, &mon)); /* collective; every rank returns the same status */
  *hn_row(r, DS_DIAG_S) = hn_wtime() - t0;

  int status = d->rank == 0 ? write_record(d, s->step) : HN_OK;
  HN_TRY(hn_mpi_agree(status));
  const double cost = hn_wtime() - t0, spectra_s = *hn_row(r, DS_SPECTRA_S);
  d->spent += cost;
  d->passes++;
  if (mode == PASS_FULL) {
    d->cost_spectra = spectra_s;
    d->cost_probe = cost - spectra_s;
  } else {
    d->cost_probe = cost;
  }
  if (d->rank != 0)
    return HN_OK;

  const double *g = hn_row(r, DS_GY_NORM);
  if (mode == PASS_FULL) {
    double xmax = 0;
    for (int j = 0; j < N; j++)
      xmax = d->ls[j].h_sv_max > xmax ? d->ls[j].h_sv_max : xmax;
    /* a convolutional Euler network has no monitor (no eigenvalues of convolutions): say so, not "nan" */
    char amp[96];
    if (isnan(mon.amplification))
      snprintf(amp, sizeof amp, "n/a (%s)", L->spec.n_stages > 0 ? "no eigenvalues of convolutions" : "no spectra");
    else
      snprintf(amp, sizeof amp, "%.3g", mon.amplification);
    hn_log_info("diagnostics epoch %d: ||dL/dy_j|| max/min %.3g (j=0 %.3g, j=%d %.3g), accumulated amplification "
                "%s, max h*sigma_max %.3g; pass %.3f s (spectra %.3f s)", s->epoch, *hn_row(r, DS_MON_GY_RATIO),
                g[0], N, g[N], amp, xmax, *hn_row(r, DS_DIAG_S), *hn_row(r, DS_SPECTRA_S));
    if (mon.flags && mon.flags != d->last_flags) { /* the whole story when something new is flagged */
      char msg[2048];
      hn_monitor_message(L->spec.arch, N, d->ls, &mon, d->cfg.diagnostics.band_low, d->cfg.diagnostics.band_high,
                         msg, sizeof msg);
      hn_log_warn("epoch %d: %s", s->epoch, msg);
    } else if (mon.flags) {
      hn_log_warn("epoch %d: stability monitor still flags this network: accumulated amplification %.3g, %d flagged "
                  "layer%s, worst layer %d (details: hamnet inspect %s)", s->epoch, mon.amplification, mon.n_flagged,
                  mon.n_flagged == 1 ? "" : "s", mon.worst_layer, d->path);
    } else if (d->last_flags) {
      hn_log_info("diagnostics epoch %d: the stability monitor flags nothing any more", s->epoch);
    }
    d->last_flags = mon.flags;
  } else {
    hn_log_info("diagnostics epoch %d: ||dL/dy_j|| max/min %.3g (j=0 %.3g, j=%d %.3g); pass %.3f s", s->epoch,
                *hn_row(r, DS_MON_GY_RATIO), g[0], N, g[N], *hn_row(r, DS_DIAG_S));
  }
  return HN_OK;
}
