/* test_checkpoint.c - HDF5 checkpoints: round trips for every architecture and opening,
 * header-only reads, discovery of the newest readable file past truncated and corrupted ones,
 * schema validation, injected and real write failures, a process killed inside a write,
 * pruning, reading the other precision, the inspect printer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hamnet/checkpoint.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/rng.h"
#include "hn_test.h"

static char tdir[64];

static void tpath(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tdir, name); }

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  size_t sl = strlen(suffix);
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (e->d_name[0] != '.' && l >= sl && strcmp(e->d_name + l - sl, suffix) == 0)
      n++;
  }
  closedir(d);
  return n;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
      remove_tree(p);
    else
      unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                  */

static hn_model_spec make_spec(hn_arch arch, hn_opening open) {
  hn_model_spec s = {.arch = arch,
                     .activation = arch == HN_ARCH_RESNET ? HN_ACT_RELU : HN_ACT_TANH,
                     .opening = open,
                     .width = 6,
                     .depth = 4,
                     .n_features = 3,
                     .n_classes = 3,
                     .final_time = 1.5,
                     .gamma = 0.125};
  return s;
}

static int spec_equal(const hn_model_spec *a, const hn_model_spec *b) {
  return a->arch == b->arch && a->activation == b->activation && a->opening == b->opening && a->width == b->width &&
         a->depth == b->depth && a->n_features == b->n_features && a->n_classes == b->n_classes &&
         a->final_time == b->final_time && a->gamma == b->gamma;
}

/* A model whose every parameter is distinct (so a layout mix-up cannot go unnoticed). */
static int make_model(hn_model *m, const hn_model_spec *s, uint64_t seed) {
  int st = hn_model_create(m, s);
  if (st != HN_OK)
    return st;
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_TEST, 0, 0);
  for (size_t i = 0; i < m->layout.n_params; i++)
    m->params[i] = (hn_real)(hn_rng_normal(&r) + 1e-3 * (double)i);
  return HN_OK;
}

typedef struct {
  hn_real *m1, *m2;
  hn_ckpt_optimizer opt;
  hn_progress prog;
  char *config;
} fixture;

static void make_fixture(fixture *f, size_t n_params, const char *kind, long step, int n_hist) {
  memset(f, 0, sizeof *f);
  f->m1 = hn_alloc(n_params, sizeof(hn_real), HN_MEM_OPTIM, "m1");
  f->m2 = hn_alloc(n_params, sizeof(hn_real), HN_MEM_OPTIM, "m2");
  for (size_t i = 0; i < n_params; i++) {
    f->m1[i] = (hn_real)(0.5 * sin((double)i + step));
    f->m2[i] = (hn_real)(1e-3 * (1.0 + cos((double)i)));
  }
  f->opt = (hn_ckpt_optimizer){.kind = kind, .step = step, .m1 = f->m1, .m2 = strcmp(kind, "adam") == 0 ? f->m2 : NULL};
  f->prog = (hn_progress){.epoch = n_hist,
                          .step_in_epoch = 7,
                          .global_step = step,
                          .samples_seen = INT64_C(123456789012),
                          .level = 2,
                          .best_val_accuracy = 0.8125,
                          .best_epoch = n_hist > 0 ? n_hist - 1 : -1,
                          .lr = 0.003,
                          .recon_stride = 4,
                          .n_history = n_hist,
                          .history = n_hist ? malloc((size_t)n_hist * HN_HISTORY_COLS * sizeof(double)) : NULL};
  for (int r = 0; r < n_hist; r++)
    for (int k = 0; k < HN_HISTORY_COLS; k++)
      f->prog.history[r * HN_HISTORY_COLS + k] = k == HN_HIST_VAL_LOSS && r == 0 ? NAN : r * 10.0 + k / 3.0;
  /* About 80 KB of configuration text (more than a 64 KB compact attribute could hold), with
   * quotes, UTF-8 and blank lines. */
  size_t cap = 100000, len = 0;
  f->config = malloc(cap);
  len += (size_t)snprintf(f->config + len, cap - len, "[model]\narch = hamiltonian # \"quoted\" \xc3\xa9\n\n");
  for (int i = 0; len + 64 < cap && i < 4000; i++)
    len += (size_t)snprintf(f->config + len, cap - len, "key_%03d = value %d\n", i, i * i);
}

static void free_fixture(fixture *f) {
  hn_free(f->m1);
  hn_free(f->m2);
  hn_progress_free(&f->prog);
  free(f->config);
}

static int write_simple(const char *path, const hn_model_spec *s, uint64_t seed, long step) {
  hn_model m;
  int st = make_model(&m, s, seed);
  if (st != HN_OK)
    return st;
  fixture f;
  make_fixture(&f, m.layout.n_params, "adam", step, 3);
  st = hn_ckpt_write(path, &m, &f.opt, &f.prog, f.config);
  free_fixture(&f);
  hn_model_destroy(&m);
  return st;
}

/* The first parameter of the checkpoint (reads it back), or NAN. */
static double first_param(const char *path) {
  hn_model m;
  if (hn_ckpt_read(path, &m, NULL, NULL, NULL) != HN_OK)
    return NAN;
  double v = m.params[0];
  hn_model_destroy(&m);
  return v;
}

/* Capture stderr into a file while `fn` runs. */
static int stderr_fd = -1;
static void capture_begin(const char *file) {
  fflush(stderr);
  stderr_fd = dup(2);
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
}
static char *capture_end(const char *file) {
  fflush(stderr);
  dup2(stderr_fd, 2);
  close(stderr_fd);
  FILE *fp = fopen(file, "rb");
  char *buf = calloc(65536, 1);
  if (fp && buf) {
    size_t n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
  }
  if (fp)
    fclose(fp);
  unlink(file);
  return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* HDF5 surgery on written files                                                             */

static hid_t h5_rw(const char *path) { return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT); }

