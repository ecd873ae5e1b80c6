/* diagfile.c - writing RUN_DIR/diagnostics.h5 (schema: hamnet/diag.h "THE FILE").
 *
 * Rank 0 opens the file, appends one row to every dataset and closes it again at each pass,
 * so that h5py can read the file between passes while the job runs. /record/step is written
 * LAST: its length is the number of complete records, and a pass that died half-way leaves
 * rows beyond it in other datasets, which the next open cuts off. The writer does not take
 * HDF5's file lock: a reader holding the file open (a plotting script) must never make the
 * training fail; a reader that opens the file in the middle of a pass may have to retry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag_internal.h"
#include "hamnet/build_info.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/real.h"
#include "core/h5util.h"

/* clang-format off */
const hn_ds_desc hn_ds_table[DS_COUNT] = {
  [DS_EPOCH]         = {"/record/epoch", DS_I64, DS_ONE, "epochs completed"},
  [DS_STEP]          = {"/record/step", DS_I64, DS_ONE, "optimiser steps completed (written last: its length is the number of records)"},
  [DS_DEPTH]         = {"/record/depth", DS_I32, DS_ONE, "depth of the network at this record (multilevel); per-layer columns beyond it are NaN"},
  [DS_H]             = {"/record/h", DS_F64, DS_ONE, "step h = final_time / depth"},
  [DS_WALL_TIME]     = {"/record/wall_time", DS_F64, DS_ONE, "Unix time of the record (seconds)"},
  [DS_PROBE_SAMPLES] = {"/record/probe_samples", DS_F64, DS_ONE, "samples in the probe batch (over all ranks)"},
  [DS_TRAIN_LOSS]    = {"/scalars/train_loss", DS_F64, DS_ONE, "mean training objective of the epoch (cross-entropy + regulariser)"},
  [DS_TRAIN_ACC]     = {"/scalars/train_accuracy", DS_F64, DS_ONE, "training accuracy of the epoch"},
  [DS_VAL_LOSS]      = {"/scalars/val_loss", DS_F64, DS_ONE, "validation cross-entropy (NaN without validation set)"},
  [DS_VAL_ACC]       = {"/scalars/val_accuracy", DS_F64, DS_ONE, "validation accuracy (NaN without validation set)"},
  [DS_LR]            = {"/scalars/lr", DS_F64, DS_ONE, "learning rate"},
  [DS_SAMPLES_PER_S] = {"/scalars/samples_per_second", DS_F64, DS_ONE, "training throughput of the epoch"},
  [DS_COMM_S]        = {"/scalars/comm_seconds", DS_F64, DS_ONE, "seconds in the gradient exchange since the previous record (rank 0)"},
  [DS_RECON]         = {"/scalars/recon_error", DS_F64, DS_ONE, "worst reversible reconstruction error since the previous record"},
  [DS_EPOCH_S]       = {"/scalars/epoch_seconds", DS_F64, DS_ONE, "wall time of the epoch"},
  [DS_PROBE_LOSS]    = {"/scalars/probe_loss", DS_F64, DS_ONE, "mean cross-entropy on the probe batch"},
  [DS_DIAG_S]        = {"/scalars/diag_seconds", DS_F64, DS_ONE, "wall time of this diagnostics pass before writing (probe, reductions, spectra, monitor)"},
  [DS_SPECTRA_S]     = {"/scalars/spectra_seconds", DS_F64, DS_ONE, "wall time of the ScaLAPACK spectra in this pass (NaN: a pass without spectra, see max_overhead)"},
  [DS_OVERHEAD]      = {"/scalars/diag_overhead", DS_F64, DS_ONE, "time spent in diagnostics passes before this one, as a fraction of the rest of the wall time since training started (rank 0's clock; what max_overhead limits)"},
  [DS_Y_NORM]        = {"/layers/y_norm", DS_F64, DS_STATES, "RMS over probe samples of ||y_j||, j = 0..depth"},
  [DS_Z_NORM]        = {"/layers/z_norm", DS_F64, DS_STATES, "RMS over probe samples of ||z_j|| (hamiltonian only)"},
  [DS_GY_NORM]       = {"/layers/grad_y_norm", DS_F64, DS_STATES, "RMS over probe samples of ||d loss_i / d y_j||, j = 0..depth"},
  [DS_K_NORM]        = {"/layers/K_norm", DS_F64, DS_LAYERS, "||K_j||_F"},
  [DS_GK_NORM]       = {"/layers/grad_K_norm", DS_F64, DS_LAYERS, "||dL/dK_j||_F, L = mean cross-entropy over the probe batch"},
  [DS_SV_MAX]        = {"/spectra/sv_max", DS_F64, DS_LAYERS, "largest singular value of K_j (PDGESVD)"},
  [DS_SV_MIN]        = {"/spectra/sv_min", DS_F64, DS_LAYERS, "smallest singular value of K_j (PDGESVD)"},
  [DS_LOG_NORM]      = {"/spectra/log_norm", DS_F64, DS_LAYERS, "logarithmic norm lambda_max((A+A^T)/2) of the layer operator (PDSYEVD; resnet, antisym)"},
  [DS_EIG_RE_MAX]    = {"/spectra/eig_re_max", DS_F64, DS_LAYERS, "max real part of the eigenvalues of A (PDGEHRD + PDHSEQR; resnet, antisym)"},
  [DS_EIG_ABS_MAX]   = {"/spectra/eig_abs_max", DS_F64, DS_LAYERS, "spectral radius of A (resnet, antisym)"},
  [DS_AMP]           = {"/spectra/amplification", DS_F64, DS_LAYERS, "per-layer amplification of the frozen-coefficient model (Euler: max|1+h lambda(A)|; Verlet: from h sigma_max)"},
  [DS_H_SV_MAX]      = {"/spectra/h_sv_max", DS_F64, DS_LAYERS, "h * sigma_max(K_j); Verlet / leapfrog are stable for < 2"},
  [DS_MON_AMP]       = {"/monitor/amplification", DS_F64, DS_ONE, "accumulated amplification: product over the layers"},
  [DS_MON_LOG_RATE]  = {"/monitor/log_amplification_per_time", DS_F64, DS_ONE, "log(accumulated amplification) / final_time"},
  [DS_MON_SHRINK]    = {"/monitor/shrink_factor", DS_F64, DS_ONE, "factor for h or the weights that satisfies the violated criterion (1: none violated, NaN: none found)"},
  [DS_MON_GY_RATIO]  = {"/monitor/grad_y_ratio", DS_F64, DS_ONE, "max_j / min_j of ||dL/dy_j|| (measured)"},
  [DS_MON_FLAGS]     = {"/monitor/flags", DS_I32, DS_ONE, "bits: 1 above band_high, 2 below band_low, 4 Verlet bound crossed, 8 non-finite spectra"},
  [DS_MON_N_FLAGGED] = {"/monitor/n_flagged", DS_I32, DS_ONE, "layers violating the per-layer criterion (Verlet: h sigma_max >= 2; Euler: amplification > 1)"},
};
/* clang-format on */

