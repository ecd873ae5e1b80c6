/* test_diag.c - the diagnostics module on one rank: the stability monitor against hand-computed
 * amplifications, the HDF5 file (append, NaN padding for multilevel depths, resume truncation,
 * repair of a half-written record, schema checks), a whole pass compared with an independent
 * computation of the per-layer norms and LAPACKE spectra, the time budget, and the summary
 * printer. (Several ranks and grids: tests/mpi/test_spectra.c; end to end: tests/cli.) */
#include <hdf5.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag/diag_internal.h"
#include "hamnet/config.h"
#include "hamnet/diag.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/model.h"
#include "hamnet/parallel.h"
#include "hn_test.h"

static char tdir[64];

/* --- monitor ----------------------------------------------------------------------------- */

static void test_verlet_amplification(void) {
  CHECK_CLOSE(hn_monitor_verlet_amplification(0.0), 1.0, 0);
  CHECK_CLOSE(hn_monitor_verlet_amplification(1.9), 1.0, 0);
  CHECK_CLOSE(hn_monitor_verlet_amplification(2.0), 1.0, 0);
  /* x = 3: r^2 + 7 r + 1 = 0, |r|max = (7 + sqrt(45)) / 2 */
  CHECK_CLOSE(hn_monitor_verlet_amplification(3.0), (7.0 + sqrt(45.0)) / 2.0, 1e-14);
  CHECK(isnan(hn_monitor_verlet_amplification(NAN)), "NaN in, NaN out");
}

/* Euler layers with prescribed eigenvalues (re[j][i], im[j][i]). */
static void test_euler_monitor(void) {
  enum { D = 4, W = 2 };
  double re[D * W], im[D * W];
  hn_layer_spectrum ls[D];
  memset(ls, 0, sizeof ls);
  for (int j = 0; j < D; j++) {
    re[j * W] = 0.5, im[j * W] = 0;
    re[j * W + 1] = -0.2, im[j * W + 1] = 0;
  }
  const double h = 0.25, T = 1.0;
  hn_monitor_result r;
  /* g = max(|1 + 0.125|, |1 - 0.05|) = 1.125 per layer */
  hn_monitor_evaluate(HN_ARCH_RESNET, D, W, h, T, 1e-3, 1e3, ls, re, im, &r);
  CHECK_CLOSE(ls[0].amplification, 1.125, 1e-14);
  CHECK_CLOSE(r.amplification, pow(1.125, D), 1e-13);
  CHECK_CLOSE(r.log_amp_per_time, D * log(1.125) / T, 1e-13);
  CHECK(r.flags == 0 && r.shrink_factor == 1.0, "inside the band: flags %d shrink %g", r.flags, r.shrink_factor);
  CHECK(r.n_flagged == D, "every layer has g > 1 (%d)", r.n_flagged);
  /* band_high 1.2: flagged; shrink c solves (1 + 0.125 c)^4 = 1.2 (G monotone here) */
  hn_monitor_evaluate(HN_ARCH_RESNET, D, W, h, T, 0.5, 1.2, ls, re, im, &r);
  CHECK(r.flags == HN_DIAG_FLAG_BAND_HIGH, "flags %d", r.flags);
  CHECK_CLOSE(r.shrink_factor, (pow(1.2, 0.25) - 1.0) / 0.125, 1e-9);
  char msg[1024];
  hn_monitor_message(HN_ARCH_RESNET, D, ls, &r, 0.5, 1.2, msg, sizeof msg);
  CHECK(strstr(msg, "above") && strstr(msg, "layers: 0") && strstr(msg, "factor of"), "message: %s", msg);

  /* strongly damped: eigenvalue -3 per layer, h = 0.25: g = 0.25, G = 0.25^8 < 1e-3 */
  enum { D2 = 8 };
  double re2[D2], im2[D2];
  hn_layer_spectrum ls2[D2];
  for (int j = 0; j < D2; j++)
    re2[j] = -3.0, im2[j] = 0.0;
  hn_monitor_evaluate(HN_ARCH_RESNET, D2, 1, h, 2.0, 1e-3, 1e3, ls2, re2, im2, &r);
  CHECK_CLOSE(r.amplification, pow(0.25, D2), 1e-12);
  CHECK(r.flags == HN_DIAG_FLAG_BAND_LOW && r.n_flagged == 0, "flags %d n_flagged %d", r.flags, r.n_flagged);
  CHECK_CLOSE(r.shrink_factor, (1.0 - pow(1e-3, 1.0 / D2)) / 0.75, 1e-9);
  hn_monitor_message(HN_ARCH_RESNET, D2, ls2, &r, 1e-3, 1e3, msg, sizeof msg);
  CHECK(strstr(msg, "below") && strstr(msg, "every layer damps"), "message: %s", msg);

  /* antisym-like complex pair -gamma +- i omega: g = sqrt((1 - h gamma)^2 + h^2 omega^2) */
  double re3[2] = {-0.01, -0.01}, im3[2] = {3.0, -3.0};
  hn_layer_spectrum ls3[1];
  hn_monitor_evaluate(HN_ARCH_ANTISYM, 1, 2, 0.1, 0.1, 1e-3, 1e3, ls3, re3, im3, &r);
  CHECK_CLOSE(ls3[0].amplification, sqrt(pow(1 - 0.1 * 0.01, 2) + 0.01 * 9.0), 1e-14);

  /* a band that does not contain 1: no factor exists */
  hn_monitor_evaluate(HN_ARCH_RESNET, D, W, h, T, 2.0, 3.0, ls, re, im, &r);
  CHECK(r.flags == HN_DIAG_FLAG_BAND_LOW && isnan(r.shrink_factor), "flags %d shrink %g", r.flags, r.shrink_factor);
}

