/* hamnet/diag.h - per-layer diagnostics, spectra and the stability monitor.
 *
 * The training loop calls hn_diag_record at the diagnostics cadence ([diagnostics]
 * every_epochs) on EVERY rank (the per-layer quantities are reduced over the ranks and the
 * spectra are computed with ScaLAPACK over all of them); rank 0 appends one record to
 * RUN_DIR/diagnostics.h5 and closes the file again, so h5py can read it while the job runs.
 *
 * THE FILE (format "hamnet-diagnostics", format_version 1; README "Diagnostics files")
 *   root attributes  format, format_version, hamnet_version, git_hash, precision, arch,
 *                    activation, width (int), max_depth (int: the final depth, model.depth),
 *                    final_time, gamma, band_low, band_high, spectra (0/1),
 *                    spectra_distributed_width (int), norms (string: how the norms are defined)
 *   Every dataset below has one row per record (axis 0, extendible, chunked); a reader takes
 *   the length of /record/step as the number of records.
 *   /record/{epoch, step}                   int64 [R]   epochs / optimiser steps completed
 *   /record/depth                           int32 [R]   depth at this record (multilevel!)
 *   /record/{h, wall_time, probe_samples}   float64 [R] step T/depth, Unix time, samples probed
 *   /scalars/{train_loss, train_accuracy, val_loss, val_accuracy, lr, samples_per_second,
 *             comm_seconds, recon_error, epoch_seconds, probe_loss, diag_seconds,
 *             spectra_seconds}            float64 [R]
 *   /layers/{y_norm, z_norm, grad_y_norm}   float64 [R, max_depth + 1]  j = 0..depth
 *   /layers/{K_norm, grad_K_norm}           float64 [R, max_depth]      j = 0..depth-1
 *   /spectra/{sv_max, sv_min, log_norm, eig_re_max, eig_abs_max, amplification, h_sv_max}
 *                                           float64 [R, max_depth]
 *   /monitor/{amplification, log_amplification_per_time, shrink_factor, grad_y_ratio}
 *                                           float64 [R]
 *   /monitor/{flags, n_flagged}             int32 [R]   HN_DIAG_FLAG_* bits; flagged layers
 *   /last/{sv, eig_re, eig_im}              float64 [max_depth, width]  the full spectra of the
 *                                           newest record (overwritten each pass; attributes
 *                                           epoch, step, depth)
 * MULTILEVEL: per-layer rows are sized to the FINAL depth; a record made at a coarser stage
 * (depth < max_depth) fills columns 0..depth (or depth-1) and leaves the rest NaN. Layer j of
 * a record covers [j h, (j+1) h] with that record's h, so plots over t = j * h line up.
 * Quantities that do not apply are NaN: z_norm outside hamiltonian; log_norm, eig_* for
 * hamiltonian / leapfrog; all of /spectra, /last and the model-based monitor columns with
 * spectra = 0; val_* without a validation set.
 *
 * NORMS: ||y_j|| and ||z_j|| are root-mean-square over the probe samples of the per-sample
 * Euclidean norm; ||dL/dy_j|| likewise of the per-sample gradient of that sample's
 * cross-entropy; ||K_j||_F and ||dL/dK_j||_F are Frobenius norms, the latter of the gradient of
 * the mean cross-entropy over the probe batch (regularisers not included).
 *
 * RESUME: records are appended after the existing ones; records newer than the resumed step
 * (written after the checkpoint the run resumed from) are dropped first. */
#ifndef HAMNET_DIAG_H
#define HAMNET_DIAG_H

#include <stdint.h>
#include <stdio.h>

#include <mpi.h>

#include "hamnet/config.h"
#include "hamnet/model.h"

#define HN_DIAG_FORMAT "hamnet-diagnostics"
#define HN_DIAG_FORMAT_VERSION 1
#define HN_DIAG_FILE "diagnostics.h5"

typedef struct hn_diag hn_diag;

/* What the training loop knows at a diagnostics pass. */
typedef struct {
  int epoch;              /* epochs completed */
  long step;              /* optimiser steps completed */
  double train_loss, train_accuracy;
  double val_loss, val_accuracy; /* NaN without validation */
  double lr;
  double samples_per_second;
  double comm_seconds;    /* time in the gradient exchange since the last record */
  double recon_error;     /* worst reversible reconstruction error since the last record */
  double epoch_seconds;
} hn_diag_scalars;