static void set_int_attr(const char *path, const char *obj, const char *name, long long v) {
  hid_t f = h5_rw(path);
  hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
  if (H5Aexists(o, name) > 0)
    H5Adelete(o, name);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(o, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_LLONG, &v);
  H5Aclose(a);
  H5Sclose(sp);
  H5Oclose(o);
  H5Fclose(f);
}

static void set_str_attr(const char *path, const char *obj, const char *name, const char *v) {
  hid_t f = h5_rw(path);
  hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
  if (H5Aexists(o, name) > 0)
    H5Adelete(o, name);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1); /* fixed length this time, as some writers do */
  hid_t a = H5Acreate2(o, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, v);
  H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sp);
  H5Oclose(o);
  H5Fclose(f);
}

static void delete_link(const char *path, const char *name) {
  hid_t f = h5_rw(path);
  H5Ldelete(f, name, H5P_DEFAULT);
  H5Fclose(f);
}

/* Replace dataset `name` with a chunked one of shape dims (rank) and type `type`, filled with
 * `fill` values (count elements) or, when fill is NULL, with no data written at all. */
static void replace_dataset(const char *path, const char *name, int rank, const hsize_t *dims, hid_t type,
                            const double *fill) {
  hid_t f = h5_rw(path);
  H5Ldelete(f, name, H5P_DEFAULT);
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hsize_t chunk[4];
  for (int k = 0; k < rank; k++)
    chunk[k] = dims[k] < 64 ? dims[k] : 64;
  H5Pset_chunk(dcpl, rank, chunk);
  H5Pset_fletcher32(dcpl);
  hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (fill)
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, fill);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(sp);
  H5Fclose(f);
}

/* Rewrite every float dataset of a checkpoint in `type` (float32 <-> float64). */
static void convert_precision(const char *path, hid_t type) {
  static const char *names[] = {"/model/K", "/model/b", "/model/cls/W", "/model/cls/b", "/optimizer/m1",
                                "/optimizer/m2"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (H5Lexists(f, names[i], H5P_DEFAULT) <= 0 ||
        (strncmp(names[i], "/optimizer", 10) == 0 && H5Lexists(f, "/optimizer", H5P_DEFAULT) <= 0)) {
      H5Fclose(f);
      continue;
    }
    hid_t d = H5Dopen2(f, names[i], H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[4];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    double *buf = malloc((size_t)n * sizeof(double));
    H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    replace_dataset(path, names[i], rank, dims, type, buf);
    free(buf);
  }
}

/* File offset of the first chunk of a dataset (H5Dget_chunk_info, HDF5 >= 1.10.5). */
static long long chunk_offset(const char *path, const char *name, hsize_t *chunk_size) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  hid_t sp = H5Dget_space(d);
  hsize_t off[4];
  unsigned mask = 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  herr_t rc = H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size);
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  if (chunk_size)
    *chunk_size = size;
  return rc < 0 ? -1 : (long long)addr;
}

