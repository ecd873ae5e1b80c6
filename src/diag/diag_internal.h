/* diag_internal.h - the diagnostics file's dataset table and writer (private to src/diag).
 *
 * One table lists every per-record dataset of diagnostics.h5 (hamnet/diag.h "THE FILE"), so
 * the writer, the resume truncation and the reader cannot disagree about the schema. A record
 * in memory is one double buffer; each dataset has its slice of it (1 value, max_depth or
 * max_depth + 1 values) and HDF5 converts to the file type (int64 / int32 / float64). */
#ifndef HAMNET_DIAG_INTERNAL_H
#define HAMNET_DIAG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hamnet/config.h"

typedef enum { DS_ONE = 0, DS_STATES = 1, DS_LAYERS = 2 } hn_ds_shape; /* 1, max_depth + 1, max_depth */
typedef enum { DS_F64 = 0, DS_I64 = 1, DS_I32 = 2 } hn_ds_type;

typedef struct {
  const char *path;
  hn_ds_type type;
  hn_ds_shape shape;
  const char *doc; /* the dataset's `description` attribute */
} hn_ds_desc;

enum {
  DS_EPOCH, DS_STEP, DS_DEPTH, DS_H, DS_WALL_TIME, DS_PROBE_SAMPLES,
  DS_TRAIN_LOSS, DS_TRAIN_ACC, DS_VAL_LOSS, DS_VAL_ACC, DS_LR, DS_SAMPLES_PER_S, DS_COMM_S, DS_RECON,
  DS_EPOCH_S, DS_PROBE_LOSS, DS_DIAG_S, DS_SPECTRA_S, DS_OVERHEAD,
  DS_Y_NORM, DS_Z_NORM, DS_GY_NORM, DS_K_NORM, DS_GK_NORM,
  DS_SV_MAX, DS_SV_MIN, DS_LOG_NORM, DS_EIG_RE_MAX, DS_EIG_ABS_MAX, DS_AMP, DS_H_SV_MAX,
  DS_MON_AMP, DS_MON_LOG_RATE, DS_MON_SHRINK, DS_MON_GY_RATIO, DS_MON_FLAGS, DS_MON_N_FLAGGED,
  DS_COUNT
};

extern const hn_ds_desc hn_ds_table[DS_COUNT];

/* Values of one dataset's row: 1, max_depth + 1 or max_depth. */
size_t hn_ds_width(hn_ds_shape shape, int max_depth);

/* One record: rec[off[k]] .. is dataset k's row. */
typedef struct {
  int max_depth, width;
  size_t off[DS_COUNT];
  size_t size;
  double *rec;
  /* /last: the full spectra [max_depth][width], NaN-padded */
  double *sv, *eig_re, *eig_im;
  int64_t last_epoch, last_step;
  int last_depth;
} hn_diag_row;

int hn_diag_row_init(hn_diag_row *r, int max_depth, int width);
void hn_diag_row_free(hn_diag_row *r);
/* Every value NaN (what is not computed stays NaN). */
void hn_diag_row_clear(hn_diag_row *r);
static inline double *hn_row(hn_diag_row *r, int k) { return r->rec + r->off[k]; }

/* Serial HDF5 on rank 0. `path` is RUN_DIR/diagnostics.h5. */
/* Create a new file (replacing any) with the root attributes and every dataset empty. */
int hn_diagfile_create(const char *path, const hn_config *cfg);
/* Check an existing file is a diagnostics file for this run; *exists = 0 when there is none.
 * Also truncates every dataset to the length of /record/step (a pass that died half-way). */
int hn_diagfile_check(const char *path, const hn_config *cfg, int *exists, long *n_records);
/* Drop every record from the first one whose step is > limit (>= limit when inclusive) on;
 * *dropped = how many. */
int hn_diagfile_truncate(const char *path, long limit, int inclusive, long *dropped);
/* Append one record (opens, writes /record/step last, rewrites /last, closes). */
int hn_diagfile_append(const char *path, const hn_diag_row *r);

#endif