/* Open RUN_DIR/diagnostics.h5. Collective. resumed = 0: a new file (an existing one is
 * replaced); resumed != 0: append to the existing file (created when missing). The file must
 * then have been made for the same architecture, width and max_depth (HN_EFORMAT naming the
 * file and the fix otherwise). Sets up the BLACS grids when [diagnostics] spectra = 1. */
int hn_diag_open(hn_diag **d, const char *run_dir, const hn_config *cfg, int resumed);

/* After a resume: the optimiser step of the checkpoint the run resumed from. Records with a
 * larger step are dropped before the next append. Without this call a resumed run drops the
 * records whose step is >= that of its first new record (the same thing while the cadence is
 * unchanged). */
void hn_diag_set_resume_step(hn_diag *d, long step);

/* One diagnostics pass. Collective. `X`, `y`, `B` are this rank's part of a fixed probe batch
 * (B may be 0 on some ranks), `B_global` the sum over ranks. The pass runs forward and
 * backward with per-layer probes (it overwrites m->grads: call it where the gradient buffer
 * is free), reduces the probes over the ranks, computes the spectra and the stability monitor,
 * logs warnings, and rank 0 appends the record. All ranks return the same status. */
int hn_diag_record(hn_diag *d, hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                   int64_t B_global, const hn_diag_scalars *s);

/* Rank 0 logs what the diagnostics cost this run: set-up (file, BLACS grids) and every pass,
 * as a share of the training time since hn_diag_open - the same measure the time budget
 * ([diagnostics] max_overhead) holds below its limit. No-op on other ranks and for NULL. */
void hn_diag_report(const hn_diag *d);

void hn_diag_close(hn_diag *d);

/* --- spectra (ScaLAPACK) -------------------------------------------------------------------
 * Two kinds of BLACS grid: one 1x1 grid per rank (layers narrower than distributed_width go
 * whole to one rank each, round-robin: layer j to rank j % P), and one nprow x npcol grid over
 * ranks 0..nprow*npcol-1 of comm, on which layers at least distributed_width wide are computed
 * one after another, block-cyclically distributed (square blocks of
 * clamp(width / max(nprow, npcol), 6, 32)). All arithmetic is in double whatever hn_real is. */
typedef struct hn_spectra hn_spectra;

/* Collective over comm. nprow = npcol = 0: the most nearly square grid over all ranks
 * (1x1, 1x2, 1x3, 2x2, 2x3, ...; nprow <= npcol). Otherwise nprow * npcol <= size of comm. */
int hn_spectra_create(hn_spectra **sp, MPI_Comm comm, int nprow, int npcol, int distributed_width);
void hn_spectra_destroy(hn_spectra *sp);
/* The grid's shape. */
void hn_spectra_grid(const hn_spectra *sp, int *nprow, int *npcol);

/* Spectra of one n x n matrix (row-major, double, the same on every rank that takes part):
 *   sv        [n] singular values of K, descending (PDGESVD)
 *   sym       [n] eigenvalues of (A + A^T)/2, ascending (PDSYEVD); NULL: skipped
 *   eig_re/im [n] eigenvalues of A (PDGEHRD, then PDHSEQR), complex pairs adjacent; NULL: skipped
 * distributed = 0: computed on this rank's 1x1 grid (not collective); 1: on the big grid,
 * collective over comm (ranks outside the grid return at once; outputs untouched). A may be
 * NULL when sym and eig_re are. HN_ENUMERIC (non-finite input, no convergence) or
 * HN_EINTERNAL (ScaLAPACK rejected an argument) with a message naming the routine and info. */
int hn_spectra_matrix(hn_spectra *sp, int distributed, int n, const double *K, const double *A, double *sv,
                      double *sym, double *eig_re, double *eig_im);

/* Per-layer summary of the spectra; NaN where a quantity does not apply to the architecture. */
typedef struct {
  double sv_max, sv_min; /* extreme singular values of K_j */
  double log_norm;       /* lambda_max((A + A^T)/2), A = K (resnet), K - K^T - gamma I (antisym) */
  double eig_re_max;     /* max Re lambda(A) (resnet, antisym) */
  double eig_abs_max;    /* spectral radius of A (resnet, antisym) */
  double amplification;  /* frozen-coefficient per-layer amplification, see hn_monitor_* */
  double h_sv_max;       /* h * sv_max: the Verlet criterion is h * sigma_max(K_j) < 2 */
} hn_layer_spectrum;

