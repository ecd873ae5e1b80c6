/* hamnet/diag.h - per-layer diagnostics, spectra and the stability monitor.
 *
 * The training loop calls hn_diag_record at the diagnostics cadence ([diagnostics]
 * every_epochs) on EVERY rank (the per-layer quantities are reduced over the ranks and the
 * spectra are computed with ScaLAPACK over all of them); rank 0 appends one record to
 * RUN_DIR/diagnostics.h5 and closes the file again, so h5py can read it while the job runs.
 * Layout of the file: README "Diagnostics files". */
#ifndef HAMNET_DIAG_H
#define HAMNET_DIAG_H

#include <stdint.h>

#include "hamnet/config.h"
#include "hamnet/model.h"

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

/* Open (create, or append after a resume) RUN_DIR/diagnostics.h5. Collective. */
int hn_diag_open(hn_diag **d, const char *run_dir, const hn_config *cfg, int resumed);

/* One diagnostics pass. Collective. `X`, `y`, `B` are this rank's part of a fixed probe batch
 * (B may be 0 on some ranks), `B_global` the sum over ranks. The pass runs forward and
 * backward with per-layer probes (it overwrites m->grads: call it where the gradient buffer
 * is free), reduces the probes over the ranks, computes the spectra and the stability monitor,
 * logs warnings, and rank 0 appends the record. */
int hn_diag_record(hn_diag *d, hn_model *m, hn_workspace *ws, const hn_real *X, const int32_t *y, int B,
                   int64_t B_global, const hn_diag_scalars *s);

void hn_diag_close(hn_diag *d);

#endif