static const char *const groups[] = {"/record", "/scalars", "/layers", "/spectra", "/monitor", "/last"};
#define N_GROUPS ((int)(sizeof groups / sizeof groups[0]))

size_t hn_ds_width(hn_ds_shape shape, int max_depth) {
  return shape == DS_ONE ? 1 : shape == DS_STATES ? (size_t)max_depth + 1 : (size_t)max_depth;
}

/* ---------------------------------------------------------------------------------------- */
/* the in-memory record */

int hn_diag_row_init(hn_diag_row *r, int max_depth, int width) {
  memset(r, 0, sizeof *r);
  r->max_depth = max_depth;
  r->width = width;
  size_t off = 0;
  for (int k = 0; k < DS_COUNT; k++) {
    r->off[k] = off;
    off += hn_ds_width(hn_ds_table[k].shape, max_depth);
  }
  r->size = off;
  size_t last = (size_t)max_depth * width;
  r->rec = hn_alloc(off, sizeof(double), HN_MEM_OTHER, "diagnostics record");
  r->sv = hn_alloc(last, sizeof(double), HN_MEM_OTHER, "diagnostics singular values");
  r->eig_re = hn_alloc(last, sizeof(double), HN_MEM_OTHER, "diagnostics eigenvalues");
  r->eig_im = hn_alloc(last, sizeof(double), HN_MEM_OTHER, "diagnostics eigenvalues");
  if (!r->rec || !r->sv || !r->eig_re || !r->eig_im) {
    hn_diag_row_free(r);
    return HN_ENOMEM;
  }
  hn_diag_row_clear(r);
  return HN_OK;
}

void hn_diag_row_free(hn_diag_row *r) {
  hn_free(r->rec);
  hn_free(r->sv);
  hn_free(r->eig_re);
  hn_free(r->eig_im);
  memset(r, 0, sizeof *r);
}