static void flip_byte(const char *path, long long offset) {
  FILE *fp = fopen(path, "r+b");
  fseek(fp, offset, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, offset, SEEK_SET);
  fputc(c ^ 0x10, fp);
  fclose(fp);
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                     */

static void test_name(void) {
  char buf[64];
  hn_ckpt_name(42, buf, sizeof buf);
  CHECK(strcmp(buf, "ckpt-0000000042.h5") == 0, "name '%s'", buf);
  hn_ckpt_name(12345678901L, buf, sizeof buf);
  CHECK(strcmp(buf, "ckpt-12345678901.h5") == 0, "name '%s'", buf);
}

static void check_round_trip(hn_arch arch, hn_opening open, const char *kind, int n_hist) {
  char path[256];
  tpath(path, sizeof path, "rt.h5");
  hn_model_spec s = make_spec(arch, open);
  hn_model m, r;
  CHECK_OK(make_model(&m, &s, 11 + (uint64_t)arch * 2 + (uint64_t)open));
  fixture f;
  make_fixture(&f, m.layout.n_params, kind, 321, n_hist);
  CHECK_OK(hn_ckpt_write(path, &m, &f.opt, &f.prog, f.config));
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(!file_exists(tmp), "no .tmp left behind");

  size_t n = m.layout.n_params;
  hn_real *m1 = hn_alloc(n, sizeof(hn_real), HN_MEM_OPTIM, "m1");
  hn_real *m2 = hn_alloc(n, sizeof(hn_real), HN_MEM_OPTIM, "m2");
  hn_ckpt_optimizer ro = {.kind = kind, .m1 = m1, .m2 = strcmp(kind, "adam") == 0 ? m2 : NULL};
  hn_progress rp;
  char *cfg = NULL;
  int st = hn_ckpt_read(path, &r, &ro, &rp, &cfg);
  CHECK(st == HN_OK, "%s/%s/%s read: %s", hn_arch_name(arch), hn_opening_name(open), kind, hn_errmsg());
  if (st == HN_OK) {
    CHECK(spec_equal(&r.layout.spec, &s), "spec round trip");
    CHECK(r.layout.n_params == n, "n_params");
    CHECK(memcmp(r.params, m.params, n * sizeof(hn_real)) == 0, "params bitwise (%s, %s)", hn_arch_name(arch),
          hn_opening_name(open));
    CHECK(memcmp(m1, f.m1, n * sizeof(hn_real)) == 0, "m1 bitwise");
    if (ro.m2)
      CHECK(memcmp(m2, f.m2, n * sizeof(hn_real)) == 0, "m2 bitwise");
    CHECK(ro.step == 321, "optimizer step %ld", ro.step);
    CHECK(rp.epoch == f.prog.epoch && rp.step_in_epoch == 7 && rp.global_step == 321 &&
              rp.samples_seen == INT64_C(123456789012) && rp.level == 2 && rp.best_val_accuracy == 0.8125 &&
              rp.best_epoch == f.prog.best_epoch && rp.lr == 0.003 && rp.recon_stride == 4,
          "progress fields");
    CHECK(rp.n_history == n_hist, "history rows %d", rp.n_history);
    if (n_hist > 0 && rp.history)
      CHECK(memcmp(rp.history, f.prog.history, (size_t)n_hist * HN_HISTORY_COLS * sizeof(double)) == 0,
            "history bitwise (NaN included)");
    CHECK(cfg && strcmp(cfg, f.config) == 0, "config text (%zu bytes)", strlen(f.config));
    /* The file layout: /model/K[j] is K_j, /model/b[j] is b_j (gather / scatter). */
    hid_t fh = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    double *K = malloc((size_t)s.depth * s.width * s.width * sizeof(double));
    double *b = malloc((size_t)s.depth * s.width * sizeof(double));
    hid_t dK = H5Dopen2(fh, "/model/K", H5P_DEFAULT), db = H5Dopen2(fh, "/model/b", H5P_DEFAULT);
    H5Dread(dK, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, K);
    H5Dread(db, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, b);
    int same = 1;
    for (int j = 0; j < s.depth; j++) {
      const hn_real *Kj = hn_layer_K(&m.layout, m.params, j), *bj = hn_layer_b(&m.layout, m.params, j);
      for (int i = 0; i < s.width * s.width; i++)
        same &= K[(size_t)j * s.width * s.width + i] == (double)Kj[i];
      for (int i = 0; i < s.width; i++)
        same &= b[(size_t)j * s.width + i] == (double)bj[i];
    }
    CHECK(same, "/model/K and /model/b hold K_j and b_j layer by layer");
    hid_t tK = H5Dget_type(dK);
    CHECK(H5Tget_size(tK) == sizeof(hn_real), "stored in the build's precision");
    hid_t pl = H5Dget_create_plist(dK);
    CHECK(H5Pget_layout(pl) == H5D_CHUNKED && H5Pget_nfilters(pl) >= 1, "chunked + filter");
    H5Pclose(pl);
    H5Tclose(tK);
    H5Dclose(dK);
    H5Dclose(db);
    free(K);
    free(b);
    H5Fclose(fh);
  }
  CHECK_OK(hn_ckpt_verify(path));
  hn_model_spec rs;
  CHECK_OK(hn_ckpt_read_spec(path, &rs));
  CHECK(spec_equal(&rs, &s), "read_spec");
  hn_ckpt_info info;
  CHECK_OK(hn_ckpt_read_info(path, &info));
  CHECK(info.has_optimizer && strcmp(info.optimizer_kind, kind) == 0 && info.optimizer_step == 321 &&
            info.has_progress && info.n_history == n_hist && info.has_config && info.checksummed &&
            info.n_params == (int64_t)n && strcmp(info.precision, HN_REAL_NAME) == 0,
        "info");
  /* Model only. */
  hn_model r2;
  CHECK_OK(hn_ckpt_read(path, &r2, NULL, NULL, NULL));
  hn_model_destroy(&r2);
  hn_model_destroy(&r);
  hn_progress_free(&rp);
  free(cfg);
  hn_free(m1);
  hn_free(m2);
  free_fixture(&f);
  hn_model_destroy(&m);
  unlink(path);
}

static void test_round_trips(void) {
  for (int a = 0; a < HN_ARCH_COUNT; a++)
    for (int o = 0; o < HN_OPEN_COUNT; o++)
      check_round_trip((hn_arch)a, (hn_opening)o, (a + o) % 2 ? "sgd" : "adam", 3);
  check_round_trip(HN_ARCH_HAMILTONIAN, HN_OPEN_DENSE, "adam", 0); /* no finished epoch yet */
}

static void test_optional_parts(void) {
  char path[256];
  tpath(path, sizeof path, "bare.h5");
  hn_model_spec s = make_spec(HN_ARCH_LEAPFROG, HN_OPEN_PAD);
  hn_model m, r;
  CHECK_OK(make_model(&m, &s, 5));
  CHECK_OK(hn_ckpt_write(path, &m, NULL, NULL, NULL));
  CHECK_OK(hn_ckpt_read(path, &r, NULL, NULL, NULL));
  if (r.params)
    CHECK(memcmp(r.params, m.params, m.layout.n_params * sizeof(hn_real)) == 0, "model-only round trip");
  hn_model_destroy(&r);
  CHECK_OK(hn_ckpt_verify(path));
  hn_real *m1 = hn_alloc(m.layout.n_params, sizeof(hn_real), HN_MEM_OPTIM, "m1");
  hn_ckpt_optimizer ro = {.kind = "sgd", .m1 = m1};
  int st = hn_ckpt_read(path, &r, &ro, NULL, NULL);
  CHECK(st == HN_EFORMAT && strstr(hn_errmsg(), "no optimizer state"), "missing optimizer: %d %s", st, hn_errmsg());
  CHECK(r.params == NULL, "nothing left allocated");
  hn_progress p;
  st = hn_ckpt_read(path, &r, NULL, &p, NULL);
  CHECK(st == HN_EFORMAT && strstr(hn_errmsg(), "/progress"), "missing progress: %s", hn_errmsg());
  char *cfg = NULL;
  st = hn_ckpt_read(path, &r, NULL, NULL, &cfg);
  CHECK(st == HN_EFORMAT && strstr(hn_errmsg(), "/config") && cfg == NULL, "missing config: %s", hn_errmsg());
  /* Kind mismatch. */
  fixture f;
  make_fixture(&f, m.layout.n_params, "adam", 3, 1);
  CHECK_OK(hn_ckpt_write(path, &m, &f.opt, &f.prog, f.config));
  st = hn_ckpt_read(path, &r, &ro, NULL, NULL);
  CHECK(st == HN_EFORMAT && strstr(hn_errmsg(), "adam") && strstr(hn_errmsg(), "sgd"), "kind mismatch: %s",
        hn_errmsg());
  /* Bad arguments to write. */
  hn_ckpt_optimizer bad = {.kind = "adam", .m1 = m1, .m2 = NULL};
  CHECK(hn_ckpt_write(path, &m, &bad, NULL, NULL) == HN_EINVAL, "adam without m2 refused");
  CHECK(first_param(path) == (double)m.params[0], "refused write left the file alone");
  free_fixture(&f);
  hn_free(m1);
  hn_model_destroy(&m);
  unlink(path);
}

static void expect_read_error(const char *path, int status, const char *text, const char *what) {
  hn_model r;
  int st = hn_ckpt_read(path, &r, NULL, NULL, NULL);
  CHECK(st == status && strstr(hn_errmsg(), text) != NULL, "%s: status %d, message '%s' (want '%s')", what, st,
        hn_errmsg(), text);
  CHECK(r.params == NULL, "%s: nothing allocated", what);
  if (st == HN_OK)
    hn_model_destroy(&r);
}

static void test_validation(void) {
  char path[256];
  tpath(path, sizeof path, "bad.h5");
  hn_model_spec s = make_spec(HN_ARCH_HAMILTONIAN, HN_OPEN_DENSE);

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_int_attr(path, "/", "format_version", 7);
  expect_read_error(path, HN_EFORMAT, "format_version 7 is newer than this hamnet supports (2)", "version");
  hn_model_spec rs;
  CHECK(hn_ckpt_read_spec(path, &rs) == HN_EFORMAT, "read_spec checks the version too");

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_str_attr(path, "/", "format", "x");
  expect_read_error(path, HN_EFORMAT, "is not a hamnet checkpoint (format attribute 'x')", "format");

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_str_attr(path, "/model", "arch", "hamiltonian"); /* fixed-length strings are fine */
  CHECK_OK(hn_ckpt_verify(path));

  CHECK_OK(write_simple(path, &s, 1, 10));
  delete_link(path, "/model/b");
  expect_read_error(path, HN_EFORMAT, "dataset /model/b is missing", "missing dataset");

  CHECK_OK(write_simple(path, &s, 1, 10));
  delete_link(path, "/model/open");
  expect_read_error(path, HN_EFORMAT, "dataset /model/open/K is missing", "missing group");

  CHECK_OK(write_simple(path, &s, 1, 10));
  {
    hsize_t d[1] = {4};
    double v[4] = {1, 2, 3, 4};
    replace_dataset(path, "/model/cls/b", 1, d, H5T_IEEE_F64LE, v);
  }
  expect_read_error(path, HN_EFORMAT, "/model/cls/b has shape [4]; the /model attributes imply [3]", "shape");

  CHECK_OK(write_simple(path, &s, 1, 10));
  {
    hsize_t d[3] = {4, 6, 5};
    double v[120] = {0};
    replace_dataset(path, "/model/K", 3, d, H5T_IEEE_F64LE, v);
  }
  expect_read_error(path, HN_EFORMAT, "/model/K has shape [4, 6, 5]; the /model attributes imply [4, 6, 6]",
                    "K shape");

  CHECK_OK(write_simple(path, &s, 1, 10));
  {
    hsize_t d[1] = {7};
    double v[7] = {0};
    replace_dataset(path, "/optimizer/m2", 1, d, H5T_IEEE_F64LE, v);
  }
  CHECK(hn_ckpt_verify(path) == HN_EFORMAT && strstr(hn_errmsg(), "/optimizer/m2 has shape [7]"), "m2 shape: %s",
        hn_errmsg());

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_int_attr(path, "/model", "width", 1 << 20);
  expect_read_error(path, HN_EFORMAT, "attribute width of /model = 1048576 is outside 1..65536", "width range");

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_int_attr(path, "/", "n_params", 1000);
  expect_read_error(path, HN_EFORMAT, "attribute n_params = 1000 does not match", "n_params");

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_str_attr(path, "/model", "width", "six");
  expect_read_error(path, HN_EFORMAT, "attribute width of /model has type string; expected an integer", "type");

  CHECK_OK(write_simple(path, &s, 1, 10));
  set_str_attr(path, "/model", "arch", "transformer");
  expect_read_error(path, HN_EFORMAT, "arch of /model = 'transformer'", "arch name");

  CHECK_OK(write_simple(path, &s, 1, 10));
  {
    hsize_t d[1] = {3};
    replace_dataset(path, "/model/cls/b", 1, d, H5T_STD_I32LE, NULL);
  }
  expect_read_error(path, HN_EFORMAT, "/model/cls/b has type int32; expected floating point", "int dataset");

  /* A header promising a huge model whose datasets have the right shape but hold no data:
   * refused by the size check before anything is allocated (it would be 2 TiB). */
  CHECK_OK(write_simple(path, &s, 1, 10));
  {
    const int W = 1024, D = 1 << 18;
    set_int_attr(path, "/model", "width", W);
    set_int_attr(path, "/model", "depth", D);
    set_str_attr(path, "/model", "opening", "pad");
    long long np = (long long)D * (W * W + W) + 3LL * W + 3;
    set_int_attr(path, "/", "n_params", np);
    hsize_t dK[3] = {(hsize_t)D, W, W}, db[2] = {(hsize_t)D, W}, dW[2] = {3, W}, dmu[1] = {3}, dm[1] = {(hsize_t)np};
    replace_dataset(path, "/model/K", 3, dK, H5T_IEEE_F64LE, NULL);
    replace_dataset(path, "/model/b", 2, db, H5T_IEEE_F64LE, NULL);
    replace_dataset(path, "/model/cls/W", 2, dW, H5T_IEEE_F64LE, NULL);
    replace_dataset(path, "/model/cls/b", 1, dmu, H5T_IEEE_F64LE, NULL);
    replace_dataset(path, "/optimizer/m1", 1, dm, H5T_IEEE_F64LE, NULL);
    replace_dataset(path, "/optimizer/m2", 1, dm, H5T_IEEE_F64LE, NULL);
    size_t before = hn_mem_current(HN_MEM_PARAMS);
    expect_read_error(path, HN_EFORMAT, "bytes but the file has only", "crafted huge header");
    CHECK(hn_mem_peak(HN_MEM_PARAMS) < before + ((size_t)1 << 30), "nothing huge was allocated");
  }

  /* Not a checkpoint at all. */
  FILE *fp = fopen(path, "wb");
  fputs("this is not HDF5\n", fp);
  fclose(fp);
  expect_read_error(path, HN_EFORMAT, "not an HDF5 file", "text file");
  unlink(path);
  expect_read_error(path, HN_EIO, "cannot open", "missing file");

  /* A data set file: an HDF5 file with another format. */
  hn_dataset ds;
  int64_t dims[1] = {2};
  CHECK_OK(hn_dataset_alloc(&ds, 4, 1, dims, 2));
  for (int i = 0; i < 4; i++)
    ds.y[i] = i % 2;
  CHECK_OK(hn_dataset_write(path, &ds));
  hn_dataset_free(&ds);
  expect_read_error(path, HN_EFORMAT, "is not a hamnet checkpoint (format attribute 'hamnet-dataset')", "dataset");
  unlink(path);
}

static void test_checksum_and_truncation(void) {
  char path[256];
  tpath(path, sizeof path, "flip.h5");
  hn_model_spec s = make_spec(HN_ARCH_ANTISYM, HN_OPEN_PAD);
  CHECK_OK(write_simple(path, &s, 3, 10));
  hsize_t csize = 0;
  long long off = chunk_offset(path, "/model/K", &csize);
  CHECK(off > 0 && csize > 16, "chunk of /model/K at %lld (%llu bytes)", off, (unsigned long long)csize);
  flip_byte(path, off + 13);
  expect_read_error(path, HN_EFORMAT, "checksum mismatch in /model/K of", "flipped byte");
  CHECK(strstr(hn_errmsg(), "(the file is corrupted)") != NULL, "message: %s", hn_errmsg());
  CHECK(hn_ckpt_verify(path) == HN_EFORMAT, "verify sees it too");

  /* A flipped byte in the optimizer moments: a model-only read does not look at them, the
   * full verification does. */
  CHECK_OK(write_simple(path, &s, 3, 10));
  off = chunk_offset(path, "/optimizer/m1", NULL);
  flip_byte(path, off + 5);
  hn_model r;
  CHECK_OK(hn_ckpt_read(path, &r, NULL, NULL, NULL));
  hn_model_destroy(&r);
  CHECK(hn_ckpt_verify(path) == HN_EFORMAT && strstr(hn_errmsg(), "checksum mismatch in /optimizer/m1"),
        "verify: %s", hn_errmsg());

  /* A flipped byte in the metadata (the value of the width attribute, in /model's object
   * header): the 1.8 file format checksums object headers too. */
  CHECK_OK(write_simple(path, &s, 3, 10));
  {
    FILE *fp = fopen(path, "rb");
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    long long at = -1;
    for (size_t i = 0; at < 0 && i + 6 < n; i++)
      if (memcmp(buf + i, "width", 6) == 0) /* the name, with its NUL */
        for (size_t k = i + 6; k + 4 < n && k < i + 64; k++)
          if (buf[k] == 6 && buf[k + 1] == 0 && buf[k + 2] == 0 && buf[k + 3] == 0) {
            at = (long long)k;
            break;
          }
    CHECK(at > 0, "found the width attribute's value");
    if (at > 0) {
      flip_byte(path, at);
      expect_read_error(path, HN_EFORMAT, "checksum", "flipped metadata byte");
    }
  }

  CHECK_OK(write_simple(path, &s, 3, 10));
  struct stat st;
  stat(path, &st);
  CHECK(truncate(path, st.st_size / 2) == 0, "truncate");
  expect_read_error(path, HN_EFORMAT, "truncated", "truncated file");
  unlink(path);
}

static void test_find_latest(void) {
  char dir[128], p10[256], p20[256], p30[256], found[512], name[64];
  snprintf(dir, sizeof dir, "%s/run", tdir);
  mkdir(dir, 0755);
  hn_model_spec s = make_spec(HN_ARCH_HAMILTONIAN, HN_OPEN_PAD);
  CHECK(hn_ckpt_find_latest(dir, found, sizeof found) == HN_EIO && found[0] == '\0', "empty dir: %s", hn_errmsg());
  long steps[3] = {10, 20, 30};
  char *paths[3] = {p10, p20, p30};
  for (int i = 0; i < 3; i++) {
    hn_ckpt_name(steps[i], name, sizeof name);
    snprintf(paths[i], 256, "%s/%s", dir, name);
    CHECK_OK(write_simple(paths[i], &s, (uint64_t)steps[i], steps[i]));
  }
  /* Distractors: a newer .tmp (even a valid one), best.h5, a stray file. */
  char extra[300];
  snprintf(extra, sizeof extra, "%s/ckpt-0000000099.h5.tmp", dir);
  CHECK_OK(write_simple(extra, &s, 99, 99));
  snprintf(extra, sizeof extra, "%s/best.h5", dir);
  CHECK_OK(write_simple(extra, &s, 98, 98));
  snprintf(extra, sizeof extra, "%s/ckpt-notes.txt", dir);
  fclose(fopen(extra, "w"));

  CHECK_OK(hn_ckpt_find_latest(dir, found, sizeof found));
  CHECK(strcmp(found, p30) == 0, "newest: %s", found);

  /* Truncated newest: skipped with a warning. */
  struct stat st;
  stat(p30, &st);
  CHECK(truncate(p30, st.st_size / 2) == 0, "truncate");
  char cap[256];
  tpath(cap, sizeof cap, "stderr.txt");
  capture_begin(cap);
  int rc = hn_ckpt_find_latest(dir, found, sizeof found);
  char *log = capture_end(cap);
  CHECK(rc == HN_OK && strcmp(found, p20) == 0, "past the truncated one: %d %s", rc, found);
  CHECK(log && strstr(log, "skipping corrupt checkpoint") && strstr(log, "ckpt-0000000030.h5"), "warning: %s",
        log ? log : "(none)");
  free(log);

  /* Flipped byte in /model/K of the next one: skipped too. */
  flip_byte(p20, chunk_offset(p20, "/model/K", NULL) + 7);
  capture_begin(cap);
  rc = hn_ckpt_find_latest(dir, found, sizeof found);
  log = capture_end(cap);
  CHECK(rc == HN_OK && strcmp(found, p10) == 0, "past the corrupted one: %d %s", rc, found);
  CHECK(log && strstr(log, "ckpt-0000000020.h5") && strstr(log, "checksum mismatch"), "warning: %s",
        log ? log : "(none)");
  free(log);

  /* Flipped optimizer state in the oldest: nothing readable is left. */
  flip_byte(p10, chunk_offset(p10, "/optimizer/m2", NULL) + 3);
  capture_begin(cap);
  rc = hn_ckpt_find_latest(dir, found, sizeof found);
  log = capture_end(cap);
  free(log);
  CHECK(rc == HN_EIO && found[0] == '\0' && strstr(hn_errmsg(), "3 corrupt ones skipped"), "none: %d '%s' %s", rc,
        found, hn_errmsg());
  CHECK(hn_ckpt_find_latest("/nonexistent/dir", found, sizeof found) == HN_EIO, "missing dir");
  remove_tree(dir);
}

static void test_prune(void) {
  char dir[128], name[64], p[300];
  snprintf(dir, sizeof dir, "%s/prune", tdir);
  mkdir(dir, 0755);
  hn_model_spec s = make_spec(HN_ARCH_RESNET, HN_OPEN_PAD);
  long steps[5] = {5, 100, 40, 2000, 7};
  for (int i = 0; i < 5; i++) {
    hn_ckpt_name(steps[i], name, sizeof name);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK_OK(write_simple(p, &s, 1, steps[i]));
  }
  snprintf(p, sizeof p, "%s/best.h5", dir);
  CHECK_OK(write_simple(p, &s, 1, 1));
  snprintf(p, sizeof p, "%s/ckpt-0000000001.h5.tmp", dir);
  fclose(fopen(p, "w"));
  CHECK_OK(hn_ckpt_prune(dir, 2));
  CHECK(count_files(dir, ".h5") == 3, "2 checkpoints + best.h5 left (%d)", count_files(dir, ".h5"));
  snprintf(p, sizeof p, "%s/ckpt-0000002000.h5", dir);
  CHECK(file_exists(p), "newest kept");
  snprintf(p, sizeof p, "%s/ckpt-0000000100.h5", dir);
  CHECK(file_exists(p), "second newest kept");
  snprintf(p, sizeof p, "%s/ckpt-0000000040.h5", dir);
  CHECK(!file_exists(p), "older deleted");
  CHECK(count_files(dir, ".tmp") == 1, ".tmp left alone");
  CHECK_OK(hn_ckpt_prune(dir, 5));
  CHECK(count_files(dir, ".h5") == 3, "keep > count deletes nothing");
  CHECK(hn_ckpt_prune(dir, -1) == HN_EINVAL, "negative keep");
  remove_tree(dir);
}

static void test_write_failures(void) {
  char path[256], tmp[300];
  tpath(path, sizeof path, "fail.h5");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  hn_model_spec s = make_spec(HN_ARCH_LEAPFROG, HN_OPEN_DENSE);
  CHECK_OK(write_simple(path, &s, 1, 10));
  double old = first_param(path);
  static const char *points[] = {"fail_create", "fail_write", "fail_fsync", "fail_before_rename"};
  for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
    hn_ckpt_set_fault(points[i]);
    int st = write_simple(path, &s, 2, 20);
    CHECK(st == HN_EIO && strstr(hn_errmsg(), "injected"), "%s: %d %s", points[i], st, hn_errmsg());
    CHECK(!file_exists(tmp), "%s: no .tmp left", points[i]);
    CHECK(first_param(path) == old, "%s: previous checkpoint intact", points[i]);
    CHECK_OK(hn_ckpt_verify(path));
  }
  hn_ckpt_set_fault("fail_write");
  CHECK(write_simple(path, &s, 2, 20) == HN_EIO && strstr(hn_errmsg(), "No space left on device"), "ENOSPC text: %s",
        hn_errmsg());
  /* @N: only the second write from now on fails. */
  hn_ckpt_set_fault(NULL);
  setenv("HAMNET_FAULT_CKPT", "fail_write@1000000", 1);
  CHECK_OK(write_simple(path, &s, 3, 30)); /* the environment is read; not call 1000000 */
  unsetenv("HAMNET_FAULT_CKPT");
  CHECK(first_param(path) != old, "replaced");
  old = first_param(path);
  hn_ckpt_set_fault("fail_dirsync");
  CHECK(write_simple(path, &s, 4, 40) == HN_EIO && strstr(hn_errmsg(), "injected"), "dirsync: %s", hn_errmsg());
  CHECK(first_param(path) != old, "after a failed folder fsync the new file is in place");
  hn_ckpt_set_fault("bogus_thing");
  CHECK(write_simple(path, &s, 4, 40) == HN_EINVAL, "bad spec refused: %s", hn_errmsg());
  hn_ckpt_set_fault("pause_rename");
  CHECK(write_simple(path, &s, 4, 40) == HN_EINVAL, "pause needs seconds: %s", hn_errmsg());
  hn_ckpt_set_fault("pause_before_rename=0.01");
  capture_begin("pause.txt");
  int st = write_simple(path, &s, 5, 50);
  char *log = capture_end("pause.txt");
  CHECK(st == HN_OK && log && strstr(log, "pausing 0.01 s before rename"), "pause: %d %s", st, log ? log : "");
  free(log);
  hn_ckpt_set_fault(NULL);

  /* A real write failure: the file size limit (EFBIG) hits inside HDF5's writes. */
  old = first_param(path);
  struct rlimit lim, small;
  getrlimit(RLIMIT_FSIZE, &lim);
  small = lim;
  small.rlim_cur = 6000;
  signal(SIGXFSZ, SIG_IGN);
  int limited = setrlimit(RLIMIT_FSIZE, &small) == 0;
  CHECK(limited, "setrlimit: %s", strerror(errno));
  if (limited) {
    hn_model_spec big = make_spec(HN_ARCH_LEAPFROG, HN_OPEN_DENSE);
    big.width = 40;
    st = write_simple(path, &big, 6, 60);
    setrlimit(RLIMIT_FSIZE, &lim);
    CHECK(st == HN_EIO && strstr(hn_errmsg(), "File too large"), "EFBIG: %d %s", st, hn_errmsg());
    CHECK(!file_exists(tmp), "no .tmp left after EFBIG");
    CHECK(first_param(path) == old, "previous checkpoint intact after EFBIG");
  }
  signal(SIGXFSZ, SIG_DFL);

  /* A real "disk full": the .tmp name is a link to /dev/full, where every write fails with
   * ENOSPC. The link is removed like any failed .tmp file. */
  if (file_exists("/dev/full") && symlink("/dev/full", tmp) == 0) {
    st = write_simple(path, &s, 7, 70);
    CHECK(st == HN_EIO && strstr(hn_errmsg(), "No space left on device") && !strstr(hn_errmsg(), "injected"),
          "ENOSPC: %d %s", st, hn_errmsg());
    struct stat lst;
    CHECK(lstat(tmp, &lst) != 0, "no .tmp left after ENOSPC");
    CHECK(first_param(path) == old, "previous checkpoint intact after ENOSPC");
  }

  /* A directory that does not exist. */
  char nodir[300];
  tpath(nodir, sizeof nodir, "no/such/dir/ckpt.h5");
  CHECK(write_simple(nodir, &s, 1, 1) == HN_EIO && strstr(hn_errmsg(), "cannot create"), "no dir: %s", hn_errmsg());
  unlink(path);
}

