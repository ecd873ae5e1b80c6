/* dataset.c - in-memory data sets: allocation, validation, class counts, shuffling and
 * subsets (see hamnet/data.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"
#include "hamnet/rng.h"

int hn_data_check_shape(const char *where, int64_t n, int ndim_sample, const int64_t *dims, int64_t *n_features,
                        int bad_status) {
  if (ndim_sample != 1 && ndim_sample != 3)
    return hn_fail(bad_status, "%s: a sample must have 1 dimension [F] or 3 [C, H, W], not %d", where,
                   ndim_sample);
  if (n < 0)
    return hn_fail(bad_status, "%s: negative number of samples %lld", where, (long long)n);
  const int64_t max_elems = HN_DATA_MAX_BYTES / (int64_t)sizeof(float);
  int64_t f = 1;
  for (int k = 0; k < ndim_sample; k++) {
    if (dims[k] < 1)
      return hn_fail(bad_status, "%s: sample dimension %d is %lld (every dimension must be >= 1)", where, k + 1, (long long)dims[k]);
    if (dims[k] > max_elems || f > max_elems / dims[k])
      return hn_fail(HN_ENOMEM, "%s: one sample has more than %lld values (dims %lld x ...); "
                     "the limit is %lld GiB per data set (HN_DATA_MAX_BYTES)", where,
                     (long long)max_elems, (long long)dims[k], (long long)(HN_DATA_MAX_BYTES >> 30));
    f *= dims[k];
  }
  if (n > 0 && n > max_elems / f)
    return hn_fail(HN_ENOMEM, "%s: %lld samples x %lld features x 4 bytes = %.4g GiB is more than "
                   "the %lld GiB limit per data set (HN_DATA_MAX_BYTES); split the file or use a "
                   "fraction of it", where, (long long)n, (long long)f,
                   (double)n * (double)f * 4.0 / 1073741824.0, (long long)(HN_DATA_MAX_BYTES >> 30));
  *n_features = f;
  return HN_OK;
}

int hn_dataset_alloc(hn_dataset *ds, int64_t n, int ndim_sample, const int64_t *dims, int n_classes) {
  memset(ds, 0, sizeof *ds);
  if (!dims)
    return hn_fail(HN_EINVAL, "hn_dataset_alloc: no sample dimensions given");
  int64_t f = 0;
  HN_TRY(hn_data_check_shape("data set", n, ndim_sample, dims, &f, HN_EINVAL));
  if (n_classes < 0 || n_classes > HN_DATA_MAX_CLASSES)
    return hn_fail(HN_EINVAL, "data set: n_classes = %d is outside 0..%d", n_classes, HN_DATA_MAX_CLASSES);
  ds->n = n;
  ds->ndim_sample = ndim_sample;
  ds->sample_dims[0] = dims[0];
  ds->sample_dims[1] = ndim_sample == 3 ? dims[1] : 1;
  ds->sample_dims[2] = ndim_sample == 3 ? dims[2] : 1;
  ds->n_features = f;
  ds->n_classes = n_classes;
  if (n == 0)
    return HN_OK;
  ds->X = hn_alloc((size_t)n * (size_t)f, sizeof(float), HN_MEM_DATA, "data set features X");
  ds->y = ds->X ? hn_alloc((size_t)n, sizeof(int32_t), HN_MEM_DATA, "data set labels y") : NULL;
  if (!ds->X || !ds->y) {
    hn_free(ds->X);
    memset(ds, 0, sizeof *ds);
    return HN_ENOMEM;
  }
  return HN_OK;
}

void hn_dataset_free(hn_dataset *ds) {
  if (!ds)
    return;
  hn_free(ds->X);
  hn_free(ds->y);
  memset(ds, 0, sizeof *ds);
}

int hn_data_check_block(const char *source, const float *X, const int32_t *y, int64_t count,
                        int ndim_sample, const int64_t *sample_dims, int64_t n_features,
                        int n_classes, int n_classes_from_attr, const int64_t *rows, int64_t base) {
  for (int64_t i = 0; i < count; i++) {
    long long row = (long long)(rows ? rows[i] : base + i);
    int32_t label = y[i];
    if (label < 0)
      return hn_fail(HN_EFORMAT, "%s: /y[%lld] = %d: labels must be 0..%d (non-negative)", source, row,
                     (int)label, n_classes - 1);
    if (label >= n_classes) {
      if (n_classes_from_attr)
        return hn_fail(HN_EFORMAT, "%s: /y[%lld] = %d is out of range 0..%d (n_classes = %d from the "
                       "n_classes attribute; fix the label or the attribute)", source, row, (int)label,
                       n_classes - 1, n_classes);
      return hn_fail(HN_EFORMAT, "%s: /y[%lld] = %d is out of range 0..%d (n_classes = %d)", source, row,
                     (int)label, n_classes - 1, n_classes);
    }
    const float *x = X + i * n_features;
    for (int64_t j = 0; j < n_features; j++) {
      if (isfinite(x[j]))
        continue;
      if (ndim_sample == 3) {
        int64_t hw = sample_dims[1] * sample_dims[2];
        return hn_fail(HN_EFORMAT, "%s: /X[%lld, %lld, %lld, %lld] = %g is not finite (fix or drop sample %lld)",
                       source, row, (long long)(j / hw), (long long)(j % hw / sample_dims[2]),
                       (long long)(j % sample_dims[2]), (double)x[j], row);
      }
      return hn_fail(HN_EFORMAT, "%s: /X[%lld, %lld] = %g is not finite (fix or drop sample %lld)", source, row,
                     (long long)j, (double)x[j], row);
    }
  }
  return HN_OK;
}

int hn_dataset_validate(const hn_dataset *ds, const char *source) {
  if (!source)
    source = "data set";
  if (ds->n_classes < 1 || ds->n_classes > HN_DATA_MAX_CLASSES)
    return hn_fail(HN_EFORMAT, "%s: n_classes = %d is outside 1..%d", source, ds->n_classes,
                   HN_DATA_MAX_CLASSES);
  if (ds->n > 0 && (!ds->X || !ds->y))
    return hn_fail(HN_EINVAL, "%s: data set has %lld samples but no buffers", source, (long long)ds->n);
  return hn_data_check_block(source, ds->X, ds->y, ds->n, ds->ndim_sample, ds->sample_dims, ds->n_features,
                             ds->n_classes, 0, NULL, 0);
}

void hn_dataset_class_counts(const hn_dataset *ds, int64_t *counts) {
  for (int c = 0; c < ds->n_classes; c++)
    counts[c] = 0;
  for (int64_t i = 0; i < ds->n; i++)
    if (ds->y[i] >= 0 && ds->y[i] < ds->n_classes)
      counts[ds->y[i]]++;
}

/* ---------------------------------------------------------------------------------------- */

