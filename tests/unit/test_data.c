/* test_data.c - the data module: HDF5 data set files (round trips, row selection, every
 * validation error), shuffling and subsets, the synthetic generators, CSV and IDX import. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/rng.h"
#include "hn_test.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                   */

static char tmpdir[256];

static const char *tmp(const char *name) {
  static char buf[8][512];
  static int k = 0;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  fputs(text, f);
  fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, len, f);
  fclose(f);
}

static int has(const char *needle) { return strstr(hn_errmsg(), needle) != NULL; }

/* Every HDF5 object opened by the library must be closed again, on every path. */
#define CHECK_NO_LEAKS()                                                                        \
  CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open: %zd",         \
        (ssize_t)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL))

/* Expect `expr` to fail with `st` and a message containing `needle` (HN_TEST_VERBOSE=1 prints
 * the messages, to read them). */
#define CHECK_FAIL(expr, st, needle)                                                            \
  do {                                                                                          \
    int got_ = (expr);                                                                          \
    CHECK(got_ == (st), "status %d (want %d): %s", got_, (int)(st), hn_errmsg());               \
    CHECK(has(needle), "message lacks '%s': %s", needle, hn_errmsg());                          \
    if (getenv("HN_TEST_VERBOSE"))                                                              \
      printf("  expected error: %s\n", hn_errmsg());                                            \
    CHECK_NO_LEAKS();                                                                           \
  } while (0)

/* A raw data set file written with plain HDF5 calls: any types, ranks, dims. Data arrays
 * (double / long long, converted by HDF5) may be NULL: then the dataset is chunked and left
 * unwritten (for absurd shapes). n_classes_attr < 0: no attribute. */
typedef struct {
  int write_x, write_y;
  hid_t xtype, ytype;
  int xrank, yrank;
  hsize_t xdims[4], ydims[2];
  const double *x;
  const long long *y;
  long long n_classes_attr;
} raw_spec;

static void raw_dataset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, hid_t memtype,
                        const void *data) {
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (!data) {
    hsize_t chunk[4] = {1, 1, 1, 1};
    H5Pset_chunk(dcpl, rank, chunk);
  }
  hid_t d = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0)
    fprintf(stderr, "raw_dataset: cannot create %s\n", name);
  if (data)
    H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

static void write_raw(const char *path, const raw_spec *s) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (s->write_x)
    raw_dataset(f, "X", s->xtype, s->xrank, s->xdims, H5T_NATIVE_DOUBLE, s->x);
  if (s->write_y)
    raw_dataset(f, "y", s->ytype, s->yrank, s->ydims, H5T_NATIVE_LLONG, s->y);
  if (s->n_classes_attr >= 0) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "n_classes", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &s->n_classes_attr);
    H5Aclose(a);
    H5Sclose(sp);
  }
  H5Fclose(f);
}

/* A valid raw spec: X float32 [5, 2], y int32 [5] labels 0,1,2,0,1, no attribute. */
static double raw_x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
static long long raw_y[5] = {0, 1, 2, 0, 1};
static raw_spec good_raw(void) {
  raw_spec s = {1, 1, H5T_IEEE_F32LE, H5T_STD_I32LE, 2, 1, {5, 2, 0, 0}, {5, 0}, raw_x, raw_y, -1};
  return s;
}

static void fill_dataset(hn_dataset *ds, int salt) {
  for (int64_t i = 0; i < ds->n; i++) {
    for (int64_t j = 0; j < ds->n_features; j++)
      ds->X[i * ds->n_features + j] = (float)(1000.0 * salt + i + 0.001 * (double)j);
    ds->y[i] = (int32_t)((i * 7 + salt) % ds->n_classes);
  }
}

