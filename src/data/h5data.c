/* h5data.c - data set files in HDF5: write, probe, read (whole / selected rows / labels),
 * streaming statistics, the `format` attribute (see hamnet/data.h for the format).
 *
 * Every public function silences HDF5's automatic error printing for its duration (restoring
 * the caller's setting afterwards) and turns failures into hn_fail messages. All handles live
 * in one struct per call and are closed on every path by one cleanup function. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/h5guard.h"
#include "hamnet/mem.h"
#include "hamnet/parallel.h"
#include "core/h5util.h"

#define HN_H5_CHUNK_BYTES (1u << 20)       /* target chunk size when writing */
#define HN_H5_CACHE_BYTES (32u << 20)      /* chunk cache per dataset when reading */
#define HN_H5_CACHE_SLOTS 12421            /* prime, ~100x the chunks that fit in the cache */
#define HN_H5_RUNS_PER_READ 256            /* hyperslab runs OR-ed into one H5Dread */
#define HN_H5_BLOCK_BYTES (64u << 20)      /* scratch / streaming block size */
#define HN_H5_WINDOW_BYTES (4u << 20)      /* file rows looked at together by read_sorted_rows */

/* ---------------------------------------------------------------------------------------- */
/* HDF5 error handling                                                                       */

/* The helpers of core/h5util.h: hn_h5_quiet_on/off, hn_h5_detail, hn_h5_close, hn_h5_type_name. */

/* ---------------------------------------------------------------------------------------- */
/* Opening and probing                                                                       */

/* The checks that need no HDF5 handle, with clear messages for the common mistakes: the file
 * exists, is not a directory, is readable and is HDF5. */
static int check_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return hn_fail(HN_EIO, "cannot open %s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return hn_fail(HN_EIO, "%s is a directory, not a data file", path);
  FILE *probe = fopen(path, "rb");
  if (!probe)
    return hn_fail(HN_EIO, "cannot open %s: %s", path, strerror(errno));
  fclose(probe);
  hn_h5_err d;
  htri_t is = H5Fis_hdf5(path);
  if (is == 0)
    return hn_fail(HN_EFORMAT, "%s: not an HDF5 file (hamnet data sets are HDF5 files with /X and /y; "
                   "convert CSV or IDX data with 'hamnet import')", path);
  if (is < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot be read as HDF5 - truncated or corrupted?%s", path, hn_h5_detail(&d));
  return HN_OK;
}

/* Open a checked file read-only. comm == MPI_COMM_NULL: the POSIX (sec2) driver. Otherwise the
 * MPI-IO driver on comm: collective - every rank of comm must call it (and later close the
 * file, also collectively). */
static int open_h5(const char *path, MPI_Comm comm, hid_t *file) {
  hn_h5_err d;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && comm != MPI_COMM_NULL)
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
#if H5_VERSION_GE(1, 10, 7)
  else if (fapl >= 0)
    H5Pset_file_locking(fapl, 1, 1); /* shared lock, but work on file systems without locks */
#endif
  *file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
  int status = HN_OK;
  if (*file < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot open as HDF5%s - truncated or corrupted file?%s", path,
                     comm != MPI_COMM_NULL ? " with the MPI-IO driver" : "", hn_h5_detail(&d));
  hn_h5_close(&fapl);
  return status;
}

/* Open an existing file read-only (POSIX driver). */
static int open_file(const char *path, hid_t *file) {
  *file = H5I_INVALID_HID;
  HN_TRY(check_file(path));
  return open_h5(path, MPI_COMM_NULL, file);
}

typedef struct {
  hid_t file, dx, dy;
} h5_set;

static void close_set(h5_set *h) {
  hn_h5_close(&h->dy);
  hn_h5_close(&h->dx);
  hn_h5_close(&h->file);
}