static void test_verlet_monitor(void) {
  enum { D = 4 };
  hn_layer_spectrum ls[D];
  memset(ls, 0, sizeof ls);
  const double x[D] = {0.5, 2.5, 1.0, 3.0};
  for (int j = 0; j < D; j++)
    ls[j].h_sv_max = x[j];
  hn_monitor_result r;
  hn_monitor_evaluate(HN_ARCH_HAMILTONIAN, D, 3, 0.1, 0.4, 1e-3, 1e3, ls, NULL, NULL, &r);
  CHECK(r.flags == HN_DIAG_FLAG_VERLET, "flags %d", r.flags);
  CHECK(r.n_flagged == 2 && r.worst_layer == 3, "n_flagged %d worst %d", r.n_flagged, r.worst_layer);
  CHECK_CLOSE(r.shrink_factor, 2.0 / 3.0, 1e-15);
  CHECK_CLOSE(r.amplification, hn_monitor_verlet_amplification(2.5) * hn_monitor_verlet_amplification(3.0), 1e-14);
  char msg[1024];
  hn_monitor_message(HN_ARCH_HAMILTONIAN, D, ls, &r, 1e-3, 1e3, msg, sizeof msg);
  CHECK(strstr(msg, "2 of 4 layers violate") && strstr(msg, "worst layers: 3 (h*sigma_max 3) 1 (h*sigma_max 2.5)") &&
            strstr(msg, "more than 1.5"),
        "message: %s", msg);
  /* x = 2 exactly is flagged (strict bound); all below: silent */
  for (int j = 0; j < D; j++)
    ls[j].h_sv_max = j == 2 ? 2.0 : 1.0;
  hn_monitor_evaluate(HN_ARCH_LEAPFROG, D, 3, 0.1, 0.4, 1e-3, 1e3, ls, NULL, NULL, &r);
  CHECK(r.flags == HN_DIAG_FLAG_VERLET && r.n_flagged == 1, "x = 2 must be flagged (flags %d)", r.flags);
  for (int j = 0; j < D; j++)
    ls[j].h_sv_max = 1.99;
  hn_monitor_evaluate(HN_ARCH_LEAPFROG, D, 3, 0.1, 0.4, 1e-3, 1e3, ls, NULL, NULL, &r);
  CHECK(r.flags == 0 && r.amplification == 1.0 && r.shrink_factor == 1.0, "stable Verlet: flags %d", r.flags);
  hn_monitor_message(HN_ARCH_LEAPFROG, D, ls, &r, 1e-3, 1e3, msg, sizeof msg);
  CHECK(msg[0] == '\0', "no message when nothing is flagged: %s", msg);
  /* non-finite spectra */
  ls[1].h_sv_max = NAN;
  hn_monitor_evaluate(HN_ARCH_HAMILTONIAN, D, 3, 0.1, 0.4, 1e-3, 1e3, ls, NULL, NULL, &r);
  CHECK(r.flags & HN_DIAG_FLAG_NONFINITE, "NaN spectra must be flagged (flags %d)", r.flags);
}