/* Spectra of every layer of the model (collective over comm; every rank holds the same
 * parameters). out [depth]; sv_all [depth][width] (NULL: not returned); eig_re / eig_im
 * [depth][width] (resnet / antisym; NULL: not returned; NaN for the other architectures).
 * Every rank gets every layer's results. */
int hn_spectra_layers(hn_spectra *sp, const hn_layout *L, const hn_real *params, hn_layer_spectrum *out,
                      double *sv_all, double *eig_re, double *eig_im);

/* --- stability monitor (README, The mathematics, "Stability") --------------------------------------------------
 * Frozen-coefficient model with sigma' replaced by its bound 1 (tanh' and relu' lie in [0, 1];
 * J_j = D_j A_j is evaluated at D_j = I, i.e. linearised around pre-activation 0, where tanh'
 * is 1):
 *   forward Euler (resnet, antisym): per-layer amplification g_j = max_i |1 + h lambda_i(A_j)|,
 *     accumulated G = prod_j g_j; flagged when G leaves [band_low, band_high].
 *   Verlet (hamiltonian) and leapfrog: every mode with singular value s of K_j obeys
 *     r^2 - (2 - (h s)^2) r + 1 = 0, so with x = h sigma_max(K_j) the per-layer amplification
 *     is 1 for x < 2 and a + sqrt(a^2 - 1), a = (x^2 - 2)/2, above; flagged when some layer has
 *     x >= 2 (strict bound: x = 2 is a double root at -1, linear growth), and, as for Euler,
 *     when G leaves the band. */
enum {
  HN_DIAG_FLAG_BAND_HIGH = 1 << 0, /* accumulated amplification above band_high */
  HN_DIAG_FLAG_BAND_LOW = 1 << 1,  /* accumulated amplification below band_low */
  HN_DIAG_FLAG_VERLET = 1 << 2,    /* a Verlet / leapfrog layer has h sigma_max >= 2 */
  HN_DIAG_FLAG_NONFINITE = 1 << 3  /* a spectrum is not finite (weights blew up) */
};

typedef struct {
  double amplification;     /* G = prod_j g_j */
  double log_amp_per_time;  /* log(G) / T: the growth rate the network realises */
  int flags;                /* HN_DIAG_FLAG_* */
  int n_flagged;            /* Verlet: layers with x >= 2; Euler: layers with g_j > 1 */
  double shrink_factor;     /* factor c < 1 such that c*h (equivalently c*K) satisfies the criterion
                             * that was violated: Verlet 2 / max_j x_j (strictly below it); Euler the
                             * largest c found by bisection with G(c) back in the band. 1 when nothing
                             * is flagged, NaN when no such factor exists */
  int worst_layer;          /* layer with the largest g_j (Euler) or x_j (Verlet) */
} hn_monitor_result;

/* Amplification of one Verlet / leapfrog layer with x = h * sigma_max. */
double hn_monitor_verlet_amplification(double x);

/* Evaluate the monitor. ls [depth] (h_sv_max used for Verlet; amplification is filled in);
 * eig_re / eig_im [depth][width] are needed for resnet / antisym (may be NULL otherwise). */
void hn_monitor_evaluate(hn_arch arch, int depth, int width, double h, double final_time, double band_low,
                         double band_high, hn_layer_spectrum *ls, const double *eig_re, const double *eig_im,
                         hn_monitor_result *r);

/* The warning text for a flagged result ("" when nothing is flagged): names the worst layers
 * (up to 8) and the factor by which h or the weights would have to shrink. */
void hn_monitor_message(hn_arch arch, int depth, const hn_layer_spectrum *ls, const hn_monitor_result *r,
                        double band_low, double band_high, char *buf, size_t size);

/* --- reading ---------------------------------------------------------------------------------
 * Summary of a diagnostics file for `hamnet inspect` (text, or one JSON object with json = 1):
 * run shape, records, the newest record's losses, max_j/min_j ||dL/dy_j||, ||y_j|| range,
 * spectra ranges, the monitor's amplification and flags, and the cost of the passes.
 * HN_EIO / HN_EFORMAT with a message naming the file and the object. */
int hn_diag_print_summary(const char *path, int json, FILE *out);

#endif
