/* diag_read.c - summary of a diagnostics file for `hamnet inspect` (hamnet/diag.h "reading").
 *
 * Reads the schema through the same dataset table the writer uses (diag_internal.h). The
 * number of records is the length of /record/step; rows beyond it (a pass that died while
 * writing) are ignored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/diag_internal.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "core/h5util.h"

typedef struct {
  const char *path;
  hid_t file;
  long R;
  int max_depth, width;
} reader;

/* All R values of a one-value-per-record dataset. */
static int read_col(reader *rd, int k, double *out) {
  hn_h5_err d;
  hsize_t start[1] = {0}, count[1] = {(hsize_t)rd->R};
  hid_t dset = H5Dopen2(rd->file, hn_ds_table[k].path, H5P_DEFAULT), fs = -1, ms = -1;
  int status = HN_OK;
  if (rd->R == 0)
    ;
  else if (dset < 0 || (fs = H5Dget_space(dset)) < 0 ||
           H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
           (ms = H5Screate_simple(1, count, NULL)) < 0 ||
           H5Dread(dset, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, out) < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot read %s%s", rd->path, hn_ds_table[k].path, hn_h5_detail(&d));
  hn_h5_close(&ms);
  hn_h5_close(&fs);
  hn_h5_close(&dset);
  return status;
}

/* Row `row` of a per-layer dataset. */
static int read_row(reader *rd, int k, long row, double *out) {
  hn_h5_err d;
  hsize_t w = hn_ds_width(hn_ds_table[k].shape, rd->max_depth);
  hsize_t start[2] = {(hsize_t)row, 0}, count[2] = {1, w};
  hid_t dset = H5Dopen2(rd->file, hn_ds_table[k].path, H5P_DEFAULT), fs = -1, ms = -1;
  int status = HN_OK;
  if (dset < 0 || (fs = H5Dget_space(dset)) < 0 ||
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
      (ms = H5Screate_simple(1, &w, NULL)) < 0 || H5Dread(dset, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, out) < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot read %s%s", rd->path, hn_ds_table[k].path, hn_h5_detail(&d));
  hn_h5_close(&ms);
  hn_h5_close(&fs);
  hn_h5_close(&dset);
  return status;
}

typedef struct {
  double min, max;
  int jmin, jmax;
} range;

static range range_of(const double *v, int count) {
  range r = {NAN, NAN, -1, -1};
  for (int j = 0; j < count; j++) {
    if (!(v[j] == v[j]))
      continue;
    if (r.jmin < 0 || v[j] < r.min) {
      r.min = v[j];
      r.jmin = j;
    }
    if (r.jmax < 0 || v[j] > r.max) {
      r.max = v[j];
      r.jmax = j;
    }
  }
  return r;
}

/* A JSON string literal (quotes included). */
static void jstr(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(out, "\\u%04x", *p);
    else
      fputc(*p, out);
  }
  fputc('"', out);
}

/* JSON number: NaN / inf become null. */
static void jnum(FILE *out, const char *key, double v, int comma) {
  if (isfinite(v))
    fprintf(out, "\"%s\": %.10g%s", key, v, comma ? ", " : "");
  else
    fprintf(out, "\"%s\": null%s", key, comma ? ", " : "");
}

static void jrange(FILE *out, const char *key, range r) {
  fprintf(out, "\"%s\": {", key);
  jnum(out, "min", r.min, 1);
  fprintf(out, "\"argmin\": %d, ", r.jmin);
  jnum(out, "max", r.max, 1);
  fprintf(out, "\"argmax\": %d}, ", r.jmax);
}

static void flag_names(int f, char *buf, size_t size) {
  buf[0] = '\0';
  if (!f) {
    snprintf(buf, size, "none");
    return;
  }
  size_t len = 0;
  const char *names[] = {"above_band", "below_band", "verlet_bound", "nonfinite"};
  for (int b = 0; b < 4; b++)
    if (f & (1 << b))
      len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? "," : "", names[b]);
}