/* --- file -------------------------------------------------------------------------------- */

static hn_config small_config(hn_arch arch, int width, int depth) {
  hn_config cfg;
  hn_config_defaults(&cfg);
  cfg.model.arch = arch;
  cfg.model.width = width;
  cfg.model.depth = depth;
  cfg.model.final_time = 2.0;
  return cfg;
}

static long rows(hid_t f, const char *name, hsize_t *cols) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT), s = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_dims(s, dims, NULL);
  H5Sclose(s);
  H5Dclose(d);
  if (cols)
    *cols = nd == 2 ? dims[1] : 1;
  return (long)dims[0];
}

static void read_all(hid_t f, const char *name, double *out) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  CHECK(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0, "read %s", name);
  H5Dclose(d);
}

static void fill_row(hn_diag_row *r, long step, int depth) {
  hn_diag_row_clear(r);
  *hn_row(r, DS_EPOCH) = (double)step / 10;
  *hn_row(r, DS_STEP) = (double)step;
  *hn_row(r, DS_DEPTH) = depth;
  for (int j = 0; j <= depth; j++)
    hn_row(r, DS_GY_NORM)[j] = step + j;
  for (int j = 0; j < depth; j++)
    hn_row(r, DS_SV_MAX)[j] = 100.0 * step + j;
  *hn_row(r, DS_MON_FLAGS) = 5;
  r->last_epoch = step / 10;
  r->last_step = step;
  r->last_depth = depth;
}