/* A process killed inside a checkpoint write (SIGKILL: no cleanup at all) leaves the previous
 * checkpoint in place and find_latest still finds it. */
static void test_killed_writer(void) {
  char dir[128], name[64], p10[256], p20[256], tmp[300], found[512];
  snprintf(dir, sizeof dir, "%s/kill", tdir);
  mkdir(dir, 0755);
  hn_model_spec s = make_spec(HN_ARCH_HAMILTONIAN, HN_OPEN_DENSE);
  hn_ckpt_name(10, name, sizeof name);
  snprintf(p10, sizeof p10, "%s/%s", dir, name);
  hn_ckpt_name(20, name, sizeof name);
  snprintf(p20, sizeof p20, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", p20);
  CHECK_OK(write_simple(p10, &s, 1, 10));

  /* die_before_rename: the child kills itself; the complete .tmp stays, ignored. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    hn_ckpt_set_fault("die_before_rename");
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 2);
    write_simple(p20, &s, 2, 20);
    _exit(0);
  }
  int ws = 0;
  waitpid(pid, &ws, 0);
  CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "child killed (status %d)", ws);
  CHECK(file_exists(tmp) && !file_exists(p20), ".tmp there, target not");
  CHECK_OK(hn_ckpt_find_latest(dir, found, sizeof found));
  CHECK(strcmp(found, p10) == 0, "found %s", found);

  /* pause in the middle of the write, killed from outside while paused there. */
  static const char *specs[] = {"pause_write=60", "pause_before_rename=60", "pause_create=60"};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
      close(fds[0]);
      dup2(fds[1], 2);
      hn_ckpt_set_fault(specs[i]);
      write_simple(p20, &s, 2, 20);
      _exit(0);
    }
    close(fds[1]);
    char line[512] = "";
    size_t n = 0;
    while (n + 1 < sizeof line) {
      ssize_t k = read(fds[0], line + n, 1);
      if (k <= 0 || line[n] == '\n')
        break;
      n++;
    }
    line[n] = '\0';
    close(fds[0]);
    CHECK(strstr(line, "pausing 60 s") != NULL, "%s: child says '%s'", specs[i], line);
    CHECK(file_exists(tmp), "%s: .tmp exists while paused", specs[i]);
    kill(pid, SIGKILL);
    waitpid(pid, &ws, 0);
    CHECK(WIFSIGNALED(ws), "%s: killed", specs[i]);
    CHECK(!file_exists(p20), "%s: target never appeared", specs[i]);
    CHECK_OK(hn_ckpt_find_latest(dir, found, sizeof found));
    CHECK(strcmp(found, p10) == 0, "%s: found %s", specs[i], found);
    CHECK_OK(hn_ckpt_verify(p10));
  }
  /* The next write simply replaces the stale .tmp. */
  CHECK_OK(write_simple(p20, &s, 2, 20));
  CHECK(!file_exists(tmp), "stale .tmp replaced");
  CHECK_OK(hn_ckpt_find_latest(dir, found, sizeof found));
  CHECK(strcmp(found, p20) == 0, "found %s", found);
  remove_tree(dir);
}