static void text_range(FILE *out, const char *label, range r, const char *unit) {
  if (r.jmin < 0)
    fprintf(out, "  %-18s n/a\n", label);
  else
    fprintf(out, "  %-18s min %.4g (%s %d), max %.4g (%s %d)\n", label, r.min, unit, r.jmin, r.max, unit, r.jmax);
}

int hn_diag_print_summary(const char *path, int json, FILE *out) {
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hn_h5_err d;
  reader rd = {path, -1, 0, 0, 0};
  hid_t fapl = hn_h5_fapl();
  /* read-only, and tolerant of the writer (which takes no lock) */
  if (fapl >= 0)
    H5Pset_file_locking(fapl, 0, 1);
  rd.file = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
  hn_h5_close(&fapl);
  if (rd.file < 0) {
    int s = hn_fail(HN_EIO, "cannot open %s%s", path, hn_h5_detail(&d));
    hn_h5_quiet_off(&q);
    return s;
  }
  char *format = NULL, *arch = NULL, *act = NULL, *version = NULL, *git = NULL, *prec = NULL;
  int64_t fv = 0, width = 0, max_depth = 0, levels = 1, spectra = 0;
  double T = NAN, band_low = NAN, band_high = NAN;
  int status = hn_h5_read_attr_str(path, rd.file, "/", "format", &format, NULL);
  if (status == HN_OK && strcmp(format, HN_DIAG_FORMAT) != 0)
    status = hn_fail(HN_EFORMAT, "%s: format is '%s', not %s", path, format, HN_DIAG_FORMAT);
  if (status == HN_OK)
    status = hn_h5_read_attr_i64(path, rd.file, "/", "format_version", 1, 1000, &fv, NULL);
  if (status == HN_OK && fv != HN_DIAG_FORMAT_VERSION)
    status = hn_fail(HN_EFORMAT, "%s: diagnostics format_version %lld; this hamnet reads %d", path, (long long)fv,
                     HN_DIAG_FORMAT_VERSION);
  if (status == HN_OK)
    status = hn_h5_read_attr_str(path, rd.file, "/", "arch", &arch, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_str(path, rd.file, "/", "activation", &act, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_str(path, rd.file, "/", "hamnet_version", &version, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_str(path, rd.file, "/", "git_hash", &git, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_str(path, rd.file, "/", "precision", &prec, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_i64(path, rd.file, "/", "width", 1, 1 << 20, &width, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_i64(path, rd.file, "/", "max_depth", 1, 1 << 24, &max_depth, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_i64(path, rd.file, "/", "levels", 1, 64, &levels, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_i64(path, rd.file, "/", "spectra", 0, 1, &spectra, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_f64(path, rd.file, "/", "final_time", &T, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_f64(path, rd.file, "/", "band_low", &band_low, NULL);
  if (status == HN_OK)
    status = hn_h5_read_attr_f64(path, rd.file, "/", "band_high", &band_high, NULL);
  rd.width = (int)width;
  rd.max_depth = (int)max_depth;
  if (status == HN_OK) {
    hid_t dset = H5Dopen2(rd.file, hn_ds_table[DS_STEP].path, H5P_DEFAULT), sp = -1;
    hsize_t dims[1] = {0};
    if (dset < 0 || (sp = H5Dget_space(dset)) < 0 || H5Sget_simple_extent_dims(sp, dims, NULL) != 1)
      status = hn_fail(HN_EFORMAT, "%s: missing or malformed /record/step%s", path, hn_h5_detail(&d));
    rd.R = (long)dims[0];
    hn_h5_close(&sp);
    hn_h5_close(&dset);
  }
  /* every one-value dataset in full, the per-layer datasets' newest row */
  double *col[DS_COUNT] = {0};
  double *row[DS_COUNT] = {0};
  for (int k = 0; k < DS_COUNT && status == HN_OK; k++) {
    if (hn_ds_table[k].shape == DS_ONE) {
      col[k] = calloc((size_t)rd.R + 1, sizeof(double));
      status = col[k] ? read_col(&rd, k, col[k]) : hn_fail(HN_ENOMEM, "out of memory reading %s", path);
    } else if (rd.R > 0) {
      row[k] = calloc(hn_ds_width(hn_ds_table[k].shape, rd.max_depth), sizeof(double));
      status = row[k] ? read_row(&rd, k, rd.R - 1, row[k]) : hn_fail(HN_ENOMEM, "out of memory reading %s", path);
    }
  }
  if (status == HN_OK) {
    const long R = rd.R, last = R - 1;
    int depth = R > 0 ? (int)col[DS_DEPTH][last] : 0;
    long n_flagged_records = 0, first_flag_epoch = -1;
    double diag_s = 0, spec_s = 0, epoch_s = 0;
    for (long i = 0; i < R; i++) {
      int f = (int)col[DS_MON_FLAGS][i];
      if (f && !(col[DS_MON_FLAGS][i] != col[DS_MON_FLAGS][i])) {
        n_flagged_records++;
        if (first_flag_epoch < 0)
          first_flag_epoch = (long)col[DS_EPOCH][i];
      }
      diag_s += col[DS_DIAG_S][i];
      spec_s += isfinite(col[DS_SPECTRA_S][i]) ? col[DS_SPECTRA_S][i] : 0;
      epoch_s += col[DS_EPOCH_S][i];
    }
    range ry = {NAN, NAN, -1, -1}, rg = ry, rk = ry, rs = ry, rh = ry, rl = ry, ra = ry;
    if (R > 0) {
      ry = range_of(row[DS_Y_NORM], depth + 1);
      rg = range_of(row[DS_GY_NORM], depth + 1);
      rk = range_of(row[DS_K_NORM], depth);
      rs = range_of(row[DS_SV_MAX], depth);
      rh = range_of(row[DS_H_SV_MAX], depth);
      rl = range_of(row[DS_LOG_NORM], depth);
      ra = range_of(row[DS_AMP], depth);
    }
    int flags = R > 0 && col[DS_MON_FLAGS][last] == col[DS_MON_FLAGS][last] ? (int)col[DS_MON_FLAGS][last] : 0;
    char fnames[96];
    flag_names(flags, fnames, sizeof fnames);
    double cost = epoch_s > 0 ? diag_s / epoch_s : NAN;
    if (json) {
      fprintf(out, "{\"file\": ");
      jstr(out, path);
      fprintf(out, ", \"kind\": \"diagnostics\", \"format_version\": %lld, \"hamnet_version\": ", (long long)fv);
      jstr(out, version);
      fprintf(out, ", \"git_hash\": ");
      jstr(out, git);
      fprintf(out, ", \"precision\": ");
      jstr(out, prec);
      fprintf(out, ", \"arch\": ");
      jstr(out, arch);
      fprintf(out, ", \"activation\": ");
      jstr(out, act);
      fprintf(out, ", \"width\": %lld, \"max_depth\": %lld, \"levels\": %lld, ", (long long)width,
              (long long)max_depth, (long long)levels);
      jnum(out, "final_time", T, 1);
      fprintf(out, "\"spectra\": %s, \"records\": %ld, ", spectra ? "true" : "false", R);
      jnum(out, "band_low", band_low, 1);
      jnum(out, "band_high", band_high, 1);
      if (R > 0) {
        fprintf(out, "\"newest\": {\"epoch\": %ld, \"step\": %ld, \"depth\": %d, ", (long)col[DS_EPOCH][last],
                (long)col[DS_STEP][last], depth);
        jnum(out, "h", col[DS_H][last], 1);
        jnum(out, "train_loss", col[DS_TRAIN_LOSS][last], 1);
        jnum(out, "train_accuracy", col[DS_TRAIN_ACC][last], 1);
        jnum(out, "val_loss", col[DS_VAL_LOSS][last], 1);
        jnum(out, "val_accuracy", col[DS_VAL_ACC][last], 1);
        jnum(out, "probe_loss", col[DS_PROBE_LOSS][last], 1);
        jrange(out, "y_norm", ry);
        jrange(out, "grad_y_norm", rg);
        jnum(out, "grad_y_ratio", col[DS_MON_GY_RATIO][last], 1);
        jrange(out, "K_norm", rk);
        jrange(out, "sv_max", rs);
        jrange(out, "h_sv_max", rh);
        jrange(out, "log_norm", rl);
        jrange(out, "layer_amplification", ra);
        jnum(out, "amplification", col[DS_MON_AMP][last], 1);
        jnum(out, "shrink_factor", col[DS_MON_SHRINK][last], 1);
        fprintf(out, "\"flags\": %d, \"flag_names\": \"%s\"}, ", flags, fnames);
      }
      fprintf(out, "\"flagged_records\": %ld, \"first_flagged_epoch\": %ld, ", n_flagged_records, first_flag_epoch);
      jnum(out, "diag_seconds_total", diag_s, 1);
      jnum(out, "spectra_seconds_total", spec_s, 1);
      jnum(out, "epoch_seconds_total", epoch_s, 1);
      jnum(out, "diag_cost_fraction", cost, 0);
      fprintf(out, "}\n");
    } else {
      fprintf(out, "file        %s\n", path);
      fprintf(out, "kind        diagnostics (format_version %lld; hamnet %s, %s, %s)\n", (long long)fv, version, git,
              prec);
      fprintf(out, "network     %s, %s, width %lld, depth %lld%s, T = %g\n", arch, act, (long long)width,
              (long long)max_depth, levels > 1 ? " (final; multilevel)" : "", T);
      fprintf(out, "spectra     %s; monitor band [%g, %g]\n", spectra ? "on (ScaLAPACK)" : "off (no monitor)",
              band_low, band_high);
      if (R == 0) {
        fprintf(out, "records     0\n");
      } else {
        fprintf(out, "records     %ld (epochs %ld..%ld, steps %ld..%ld)\n", R, (long)col[DS_EPOCH][0],
                (long)col[DS_EPOCH][last], (long)col[DS_STEP][0], (long)col[DS_STEP][last]);
        fprintf(out, "newest      epoch %ld, step %ld, depth %d, h = %.4g\n", (long)col[DS_EPOCH][last],
                (long)col[DS_STEP][last], depth, col[DS_H][last]);
        fprintf(out, "  loss              train %.4g (accuracy %.4g), val %.4g (accuracy %.4g), probe %.4g\n",
                col[DS_TRAIN_LOSS][last], col[DS_TRAIN_ACC][last], col[DS_VAL_LOSS][last], col[DS_VAL_ACC][last],
                col[DS_PROBE_LOSS][last]);
        text_range(out, "||y_j||", ry, "j");
        text_range(out, "||dL/dy_j||", rg, "j");
        fprintf(out, "  %-18s %.4g\n", "max/min dL/dy_j", col[DS_MON_GY_RATIO][last]);
        text_range(out, "||K_j||_F", rk, "layer");
        if (spectra) {
          text_range(out, "sigma_max(K_j)", rs, "layer");
          text_range(out, "h*sigma_max", rh, "layer");
          if (rl.jmin >= 0)
            text_range(out, "log norm of A_j", rl, "layer");
          text_range(out, "amplification_j", ra, "layer");
          fprintf(out, "  %-18s %.4g (log/T = %.4g), flags: %s", "accumulated", col[DS_MON_AMP][last],
                  col[DS_MON_LOG_RATE][last], fnames);
          if (flags && isfinite(col[DS_MON_SHRINK][last]))
            fprintf(out, ", shrink h or weights by %.3g", 1.0 / col[DS_MON_SHRINK][last]);
          fprintf(out, "\n");
        }
        if (spectra)
          fprintf(out, "monitor     flagged in %ld of %ld records%s", n_flagged_records, R,
                  n_flagged_records ? "" : "\n");
        if (spectra && n_flagged_records)
          fprintf(out, " (first at epoch %ld)\n", first_flag_epoch);
        fprintf(out, "cost        diagnostics %.3f s in total (spectra %.3f s) = %.2f%% of %.2f s of epochs\n", diag_s,
                spec_s, 100.0 * cost, epoch_s);
      }
    }
  }
  for (int k = 0; k < DS_COUNT; k++) {
    free(col[k]);
    free(row[k]);
  }
  free(format);
  free(arch);
  free(act);
  free(version);
  free(git);
  free(prec);
  H5Fclose(rd.file);
  hn_h5_quiet_off(&q);
  return status;
}