static void test_file(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/d1.h5", tdir);
  hn_config cfg = small_config(HN_ARCH_HAMILTONIAN, 3, 8);
  CHECK_OK(hn_diagfile_create(path, &cfg));
  hn_diag_row r;
  CHECK_OK(hn_diag_row_init(&r, 8, 3));
  /* multilevel: depth 4, then 8 */
  fill_row(&r, 10, 4);
  CHECK_OK(hn_diagfile_append(path, &r));
  fill_row(&r, 20, 8);
  CHECK_OK(hn_diagfile_append(path, &r));
  fill_row(&r, 30, 8);
  CHECK_OK(hn_diagfile_append(path, &r));
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(f >= 0, "open %s", path);
  hsize_t cols;
  CHECK(rows(f, "/record/step", NULL) == 3, "3 records");
  CHECK(rows(f, "/layers/grad_y_norm", &cols) == 3 && cols == 9, "grad_y_norm is [R, max_depth + 1] (%llu)",
        (unsigned long long)cols);
  CHECK(rows(f, "/spectra/sv_max", &cols) == 3 && cols == 8, "sv_max is [R, max_depth]");
  double g[3 * 9], sv[3 * 8], depth[3], flags[3];
  read_all(f, "/layers/grad_y_norm", g);
  read_all(f, "/spectra/sv_max", sv);
  read_all(f, "/record/depth", depth);
  read_all(f, "/monitor/flags", flags);
  CHECK(depth[0] == 4 && depth[1] == 8 && flags[2] == 5, "depth column / int conversion");
  CHECK(g[4] == 14 && isnan(g[5]) && isnan(g[8]), "record at depth 4: columns 0..4 set, 5..8 NaN (%g %g)", g[4], g[5]);
  CHECK(sv[3] == 1003 && isnan(sv[4]), "record at depth 4: layers 0..3 set, 4.. NaN");
  CHECK(g[2 * 9 + 8] == 38 && sv[2 * 8 + 7] == 3007, "full-depth record");
  char *fmt = NULL;
  hid_t a = H5Aopen(f, "format", H5P_DEFAULT), t = H5Aget_type(a);
  CHECK(H5Aread(a, t, &fmt) >= 0 && fmt && strcmp(fmt, HN_DIAG_FORMAT) == 0, "format attribute");
  H5free_memory(fmt);
  H5Tclose(t);
  H5Aclose(a);
  H5Fclose(f);

  /* resume: drop records with step > 20 */
  long dropped = -1;
  CHECK_OK(hn_diagfile_truncate(path, 20, 0, &dropped));
  CHECK(dropped == 1, "dropped %ld", dropped);
  CHECK_OK(hn_diagfile_truncate(path, 20, 1, &dropped)); /* >= 20 */
  CHECK(dropped == 1, "dropped %ld", dropped);
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(rows(f, "/record/step", NULL) == 1 && rows(f, "/layers/y_norm", NULL) == 1, "one record left");
  H5Fclose(f);

  /* a pass that died half-way: extra rows beyond /record/step are cut off on open */
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "/layers/y_norm", H5P_DEFAULT);
  hsize_t ext[2] = {3, 9};
  CHECK(H5Dset_extent(d, ext) >= 0, "extend");
  H5Dclose(d);
  H5Fclose(f);
  int exists = 0;
  long nrec = 0;
  CHECK_OK(hn_diagfile_check(path, &cfg, &exists, &nrec));
  CHECK(exists && nrec == 1, "check: exists %d records %ld", exists, nrec);
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(rows(f, "/layers/y_norm", NULL) == 1, "half-written row removed");
  H5Fclose(f);

  /* a file of another run is refused with a message naming it */
  hn_config other = small_config(HN_ARCH_RESNET, 3, 8);
  CHECK(hn_diagfile_check(path, &other, &exists, &nrec) == HN_EFORMAT && strstr(hn_errmsg(), "d1.h5") &&
            strstr(hn_errmsg(), "move"),
        "mismatch: %s", hn_errmsg());
  char missing[160];
  snprintf(missing, sizeof missing, "%s/none.h5", tdir);
  CHECK(hn_diagfile_check(missing, &cfg, &exists, &nrec) == HN_OK && !exists, "missing file: exists = 0");
  hn_diag_row_free(&r);
}

/* --- a whole pass -------------------------------------------------------------------------- */