/* A checkpoint written by the other precision reads back (HDF5 converts). */
static void test_other_precision(void) {
  char path[256];
  tpath(path, sizeof path, "prec.h5");
  hn_model_spec s = make_spec(HN_ARCH_HAMILTONIAN, HN_OPEN_DENSE);
  hn_model m, r;
  CHECK_OK(make_model(&m, &s, 9));
  fixture f;
  make_fixture(&f, m.layout.n_params, "adam", 5, 2);
  CHECK_OK(hn_ckpt_write(path, &m, &f.opt, &f.prog, f.config));
#ifdef HN_USE_DOUBLE
  hid_t other = H5T_IEEE_F32LE;
  double tol = 1e-7;
#else
  hid_t other = H5T_IEEE_F64LE;
  double tol = 0;
#endif
  convert_precision(path, other);
  hn_real *m1 = hn_alloc(m.layout.n_params, sizeof(hn_real), HN_MEM_OPTIM, "m1");
  hn_real *m2 = hn_alloc(m.layout.n_params, sizeof(hn_real), HN_MEM_OPTIM, "m2");
  hn_ckpt_optimizer ro = {.kind = "adam", .m1 = m1, .m2 = m2};
  CHECK_OK(hn_ckpt_read(path, &r, &ro, NULL, NULL));
  if (r.params) {
    double worst = 0, worst_m = 0;
    for (size_t i = 0; i < m.layout.n_params; i++) {
      worst = fmax(worst, fabs((double)r.params[i] - (double)m.params[i]) / fmax(1e-30, fabs((double)m.params[i])));
      worst_m = fmax(worst_m, fabs((double)m2[i] - (double)f.m2[i]) / fmax(1e-30, fabs((double)f.m2[i])));
    }
    CHECK(worst <= tol && worst_m <= tol, "converted values: rel err %g / %g (tol %g)", worst, worst_m, tol);
    hn_model_destroy(&r);
  }
  hn_ckpt_info info;
  CHECK_OK(hn_ckpt_read_info(path, &info));
  CHECK(strcmp(info.param_type, sizeof(hn_real) == 8 ? "float32" : "float64") == 0, "stored type %s",
        info.param_type);
  CHECK_OK(hn_ckpt_verify(path));
  hn_free(m1);
  hn_free(m2);
  free_fixture(&f);
  hn_model_destroy(&m);
  unlink(path);
}

