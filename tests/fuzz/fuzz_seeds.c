/* fuzz_seeds.c - writes the seed corpora of the fuzz harnesses:
 *
 *   fuzz_seeds OUTDIR      creates OUTDIR/{config,csv,idx,h5data,h5data_h5py,ckpt}/, fills them
 *
 * config: INI texts (every key as hn_config_to_ini writes it, hand-written ones with comments,
 * quotes, overrides); csv: small tables in the importer's dialects; idx: image/label pairs, raw
 * and gzipped, in fuzz_idx's input format (2-byte length of the images file, then both files);
 * h5data: data sets written by hamnet (vectors, images) and in h5py's default layout (float64
 * X, uint8 labels, contiguous) in the 1.8 format; h5data_h5py: that file exactly as h5py writes
 * it (no metadata checksums; not fuzzed by ctest, see h5py_style); ckpt: checkpoints of every
 * architecture and optimiser written by hn_ckpt_write, with and without optional groups. Small
 * on purpose: libFuzzer mutates small inputs much faster. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <hdf5.h>

#include "hamnet/checkpoint.h"
#include "hamnet/config.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/log.h"

static char outdir[1024];
static int written = 0;

static void die(const char *what) {
  fprintf(stderr, "fuzz_seeds: %s: %s\n", what, hn_errmsg()[0] ? hn_errmsg() : strerror(errno));
  exit(1);
}

static void subdir(const char *name) {
  char p[1100];
  snprintf(p, sizeof p, "%s/%s", outdir, name);
  if (mkdir(p, 0777) != 0 && errno != EEXIST)
    die(p);
}

static const char *out_path(const char *dir, const char *name) {
  static char p[1200];
  snprintf(p, sizeof p, "%s/%s/%s", outdir, dir, name);
  return p;
}

static void put(const char *dir, const char *name, const void *data, size_t size) {
  const char *p = out_path(dir, name);
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    die(p);
  written++;
}

static void put_str(const char *dir, const char *name, const char *text) { put(dir, name, text, strlen(text)); }

/* --- config ------------------------------------------------------------------------------- */
static void config_seeds(void) {
  hn_config cfg;
  hn_config_defaults(&cfg);
  snprintf(cfg.data.train, sizeof cfg.data.train, "/data/train.h5");
  snprintf(cfg.data.val, sizeof cfg.data.val, "/data/val.h5");
  char *ini = hn_config_to_ini(&cfg);
  if (!ini)
    die("hn_config_to_ini");
  put_str("config", "all_keys.ini", ini);
  free(ini);
  put_str("config", "small.ini",
          "; a small run\n[data]\ntrain = d/train.h5\n\n[model]\narch = leapfrog\nwidth = 8\ndepth = 64\n"
          "final_time = 4.5\n[train]\nepochs = 3\nbatch_size = 32\nlr = 1e-2\noptimizer = adam\nlevels = 3\n");
  put_str("config", "comments.ini",
          "# comment\n[model] ; trailing\n  arch = hamiltonian   \nactivation=relu\ngamma = 0.5 ; inline\n"
          "[checkpoint]\nevery_steps = 10\nkeep = 2\nbest = 0\n[diagnostics]\nevery_epochs = 0\n"
          "[parallel]\nbucket_kb = 64\noverlap = 0\n");
  put_str("config", "schedule.ini",
          "[train]\nlr_schedule = cosine\nlr_min = 0.001\nlr = 0.1\nmomentum = 0.9\nnesterov = 1\nseed = "
          "18446744073709551615\nreversible = on\nreversible_tol = 1e-3\nmax_steps = 100\n");
  put_str("config", "bad.ini", "[model]\nwidth = -1\ndepth = 1e400\n[nosuch]\nkey\n[train]\nlr = nan\n");
}

/* --- csv ---------------------------------------------------------------------------------- */
static void put_csv(const char *name, unsigned char options, const char *text) {
  char buf[512];
  size_t n = strlen(text);
  buf[0] = (char)options;
  memcpy(buf + 1, text, n);
  put("csv", name, buf, n + 1);
}

static void csv_seeds(void) {
  /* fuzz_csv's first byte: bits 0-1 label column, 2-3 header, 4-5 delimiter, 6 text labels, 7 n_classes */
  put_csv("plain.csv", 0x00, "x1,x2,label\n0.5,1.5,1\n-2,3e-1,0\n\n4,5,1\n");
  put_csv("semicolon.csv", 0x19, "1;0.5;1.5\r\n0;2;3\r\n2;4;4\r\n");
  put_csv("quoted.csv", 0x40, "\"a\",\"b \"\"q\"\"\",cls\n1,2,dog\n3,\" 4 \",cat\n5,6,dog\n");
  put_csv("blanks.csv", 0x2d, "\xef\xbb\xbf" "1  2\t3\n4 5 6\n");
  put_csv("bad.csv", 0x80, "1,2,0\n3,abc,1\n5,6\n1e39,0,0\n");
}