static int same_dataset(const hn_dataset *a, const hn_dataset *b) {
  if (a->n != b->n || a->ndim_sample != b->ndim_sample || a->n_features != b->n_features ||
      a->n_classes != b->n_classes)
    return 0;
  for (int k = 0; k < 3; k++)
    if (a->sample_dims[k] != b->sample_dims[k])
      return 0;
  return memcmp(a->X, b->X, (size_t)a->n * (size_t)a->n_features * sizeof(float)) == 0 &&
         memcmp(a->y, b->y, (size_t)a->n * sizeof(int32_t)) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* HDF5 files                                                                                */

static void test_roundtrip(void) {
  size_t base = hn_mem_current(HN_MEM_DATA);
  /* 2-D */
  hn_dataset a, b;
  int64_t f3[1] = {3};
  CHECK_OK(hn_dataset_alloc(&a, 37, 1, f3, 5));
  fill_dataset(&a, 1);
  CHECK_OK(hn_dataset_write(tmp("two.h5"), &a));
  CHECK(!file_exists(tmp("two.h5.tmp")), "no .tmp left behind");
  hn_dataset_info info;
  CHECK_OK(hn_dataset_probe(tmp("two.h5"), &info));
  CHECK(info.n == 37 && info.ndim_sample == 1 && info.sample_dims[0] == 3 && info.n_features == 3,
        "probe shape %lld %d %lld", (long long)info.n, info.ndim_sample, (long long)info.n_features);
  CHECK(info.n_classes == 5 && info.has_n_classes_attr, "probe classes %d attr %d", info.n_classes,
        info.has_n_classes_attr);
  CHECK(info.checksummed, "hamnet writes fletcher32");
  CHECK(strcmp(info.x_type, "float32") == 0 && strcmp(info.y_type, "int32") == 0, "types %s %s", info.x_type,
        info.y_type);
  CHECK_OK(hn_dataset_read(tmp("two.h5"), &b));
  CHECK(same_dataset(&a, &b), "2-D round trip");
  CHECK_NO_LEAKS();
  char fmt[64];
  CHECK_OK(hn_file_format(tmp("two.h5"), fmt, sizeof fmt));
  CHECK(strcmp(fmt, HN_DATA_FORMAT) == 0, "format attribute '%s'", fmt);
  hn_dataset_free(&b);

  /* overwrite the same path with different content: replaced */
  fill_dataset(&a, 2);
  CHECK_OK(hn_dataset_write(tmp("two.h5"), &a));
  CHECK_OK(hn_dataset_read(tmp("two.h5"), &b));
  CHECK(same_dataset(&a, &b), "overwritten file has the new content");
  hn_dataset_free(&b);
  hn_dataset_free(&a);

  /* 4-D images, several chunks (row = 3136 bytes, ~334 rows per 1 MiB chunk) */
  int64_t img[3] = {1, 28, 28};
  CHECK_OK(hn_dataset_alloc(&a, 1000, 3, img, 10));
  fill_dataset(&a, 3);
  CHECK_OK(hn_dataset_write(tmp("img.h5"), &a));
  CHECK_OK(hn_dataset_probe(tmp("img.h5"), &info));
  CHECK(info.ndim_sample == 3 && info.sample_dims[0] == 1 && info.sample_dims[1] == 28 && info.sample_dims[2] == 28 &&
            info.n_features == 784,
        "4-D probe");
  CHECK_OK(hn_dataset_read(tmp("img.h5"), &b));
  CHECK(same_dataset(&a, &b), "4-D round trip");
  hn_dataset_free(&b);

  /* summary statistics equal those of the data in memory */
  hn_dataset_summary s;
  CHECK_OK(hn_dataset_summarize(tmp("img.h5"), &s));
  double mn = INFINITY, mx = -INFINITY, sum = 0;
  int64_t counts[10];
  hn_dataset_class_counts(&a, counts);
  for (int64_t k = 0; k < a.n * a.n_features; k++) {
    mn = fmin(mn, a.X[k]);
    mx = fmax(mx, a.X[k]);
    sum += a.X[k];
  }
  CHECK(s.x_min == mn && s.x_max == mx, "summary min/max %g %g vs %g %g", s.x_min, s.x_max, mn, mx);
  CHECK_CLOSE(s.x_mean, sum / (double)(a.n * a.n_features), 1e-12);
  int counts_ok = 1;
  for (int c = 0; c < 10; c++)
    counts_ok &= s.class_counts[c] == counts[c];
  CHECK(counts_ok, "summary class counts");
  hn_dataset_summary_free(&s);

  /* labels only */
  int32_t *y = NULL;
  CHECK_OK(hn_dataset_read_labels(tmp("img.h5"), &info, &y));
  CHECK(y && memcmp(y, a.y, (size_t)a.n * sizeof(int32_t)) == 0 && info.n == a.n, "read_labels");
  hn_free(y);
  hn_dataset_free(&a);
  CHECK_NO_LEAKS();
  CHECK(hn_mem_current(HN_MEM_DATA) == base, "data memory back to %zu (now %zu)", base,
        hn_mem_current(HN_MEM_DATA));

  /* writing: bad data is refused and nothing is created; a missing directory is an error */
  CHECK_OK(hn_dataset_alloc(&a, 4, 1, f3, 2));
  fill_dataset(&a, 0);
  a.y[2] = 7;
  CHECK_FAIL(hn_dataset_write(tmp("bad.h5"), &a), HN_EFORMAT, "/y[2] = 7");
  CHECK(!file_exists(tmp("bad.h5")) && !file_exists(tmp("bad.h5.tmp")), "bad data set: nothing written");
  a.y[2] = 1;
  a.X[5] = NAN;
  CHECK_FAIL(hn_dataset_write(tmp("bad.h5"), &a), HN_EFORMAT, "/X[1, 2] = nan");
  a.X[5] = 0;
  CHECK_FAIL(hn_dataset_write(tmp("no/such/dir/x.h5"), &a), HN_EIO, "no/such/dir/x.h5.tmp");
  hn_dataset_free(&a);
  CHECK_FAIL(hn_dataset_alloc(&a, 4, 2, f3, 2), HN_EINVAL, "1 dimension");
  int64_t zero[3] = {1, 0, 3};
  CHECK_FAIL(hn_dataset_alloc(&a, 4, 3, zero, 2), HN_EINVAL, ">= 1");
  CHECK(a.X == NULL && a.n == 0, "failed alloc leaves an empty data set");
}

static void test_read_rows(void) {
  hn_dataset full, part;
  CHECK_OK(hn_dataset_read(tmp("img.h5"), &full));
  const int64_t F = full.n_features;
  int64_t rows[1000];
  /* sorted, every other row: 500 runs (more than one read's worth) */
  for (int i = 0; i < 500; i++)
    rows[i] = 2 * i + 1;
  /* unsorted with duplicates, crossing chunk boundaries */
  int64_t mixed[] = {999, 0, 333, 334, 335, 12, 999, 500, 1, 0};
  const int64_t nm = (int64_t)(sizeof mixed / sizeof mixed[0]);
  const struct {
    const int64_t *r;
    int64_t n;
  } cases[] = {{rows, 500}, {mixed, nm}, {mixed + 3, 1}, {rows, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    CHECK_OK(hn_dataset_read_rows(tmp("img.h5"), cases[c].r, cases[c].n, &part));
    int ok = part.n == cases[c].n && part.n_classes == full.n_classes && part.ndim_sample == 3 &&
             part.sample_dims[1] == 28 && part.n_features == F;
    for (int64_t i = 0; ok && i < part.n; i++)
      ok = memcmp(part.X + i * F, full.X + cases[c].r[i] * F, (size_t)F * sizeof(float)) == 0 &&
           part.y[i] == full.y[cases[c].r[i]];
    CHECK(ok, "read_rows case %zu equals the gathered rows", c);
    hn_dataset_free(&part);
  }
  int64_t bad[] = {3, 1000};
  CHECK_FAIL(hn_dataset_read_rows(tmp("img.h5"), bad, 2, &part), HN_EINVAL, "row 1000");
  bad[1] = -1;
  CHECK_FAIL(hn_dataset_read_rows(tmp("img.h5"), bad, 2, &part), HN_EINVAL, "row -1");
  CHECK(part.X == NULL && part.n == 0, "failed read leaves an empty data set");
  /* all rows in order == the whole file */
  int64_t *all = malloc(1000 * sizeof *all);
  for (int i = 0; i < 1000; i++)
    all[i] = i;
  CHECK_OK(hn_dataset_read_rows(tmp("img.h5"), all, 1000, &part));
  CHECK(same_dataset(&part, &full), "all rows == hn_dataset_read");
  hn_dataset_free(&part);
  free(all);
  hn_dataset_free(&full);

  /* small rows, every reading strategy in one request: a sparse stretch of 3000 single rows
   * (more runs than one read takes), a dense stretch, a long run, and the same shuffled */
  hn_dataset small;
  int64_t f2[1] = {2};
  CHECK_OK(hn_dataset_alloc(&small, 2000000, 1, f2, 4));
  fill_dataset(&small, 6);
  CHECK_OK(hn_dataset_write(tmp("small.h5"), &small));
  int64_t *sel = malloc(1200000 * sizeof *sel), ns = 0;
  for (int64_t r = 0; r < 21000; r += 7)
    sel[ns++] = r; /* sparse */
  for (int64_t r = 600000; r < 700000; r++)
    if (r % 3 != 0)
      sel[ns++] = r; /* dense */
  for (int64_t r = 900000; r < 1900000; r++)
    sel[ns++] = r; /* long run */
  sel[ns++] = 1999999;
  for (int shuffled = 0; shuffled < 2; shuffled++) {
    if (shuffled)
      for (int64_t i = ns - 1; i > 0; i--) {
        int64_t j = (i * 7919) % (i + 1), t = sel[i];
        sel[i] = sel[j];
        sel[j] = t;
      }
    CHECK_OK(hn_dataset_read_rows(tmp("small.h5"), sel, ns, &part));
    int same = part.n == ns;
    for (int64_t i = 0; same && i < ns; i++)
      same = part.X[2 * i] == small.X[2 * sel[i]] && part.X[2 * i + 1] == small.X[2 * sel[i] + 1] &&
             part.y[i] == small.y[sel[i]];
    CHECK(same, "mixed sparse/dense/run selection (shuffled %d)", shuffled);
    hn_dataset_free(&part);
  }
  free(sel);
  hn_dataset_free(&small);
  remove(tmp("small.h5"));

  /* rows of 16 MiB: the unsorted path reads its 64 MiB scratch in several blocks */
  hn_dataset big;
  int64_t fbig[1] = {4 << 20};
  CHECK_OK(hn_dataset_alloc(&big, 6, 1, fbig, 3));
  fill_dataset(&big, 5);
  CHECK_OK(hn_dataset_write(tmp("big.h5"), &big));
  int64_t brows[] = {5, 0, 4, 1, 5, 2};
  CHECK_OK(hn_dataset_read_rows(tmp("big.h5"), brows, 6, &part));
  int ok = part.n == 6;
  for (int i = 0; ok && i < 6; i++)
    ok = memcmp(part.X + (int64_t)i * fbig[0], big.X + brows[i] * fbig[0], (size_t)fbig[0] * sizeof(float)) == 0 &&
         part.y[i] == big.y[brows[i]];
  CHECK(ok, "big rows, several scratch blocks");
  hn_dataset_free(&part);
  hn_dataset_summary s;
  CHECK_OK(hn_dataset_summarize(tmp("big.h5"), &s));
  CHECK(s.info.n == 6 && s.class_counts[big.y[0]] >= 1, "summary of a file streamed in several blocks");
  hn_dataset_summary_free(&s);
  hn_dataset_free(&big);
  remove(tmp("big.h5"));
  CHECK_NO_LEAKS();
}

static void test_validation(void) {
  hn_dataset ds;
  hn_dataset_info info;
  raw_spec s;

  /* float64 X and int64 y are accepted and converted */
  s = good_raw();
  s.xtype = H5T_IEEE_F64LE;
  s.ytype = H5T_STD_I64LE;
  write_raw(tmp("f64.h5"), &s);
  CHECK_OK(hn_dataset_probe(tmp("f64.h5"), &info));
  CHECK(strcmp(info.x_type, "float64") == 0 && strcmp(info.y_type, "int64") == 0, "types %s %s", info.x_type,
        info.y_type);
  CHECK(info.n_classes == 3 && !info.has_n_classes_attr && !info.checksummed, "n_classes = max label + 1 = %d",
        info.n_classes);
  CHECK_OK(hn_dataset_read(tmp("f64.h5"), &ds));
  CHECK(ds.n == 5 && ds.X[9] == 9.0f && ds.y[2] == 2 && ds.n_classes == 3, "float64 converted");
  hn_dataset_free(&ds);
  char fmt[32] = "x";
  CHECK_OK(hn_file_format(tmp("f64.h5"), fmt, sizeof fmt));
  CHECK(fmt[0] == '\0', "no format attribute: '%s'", fmt);
  /* ... but float64 values beyond float32 become inf and are refused */
  double xbig[10] = {0, 1, 2, 3, 4, 1e300, 6, 7, 8, 9};
  s.x = xbig;
  write_raw(tmp("f64big.h5"), &s);
  CHECK_FAIL(hn_dataset_read(tmp("f64big.h5"), &ds), HN_EFORMAT, "/X[2, 1] = inf");

  s = good_raw();
  s.xrank = 3;
  s.xdims[0] = 5, s.xdims[1] = 1, s.xdims[2] = 2;
  write_raw(tmp("rank3.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("rank3.h5"), &info), HN_EFORMAT, "got rank 3");
  CHECK(has("rank3.h5") && has("/X"), "names file and dataset: %s", hn_errmsg());

  s = good_raw();
  s.xtype = H5T_STD_I32LE;
  write_raw(tmp("intx.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("intx.h5"), &info), HN_EFORMAT, "/X has type int32");

  s = good_raw();
  s.ytype = H5T_IEEE_F32LE;
  write_raw(tmp("floaty.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("floaty.h5"), &info), HN_EFORMAT, "/y has type float32");

  s = good_raw();
  s.yrank = 2;
  s.ydims[1] = 1;
  write_raw(tmp("yrank2.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("yrank2.h5"), &info), HN_EFORMAT, "/y: expected int32 labels [N], got rank 2");

  s = good_raw();
  s.ydims[0] = 4;
  write_raw(tmp("nmismatch.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("nmismatch.h5"), &info), HN_EFORMAT, "/X has 5 samples but /y has 4 labels");

  s = good_raw();
  s.write_y = 0;
  write_raw(tmp("noy.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("noy.h5"), &info), HN_EFORMAT, "missing dataset /y");
  s = good_raw();
  s.write_x = 0;
  write_raw(tmp("nox.h5"), &s);
  CHECK_FAIL(hn_dataset_read(tmp("nox.h5"), &ds), HN_EFORMAT, "missing dataset /X");

  s = good_raw();
  s.xdims[0] = 0;
  s.ydims[0] = 0;
  s.x = NULL;
  s.y = NULL;
  write_raw(tmp("empty.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("empty.h5"), &info), HN_EFORMAT, "no samples");

  /* labels: out of range of the attribute, negative without it */
  s = good_raw();
  s.n_classes_attr = 2;
  write_raw(tmp("label3.h5"), &s);
  CHECK_OK(hn_dataset_probe(tmp("label3.h5"), &info)); /* probe does not read labels when the attribute is there */
  CHECK(info.n_classes == 2 && info.has_n_classes_attr, "attribute read");
  CHECK_FAIL(hn_dataset_read(tmp("label3.h5"), &ds), HN_EFORMAT, "/y[2] = 2 is out of range 0..1");
  CHECK(has("n_classes attribute"), "message explains where n_classes came from: %s", hn_errmsg());
  int64_t ok_rows[] = {0, 1, 3};
  CHECK_OK(hn_dataset_read_rows(tmp("label3.h5"), ok_rows, 3, &ds)); /* the bad row is not read */
  hn_dataset_free(&ds);
  int64_t bad_rows[] = {4, 2};
  CHECK_FAIL(hn_dataset_read_rows(tmp("label3.h5"), bad_rows, 2, &ds), HN_EFORMAT, "/y[2] = 2");
  int32_t *y = NULL;
  CHECK_FAIL(hn_dataset_read_labels(tmp("label3.h5"), &info, &y), HN_EFORMAT, "/y[2] = 2");
  CHECK(y == NULL, "no labels on failure");
  hn_dataset_summary sum;
  CHECK_FAIL(hn_dataset_summarize(tmp("label3.h5"), &sum), HN_EFORMAT, "/y[2] = 2");

  long long yneg[5] = {0, 1, -1, 0, 1};
  s = good_raw();
  s.y = yneg;
  write_raw(tmp("neg.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("neg.h5"), &info), HN_EFORMAT, "/y[2] = -1");

  /* n_classes attribute of the wrong kind */
  s = good_raw();
  s.n_classes_attr = 0;
  write_raw(tmp("attr0.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("attr0.h5"), &info), HN_EFORMAT, "n_classes = 0 is outside");
  {
    hid_t f = H5Fopen(tmp("attr0.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "n_classes");
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "n_classes", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    double three = 3.0;
    H5Awrite(a, H5T_NATIVE_DOUBLE, &three);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
  }
  CHECK_FAIL(hn_dataset_probe(tmp("attr0.h5"), &info), HN_EFORMAT, "n_classes has type float64");

  /* NaN in X: whole read fails naming the row and feature; rows without it still read */
  double xnan[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, NAN};
  s = good_raw();
  s.x = xnan;
  write_raw(tmp("nan.h5"), &s);
  CHECK_OK(hn_dataset_probe(tmp("nan.h5"), &info));
  CHECK_FAIL(hn_dataset_read(tmp("nan.h5"), &ds), HN_EFORMAT, "nan.h5: /X[4, 1] = nan is not finite");
  int64_t r013[] = {0, 1, 3};
  CHECK_OK(hn_dataset_read_rows(tmp("nan.h5"), r013, 3, &ds));
  hn_dataset_free(&ds);
  int64_t r40[] = {4, 0};
  CHECK_FAIL(hn_dataset_read_rows(tmp("nan.h5"), r40, 2, &ds), HN_EFORMAT, "/X[4, 1] = nan");
  /* images: the message gives all four indices */
  double ximg[2 * 2 * 2 * 3] = {0};
  ximg[12 + 1 * 6 + 0 * 3 + 2] = INFINITY;
  long long yimg[2] = {0, 1};
  s = good_raw();
  s.xrank = 4;
  s.xdims[0] = 2, s.xdims[1] = 2, s.xdims[2] = 2, s.xdims[3] = 3;
  s.ydims[0] = 2;
  s.x = ximg;
  s.y = yimg;
  write_raw(tmp("naninf4.h5"), &s);
  CHECK_FAIL(hn_dataset_read(tmp("naninf4.h5"), &ds), HN_EFORMAT, "/X[1, 1, 0, 2] = inf");

  /* not HDF5, missing, a directory, truncated */
  write_text(tmp("text.h5"), "this is not HDF5\n");
  CHECK_FAIL(hn_dataset_probe(tmp("text.h5"), &info), HN_EFORMAT, "not an HDF5 file");
  CHECK_FAIL(hn_file_format(tmp("text.h5"), fmt, sizeof fmt), HN_EFORMAT, "not an HDF5 file");
  CHECK_FAIL(hn_dataset_read(tmp("missing.h5"), &ds), HN_EIO, "No such file");
  CHECK_FAIL(hn_dataset_read(tmpdir, &ds), HN_EIO, "is a directory");
  {
    /* copy img.h5 and cut it in the middle of the data */
    FILE *in = fopen(tmp("img.h5"), "rb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    size_t got = fread(buf, 1, (size_t)size, in);
    fclose(in);
    CHECK(got == (size_t)size, "read img.h5");
    write_bytes(tmp("trunc.h5"), buf, (size_t)size / 2);
    CHECK_FAIL(hn_dataset_read(tmp("trunc.h5"), &ds), HN_EFORMAT, "trunc.h5");
    CHECK(has("truncated"), "says truncated: %s", hn_errmsg());
    write_bytes(tmp("trunc2.h5"), buf, 600);
    CHECK_FAIL(hn_dataset_probe(tmp("trunc2.h5"), &info), HN_EFORMAT, "trunc2.h5");

    /* flip bits in a data chunk: the fletcher32 checksum catches it */
    float marker = (float)(3000.0 + 500.0 + 0.001 * 100.0); /* fill_dataset(salt 3): row 500, element 100 */
    char *hit = memmem(buf, (size_t)size, &marker, sizeof marker);
    CHECK(hit != NULL, "found a value of img.h5 in its bytes");
    if (hit) {
      hit[0] ^= 0x55;
      write_bytes(tmp("corrupt.h5"), buf, (size_t)size);
      CHECK_OK(hn_dataset_probe(tmp("corrupt.h5"), &info)); /* shapes are intact */
      CHECK_FAIL(hn_dataset_read(tmp("corrupt.h5"), &ds), HN_EFORMAT, "cannot read /X");
      CHECK(strstr(hn_errmsg(), "corrupt.h5") != NULL, "names the file: %s", hn_errmsg());
      int64_t r500[] = {500};
      CHECK_FAIL(hn_dataset_read_rows(tmp("corrupt.h5"), r500, 1, &ds), HN_EFORMAT, "cannot read /X");
      int64_t r0[] = {0};
      CHECK_OK(hn_dataset_read_rows(tmp("corrupt.h5"), r0, 1, &ds)); /* other chunks are fine */
      hn_dataset_free(&ds);
    }
    free(buf);
  }

  /* absurd shapes are refused from the header, before anything is allocated */
  hn_mem_reset_peaks();
  size_t peak0 = hn_mem_peak(HN_MEM_DATA);
  s = good_raw();
  s.xdims[0] = (hsize_t)1 << 40, s.xdims[1] = (hsize_t)1 << 20;
  s.ydims[0] = (hsize_t)1 << 40;
  s.x = NULL;
  s.y = NULL;
  write_raw(tmp("huge.h5"), &s);
  CHECK_FAIL(hn_dataset_probe(tmp("huge.h5"), &info), HN_ENOMEM, "GiB limit");
  CHECK_FAIL(hn_dataset_read(tmp("huge.h5"), &ds), HN_ENOMEM, "GiB limit");
  s.xrank = 4;
  s.xdims[0] = 2, s.xdims[1] = (hsize_t)1 << 30, s.xdims[2] = (hsize_t)1 << 30, s.xdims[3] = (hsize_t)1 << 30;
  s.ydims[0] = 2;
  write_raw(tmp("huge4.h5"), &s);
  CHECK_FAIL(hn_dataset_read(tmp("huge4.h5"), &ds), HN_ENOMEM, "one sample has more than");
  CHECK(hn_mem_peak(HN_MEM_DATA) == peak0, "nothing allocated for absurd shapes (peak %zu -> %zu)", peak0,
        hn_mem_peak(HN_MEM_DATA));

  /* HDF5's own error printing is silenced, and the caller's setting restored */
  H5E_auto2_t func_before = NULL, func_after = NULL;
  void *data_before = NULL, *data_after = NULL;
  H5Eget_auto2(H5E_DEFAULT, &func_before, &data_before);
  fflush(stderr);
  int saved = dup(2);
  int fd = open(tmp("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  hn_dataset_probe(tmp("trunc.h5"), &info);
  hn_dataset_read(tmp("corrupt.h5"), &ds);
  hn_dataset_probe(tmp("noy.h5"), &info);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  struct stat st;
  stat(tmp("stderr.txt"), &st);
  CHECK(st.st_size == 0, "HDF5 printed %lld bytes to stderr", (long long)st.st_size);
  H5Eget_auto2(H5E_DEFAULT, &func_after, &data_after);
  CHECK(func_before == func_after && data_before == data_after, "H5E auto setting restored");
  CHECK_NO_LEAKS();
}

static void test_format_attribute(void) {
  /* fixed-length string attribute (as some writers produce) */
  raw_spec s = good_raw();
  write_raw(tmp("ckpt.h5"), &s);
  hid_t f = H5Fopen(tmp("ckpt.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 17);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, "hamnet-checkpoint");
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  H5Fclose(f);
  char fmt[64];
  CHECK_OK(hn_file_format(tmp("ckpt.h5"), fmt, sizeof fmt));
  CHECK(strcmp(fmt, "hamnet-checkpoint") == 0, "fixed-length format '%s'", fmt);
  char small[7];
  CHECK_OK(hn_file_format(tmp("ckpt.h5"), small, sizeof small));
  CHECK(strcmp(small, "hamnet") == 0, "truncated to the buffer: '%s'", small);
  CHECK_NO_LEAKS();
}

/* ---------------------------------------------------------------------------------------- */
/* shuffling and subsets                                                                     */

static int is_permutation(const int64_t *p, int64_t n) {
  char *seen = calloc((size_t)n + 1, 1);
  int ok = 1;
  for (int64_t i = 0; i < n && ok; i++) {
    ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
    if (ok)
      seen[p[i]] = 1;
  }
  free(seen);
  return ok;
}

static void test_permutation(void) {
  enum { N = 1000 };
  static int64_t a[N], b[N], c[N], d[N];
  hn_data_permutation(7, 3, N, a);
  CHECK(is_permutation(a, N), "is a permutation");
  int moved = 0;
  for (int i = 0; i < N; i++)
    moved += a[i] != i;
  CHECK(moved > N / 2, "shuffled (%d moved)", moved);
  /* a pure function of (seed, epoch, n): other draws and thread counts do not matter */
  hn_rng r;
  hn_rng_init(&r, 7, HN_RNG_SHUFFLE, 3, 0);
  (void)hn_rng_u64(&r);
  omp_set_num_threads(1);
  hn_data_permutation(7, 3, N, b);
  omp_set_num_threads(2);
  CHECK(memcmp(a, b, sizeof a) == 0, "same seed and epoch, same permutation");
  hn_data_permutation(7, 4, N, c);
  CHECK(memcmp(a, c, sizeof a) != 0 && is_permutation(c, N), "another epoch, another permutation");
  hn_data_permutation(8, 3, N, d);
  CHECK(memcmp(a, d, sizeof a) != 0, "another seed, another permutation");
  int64_t one = 42;
  hn_data_permutation(7, 3, 1, &one);
  CHECK(one == 0, "n = 1");
  hn_data_permutation(7, 3, 0, &one); /* writes nothing */
  CHECK(one == 0, "n = 0");
  /* every position is reachable: position of element 0 over many epochs */
  int hits[4] = {0};
  for (uint64_t e = 0; e < 4000; e++) {
    int64_t p4[4];
    hn_data_permutation(1, e, 4, p4);
    hits[p4[0]]++;
  }
  for (int k = 0; k < 4; k++)
    CHECK(hits[k] > 850 && hits[k] < 1150, "uniform first element %d: %d", k, hits[k]);

  /* fraction subsets */
  int64_t *rows = NULL, count = 0, *rows2 = NULL, count2 = 0;
  CHECK_OK(hn_data_fraction_subset(5, N, 0.25, &rows, &count));
  int sorted = count == 250;
  for (int64_t i = 1; i < count; i++)
    sorted &= rows[i] > rows[i - 1];
  CHECK(sorted && rows[0] >= 0 && rows[count - 1] < N, "250 sorted distinct rows (%lld)", (long long)count);
  CHECK_OK(hn_data_fraction_subset(5, N, 0.25, &rows2, &count2));
  CHECK(count2 == count && memcmp(rows, rows2, (size_t)count * sizeof *rows) == 0, "deterministic");
  hn_free(rows2);
  CHECK_OK(hn_data_fraction_subset(6, N, 0.25, &rows2, &count2));
  CHECK(memcmp(rows, rows2, (size_t)count * sizeof *rows) != 0, "seed matters");
  hn_free(rows2);
  hn_free(rows);
  CHECK_OK(hn_data_fraction_subset(5, N, 1.0, &rows, &count));
  CHECK(count == N && rows[0] == 0 && rows[N - 1] == N - 1, "fraction 1 = everything");
  hn_free(rows);
  CHECK_OK(hn_data_fraction_subset(5, 10, 0.001, &rows, &count));
  CHECK(count == 1, "at least one row");
  hn_free(rows);
  CHECK_FAIL(hn_data_fraction_subset(5, N, 0.0, &rows, &count), HN_EINVAL, "fraction");
  CHECK_FAIL(hn_data_fraction_subset(5, N, 1.5, &rows, &count), HN_EINVAL, "fraction");
  CHECK(rows == NULL && count == 0, "nothing on failure");

  /* stratified: 900 of class 0, 90 of class 1, 10 of class 2 */
  static int32_t y[N];
  for (int i = 0; i < N; i++)
    y[i] = i % 100 < 90 ? 0 : i % 100 < 99 ? 1 : 2;
  CHECK_OK(hn_data_fraction_subset_stratified(3, y, N, 4, 0.1, &rows, &count));
  int per[4] = {0};
  sorted = 1;
  for (int64_t i = 0; i < count; i++) {
    per[y[rows[i]]]++;
    if (i)
      sorted &= rows[i] > rows[i - 1];
  }
  CHECK(sorted && per[0] == 90 && per[1] == 9 && per[2] == 1 && per[3] == 0, "stratified %d %d %d %d", per[0],
        per[1], per[2], per[3]);
  hn_free(rows);
  y[5] = 9;
  CHECK_FAIL(hn_data_fraction_subset_stratified(3, y, N, 4, 0.1, &rows, &count), HN_EINVAL, "y[5] = 9");
}

/* ---------------------------------------------------------------------------------------- */
/* generators                                                                                */

static double peaks_z(double x, double y) {
  return 3 * (1 - x) * (1 - x) * exp(-x * x - (y + 1) * (y + 1)) -
         10 * (x / 5 - x * x * x - y * y * y * y * y) * exp(-x * x - y * y) - exp(-(x + 1) * (x + 1) - y * y) / 3;
}

static void test_datagen(void) {
  hn_dataset tr, va, tr2, va2;
  int64_t counts[5];

  /* ellipses */
  CHECK_OK(hn_datagen("ellipses", 0, 0, 11, 0.0, &tr, &va));
  CHECK(tr.n == 1000 && va.n == 1000 && tr.n_features == 2 && tr.n_classes == 2, "ellipses defaults");
  hn_dataset_class_counts(&tr, counts);
  CHECK(counts[0] == 500 && counts[1] == 500, "ellipses balanced %lld %lld", (long long)counts[0],
        (long long)counts[1]);
  int radii_ok = 1;
  double rmin[2] = {9, 9}, rmax[2] = {0, 0};
  for (int64_t i = 0; i < tr.n; i++) {
    double x = tr.X[2 * i], y = tr.X[2 * i + 1] / 0.4, r = sqrt(x * x + y * y);
    int c = tr.y[i];
    radii_ok &= r >= c - 1e-5 && r < c + 1 + 1e-5;
    rmin[c] = fmin(rmin[c], r);
    rmax[c] = fmax(rmax[c], r);
  }
  CHECK(radii_ok, "ellipse radii in [c, c+1)");
  CHECK(rmin[0] < 0.05 && rmax[0] > 0.95 && rmin[1] < 1.05 && rmax[1] > 1.95, "radii fill their ranges");
  CHECK(memcmp(tr.X, va.X, 2000 * sizeof(float)) != 0, "training and validation differ");
  omp_set_num_threads(1);
  CHECK_OK(hn_datagen("ellipses", 0, 0, 11, 0.0, &tr2, &va2));
  omp_set_num_threads(2);
  CHECK(same_dataset(&tr, &tr2) && same_dataset(&va, &va2), "same seed, same data (1 vs 2 threads)");
  hn_dataset_free(&tr2);
  hn_dataset_free(&va2);
  CHECK_OK(hn_datagen("ellipses", 0, 0, 12, 0.0, &tr2, &va2));
  CHECK(!same_dataset(&tr, &tr2), "another seed, other data");
  hn_dataset_free(&tr2);
  hn_dataset_free(&va2);
  /* noise: same labels, coordinates moved by N(0, 0.1^2) */
  CHECK_OK(hn_datagen("ellipses", 0, 0, 11, 0.1, &tr2, &va2));
  double s2 = 0;
  int same_labels = 1;
  for (int64_t k = 0; k < 2000; k++)
    s2 += (tr2.X[k] - tr.X[k]) * (tr2.X[k] - tr.X[k]);
  for (int64_t i = 0; i < 1000; i++)
    same_labels &= tr.y[i] == tr2.y[i];
  CHECK(same_labels, "noise keeps labels");
  CHECK(fabs(sqrt(s2 / 2000) - 0.1) < 0.01, "noise std %g", sqrt(s2 / 2000));
  hn_dataset_free(&tr2);
  hn_dataset_free(&va2);
  hn_dataset_free(&tr);
  hn_dataset_free(&va);
  CHECK_OK(hn_datagen("ellipses", 7, 3, 1, 0.0, &tr, &va));
  hn_dataset_class_counts(&tr, counts);
  CHECK(tr.n == 7 && va.n == 3 && counts[0] == 4 && counts[1] == 3, "ellipses 7 / 3");
  hn_dataset_free(&tr);
  hn_dataset_free(&va);

  /* swissroll */
  CHECK_OK(hn_datagen("swissroll", 0, 0, 1, 0.0, &tr, &va));
  CHECK(tr.n == 513 && va.n == 513, "swissroll 513 + 513");
  hn_dataset_class_counts(&tr, counts);
  CHECK(counts[0] == 257 && counts[1] == 256, "swissroll train classes %lld %lld", (long long)counts[0],
        (long long)counts[1]);
  hn_dataset_class_counts(&va, counts);
  CHECK(counts[0] == 256 && counts[1] == 257, "swissroll val classes");
  CHECK(tr.X[0] == 0.0f && tr.X[1] == 0.0f && tr.y[0] == 0, "first point at the origin");
  CHECK(fabs(va.X[2 * 512] - 1.2) < 1e-6 && fabs(va.X[2 * 512 + 1]) < 1e-5 && va.y[512] == 1, "last point (1.2, 0)");
  int radius_ok = 1;
  for (int64_t i = 0; i < tr.n; i++) {
    double r = hypot(tr.X[2 * i], tr.X[2 * i + 1]);
    radius_ok &= tr.y[i] == 0 ? r <= 1 + 1e-6 : r >= 0.2 - 1e-6 && r <= 1.2 + 1e-6;
  }
  CHECK(radius_ok, "swissroll radii");
  hn_dataset_free(&tr);
  hn_dataset_free(&va);
  CHECK_FAIL(hn_datagen("swissroll", 100, 0, 1, 0.0, &tr, &va), HN_EINVAL, "fixed size");
  CHECK_OK(hn_datagen("swissroll", 0, 0, 1, 0.05, &tr, &va));
  CHECK(tr.X[0] != 0.0f, "noise applies to swissroll");
  hn_dataset_free(&tr);
  hn_dataset_free(&va);

  /* peaks */
  double zmin = INFINITY, zmax = -INFINITY;
  for (int i = 0; i < 1001; i++)
    for (int j = 0; j < 1001; j++) {
      double z = peaks_z(-3 + 6.0 * i / 1000, -3 + 6.0 * j / 1000);
      zmin = fmin(zmin, z);
      zmax = fmax(zmax, z);
    }
  CHECK(fabs(zmin + 6.55) < 0.01 && fabs(zmax - 8.11) < 0.01, "peaks range %g %g", zmin, zmax);
  CHECK_OK(hn_datagen("peaks", 0, 0, 3, 0.0, &tr, &va));
  CHECK(tr.n == 8000 && va.n == 2000 && tr.n_classes == 5, "peaks defaults");
  hn_dataset_class_counts(&tr, counts);
  int balanced = 1;
  for (int c = 0; c < 5; c++)
    balanced &= counts[c] == 1600;
  CHECK(balanced, "peaks balanced");
  int bands_ok = 1, in_square = 1;
  for (int64_t i = 0; i < tr.n; i++) {
    double x = tr.X[2 * i], y = tr.X[2 * i + 1];
    in_square &= fabs(x) <= 3 && fabs(y) <= 3;
    double t = (peaks_z(x, y) - zmin) / (zmax - zmin) * 5;
    int band = t < 0 ? 0 : t >= 5 ? 4 : (int)t;
    /* float rounding of the stored point may move it across a band edge: allow 1e-4 */
    if (band != tr.y[i]) {
      double t2 = (peaks_z(x, y) - zmin) / (zmax - zmin) * 5;
      bands_ok &= fabs(t2 - round(t2)) < 1e-4;
    }
  }
  CHECK(bands_ok && in_square, "peaks labels are the bands of z");
  hn_dataset_free(&tr);
  hn_dataset_free(&va);
  CHECK_OK(hn_datagen("peaks", 103, 5, 3, 0.0, &tr, &va));
  hn_dataset_class_counts(&tr, counts);
  CHECK(counts[0] == 21 && counts[2] == 21 && counts[3] == 20 && counts[4] == 20, "peaks 103 split");
  hn_dataset_free(&tr);
  hn_dataset_free(&va);

  CHECK_FAIL(hn_datagen("circles", 0, 0, 1, 0.0, &tr, &va), HN_EINVAL, "unknown data set kind 'circles'");
  CHECK_FAIL(hn_datagen("peaks", 0, 0, 1, -1.0, &tr, &va), HN_EINVAL, "noise");
  CHECK(hn_datagen_fixed_size("swissroll") == 1 && hn_datagen_fixed_size("peaks") == 0 &&
            hn_datagen_fixed_size("x") == -1,
        "fixed size query");
}

/* ---------------------------------------------------------------------------------------- */
/* CSV                                                                                       */

static int csv(const char *text, const hn_csv_options *opt, hn_dataset *ds) {
  write_text(tmp("in.csv"), text);
  return hn_import_csv(tmp("in.csv"), opt, ds);
}

static void test_csv(void) {
  hn_csv_options opt;
  hn_csv_options_default(&opt);
  hn_dataset ds;

  CHECK_OK(csv("a,b,label\n1,2,0\n3.5,-4e2,1\n", &opt, &ds));
  CHECK(ds.n == 2 && ds.n_features == 2 && ds.n_classes == 2 && ds.ndim_sample == 1, "header auto-detected");
  CHECK(ds.X[0] == 1 && ds.X[1] == 2 && ds.X[2] == 3.5f && ds.X[3] == -400 && ds.y[0] == 0 && ds.y[1] == 1,
        "values");
  hn_dataset_free(&ds);

  /* BOM, CRLF, blank lines, blanks around cells, quotes, label first, ';' */
  opt.label_column = 0;
  opt.delimiter = ';';
  CHECK_OK(csv("\xEF\xBB\xBF"
               "2; 1.5 ;\"2.5\"\r\n\r\n  \n1;\"-1\";  3 \r\n",
               &opt, &ds));
  CHECK(ds.n == 2 && ds.n_features == 2 && ds.y[0] == 2 && ds.y[1] == 1 && ds.X[0] == 1.5f && ds.X[1] == 2.5f &&
            ds.X[2] == -1 && ds.X[3] == 3 && ds.n_classes == 3,
        "BOM/CRLF/quotes/label first");
  hn_dataset_free(&ds);

  /* runs of blanks, label in the middle (-2), integer-valued float labels */
  hn_csv_options_default(&opt);
  opt.delimiter = ' ';
  opt.label_column = -2;
  CHECK_OK(csv("  1   4.0   2\n3\t1\t4\n", &opt, &ds));
  CHECK(ds.n == 2 && ds.n_features == 2 && ds.y[0] == 4 && ds.y[1] == 1 && ds.X[1] == 2 && ds.X[3] == 4, "blanks");
  hn_dataset_free(&ds);

  /* n_classes given: stored, and labels must be below it */
  hn_csv_options_default(&opt);
  opt.n_classes = 10;
  CHECK_OK(csv("1,0\n2,1\n", &opt, &ds));
  CHECK(ds.n_classes == 10, "n_classes option stored");
  hn_dataset_free(&ds);
  CHECK_FAIL(csv("1,0\n2,10\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 2: label 10 is out of range 0..9");

  /* errors, each with FILE:LINE and the column */
  hn_csv_options_default(&opt);
  CHECK_FAIL(csv("1,2,0\n\n3,4\n", &opt, &ds), HN_EFORMAT, "in.csv:3: 2 columns, expected 3 (as on line 1)");
  CHECK_FAIL(csv("1,2,0\n3,x,1\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 2: 'x' is not a number");
  CHECK_FAIL(csv("1,2,0\n3,,1\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 2: empty cell");
  CHECK_FAIL(csv("1,2,0\n3,nan,1\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 2: 'nan' is not a finite number");
  CHECK_FAIL(csv("1,2,0\n3,1e39,1\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 2: 1e39 is beyond the float32");
  CHECK_FAIL(csv("1,2,0\n3,4,-1\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 3: label '-1' is not a non-negative");
  CHECK_FAIL(csv("1,2,0\n3,4,1.5\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 3: label '1.5'");
  CHECK_FAIL(csv("1,2,0\n3,4,cat\n", &opt, &ds), HN_EFORMAT, "in.csv:2: column 3: label 'cat'");
  CHECK_FAIL(csv("", &opt, &ds), HN_EFORMAT, "no data rows (the file is empty)");
  CHECK_FAIL(csv("\n\n", &opt, &ds), HN_EFORMAT, "no data rows");
  CHECK_FAIL(csv("a,b,c\n", &opt, &ds), HN_EFORMAT, "only a header line");
  CHECK_FAIL(csv("1;2;3\n", &opt, &ds), HN_EFORMAT, "in.csv:1: only one column");
  CHECK_FAIL(csv("1,\"2,0\n", &opt, &ds), HN_EFORMAT, "in.csv:1: column 2: unterminated quote");
  CHECK_FAIL(csv("a,b,c\n1,2,0\nx,y,z\n", &opt, &ds), HN_EFORMAT, "in.csv:3: column 1: 'x' is not a number");
  opt.header = HN_CSV_HEADER_NO;
  CHECK_FAIL(csv("a,b,c\n1,2,0\n", &opt, &ds), HN_EFORMAT, "in.csv:1: column 1: 'a' is not a number");
  opt.header = HN_CSV_HEADER_YES;
  CHECK_OK(csv("5,6,1\n1,2,0\n", &opt, &ds));
  CHECK(ds.n == 1 && ds.X[0] == 1, "header yes skips a numeric first line");
  hn_dataset_free(&ds);
  CHECK_FAIL(csv("a,b\n1,2,0\n", &opt, &ds), HN_EFORMAT, "in.csv:2: 3 columns, expected 2 (as on line 1)");
  hn_csv_options_default(&opt);
  opt.label_column = 3;
  CHECK_FAIL(csv("1,2,0\n", &opt, &ds), HN_EINVAL, "label column 3 is outside the file's 3 columns");
  opt.label_column = -4;
  CHECK_FAIL(csv("1,2,0\n", &opt, &ds), HN_EINVAL, "label column -4");
  CHECK_FAIL(hn_import_csv(tmp("missing.csv"), &opt, &ds), HN_EIO, "missing.csv");
  CHECK(ds.X == NULL && ds.n == 0, "failed import leaves an empty data set");

  /* text labels: sorted distinct values become classes */
  hn_csv_options_default(&opt);
  opt.text_labels = 1;
  hn_label_names names;
  write_text(tmp("in.csv"), "x,animal\n1,dog\n2,cat\n3,ant\n4,dog\n");
  CHECK_OK(hn_import_csv_names(tmp("in.csv"), &opt, &ds, &names));
  CHECK(ds.n == 4 && ds.n_classes == 3 && ds.y[0] == 2 && ds.y[1] == 1 && ds.y[2] == 0 && ds.y[3] == 2,
        "text labels mapped in sorted order");
  CHECK(names.count == 3 && strcmp(names.name[0], "ant") == 0 && strcmp(names.name[2], "dog") == 0, "names");
  hn_label_names_free(&names);
  hn_dataset_free(&ds);
  opt.n_classes = 2;
  CHECK_FAIL(hn_import_csv_names(tmp("in.csv"), &opt, &ds, &names), HN_EFORMAT, "3 distinct labels");
  CHECK(names.count == 0 && names.name == NULL, "no names on failure");
}

/* ---------------------------------------------------------------------------------------- */
/* IDX                                                                                       */

static size_t idx_bytes(unsigned char *buf, uint32_t magic, int ndims, const uint32_t *dims, const unsigned char *data,
                        size_t len) {
  size_t k = 0;
  for (int s = 24; s >= 0; s -= 8)
    buf[k++] = (unsigned char)(magic >> s);
  for (int d = 0; d < ndims; d++)
    for (int s = 24; s >= 0; s -= 8)
      buf[k++] = (unsigned char)(dims[d] >> s);
  memcpy(buf + k, data, len);
  return k + len;
}

static void write_gz(const char *path, const void *data, size_t len) {
  gzFile g = gzopen(path, "wb");
  gzwrite(g, data, (unsigned)len);
  gzclose(g);
}

static void test_idx(void) {
  enum { N = 3, H = 2, W = 4 };
  unsigned char pix[N * H * W], lab[N] = {7, 0, 3};
  for (int k = 0; k < N * H * W; k++)
    pix[k] = (unsigned char)(k * 11);
  pix[5] = 255;
  unsigned char img[64], lbl[32];
  uint32_t idims[3] = {N, H, W}, ldims[1] = {N};
  size_t ni = idx_bytes(img, 0x803, 3, idims, pix, sizeof pix);
  size_t nl = idx_bytes(lbl, 0x801, 1, ldims, lab, sizeof lab);
  write_bytes(tmp("img.idx"), img, ni);
  write_bytes(tmp("lbl.idx"), lbl, nl);
  write_gz(tmp("img.idx.gz"), img, ni);
  write_gz(tmp("lbl.idx.gz"), lbl, nl);

  const char *pairs[3][2] = {{"img.idx", "lbl.idx"}, {"img.idx.gz", "lbl.idx.gz"}, {"img.idx.gz", "lbl.idx"}};
  for (int p = 0; p < 3; p++) {
    hn_dataset ds;
    CHECK_OK(hn_import_idx(tmp(pairs[p][0]), tmp(pairs[p][1]), &ds));
    int ok = ds.n == N && ds.ndim_sample == 3 && ds.sample_dims[0] == 1 && ds.sample_dims[1] == H &&
             ds.sample_dims[2] == W && ds.n_classes == 8;
    for (int k = 0; ok && k < N * H * W; k++)
      ok = fabsf(ds.X[k] - pix[k] / 255.0f) < 1e-7f;
    ok = ok && ds.X[5] == 1.0f && ds.X[0] == 0.0f && ds.y[0] == 7 && ds.y[1] == 0 && ds.y[2] == 3;
    CHECK(ok, "IDX import %s + %s", pairs[p][0], pairs[p][1]);
    hn_dataset_free(&ds);
  }

  hn_dataset ds;
  /* errors */
  CHECK_FAIL(hn_import_idx(tmp("lbl.idx"), tmp("img.idx"), &ds), HN_EFORMAT, "swapped");
  CHECK(has("lbl.idx"), "names the file: %s", hn_errmsg());
  write_text(tmp("junk.idx"), "hello world, not IDX");
  CHECK_FAIL(hn_import_idx(tmp("junk.idx"), tmp("lbl.idx"), &ds), HN_EFORMAT, "not an IDX file");
  unsigned char other[64];
  size_t no = idx_bytes(other, 0x0D03, 3, idims, pix, sizeof pix); /* float data */
  write_bytes(tmp("float.idx"), other, no);
  CHECK_FAIL(hn_import_idx(tmp("float.idx"), tmp("lbl.idx"), &ds), HN_EFORMAT, "data type 0x0d");
  uint32_t ldims2[1] = {N + 1};
  unsigned char lab4[4] = {1, 2, 3, 4};
  nl = idx_bytes(lbl, 0x801, 1, ldims2, lab4, 4);
  write_bytes(tmp("lbl4.idx"), lbl, nl);
  CHECK_FAIL(hn_import_idx(tmp("img.idx"), tmp("lbl4.idx"), &ds), HN_EFORMAT, "has 3 images but");
  CHECK(has("4 labels"), "%s", hn_errmsg());
  write_bytes(tmp("trunc.idx"), img, ni - 5);
  CHECK_FAIL(hn_import_idx(tmp("trunc.idx"), tmp("lbl.idx"), &ds), HN_EFORMAT, "truncated");
  write_bytes(tmp("trunchead.idx"), img, 6);
  CHECK_FAIL(hn_import_idx(tmp("trunchead.idx"), tmp("lbl.idx"), &ds), HN_EFORMAT, "truncated");
  unsigned char longer[80];
  memcpy(longer, img, ni);
  memset(longer + ni, 9, 8);
  write_bytes(tmp("long.idx"), longer, ni + 8);
  CHECK_FAIL(hn_import_idx(tmp("long.idx"), tmp("lbl.idx"), &ds), HN_EFORMAT, "unexpected data after");
  uint32_t zdims[3] = {N, 0, W};
  size_t nz = idx_bytes(other, 0x803, 3, zdims, pix, 0);
  write_bytes(tmp("zero.idx"), other, nz);
  CHECK_FAIL(hn_import_idx(tmp("zero.idx"), tmp("lbl.idx"), &ds), HN_EFORMAT, "dimension 2 is 0");
  uint32_t hdims[3] = {0x7fffffffu, 0x10000u, 0x10000u};
  size_t nh = idx_bytes(other, 0x803, 3, hdims, pix, 0);
  write_bytes(tmp("hugeidx.idx"), other, nh);
  uint32_t hl[1] = {0x7fffffffu};
  nl = idx_bytes(lbl, 0x801, 1, hl, lab, 0);
  write_bytes(tmp("hugelbl.idx"), lbl, nl);
  CHECK_FAIL(hn_import_idx(tmp("hugeidx.idx"), tmp("hugelbl.idx"), &ds), HN_ENOMEM, "GiB");
  /* a gzip file cut short */
  {
    FILE *f = fopen(tmp("img.idx.gz"), "rb");
    unsigned char gz[256];
    size_t len = fread(gz, 1, sizeof gz, f);
    fclose(f);
    write_bytes(tmp("cut.idx.gz"), gz, len - 12);
    CHECK_FAIL(hn_import_idx(tmp("cut.idx.gz"), tmp("lbl.idx"), &ds), HN_EFORMAT, "cut.idx.gz");
  }
  CHECK_FAIL(hn_import_idx(tmp("nothere.idx"), tmp("lbl.idx"), &ds), HN_EIO, "nothere.idx");
  CHECK(ds.X == NULL && ds.n == 0, "failed import leaves an empty data set");
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/hn_test_data_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  size_t base_mem = hn_mem_current(HN_MEM_DATA);
  test_roundtrip();
  test_read_rows();
  test_validation();
  test_format_attribute();
  test_permutation();
  test_datagen();
  test_csv();
  test_idx();
  CHECK(hn_mem_current(HN_MEM_DATA) == base_mem, "all data memory freed (%zu bytes left)",
        hn_mem_current(HN_MEM_DATA) - base_mem);
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return hn_test_finish("test_data");
}