void hn_diag_row_clear(hn_diag_row *r) {
  size_t last = (size_t)r->max_depth * r->width;
  for (size_t i = 0; i < r->size; i++)
    r->rec[i] = NAN;
  for (size_t i = 0; i < last; i++)
    r->sv[i] = r->eig_re[i] = r->eig_im[i] = NAN;
}

/* ---------------------------------------------------------------------------------------- */
/* HDF5 helpers */

static hid_t file_type(hn_ds_type t) {
  return t == DS_I64 ? H5T_STD_I64LE : t == DS_I32 ? H5T_STD_I32LE : H5T_IEEE_F64LE;
}

/* No file locking for the writer (see the top of this file). */
static hid_t writer_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0)
    H5Pset_file_locking(fapl, 0, 1);
  return fapl;
}

static int open_file(const char *path, unsigned flags, hid_t *file) {
  hn_h5_err d;
  hid_t fapl = writer_fapl();
  *file = fapl >= 0 ? H5Fopen(path, flags, fapl) : H5I_INVALID_HID;
  int status = *file < 0 ? hn_fail(HN_EIO, "cannot open diagnostics file %s%s", path, hn_h5_detail(&d)) : HN_OK;
  hn_h5_close(&fapl);
  return status;
}

static int create_dataset(const char *path, hid_t file, const hn_ds_desc *ds, int max_depth) {
  hn_h5_err d;
  const size_t w = hn_ds_width(ds->shape, max_depth);
  const int rank = ds->shape == DS_ONE ? 1 : 2;
  hsize_t dims[2] = {0, w}, maxdims[2] = {H5S_UNLIMITED, w};
  /* ~16 KiB chunks, at most 64 records each: small files for short runs, few chunks for long */
  hsize_t rows = 2048 / w;
  rows = rows < 1 ? 1 : rows > 64 ? 64 : rows;
  hsize_t chunk[2] = {rows, w};
  hid_t space = H5Screate_simple(rank, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE), dset = -1;
  int status = HN_OK;
  double nan = NAN;
  if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
      (ds->type == DS_F64 && H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan) < 0) ||
      (dset = H5Dcreate2(file, ds->path, file_type(ds->type), space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
    status = hn_fail(HN_EIO, "cannot create %s in %s%s", ds->path, path, hn_h5_detail(&d));
  if (status == HN_OK)
    status = hn_h5_write_attr_str(path, dset, ds->path, "description", ds->doc);
  hn_h5_close(&dset);
  hn_h5_close(&dcpl);
  hn_h5_close(&space);
  return status;
}

static int create_last(const char *path, hid_t file, const char *name, int max_depth, int width) {
  hn_h5_err d;
  hsize_t dims[2] = {(hsize_t)max_depth, (hsize_t)width};
  hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), dset = -1;
  double nan = NAN;
  int status = HN_OK;
  if (space < 0 || dcpl < 0 || H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan) < 0 ||
      (dset = H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
    status = hn_fail(HN_EIO, "cannot create %s in %s%s", name, path, hn_h5_detail(&d));
  hn_h5_close(&dset);
  hn_h5_close(&dcpl);
  hn_h5_close(&space);
  return status;
}

static const char NORMS_DOC[] =
    "y_norm, z_norm, grad_y_norm: root-mean-square over the probe samples of the per-sample Euclidean norm "
    "(grad_y_norm: of the gradient of that sample's cross-entropy); K_norm, grad_K_norm: Frobenius norms, "
    "grad_K_norm of the gradient of the mean cross-entropy over the probe batch (no regulariser). "
    "Per-layer columns are sized to max_depth (+1 for states); a record at a coarser multilevel stage "
    "fills the first depth (+1) columns and leaves the rest NaN.";

int hn_diagfile_create(const char *path, const hn_config *cfg) {
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hn_h5_err d;
  hid_t fapl = writer_fapl(), file = -1;
  int status = HN_OK;
  if (fapl < 0 || (file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
    status = hn_fail(HN_EIO, "cannot create diagnostics file %s%s (is the run folder writable?)", path,
                     hn_h5_detail(&d));
  const char *w = "/";
  const int D = cfg->model.depth, n = cfg->model.width;
  if (status == HN_OK) {
    status = hn_h5_write_attr_str(path, file, w, "format", HN_DIAG_FORMAT);
    if (status == HN_OK)
      status = hn_h5_write_attr_i64(path, file, w, "format_version", H5T_STD_I32LE, HN_DIAG_FORMAT_VERSION);
    if (status == HN_OK)
      status = hn_h5_write_attr_str(path, file, w, "hamnet_version", HN_VERSION);
    if (status == HN_OK)
      status = hn_h5_write_attr_str(path, file, w, "git_hash", HN_GIT_HASH);
    if (status == HN_OK)
      status = hn_h5_write_attr_str(path, file, w, "precision", HN_REAL_NAME);
    if (status == HN_OK)
      status = hn_h5_write_attr_str(path, file, w, "arch", hn_arch_name(cfg->model.arch));
    if (status == HN_OK)
      status = hn_h5_write_attr_str(path, file, w, "activation", hn_activation_name(cfg->model.activation));
    if (status == HN_OK)
      status = hn_h5_write_attr_i64(path, file, w, "width", H5T_STD_I32LE, n);
    if (status == HN_OK)
      status = hn_h5_write_attr_i64(path, file, w, "max_depth", H5T_STD_I32LE, D);
    if (status == HN_OK)
      status = hn_h5_write_attr_i64(path, file, w, "levels", H5T_STD_I32LE, cfg->train.levels);
    if (status == HN_OK)
      status = hn_h5_write_attr_f64(path, file, w, "final_time", cfg->model.final_time);
    if (status == HN_OK)
      status = hn_h5_write_attr_f64(path, file, w, "gamma", cfg->model.gamma);
    if (status == HN_OK)
      status = hn_h5_write_attr_f64(path, file, w, "band_low", cfg->diagnostics.band_low);
    if (status == HN_OK)
      status = hn_h5_write_attr_f64(path, file, w, "band_high", cfg->diagnostics.band_high);
    if (status == HN_OK)
      status = hn_h5_write_attr_i64(path, file, w, "spectra", H5T_STD_I32LE, cfg->diagnostics.spectra);
    if (status == HN_OK)
      status = hn_h5_write_attr_i64(path, file, w, "spectra_distributed_width", H5T_STD_I32LE,
                                    cfg->diagnostics.spectra_distributed_width);
    if (status == HN_OK)
      status = hn_h5_write_attr_f64(path, file, w, "max_overhead", cfg->diagnostics.max_overhead);
    if (status == HN_OK)
      status = hn_h5_write_attr_str(path, file, w, "norms", NORMS_DOC);
  }
  for (int g = 0; g < N_GROUPS && status == HN_OK; g++) {
    hid_t grp = H5Gcreate2(file, groups[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (grp < 0)
      status = hn_fail(HN_EIO, "cannot create group %s in %s%s", groups[g], path, hn_h5_detail(&d));
    hn_h5_close(&grp);
  }
  for (int k = 0; k < DS_COUNT && status == HN_OK; k++)
    status = create_dataset(path, file, &hn_ds_table[k], D);
  if (status == HN_OK)
    status = create_last(path, file, "/last/sv", D, n);
  if (status == HN_OK)
    status = create_last(path, file, "/last/eig_re", D, n);
  if (status == HN_OK)
    status = create_last(path, file, "/last/eig_im", D, n);
  if (file >= 0 && H5Fclose(file) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot close diagnostics file %s%s", path, hn_h5_detail(&d));
  file = -1;
  hn_h5_close(&fapl);
  hn_h5_quiet_off(&q);
  return status;
}

/* Number of rows of dataset k (-1 on error, message stored). */
static long rows_of(const char *path, hid_t file, int k) {
  hn_h5_err d;
  hid_t dset = H5Dopen2(file, hn_ds_table[k].path, H5P_DEFAULT), space = -1;
  long rows = -1;
  hsize_t dims[2] = {0, 0};
  if (dset < 0 || (space = H5Dget_space(dset)) < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
    hn_fail(HN_EFORMAT, "%s: missing or unreadable dataset %s%s (not written by this hamnet version? move "
            "the file away to start a new one)", path, hn_ds_table[k].path, hn_h5_detail(&d));
  else
    rows = (long)dims[0];
  hn_h5_close(&space);
  hn_h5_close(&dset);
  return rows;
}

static int set_rows(const char *path, hid_t file, int k, long rows, int max_depth) {
  hn_h5_err d;
  hid_t dset = H5Dopen2(file, hn_ds_table[k].path, H5P_DEFAULT);
  hsize_t dims[2] = {(hsize_t)rows, hn_ds_width(hn_ds_table[k].shape, max_depth)};
  int status = HN_OK;
  if (dset < 0 || H5Dset_extent(dset, dims) < 0)
    status = hn_fail(HN_EIO, "cannot resize %s in %s%s", hn_ds_table[k].path, path, hn_h5_detail(&d));
  hn_h5_close(&dset);
  return status;
}

/* Truncate every dataset to `rows` rows. */
static int truncate_all(const char *path, hid_t file, long rows, int max_depth) {
  for (int k = 0; k < DS_COUNT; k++) {
    long have = rows_of(path, file, k);
    if (have < 0)
      return HN_EFORMAT;
    if (have != rows)
      HN_TRY(set_rows(path, file, k, rows, max_depth));
  }
  return HN_OK;
}

static int read_int_attr(const char *path, hid_t file, const char *name, int64_t *v) {
  return hn_h5_read_attr_i64(path, file, "/", name, INT32_MIN, INT32_MAX, v, NULL);
}

int hn_diagfile_check(const char *path, const hn_config *cfg, int *exists, long *n_records) {
  *exists = 0;
  *n_records = 0;
  FILE *f = fopen(path, "rb");
  if (!f)
    return HN_OK;
  fclose(f);
  *exists = 1;
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hid_t file;
  int status = open_file(path, H5F_ACC_RDWR, &file);
  char *format = NULL, *arch = NULL;
  int64_t version = 0, width = 0, max_depth = 0;
  if (status == HN_OK) {
    status = hn_h5_read_attr_str(path, file, "/", "format", &format, NULL);
    if (status == HN_OK && strcmp(format, HN_DIAG_FORMAT) != 0)
      status = hn_fail(HN_EFORMAT, "%s is not a diagnostics file (format '%s')", path, format);
    if (status == HN_OK)
      status = read_int_attr(path, file, "format_version", &version);
    if (status == HN_OK && version != HN_DIAG_FORMAT_VERSION)
      status = hn_fail(HN_EFORMAT, "%s has diagnostics format_version %lld, this hamnet writes %d", path,
                       (long long)version, HN_DIAG_FORMAT_VERSION);
    if (status == HN_OK)
      status = hn_h5_read_attr_str(path, file, "/", "arch", &arch, NULL);
    if (status == HN_OK)
      status = read_int_attr(path, file, "width", &width);
    if (status == HN_OK)
      status = read_int_attr(path, file, "max_depth", &max_depth);
    if (status == HN_OK && (strcmp(arch, hn_arch_name(cfg->model.arch)) != 0 || width != cfg->model.width ||
                            max_depth != cfg->model.depth))
      status = hn_fail(HN_EFORMAT, "%s was written for arch %s, width %lld, depth %lld; this run has %s, %d, %d",
                       path, arch, (long long)width, (long long)max_depth, hn_arch_name(cfg->model.arch),
                       cfg->model.width, cfg->model.depth);
    if (status == HN_OK) {
      long rows = rows_of(path, file, DS_STEP);
      status = rows < 0 ? HN_EFORMAT : truncate_all(path, file, rows, (int)max_depth);
      *n_records = rows;
    }
    hn_h5_err d;
    if (H5Fclose(file) < 0 && status == HN_OK)
      status = hn_fail(HN_EIO, "cannot close %s%s", path, hn_h5_detail(&d));
  }
  free(format);
  free(arch);
  hn_h5_quiet_off(&q);
  if (status != HN_OK)
    hn_fail_context(status, "resuming diagnostics (move %s away to start a new file)", path);
  return status;
}

int hn_diagfile_truncate(const char *path, long limit, int inclusive, long *dropped) {
  *dropped = 0;
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hid_t file;
  int status = open_file(path, H5F_ACC_RDWR, &file);
  if (status != HN_OK) {
    hn_h5_quiet_off(&q);
    return status;
  }
  hn_h5_err d;
  int64_t max_depth = 0;
  status = read_int_attr(path, file, "max_depth", &max_depth);
  long rows = status == HN_OK ? rows_of(path, file, DS_STEP) : -1;
  if (status == HN_OK && rows < 0)
    status = HN_EFORMAT;
  int64_t *steps = NULL;
  if (status == HN_OK && rows > 0) {
    steps = malloc((size_t)rows * sizeof *steps);
    hid_t dset = H5Dopen2(file, hn_ds_table[DS_STEP].path, H5P_DEFAULT);
    if (!steps)
      status = hn_fail(HN_ENOMEM, "out of memory reading %s", path);
    else if (dset < 0 || H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps) < 0)
      status = hn_fail(HN_EIO, "cannot read /record/step of %s%s", path, hn_h5_detail(&d));
    hn_h5_close(&dset);
  }
  if (status == HN_OK && rows > 0) {
    long keep = rows;
    for (long i = 0; i < rows; i++)
      if (inclusive ? steps[i] >= limit : steps[i] > limit) {
        keep = i;
        break;
      }
    if (keep < rows) {
      /* /record/step first: an interruption leaves a consistent (shorter) record count */
      status = set_rows(path, file, DS_STEP, keep, (int)max_depth);
      if (status == HN_OK)
        status = truncate_all(path, file, keep, (int)max_depth);
      *dropped = rows - keep;
    }
  }
  free(steps);
  if (H5Fclose(file) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot close %s%s", path, hn_h5_detail(&d));
  hn_h5_quiet_off(&q);
  return status;
}

static int append_one(const char *path, hid_t file, int k, long row, const double *vals, int max_depth) {
  hn_h5_err d;
  const hn_ds_desc *ds = &hn_ds_table[k];
  const size_t w = hn_ds_width(ds->shape, max_depth);
  const int rank = ds->shape == DS_ONE ? 1 : 2;
  hsize_t dims[2] = {(hsize_t)row + 1, w}, start[2] = {(hsize_t)row, 0}, count[2] = {1, w}, mdims[1] = {w};
  hid_t dset = H5Dopen2(file, ds->path, H5P_DEFAULT), fspace = -1, mspace = -1;
  int status = HN_OK;
  if (dset < 0 || H5Dset_extent(dset, dims) < 0 || (fspace = H5Dget_space(dset)) < 0 ||
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
      (mspace = H5Screate_simple(1, mdims, NULL)) < 0 ||
      H5Dwrite(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, vals) < 0)
    status = hn_fail(HN_EIO, "cannot append to %s in %s%s", ds->path, path, hn_h5_detail(&d));
  (void)rank;
  hn_h5_close(&mspace);
  hn_h5_close(&fspace);
  hn_h5_close(&dset);
  return status;
}

static int write_whole(const char *path, hid_t file, const char *name, const double *vals) {
  hn_h5_err d;
  hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
  int status = HN_OK;
  if (dset < 0 || H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) < 0)
    status = hn_fail(HN_EIO, "cannot write %s in %s%s", name, path, hn_h5_detail(&d));
  hn_h5_close(&dset);
  return status;
}

/* Replace (or create) a scalar int64 attribute. */
static int set_attr_i64(const char *path, hid_t loc, const char *where, const char *name, int64_t v) {
  if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
    return hn_fail(HN_EIO, "cannot replace attribute %s of %s in %s", name, where, path);
  return hn_h5_write_attr_i64(path, loc, where, name, H5T_STD_I64LE, v);
}

int hn_diagfile_append(const char *path, const hn_diag_row *r) {
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hid_t file;
  int status = open_file(path, H5F_ACC_RDWR, &file);
  if (status != HN_OK) {
    hn_h5_quiet_off(&q);
    return status;
  }
  hn_h5_err d;
  long row = rows_of(path, file, DS_STEP);
  if (row < 0)
    status = HN_EFORMAT;
  for (int k = 0; k < DS_COUNT && status == HN_OK; k++)
    if (k != DS_STEP)
      status = append_one(path, file, k, row, r->rec + r->off[k], r->max_depth);
  if (status == HN_OK)
    status = write_whole(path, file, "/last/sv", r->sv);
  if (status == HN_OK)
    status = write_whole(path, file, "/last/eig_re", r->eig_re);
  if (status == HN_OK)
    status = write_whole(path, file, "/last/eig_im", r->eig_im);
  if (status == HN_OK) {
    hid_t grp = H5Gopen2(file, "/last", H5P_DEFAULT);
    if (grp < 0)
      status = hn_fail(HN_EIO, "cannot open /last in %s%s", path, hn_h5_detail(&d));
    if (status == HN_OK)
      status = set_attr_i64(path, grp, "/last", "epoch", r->last_epoch);
    if (status == HN_OK)
      status = set_attr_i64(path, grp, "/last", "step", r->last_step);
    if (status == HN_OK)
      status = set_attr_i64(path, grp, "/last", "depth", r->last_depth);
    hn_h5_close(&grp);
  }
  if (status == HN_OK) /* last: this makes the record count */
    status = append_one(path, file, DS_STEP, row, r->rec + r->off[DS_STEP], r->max_depth);
  if (H5Fclose(file) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot close %s%s", path, hn_h5_detail(&d));
  hn_h5_quiet_off(&q);
  return status;
}
