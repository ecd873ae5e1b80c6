/* datagen.c - synthetic two-dimensional data sets: ellipses, swissroll, peaks (definitions in
 * hamnet/data.h). Every sample is a pure function of (seed, split, sample index), so the
 * loops run in parallel without changing the result. */
#include <math.h>
#include <string.h>

#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/rng.h"

#define MAX_SAMPLES 100000000LL
#define SWISSROLL_POINTS 513
#define PEAKS_CLASSES 5
#define PEAKS_GRID 1001
#define PEAKS_MAX_DRAWS 10000000 /* per sample; the rarest band covers ~1% of the square */

static const double TWO_PI = 6.283185307179586476925286766559;

typedef enum { KIND_ELLIPSES, KIND_SWISSROLL, KIND_PEAKS, KIND_UNKNOWN } kind_id;

static kind_id parse_kind(const char *kind) {
  if (!kind)
    return KIND_UNKNOWN;
  if (strcmp(kind, "ellipses") == 0)
    return KIND_ELLIPSES;
  if (strcmp(kind, "swissroll") == 0)
    return KIND_SWISSROLL;
  if (strcmp(kind, "peaks") == 0)
    return KIND_PEAKS;
  return KIND_UNKNOWN;
}

const char *hn_datagen_kinds(void) { return "ellipses, swissroll, peaks"; }

int hn_datagen_fixed_size(const char *kind) {
  kind_id k = parse_kind(kind);
  return k == KIND_UNKNOWN ? -1 : k == KIND_SWISSROLL;
}

static int alloc_2d(hn_dataset *ds, int64_t n, int n_classes) {
  int64_t dims[1] = {2};
  return hn_dataset_alloc(ds, n, 1, dims, n_classes);
}

/* ---- ellipses --------------------------------------------------------------------------- */

static void gen_ellipses(hn_dataset *ds, uint64_t seed, uint64_t split) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ds->n; i++) {
    hn_rng r;
    hn_rng_init(&r, seed, HN_RNG_DATAGEN, split, (uint64_t)i);
    int c = (int)(i % 2);
    double radius = c + hn_rng_uniform(&r); /* class 0: [0,1), class 1: [1,2) */
    double angle = TWO_PI * hn_rng_uniform(&r);
    ds->X[2 * i] = (float)(radius * cos(angle));
    ds->X[2 * i + 1] = (float)(0.4 * radius * sin(angle));
    ds->y[i] = c;
  }
}

/* ---- swissroll -------------------------------------------------------------------------- */

/* Point k of the 1026 (class 0: k < 513, then class 1) of the Swiss roll. */
static void swissroll_point(int k, double *x, double *y, int *c) {
  const int m = SWISSROLL_POINTS;
  *c = k / m;
  int j = k % m;
  double t = (double)j / (m - 1);
  double a = 2.0 * TWO_PI * t; /* linspace(0, 4pi, 513) */
  double r = *c == 0 ? t : 0.2 + t; /* linspace(0, 1) or linspace(0.2, 1.2) */
  *x = r * cos(a);
  *y = r * sin(a);
}

static void gen_swissroll(hn_dataset *ds, int split) {
  for (int64_t i = 0; i < ds->n; i++) {
    double x, y;
    int c;
    swissroll_point((int)(2 * i + split), &x, &y, &c); /* even positions train, odd validate */
    ds->X[2 * i] = (float)x;
    ds->X[2 * i + 1] = (float)y;
    ds->y[i] = c;
  }
}

/* ---- peaks ------------------------------------------------------------------------------ */

static double peaks(double x, double y) {
  return 3.0 * (1.0 - x) * (1.0 - x) * exp(-x * x - (y + 1.0) * (y + 1.0)) -
         10.0 * (x / 5.0 - x * x * x - pow(y, 5)) * exp(-x * x - y * y) - exp(-(x + 1.0) * (x + 1.0) - y * y) / 3.0;
}

static void peaks_range(double *zmin, double *zmax) {
  double lo = INFINITY, hi = -INFINITY;
#pragma omp parallel for reduction(min : lo) reduction(max : hi) schedule(static)
  for (int i = 0; i < PEAKS_GRID; i++) {
    double x = -3.0 + 6.0 * i / (PEAKS_GRID - 1);
    for (int j = 0; j < PEAKS_GRID; j++) {
      double z = peaks(x, -3.0 + 6.0 * j / (PEAKS_GRID - 1));
      lo = z < lo ? z : lo;
      hi = z > hi ? z : hi;
    }
  }
  *zmin = lo;
  *zmax = hi;
}