/* Reference per-layer norms with the model's own probes on the full batch (loss_scale 1). */
static void test_pass(hn_arch arch) {
  const int W = 5, D = 6, F = 2, C = 2, B = 7;
  char run[128];
  snprintf(run, sizeof run, "%s/run_%s", tdir, hn_arch_name(arch));
  mkdir(run, 0777);
  hn_config cfg = small_config(arch, W, D);
  cfg.diagnostics.max_overhead = 0;
  hn_model_spec spec = {.arch = arch, .activation = HN_ACT_TANH, .opening = HN_OPEN_PAD, .width = W, .depth = D,
                        .n_features = F, .n_classes = C, .final_time = 2.0, .gamma = 0.01};
  hn_model m;
  CHECK_OK(hn_model_create(&m, &spec));
  hn_model_init_params(&m, 3, 1.3);
  hn_workspace *ws = NULL;
  CHECK_OK(hn_workspace_create(&ws, &m.layout, B, 0, 0));
  hn_real X[7 * 2];
  int32_t y[7];
  for (int i = 0; i < B; i++) {
    X[2 * i] = (hn_real)(0.3 * i - 1.0);
    X[2 * i + 1] = (hn_real)(0.5 - 0.2 * i);
    y[i] = i % 2;
  }
  hn_diag *d = NULL;
  CHECK_OK(hn_diag_open(&d, run, &cfg, 0));
  hn_diag_scalars s = {1, 10, 0.5, 0.75, NAN, NAN, 0.01, 100.0, 0.0, 0.0, 0.1};
  CHECK_OK(hn_diag_record(d, &m, ws, X, y, B, B, &s));
  s.epoch = 2, s.step = 20;
  CHECK_OK(hn_diag_record(d, &m, ws, X, y, B, B, &s));
  hn_diag_close(d);

  /* reference: probes with loss_scale 1 give sums of per-sample squared norms directly */
  double y2[7] = {0}, z2[7] = {0}, g2[7] = {0};
  hn_probe probe = {y2, z2, g2};
  hn_batch_stats st;
  memset(m.grads, 0, m.layout.n_params * sizeof(hn_real));
  CHECK_OK(hn_model_train_batch(&m, ws, X, y, B, (hn_real)(1.0 / B), NULL, NULL, NULL, &st));
  hn_real *mean_grads = malloc(m.layout.n_params * sizeof(hn_real));
  memcpy(mean_grads, m.grads, m.layout.n_params * sizeof(hn_real));
  memset(m.grads, 0, m.layout.n_params * sizeof(hn_real));
  CHECK_OK(hn_model_train_batch(&m, ws, X, y, B, 1, NULL, NULL, &probe, &st));

  char path[192];
  snprintf(path, sizeof path, "%s/diagnostics.h5", run);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHECK(f >= 0 && rows(f, "/record/step", NULL) == 2, "two records in %s", path);
  double yn[2 * 7], zn[2 * 7], gn[2 * 7], kn[2 * 6], gk[2 * 6], svmax[2 * 6], svmin[2 * 6], lognorm[2 * 6];
  double amp[2], loss[2];
  read_all(f, "/layers/y_norm", yn);
  read_all(f, "/layers/z_norm", zn);
  read_all(f, "/layers/grad_y_norm", gn);
  read_all(f, "/layers/K_norm", kn);
  read_all(f, "/layers/grad_K_norm", gk);
  read_all(f, "/spectra/sv_max", svmax);
  read_all(f, "/spectra/sv_min", svmin);
  read_all(f, "/spectra/log_norm", lognorm);
  read_all(f, "/monitor/amplification", amp);
  read_all(f, "/scalars/probe_loss", loss);
  H5Fclose(f);
  const double tol = sizeof(hn_real) == 8 ? 1e-12 : 1e-5;
  for (int j = 0; j <= D; j++) {
    CHECK_CLOSE(yn[j], sqrt(y2[j] / B), tol);
    CHECK_CLOSE(gn[j], sqrt(g2[j] / B), tol);
    if (arch == HN_ARCH_HAMILTONIAN)
      CHECK_CLOSE(zn[j], sqrt(z2[j] / B), tol);
    else
      CHECK(isnan(zn[j]), "z_norm NaN outside hamiltonian");
  }
  CHECK_CLOSE(loss[0], st.loss_sum / B, tol);
  double *K = malloc((size_t)W * W * sizeof *K), sv[5], sym[5], superb[5];
  for (int j = 0; j < D; j++) {
    const hn_real *Kj = hn_layer_K(&m.layout, m.params, j), *Gj = hn_layer_K(&m.layout, mean_grads, j);
    double k2 = 0, g2k = 0;
    for (int i = 0; i < W * W; i++) {
      K[i] = (double)Kj[i];
      k2 += K[i] * K[i];
      g2k += (double)Gj[i] * Gj[i];
    }
    CHECK_CLOSE(kn[j], sqrt(k2), 1e-12);
    CHECK_CLOSE(gk[j], sqrt(g2k), tol);
    CHECK(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', W, W, K, W, sv, NULL, 1, NULL, 1, superb) == 0, "dgesvd");
    CHECK_CLOSE(svmax[j], sv[0], 1e-10);
    CHECK_CLOSE(svmin[j], sv[W - 1], 1e-10);
    if (arch == HN_ARCH_RESNET) {
      for (int i = 0; i < W * W; i++)
        K[i] = 0.5 * ((double)Kj[i] + (double)Kj[(i % W) * W + i / W]);
      CHECK(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', W, K, W, sym) == 0, "dsyev");
      CHECK_CLOSE(lognorm[j], sym[W - 1], 1e-10);
    } else {
      CHECK(isnan(lognorm[j]), "log norm NaN for Verlet architectures");
    }
  }
  CHECK(isfinite(amp[1]) && amp[1] > 0, "accumulated amplification %g", amp[1]);

  /* resume at step 10: the record of step 20 is dropped before the next append */
  CHECK_OK(hn_diag_open(&d, run, &cfg, 1));
  hn_diag_set_resume_step(d, 10);
  s.epoch = 2, s.step = 25;
  CHECK_OK(hn_diag_record(d, &m, ws, X, y, B, B, &s));
  hn_diag_close(d);
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  double steps[2] = {0, 0};
  CHECK(rows(f, "/record/step", NULL) == 2, "records after resume: %ld", rows(f, "/record/step", NULL));
  read_all(f, "/record/step", steps);
  CHECK(steps[0] == 10 && steps[1] == 25, "steps %g %g", steps[0], steps[1]);
  H5Fclose(f);

  /* summary printer: text and JSON */
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  CHECK_OK(hn_diag_print_summary(path, 0, mem));
  fclose(mem);
  CHECK(buf && strstr(buf, "records     2 (epochs 1..2, steps 10..25)") && strstr(buf, "max/min dL/dy_j") &&
            strstr(buf, hn_arch_name(arch)),
        "summary:\n%s", buf);
  free(buf);
  buf = NULL;
  mem = open_memstream(&buf, &len);
  CHECK_OK(hn_diag_print_summary(path, 1, mem));
  fclose(mem);
  CHECK(buf && buf[0] == '{' && strstr(buf, "\"records\": 2") && strstr(buf, "\"grad_y_ratio\": "), "json:\n%s", buf);
  free(buf);
  free(K);
  free(mean_grads);
  hn_workspace_destroy(ws);
  hn_model_destroy(&m);
}

/* Weights that are not finite: the pass records NaN spectra and the NONFINITE flag instead of
 * failing (a diagnostic must not end the training). */
static void test_nonfinite(void) {
  char run[128];
  snprintf(run, sizeof run, "%s/run_nan", tdir);
  mkdir(run, 0777);
  hn_config cfg = small_config(HN_ARCH_RESNET, 4, 3);
  cfg.diagnostics.max_overhead = 0;
  hn_model_spec spec = {.arch = HN_ARCH_RESNET, .activation = HN_ACT_TANH, .opening = HN_OPEN_PAD, .width = 4,
                        .depth = 3, .n_features = 2, .n_classes = 2, .final_time = 2.0, .gamma = 0.01};
  hn_model m;
  CHECK_OK(hn_model_create(&m, &spec));
  hn_model_init_params(&m, 3, 1.0);
  hn_layer_K(&m.layout, m.params, 1)[5] = (hn_real)NAN;
  hn_workspace *ws = NULL;
  CHECK_OK(hn_workspace_create(&ws, &m.layout, 2, 0, 0));
  hn_real X[4] = {0.1f, 0.2f, -0.3f, 0.4f};
  int32_t y[2] = {0, 1};
  hn_diag *d = NULL;
  CHECK_OK(hn_diag_open(&d, run, &cfg, 0));
  hn_log_level lvl = hn_log_get_level();
  hn_log_set_level(HN_LOG_QUIET);
  hn_diag_scalars s = {1, 1, 0.5, 0.75, NAN, NAN, 0.01, 100.0, 0.0, 0.0, 0.1};
  CHECK_OK(hn_diag_record(d, &m, ws, X, y, 2, 2, &s));
  hn_log_set_level(lvl);
  hn_diag_close(d);
  char path[192];
  snprintf(path, sizeof path, "%s/diagnostics.h5", run);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  double flags[1], sv[3];
  read_all(f, "/monitor/flags", flags);
  read_all(f, "/spectra/sv_max", sv);
  CHECK(flags[0] == HN_DIAG_FLAG_NONFINITE && isnan(sv[0]) && isnan(sv[2]), "flags %g sv %g", flags[0], sv[0]);
  H5Fclose(f);
  hn_workspace_destroy(ws);
  hn_model_destroy(&m);
}

/* The budget: with a tiny max_overhead even the first pass drops its spectra and the others are
 * skipped; with a generous one and a long projected run the first pass has them. */
static void test_budget(void) {
  char run[128];
  snprintf(run, sizeof run, "%s/run_budget", tdir);
  mkdir(run, 0777);
  hn_config cfg = small_config(HN_ARCH_RESNET, 16, 32);
  cfg.diagnostics.max_overhead = 1e-6;
  hn_model_spec spec = {.arch = HN_ARCH_RESNET, .activation = HN_ACT_TANH, .opening = HN_OPEN_PAD, .width = 16,
                        .depth = 32, .n_features = 2, .n_classes = 2, .final_time = 2.0, .gamma = 0.01};
  hn_model m;
  CHECK_OK(hn_model_create(&m, &spec));
  hn_model_init_params(&m, 3, 1.0);
  hn_workspace *ws = NULL;
  CHECK_OK(hn_workspace_create(&ws, &m.layout, 4, 0, 0));
  hn_real X[8] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f};
  int32_t y[4] = {0, 1, 0, 1};
  hn_diag *d = NULL;
  CHECK_OK(hn_diag_open(&d, run, &cfg, 0));
  hn_log_level lvl = hn_log_get_level();
  hn_log_set_level(HN_LOG_WARN);
  for (int e = 1; e <= 4; e++) {
    hn_diag_scalars s = {e, 10 * e, 0.5, 0.75, NAN, NAN, 0.01, 100.0, 0.0, 0.0, 0.1};
    CHECK_OK(hn_diag_record(d, &m, ws, X, y, 4, 4, &s));
  }
  hn_log_set_level(lvl);
  hn_diag_close(d);
  char path[192];
  snprintf(path, sizeof path, "%s/diagnostics.h5", run);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  long R = rows(f, "/record/step", NULL);
  CHECK(R == 1, "with a budget of 1e-6 only the first pass is made (%ld records)", R);
  double sp[1];
  read_all(f, "/scalars/spectra_seconds", sp);
  CHECK(isnan(sp[0]), "the first pass cannot afford its spectra either");
  H5Fclose(f);

  /* a generous budget and a long projected run: the first pass takes its spectra */
  cfg.diagnostics.max_overhead = 0.5;
  CHECK_OK(hn_diag_open(&d, run, &cfg, 0));
  hn_log_set_level(HN_LOG_WARN);
  hn_diag_scalars s1 = {1, 10, 0.5, 0.75, NAN, NAN, 0.01, 100.0, 0.0, 0.0, 100.0 /* epoch seconds */};
  CHECK_OK(hn_diag_record(d, &m, ws, X, y, 4, 4, &s1));
  hn_log_set_level(lvl);
  hn_diag_close(d);
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  read_all(f, "/scalars/spectra_seconds", sp);
  CHECK(rows(f, "/record/step", NULL) == 1 && isfinite(sp[0]), "first pass with spectra when affordable");
  H5Fclose(f);
  hn_workspace_destroy(ws);
  hn_model_destroy(&m);
}

int main(int argc, char **argv) {
  hn_mpi mpi;
  if (hn_mpi_init(&argc, &argv, &mpi) != HN_OK)
    return 1;
  hn_log_set_level(HN_LOG_WARN);
  snprintf(tdir, sizeof tdir, "/tmp/hn_test_diag.XXXXXX");
  if (!mkdtemp(tdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_verlet_amplification();
  test_euler_monitor();
  test_verlet_monitor();
  test_file();
  test_pass(HN_ARCH_HAMILTONIAN);
  test_pass(HN_ARCH_RESNET);
  test_nonfinite();
  test_budget();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tdir);
  if (!hn_test_failed && system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tdir);
  int rc = hn_test_finish("test_diag");
  hn_mpi_finalize();
  return rc;
}