void hn_data_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *perm) {
  if (n <= 0)
    return;
  for (int64_t i = 0; i < n; i++)
    perm[i] = i;
  hn_rng r;
  hn_rng_init(&r, seed, HN_RNG_SHUFFLE, epoch, 0);
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)hn_rng_below(&r, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int64_t subset_size(double fraction, int64_t n) {
  double k = floor(fraction * (double)n + 0.5);
  if (k < 1)
    k = 1;
  if (k > (double)n)
    k = (double)n;
  return (int64_t)k;
}

static int check_fraction(double fraction, int64_t n) {
  if (!(fraction > 0.0 && fraction <= 1.0))
    return hn_fail(HN_EINVAL, "data fraction %g is outside (0, 1]", fraction);
  if (n < 1)
    return hn_fail(HN_EINVAL, "data fraction of an empty data set (n = %lld)", (long long)n);
  return HN_OK;
}

/* Move k randomly chosen entries of a[0..m-1] to its front (partial Fisher-Yates). */
static void partial_shuffle(hn_rng *r, int64_t *a, int64_t m, int64_t k) {
  for (int64_t i = 0; i < k && i < m - 1; i++) {
    int64_t j = i + (int64_t)hn_rng_below(r, (uint64_t)(m - i));
    int64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

int hn_data_fraction_subset(uint64_t seed, int64_t n, double fraction, int64_t **rows, int64_t *count) {
  *rows = NULL;
  *count = 0;
  HN_TRY(check_fraction(fraction, n));
  int64_t k = subset_size(fraction, n);
  int64_t *all = hn_alloc((size_t)n, sizeof(int64_t), HN_MEM_DATA, "data fraction rows");
  if (!all)
    return HN_ENOMEM;
  for (int64_t i = 0; i < n; i++)
    all[i] = i;
  if (k < n) {
    hn_rng r;
    hn_rng_init(&r, seed, HN_RNG_FRACTION, 0, 0);
    partial_shuffle(&r, all, n, k);
    qsort(all, (size_t)k, sizeof(int64_t), cmp_i64);
  }
  int64_t *out = hn_alloc((size_t)k, sizeof(int64_t), HN_MEM_DATA, "data fraction rows");
  if (!out) {
    hn_free(all);
    return HN_ENOMEM;
  }
  memcpy(out, all, (size_t)k * sizeof(int64_t));
  hn_free(all);
  *rows = out;
  *count = k;
  return HN_OK;
}

int hn_data_fraction_subset_stratified(uint64_t seed, const int32_t *y, int64_t n, int n_classes,
                                       double fraction, int64_t **rows, int64_t *count) {
  *rows = NULL;
  *count = 0;
  HN_TRY(check_fraction(fraction, n));
  if (n_classes < 1 || n_classes > HN_DATA_MAX_CLASSES)
    return hn_fail(HN_EINVAL, "stratified subset: n_classes = %d is outside 1..%d", n_classes,
                   HN_DATA_MAX_CLASSES);
  for (int64_t i = 0; i < n; i++)
    if (y[i] < 0 || y[i] >= n_classes)
      return hn_fail(HN_EINVAL, "stratified subset: label y[%lld] = %d outside 0..%d", (long long)i,
                     (int)y[i], n_classes - 1);
  /* Bucket the rows by class (counting sort keeps each class's rows ascending). */
  int64_t *start = hn_alloc((size_t)n_classes + 1, sizeof(int64_t), HN_MEM_DATA, "class offsets");
  int64_t *by_class = start ? hn_alloc((size_t)n, sizeof(int64_t), HN_MEM_DATA, "rows by class") : NULL;
  int64_t *fill = by_class ? hn_alloc((size_t)n_classes, sizeof(int64_t), HN_MEM_DATA, "class fill") : NULL;
  int64_t *out = fill ? hn_alloc((size_t)n, sizeof(int64_t), HN_MEM_DATA, "data fraction rows") : NULL;
  if (!out) {
    hn_free(start);
    hn_free(by_class);
    hn_free(fill);
    return HN_ENOMEM;
  }
  for (int64_t i = 0; i < n; i++)
    start[y[i] + 1]++;
  for (int c = 0; c < n_classes; c++)
    start[c + 1] += start[c];
  for (int64_t i = 0; i < n; i++)
    by_class[start[y[i]] + fill[y[i]]++] = i;
  int64_t k_total = 0;
  for (int c = 0; c < n_classes; c++) {
    int64_t m = start[c + 1] - start[c];
    if (m == 0)
      continue;
    int64_t k = subset_size(fraction, m);
    hn_rng r;
    hn_rng_init(&r, seed, HN_RNG_FRACTION, 0, 1 + (uint64_t)c);
    if (k < m)
      partial_shuffle(&r, by_class + start[c], m, k);
    memcpy(out + k_total, by_class + start[c], (size_t)k * sizeof(int64_t));
    k_total += k;
  }
  qsort(out, (size_t)k_total, sizeof(int64_t), cmp_i64);
  hn_free(start);
  hn_free(by_class);
  hn_free(fill);
  *rows = out;
  *count = k_total;
  return HN_OK;
}