/* --- idx ---------------------------------------------------------------------------------- */
static void idx_pair(const char *name, const unsigned char *img, size_t ni, const unsigned char *lbl, size_t nl,
                     int gz) {
  unsigned char buf[4096];
  size_t n = 2;
  const unsigned char *parts[2] = {img, lbl};
  size_t sizes[2] = {ni, nl};
  for (int k = 0; k < 2; k++) {
    if (gz) {
      /* a gzip stream (zlib's deflate with the gzip wrapper) */
      z_stream zs;
      memset(&zs, 0, sizeof zs);
      if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
      zs.next_in = (unsigned char *)parts[k];
      zs.avail_in = (uInt)sizes[k];
      zs.next_out = buf + n;
      zs.avail_out = (uInt)(sizeof buf - n);
      if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        die("deflate");
      size_t produced = sizeof buf - n - zs.avail_out;
      deflateEnd(&zs);
      if (k == 0) {
        buf[0] = (unsigned char)(produced >> 8);
        buf[1] = (unsigned char)produced;
      }
      n += produced;
    } else {
      if (k == 0) {
        buf[0] = (unsigned char)(sizes[k] >> 8);
        buf[1] = (unsigned char)sizes[k];
      }
      memcpy(buf + n, parts[k], sizes[k]);
      n += sizes[k];
    }
  }
  put("idx", name, buf, n);
}

static void idx_seeds(void) {
  /* 2 images of 2 x 3 pixels, labels 1 and 0 (as in tests/cli/test_data_cli.sh) */
  static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0x00, 0x33, 0x66, 0x99,
                                      0xcc, 0xff, 0xff, 0xcc, 0x99, 0x66, 0x33, 0x00};
  static const unsigned char lbl[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
  idx_pair("raw.idx", img, sizeof img, lbl, sizeof lbl, 0);
  idx_pair("gz.idx", img, sizeof img, lbl, sizeof lbl, 1);
  static const unsigned char img1[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x80};
  static const unsigned char lbl1[] = {0, 0, 8, 1, 0, 0, 0, 1, 9};
  idx_pair("one.idx", img1, sizeof img1, lbl1, sizeof lbl1, 0);
}

/* --- h5data ------------------------------------------------------------------------------- */
static void h5py_style(const char *dir, const char *name, int v18);

static void h5data_seeds(void) {
  hn_dataset ds;
  int64_t dims1[1] = {2};
  if (hn_dataset_alloc(&ds, 5, 1, dims1, 3) != HN_OK)
    die("hn_dataset_alloc");
  for (int i = 0; i < 10; i++)
    ds.X[i] = (float)i * 0.25f - 1.0f;
  for (int i = 0; i < 5; i++)
    ds.y[i] = i % 3;
  if (hn_dataset_write(out_path("h5data", "vectors.h5"), &ds) != HN_OK)
    die("hn_dataset_write vectors");
  written++;
  hn_dataset_free(&ds);
  int64_t dims3[3] = {1, 2, 2};
  if (hn_dataset_alloc(&ds, 3, 3, dims3, 2) != HN_OK)
    die("hn_dataset_alloc");
  for (int i = 0; i < 12; i++)
    ds.X[i] = (float)i / 12.0f;
  for (int i = 0; i < 3; i++)
    ds.y[i] = i % 2;
  if (hn_dataset_write(out_path("h5data", "images.h5"), &ds) != HN_OK)
    die("hn_dataset_write images");
  written++;
  hn_dataset_free(&ds);

  h5py_style("h5data", "h5py_layout_v18.h5", 1);
  h5py_style("h5data_h5py", "h5py_style.h5", 0);
}

/* The layout h5py writes by default - float64 X, uint8 y, contiguous, an int64 n_classes
 * attribute - in the 1.8 file format (checksummed headers), or, with v18 = 0, exactly as h5py
 * writes it: the 1.0 format without any metadata checksum. That one goes to h5data_h5py, which
 * ctest does not fuzz: mutations of unchecksummed metadata reach HDF5 1.10.8's own
 * memory-safety bugs (e.g. a heap overflow decoding a damaged attribute name), which hamnet
 * cannot prevent. Fuzz it by hand: fuzz_h5data DIR seeds/h5data_h5py. */