static char *print_to_string(int json, const char *path, int *status) {
  char out[300];
  tpath(out, sizeof out, "summary.txt");
  FILE *fp = fopen(out, "w+");
  *status = json ? hn_ckpt_print_summary_json(path, fp) : hn_ckpt_print_summary(path, fp);
  fflush(fp);
  long len = ftell(fp);
  char *buf = calloc((size_t)len + 1, 1);
  rewind(fp);
  if (fread(buf, 1, (size_t)len, fp) != (size_t)len)
    buf[0] = '\0';
  fclose(fp);
  unlink(out);
  return buf;
}

static void test_summary(void) {
  char path[256];
  tpath(path, sizeof path, "ckpt-0000000321.h5");
  hn_model_spec s = make_spec(HN_ARCH_HAMILTONIAN, HN_OPEN_DENSE);
  hn_model m;
  CHECK_OK(make_model(&m, &s, 4));
  fixture f;
  make_fixture(&f, m.layout.n_params, "adam", 321, 8);
  CHECK_OK(hn_ckpt_write(path, &m, &f.opt, &f.prog, f.config));
  int st;
  char *text = print_to_string(0, path, &st);
  CHECK(st == HN_OK, "summary: %s", hn_errmsg());
  char np[64];
  snprintf(np, sizeof np, "n_params        %zu", m.layout.n_params);
  CHECK(strstr(text, "hamiltonian") && strstr(text, np) && strstr(text, "adam, step 321") &&
            strstr(text, "global_step 321") && strstr(text, "||K_j||_F") && strstr(text, "key_3999 = value 15992001") &&
            strstr(text, "the last rows") && strstr(text, "fletcher32"),
        "summary text:\n%s", text);
  free(text);
  text = print_to_string(1, path, &st);
  snprintf(np, sizeof np, "\"n_params\": %zu", m.layout.n_params);
  CHECK(st == HN_OK && strstr(text, np) && strstr(text, "\"kind\": \"adam\"") && strstr(text, "\\\"quoted\\\"") &&
            strstr(text, "null") && text[0] == '{',
        "json:\n%s", text);
  free(text);
  flip_byte(path, chunk_offset(path, "/model/K", NULL) + 9);
  text = print_to_string(0, path, &st);
  CHECK(st == HN_EFORMAT && strstr(hn_errmsg(), "checksum mismatch"), "corrupt file reported: %s", hn_errmsg());
  free(text);
  free_fixture(&f);
  hn_model_destroy(&m);
  unlink(path);
}

int main(void) {
  snprintf(tdir, sizeof tdir, "ckpt_test_XXXXXX");
  if (!mkdtemp(tdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_name();
  test_round_trips();
  test_optional_parts();
  test_validation();
  test_checksum_and_truncation();
  test_find_latest();
  test_prune();
  test_write_failures();
  test_killed_writer();
  test_other_precision();
  test_summary();
  remove_tree(tdir);
  return hn_test_finish("test_checkpoint");
}