static int open_dataset(const char *path, hid_t file, const char *name, const char *expect, hid_t *out) {
  hn_h5_err d;
  htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
  if (exists == 0)
    return hn_fail(HN_EFORMAT, "%s: missing dataset %s (expected %s)", path, name, expect);
  if (exists < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot look up %s%s", path, name, hn_h5_detail(&d));
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  if (dapl >= 0)
    H5Pset_chunk_cache(dapl, HN_H5_CACHE_SLOTS, HN_H5_CACHE_BYTES, 1.0);
  *out = H5Dopen2(file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
  int status = HN_OK;
  if (*out < 0)
    status = hn_fail(HN_EFORMAT, "%s: %s is not a dataset (expected %s)%s", path, name, expect, hn_h5_detail(&d));
  hn_h5_close(&dapl);
  return status;
}

/* Class, rank and dims of a dataset; dims converted to int64 (refusing > INT64_MAX). */
static int dataset_shape(const char *path, const char *name, hid_t dset, H5T_class_t *cls, char *tname,
                         int *rank, int64_t *dims) {
  hn_h5_err d;
  hid_t type = H5Dget_type(dset);
  if (type < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot read the type of %s%s", path, name, hn_h5_detail(&d));
  *cls = H5Tget_class(type);
  hn_h5_type_name(type, tname, 16);
  size_t tsize = H5Tget_size(type);
  hn_h5_close(&type);
  if (tsize == 0 || tsize > 16) /* no number type is wider: a damaged header (HDF5 would convert through it) */
    return hn_fail(HN_EFORMAT, "%s: %s has elements of %zu bytes; no integer or floating-point type is that wide "
                   "(a corrupted file?)", path, name, tsize);
  hid_t space = H5Dget_space(dset);
  if (space < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot read the shape of %s%s", path, name, hn_h5_detail(&d));
  int status = HN_OK;
  H5S_class_t sc = H5Sget_simple_extent_type(space);
  *rank = sc == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : 0;
  if (*rank > 4) {
    /* Report the rank; dims are not needed for the error. */
  } else if (*rank > 0) {
    hsize_t hd[4];
    H5Sget_simple_extent_dims(space, hd, NULL);
    for (int k = 0; k < *rank; k++) {
      if (hd[k] > (hsize_t)INT64_MAX) {
        status = hn_fail(HN_EFORMAT, "%s: %s dimension %d = %llu is absurdly large", path, name, k,
                         (unsigned long long)hd[k]);
        break;
      }
      dims[k] = (int64_t)hd[k];
    }
  }
  hn_h5_close(&space);
  return status;
}

static int has_fletcher32(hid_t dset) {
  hid_t dcpl = H5Dget_create_plist(dset);
  if (dcpl < 0)
    return 0;
  int found = 0;
  int nf = H5Pget_nfilters(dcpl);
  for (int i = 0; i < nf; i++) {
    unsigned flags = 0, config = 0;
    size_t nelem = 0;
    char name[64];
    if (H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, sizeof name, name, &config) == H5Z_FILTER_FLETCHER32)
      found = 1;
  }
  hn_h5_close(&dcpl);
  return found;
}

/* The n_classes attribute: *present = 0/1, *value in 1..HN_DATA_MAX_CLASSES. */
static int read_n_classes_attr(const char *path, hid_t file, int *present, int *value) {
  hn_h5_err d;
  *present = 0;
  htri_t exists = H5Aexists(file, "n_classes");
  if (exists < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot look up the n_classes attribute%s", path, hn_h5_detail(&d));
  if (exists == 0)
    return HN_OK;
  hid_t attr = H5Aopen(file, "n_classes", H5P_DEFAULT), type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  int status = HN_OK;
  long long v = 0;
  char tname[16] = "?";
  if (attr < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot open the n_classes attribute%s", path, hn_h5_detail(&d));
    goto done;
  }
  type = H5Aget_type(attr);
  space = H5Aget_space(attr);
  if (type < 0 || space < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot read the n_classes attribute%s", path, hn_h5_detail(&d));
    goto done;
  }
  hn_h5_type_name(type, tname, sizeof tname);
  if (H5Tget_class(type) != H5T_INTEGER) {
    status = hn_fail(HN_EFORMAT, "%s: attribute n_classes has type %s; it must be an integer "
                     "(h5py: f.attrs['n_classes'] = 10)", path, tname);
    goto done;
  }
  if (H5Sget_simple_extent_npoints(space) != 1) {
    status = hn_fail(HN_EFORMAT, "%s: attribute n_classes must be a single integer, it has %lld values",
                     path, (long long)H5Sget_simple_extent_npoints(space));
    goto done;
  }
  if (H5Aread(attr, H5T_NATIVE_LLONG, &v) < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot read the n_classes attribute%s", path, hn_h5_detail(&d));
    goto done;
  }
  if (v < 1 || v > HN_DATA_MAX_CLASSES) {
    status = hn_fail(HN_EFORMAT, "%s: attribute n_classes = %lld is outside 1..%d", path, v, HN_DATA_MAX_CLASSES);
    goto done;
  }
  *present = 1;
  *value = (int)v;
done:
  hn_h5_close(&space);
  hn_h5_close(&type);
  hn_h5_close(&attr);
  return status;
}

static const char *X_EXPECT = "float32 [N, F] or [N, C, H, W]";
static const char *Y_EXPECT = "int32 labels [N]";

/* Open and validate a data set file (see hn_dataset_probe). On success the handles stay open
 * in *h. If the file has no n_classes attribute the labels are read to find it; they are
 * handed back in *labels (hn_alloc'ed, [info->n]) when labels != NULL, else freed.
 * comm != MPI_COMM_NULL: open with the MPI-IO driver (collective; the caller has run
 * check_file and agreed on the outcome). On failure after the open, the file is closed here -
 * for MPI-IO that close is the rank's one collective close of the file. */
static int probe_open_on(const char *path, MPI_Comm comm, hn_dataset_info *info, h5_set *h, int32_t **labels) {
  memset(info, 0, sizeof *info);
  h->file = h->dx = h->dy = H5I_INVALID_HID;
  if (labels)
    *labels = NULL;
  hn_h5_err d;
  int status = comm == MPI_COMM_NULL ? open_file(path, &h->file) : open_h5(path, comm, &h->file);
  if (status != HN_OK)
    return status;
  int rank = 0, yrank = 0;
  int64_t dims[4] = {0, 0, 0, 0}, ydims[4] = {0, 0, 0, 0};
  H5T_class_t cls, ycls;
  int32_t *y = NULL;
  if ((status = open_dataset(path, h->file, "/X", X_EXPECT, &h->dx)) != HN_OK ||
      (status = dataset_shape(path, "/X", h->dx, &cls, info->x_type, &rank, dims)) != HN_OK)
    goto fail;
  if (cls != H5T_FLOAT) {
    status = hn_fail(HN_EFORMAT, "%s: /X has type %s; expected floating point, %s (h5py: X.astype('float32'))",
                     path, info->x_type, X_EXPECT);
    goto fail;
  }
  if (rank != 2 && rank != 4) {
    status = hn_fail(HN_EFORMAT, "%s: /X: expected %s, got rank %d", path, X_EXPECT, rank);
    goto fail;
  }
  if (dims[0] < 1) {
    status = hn_fail(HN_EFORMAT, "%s: /X has no samples (N = 0)", path);
    goto fail;
  }
  info->n = dims[0];
  info->ndim_sample = rank - 1;
  info->sample_dims[0] = dims[1];
  info->sample_dims[1] = rank == 4 ? dims[2] : 1;
  info->sample_dims[2] = rank == 4 ? dims[3] : 1;
  char where[1100];
  snprintf(where, sizeof where, "%.1024s: /X", path);
  if ((status = hn_data_check_shape(where, info->n, info->ndim_sample, info->sample_dims, &info->n_features,
                                    HN_EFORMAT)) != HN_OK)
    goto fail;

  if ((status = open_dataset(path, h->file, "/y", Y_EXPECT, &h->dy)) != HN_OK ||
      (status = dataset_shape(path, "/y", h->dy, &ycls, info->y_type, &yrank, ydims)) != HN_OK)
    goto fail;
  if (ycls != H5T_INTEGER) {
    status = hn_fail(HN_EFORMAT, "%s: /y has type %s; expected integer class labels, %s (h5py: y.astype('int32'))",
                     path, info->y_type, Y_EXPECT);
    goto fail;
  }
  if (yrank != 1) {
    status = hn_fail(HN_EFORMAT, "%s: /y: expected %s, got rank %d", path, Y_EXPECT, yrank);
    goto fail;
  }
  if (ydims[0] != info->n) {
    status = hn_fail(HN_EFORMAT, "%s: /X has %lld samples but /y has %lld labels (they must match)", path,
                     (long long)info->n, (long long)ydims[0]);
    goto fail;
  }
  info->checksummed = has_fletcher32(h->dx) && has_fletcher32(h->dy);
  if ((status = read_n_classes_attr(path, h->file, &info->has_n_classes_attr, &info->n_classes)) != HN_OK)
    goto fail;
  if (!info->has_n_classes_attr) {
    y = hn_alloc((size_t)info->n, sizeof(int32_t), HN_MEM_DATA, "labels /y");
    if (!y) {
      status = hn_fail_context(HN_ENOMEM, "%s", path);
      goto fail;
    }
    if (H5Dread(h->dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) < 0) {
      status = hn_fail(HN_EFORMAT, "%s: cannot read /y%s", path, hn_h5_detail(&d));
      goto fail;
    }
    int32_t max = -1;
    for (int64_t i = 0; i < info->n; i++) {
      if (y[i] < 0) {
        status = hn_fail(HN_EFORMAT, "%s: /y[%lld] = %d: labels must be non-negative", path, (long long)i, (int)y[i]);
        goto fail;
      }
      if (y[i] > max)
        max = y[i];
    }
    if ((int64_t)max + 1 > HN_DATA_MAX_CLASSES) {
      status = hn_fail(HN_EFORMAT, "%s: /y has label %d; at most %d classes are supported", path, (int)max,
                       HN_DATA_MAX_CLASSES);
      goto fail;
    }
    info->n_classes = (int)max + 1;
    if (labels)
      *labels = y;
    else
      hn_free(y);
  }
  return HN_OK;
fail:
  hn_free(y);
  close_set(h);
  return status;
}

static int probe_open(const char *path, hn_dataset_info *info, h5_set *h, int32_t **labels) {
  return probe_open_on(path, MPI_COMM_NULL, info, h, labels);
}

int hn_dataset_probe(const char *path, hn_dataset_info *info) {
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  h5_set h;
  int status = probe_open(path, info, &h, NULL);
  if (status == HN_OK)
    close_set(&h);
  else
    memset(info, 0, sizeof *info);
  hn_h5_quiet_off(&q);
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

/* Read rows [first, first+count) of `dset` (a contiguous block) into buf. The memory space
 * has the file's rank ([count, ...]): HDF5 maps selections of equal shape chunk by chunk,
 * much faster than into a flat 1-D space. */
static int read_range(const char *path, const char *name, hid_t dset, hid_t memtype, int64_t first, int64_t count,
                      void *buf) {
  hn_h5_err d;
  hid_t fspace = H5Dget_space(dset);
  if (fspace < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot read the shape of %s%s", path, name, hn_h5_detail(&d));
  hsize_t dims[4] = {0, 0, 0, 0};
  int rank = H5Sget_simple_extent_ndims(fspace);
  H5Sget_simple_extent_dims(fspace, dims, NULL);
  hsize_t start[4] = {(hsize_t)first, 0, 0, 0}, cnt[4] = {(hsize_t)count, dims[1], dims[2], dims[3]};
  hid_t mspace = H5Screate_simple(rank, cnt, NULL);
  int status = HN_OK;
  if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0 ||
      H5Dread(dset, memtype, mspace, fspace, H5P_DEFAULT, buf) < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot read %s (rows %lld..%lld)%s", path, name, (long long)first,
                     (long long)(first + count - 1), hn_h5_detail(&d));
  hn_h5_close(&mspace);
  hn_h5_close(&fspace);
  return status;
}

/* Read the runs of consecutive rows in u[0..m-1] (increasing) with one H5Dread: a union of
 * hyperslabs (OR-ing costs grow with the runs already selected, so the caller keeps m small). */
static int read_runs(const char *path, const char *name, hid_t dset, hid_t memtype, const int64_t *u, int64_t m,
                     void *buf) {
  hn_h5_err d;
  hid_t fspace = H5Dget_space(dset), mspace = H5I_INVALID_HID;
  if (fspace < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot read the shape of %s%s", path, name, hn_h5_detail(&d));
  hsize_t dims[4] = {0, 0, 0, 0};
  int rank = H5Sget_simple_extent_ndims(fspace);
  H5Sget_simple_extent_dims(fspace, dims, NULL);
  int status = HN_OK;
  H5Sselect_none(fspace);
  for (int64_t i = 0; i < m;) {
    int64_t j = i + 1;
    while (j < m && u[j] == u[j - 1] + 1)
      j++;
    hsize_t start[4] = {(hsize_t)u[i], 0, 0, 0}, count[4] = {(hsize_t)(j - i), dims[1], dims[2], dims[3]};
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_OR, start, NULL, count, NULL) < 0) {
      status = hn_fail(HN_EFORMAT, "%s: cannot select rows of %s%s", path, name, hn_h5_detail(&d));
      goto done;
    }
    i = j;
  }
  hsize_t mdims[4] = {(hsize_t)m, dims[1], dims[2], dims[3]};
  mspace = H5Screate_simple(rank, mdims, NULL);
  if (mspace < 0 || H5Dread(dset, memtype, mspace, fspace, H5P_DEFAULT, buf) < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot read %s (rows %lld..%lld)%s", path, name, (long long)u[0],
                     (long long)u[m - 1], hn_h5_detail(&d));
done:
  hn_h5_close(&mspace);
  hn_h5_close(&fspace);
  return status;
}

/* Read file rows u[0..m-1] (strictly increasing) of `dset` into buf, as m rows of `row_elems`
 * values of `memtype`. The rows are taken window by window (HN_H5_WINDOW_BYTES of file rows):
 *   a long run of consecutive rows is read in one piece straight into buf;
 *   a window with at least 1/4 of its rows requested is read whole into a scratch buffer and
 *     the requested rows are copied out (every chunk of it is touched anyway);
 *   a sparser window is read as a union of hyperslabs, HN_H5_RUNS_PER_READ runs per read.
 * The chunk cache set in open_dataset keeps a chunk decoded (and checksummed) only once when
 * consecutive reads touch it. */
static int read_sorted_rows(const char *path, const char *name, hid_t dset, hid_t memtype, size_t elem_size,
                            int64_t row_elems, const int64_t *u, int64_t m, void *buf) {
  const size_t row_bytes = (size_t)row_elems * elem_size;
  int64_t window = (int64_t)(HN_H5_WINDOW_BYTES / row_bytes);
  if (window < 1)
    window = 1;
  char *out = buf, *scratch = NULL;
  int status = HN_OK;
  int64_t i = 0;
  while (i < m && status == HN_OK) {
    int64_t j = i + 1; /* end of the run starting at i */
    while (j < m && u[j] == u[j - 1] + 1)
      j++;
    int64_t k = j; /* end of the window starting at u[i] */
    while (k < m && u[k] < u[i] + window)
      k++;
    if (k == j) {
      status = read_range(path, name, dset, memtype, u[i], j - i, out + (size_t)i * row_bytes);
      i = j;
      continue;
    }
    int64_t span = u[k - 1] - u[i] + 1;
    if ((k - i) * 4 >= span) {
      if (!scratch && !(scratch = hn_alloc((size_t)window, row_bytes, HN_MEM_DATA, "row window"))) {
        status = hn_fail_context(HN_ENOMEM, "reading %s", path);
        break;
      }
      status = read_range(path, name, dset, memtype, u[i], span, scratch);
      for (int64_t t = i; status == HN_OK && t < k; t++)
        memcpy(out + (size_t)t * row_bytes, scratch + (size_t)(u[t] - u[i]) * row_bytes, row_bytes);
      i = k;
      continue;
    }
    int64_t e = i; /* take up to HN_H5_RUNS_PER_READ runs of the window */
    for (int runs = 0; e < k && runs < HN_H5_RUNS_PER_READ; runs++) {
      e++;
      while (e < k && u[e] == u[e - 1] + 1)
        e++;
    }
    status = read_runs(path, name, dset, memtype, u + i, e - i, out + (size_t)i * row_bytes);
    i = e;
  }
  hn_free(scratch);
  return status;
}

static int alloc_like(hn_dataset *ds, const hn_dataset_info *info, int64_t n, const char *path) {
  int status = hn_dataset_alloc(ds, n, info->ndim_sample, info->sample_dims, info->n_classes);
  if (status != HN_OK)
    hn_fail_context(status, "reading %s", path);
  return status;
}

int hn_dataset_read(const char *path, hn_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hn_h5_err d;
  h5_set h;
  hn_dataset_info info;
  int32_t *labels = NULL;
  int status = probe_open(path, &info, &h, &labels);
  if (status != HN_OK)
    goto out;
  if ((status = alloc_like(ds, &info, info.n, path)) != HN_OK)
    goto close;
  if (H5Dread(h.dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->X) < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot read /X%s", path, hn_h5_detail(&d));
    goto close;
  }
  if (labels)
    memcpy(ds->y, labels, (size_t)info.n * sizeof(int32_t));
  else if (H5Dread(h.dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->y) < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot read /y%s", path, hn_h5_detail(&d));
    goto close;
  }
  status = hn_data_check_block(path, ds->X, ds->y, ds->n, ds->ndim_sample, ds->sample_dims, ds->n_features,
                               ds->n_classes, info.has_n_classes_attr, NULL, 0);
close:
  close_set(&h);
out:
  hn_free(labels);
  if (status != HN_OK)
    hn_dataset_free(ds);
  hn_h5_quiet_off(&q);
  return status;
}

typedef struct {
  int64_t row, pos;
} row_pos;

static int cmp_row_pos(const void *a, const void *b) {
  const row_pos *x = a, *y = b;
  if (x->row != y->row)
    return (x->row > y->row) - (x->row < y->row);
  return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Move row i of X [m][F] (and y) to position pos[i], in place, following the permutation's
 * cycles with two rows of scratch; pos[] is consumed (set to -1). */
static void permute_rows(float *X, int32_t *y, int64_t F, int64_t *pos, int64_t m, float *carry, float *swap) {
  const size_t row = (size_t)F * sizeof(float);
  for (int64_t i = 0; i < m; i++) {
    if (pos[i] < 0)
      continue;
    memcpy(carry, X + i * F, row);
    int32_t ycarry = y[i];
    int64_t cur = i;
    do { /* X[pos[cur]] gets the row that started at cur; carry takes the row it displaces */
      int64_t dst = pos[cur];
      pos[cur] = -1;
      memcpy(swap, X + dst * F, row);
      memcpy(X + dst * F, carry, row);
      memcpy(carry, swap, row);
      int32_t yt = y[dst];
      y[dst] = ycarry;
      ycarry = yt;
      cur = dst;
    } while (cur != i);
  }
}

/* The body of hn_dataset_read_rows on an open, probed file. */
static int read_rows_open(const char *path, const h5_set *h, const hn_dataset_info *info, const int64_t *rows,
                          int64_t count, hn_dataset *ds) {
  row_pos *pairs = NULL;
  int64_t *u = NULL, *pos = NULL;
  float *scratch = NULL;
  int32_t *yu = NULL;
  int status = HN_OK;
  int sorted = 1;
  for (int64_t i = 0; i < count; i++) {
    if (rows[i] < 0 || rows[i] >= info->n)
      return hn_fail(HN_EINVAL, "reading %s: row %lld (entry %lld of the row list) is outside 0..%lld", path,
                     (long long)rows[i], (long long)i, (long long)info->n - 1);
    if (i > 0 && rows[i] <= rows[i - 1])
      sorted = 0;
  }
  if ((status = alloc_like(ds, info, count, path)) != HN_OK || count == 0)
    return status;
  const int64_t F = info->n_features;
  if (sorted) {
    if ((status = read_sorted_rows(path, "/X", h->dx, H5T_NATIVE_FLOAT, sizeof(float), F, rows, count, ds->X)) !=
            HN_OK ||
        (status = read_sorted_rows(path, "/y", h->dy, H5T_NATIVE_INT32, sizeof(int32_t), 1, rows, count, ds->y)) !=
            HN_OK)
      goto out;
  } else {
    /* Sort (row, position) pairs and read the distinct rows in file order. */
    pairs = hn_alloc((size_t)count, sizeof *pairs, HN_MEM_DATA, "row list");
    u = pairs ? hn_alloc((size_t)count, sizeof *u, HN_MEM_DATA, "distinct rows") : NULL;
    if (!u) {
      status = hn_fail_context(HN_ENOMEM, "reading %s", path);
      goto out;
    }
    for (int64_t i = 0; i < count; i++)
      pairs[i] = (row_pos){rows[i], i};
    qsort(pairs, (size_t)count, sizeof *pairs, cmp_row_pos);
    int64_t m = 0;
    for (int64_t i = 0; i < count; i++)
      if (m == 0 || u[m - 1] != pairs[i].row)
        u[m++] = pairs[i].row;
    if (m == count) {
      /* No duplicates (a rank's share of an epoch): read in file order straight into ds, then
       * move every row to its place - no second copy of the data, whatever its size. */
      pos = hn_alloc((size_t)count, sizeof *pos, HN_MEM_DATA, "row positions");
      scratch = pos ? hn_alloc(2 * (size_t)F, sizeof(float), HN_MEM_DATA, "row swap") : NULL;
      if (!scratch) {
        status = hn_fail_context(HN_ENOMEM, "reading %s", path);
        goto out;
      }
      if ((status = read_sorted_rows(path, "/X", h->dx, H5T_NATIVE_FLOAT, sizeof(float), F, u, m, ds->X)) != HN_OK ||
          (status = read_sorted_rows(path, "/y", h->dy, H5T_NATIVE_INT32, sizeof(int32_t), 1, u, m, ds->y)) != HN_OK)
        goto out;
      for (int64_t i = 0; i < count; i++)
        pos[i] = pairs[i].pos;
      permute_rows(ds->X, ds->y, F, pos, count, scratch, scratch + F);
    } else {
      /* Duplicates: read the distinct rows block by block into a scratch buffer and copy each
       * to every position that asked for it. */
      int64_t block = (int64_t)(HN_H5_BLOCK_BYTES / ((size_t)F * sizeof(float)));
      if (block < 1)
        block = 1;
      if (block > m)
        block = m;
      scratch = hn_alloc((size_t)block * (size_t)F, sizeof(float), HN_MEM_DATA, "row scratch");
      yu = scratch ? hn_alloc((size_t)m, sizeof(int32_t), HN_MEM_DATA, "row labels") : NULL;
      if (!yu) {
        status = hn_fail_context(HN_ENOMEM, "reading %s", path);
        goto out;
      }
      if ((status = read_sorted_rows(path, "/y", h->dy, H5T_NATIVE_INT32, sizeof(int32_t), 1, u, m, yu)) != HN_OK)
        goto out;
      int64_t p = 0; /* next pair */
      for (int64_t b0 = 0; b0 < m; b0 += block) {
        int64_t nb = m - b0 < block ? m - b0 : block;
        if ((status = read_sorted_rows(path, "/X", h->dx, H5T_NATIVE_FLOAT, sizeof(float), F, u + b0, nb,
                                       scratch)) != HN_OK)
          goto out;
        for (int64_t ui = b0; ui < b0 + nb; ui++)
          for (; p < count && pairs[p].row == u[ui]; p++) {
            memcpy(ds->X + pairs[p].pos * F, scratch + (ui - b0) * F, (size_t)F * sizeof(float));
            ds->y[pairs[p].pos] = yu[ui];
          }
      }
    }
  }
  status = hn_data_check_block(path, ds->X, ds->y, count, ds->ndim_sample, ds->sample_dims, F, ds->n_classes,
                               info->has_n_classes_attr, rows, 0);
out:
  hn_free(pairs);
  hn_free(u);
  hn_free(pos);
  hn_free(scratch);
  hn_free(yu);
  return status;
}

int hn_dataset_read_rows(const char *path, const int64_t *rows, int64_t count, hn_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (count < 0 || (count > 0 && !rows))
    return hn_fail(HN_EINVAL, "reading %s: bad row list (count %lld)", path, (long long)count);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  h5_set h;
  hn_dataset_info info;
  int status = probe_open(path, &info, &h, NULL);
  if (status == HN_OK) {
    status = read_rows_open(path, &h, &info, rows, count, ds);
    close_set(&h);
  }
  if (status != HN_OK)
    hn_dataset_free(ds);
  hn_h5_quiet_off(&q);
  return status;
}

/* hn_dataset_read_rows_mpi; `pre` is a status of the caller's own preparation on this rank
 * (HN_OK, or a failure with its message stored), agreed together with the local checks. */
static int read_rows_mpi(MPI_Comm comm, const char *path, const int64_t *rows, int64_t count, int pre,
                         hn_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  /* 1. Everything that can fail on one rank alone, then agree: the open is collective. */
  int status = hn_mpi_check_same_comm(comm, "the data file name", path, strlen(path));
  if (status != HN_OK)
    return hn_fail_context(status, "reading %s", path);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  int local = pre;
  if (local != HN_OK)
    ;
  else if (count < 0 || (count > 0 && !rows))
    local = hn_fail(HN_EINVAL, "reading %s: bad row list (count %lld)", path, (long long)count);
  else if (hn_fault("data", -1))
    local = hn_fail(HN_EIO, "cannot open %s on rank %d: injected fault (HAMNET_FAULT=data)", path, rank);
  else
    local = check_file(path);
  status = hn_mpi_agree_comm(comm, local);
  if (status != HN_OK) {
    hn_h5_quiet_off(&q);
    return status;
  }
  /* 2. Open (collective), probe and read this rank's rows (independent transfers: each rank
   * reads its own rows in its own number of H5Dread calls), close (collective), agree. A
   * failure on one rank after the open does not skip its close, so the closes still match. */
  h5_set h;
  hn_dataset_info info;
  local = probe_open_on(path, comm, &info, &h, NULL);
  if (local == HN_OK) {
    local = read_rows_open(path, &h, &info, rows, count, ds);
    close_set(&h);
  }
  hn_h5_quiet_off(&q);
  status = hn_mpi_agree_comm(comm, local);
  if (status != HN_OK)
    hn_dataset_free(ds);
  return status;
}

int hn_dataset_read_rows_mpi(MPI_Comm comm, const char *path, const int64_t *rows, int64_t count, hn_dataset *ds) {
  return read_rows_mpi(comm, path, rows, count, HN_OK, ds);
}

int hn_dataset_read_range_mpi(MPI_Comm comm, const char *path, int64_t first, int64_t count, hn_dataset *ds) {
  int64_t *rows = NULL;
  int pre = HN_OK;
  if (first < 0 || count < 0)
    pre = hn_fail(HN_EINVAL, "reading %s: bad row range (first %lld, count %lld)", path, (long long)first,
                  (long long)count);
  else if (count > 0 && !(rows = hn_alloc((size_t)count, sizeof(int64_t), HN_MEM_DATA, "row list")))
    pre = hn_fail_context(HN_ENOMEM, "reading %s", path);
  for (int64_t i = 0; rows && i < count; i++)
    rows[i] = first + i;
  int status = read_rows_mpi(comm, path, rows, pre == HN_OK ? count : 0, pre, ds);
  hn_free(rows);
  return status;
}

int hn_dataset_read_labels(const char *path, hn_dataset_info *info, int32_t **y) {
  *y = NULL;
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hn_h5_err d;
  h5_set h;
  int32_t *labels = NULL;
  int status = probe_open(path, info, &h, &labels);
  if (status != HN_OK)
    goto out;
  if (!labels) {
    labels = hn_alloc((size_t)info->n, sizeof(int32_t), HN_MEM_DATA, "labels /y");
    if (!labels)
      status = hn_fail_context(HN_ENOMEM, "reading %s", path);
    else if (H5Dread(h.dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) < 0)
      status = hn_fail(HN_EFORMAT, "%s: cannot read /y%s", path, hn_h5_detail(&d));
  }
  for (int64_t i = 0; status == HN_OK && i < info->n; i++)
    if (labels[i] < 0 || labels[i] >= info->n_classes)
      status = hn_fail(HN_EFORMAT, "%s: /y[%lld] = %d is out of range 0..%d (n_classes = %d%s)", path, (long long)i,
                       (int)labels[i], info->n_classes - 1, info->n_classes,
                       info->has_n_classes_attr ? " from the n_classes attribute" : "");
  close_set(&h);
out:
  if (status == HN_OK) {
    *y = labels;
  } else {
    hn_free(labels);
    memset(info, 0, sizeof *info);
  }
  hn_h5_quiet_off(&q);
  return status;
}

int hn_dataset_summarize(const char *path, hn_dataset_summary *s) {
  memset(s, 0, sizeof *s);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  h5_set h;
  float *xb = NULL;
  int32_t *yb = NULL;
  int status = probe_open(path, &s->info, &h, NULL);
  if (status != HN_OK)
    goto out;
  const hn_dataset_info *in = &s->info;
  const int64_t F = in->n_features;
  int64_t block = (int64_t)(HN_H5_BLOCK_BYTES / ((size_t)F * sizeof(float)));
  if (block < 1)
    block = 1;
  if (block > in->n)
    block = in->n;
  s->class_counts = hn_alloc((size_t)in->n_classes, sizeof(int64_t), HN_MEM_DATA, "class counts");
  xb = s->class_counts ? hn_alloc((size_t)block * (size_t)F, sizeof(float), HN_MEM_DATA, "X block") : NULL;
  yb = xb ? hn_alloc((size_t)block, sizeof(int32_t), HN_MEM_DATA, "y block") : NULL;
  if (!yb) {
    status = hn_fail_context(HN_ENOMEM, "reading %s", path);
    goto close;
  }
  double sum = 0.0, mn = INFINITY, mx = -INFINITY;
  for (int64_t first = 0; first < in->n; first += block) {
    int64_t nb = in->n - first < block ? in->n - first : block;
    if ((status = read_range(path, "/X", h.dx, H5T_NATIVE_FLOAT, first, nb, xb)) != HN_OK ||
        (status = read_range(path, "/y", h.dy, H5T_NATIVE_INT32, first, nb, yb)) != HN_OK ||
        (status = hn_data_check_block(path, xb, yb, nb, in->ndim_sample, in->sample_dims, F, in->n_classes,
                                      in->has_n_classes_attr, NULL, first)) != HN_OK)
      goto close;
    double bsum = 0.0;
    for (int64_t k = 0; k < nb * F; k++) {
      double v = xb[k];
      bsum += v;
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
    }
    sum += bsum;
    for (int64_t k = 0; k < nb; k++)
      s->class_counts[yb[k]]++;
  }
  s->x_min = mn;
  s->x_max = mx;
  s->x_mean = sum / ((double)in->n * (double)F);
close:
  close_set(&h);
out:
  hn_free(xb);
  hn_free(yb);
  if (status != HN_OK)
    hn_dataset_summary_free(s);
  hn_h5_quiet_off(&q);
  return status;
}

void hn_dataset_summary_free(hn_dataset_summary *s) {
  if (!s)
    return;
  hn_free(s->class_counts);
  memset(s, 0, sizeof *s);
}

int hn_file_format(const char *path, char *buf, size_t size) {
  if (size > 0)
    buf[0] = '\0';
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hn_h5_err d;
  hid_t file = H5I_INVALID_HID, attr = H5I_INVALID_HID, type = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
  int status = open_file(path, &file);
  if (status == HN_OK) /* the format attribute is a string from HDF5's unchecksummed global heap */
    status = hn_h5_check_heaps(path);
  if (status != HN_OK)
    goto out;
  htri_t exists = H5Aexists(file, "format");
  if (exists <= 0) {
    if (exists < 0)
      status = hn_fail(HN_EFORMAT, "%s: cannot look up the format attribute%s", path, hn_h5_detail(&d));
    goto out;
  }
  attr = H5Aopen(file, "format", H5P_DEFAULT);
  type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
  if (type < 0 || H5Tget_class(type) != H5T_STRING) {
    status = hn_fail(HN_EFORMAT, "%s: the root attribute `format` is not a string", path);
    goto out;
  }
  mtype = H5Tcopy(H5T_C_S1);
  if (H5Tis_variable_str(type) > 0) {
    char *s = NULL;
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(type));
    if (H5Aread(attr, mtype, &s) < 0) {
      status = hn_fail(HN_EFORMAT, "%s: cannot read the format attribute%s", path, hn_h5_detail(&d));
      goto out;
    }
    if (size > 0)
      snprintf(buf, size, "%s", s ? s : "");
    H5free_memory(s);
  } else {
    size_t len = H5Tget_size(type);
    char *s = calloc(len + 1, 1);
    if (!s) {
      status = hn_fail(HN_ENOMEM, "%s: out of memory reading the format attribute", path);
      goto out;
    }
    H5Tset_size(mtype, len + 1);
    H5Tset_strpad(mtype, H5T_STR_NULLTERM);
    if (H5Aread(attr, mtype, s) < 0)
      status = hn_fail(HN_EFORMAT, "%s: cannot read the format attribute%s", path, hn_h5_detail(&d));
    else if (size > 0)
      snprintf(buf, size, "%s", s);
    free(s);
  }
out:
  hn_h5_close(&mtype);
  hn_h5_close(&type);
  hn_h5_close(&attr);
  hn_h5_close(&file);
  hn_h5_quiet_off(&q);
  return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

/* Chunk dims of about HN_H5_CHUNK_BYTES: whole trailing dimensions while they fit, then as
 * much of the next one as fits, 1 for the rest. */
static void chunk_dims(int rank, const hsize_t *dims, size_t elem, hsize_t *chunk) {
  hsize_t prod = elem;
  int k = rank - 1;
  for (; k >= 0; k--) {
    if (prod * dims[k] <= HN_H5_CHUNK_BYTES) {
      chunk[k] = dims[k];
      prod *= dims[k];
    } else {
      hsize_t c = HN_H5_CHUNK_BYTES / prod;
      chunk[k] = c < 1 ? 1 : c;
      break;
    }
  }
  for (k--; k >= 0; k--)
    chunk[k] = 1;
}

static int write_dataset(const char *path, hid_t file, const char *name, hid_t filetype, hid_t memtype, int rank,
                         const hsize_t *dims, size_t elem, const void *data) {
  hn_h5_err d;
  hsize_t chunk[4];
  chunk_dims(rank, dims, elem, chunk);
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t dset = H5I_INVALID_HID;
  int status = HN_OK;
  if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
      (dset = H5Dcreate2(file, name, filetype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
      H5Dwrite(dset, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    status = hn_fail(HN_EIO, "cannot write %s to %s%s", name, path, hn_h5_detail(&d));
  hn_h5_close(&dset);
  hn_h5_close(&dcpl);
  hn_h5_close(&space);
  return status;
}

static int write_int_attr(const char *path, hid_t file, const char *name, int value) {
  hn_h5_err d;
  hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
  int status = HN_OK;
  if (space < 0 || (attr = H5Acreate2(file, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
      H5Awrite(attr, H5T_NATIVE_INT, &value) < 0)
    status = hn_fail(HN_EIO, "cannot write attribute %s to %s%s", name, path, hn_h5_detail(&d));
  hn_h5_close(&attr);
  hn_h5_close(&space);
  return status;
}

static int write_string_attr(const char *path, hid_t file, const char *name, const char *value) {
  hn_h5_err d;
  hid_t space = H5Screate(H5S_SCALAR), type = H5Tcopy(H5T_C_S1), attr = H5I_INVALID_HID;
  int status = HN_OK;
  /* Variable-length UTF-8, as h5py writes str attributes (h5py reads it back as str). */
  if (space < 0 || type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0 ||
      (attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
      H5Awrite(attr, type, &value) < 0)
    status = hn_fail(HN_EIO, "cannot write attribute %s to %s%s", name, path, hn_h5_detail(&d));
  hn_h5_close(&attr);
  hn_h5_close(&type);
  hn_h5_close(&space);
  return status;
}

int hn_dataset_write(const char *path, const hn_dataset *ds) {
  if (ds->n < 1)
    return hn_fail(HN_EINVAL, "refusing to write %s: the data set is empty", path);
  int status = hn_dataset_validate(ds, path);
  if (status != HN_OK)
    return hn_fail_context(status, "refusing to write a bad data set");
  size_t len = strlen(path);
  char *tmp = malloc(len + 5);
  if (!tmp)
    return hn_fail(HN_ENOMEM, "out of memory writing %s", path);
  memcpy(tmp, path, len);
  memcpy(tmp + len, ".tmp", 5);
  hn_h5_quiet q;
  hn_h5_quiet_on(&q);
  hn_h5_err d;
  /* The 1.8 file format: superblock and object headers carry checksums, so a damaged header is
   * refused by HDF5 instead of being parsed (HDF5 1.10 has memory-safety bugs on corrupted
   * unchecksummed metadata). h5py and HDF5 >= 1.8 read it. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0)
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
  hn_h5_close(&fapl);
  if (file < 0) {
    status = hn_fail(HN_EIO, "cannot create %s (does its directory exist and is it writable?)%s", tmp, hn_h5_detail(&d));
    goto out;
  }
  int rank = 1 + ds->ndim_sample;
  hsize_t xdims[4] = {(hsize_t)ds->n, (hsize_t)ds->sample_dims[0], (hsize_t)ds->sample_dims[1],
                      (hsize_t)ds->sample_dims[2]};
  hsize_t ydims[1] = {(hsize_t)ds->n};
  if ((status = write_dataset(tmp, file, "X", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank, xdims, sizeof(float),
                              ds->X)) != HN_OK ||
      (status = write_dataset(tmp, file, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, ydims, sizeof(int32_t), ds->y)) !=
          HN_OK ||
      (status = write_int_attr(tmp, file, "n_classes", ds->n_classes)) != HN_OK ||
      (status = write_string_attr(tmp, file, "format", HN_DATA_FORMAT)) != HN_OK ||
      (status = write_int_attr(tmp, file, "format_version", 1)) != HN_OK) {
    hn_h5_close(&file);
    goto out;
  }
  if (H5Fclose(file) < 0) {
    status = hn_fail(HN_EIO, "cannot finish writing %s (disk full?)%s", tmp, hn_h5_detail(&d));
    goto out;
  }
  if (rename(tmp, path) != 0)
    status = hn_fail(HN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
out:
  if (status != HN_OK)
    remove(tmp);
  free(tmp);
  hn_h5_quiet_off(&q);
  return status;
}