static void h5py_style(const char *dir, const char *name, int v18) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (v18)
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
  hid_t f = H5Fcreate(out_path(dir, name), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0)
    die("H5Fcreate");
  double X[4][2] = {{0, 1}, {1, 0}, {0.5, -0.5}, {2, 2}};
  unsigned char y[4] = {0, 1, 1, 0};
  hsize_t dx[2] = {4, 2}, dy[1] = {4};
  hid_t sx = H5Screate_simple(2, dx, NULL), sy = H5Screate_simple(1, dy, NULL), sa = H5Screate(H5S_SCALAR);
  hid_t d1 = H5Dcreate2(f, "X", H5T_IEEE_F64LE, sx, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t d2 = H5Dcreate2(f, "y", H5T_STD_U8LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t a = H5Acreate2(f, "n_classes", H5T_STD_I64LE, sa, H5P_DEFAULT, H5P_DEFAULT);
  long long nc = 2;
  if (d1 < 0 || d2 < 0 || a < 0 || H5Dwrite(d1, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, X) < 0 ||
      H5Dwrite(d2, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) < 0 ||
      H5Awrite(a, H5T_NATIVE_LLONG, &nc) < 0)
    die(name);
  H5Aclose(a);
  H5Dclose(d1);
  H5Dclose(d2);
  H5Sclose(sa);
  H5Sclose(sx);
  H5Sclose(sy);
  H5Fclose(f);
  written++;
}

/* --- ckpt --------------------------------------------------------------------------------- */
static void ckpt_seed(const char *name, hn_arch arch, hn_opening open, const char *kind, int parts) {
  hn_model_spec spec = {.arch = arch, .activation = HN_ACT_TANH, .opening = open, .width = 2, .depth = 2,
                        .n_features = 2, .n_classes = 2, .final_time = 1.0, .gamma = 0.01};
  hn_model m;
  if (hn_model_create(&m, &spec) != HN_OK)
    die("hn_model_create");
  hn_model_init_params(&m, 1, 1.0);
  size_t n = m.layout.n_params;
  hn_real *m1 = calloc(n, sizeof(hn_real)), *m2 = calloc(n, sizeof(hn_real));
  if (!m1 || !m2)
    die("calloc");
  for (size_t i = 0; i < n; i++) {
    m1[i] = (hn_real)(0.01 * (double)i);
    m2[i] = (hn_real)(0.001 * (double)i);
  }
  double hist[2 * HN_HISTORY_COLS];
  for (int i = 0; i < 2 * HN_HISTORY_COLS; i++)
    hist[i] = 0.5 * i;
  hn_progress prog = {.epoch = 2, .step_in_epoch = 3, .global_step = 11, .samples_seen = 88, .level = 0,
                      .best_val_accuracy = 0.75, .best_epoch = 2, .lr = 0.01, .recon_stride = 0,
                      .epoch_loss_sum = 1.5, .epoch_count = 24, .n_history = 2, .history = hist};
  hn_ckpt_optimizer opt = {kind, 11, m1, m2};
  hn_config cfg;
  hn_config_defaults(&cfg);
  snprintf(cfg.data.train, sizeof cfg.data.train, "/d/train.h5");
  char *text = hn_config_to_ini(&cfg);
  if (hn_ckpt_write(out_path("ckpt", name), &m, parts ? &opt : NULL, parts ? &prog : NULL, parts ? text : NULL) !=
      HN_OK)
    die(name);
  written++;
  free(text);
  free(m1);
  free(m2);
  hn_model_destroy(&m);
}

static void ckpt_seeds(void) {
  hn_ckpt_set_fault("");
  ckpt_seed("hamiltonian_adam.h5", HN_ARCH_HAMILTONIAN, HN_OPEN_PAD, "adam", 1);
  ckpt_seed("leapfrog_sgd.h5", HN_ARCH_LEAPFROG, HN_OPEN_PAD, "sgd", 1);
  ckpt_seed("resnet_dense.h5", HN_ARCH_RESNET, HN_OPEN_DENSE, "adam", 1);
  ckpt_seed("antisym_model_only.h5", HN_ARCH_ANTISYM, HN_OPEN_PAD, "sgd", 0);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_seeds OUTDIR\n");
    return 2;
  }
  snprintf(outdir, sizeof outdir, "%s", argv[1]);
  if (mkdir(outdir, 0777) != 0 && errno != EEXIST)
    die(outdir);
  hn_log_set_level(HN_LOG_WARN);
  const char *dirs[] = {"config", "csv", "idx", "h5data", "h5data_h5py", "ckpt"};
  for (int i = 0; i < 6; i++)
    subdir(dirs[i]);
  config_seeds();
  csv_seeds();
  idx_seeds();
  h5data_seeds();
  ckpt_seeds();
  printf("fuzz_seeds: %d seed files in %s\n", written, outdir);
  return 0;
}