static int peaks_band(double z, double zmin, double zmax) {
  int b = (int)floor((z - zmin) / (zmax - zmin) * PEAKS_CLASSES);
  return b < 0 ? 0 : b >= PEAKS_CLASSES ? PEAKS_CLASSES - 1 : b;
}

static int gen_peaks(hn_dataset *ds, uint64_t seed, uint64_t split, double zmin, double zmax) {
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 256) reduction(| : failed)
  for (int64_t i = 0; i < ds->n; i++) {
    hn_rng r;
    hn_rng_init(&r, seed, HN_RNG_DATAGEN, split, (uint64_t)i);
    int c = (int)(i % PEAKS_CLASSES);
    int found = 0;
    for (long draw = 0; draw < PEAKS_MAX_DRAWS && !found; draw++) {
      double x = -3.0 + 6.0 * hn_rng_uniform(&r);
      double y = -3.0 + 6.0 * hn_rng_uniform(&r);
      if (peaks_band(peaks(x, y), zmin, zmax) == c) {
        ds->X[2 * i] = (float)x;
        ds->X[2 * i + 1] = (float)y;
        found = 1;
      }
    }
    ds->y[i] = c;
    failed |= !found;
  }
  if (failed)
    return hn_fail(HN_EINTERNAL, "peaks: no point found for a class after %d draws", PEAKS_MAX_DRAWS);
  return HN_OK;
}

/* ---- noise and the entry point ---------------------------------------------------------- */

static void add_noise(hn_dataset *ds, uint64_t seed, uint64_t split, double noise) {
  if (noise <= 0.0)
    return;
  const int64_t F = ds->n_features;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ds->n; i++) {
    hn_rng r;
    hn_rng_init(&r, seed, HN_RNG_NOISE, split, (uint64_t)i);
    for (int64_t j = 0; j < F; j++)
      ds->X[i * F + j] = (float)((double)ds->X[i * F + j] + noise * hn_rng_normal(&r));
  }
}

int hn_datagen(const char *kind, int64_t n_train, int64_t n_val, uint64_t seed, double noise, hn_dataset *train,
               hn_dataset *val) {
  memset(train, 0, sizeof *train);
  memset(val, 0, sizeof *val);
  kind_id k = parse_kind(kind);
  if (k == KIND_UNKNOWN)
    return hn_fail(HN_EINVAL, "unknown data set kind '%s' (known: %s)", kind ? kind : "(null)", hn_datagen_kinds());
  if (!(noise >= 0.0) || !isfinite(noise))
    return hn_fail(HN_EINVAL, "noise must be a finite number >= 0, not %g", noise);
  if (n_train > MAX_SAMPLES || n_val > MAX_SAMPLES)
    return hn_fail(HN_EINVAL, "%s: at most %lld samples per set", kind, MAX_SAMPLES);
  int n_classes = 2, status = HN_OK;
  switch (k) {
  case KIND_ELLIPSES:
    n_train = n_train > 0 ? n_train : 1000;
    n_val = n_val > 0 ? n_val : 1000;
    break;
  case KIND_SWISSROLL:
    if (n_train > 0 || n_val > 0)
      return hn_fail(HN_EINVAL, "swissroll has a fixed size (%d training + %d validation points, the "
                     "alternate points of two 513-point spirals); do not give a sample count",
                     SWISSROLL_POINTS, SWISSROLL_POINTS);
    n_train = n_val = SWISSROLL_POINTS;
    break;
  case KIND_PEAKS:
    n_train = n_train > 0 ? n_train : 8000;
    n_val = n_val > 0 ? n_val : 2000;
    n_classes = PEAKS_CLASSES;
    break;
  default: break;
  }
  if ((status = alloc_2d(train, n_train, n_classes)) != HN_OK || (status = alloc_2d(val, n_val, n_classes)) != HN_OK)
    goto fail;
  hn_dataset *sets[2] = {train, val};
  double zmin = 0, zmax = 0;
  if (k == KIND_PEAKS)
    peaks_range(&zmin, &zmax);
  for (int s = 0; s < 2; s++) {
    switch (k) {
    case KIND_ELLIPSES: gen_ellipses(sets[s], seed, (uint64_t)s); break;
    case KIND_SWISSROLL: gen_swissroll(sets[s], s); break;
    case KIND_PEAKS: status = gen_peaks(sets[s], seed, (uint64_t)s, zmin, zmax); break;
    default: break;
    }
    if (status != HN_OK)
      goto fail;
    add_noise(sets[s], seed, (uint64_t)s, noise);
  }
  return HN_OK;
fail:
  hn_dataset_free(train);
  hn_dataset_free(val);
  return status;
}
